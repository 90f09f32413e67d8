/* SPDX-License-Identifier: MIT */
/*
 * Postcopy by one-sided READs (see rdma_int.h). The source registers each
 * block whole for REMOTE_READ once the session is authenticated and sends the
 * keys; the destination reads what it lacks into staging slots of its own
 * and hands each slot to the placer (UFFDIO_COPY): the source's CPU is not on
 * the fault path, and no NIC writes into memory userfaultfd guards.
 *
 * Slots [0, RT_STAGE_URGENT) are for faults, the rest for the background; a
 * fault's READ goes on the control QP, the background's round the data QPs,
 * so a fault never queues behind a background read, and while one is in
 * flight the background posts nothing new (on a soft device both share the
 * CPUs that move the bytes). A slot whose READs fail
 * stays busy: the NIC may still write into it, and the transport is failed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "transport/rdma/rdma_int.h"

int rt_expose(struct rdm_tp *t)
{
	struct rdm_rdma *r = to_rdma(t);
	struct rdm_msg m = {.type = RDM_MSG_RDMA_KEYS};
	struct rdm_rdma_key *keys;
	struct ibv_mr **mr;
	unsigned i = 0;
	int ret;

	if (!r->source || !r->blocks)
		return rdm_tp_fail(-EINVAL, "expose: only a source's blocks, once they are agreed");
	if (r->read_mr)
		return rdm_tp_fail(-EALREADY, "expose: the blocks are exposed already");
	mr = calloc(r->nblocks, sizeof(*mr));
	keys = calloc(r->nblocks, sizeof(*keys));
	if (!mr || !keys) {
		ret = rdm_tp_fail(-ENOMEM, "expose: out of memory");
		goto err;
	}
	for (; i < r->nblocks; i++) {
		const struct rdm_tp_block *b = &r->blocks[i];

		/*
		 * LOCAL_WRITE too: a read-only pin may take the shared zero page
		 * for a page not yet touched, and the guest's first write would
		 * leave the MR behind.
		 */
		mr[i] = ibv_reg_mr(r->pd, b->host, b->len,
				   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
		if (!mr[i]) {
			ret = -errno;
			rdm_tp_fail(ret, "registering %s (%llu bytes) for the destination's reads: %s%s",
				    b->name, (unsigned long long)b->len, strerror(-ret),
				    ret == -ENOMEM || ret == -EAGAIN
					    ? " (postcopy over rdma registers all of RAM: RLIMIT_MEMLOCK)"
					    : "");
			goto err_mr;
		}
		keys[i] = (struct rdm_rdma_key){i, 0, b->len, (uintptr_t)b->host, mr[i]->rkey};
	}
	m.u.keys = (struct rdm_rdma_keys){r->nblocks, keys, NULL};
	pthread_mutex_lock(&r->lock);
	ret = r->error ? r->error : rt_ctrl_send_msg(r, &m);
	if (!ret)
		r->read_mr = mr;
	pthread_mutex_unlock(&r->lock);
	if (ret)
		goto err_mr;
	free(keys);
	return 0;

err_mr:
	while (i-- > 0)
		ibv_dereg_mr(mr[i]);
err:
	free(keys);
	free(mr);
	return ret;
}

