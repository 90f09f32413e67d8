/* SPDX-License-Identifier: MIT */
/*
 * The switchover commit of both roles (see commit.h for the protocol and its
 * rules): one state enum, one advance function, every step below one state.
 *
 * Fault points (test builds): each cuts the link at one position of the
 * commit, so every lost message has a test.
 *   src-before-complete  source, before COMPLETE      (COMPLETE lost)
 *   src-lose-ready       source return path, on READY  (READY lost)
 *   src-before-go        source, before GO             (GO never sent)
 *   dst-stall-load       destination stalls past the peer timeout before loading
 *   dst-before-ready     destination, before READY     (READY never sent)
 *   dst-lose-go          destination, on GO            (GO lost)
 *   dst-before-done      destination, after starting   (DONE lost)
 * and three that call rdmig_cancel() at one position, as a VMM thread could:
 *   src-cancel-wait-ready  source, COMPLETE sent        (must win: VM back here)
 *   src-cancel-after-go    source, GO sent              (must be refused: -EBUSY)
 *   dst-cancel-wait-go     destination, READY sent      (must win: the source resumes)
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/fault.h"
#include "core/commit.h"
#include "core/session.h"

/* A fault point fired: the link dies here (the peer sees it close or go quiet). */
static int cut(struct rdmig_session *s, const char *point)
{
	rdm_set_error(s, "fault injected at %s: link cut", point);
	s->tp->ops->shutdown(s->tp);
	return -ECONNRESET;
}

static int send_seq(struct rdmig_session *s, enum rdm_msg_type type, uint64_t seq)
{
	struct rdm_msg m = {.type = type};

	m.u.seq.seq = seq;
	return rdm_send_msg(s, &m);
}

/* ---- source ---- */

enum src_event { EV_NONE, EV_READY, EV_DONE, EV_REFUSED, EV_LOST, EV_CANCEL };

/*
 * Wait for what the return path brings (READY or DONE), a refusal, a lost
 * return path, or (while cancel may still win) a cancel. The return path
 * reports silence after the peer timeout; 2x that is only a backstop.
 */
static enum src_event src_wait(struct rdm_commit *c, bool want_done)
{
	struct rdmig_session *s = c->s;
	uint64_t deadline = rdm_now_ms() + 2 * (uint64_t)c->timeout_ms;
	enum src_event ev = EV_NONE;

	pthread_mutex_lock(&s->lock);
	while (ev == EV_NONE) {
		if (want_done ? s->complete_acked : s->ready_seq == c->seq)
			ev = want_done ? EV_DONE : EV_READY;
		else if (s->refused)
			ev = EV_REFUSED;
		else if (s->rp_error)
			ev = EV_LOST;
		else if (!want_done && atomic_load(&s->cancel))
			ev = EV_CANCEL;
		else if (rdm_now_ms() >= deadline)
			ev = EV_LOST;
		if (ev != EV_NONE)
			break;
		rdm_cond_slice(s, 50);
	}
	c->err = s->rp_error ? s->rp_error : -ETIMEDOUT;
	pthread_mutex_unlock(&s->lock);
	if (ev == EV_LOST)
		rdm_set_error(s, "no %s from the destination (%s)", want_done ? "confirmation" : "ready",
			      strerror(-c->err));
	return ev;
}

/*
 * Cancel before GO: the destination will not run without GO, and the unwind
 * (source.c) tells it so.
 */
static enum rdm_commit_state src_cancelled(struct rdm_commit *c)
{
	c->err = -ECANCELED;
	return RDM_COMMIT_ABORTED;
}

/*
 * GO could not be sent: the destination may have given up (a cancel while it
 * waited for GO) and hung up, its ERROR already on the return path. That
 * word means it never runs, so ours may; without it the outcome is unknown.
 */
static enum rdm_commit_state src_go_failed(struct rdm_commit *c)
{
	struct rdmig_session *s = c->s;
	int send_err = c->err;

	switch (src_wait(c, true)) {
	case EV_DONE:
		return RDM_COMMIT_DONE;
	case EV_REFUSED:
		c->err = s->rp_error ? s->rp_error : -EPROTO;
		rdm_error_context(s, c->err, "the destination gave up before go");
		return RDM_COMMIT_ABORTED;
	default:
		c->err = send_err; /* the first error (the send's) stays the text */
		return RDM_COMMIT_UNKNOWN;
	}
}

