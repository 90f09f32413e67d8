/* SPDX-License-Identifier: MIT */
/*
 * Session lifetime, status and messaging: the API calls both roles share
 * (waiting, cancelling and resolving are in lifecycle.c, configuration in
 * config.c, error text in errors.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/session.h"

static const char *const status_names[] = {
#define RDMIG_X_NAME(name, str) str,
	RDMIG_STATUS_LIST(RDMIG_X_NAME)
#undef RDMIG_X_NAME
};

const char *rdmig_status_name(enum rdmig_status st)
{
	if ((unsigned)st >= sizeof(status_names) / sizeof(status_names[0]))
		return "unknown";
	return status_names[st];
}

uint64_t rdm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rdm_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void rdm_deadline_ts(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

bool rdm_is_terminal(enum rdmig_status st)
{
	return st == RDMIG_STATUS_COMPLETED || st == RDMIG_STATUS_FAILED ||
	       st == RDMIG_STATUS_CANCELLED || st == RDMIG_STATUS_COMMIT_UNKNOWN;
}

/*
 * Every public call may come from any thread. A call enters the session
 * (rdm_api_enter) so destroy can wait for it to leave before freeing; once
 * destroy has begun, calls get -ECANCELED. The migration thread marks itself
 * (tls_self) so a callback calling rdmig_wait() gets -EDEADLK, not a hang.
 */
static _Thread_local const struct rdmig_session *tls_self;

int rdm_api_enter(struct rdmig_session *s, bool fresh)
{
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (s->destroying) {
		pthread_mutex_unlock(&s->lock);
		return -ECANCELED;
	}
	s->users++;
	pthread_mutex_unlock(&s->lock);
	if (fresh)
		rdm_api_error_reset(s);
	return 0;
}

int rdm_api_enter_source(struct rdmig_session *s, const char *what)
{
	int ret = rdm_api_enter(s, true);

	if (ret || s->role == RDMIG_ROLE_SOURCE)
		return ret;
	rdm_set_api_error(s, "%s is for a source session", what);
	return rdm_api_leave(s, -EINVAL);
}

int rdm_api_leave(struct rdmig_session *s, int ret)
{
	pthread_mutex_lock(&s->lock);
	if (--s->users == 0 && s->destroying)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

bool rdm_on_session_thread(const struct rdmig_session *s)
{
	return tls_self == s;
}

unsigned rdm_session_users(struct rdmig_session *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->users;
	pthread_mutex_unlock(&s->lock);
	return n;
}

int rdmig_session_create(enum rdmig_role role, const struct rdmig_callbacks *cb, void *opaque,
			 rdmig_session **out)
{
	struct rdmig_session *s;
	pthread_condattr_t ca;
	int ret;

	if (!out || (role != RDMIG_ROLE_SOURCE && role != RDMIG_ROLE_DEST))
		return -EINVAL;
	if (cb && cb->size > sizeof(*cb))
		return -EINVAL; /* built against a newer header than this library */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->role = role;
	if (cb)
		memcpy(&s->cb, cb, cb->size ? cb->size : sizeof(*cb));
	s->opaque = opaque;
	rdm_options_init(&s->opts, role);
	/* Every wait on cond has a deadline that must not jump with the wall clock. */
	ret = -pthread_condattr_init(&ca);
	if (ret)
		goto err_free;
	ret = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!ret)
		ret = -pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		goto err_free;
	pthread_mutex_init(&s->lock, NULL);
	s->status = RDMIG_STATUS_NONE;
	*out = s;
	return 0;

err_free:
	free(s);
	return ret;
}

static void *session_thread(void *arg)
{
	struct rdmig_session *s = arg;

	tls_self = s;
	return s->main(s);
}

