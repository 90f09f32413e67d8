/* SPDX-License-Identifier: MIT */
/*
 * How a running migration ends from the outside: waiting for it (and joining
 * its thread), cancelling it, resolving a commit-unknown outcome, letting a
 * paused source continue, and taking the session for the next run.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "core/session.h"

void rdm_join_locked(struct rdmig_session *s)
{
	while (s->started && !s->joined) {
		if (s->joining) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		s->joining = true;
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		pthread_mutex_lock(&s->lock);
		s->joining = false;
		s->joined = true;
		pthread_cond_broadcast(&s->cond);
	}
}

static int wait_locked(struct rdmig_session *s, int timeout_ms, enum rdmig_status *final)
{
	bool timed_out = false;
	struct timespec dl;
	int ret = 0;

	if (!s->started) {
		*final = s->status;
		return -ENOTCONN;
	}
	if (timeout_ms >= 0)
		rdm_deadline_ts(&dl, (uint64_t)timeout_ms);
	for (;;) {
		if (s->destroying) {
			ret = -ECANCELED;
			break;
		}
		/* Paused: not over, but nothing moves until the VMM recovers it. */
		if (rdm_is_terminal(s->status) || s->status == RDMIG_STATUS_POSTCOPY_PAUSED)
			break;
		if (timed_out) {
			ret = -ETIMEDOUT;
			break;
		}
		if (timeout_ms < 0)
			pthread_cond_wait(&s->cond, &s->lock);
		else
			timed_out = pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT;
	}
	*final = s->status;
	if (!ret && rdm_is_terminal(s->status))
		rdm_join_locked(s);
	return ret;
}

int rdmig_wait(rdmig_session *s, int timeout_ms, enum rdmig_status *final)
{
	enum rdmig_status st;
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (rdm_on_session_thread(s)) {
		rdm_set_api_error(s, "rdmig_wait() on the session's own thread (from a callback) "
				     "would wait for itself");
		return rdm_api_leave(s, -EDEADLK);
	}
	pthread_mutex_lock(&s->lock);
	ret = wait_locked(s, timeout_ms, &st);
	pthread_mutex_unlock(&s->lock);
	if (final)
		*final = st;
	if (ret == -ENOTCONN)
		rdm_set_api_error(s, "no migration was started on this session");
	else if (ret == -ETIMEDOUT)
		rdm_set_api_error(s, "still %s after %d ms", rdmig_status_name(st), timeout_ms);
	else if (ret == -ECANCELED)
		rdm_set_api_error(s, "the session is being destroyed");
	return rdm_api_leave(s, ret);
}

/*
 * The one place a cancel cuts the source's transport. A cancelled source
 * normally notices within a pass and unwinds by itself, telling the peer; one
 * stalled in a send (the peer stopped reading) would sit out the whole peer
 * timeout. So the migration thread gets a grace period, and if it has not
 * ended by then the transport is shut down: the blocked call fails at once
 * and the peer sees the connection drop. Never past the commit point.
 */
#define RDM_CANCEL_GRACE_MS 500

static void cancel_interrupt(struct rdmig_session *s)
{
	struct timespec dl;

	pthread_mutex_lock(&s->lock);
	rdm_deadline_ts(&dl, RDM_CANCEL_GRACE_MS);
	while (!rdm_is_terminal(s->status) && !s->committed) {
		if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) != ETIMEDOUT)
			continue;
		if (s->tp && !rdm_is_terminal(s->status) && !s->committed)
			s->tp->ops->shutdown(s->tp);
		break;
	}
	pthread_mutex_unlock(&s->lock);
}

int rdm_cancel_session(struct rdmig_session *s)
{
	enum rdmig_status st;
	bool already;

	pthread_mutex_lock(&s->lock);
	st = s->status;
	if (!s->started || rdm_is_terminal(st)) {
		pthread_mutex_unlock(&s->lock);
		if (!s->started) {
			rdm_set_api_error(s, "no migration to cancel");
			return -ENOTCONN;
		}
		rdm_set_api_error(s, "the migration already ended (%s)", rdmig_status_name(st));
		return -EALREADY;
	}
	/* Past the commit point the VM may run over there: there is no going back. */
	if (s->committed) {
		pthread_mutex_unlock(&s->lock);
		rdm_set_api_error(s, "too late to cancel: the %s",
				  s->role == RDMIG_ROLE_SOURCE ? "source already sent go"
							       : "destination VM was started");
		return -EBUSY;
	}
	already = atomic_exchange(&s->cancel, true);
	pthread_mutex_unlock(&s->lock);
	if (already)
		return 0;
	/* The cancel is the cause of whatever fails from here on. */
	rdm_set_error(s, "migration cancelled");
	if (s->role == RDMIG_ROLE_SOURCE)
		rdm_set_status(s, RDMIG_STATUS_CANCELLING);
	/* Wake whatever the migration thread is blocked on. */
	pthread_mutex_lock(&s->lock);
	if (s->listener && s->ops->listener_shutdown)
		s->ops->listener_shutdown(s->listener);
	/*
	 * The source tells the peer before it goes; the destination just leaves,
	 * except while it waits for go: then the source must hear that it will
	 * not run, or it could not take its VM back.
	 */
	if (s->tp && s->role == RDMIG_ROLE_DEST && !s->in_commit)
		s->tp->ops->shutdown(s->tp);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* From a callback the thread is us: it sees the flag when we return. */
	if (s->role == RDMIG_ROLE_SOURCE && !rdm_on_session_thread(s))
		cancel_interrupt(s);
	return 0;
}

