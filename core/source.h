/* SPDX-License-Identifier: MIT */
/* The source's steps that precopy (source.c) and postcopy (postcopy_src.c) share. */
#ifndef RDMIG_CORE_SOURCE_H
#define RDMIG_CORE_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

struct rdmig_session;
struct rdm_ram;

/* One pass: everything dirty goes, then a fence the destination acknowledges. */
int rdm_src_pass(struct rdmig_session *s, struct rdm_ram *ram, uint64_t seq);
/* Wait until the destination applied iteration seq, an error, a cancel, or timeout. */
int rdm_src_wait_rp(struct rdmig_session *s, uint64_t seq, int timeout_ms);
/* The RAM counters and what the policy derived, into the stats. */
void rdm_src_update_stats(struct rdmig_session *s, struct rdm_ram *ram);
/* pause-before-switchover: wait in pre-switchover for rdmig_continue(). */
int rdm_src_pause(struct rdmig_session *s);
/* The vm_stop callback; the stop time is the downtime's start. */
int rdm_src_stop_vm(struct rdmig_session *s);
/* The switchover's start, precopy or postcopy: stop (and pause), then the last dirty sync. */
int rdm_src_stop_sync(struct rdmig_session *s, struct rdm_ram *ram);
/*
 * Its end: the device state, then the commit of seq. 0 once the destination
 * runs (the downtime set); -errno otherwise, *unknown when the outcome is.
 */
int rdm_src_commit(struct rdmig_session *s, struct rdm_ram *ram, uint64_t seq, bool *unknown);

/*
 * Setup's halves: connect, handshake (a resume when s->pc_resume) and the
 * block list; then the return-path thread. rdm_src_stop_rp() joins it.
 */
int rdm_src_connect(struct rdmig_session *s);
int rdm_src_start_rp(struct rdmig_session *s);
void rdm_src_stop_rp(struct rdmig_session *s);

#endif
