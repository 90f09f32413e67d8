/* SPDX-License-Identifier: MIT */
/*
 * The data path: WRITEs of pages and per-queue fences (see rdma_int.h).
 * The source's writer builds batches without the lock; posting, completion
 * counts and fence sequence numbers are shared with the progress thread and
 * live under r->lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/fault.h"
#include "transport/rdma/rdma_int.h"

/* Lock held: wait until q has room for n more WRs. */
static int wait_room(struct rdm_rdma *r, struct rt_qp *q, unsigned n)
{
	uint64_t deadline = rt_now_ms() + (uint64_t)r->timeout_ms;

	/* Bounded bytes in flight: a pass ends when its data is nearly out, so the
	 * bandwidth and downtime estimates see the link, not the queue. */
	while (!r->error && (q->posted - q->completed + n > RT_SQ_DEPTH ||
			     (q->posted != q->completed &&
			      q->posted_bytes - q->completed_bytes > RT_INFLIGHT))) {
		struct timespec ts;

		if (rt_now_ms() >= deadline)
			return rt_fail_locked(r, -ETIMEDOUT, "data queue %u: no completion for %d ms",
				       q->index, r->timeout_ms);
		rt_slice(&ts, 100);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	return r->error;
}

/* Lock held: post q's batch as one chain. */
static int post_batch(struct rdm_rdma *r, struct rt_qp *q)
{
	struct ibv_send_wr *bad;
	int ret;

	if (!q->nbatch)
		return r->error;
	ret = wait_room(r, q, q->nbatch);
	if (ret)
		return ret;
	for (unsigned i = 0; i < q->nbatch; i++) {
		q->wr[i].next = i + 1 < q->nbatch ? &q->wr[i + 1] : NULL;
		q->wr[i].wr_id = q->posted + i + 1;
	}
	ret = rt_errno(ibv_post_send(q->qp, &q->wr[0], &bad));
	if (ret)
		return rt_fail_locked(r, ret, "posting %u writes on data queue %u: %s", q->nbatch,
			       q->index, strerror(-ret));
	q->posted += q->nbatch;
	q->posted_bytes += q->queued_bytes;
	q->queued_bytes = 0;
	q->nbatch = 0;
	return 0;
}

static int add_wr(struct rdm_rdma *r, struct rt_qp *q, uint64_t laddr, uint32_t len,
		  uint32_t lkey, uint64_t raddr, uint32_t rkey, bool signal)
{
	struct ibv_send_wr *wr = &q->wr[q->nbatch];
	struct ibv_sge *sge = &q->sge[q->nbatch];
	int ret = 0;

	*sge = (struct ibv_sge){laddr, len, lkey};
	memset(wr, 0, sizeof(*wr));
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->opcode = IBV_WR_RDMA_WRITE;
	wr->wr.rdma.remote_addr = raddr;
	wr->wr.rdma.rkey = rkey;
	/* Selective signaling: one completion covers the WRs before it. */
	q->unsignaled_bytes += len;
	if (++q->since_signal >= RT_SIGNAL_EVERY || q->unsignaled_bytes >= RT_SIGNAL_BYTES ||
	    signal) {
		wr->send_flags = IBV_SEND_SIGNALED;
		q->since_signal = 0;
		q->unsignaled_bytes = 0;
	}
	pthread_mutex_lock(&r->lock);
	q->last_gseq = ++r->gseq;
	q->queued_bytes += len;
	q->ring[(q->posted + q->nbatch + 1) % RT_RING] =
		(struct rt_mark){q->last_gseq, q->posted_bytes + q->queued_bytes};
	q->nbatch++;
	if (q->nbatch == RT_BATCH)
		ret = post_batch(r, q);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Lock held: post every partial batch (a writer about to wait must not sit on WRs). */
static int flush(struct rdm_rdma *r)
{
	int ret = 0;

	for (unsigned i = 0; i < r->ndata && !ret; i++)
		ret = post_batch(r, &r->data[i]);
	return ret;
}

/* Lock held: the WRITE sequence below which every WRITE has completed. */
static uint64_t idle_gseq(struct rdm_rdma *r)
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

/* The remote key for off in block b, waiting (with our writes posted) while it is asked for. */
static int remote_key(struct rdm_rdma *r, unsigned b, uint64_t off, struct rt_rkey **out)
{
	uint64_t deadline = rt_now_ms() + (uint64_t)r->timeout_ms;
	int ret;

	pthread_mutex_lock(&r->lock);
	while ((ret = rt_keys_lookup(r, b, off, idle_gseq(r), out)) == -EAGAIN) {
		struct timespec ts;

		if (rt_now_ms() >= deadline) {
			ret = rt_fail_locked(r, -ETIMEDOUT, "no key for block %u chunk %llu in %d ms",
					     b, (unsigned long long)(off / r->chunk), r->timeout_ms);
			break;
		}
		ret = flush(r); /* our own queued writes may be what must complete */
		if (ret)
			break;
		rt_slice(&ts, 50);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int rt_write(struct rdm_tp *t, unsigned block, uint64_t off, uint64_t len)
{
	struct rdm_rdma *r = to_rdma(t);
	const struct rdm_tp_block *b;
	int ret;

	if (!r->source || block >= r->nblocks)
		return -EINVAL;
	b = &r->blocks[block];
	if (off > b->len || len > b->len - off) {
		return rdm_tp_fail(-EINVAL, "write %s+%llu len %llu outside the block", b->name,
				   (unsigned long long)off, (unsigned long long)len);
	}
	while (len) {
		uint64_t k = off / r->chunk, end = (k + 1) * r->chunk;
		uint64_t piece = end - off < len ? end - off : len;
		struct rt_qp *q = &r->data[(block + k) % r->ndata];
		char why[RDM_TP_ERRLEN];
		struct rdm_pin_key lk;
		struct rt_rkey *rk;

		ret = remote_key(r, block, off, &rk);
		if (ret)
			return ret;
		ret = rdm_pin_get(r->pin, block, off, piece, &lk, why, sizeof(why));
		if (ret)
			return rt_fail(r, ret, "registering %s+%llu: %s", b->name,
				       (unsigned long long)off, why);
		for (uint64_t done = 0; done < piece;) {
			uint32_t n = piece - done > RT_MAX_WR ? RT_MAX_WR : (uint32_t)(piece - done);
			uint64_t at = off + done;

			/* On demand, a chunk's last write is signaled so it can become idle. */
			ret = add_wr(r, q, (uintptr_t)b->host + at, n, lk.lkey,
				     rk->addr + (at - k * r->chunk), rk->rkey,
				     !r->pin_all && done + n == piece);
			if (ret)
				return ret;
			done += n;
		}
		pthread_mutex_lock(&r->lock);
		rk->last_gseq = q->last_gseq;
		rdm_pin_mark_busy(r->pin, block, off, q->last_gseq);
		pthread_mutex_unlock(&r->lock);
		off += piece;
		len -= piece;
	}
	return 0;
}

int rt_fence(struct rdm_tp *t, uint64_t seq)
{
	struct rdm_rdma *r = to_rdma(t);
	int ret = 0;

	if (!r->source)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->ndata && !ret; i++) {
		struct rt_qp *q = &r->data[i];
		struct ibv_send_wr *wr;

		ret = post_batch(r, q);
		if (ret)
			break;
		/* A SEND after the writes: RC places it behind them at the peer. */
		wr = &q->wr[0];
		memset(wr, 0, sizeof(*wr));
		wr->opcode = IBV_WR_SEND_WITH_IMM;
		wr->send_flags = IBV_SEND_SIGNALED;
		wr->imm_data = htonl((uint32_t)seq);
		q->since_signal = 0;
		q->unsignaled_bytes = 0;
		q->ring[(q->posted + 1) % RT_RING] = (struct rt_mark){q->last_gseq, q->posted_bytes};
		q->nbatch = 1;
		ret = post_batch(r, q);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int post_fence_recv(struct rt_qp *q)
{
	struct ibv_recv_wr wr = {.wr_id = RT_WR_FENCE, .num_sge = 0};
	struct ibv_recv_wr *bad;

	return rt_errno(ibv_post_recv(q->qp, &wr, &bad));
}

/*
 * Test builds, destination, at a fence (mid-iteration). "dst-drop-mr": every
 * MR under the source's writes is deregistered, so its next WRITEs complete
 * with a remote access error. "dst-cm-disconnect": the control connection is
 * hung up (rdma_disconnect) as if the destination had left.
 */
static void fence_faults(struct rdm_rdma *r)
{
	if (rdm_fault("dst-drop-mr")) {
		if (r->pin_all) {
			rdm_pin_destroy(r->pin); /* pin-all never looks a key up again */
			r->pin = NULL;
		} else {
			for (unsigned b = 0; b < r->nblocks; b++)
				for (uint64_t off = 0; off < r->blocks[b].len; off += r->chunk)
					rdm_pin_drop(r->pin, b, off);
		}
	}
	if (rdm_fault("dst-cm-disconnect"))
		rdma_disconnect(r->ctrl.id);
}

int rt_data_post_fence_recvs(struct rt_qp *q)
{
	int ret = 0;

	for (unsigned i = 0; i < RT_FENCE_RECVS && !ret; i++)
		ret = post_fence_recv(q);
	return ret;
}

/* Destination, lock held: a fence arrived on q. */
int rt_data_on_recv(struct rdm_rdma *r, struct rt_qp *q, const struct ibv_wc *wc)
{
	uint32_t lo;
	int ret;

	if (wc->status != IBV_WC_SUCCESS)
		return r->stopping ? 0
				   : rt_fail_locked(r, -EIO, "data queue %u receive: %s", q->index,
					     ibv_wc_status_str(wc->status));
	if (!(wc->wc_flags & IBV_WC_WITH_IMM) || wc->byte_len)
		return rt_fail_locked(r, -EPROTO, "data queue %u: unexpected message", q->index);
	/* Fences carry the low 32 bits; sequences only grow. */
	lo = ntohl(wc->imm_data);
	uint64_t seq = (q->fence_seq & ~0xffffffffull) | lo;
	if (seq < q->fence_seq)
		seq += 1ull << 32;
	q->fence_seq = seq;
	fence_faults(r);
	pthread_cond_broadcast(&r->cond);
	ret = post_fence_recv(q);
	return ret ? rt_fail_locked(r, ret, "re-posting a fence receive") : 0;
}

int rt_data_on_send(struct rdm_rdma *r, struct rt_qp *q, const struct ibv_wc *wc)
{
	if (wc->status != IBV_WC_SUCCESS)
		return r->stopping ? 0
				   : rt_fail_locked(r, -EIO, "write on data queue %u failed: %s (vendor %u)",
					     q->index, ibv_wc_status_str(wc->status),
					     wc->vendor_err);
	/* RC completes in order: WR wr_id and everything before it are done. */
	if (wc->wr_id > q->completed) {
		q->completed = wc->wr_id;
		q->done_gseq = q->ring[wc->wr_id % RT_RING].gseq;
		q->completed_bytes = q->ring[wc->wr_id % RT_RING].bytes;
	}
	rdm_pin_idle_upto(r->pin, idle_gseq(r));
	pthread_cond_broadcast(&r->cond);
	return 0;
}

int rt_wait_fence(struct rdm_tp *t, uint64_t seq, int timeout_ms)
{
	struct rdm_rdma *r = to_rdma(t);
	uint64_t deadline = rt_deadline(timeout_ms);
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		unsigned behind = r->ndata;
		struct timespec ts;

		for (unsigned i = 0; i < r->ndata; i++)
			if (r->data[i].fence_seq >= seq)
				behind--;
		if (!behind)
			break;
		if (r->error) {
			ret = r->error;
			break;
		}
		if (rt_now_ms() >= deadline) {
			ret = rdm_tp_fail(-ETIMEDOUT, "fence %llu: %u data queue(s) behind",
					  (unsigned long long)seq, behind);
			break;
		}
		rt_slice(&ts, 100);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}
