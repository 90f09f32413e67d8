/* SPDX-License-Identifier: MIT */
/* The rdma transport's vtable: each op calls into the rooms (see rdma_int.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errtext.h"
#include "transport/rdma/rdma_int.h"

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
			rdm_errtext(err, errlen, "%s", strerror(-ret));
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
	if (ret && !rdm_tp_errmsg()[0])
		rdm_tp_fail(ret, "registration setup: %s", strerror(-ret));
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

static int rt_set_placer_op(struct rdm_tp *t, rdm_tp_place_fn fn, void *opaque)
{
	return rt_ret(to_rdma(t), rt_set_placer(t, fn, opaque));
}

static int rt_expose_op(struct rdm_tp *t)
{
	return rt_ret(to_rdma(t), rt_expose(t));
}

static int rt_pull_op(struct rdm_tp *t, const struct rdm_tp_span *v, unsigned n, bool urgent,
		      int timeout_ms)
{
	return rt_ret(to_rdma(t), rt_pull(t, v, n, urgent, timeout_ms));
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
	.set_placer = rt_set_placer_op,
	.expose = rt_expose_op,
	.pull = rt_pull_op,
	.shutdown = rt_shutdown,
	.close = rt_close,
};
