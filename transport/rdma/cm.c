/* SPDX-License-Identifier: MIT */
/*
 * Connection management: rdma_cm events, queue pairs, the source's connect
 * and the CM thread that watches an established session. The connect private
 * data is only a CHANNEL frame (magic, version, index, count, flags, token:
 * 28 bytes, small enough for IB/RoCE) and, with a secret, a CHAN_PROOF frame
 * (24 more: 52 of the 56 bytes a REQ carries) proving the QP belongs to the
 * session; everything else is negotiated in control messages. Index 0 is the
 * control QP, 1..count-1 the data QPs. The listener is in listen.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "control/auth.h"
#include "common/errtext.h"
#include "transport/rdma/rdma_int.h"


int rt_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int rt_next_event(struct rdma_event_channel *ech, int timeout_ms, struct rdma_cm_event **ev)
{
	uint64_t deadline = rt_deadline(timeout_ms);

	for (;;) {
		struct pollfd pfd = {ech->fd, POLLIN, 0};
		uint64_t now = rt_now_ms();
		/* In 100 ms slices, so that a deadline of "no limit" never overflows. */
		int left = now >= deadline ? 0 : deadline - now > 100 ? 100 : (int)(deadline - now);

		if (rdma_get_cm_event(ech, ev) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		if (!left)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return -errno;
	}
}

/* Wait for `want` on id; any other outcome is an error with a reason. */
static int wait_event(struct rdm_rdma *r, struct rdma_cm_id *id, enum rdma_cm_event_type want,
		      char *err, size_t errlen)
{
	struct rdma_cm_event *ev;
	int ret;

	ret = rt_next_event(r->ech, r->timeout_ms, &ev);
	if (ret) {
		rdm_errtext(err, errlen, "waiting for %s: %s", rdma_event_str(want), strerror(-ret));
		return ret;
	}
	if (ev->id == id && ev->event == want) {
		rdma_ack_cm_event(ev);
		return 0;
	}
	switch (ev->event) {
	case RDMA_CM_EVENT_REJECTED:
		rdm_errtext(err, errlen, "destination rejected the connection (status %d%s%.*s)",
			 ev->status, ev->param.conn.private_data_len ? ": " : "",
			 ev->param.conn.private_data_len ? (int)ev->param.conn.private_data_len : 0,
			 ev->param.conn.private_data_len ? (const char *)ev->param.conn.private_data
							 : "");
		ret = -ECONNREFUSED;
		break;
	case RDMA_CM_EVENT_UNREACHABLE:
		rdm_errtext(err, errlen, "destination unreachable (status %d)", ev->status);
		ret = -EHOSTUNREACH;
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
		rdm_errtext(err, errlen, "no RDMA device for that address (status %d)", ev->status);
		ret = -EADDRNOTAVAIL;
		break;
	default:
		rdm_errtext(err, errlen, "%s while waiting for %s (status %d)",
			 rdma_event_str(ev->event), rdma_event_str(want), ev->status);
		ret = -ECONNABORTED;
	}
	rdma_ack_cm_event(ev);
	return ret;
}

static int ensure_device(struct rdm_rdma *r, struct rdma_cm_id *id)
{
	if (r->verbs) {
		/* Every QP of a session must share the PD and completion channel. */
		return id->verbs == r->verbs ? 0 : -EXDEV;
	}
	r->verbs = id->verbs;
	r->pd = ibv_alloc_pd(r->verbs);
	if (!r->pd)
		return -errno;
	r->cch = ibv_create_comp_channel(r->verbs);
	if (!r->cch)
		return -errno;
	return rt_set_nonblock(r->cch->fd);
}

