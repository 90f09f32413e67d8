/* SPDX-License-Identifier: MIT */
/*
 * The progress thread: sleeps on the completion channel, then handles every
 * completion of every queue (rxe reports send and receive completions in any
 * order, so none is dropped or assumed). It runs on CPUs near the device when
 * hwloc knows them (rxe reports no locality: then anywhere).
 */
#include <errno.h>
#include <hwloc.h>
#include <hwloc/openfabrics-verbs.h>
#include <poll.h>

#include "transport/rdma/rdma_int.h"

static void bind_near_device(struct rdm_rdma *r)
{
	hwloc_topology_t topo;
	hwloc_bitmap_t set;

	if (hwloc_topology_init(&topo))
		return;
	set = hwloc_bitmap_alloc();
	if (set && !hwloc_topology_load(topo) &&
	    !hwloc_ibv_get_device_cpuset(topo, r->verbs->device, set) &&
	    !hwloc_bitmap_iszero(set) &&
	    !hwloc_bitmap_isequal(set, hwloc_topology_get_complete_cpuset(topo)))
		hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD);
	hwloc_bitmap_free(set);
	hwloc_topology_destroy(topo);
}

static int dispatch(struct rdm_rdma *r, struct ibv_cq *cq, struct rt_qp *q, struct ibv_wc *wc)
{
	bool ctrl = q == &r->ctrl;

	if (cq == q->scq && (wc->wr_id & RT_WR_READ))
		return rt_read_on_send(r, wc);
	if (cq == q->scq)
		return ctrl ? rt_ctrl_on_send(r, wc) : rt_data_on_send(r, q, wc);
	return ctrl ? rt_ctrl_on_recv(r, wc) : rt_data_on_recv(r, q, wc);
}

static void drain(struct rdm_rdma *r, struct ibv_cq *cq, struct rt_qp *q)
{
	struct ibv_wc wc[16];
	int n;

	while ((n = ibv_poll_cq(cq, 16, wc)) > 0) {
		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < n; i++)
			dispatch(r, cq, q, &wc[i]);
		pthread_mutex_unlock(&r->lock);
	}
	if (n < 0)
		rt_fail(r, -EIO, "polling a completion queue failed");
}

static void drain_all(struct rdm_rdma *r)
{
	drain(r, r->ctrl.rcq, &r->ctrl);
	drain(r, r->ctrl.scq, &r->ctrl);
	for (unsigned i = 0; i < r->ndata; i++) {
		drain(r, r->data[i].rcq, &r->data[i]);
		drain(r, r->data[i].scq, &r->data[i]);
	}
}

static void *progress_main(void *arg)
{
	struct rdm_rdma *r = arg;

	bind_near_device(r);
	for (;;) {
		struct pollfd pfd = {r->cch->fd, POLLIN, 0};
		struct ibv_cq *cq;
		void *ctx;

		pthread_mutex_lock(&r->lock);
		bool stop = r->stopping, hangup = r->hangup;
		pthread_mutex_unlock(&r->lock);
		if (stop)
			break;
		if (hangup) {
			/* Messages the peer sent before it hung up are delivered first. */
			drain_all(r);
			rt_fail(r, -ECONNRESET, "peer disconnected");
		}
		if (poll(&pfd, 1, hangup ? 20 : 100) <= 0)
			continue;
		while (ibv_get_cq_event(r->cch, &cq, &ctx) == 0) {
			ibv_ack_cq_events(cq, 1);
			/* Re-arm first, then drain: nothing slips between the two. */
			ibv_req_notify_cq(cq, 0);
			drain(r, cq, ctx);
		}
	}
	return NULL;
}

int rt_progress_start(struct rdm_rdma *r)
{
	int ret = -pthread_create(&r->progress, NULL, progress_main, r);

	r->progress_started = ret == 0;
	return ret;
}

void rt_progress_stop(struct rdm_rdma *r)
{
	if (r->progress_started)
		pthread_join(r->progress, NULL);
	r->progress_started = false;
}
