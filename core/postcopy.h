/* SPDX-License-Identifier: MIT */
/*
 * Postcopy (capability postcopy-ram): the destination runs before it has all
 * of RAM, and pages it lacks are pulled on demand.
 *
 *   source                                     destination
 *   (precopy passes; rdmig_postcopy_start())
 *   VM stopped, dirty log synced
 *   POSTCOPY_LISTEN seq                   -->  pages of seq in; userfaultfd over
 *                                              the blocks; pages now land by copy
 *   POSTCOPY_DISCARD per dirty run        -->  those pages dropped: stale
 *   device state, COMPLETE, the commit (commit.h): GO starts the VM there
 *   postcopy-active                            postcopy-active
 *   the dirty pages, in the background;   <--  RP_REQ_PAGES for a page a thread
 *   the return-path thread sends a             of the VM faulted on
 *   requested page at once, beside them
 *   fence, POSTCOPY_END seq               -->  pages of seq in, userfaultfd off
 *                                         <--  RP_FENCE_ACK seq; both completed
 *
 * Over a transport that reads (rdma), the source exposes its blocks before
 * the stop and pushes nothing: it sends POSTCOPY_END right after GO, and the
 * destination reads each faulting page, and every discarded one in the
 * background, straight out of the source's memory; it acknowledges END once
 * it has them all. The source's CPU is not on the fault path.
 *
 * The source's memory stays as it was at the stop, so a page may go twice (a
 * request and the background push) and the first copy wins there: a page the
 * destination's VM wrote is never overwritten. After GO the source never
 * resumes its VM: a failure there leaves the VM running at the destination,
 * without the pages it still lacked.
 */
#ifndef RDMIG_CORE_POSTCOPY_H
#define RDMIG_CORE_POSTCOPY_H

#include <stdbool.h>
#include <stdint.h>

#include "control/msg.h"

struct rdmig_session;
struct rdm_ram;

#define RDM_PC_REQ_MAX (2ull << 20)    /* the most one request may ask for */
#define RDM_PC_PIECE (64u << 10)       /* background pages go in pieces of this, at most */

/* The source's page requests (in the session, under its lock). */
struct rdm_pc_src {
	bool listening; /* LISTEN sent: requests are accepted */
	uint64_t requests, pulled, pulled_bytes;
};

/* Either side: whether postcopy can run over this session's URI and memory. */
int rdm_pc_check(struct rdmig_session *s);

/*
 * Source, return-path thread: a RP_REQ_PAGES, bounds checked, and its pages
 * sent at once, beside the background push (the VM is stopped: the same
 * bytes either way, and the first copy wins there). From LISTEN on, so a
 * page the destination's load_state touches comes too.
 */
int rdm_pc_request(struct rdmig_session *s, const struct rdm_req_pages *r);
/*
 * Source, instead of the precopy switchover (VM running, after a pass):
 * 0 once the destination acknowledged POSTCOPY_END; -errno otherwise, with
 * *unknown set when the commit's outcome is unknown.
 */
int rdm_pc_switchover(struct rdmig_session *s, struct rdm_ram *ram, uint64_t *seq, bool *unknown);

/* Recovery, both sides (core/postcopy_recover.c). */
/*
 * The migration thread, the link lost in postcopy-active (s->tp closed):
 * postcopy-paused until rdmig_postcopy_recover() (0, status postcopy-recover,
 * the error cleared for the attempt) or a destroy (-ECANCELED).
 */
int rdm_pc_pause_wait(struct rdmig_session *s);
/* Destroy: a paused or recovering thread gives up (cancel set, waits cut short). */
void rdm_pc_abandon(struct rdmig_session *s);
/*
 * Source, after rdm_pc_pause_wait(): connect to s->addr with a resume hello,
 * take the destination's received maps (the pages it lacks become dirty),
 * and start the return path. 0, or -errno (recorded).
 */
int rdm_pc_src_resume(struct rdmig_session *s, struct rdm_ram *ram);

/* Destination (core/postcopy_dst.c). */
struct rdm_pc_dst;
/* After the pages of LISTEN's seq are in: guard the blocks, pages by copy from now on. */
int rdm_pc_listen(struct rdmig_session *s, struct rdm_pc_dst **out, char *why, size_t len);
/* A DISCARD (bounds and page alignment checked). */
int rdm_pc_discard(struct rdm_pc_dst *d, const struct rdm_req_pages *r, char *why, size_t len);
/* Zero pages arriving in postcopy. */
int rdm_pc_zero(struct rdm_pc_dst *d, unsigned block, uint64_t first, uint64_t n);
/* The requests and missing pages into the stats; returns the pages missing. */
uint64_t rdm_pc_publish(struct rdm_pc_dst *d);
/* After COMPLETE, the VM running here: where the transport reads, the background reader starts. */
int rdm_pc_run(struct rdm_pc_dst *d);
/* Where the transport reads: 1 while pages are still being read, 0 all read, -errno failed (why). */
int rdm_pc_pulled(struct rdm_pc_dst *d, char *why, size_t len);
/*
 * A new transport after postcopy-paused (s->tp, negotiated): pages land
 * through the guard again, the received maps and RESUME_ACK go to the
 * source, the reader (where the transport reads) starts over, and every
 * fault whose request was lost is asked again. 0, or -errno with why.
 */
int rdm_pc_resume(struct rdm_pc_dst *d, char *why, size_t len);
/* No more page requests or reads: call it before the transport closes. */
void rdm_pc_dst_stop(struct rdm_pc_dst *d);
/*
 * After the transport closed (no receiver places pages any more): !lost,
 * every page is here and the guard comes off. lost: the source is gone with
 * pages still missing, and the guard stays on (a thread touching a missing
 * page waits, it does not read zeros) until the session is destroyed or
 * migrates again.
 */
void rdm_pc_dst_end(struct rdmig_session *s, struct rdm_pc_dst *d, bool lost);
/* Session teardown: whatever a lost postcopy kept (_free takes the lock, _release not). */
void rdm_pc_dst_free(struct rdmig_session *s);
void rdm_pc_dst_release(struct rdm_pc_dst *d);

#endif
