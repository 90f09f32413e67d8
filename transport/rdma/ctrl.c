/* SPDX-License-Identifier: MIT */
/*
 * The control channel: whole frames as SEND_WITH_IMM into receives posted
 * ahead, with credits. Each immediate returns the receives its sender
 * re-posted since the last one; a side with nothing to say returns credits in
 * a zero-length message that lands in the RT_RESERVE extra receives.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/rdma/rdma_int.h"

#define RT_KQ_MAX 256u /* registration messages waiting for the keys thread */

struct rt_out {
	struct rt_out *next;
	size_t len;
	uint8_t data[];
};

static int post_recv(struct rdm_rdma *r, unsigned i)
{
	struct ibv_sge sge = {(uintptr_t)(r->rbuf + (size_t)i * RT_MAX_MSG), RT_MAX_MSG,
			      r->rmr->lkey};
	struct ibv_recv_wr wr = {.wr_id = RT_WR_RECV | i, .sg_list = &sge, .num_sge = 1};
	struct ibv_recv_wr *bad;

	return rt_errno(ibv_post_recv(r->ctrl.qp, &wr, &bad));
}

int rt_ctrl_init(struct rdm_rdma *r)
{
	size_t rlen = (size_t)(RT_CREDITS + RT_RESERVE) * RT_MAX_MSG;
	size_t slen = (size_t)RT_SLOTS * RT_MAX_MSG;
	int ret;

	r->rbuf = malloc(rlen);
	r->sbuf = malloc(slen);
	if (!r->rbuf || !r->sbuf)
		return -ENOMEM;
	r->rmr = ibv_reg_mr(r->pd, r->rbuf, rlen, IBV_ACCESS_LOCAL_WRITE);
	if (!r->rmr)
		return -errno;
	r->smr = ibv_reg_mr(r->pd, r->sbuf, slen, 0);
	if (!r->smr)
		return -errno;
	for (unsigned i = 0; i < RT_CREDITS + RT_RESERVE; i++) {
		ret = post_recv(r, i);
		if (ret)
			return ret;
	}
	r->credits = RT_CREDITS;
	return 0;
}

void rt_ctrl_fini(struct rdm_rdma *r)
{
	struct rt_msgq *m;

	while ((m = r->qhead)) {
		r->qhead = m->next;
		free(m);
	}
	while ((m = r->khead)) {
		r->khead = m->next;
		free(m);
	}
	while (r->outq) {
		struct rt_out *o = r->outq;

		r->outq = o->next;
		free(o);
	}
	if (r->rmr)
		ibv_dereg_mr(r->rmr);
	if (r->smr)
		ibv_dereg_mr(r->smr);
	free(r->rbuf);
	free(r->sbuf);
	r->rmr = r->smr = NULL;
	r->rbuf = r->sbuf = NULL;
}

static int post_slot(struct rdm_rdma *r, unsigned n)
{
	unsigned s = n % RT_SLOTS;
	struct ibv_sge sge = {(uintptr_t)(r->sbuf + (size_t)s * RT_MAX_MSG), r->slot_len[s],
			      r->smr->lkey};
	struct ibv_send_wr wr = {.wr_id = RT_WR_SLOT | s, .sg_list = &sge, .num_sge = 1,
				 .opcode = IBV_WR_SEND_WITH_IMM, .send_flags = IBV_SEND_SIGNALED};
	struct ibv_send_wr *bad;

	wr.imm_data = htonl(r->to_return);
	r->to_return = 0;
	return rt_errno(ibv_post_send(r->ctrl.qp, &wr, &bad));
}

static int post_credit(struct rdm_rdma *r)
{
	struct ibv_send_wr wr = {.wr_id = RT_WR_CREDIT, .num_sge = 0,
				 .opcode = IBV_WR_SEND_WITH_IMM, .send_flags = IBV_SEND_SIGNALED};
	struct ibv_send_wr *bad;

	wr.imm_data = htonl(r->to_return);
	r->to_return = 0;
	r->credit_msgs_out++;
	return rt_errno(ibv_post_send(r->ctrl.qp, &wr, &bad));
}

