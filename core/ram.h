/* SPDX-License-Identifier: MIT */
/*
 * The source's RAM sender: turns dirty bitmaps into transport writes of merged
 * runs and zero pages into ZERO_RUNS messages, under the bandwidth limit.
 */
#ifndef RDMIG_CORE_RAM_H
#define RDMIG_CORE_RAM_H

#include <stdbool.h>
#include <stdint.h>

#include "control/msg.h"
#include "core/policy.h"

struct rdmig_session;

#define RDM_ZRUNS_MAX 8192u

struct rdm_ram {
	struct rdmig_session *s;
	uint64_t bytes_total;  /* RAM bytes put on the wire, zero-run messages included */
	uint64_t normal_pages; /* pages sent as data */
	uint64_t normal_bytes;
	uint64_t zero_pages;   /* pages sent as zero runs */
	uint64_t syncs;
	uint64_t remaining;    /* dirty bytes not yet sent */
	uint64_t pages_per_second, period_pages;
	/*
	 * Zero runs travel on the control stream, data on the channels: a page
	 * zeroed in pass N and written in a later pass must not be written
	 * before the destination acked pass N (it applies the runs, then acks),
	 * or the late zeroing would wipe the data. Per block, a bit per page:
	 * zcur the pages zeroed in this pass, zold those of passes up to
	 * zold_seq, not yet acked. Only a write that meets zold waits.
	 */
	uint64_t **zcur, **zold;
	uint64_t zold_seq; /* 0: nothing pending */
	bool zcur_any;
	uint64_t zero_waits; /* writes that had to wait for a zeroing ack */

	struct rdm_zero_run *zruns;
	unsigned nz, zblock;
	uint8_t *zbuf; /* encoded ZERO_RUNS frame */
	struct rdm_rate rate;          /* max-bandwidth */
	bool unlimited;                /* the stop's pass: max-bandwidth bounds the live phase only */
	uint64_t next_stats;           /* bytes_total at which stats refresh */
	uint64_t next_stats_ms;        /* ... or this time, whichever comes first */
	uint64_t pc_pushed;            /* postcopy: pages sent in the background */
};

/* The pass that just sent ITER_END seq: its zeroed pages join zold. */
void rdm_ram_pass_end(struct rdm_ram *r, uint64_t seq);

/* Every page starts dirty: the first pass sends all of RAM. */
int rdm_ram_init(struct rdm_ram *r, struct rdmig_session *s);
void rdm_ram_fini(struct rdm_ram *r);

/*
 * Send every dirty page of every block, then clear the bitmaps. Once
 * rdmig_postcopy_start() was called the pass ends early, leaving the pages
 * it did not reach dirty (and those it sent in the block it was in).
 */
int rdm_ram_send_dirty(struct rdm_ram *r);

/*
 * Postcopy. send_next: the next dirty run at or after the cursor (*bi, *pos), one
 * piece (RDM_PC_PIECE) at most, within a chunk; 1 when it sent one, 0 when no dirty page is left. flush:
 * zero runs still held go out.
 */
int rdm_ram_send_next(struct rdm_ram *r, unsigned *bi, uint64_t *pos);
int rdm_ram_flush(struct rdm_ram *r);

/* Copy the RAM counters into the session's stats (query-migrate). */
void rdm_ram_publish(struct rdm_ram *r);

/* Pull the dirty log of every block; returns the dirty pages and bytes found. */
int rdm_ram_sync(struct rdm_ram *r, uint64_t *pages, uint64_t *bytes);

#endif
