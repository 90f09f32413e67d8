/* SPDX-License-Identifier: MIT */
/*
 * How the synthetic guest's dirty log is kept: by the workload itself (coop,
 * like KVM's dirty log handed to the dirty_log callback) or by one of the
 * library's trackers (rdmig_add_block_opts(3)): soft-dirty or uffd-wp.
 */
#ifndef RDMIG_BENCH_TRACK_H
#define RDMIG_BENCH_TRACK_H

#include "rdmig/rdmig.h"

enum track_kind {
	TRACK_COOP,       /* the workload logs its own writes (no kernel help) */
	TRACK_SOFT_DIRTY,
	TRACK_UFFD_WP,
};

const char *track_name(enum track_kind k);
int track_from_name(const char *s, enum track_kind *k);
/* The library's tracker for a kind (RDMIG_TRACK_NONE for coop). */
enum rdmig_tracker track_to_rdmig(enum track_kind k);

#endif