static enum rdm_commit_state src_step(struct rdm_commit *c)
{
	struct rdmig_session *s = c->s;
	bool cancelled;

	switch (c->st) {
	case RDM_COMMIT_SRC_HANDOVER:
		c->err = rdm_fault("src-before-complete") ? cut(s, "src-before-complete")
							   : send_seq(s, RDM_MSG_COMPLETE, c->seq);
		return c->err ? RDM_COMMIT_ABORTED : RDM_COMMIT_SRC_WAIT_READY;
	case RDM_COMMIT_SRC_WAIT_READY:
		if (rdm_fault("src-cancel-wait-ready"))
			rdmig_cancel(s);
		switch (src_wait(c, false)) {
		case EV_READY:
			return RDM_COMMIT_SRC_GO;
		case EV_REFUSED:
			c->err = s->rp_error ? s->rp_error : -EPROTO;
			return RDM_COMMIT_ABORTED;
		case EV_CANCEL:
			return src_cancelled(c);
		default:
			return RDM_COMMIT_UNKNOWN;
		}
	case RDM_COMMIT_SRC_GO:
		if (rdm_fault("src-before-go")) {
			c->err = cut(s, "src-before-go");
			return RDM_COMMIT_UNKNOWN;
		}
		/* The commit point: from here on rdmig_cancel() is refused. */
		pthread_mutex_lock(&s->lock);
		cancelled = atomic_load(&s->cancel);
		if (!cancelled)
			s->committed = true;
		pthread_mutex_unlock(&s->lock);
		if (cancelled)
			return src_cancelled(c);
		c->err = send_seq(s, RDM_MSG_GO, c->seq);
		return c->err ? src_go_failed(c) : RDM_COMMIT_SRC_WAIT_DONE;
	case RDM_COMMIT_SRC_WAIT_DONE:
		if (rdm_fault("src-cancel-after-go") && rdmig_cancel(s) != -EBUSY) {
			rdm_set_error(s, "a cancel after go was accepted");
			c->err = -EPROTO;
			return RDM_COMMIT_UNKNOWN;
		}
		switch (src_wait(c, true)) {
		case EV_DONE:
			return RDM_COMMIT_DONE;
		case EV_REFUSED:
			/* It gave up before GO reached it, and said so: it never runs. */
			c->err = s->rp_error ? s->rp_error : -EPROTO;
			return RDM_COMMIT_ABORTED;
		default:
			return RDM_COMMIT_UNKNOWN;
		}
	default:
		return RDM_COMMIT_UNKNOWN;
	}
}

/* ---- destination ---- */

