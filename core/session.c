/* SPDX-License-Identifier: MIT */
/* Session lifetime, configuration, status and the API calls both roles share. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bitmap.h"
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

static bool is_terminal(enum rdmig_status st)
{
	return st == RDMIG_STATUS_COMPLETED || st == RDMIG_STATUS_FAILED ||
	       st == RDMIG_STATUS_CANCELLED;
}

int rdmig_session_create(enum rdmig_role role, const struct rdmig_callbacks *cb, void *opaque,
			 rdmig_session **out)
{
	struct rdmig_session *s;

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
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->status = RDMIG_STATUS_NONE;
	*out = s;
	return 0;
}

static void join_thread(struct rdmig_session *s)
{
	if (s->started && !s->joined) {
		pthread_join(s->thread, NULL);
		s->joined = true;
	}
}

void rdmig_session_destroy(rdmig_session *s)
{
	if (!s)
		return;
	if (s->started && !is_terminal(rdm_get_status(s)))
		rdmig_cancel(s);
	join_thread(s);
	for (unsigned i = 0; i < s->nblocks; i++)
		free(s->blocks[i].dirty);
	free(s->blocks);
	rdm_tls_free(s->tls);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void rdm_set_api_error(struct rdmig_session *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->lock);
}

void rdm_set_error(struct rdmig_session *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	/* The first error is the cause; later ones are consequences. */
	if (!s->stats.error_desc[0]) {
		va_start(ap, fmt);
		vsnprintf(s->stats.error_desc, sizeof(s->stats.error_desc), fmt, ap);
		va_end(ap);
		snprintf(s->err, sizeof(s->err), "%s", s->stats.error_desc);
	}
	pthread_mutex_unlock(&s->lock);
}

const char *rdmig_last_error(rdmig_session *s)
{
	return s ? s->err : "no session";
}

void rdm_set_status(struct rdmig_session *s, enum rdmig_status st)
{
	enum rdmig_status from;

	pthread_mutex_lock(&s->lock);
	from = s->status;
	s->status = st;
	s->stats.status = st;
	if (is_terminal(st) && s->t_start_ms)
		s->stats.total_time_ms = rdm_now_ms() - s->t_start_ms;
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

int rdmig_add_block(rdmig_session *s, const char *name, void *host, uint64_t length,
		    uint32_t page_size)
{
	struct rdm_block *b, *nb;
	size_t nlen;

	if (!s)
		return -EINVAL;
	if (s->started) {
		rdm_set_api_error(s, "blocks must be added before migrate/incoming");
		return -EBUSY;
	}
	nlen = name ? strlen(name) : 0;
	if (nlen == 0 || nlen > RDM_NAME_MAX) {
		rdm_set_api_error(s, "block name must be 1..%u bytes", RDM_NAME_MAX);
		return -EINVAL;
	}
	if (!host || page_size < 512 || (page_size & (page_size - 1)) || length == 0 ||
	    length % page_size) {
		rdm_set_api_error(s,
				  "block %s: need a host pointer, a power-of-two page size >= 512 "
				  "and a non-zero length that is a multiple of it",
				  name);
		return -EINVAL;
	}
	if (s->nblocks >= RDM_MAX_BLOCKS) {
		rdm_set_api_error(s, "too many blocks (at most %u)", RDM_MAX_BLOCKS);
		return -E2BIG;
	}
	for (unsigned i = 0; i < s->nblocks; i++) {
		if (!strcmp(s->blocks[i].name, name)) {
			rdm_set_api_error(s, "block %s added twice", name);
			return -EEXIST;
		}
	}
	nb = realloc(s->blocks, (s->nblocks + 1) * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	s->blocks = nb;
	b = &nb[s->nblocks];
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, nlen + 1);
	b->host = host;
	b->len = length;
	b->page_size = page_size;
	b->npages = length / page_size;
	if (s->role == RDMIG_ROLE_SOURCE) {
		b->dirty = calloc(rdm_bitmap_words(b->npages), sizeof(uint64_t));
		if (!b->dirty)
			return -ENOMEM;
	}
	s->nblocks++;
	s->stats.ram_total += length;
	return 0;
}

int rdmig_set_capability(rdmig_session *s, enum rdmig_cap cap, bool on)
{
	char err[RDM_ERRLEN] = "";
	int ret;

	if (!s)
		return -EINVAL;
	if (s->started && !is_terminal(rdm_get_status(s))) {
		rdm_set_api_error(s, "a migration is in progress");
		return -EBUSY;
	}
	ret = rdm_options_set_cap(&s->opts, cap, on, err, sizeof(err));
	if (ret)
		rdm_set_api_error(s, "%s", err);
	return ret;
}

int rdmig_get_capability(const rdmig_session *s, enum rdmig_cap cap, bool *on)
{
	if (!s || !on || (unsigned)cap >= RDMIG_CAP__COUNT)
		return -EINVAL;
	*on = s->opts.caps[cap];
	return 0;
}

int rdmig_set_parameter(rdmig_session *s, enum rdmig_param p, uint64_t value)
{
	char err[RDM_ERRLEN] = "";
	int ret;

	if (!s)
		return -EINVAL;
	ret = rdm_options_set_param(&s->opts, p, value, err, sizeof(err));
	if (ret)
		rdm_set_api_error(s, "%s", err);
	return ret;
}

int rdmig_get_parameter(const rdmig_session *s, enum rdmig_param p, uint64_t *value)
{
	if (!s || !value || (unsigned)p >= RDMIG_PARAM__COUNT)
		return -EINVAL;
	*value = s->opts.params[p];
	return 0;
}

int rdmig_query(rdmig_session *s, struct rdmig_stats *st)
{
	if (!s || !st)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	*st = s->stats;
	if (s->t_start_ms && !is_terminal(s->status))
		st->total_time_ms = rdm_now_ms() - s->t_start_ms;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int rdmig_wait(rdmig_session *s, int timeout_ms, enum rdmig_status *final)
{
	struct timespec dl;
	int ret = 0;

	if (!s)
		return -EINVAL;
	if (!s->started)
		return -ENOTCONN;
	clock_gettime(CLOCK_REALTIME, &dl);
	if (timeout_ms >= 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&s->lock);
	while (!is_terminal(s->status) && ret == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->cond, &s->lock);
		else if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT)
			ret = -ETIMEDOUT;
	}
	if (final)
		*final = s->status;
	pthread_mutex_unlock(&s->lock);
	if (ret == 0)
		join_thread(s);
	return ret;
}