int rdm_session_start(struct rdmig_session *s, void *(*main)(void *))
{
	int ret;

	pthread_mutex_lock(&s->lock);
	if (s->started || s->destroying) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	s->starting = false;
	s->started = true;
	s->main = main;
	s->err[0] = '\0';
	s->stats.error_desc[0] = '\0';
	/* A live parameter set between migrate()'s copy and now is not lost. */
	rdm_policy_set_live(&s->policy, s->opts.params[RDMIG_PARAM_DOWNTIME_LIMIT],
			    s->opts.params[RDMIG_PARAM_MAX_BANDWIDTH]);
	ret = -pthread_create(&s->thread, NULL, session_thread, s);
	if (ret)
		s->started = false;
	pthread_mutex_unlock(&s->lock);
	return ret;
}


void rdmig_session_destroy(rdmig_session *s)
{
	bool cancel;

	if (!s)
		return;
	/* From a callback it would wait for its own thread: refused (documented). */
	if (rdm_on_session_thread(s))
		return;
	pthread_mutex_lock(&s->lock);
	if (s->destroying) {
		pthread_mutex_unlock(&s->lock); /* another destroy frees it */
		return;
	}
	s->destroying = true;
	cancel = s->started && !rdm_is_terminal(s->status);
	pthread_cond_broadcast(&s->cond); /* waiters leave with -ECANCELED */
	pthread_mutex_unlock(&s->lock);
	if (cancel)
		rdm_cancel_session(s);
	rdm_pc_abandon(s); /* a paused postcopy cannot be cancelled: it gives up */
	pthread_mutex_lock(&s->lock);
	rdm_join_locked(s);
	while (s->users)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	rdm_pc_dst_free(s); /* before the blocks: it guards their memory */
	for (unsigned i = 0; i < s->nblocks; i++)
		free(s->blocks[i].dirty);
	free(s->blocks);
	explicit_bzero(s->secret, sizeof(s->secret));
	rdm_tls_free(s->tls);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void rdm_set_status(struct rdmig_session *s, enum rdmig_status st)
{
	enum rdmig_status from;

	pthread_mutex_lock(&s->lock);
	from = s->status;
	s->status = st;
	s->stats.status = st;
	if (rdm_is_terminal(st) && s->t_start_ms)
		s->stats.total_time_ms = rdm_now_ms() - s->t_start_ms;
	/* Success leaves no error: what failed on the way (a late hang-up) was no cause. */
	if (st == RDMIG_STATUS_COMPLETED && from != RDMIG_STATUS_COMMIT_UNKNOWN) {
		s->err[0] = '\0';
		s->stats.error_desc[0] = '\0';
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (from != st && s->cb.event && s->opts.caps[RDMIG_CAP_EVENTS])
		s->cb.event(s->opaque, from, st);
}

enum rdmig_status rdm_get_status(struct rdmig_session *s)
{
	enum rdmig_status st;

	pthread_mutex_lock(&s->lock);
	st = s->status;
	pthread_mutex_unlock(&s->lock);
	return st;
}

void rdm_cond_slice(struct rdmig_session *s, int ms)
{
	struct timespec ts;

	/* The condition runs on the monotonic clock (rdm_session_alloc). */
	rdm_deadline_ts(&ts, (uint64_t)ms);
	pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

bool rdm_cancelled(struct rdmig_session *s)
{
	return atomic_load(&s->cancel);
}

int rdm_check_abort(struct rdmig_session *s)
{
	int ret;

	if (rdm_cancelled(s))
		return -ECANCELED;
	pthread_mutex_lock(&s->lock);
	ret = s->rp_error;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/*
 * migrate()/incoming(): one at a time, the setup frozen while it starts, and
 * again once the last run ended cancelled or failed (lifecycle.c).
 */
static int start_role(struct rdmig_session *s, const char *uri, bool source)
{
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	ret = rdm_session_claim(s);
	if (ret)
		return rdm_api_leave(s, ret);
	ret = source ? rdm_source_migrate(s, uri) : rdm_dest_incoming(s, uri);
	pthread_mutex_lock(&s->lock);
	s->starting = false;
	pthread_mutex_unlock(&s->lock);
	return rdm_api_leave(s, ret);
}

int rdmig_migrate(rdmig_session *s, const char *uri)
{
	return start_role(s, uri, true);
}

int rdmig_incoming(rdmig_session *s, const char *uri)
{
	return start_role(s, uri, false);
}

/* sizeof(struct rdmig_stats) in 0.1 and 0.2: everything before the 0.3 fields. */
#define RDM_STATS_SIZE_0_1 offsetof(struct rdmig_stats, postcopy_requests)

int rdmig_query(rdmig_session *s, struct rdmig_stats *st)
{
	struct rdmig_stats now;
	size_t n;
	int ret;

	if (!s || !st)
		return -EINVAL;
	ret = rdm_api_enter(s, false);
	if (ret)
		return ret;
	/* The first layout is the smallest a caller can have been built with. */
	if (st->size < RDM_STATS_SIZE_0_1) {
		rdm_set_api_error(s, "query: stats size %zu unset or too small (RDMIG_STATS_INIT)",
				  st->size);
		return rdm_api_leave(s, -EINVAL);
	}
	n = st->size < sizeof(now) ? st->size : sizeof(now);
	pthread_mutex_lock(&s->lock);
	now = s->stats;
	if (s->t_start_ms && !rdm_is_terminal(s->status))
		now.total_time_ms = rdm_now_ms() - s->t_start_ms;
	pthread_mutex_unlock(&s->lock);
	now.size = n;
	memcpy(st, &now, n);
	return rdm_api_leave(s, 0);
}

int rdmig_incoming_port(rdmig_session *s, uint16_t *port)
{
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (!port || s->role != RDMIG_ROLE_DEST) {
		rdm_set_api_error(s, "incoming_port needs a destination session and a port pointer");
		return rdm_api_leave(s, -EINVAL);
	}
	pthread_mutex_lock(&s->lock);
	*port = s->started ? s->port : 0;
	pthread_mutex_unlock(&s->lock);
	if (!*port) {
		rdm_set_api_error(s, "not listening: call rdmig_incoming() first");
		return rdm_api_leave(s, -ENOTCONN);
	}
	return rdm_api_leave(s, 0);
}

int rdm_encode_send(struct rdmig_session *s, const struct rdm_msg *m, bool wipe)
{
	uint8_t small[RDM_HDR_LEN + 6 + RDM_ERRMSG_MAX];
	size_t need = rdm_msg_size(m), len = 0;
	uint8_t *buf = small;
	int ret;

	if (!need)
		return -EINVAL;
	/* A received map's piece or a device-state chunk: a buffer of its own size. */
	if (need > sizeof(small)) {
		buf = malloc(need);
		if (!buf)
			return -ENOMEM;
	}
	ret = rdm_msg_encode(m, buf, need, &len);
	if (!ret)
		ret = rdm_tp_send(s->tp, buf, len);
	if (wipe)
		explicit_bzero(buf, need > sizeof(small) ? need : sizeof(small));
	if (buf != small)
		free(buf);
	return ret;
}

int rdm_send_msg(struct rdmig_session *s, const struct rdm_msg *m)
{
	int ret = rdm_encode_send(s, m, false);

	if (ret)
		rdm_set_error(s, "sending %s: %s", rdm_msg_name((uint16_t)m->type),
			      rdm_tp_why(ret));
	return ret;
}

int rdm_recv_msg(struct rdmig_session *s, void *buf, size_t cap, struct rdm_msg *m,
		 int timeout_ms)
{
	size_t len;
	int ret;

	ret = rdm_tp_recv(s->tp, buf, cap, &len, timeout_ms);
	if (ret)
		return ret;
	ret = rdm_msg_decode(buf, len, m);
	if (ret) {
		uint16_t type = 0;
		uint32_t plen = 0;

		rdm_hdr_decode(buf, len, &type, &plen);
		rdm_set_error(s, "bad message from peer (type %u, %zu bytes): %s", type, len,
			      strerror(-ret));
	}
	return ret;
}

int rdm_send_error(struct rdmig_session *s, int code, const char *text)
{
	struct rdm_msg m = {.type = RDM_MSG_ERROR};

	m.u.error.code = code;
	snprintf(m.u.error.text, sizeof(m.u.error.text), "%s", text);
	return rdm_send_msg(s, &m);
}

int rdm_session_begin(struct rdmig_session *s, enum rdmig_role want, const char *uri)
{
	char err[RDM_TP_ERRLEN] = "";
	int ret;

	if (!s || !uri)
		return -EINVAL;
	if (s->role != want) {
		rdm_set_api_error(s, "%s needs a %s session",
				  want == RDMIG_ROLE_SOURCE ? "migrate" : "incoming",
				  want == RDMIG_ROLE_SOURCE ? "source" : "destination");
		return -EINVAL;
	}
	if (!s->nblocks) {
		rdm_set_api_error(s, "no RAM blocks added");
		return -EINVAL;
	}
	ret = rdm_options_check(&s->opts, err, sizeof(err));
	if (ret) {
		rdm_set_api_error(s, "%s", err);
		return ret;
	}
	if (want == RDMIG_ROLE_SOURCE && s->opts.caps[RDMIG_CAP_PREFAULT]) {
		rdm_set_api_error(s, "prefault is a destination capability");
		return -EINVAL;
	}
	/* A destination has nothing to release: saying yes would be a lie. */
	if (want == RDMIG_ROLE_DEST && s->opts.caps[RDMIG_CAP_RELEASE_RAM]) {
		rdm_set_api_error(s, "release-ram is a source capability");
		return -EINVAL;
	}
	ret = rdm_addr_parse(uri, &s->addr, err, sizeof(err));
	if (ret) {
		rdm_set_api_error(s, "bad URI '%s': %s", uri, err);
		return ret;
	}
	if (s->tls && s->addr.scheme != RDM_SCHEME_TCP) {
		rdm_set_api_error(s, "TLS is set, but '%s' is not tcp: the rdma data path cannot "
				     "be encrypted (the NIC writes guest memory directly); use a "
				     "tcp: URI or turn TLS off",
				  uri);
		return -ENOTSUP;
	}
	s->ops = rdm_tp_lookup(s->addr.scheme);
	if (!s->ops) {
		rdm_set_api_error(s, "transport for '%s' is not available in this build", uri);
		return -EPROTONOSUPPORT;
	}
	return rdm_pc_check(s);
}

void rdm_session_tp_opts(const struct rdmig_session *s, struct rdm_tp_opts *o)
{
	*o = (struct rdm_tp_opts){
		.channels = (unsigned)s->opts.params[RDMIG_PARAM_CHANNELS],
		.chunk_size = s->opts.params[RDMIG_PARAM_CHUNK_SIZE],
		.pin_all = s->opts.caps[RDMIG_CAP_RDMA_PIN_ALL],
		.timeout_ms = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT],
		.secret = s->secret_len ? s->secret : NULL,
		.secret_len = s->secret_len,
		/* tcp: requested pages ride a socket of their own (QEMU's preempt channel). */
		.urgent_channel = s->opts.caps[RDMIG_CAP_POSTCOPY_RAM],
	};
	o->tls = s->tls;
}

void rdm_session_drop_tp(struct rdmig_session *s)
{
	struct rdm_tp *tp;

	pthread_mutex_lock(&s->lock);
	tp = s->tp;
	s->tp = NULL;
	pthread_mutex_unlock(&s->lock);
	if (tp)
		tp->ops->close(tp);
}

int rdm_session_set_blocks(struct rdmig_session *s)
{
	struct rdm_tp_block *tb;
	int ret;

	tb = calloc(s->nblocks, sizeof(*tb));
	if (!tb)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nblocks; i++)
		tb[i] = (struct rdm_tp_block){s->blocks[i].name, s->blocks[i].host,
					      s->blocks[i].len, s->blocks[i].page_size};
	ret = rdm_tp_set_blocks(s->tp, tb, s->nblocks);
	free(tb);
	return ret;
}
