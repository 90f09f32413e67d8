/* SPDX-License-Identifier: MIT */
/* One rdma session's allocation and teardown (see rdma_int.h). */
#include <stdlib.h>
#include <time.h>

#include "transport/rdma/rdma_int.h"

struct rdm_rdma *rt_alloc(const struct rdm_tp_opts *o, bool source, unsigned ndata)
{
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
	r->ktail = &r->khead;
	pthread_mutex_init(&r->lock, NULL);
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

void rt_free(struct rdm_rdma *r)
{
	if (!r)
		return;
	/* Messages already handed to send() reach the peer before we hang up. */
	rt_ctrl_flush(r, 2000);
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
	rt_keys_stop(r);
	for (unsigned i = 0; i < r->ndata; i++)
		rt_destroy_qp(&r->data[i]);
	rt_destroy_qp(&r->ctrl);
	/* After the QPs: every key handed out dies here. */
	rdm_pin_destroy(r->pin);
	rt_read_fini(r);
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
