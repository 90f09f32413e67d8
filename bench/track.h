/* SPDX-License-Identifier: MIT */
/*
 * Dirty tracking of the synthetic guest by a kernel mechanism, so the bench
 * measures a migration whose dirty log costs what a real one costs:
 *  - soft-dirty: /proc/self/clear_refs ("4") and bit 55 of /proc/self/pagemap;
 *  - uffd-wp: userfaultfd write-protect; the first write to a page after a sync
 *    faults to a handler thread that logs the page and lets the write go on.
 */
#ifndef RDMIG_BENCH_TRACK_H
#define RDMIG_BENCH_TRACK_H

#include <stddef.h>
#include <stdint.h>

enum track_kind {
	TRACK_COOP,       /* the workload logs its own writes (no kernel help) */
	TRACK_SOFT_DIRTY,
	TRACK_UFFD_WP,
};

struct track_region {
	void *addr;
	uint64_t len;
	uint32_t page_size;
};

struct track;

/* -ENOTSUP with a reason in err when this kernel lacks the mechanism. */
int track_create(enum track_kind kind, const struct track_region *r, unsigned n,
		 struct track **out, char *err, size_t errlen);
void track_destroy(struct track *t);
/*
 * Start tracking: from here on every write is logged. Arm it once the
 * migration is set up (memory registered for RDMA) and before the first pass:
 * a write-protected page cannot be pinned by ibv_reg_mr.
 */
int track_arm(struct track *t, char *err, size_t errlen);

/*
 * soft-dirty needs one whole-process snapshot per sync, taken with the guest's
 * writers held still (clear_refs would otherwise forget writes that race it);
 * uffd-wp needs none. Returns 0, or -errno.
 */
int track_snapshot(struct track *t);
/* OR the pages of region i written since the last collect into bitmap, and re-arm them. */
int track_collect(struct track *t, unsigned i, uint64_t *bitmap, uint64_t npages);
/* Does this kind need track_snapshot() with the writers paused? */
int track_needs_pause(const struct track *t);

const char *track_name(enum track_kind k);
int track_from_name(const char *s, enum track_kind *k);

#endif
