/* SPDX-License-Identifier: MIT */
/* The rdma transport's vtable, lifetime and shared helpers (see rdma_int.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport/rdma/rdma_int.h"

uint64_t rt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rt_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : rt_now_ms() + (uint64_t)timeout_ms;
}

void rt_slice(struct timespec *ts, int ms)
{
	if (ms > 100 || ms < 0)
		ms = 100;
	clock_gettime(CLOCK_MONOTONIC, ts); /* r->cond runs on the monotonic clock */
	ts->tv_nsec += (long)ms * 1000000;
	while (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* rdma-core speaks three dialects; this is where they become -errno. */
int rt_errno(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == -1)
		return errno ? -errno : -EIO;
	return rc > 0 ? -rc : rc;
}

int rt_fail(struct rdm_rdma *r, int err, const char *fmt, ...)
{
	va_list ap;

	/* This call's own text for its thread; the first failure's for everyone else. */
	va_start(ap, fmt);
	rdm_tp_vfail(err, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&r->lock);
	if (!r->error) {
		r->error = err ? err : -EIO;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", rdm_tp_errmsg());
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return err;
}

/*
 * A call that failed without text of its own returned the sticky error another
 * thread (progress, cm) recorded: give the caller that error's text.
 */
static int rt_ret(struct rdm_rdma *r, int ret)
{
	if (!ret || rdm_tp_errmsg()[0])
		return ret;
	pthread_mutex_lock(&r->lock);
	if (r->error)
		rdm_tp_fail(ret, "%s", r->errmsg);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

uint64_t rt_idle_gseq(struct rdm_rdma *r)
{
	uint64_t idle = r->gseq;

	for (unsigned i = 0; i < r->ndata; i++) {
		struct rt_qp *q = &r->data[i];
		uint64_t c;

		if (q->nbatch)
			c = q->ring[(q->posted + 1) % RT_RING].gseq - 1; /* before the first unposted */
		else if (q->posted == q->completed)
			continue;
		else
			c = q->done_gseq;
		if (c < idle)
			idle = c;
	}
	return idle;
}

struct rdm_rdma *rt_alloc(const struct rdm_tp_opts *o, bool source, unsigned ndata)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	struct rdm_rdma *r;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->data = calloc(ndata, sizeof(*r->data));
	if (!r->data)
		goto err_r;
	for (unsigned i = 0; i < ndata; i++) {
		r->data[i].ring = calloc(RT_RING, sizeof(struct rt_mark));
		if (!r->data[i].ring)
			goto err_data;
		r->data[i].index = i + 1;
	}
	r->base.ops = &rdm_rdma_ops;
	r->source = source;
	r->ndata = ndata;
	r->pin_all = o->pin_all;
	r->chunk = o->chunk_size ? o->chunk_size : (1u << 20);
	r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	r->secret = o->secret;
	r->secret_len = o->secret ? o->secret_len : 0;
	r->qtail = &r->qhead;
	/* rt_fail() may be called with the lock held or not. */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&r->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	/* Deadlines (rt_slice) must not jump with the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	return r;

err_data:
	for (unsigned i = 0; i < ndata; i++)
		free(r->data[i].ring);
	free(r->data);
err_r:
	free(r);
	return NULL;
}

/* Messages already handed to send() reach the peer before we hang up. */
static void flush_sends(struct rdm_rdma *r)
{
	uint64_t deadline = rt_now_ms() + 2000;

	pthread_mutex_lock(&r->lock);
	while (!r->error && r->progress_started && (r->done != r->fill || r->outq) &&
	       rt_now_ms() < deadline) {
		struct timespec ts;

		rt_slice(&ts, 20);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
}

void rt_free(struct rdm_rdma *r)
{
	if (!r)
		return;
	flush_sends(r);
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* The peer learns at once, instead of by timeout. */
	if (r->ctrl.id && r->ctrl.qp)
		rdma_disconnect(r->ctrl.id);
	for (unsigned i = 0; i < r->ndata; i++)
		if (r->data[i].id && r->data[i].qp)
			rdma_disconnect(r->data[i].id);
	rt_progress_stop(r);
	if (r->cm_started)
		pthread_join(r->cmthread, NULL);
	for (unsigned i = 0; i < r->ndata; i++)
		rt_destroy_qp(&r->data[i]);
	rt_destroy_qp(&r->ctrl);
	/* After the QPs: every key handed out dies here. */
	rdm_pin_destroy(r->pin);
	rt_ctrl_fini(r);
	if (r->cch)
		ibv_destroy_comp_channel(r->cch);
	if (r->pd)
		ibv_dealloc_pd(r->pd);
	if (r->ech)
		rdma_destroy_event_channel(r->ech);
	for (unsigned b = 0; r->remote && b < r->nblocks; b++)
		free(r->remote[b]);
	free(r->remote);
	free(r->nchunks);
	free(r->blocks);
	for (unsigned i = 0; i < r->ndata; i++)
		free(r->data[i].ring);
	free(r->data);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static int rt_connect(const struct rdm_addr *a, const struct rdm_tp_opts *o, struct rdm_tp **out,
		      char *err, size_t errlen)
{
	struct rdm_rdma *r;
	int ret;

	r = rt_alloc(o, true, o->channels ? o->channels : 1);
	if (!r)
		return -ENOMEM;
	ret = rt_connect_all(r, a, err, errlen);
	if (!ret)
		ret = rt_progress_start(r);
	if (!ret)
		ret = rt_start_cm_thread(r);
	if (ret) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-ret));
		rt_free(r);
		return ret;
	}
	*out = &r->base;
	return 0;
}

static int rt_set_blocks(struct rdm_tp *t, const struct rdm_tp_block *b, unsigned n)
{
	struct rdm_rdma *r = to_rdma(t);
	int ret;

	if (r->blocks)
		return -EALREADY;
	if (!n)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->blocks = calloc(n, sizeof(*b));
	if (r->blocks) {
		memcpy(r->blocks, b, n * sizeof(*b));
		r->nblocks = n;
	}
	pthread_mutex_unlock(&r->lock);
	if (!r->blocks)
		return -ENOMEM;
	ret = rt_keys_setup(r);
	if (ret && !rdm_tp_errmsg()[0] && !r->error)
		rt_fail(r, ret, "registration setup: %s", strerror(-ret));
	return rt_ret(r, ret);
}

static int rt_send(struct rdm_tp *t, const void *msg, size_t len)
{
	return rt_ret(to_rdma(t), rt_ctrl_send(to_rdma(t), msg, len));
}

static int rt_recv(struct rdm_tp *t, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	return rt_ret(to_rdma(t), rt_ctrl_recv(to_rdma(t), buf, cap, len, timeout_ms));
}

static int rt_write_op(struct rdm_tp *t, unsigned block, uint64_t off, uint64_t len)
{
	return rt_ret(to_rdma(t), rt_write(t, block, off, len));
}

static int rt_fence_op(struct rdm_tp *t, uint64_t seq)
{
	return rt_ret(to_rdma(t), rt_fence(t, seq));
}

static int rt_wait_fence_op(struct rdm_tp *t, uint64_t seq, int timeout_ms)
{
	return rt_ret(to_rdma(t), rt_wait_fence(t, seq, timeout_ms));
}

static void rt_shutdown(struct rdm_tp *t)
{
	rt_fail(to_rdma(t), -ECANCELED, "shut down");
}

static void rt_close(struct rdm_tp *t)
{
	rt_free(to_rdma(t));
}

const struct rdm_tp_ops rdm_rdma_ops = {
	.name = "rdma",
	.connect = rt_connect,
	.listen = rt_listen,
	.listener_port = rt_listener_port,
	.accept = rt_accept,
	.listener_shutdown = rt_listener_shutdown,
	.listener_close = rt_listener_close,
	.set_blocks = rt_set_blocks,
	.write = rt_write_op,
	.fence = rt_fence_op,
	.wait_fence = rt_wait_fence_op,
	.send = rt_send,
	.recv = rt_recv,
	.shutdown = rt_shutdown,
	.close = rt_close,
};
