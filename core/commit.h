/* SPDX-License-Identifier: MIT */
/*
 * The switchover commit: how the VM moves from one host to the other so that
 * at most one of them ever runs it.
 *
 *   source                                    destination
 *   final pages, device state, COMPLETE  -->  wait for the pages, load the state
 *                                        <--  READY (rp-ready)
 *   GO: the commit point                 -->  start the VM
 *                                        <--  DONE (rp-complete-ack)
 *
 * Two rules make it safe. The destination never runs without GO. The source
 * never resumes once COMPLETE is out, unless the destination said with an
 * ERROR that it will not run. Whatever else ends a commit early (a lost link, a
 * silent peer, a lost message) ends that side in UNKNOWN: the VM stays
 * stopped and the VMM decides with rdmig_resolve(), knowing both hosts.
 */
#ifndef RDMIG_CORE_COMMIT_H
#define RDMIG_CORE_COMMIT_H

#include <stdint.h>

struct rdmig_session;
struct rdm_devbuf;

enum rdm_commit_state {
	/* Source. */
	RDM_COMMIT_SRC_HANDOVER,   /* state sent; COMPLETE next. A failure resumes the source. */
	RDM_COMMIT_SRC_WAIT_READY, /* COMPLETE sent: handed over. Only an ERROR lets us resume. */
	RDM_COMMIT_SRC_GO,         /* READY came: the destination has it all and waits for GO. */
	RDM_COMMIT_SRC_WAIT_DONE,  /* GO sent: the destination may be running. Never resume. */
	/* Destination. */
	RDM_COMMIT_DST_LOAD,    /* COMPLETE came: last pages, then device state. Fails: ERROR. */
	RDM_COMMIT_DST_READY,   /* loaded: tell the source. Fails: we never run, say so. */
	RDM_COMMIT_DST_WAIT_GO, /* READY sent: GO runs us; ERROR aborts; silence is UNKNOWN. */
	RDM_COMMIT_DST_RUN,     /* GO came: start the VM, then DONE. */
	/* Terminal. */
	RDM_COMMIT_DONE,    /* the destination runs the VM */
	RDM_COMMIT_ABORTED, /* the source runs it (or will resume it); the destination never will */
	RDM_COMMIT_UNKNOWN, /* this side stopped, outcome unknown: the VMM decides */
};

struct rdm_commit {
	struct rdmig_session *s;
	enum rdm_commit_state st;
	uint64_t seq;    /* COMPLETE's sequence number */
	int err;         /* why it ended ABORTED or UNKNOWN (-errno) */
	uint8_t *buf;    /* destination: control receive buffer (RDM_CTRL_BUF) */
	const struct rdm_devbuf *dev; /* destination: the device state received */
	int timeout_ms;  /* peer timeout */
};

/* Advance c from its start state until it is terminal; returns that state. */
enum rdm_commit_state rdm_commit_run(struct rdm_commit *c);

#endif