static int dst_load(struct rdm_commit *c)
{
	struct rdmig_session *s = c->s;
	int ret;

	if (rdm_fault("dst-stall-load")) {
		/* A frozen host or a slow device: longer than the source will wait. */
		struct timespec ts = {(c->timeout_ms + 1500) / 1000,
				      ((c->timeout_ms + 1500) % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
	ret = rdm_tp_wait_fence(s->tp, c->seq, c->timeout_ms);
	if (ret) {
		rdm_set_error(s, "waiting for the last pages (iteration %llu): %s",
			      (unsigned long long)c->seq, rdm_tp_why(ret));
		return ret;
	}
	return rdm_devstate_load(s, c->dev);
}

/* Wait for GO; answers pings meanwhile. Returns the next state. */
static enum rdm_commit_state dst_wait_go(struct rdm_commit *c)
{
	struct rdmig_session *s = c->s;
	uint64_t last_rx = rdm_now_ms();
	struct rdm_msg m;
	bool cancelled;
	int ret;

	for (;;) {
		if (rdm_cancelled(s)) {
			rdm_send_error(s, -ECANCELED, "migration cancelled by the destination");
			c->err = -ECANCELED;
			return RDM_COMMIT_ABORTED;
		}
		ret = rdm_recv_msg(s, c->buf, RDM_CTRL_BUF, &m, 200);
		if (ret == -ETIMEDOUT) {
			if (rdm_now_ms() - last_rx <= (uint64_t)c->timeout_ms)
				continue;
			rdm_set_error(s, "no go from the source for %d ms", c->timeout_ms);
			c->err = ret;
			return RDM_COMMIT_UNKNOWN;
		}
		if (ret) {
			rdm_set_error(s, "source connection lost while waiting for go: %s",
				      rdm_tp_why(ret));
			c->err = ret;
			return RDM_COMMIT_UNKNOWN;
		}
		last_rx = rdm_now_ms();
		switch (m.type) {
		case RDM_MSG_RP_PING:
			m.type = RDM_MSG_RP_PONG;
			rdm_send_msg(s, &m);
			break;
		case RDM_MSG_RP_PONG:
			break;
		case RDM_MSG_GO:
			if (rdm_fault("dst-lose-go")) {
				c->err = cut(s, "dst-lose-go");
				return RDM_COMMIT_UNKNOWN;
			}
			pthread_mutex_lock(&s->lock);
			cancelled = atomic_load(&s->cancel);
			if (!cancelled)
				s->committed = true;
			pthread_mutex_unlock(&s->lock);
			if (!cancelled)
				return RDM_COMMIT_DST_RUN;
			break; /* the cancel won: said at the top of the loop */
		case RDM_MSG_ERROR:
			rdm_set_error(s, "source aborted the switchover: %s", m.u.error.text);
			c->err = m.u.error.code < 0 ? m.u.error.code : -EPROTO;
			return RDM_COMMIT_ABORTED;
		default:
			rdm_set_error(s, "unexpected %s while waiting for go", rdm_msg_name(m.type));
			rdm_send_error(s, -EPROTO, s->stats.error_desc);
			c->err = -EPROTO;
			return RDM_COMMIT_ABORTED;
		}
	}
}

static enum rdm_commit_state dst_step(struct rdm_commit *c)
{
	struct rdmig_session *s = c->s;
	int ret;

	switch (c->st) {
	case RDM_COMMIT_DST_LOAD:
		c->err = dst_load(c);
		if (!c->err)
			return RDM_COMMIT_DST_READY;
		rdm_send_error(s, c->err, s->stats.error_desc);
		return RDM_COMMIT_ABORTED;
	case RDM_COMMIT_DST_READY:
		pthread_mutex_lock(&s->lock);
		s->in_commit = true;
		pthread_mutex_unlock(&s->lock);
		/* Not sent (or cut): no GO can follow, and we never run without it. */
		c->err = rdm_fault("dst-before-ready") ? cut(s, "dst-before-ready")
						       : send_seq(s, RDM_MSG_RP_READY, c->seq);
		return c->err ? RDM_COMMIT_ABORTED : RDM_COMMIT_DST_WAIT_GO;
	case RDM_COMMIT_DST_WAIT_GO:
		if (rdm_fault("dst-cancel-wait-go"))
			rdmig_cancel(s);
		return dst_wait_go(c);
	case RDM_COMMIT_DST_RUN:
		if (s->cb.vm_start) {
			ret = rdm_cb_ret(s->cb.vm_start(s->opaque));
			if (ret) {
				/* Not running here: the source may take the VM back. */
				rdm_set_error(s, "vm_start callback failed: %s", strerror(-ret));
				c->err = ret;
				rdm_send_error(s, c->err, s->stats.error_desc);
				return RDM_COMMIT_ABORTED;
			}
		}
		if (rdm_fault("dst-before-done"))
			cut(s, "dst-before-done");
		else
			send_seq(s, RDM_MSG_RP_COMPLETE_ACK, c->seq); /* lost: the source asks the VMM */
		return RDM_COMMIT_DONE;
	default:
		return RDM_COMMIT_UNKNOWN;
	}
}

static bool terminal(enum rdm_commit_state st)
{
	return st == RDM_COMMIT_DONE || st == RDM_COMMIT_ABORTED || st == RDM_COMMIT_UNKNOWN;
}

enum rdm_commit_state rdm_commit_run(struct rdm_commit *c)
{
	while (!terminal(c->st))
		c->st = c->st <= RDM_COMMIT_SRC_WAIT_DONE ? src_step(c) : dst_step(c);
	pthread_mutex_lock(&c->s->lock);
	c->s->in_commit = false;
	pthread_mutex_unlock(&c->s->lock);
	return c->st;
}