int rt_setup_qp(struct rdm_rdma *r, struct rt_qp *q, struct rdma_cm_id *id, bool data)
{
	struct ibv_qp_init_attr qa = {0};
	/* The control QP also carries postcopy's urgent READs (read.c). */
	unsigned sdepth = data ? RT_SQ_DEPTH + 16 : RT_SLOTS + RT_RESERVE + 4 + 2 * RT_STAGE_URGENT;
	unsigned rdepth = data ? RT_FENCE_RECVS : RT_CREDITS + RT_RESERVE;
	int ret;

	ret = ensure_device(r, id);
	if (ret)
		return ret;
	q->id = id;
	q->scq = ibv_create_cq(r->verbs, (int)sdepth, q, r->cch, 0);
	if (!q->scq)
		return -errno;
	q->rcq = ibv_create_cq(r->verbs, (int)rdepth, q, r->cch, 0);
	if (!q->rcq)
		return -errno;
	if (ibv_req_notify_cq(q->scq, 0) || ibv_req_notify_cq(q->rcq, 0))
		return -EIO;
	qa.send_cq = q->scq;
	qa.recv_cq = q->rcq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = sdepth;
	qa.cap.max_recv_wr = rdepth;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, r->pd, &qa))
		return -errno;
	q->qp = id->qp;
	return 0;
}

void rt_rd_depth(struct rdm_rdma *r, uint8_t *initiator, uint8_t *responder)
{
	struct ibv_device_attr da;
	int in = 1, out = 1;

	/* Postcopy's READs: several in flight per QP, as many as the device takes. */
	if (r->verbs && !ibv_query_device(r->verbs, &da)) {
		in = da.max_qp_init_rd_atom < (int)RT_RD_DEPTH ? da.max_qp_init_rd_atom : (int)RT_RD_DEPTH;
		out = da.max_qp_rd_atom < (int)RT_RD_DEPTH ? da.max_qp_rd_atom : (int)RT_RD_DEPTH;
	}
	*initiator = (uint8_t)(in > 0 ? in : 1);
	*responder = (uint8_t)(out > 0 ? out : 1);
}

void rt_destroy_qp(struct rt_qp *q)
{
	if (q->qp)
		rdma_destroy_qp(q->id);
	q->qp = NULL;
	if (q->scq)
		ibv_destroy_cq(q->scq);
	if (q->rcq)
		ibv_destroy_cq(q->rcq);
	q->scq = q->rcq = NULL;
	if (q->id)
		rdma_destroy_id(q->id);
	q->id = NULL;
}

static int hello(const struct rdm_rdma *r, unsigned index, uint8_t *buf, size_t *len)
{
	struct rdm_msg m = {.type = RDM_MSG_CHANNEL};
	int ret;

	m.u.channel = (struct rdm_channel){RDM_WIRE_MAGIC, RDM_WIRE_VERSION, (uint16_t)index,
					   (uint16_t)(r->ndata + 1),
					   (uint16_t)((r->pin_all ? RT_FLAG_PIN_ALL : 0) |
						      (r->secret ? RT_FLAG_PROOF : 0) |
						      (__builtin_ctzll(r->chunk) << RT_FLAG_CHUNK_SHIFT)),
					   r->token};
	ret = rdm_msg_encode(&m, buf, 64, len);
	if (!ret && r->secret) {
		ret = rdm_auth_chan_proof_encode(buf + *len, r->secret, r->secret_len, &m.u.channel);
		*len += RDM_CHAN_PROOF_FRAME;
	}
	return ret;
}