int rdmig_cancel(rdmig_session *s)
{
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	return rdm_api_leave(s, rdm_cancel_session(s));
}

int rdmig_resolve(rdmig_session *s, bool run_here)
{
	enum rdmig_status to;
	int ret = 0;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	if (s->status != RDMIG_STATUS_COMMIT_UNKNOWN || s->resolving) {
		pthread_mutex_unlock(&s->lock);
		rdm_set_api_error(s, "resolve is only valid in commit-unknown");
		return rdm_api_leave(s, -EINVAL);
	}
	s->resolving = true;
	pthread_mutex_unlock(&s->lock);
	if (run_here && s->cb.vm_start)
		ret = rdm_cb_ret(s->cb.vm_start(s->opaque));
	if (ret) {
		rdm_set_api_error(s, "vm_start callback failed: %s", strerror(-ret));
		pthread_mutex_lock(&s->lock);
		s->resolving = false;
		pthread_mutex_unlock(&s->lock);
		return rdm_api_leave(s, ret);
	}
	/* The status says where the VM runs now: "completed" means over there. */
	if (s->role == RDMIG_ROLE_SOURCE)
		to = run_here ? RDMIG_STATUS_FAILED : RDMIG_STATUS_COMPLETED;
	else
		to = run_here ? RDMIG_STATUS_COMPLETED : RDMIG_STATUS_FAILED;
	rdm_set_status(s, to);
	return rdm_api_leave(s, 0);
}

int rdmig_continue(rdmig_session *s)
{
	int ret;

	ret = rdm_api_enter_source(s, "continue");
	if (ret)
		return ret;
	if (rdm_get_status(s) != RDMIG_STATUS_PRE_SWITCHOVER) {
		rdm_set_api_error(s, "continue is only valid in pre-switchover");
		return rdm_api_leave(s, -EINVAL);
	}
	atomic_store(&s->go_on, true);
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rdm_api_leave(s, 0);
}

int rdmig_postcopy_start(rdmig_session *s)
{
	enum rdmig_status st;
	bool cap, ok;
	int ret;

	ret = rdm_api_enter_source(s, "postcopy-start");
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	cap = s->opts.caps[RDMIG_CAP_POSTCOPY_RAM];
	st = s->status;
	if (!cap) {
		pthread_mutex_unlock(&s->lock);
		rdm_set_api_error(s, "postcopy-start needs capability postcopy-ram");
		return rdm_api_leave(s, -EINVAL);
	}
	ok = s->started && (st == RDMIG_STATUS_SETUP || st == RDMIG_STATUS_ACTIVE);
	if (ok) {
		/* The migration thread looks at it after each pass and each chunk. */
		atomic_store(&s->pc_start, true);
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	if (!ok) {
		rdm_set_api_error(s, "postcopy-start is only valid in setup or active, not %s",
				  rdmig_status_name(st));
		return rdm_api_leave(s, -EINVAL);
	}
	return rdm_api_leave(s, 0);
}

/*
 * Lock held, s->starting set by the caller (so no other start or setter gets
 * in while the lock is dropped for the join). A session whose migration ended
 * cancelled or failed runs another, like QEMU's migrate after a cancel: the
 * old thread is joined and what that run left behind is cleared. Blocks,
 * callbacks, capabilities, parameters, secret, uuid and TLS stay.
 */
static void rearm_locked(struct rdmig_session *s)
{
	uint64_t ram_total = s->stats.ram_total;

	rdm_join_locked(s);
	s->started = false;
	s->joined = false;
	s->resolving = false;
	s->committed = false;
	s->in_commit = false;
	s->acked_seq = 0;
	s->ready_seq = 0;
	s->complete_acked = false;
	s->refused = false;
	s->rp_error = 0;
	s->t_start_ms = 0;
	s->t_stop_ms = 0;
	s->port = 0;
	atomic_store(&s->cancel, false);
	atomic_store(&s->go_on, false);
	atomic_store(&s->pc_start, false);
	memset(&s->pc, 0, sizeof(s->pc));
	s->pc_running = false;
	s->pc_paused = s->pc_recover = s->pc_resume = false;
	/* The fault thread takes no session lock: it can be joined under it. */
	rdm_pc_dst_release(s->pc_kept);
	s->pc_kept = NULL;
	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.ram_total = ram_total;
	s->stats.status = s->status;
	s->err[0] = '\0';
}

int rdm_session_claim(struct rdmig_session *s)
{
	const char *why = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->starting)
		why = "a migrate/incoming is already starting on this session";
	else if (!s->started || s->status == RDMIG_STATUS_CANCELLED ||
		 s->status == RDMIG_STATUS_FAILED)
		s->starting = true;
	else if (s->status == RDMIG_STATUS_COMPLETED)
		why = "this session's migration completed; create a new session for another";
	else if (s->status == RDMIG_STATUS_COMMIT_UNKNOWN)
		why = "the last migration's outcome is unknown: rdmig_resolve() it first";
	else
		why = "a migration is running on this session";
	if (!why && s->started)
		rearm_locked(s);
	pthread_mutex_unlock(&s->lock);
	if (why) {
		rdm_set_api_error(s, "%s", why);
		return -EBUSY;
	}
	return 0;
}