int rdmig_cancel(rdmig_session *s)
{
	enum rdmig_status st;

	if (!s)
		return -EINVAL;
	if (!s->started)
		return -ENOTCONN;
	st = rdm_get_status(s);
	if (is_terminal(st))
		return -EALREADY;
	if (atomic_exchange(&s->cancel, true))
		return 0;
	if (s->role == RDMIG_ROLE_SOURCE)
		rdm_set_status(s, RDMIG_STATUS_CANCELLING);
	/* Wake whatever the migration thread is blocked on. */
	pthread_mutex_lock(&s->lock);
	if (s->listener && s->ops->listener_shutdown)
		s->ops->listener_shutdown(s->listener);
	/* The source tells the peer before it goes; the destination just leaves. */
	if (s->tp && s->role == RDMIG_ROLE_DEST)
		s->tp->ops->shutdown(s->tp);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int rdmig_continue(rdmig_session *s)
{
	if (!s || s->role != RDMIG_ROLE_SOURCE)
		return -EINVAL;
	if (rdm_get_status(s) != RDMIG_STATUS_PRE_SWITCHOVER) {
		rdm_set_api_error(s, "continue is only valid in pre-switchover");
		return -EINVAL;
	}
	atomic_store(&s->go_on, true);
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int rdmig_incoming_port(rdmig_session *s, uint16_t *port)
{
	if (!s || !port || s->role != RDMIG_ROLE_DEST)
		return -EINVAL;
	if (!s->port)
		return -ENOTCONN;
	*port = s->port;
	return 0;
}

int rdm_send_msg(struct rdmig_session *s, const struct rdm_msg *m)
{
	uint8_t small[512];
	uint8_t *buf = small;
	size_t need = rdm_msg_size(m), len;
	int ret;

	if (!need)
		return -EINVAL;
	if (need > sizeof(small)) {
		buf = malloc(need);
		if (!buf)
			return -ENOMEM;
	}
	ret = rdm_msg_encode(m, buf, need, &len);
	if (!ret)
		ret = rdm_tp_send(s->tp, buf, len);
	if (ret)
		rdm_set_error(s, "sending %s: %s", rdm_msg_name((uint16_t)m->type),
			      s->tp->err[0] ? s->tp->err : strerror(-ret));
	if (buf != small)
		free(buf);
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
	if (s->started) {
		rdm_set_api_error(s, "this session was already used; create a new one");
		return -EBUSY;
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
	return 0;
}

void rdm_session_tp_opts(const struct rdmig_session *s, struct rdm_tp_opts *o)
{
	*o = (struct rdm_tp_opts){
		.channels = (unsigned)s->opts.params[RDMIG_PARAM_CHANNELS],
		.chunk_size = s->opts.params[RDMIG_PARAM_CHUNK_SIZE],
		.pin_all = s->opts.caps[RDMIG_CAP_RDMA_PIN_ALL],
		.timeout_ms = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT],
	};
	o->tls = s->tls;
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
	ret = s->tp->ops->set_blocks(s->tp, tb, s->nblocks);
	free(tb);
	return ret;
}