static int connect_one(struct rdm_rdma *r, struct rt_qp *q, unsigned index,
		       const struct rdm_addr *a, char *err, size_t errlen)
{
	struct rdma_conn_param cp = {0};
	struct rdma_cm_id *id;
	uint8_t pdata[RT_HELLO_LEN + RDM_CHAN_PROOF_FRAME + 12];
	size_t plen = 0;
	int ret;

	if (rdma_create_id(r->ech, &id, r, RDMA_PS_TCP)) {
		ret = -errno;
		rdm_errtext(err, errlen, "rdma_create_id: %s", strerror(-ret));
		return ret;
	}
	q->id = id;
	q->index = index;
	if (rdma_resolve_addr(id, NULL, (struct sockaddr *)&a->ss, r->timeout_ms)) {
		ret = -errno;
		rdm_errtext(err, errlen, "resolving %s: %s", a->host, strerror(-ret));
		return ret;
	}
	ret = wait_event(r, id, RDMA_CM_EVENT_ADDR_RESOLVED, err, errlen);
	if (ret)
		return ret;
	if (rdma_resolve_route(id, r->timeout_ms)) {
		ret = -errno;
		rdm_errtext(err, errlen, "resolving the route to %s: %s", a->host, strerror(-ret));
		return ret;
	}
	ret = wait_event(r, id, RDMA_CM_EVENT_ROUTE_RESOLVED, err, errlen);
	if (ret)
		return ret;
	ret = rt_setup_qp(r, q, id, index > 0);
	if (ret) {
		rdm_errtext(err, errlen, "creating queue pair %u: %s", index, strerror(-ret));
		return ret;
	}
	if (index == 0) {
		ret = rt_ctrl_init(r); /* receives must be posted before the peer can send */
		if (ret) {
			rdm_errtext(err, errlen, "control buffers: %s", strerror(-ret));
			return ret;
		}
	}
	ret = hello(r, index, pdata, &plen);
	if (ret) {
		rdm_errtext(err, errlen, "channel hello: %s", strerror(-ret));
		return ret;
	}
	cp.private_data = pdata;
	cp.private_data_len = (uint8_t)plen;
	rt_rd_depth(r, &cp.initiator_depth, &cp.responder_resources);
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	if (rdma_connect(id, &cp)) {
		ret = -errno;
		rdm_errtext(err, errlen, "rdma_connect: %s", strerror(-ret));
		return ret;
	}
	return wait_event(r, id, RDMA_CM_EVENT_ESTABLISHED, err, errlen);
}

int rt_connect_all(struct rdm_rdma *r, const struct rdm_addr *a, char *err, size_t errlen)
{
	int ret;

	if (getrandom(&r->token, sizeof(r->token), 0) != sizeof(r->token))
		r->token = rt_now_ms() ^ (uint64_t)getpid() << 32;
	r->base.token = r->token;
	r->ech = rdma_create_event_channel();
	if (!r->ech) {
		ret = -errno;
		rdm_errtext(err, errlen, "rdma_create_event_channel: %s (is an RDMA device present?)",
			 strerror(-ret));
		return ret;
	}
	ret = rt_set_nonblock(r->ech->fd);
	if (ret)
		return ret;
	ret = connect_one(r, &r->ctrl, 0, a, err, errlen);
	if (ret)
		return ret;
	for (unsigned i = 0; i < r->ndata; i++) {
		ret = connect_one(r, &r->data[i], i + 1, a, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

/* After setup, CM events mean the connection is ending. */
static void *cm_main(void *arg)
{
	struct rdm_rdma *r = arg;
	struct rdma_cm_event *ev;

	for (;;) {
		pthread_mutex_lock(&r->lock);
		bool stop = r->stopping;
		pthread_mutex_unlock(&r->lock);
		if (stop)
			break;
		if (rt_next_event(r->ech, 100, &ev))
			continue;
		switch (ev->event) {
		case RDMA_CM_EVENT_DISCONNECTED:
			/* The progress thread fails us once it has delivered what came first. */
			pthread_mutex_lock(&r->lock);
			r->hangup = true;
			pthread_mutex_unlock(&r->lock);
			break;
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			rt_fail(r, -ENODEV, "RDMA device removed");
			break;
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
			break;
		default:
			rt_fail(r, -ECONNABORTED, "unexpected %s", rdma_event_str(ev->event));
		}
		rdma_ack_cm_event(ev);
	}
	return NULL;
}

int rt_start_cm_thread(struct rdm_rdma *r)
{
	int ret = -pthread_create(&r->cmthread, NULL, cm_main, r);

	r->cm_started = ret == 0;
	return ret;
}