/* Lock held: queued internal messages into free slots, slots onto the wire. */
static int kick(struct rdm_rdma *r)
{
	int ret;

	while (r->outq && r->fill - r->done < RT_SLOTS) {
		struct rt_out *o = r->outq;
		unsigned s = r->fill % RT_SLOTS;

		memcpy(r->sbuf + (size_t)s * RT_MAX_MSG, o->data, o->len);
		r->slot_len[s] = (uint32_t)o->len;
		r->fill++;
		r->outq = o->next;
		free(o);
	}
	while (r->post != r->fill && r->credits) {
		ret = post_slot(r, r->post);
		if (ret)
			return rt_fail_locked(r, ret, "posting a control message: %s", strerror(-ret));
		r->post++;
		r->credits--;
	}
	/* Nothing to carry the credits back: send them alone, before the peer stalls. */
	if (r->to_return >= RT_CREDITS / 2 && r->post == r->fill &&
	    r->credit_msgs_out < RT_RESERVE / 2) {
		ret = post_credit(r);
		if (ret)
			return rt_fail_locked(r, ret, "returning credits: %s", strerror(-ret));
	}
	return 0;
}

int rt_ctrl_send(struct rdm_rdma *r, const void *msg, size_t len)
{
	uint64_t deadline = rt_now_ms() + (uint64_t)r->timeout_ms;
	int ret = 0;

	if (len > RT_MAX_MSG) {
		return rdm_tp_fail(-EMSGSIZE, "control message of %zu bytes (max %u)", len,
				   RT_MAX_MSG);
	}
	pthread_mutex_lock(&r->lock);
	while (!r->error && r->fill - r->done >= RT_SLOTS) {
		struct timespec ts;

		if (rt_now_ms() >= deadline) {
			ret = rt_fail_locked(r, -ETIMEDOUT, "no control send slot for %d ms (peer stalled)",
				      r->timeout_ms);
			break;
		}
		rt_slice(&ts, 100);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	if (r->error)
		ret = r->error;
	if (!ret) {
		unsigned s = r->fill % RT_SLOTS;

		memcpy(r->sbuf + (size_t)s * RT_MAX_MSG, msg, len);
		r->slot_len[s] = (uint32_t)len;
		r->fill++;
		ret = kick(r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Lock held: queue an internal message (the progress thread must not block). */
int rt_ctrl_send_msg(struct rdm_rdma *r, const struct rdm_msg *m)
{
	size_t need = rdm_msg_size(m), len;
	struct rt_out *o, **tail;
	int ret;

	if (!need || need > RT_MAX_MSG)
		return rt_fail_locked(r, -EINVAL, "cannot encode %s", rdm_msg_name((uint16_t)m->type));
	o = malloc(sizeof(*o) + need);
	if (!o)
		return rt_fail_locked(r, -ENOMEM, "no memory for a control message");
	ret = rdm_msg_encode(m, o->data, need, &len);
	if (ret) {
		free(o);
		return rt_fail_locked(r, ret, "encoding %s", rdm_msg_name((uint16_t)m->type));
	}
	o->len = len;
	o->next = NULL;
	for (tail = &r->outq; *tail; tail = &(*tail)->next)
		;
	*tail = o;
	return kick(r);
}

int rt_ctrl_on_send(struct rdm_rdma *r, const struct ibv_wc *wc)
{
	if (wc->status != IBV_WC_SUCCESS) {
		if (r->stopping)
			return 0;
		return rt_fail_locked(r, -EIO, "control send failed: %s", ibv_wc_status_str(wc->status));
	}
	if ((wc->wr_id & ~0xffffffull) == RT_WR_CREDIT)
		r->credit_msgs_out--;
	else
		r->done++; /* RC completes sends in order: the oldest slot is free */
	pthread_cond_broadcast(&r->cond);
	return kick(r);
}

/* Lock held: a whole frame for the caller, or for the keys thread. */
static int deliver(struct rdm_rdma *r, const uint8_t *p, size_t len)
{
	struct rt_msgq *q;
	uint16_t type;
	uint32_t plen;
	bool internal;
	int ret;

	ret = rdm_hdr_decode(p, len, &type, &plen);
	if (ret || plen != len - RDM_HDR_LEN)
		return rt_fail_locked(r, -EBADMSG, "malformed control frame (%zu bytes)", len);
	internal = type == RDM_MSG_RDMA_KEYS || type == RDM_MSG_RDMA_REG ||
		   type == RDM_MSG_RDMA_READY;
	if (internal && !r->blocks)
		return rt_fail_locked(r, -EPROTO, "%s before the block list", rdm_msg_name(type));
	/* The keys thread answers in turn; a peer cannot make it queue without bound. */
	if (internal && r->kqlen >= RT_KQ_MAX)
		return rt_fail_locked(r, -EPROTO, "more than %u registration messages unanswered",
				      RT_KQ_MAX);
	q = malloc(sizeof(*q) + len);
	if (!q)
		return rt_fail_locked(r, -ENOMEM, "no memory for a control message");
	q->next = NULL;
	q->len = len;
	memcpy(q->data, p, len);
	if (internal) {
		*r->ktail = q;
		r->ktail = &q->next;
		r->kqlen++;
	} else {
		*r->qtail = q;
		r->qtail = &q->next;
	}
	pthread_cond_broadcast(&r->cond);
	return 0;
}

struct rt_msgq *rt_ctrl_take_internal(struct rdm_rdma *r)
{
	struct rt_msgq *q = r->khead;

	if (!q)
		return NULL;
	r->khead = q->next;
	if (!r->khead)
		r->ktail = &r->khead;
	r->kqlen--;
	return q;
}

void rt_ctrl_flush(struct rdm_rdma *r, int ms)
{
	uint64_t deadline = rt_now_ms() + (uint64_t)ms;

	pthread_mutex_lock(&r->lock);
	while (!r->error && r->progress_started && (r->done != r->fill || r->outq) &&
	       rt_now_ms() < deadline) {
		struct timespec ts;

		rt_slice(&ts, 20);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
}

int rt_ctrl_on_recv(struct rdm_rdma *r, const struct ibv_wc *wc)
{
	unsigned i = (unsigned)(wc->wr_id & 0xffffff);
	int ret = 0;

	if (wc->status != IBV_WC_SUCCESS) {
		if (r->stopping)
			return 0;
		return rt_fail_locked(r, -EIO, "control receive failed: %s", ibv_wc_status_str(wc->status));
	}
	if (wc->wc_flags & IBV_WC_WITH_IMM)
		r->credits += ntohl(wc->imm_data);
	if (wc->byte_len)
		ret = deliver(r, r->rbuf + (size_t)i * RT_MAX_MSG, wc->byte_len);
	if (!ret)
		ret = post_recv(r, i);
	if (ret)
		return r->error ? r->error : rt_fail_locked(r, ret, "re-posting a receive");
	if (wc->byte_len)
		r->to_return++;
	return kick(r);
}

int rt_ctrl_recv(struct rdm_rdma *r, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	uint64_t deadline = rt_deadline(timeout_ms);
	struct rt_msgq *q;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	/* Messages that arrived before an error are still delivered, in order. */
	while (!r->qhead && !r->error) {
		struct timespec ts;
		uint64_t now = rt_now_ms();

		if (now >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		rt_slice(&ts, deadline - now > 100 ? 100 : (int)(deadline - now));
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	q = r->qhead;
	if (q && q->len > cap) {
		/* Kept for a call with a bigger buffer; the session goes on. */
		*len = q->len;
		ret = rdm_tp_fail(-EMSGSIZE, "recv: %zu-byte message exceeds the %zu-byte buffer",
				  q->len, cap);
	} else if (q) {
		r->qhead = q->next;
		if (!r->qhead)
			r->qtail = &r->qhead;
		memcpy(buf, q->data, q->len);
		*len = q->len;
		free(q);
		ret = 0;
	} else if (!ret) {
		ret = r->error;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}