int rt_set_placer(struct rdm_tp *t, rdm_tp_place_fn fn, void *opaque)
{
	struct rdm_rdma *r = to_rdma(t);
	size_t len = (size_t)RT_STAGE_SLOTS * RT_STAGE_LEN;
	struct ibv_mr *mr;
	void *buf;

	if (r->source)
		return rdm_tp_fail(-EINVAL, "set_placer: a source places nothing");
	if (fn && !r->stage) {
		buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf == MAP_FAILED)
			return rdm_tp_fail(-ENOMEM, "postcopy staging: out of memory");
		mr = ibv_reg_mr(r->pd, buf, len, IBV_ACCESS_LOCAL_WRITE);
		if (!mr) {
			int ret = -errno;

			munmap(buf, len);
			return rdm_tp_fail(ret, "registering %zu bytes of postcopy staging: %s", len,
					   strerror(-ret));
		}
		pthread_mutex_lock(&r->lock);
		r->stage = buf;
		r->stage_mr = mr;
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_lock(&r->lock);
	r->place = fn;
	r->place_opaque = opaque;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int rt_read_on_keys(struct rdm_rdma *r, const struct rdm_rdma_keys *ks)
{
	struct rt_peer_block *p;

	if (r->peer || ks->count != r->nblocks)
		return rt_fail_locked(r, -EPROTO, "read keys %s (%u for %u blocks)",
				      r->peer ? "twice" : "for another block list", ks->count,
				      r->nblocks);
	p = calloc(r->nblocks, sizeof(*p));
	if (!p)
		return rt_fail_locked(r, -ENOMEM, "read keys: out of memory");
	for (uint32_t i = 0; i < ks->count; i++) {
		struct rdm_rdma_key k;

		rdm_rdma_keys_get(ks, i, &k);
		/* One key per block, whole, in order: anything else is not our source's. */
		if (k.block != i || k.offset || k.len != r->blocks[i].len) {
			free(p);
			return rt_fail_locked(r, -EBADMSG, "read key %u: block %u +%llu len %llu is "
					      "not block %u whole", i, k.block,
					      (unsigned long long)k.offset,
					      (unsigned long long)k.len, i);
		}
		p[i] = (struct rt_peer_block){k.addr, k.len, k.rkey};
	}
	r->peer = p;
	pthread_cond_broadcast(&r->cond);
	return 0;
}

int rt_read_on_send(struct rdm_rdma *r, const struct ibv_wc *wc)
{
	uint64_t slot = wc->wr_id & ~RT_WR_READ;

	if (slot >= RT_STAGE_SLOTS || !r->slot[slot].pending)
		return rt_fail_locked(r, -EIO, "completion of a read nobody posted");
	r->slot[slot].pending--;
	pthread_cond_broadcast(&r->cond);
	if (wc->status != IBV_WC_SUCCESS && !r->stopping)
		return rt_fail_locked(r, -EIO, "read from the source's memory failed: %s (vendor %u)",
				      ibv_wc_status_str(wc->status), wc->vendor_err);
	return 0;
}

/* A piece of a span in a slot. */
struct piece {
	unsigned slot, block;
	uint64_t off, len;
};

/* Lock held: wait until cond() or the deadline; -errno when the transport failed or time ran out. */
static int wait_locked(struct rdm_rdma *r, uint64_t deadline, bool (*cond)(struct rdm_rdma *, unsigned),
		       unsigned arg, const char *what)
{
	while (!r->error && !cond(r, arg)) {
		struct timespec ts;
		uint64_t now = rt_now_ms();

		if (now >= deadline)
			return rt_fail_locked(r, -ETIMEDOUT, "postcopy read: %s took too long", what);
		rt_slice(&ts, (int)(deadline - now < 100 ? deadline - now : 100));
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	return r->error;
}

static bool have_keys(struct rdm_rdma *r, unsigned unused)
{
	(void)unused;
	return r->peer != NULL;
}

static bool slot_done(struct rdm_rdma *r, unsigned slot)
{
	return !r->slot[slot].pending;
}

/* Lock held: a free slot of the class, or -1. */
static int free_slot(struct rdm_rdma *r, bool urgent)
{
	unsigned from = urgent ? 0 : RT_STAGE_URGENT, to = urgent ? RT_STAGE_URGENT : RT_STAGE_SLOTS;

	for (unsigned i = from; i < to; i++)
		if (!r->slot[i].busy)
			return (int)i;
	return -1;
}

/* Lock held: a fault's read is in flight (the background posts nothing meanwhile). */
static bool faulting(struct rdm_rdma *r)
{
	for (unsigned i = 0; i < RT_STAGE_URGENT; i++)
		if (r->slot[i].busy)
			return true;
	return false;
}

/* Lock held: the slot a new piece of this class may take now, or -1. */
static int next_slot(struct rdm_rdma *r, bool urgent)
{
	return !urgent && faulting(r) ? -1 : free_slot(r, urgent);
}

static bool slot_free(struct rdm_rdma *r, unsigned urgent)
{
	return next_slot(r, urgent) >= 0;
}

/* Lock held: the READs of one piece (a WR per RT_MAX_WR), on the control QP or a data QP. */
static int post(struct rdm_rdma *r, const struct piece *p, bool urgent)
{
	struct rt_qp *q = urgent || !r->ndata ? &r->ctrl : &r->data[r->read_rr++ % r->ndata];
	const struct rt_peer_block *pb = &r->peer[p->block];
	uint8_t *buf = r->stage + (size_t)p->slot * RT_STAGE_LEN;

	for (uint64_t done = 0; done < p->len;) {
		uint64_t n = p->len - done < RT_MAX_WR ? p->len - done : RT_MAX_WR;
		struct ibv_sge sge = {(uintptr_t)(buf + done), (uint32_t)n, r->stage_mr->lkey};
		struct ibv_send_wr wr = {0}, *bad;
		int rc;

		wr.wr_id = RT_WR_READ | p->slot;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.opcode = IBV_WR_RDMA_READ;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.wr.rdma.remote_addr = pb->addr + p->off + done;
		wr.wr.rdma.rkey = pb->rkey;
		rc = ibv_post_send(q->qp, &wr, &bad);
		if (rc)
			return rt_fail_locked(r, rt_errno(rc), "posting a read on queue %u: %s",
					      q->index, strerror(-rt_errno(rc)));
		r->slot[p->slot].pending++;
		done += n;
	}
	return 0;
}

/* The oldest piece in flight: wait for it, place it, free its slot. */
static int finish(struct rdm_rdma *r, const struct piece *p, uint64_t deadline)
{
	rdm_tp_place_fn place;
	void *opaque;
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = wait_locked(r, deadline, slot_done, p->slot, "a page");
	place = r->place;
	opaque = r->place_opaque;
	pthread_mutex_unlock(&r->lock);
	if (ret)
		return ret;
	ret = place ? place(opaque, p->block, p->off, p->len, r->stage + (size_t)p->slot * RT_STAGE_LEN)
		    : -EINVAL;
	if (ret) {
		rdm_tp_fail(ret, "placing %llu bytes at block %u +%llu: %s", (unsigned long long)p->len,
			    p->block, (unsigned long long)p->off, strerror(-ret));
		return rt_fail(r, ret, "%s", rdm_tp_errmsg());
	}
	pthread_mutex_lock(&r->lock);
	r->slot[p->slot].busy = false;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static int check_span(struct rdm_rdma *r, const struct rdm_tp_span *sp)
{
	const struct rdm_tp_block *b;

	if (sp->block >= r->nblocks)
		return rdm_tp_fail(-EINVAL, "pull: block %u of %u", sp->block, r->nblocks);
	b = &r->blocks[sp->block];
	if (!sp->len || sp->off > b->len || sp->len > b->len - sp->off || sp->off % b->page_size ||
	    sp->len % b->page_size || b->page_size > RT_STAGE_LEN)
		return rdm_tp_fail(-EINVAL, "pull: %llu+%llu of %s is not whole pages inside it",
				   (unsigned long long)sp->off, (unsigned long long)sp->len, b->name);
	return 0;
}

/*
 * Pieces of at most a slot go out as slots come free; the caller's own
 * oldest is finished when its class has none, so one call keeps its class's
 * slots busy without waiting for the whole batch.
 */
int rt_pull(struct rdm_tp *t, const struct rdm_tp_span *v, unsigned n, bool urgent, int timeout_ms)
{
	struct rdm_rdma *r = to_rdma(t);
	uint64_t deadline = rt_deadline(timeout_ms);
	struct piece fifo[RT_STAGE_SLOTS];
	unsigned head = 0, count = 0;
	int ret = 0;

	if (r->source || !r->stage)
		return rdm_tp_fail(-EINVAL, "pull: only at a destination with a placer");
	for (unsigned i = 0; i < n; i++) {
		ret = check_span(r, &v[i]);
		if (ret)
			return ret;
	}
	pthread_mutex_lock(&r->lock);
	ret = wait_locked(r, deadline, have_keys, 0, "the source's keys");
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 0; i < n && !ret; i++) {
		for (uint64_t off = v[i].off; off < v[i].off + v[i].len && !ret;) {
			uint64_t len = v[i].off + v[i].len - off;
			struct piece p = {0, v[i].block, off, len < RT_STAGE_LEN ? len : RT_STAGE_LEN};
			int slot = -1;

			pthread_mutex_lock(&r->lock);
			while (!ret && (slot = next_slot(r, urgent)) < 0 && !count)
				ret = wait_locked(r, deadline, slot_free, urgent, "a staging slot");
			if (!ret && slot >= 0) {
				p.slot = (unsigned)slot;
				r->slot[slot].busy = true;
				ret = post(r, &p, urgent);
			}
			pthread_mutex_unlock(&r->lock);
			if (ret)
				break;
			if (slot < 0) {
				/* All of the class is ours and in flight: the oldest first. */
				ret = finish(r, &fifo[head], deadline);
				head = (head + 1) % RT_STAGE_SLOTS;
				count--;
				continue;
			}
			fifo[(head + count++) % RT_STAGE_SLOTS] = p;
			off += p.len;
		}
	}
	while (count && !ret) {
		ret = finish(r, &fifo[head], deadline);
		head = (head + 1) % RT_STAGE_SLOTS;
		count--;
	}
	return ret;
}

void rt_read_fini(struct rdm_rdma *r)
{
	for (unsigned i = 0; r->read_mr && i < r->nblocks; i++)
		ibv_dereg_mr(r->read_mr[i]);
	free(r->read_mr);
	r->read_mr = NULL;
	if (r->stage_mr)
		ibv_dereg_mr(r->stage_mr);
	if (r->stage)
		munmap(r->stage, (size_t)RT_STAGE_SLOTS * RT_STAGE_LEN);
	r->stage_mr = NULL;
	r->stage = NULL;
	free(r->peer);
	r->peer = NULL;
}
