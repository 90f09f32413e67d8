/* SPDX-License-Identifier: MIT */
/*
 * The library's own dirty trackers for source blocks (rdmig_add_block_opts):
 * track.c checks and dispatches, track_uffd.c and track_softdirty.c hold the
 * two kernel mechanisms. A session's trackers are armed once its setup is
 * done (memory registered) and torn down when its migration ends.
 */
#ifndef RDMIG_CORE_TRACK_H
#define RDMIG_CORE_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdmig/rdmig.h"

struct rdmig_session;
struct rdm_block;

/*
 * Source, at add time: resolve AUTO and check that this kernel can keep the
 * log for [host, +len) (a probe, nothing stays armed). 0 with *got set, or
 * -errno with why.
 */
int rdm_track_resolve(enum rdmig_tracker want, void *host, uint64_t len, uint32_t page_size,
		      bool has_hold, enum rdmig_tracker *got, char *why, size_t whylen);
/* At migrate(): the combinations the transport cannot carry (rdma). */
int rdm_track_check_transport(const struct rdmig_session *s, bool rdma, bool pin_all,
			      char *why, size_t whylen);

/* Source thread: start every block's tracker (after setup, before the first pass). */
int rdm_track_arm(struct rdmig_session *s);
/* Once per sync, before the blocks are collected (soft-dirty's snapshot). */
int rdm_track_sync(struct rdmig_session *s);
/* OR block bi's pages written since its last collect into its dirty bitmap. */
int rdm_track_collect(struct rdmig_session *s, unsigned bi);
/* Stop and free the session's trackers (any state, also never armed). */
void rdm_track_disarm(struct rdmig_session *s);

/* userfaultfd write-protect (track_uffd.c). */
struct rdm_uffd;
int rdm_uffd_probe(void *host, uint64_t len, char *why, size_t whylen);
int rdm_uffd_start(struct rdmig_session *s, struct rdm_uffd **out, char *why, size_t whylen);
int rdm_uffd_collect(struct rdm_uffd *u, unsigned bi, uint64_t *bitmap);
void rdm_uffd_stop(struct rdm_uffd *u);

/* soft-dirty (track_softdirty.c); one owner per process at a time. */
struct rdm_softdirty;
int rdm_softdirty_probe(uint32_t page_size, char *why, size_t whylen);
int rdm_softdirty_start(struct rdmig_session *s, struct rdm_softdirty **out, char *why,
			size_t whylen);
int rdm_softdirty_snapshot(struct rdm_softdirty *sd, char *why, size_t whylen);
int rdm_softdirty_collect(struct rdm_softdirty *sd, unsigned bi, uint64_t *bitmap);
void rdm_softdirty_stop(struct rdm_softdirty *sd);

#endif
