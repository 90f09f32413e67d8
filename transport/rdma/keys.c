/* SPDX-License-Identifier: MIT */
/*
 * Registration across the wire. Pin-all: the destination registers every
 * block and sends all keys, then RDMA_READY. On demand: the source asks for
 * the keys of the chunks ahead of its writer, RT_PREFETCH at a time in one
 * RDMA_REG, keeps writing to chunks it has keys for meanwhile, and when the
 * destination's budget is spent names idle chunks (all their writes complete)
 * for it to drop in the same message.
 *
 * Messages of this protocol come off the control channel's internal queue
 * on the keys thread, never on the completion path: the destination's
 * ibv_reg_mr (rdm_pin_get) runs there without r->lock, so completions and
 * writers go on meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/rdma/rdma_int.h"

static int start_thread(struct rdm_rdma *r);

static uint64_t chunk_len(struct rdm_rdma *r, unsigned b, uint64_t k)
{
	uint64_t off = k * r->chunk, len = r->blocks[b].len - off;

	return len < r->chunk ? len : r->chunk;
}

static int open_pin(struct rdm_rdma *r, int access)
{
	struct rdm_pin_opts po = {.size = sizeof(po), .pin_all = r->pin_all,
				  .chunk_size = r->chunk, .access = access};
	struct rdm_pin_region *rg;
	char err[RDM_TP_ERRLEN] = "";
	int ret;

	rg = calloc(r->nblocks, sizeof(*rg));
	if (!rg)
		return -ENOMEM;
	for (unsigned i = 0; i < r->nblocks; i++)
		rg[i] = (struct rdm_pin_region){r->blocks[i].host, r->blocks[i].len};
	ret = rdm_pin_create(r->pd, rg, r->nblocks, &po, &r->pin, err, sizeof(err));
	free(rg);
	/*
	 * The caller's failure, not the transport's: the control channel still
	 * works, so the destination can tell the source why (memlock) before it
	 * hangs up.
	 */
	return ret ? rdm_tp_fail(ret, "%s", err) : 0;
}

/* Lock not held: queue m for the peer. */
static int send_msg(struct rdm_rdma *r, const struct rdm_msg *m)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = rt_ctrl_send_msg(r, m);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Destination, keys thread, pin-all: every piece of every block, in as few messages as fit. */
static int send_all_keys(struct rdm_rdma *r)
{
	struct rdm_rdma_key *keys = calloc(RDM_RDMA_KEYS_MAX, sizeof(*keys));
	struct rdm_msg m = {.type = RDM_MSG_RDMA_KEYS};
	uint32_t n = 0;
	int ret = 0;

	if (!keys)
		return -ENOMEM;
	for (unsigned b = 0; b < r->nblocks && !ret; b++) {
		for (uint64_t off = 0; off < r->blocks[b].len && !ret;) {
			char why[RDM_TP_ERRLEN];
			struct rdm_pin_key k;
			uint64_t start;

			ret = rdm_pin_get(r->pin, b, off, 1, &k, why, sizeof(why));
			if (ret) {
				rt_fail(r, ret, "%s", why);
				break;
			}
			start = k.addr - (uintptr_t)r->blocks[b].host;
			keys[n++] = (struct rdm_rdma_key){b, start, k.len, k.addr, k.rkey};
			off = start + k.len;
			if (n == RDM_RDMA_KEYS_MAX) {
				m.u.keys = (struct rdm_rdma_keys){n, keys, NULL};
				ret = send_msg(r, &m);
				n = 0;
			}
		}
	}
	if (!ret && n) {
		m.u.keys = (struct rdm_rdma_keys){n, keys, NULL};
		ret = send_msg(r, &m);
	}
	free(keys);
	return ret;
}

static int dest_setup(struct rdm_rdma *r)
{
	/* Keys go out when the source asks (an empty RDMA_REG): it is ready for them then. */
	int ret = open_pin(r, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);

	return ret ? ret : start_thread(r);
}

/* Keys thread: the source's first, empty RDMA_REG. r->ready is this thread's on the destination. */
static int dest_start(struct rdm_rdma *r)
{
	struct rdm_msg m = {.type = RDM_MSG_RDMA_READY};
	int ret;

	if (r->ready)
		return rt_fail(r, -EPROTO, "registration started twice");
	r->ready = true;
	if (r->pin_all) {
		ret = send_all_keys(r);
		if (ret)
			return ret;
	}
	m.u.ready.flags = r->pin_all ? 1 : 0;
	m.u.ready.budget = rdm_pin_memlock_limit();
	/* The control buffers are pinned too. */
	if (m.u.ready.budget != UINT64_MAX) {
		uint64_t ctrl = (uint64_t)(RT_CREDITS + RT_RESERVE + RT_SLOTS) * RT_MAX_MSG;

		m.u.ready.budget = m.u.ready.budget > ctrl ? m.u.ready.budget - ctrl : 0;
	}
	return send_msg(r, &m);
}

/* Lock held: an ERROR already queued for the core explains a stalled setup. */
static int peer_error(struct rdm_rdma *r)
{
	struct rdm_msg m;

	if (!r->qhead || rdm_msg_decode(r->qhead->data, r->qhead->len, &m) ||
	    m.type != RDM_MSG_ERROR)
		return 0;
	return rt_fail_locked(r, m.u.error.code, "destination: %s", m.u.error.text);
}

static int source_setup(struct rdm_rdma *r)
{
	uint64_t deadline = rt_now_ms() + (uint64_t)r->timeout_ms;
	struct rdm_msg m = {.type = RDM_MSG_RDMA_REG};
	int ret;

	r->nchunks = calloc(r->nblocks, sizeof(*r->nchunks));
	r->remote = calloc(r->nblocks, sizeof(*r->remote));
	if (!r->nchunks || !r->remote)
		return -ENOMEM;
	for (unsigned b = 0; b < r->nblocks; b++) {
		r->nchunks[b] = (r->blocks[b].len + r->chunk - 1) / r->chunk;
		r->remote[b] = calloc(r->nchunks[b], sizeof(**r->remote));
		if (!r->remote[b])
			return -ENOMEM;
	}
	/* Read-only: the source never writes here, and a writable pin would fight the
	 * write protection a VMM may use for dirty tracking (userfaultfd, soft-dirty). */
	ret = open_pin(r, 0);
	if (!ret)
		ret = start_thread(r);
	if (ret)
		return ret;
	pthread_mutex_lock(&r->lock);
	m.u.reg = (struct rdm_rdma_reg){0, 0, NULL, NULL};
	ret = rt_ctrl_send_msg(r, &m);
	while (!ret && !r->ready && !r->error && !(ret = peer_error(r))) {
		struct timespec ts;

		if (rt_now_ms() >= deadline) {
			ret = rt_fail_locked(r, -ETIMEDOUT,
					     "no registration answer from the destination");
			break;
		}
		rt_slice(&ts, 100);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	if (!ret)
		ret = r->error;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int rt_keys_setup(struct rdm_rdma *r)
{
	return r->source ? source_setup(r) : dest_setup(r);
}

/* Lock held: the least recently used remote chunk whose writes all completed. */
static struct rt_rkey *victim(struct rdm_rdma *r, uint64_t idle, unsigned *vb, uint64_t *vk)
{
	struct rt_rkey *best = NULL;

	for (unsigned b = 0; b < r->nblocks; b++)
		for (uint64_t k = 0; k < r->nchunks[b]; k++) {
			struct rt_rkey *e = &r->remote[b][k];

			if (e->state == RT_KEY_VALID && e->last_gseq <= idle && (!best || e->lru < best->lru)) {
				best = e;
				*vb = b;
				*vk = k;
			}
		}
	return best;
}

/* Lock held: ask for chunks [k, k + RT_PREFETCH) of block b we lack. */
static int ask(struct rdm_rdma *r, unsigned b, uint64_t k, uint64_t idle)
{
	struct rdm_rdma_chunk want[RT_PREFETCH], drop[RT_PREFETCH], all[2 * RT_PREFETCH];
	struct rdm_msg m = {.type = RDM_MSG_RDMA_REG};
	uint32_t nw = 0, nd = 0;
	uint64_t need = 0;

	for (uint64_t i = k; i < r->nchunks[b] && i < k + RT_PREFETCH; i++) {
		struct rt_rkey *e = &r->remote[b][i];
		uint64_t len = chunk_len(r, b, i);

		if (e->state != RT_KEY_NONE)
			continue;
		if (len > r->peer_budget)
			return rt_fail_locked(r, -ENOMEM,
				       "the destination may register %llu bytes, less than one %llu-byte "
				       "chunk (raise its memlock limit or lower chunk-size)",
				       (unsigned long long)r->peer_budget, (unsigned long long)len);
		/* Over the destination's budget: drop idle chunks to make room. */
		while (r->remote_bytes + need + len > r->peer_budget && nd < RT_PREFETCH) {
			unsigned vb;
			uint64_t vk;
			struct rt_rkey *v = victim(r, idle, &vb, &vk);

			if (!v)
				break;
			v->state = RT_KEY_NONE;
			r->remote_bytes -= v->len;
			drop[nd++] = (struct rdm_rdma_chunk){vb, vk * r->chunk};
		}
		if (r->remote_bytes + need + len > r->peer_budget)
			break; /* the rest waits for writes to complete */
		e->state = RT_KEY_ASKED;
		need += len;
		want[nw++] = (struct rdm_rdma_chunk){b, i * r->chunk};
	}
	if (!nw && !nd)
		return 0;
	memcpy(all, want, nw * sizeof(*want));
	memcpy(all + nw, drop, nd * sizeof(*drop));
	m.u.reg = (struct rdm_rdma_reg){nw, nd, all, NULL};
	r->remote_bytes += need;
	r->asks_out++;
	return rt_ctrl_send_msg(r, &m);
}

int rt_keys_lookup(struct rdm_rdma *r, unsigned b, uint64_t off, uint64_t idle,
		   struct rt_rkey **out)
{
	uint64_t k = off / r->chunk, ahead = k + RT_PREFETCH / 2;
	struct rt_rkey *e = &r->remote[b][k];
	int ret = 0;

	if (r->error)
		return r->error;
	if (r->pin_all && e->state != RT_KEY_VALID)
		return rt_fail_locked(r, -EPROTO, "no key for block %u chunk %llu", b,
				      (unsigned long long)k);
	if (!r->pin_all) {
		/* Ask ahead so the answer is back before the writer gets there; asking
		 * again for a chunk dropped meanwhile may find room come free. */
		if (e->state == RT_KEY_NONE)
			ret = ask(r, b, k, idle);
		if (!ret && ahead < r->nchunks[b] && r->remote[b][ahead].state == RT_KEY_NONE)
			ret = ask(r, b, ahead, idle);
		if (ret)
			return ret;
	}
	if (e->state != RT_KEY_VALID)
		return -EAGAIN;
	e->lru = ++r->tick;
	*out = e;
	return 0;
}

/* Source, keys thread, lock held: install keys the destination sent. */
static int on_keys(struct rdm_rdma *r, const struct rdm_rdma_keys *ks)
{
	for (uint32_t i = 0; i < ks->count; i++) {
		struct rdm_rdma_key k;

		rdm_rdma_keys_get(ks, i, &k);
		if (k.block >= r->nblocks || k.offset % r->chunk || k.offset >= r->blocks[k.block].len ||
		    k.len > r->blocks[k.block].len - k.offset)
			return rt_fail_locked(r, -EBADMSG, "key for block %u +%llu len %llu out of range",
				       k.block, (unsigned long long)k.offset,
				       (unsigned long long)k.len);
		for (uint64_t c = k.offset / r->chunk; c * r->chunk < k.offset + k.len; c++) {
			struct rt_rkey *e = &r->remote[k.block][c];

			e->addr = k.addr + (c * r->chunk - k.offset);
			e->len = chunk_len(r, k.block, c);
			e->rkey = k.rkey;
			e->state = RT_KEY_VALID;
		}
	}
	if (!r->pin_all && r->asks_out)
		r->asks_out--;
	pthread_cond_broadcast(&r->cond);
	return 0;
}

/* Destination, keys thread, lock not held: drop, then register and answer with the keys. */
static int on_reg(struct rdm_rdma *r, const struct rdm_rdma_reg *rq)
{
	struct rdm_rdma_key keys[2 * RT_PREFETCH];
	struct rdm_msg m = {.type = RDM_MSG_RDMA_KEYS};
	uint32_t n = 0;
	int ret;

	if (r->source)
		return rt_fail(r, -EPROTO, "unexpected registration request");
	if (!rq->nreg && !rq->ndrop)
		return dest_start(r);
	if (r->pin_all || !r->ready || rq->nreg > 2 * RT_PREFETCH)
		return rt_fail(r, -EPROTO, "unexpected registration request");
	for (uint32_t i = 0; i < rq->nreg + rq->ndrop; i++) {
		struct rdm_rdma_chunk c;

		rdm_rdma_reg_get(rq, i, &c);
		if (c.block >= r->nblocks || c.offset % r->chunk ||
		    c.offset >= r->blocks[c.block].len)
			return rt_fail(r, -EBADMSG, "registration request for block %u +%llu",
				       c.block, (unsigned long long)c.offset);
	}
	for (uint32_t i = rq->nreg; i < rq->nreg + rq->ndrop; i++) {
		struct rdm_rdma_chunk c;

		rdm_rdma_reg_get(rq, i, &c);
		ret = rdm_pin_drop(r->pin, c.block, c.offset);
		if (ret)
			return rt_fail(r, ret, "dropping block %u +%llu", c.block,
				       (unsigned long long)c.offset);
	}
	for (uint32_t i = 0; i < rq->nreg; i++) {
		struct rdm_rdma_chunk c;
		char why[RDM_TP_ERRLEN];
		struct rdm_pin_key k;

		rdm_rdma_reg_get(rq, i, &c);

		ret = rdm_pin_get(r->pin, c.block, c.offset, 1, &k, why, sizeof(why));
		if (ret)
			return rt_fail(r, ret, "registering block %u +%llu: %s", c.block,
				       (unsigned long long)c.offset, why);
		keys[n++] = (struct rdm_rdma_key){c.block, c.offset, k.len, k.addr, k.rkey};
	}
	m.u.keys = (struct rdm_rdma_keys){n, keys, NULL};
	return send_msg(r, &m);
}

/* Keys thread, lock not held: one message of the registration protocol. */
static int handle(struct rdm_rdma *r, const struct rdm_msg *m)
{
	int ret = 0;

	switch (m->type) {
	case RDM_MSG_RDMA_KEYS:
		/* At a destination: the source's blocks, for postcopy's reads. */
		pthread_mutex_lock(&r->lock);
		ret = r->source ? on_keys(r, &m->u.keys) : rt_read_on_keys(r, &m->u.keys);
		pthread_mutex_unlock(&r->lock);
		return ret;
	case RDM_MSG_RDMA_READY:
		if (!r->source || (m->u.ready.flags & 1) != r->pin_all)
			break;
		pthread_mutex_lock(&r->lock);
		r->peer_budget = m->u.ready.budget;
		r->ready = true;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
		return 0;
	case RDM_MSG_RDMA_REG:
		return on_reg(r, &m->u.reg);
	default:
		break;
	}
	return rt_fail(r, -EPROTO, "unexpected %s", rdm_msg_name(m->type));
}

static void *keys_main(void *arg)
{
	struct rdm_rdma *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		struct rt_msgq *q = rt_ctrl_take_internal(r);
		struct timespec ts;
		struct rdm_msg m;
		int ret;

		if (!q) {
			rt_slice(&ts, 100);
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
			continue;
		}
		/* After a failure nothing more is registered or answered. */
		if (r->error) {
			free(q);
			continue;
		}
		pthread_mutex_unlock(&r->lock);
		ret = rdm_msg_decode(q->data, q->len, &m);
		if (ret)
			rt_fail(r, ret, "bad registration message from the peer");
		else if ((ret = handle(r, &m)))
			rt_fail(r, ret, "registration: %s", strerror(-ret)); /* the first error stays */
		free(q); /* after handle: m may point into it */
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static int start_thread(struct rdm_rdma *r)
{
	int ret = -pthread_create(&r->keys, NULL, keys_main, r);

	r->keys_started = ret == 0;
	return ret ? rdm_tp_fail(ret, "cannot start the keys thread: %s", strerror(-ret)) : 0;
}

void rt_keys_stop(struct rdm_rdma *r)
{
	if (r->keys_started)
		pthread_join(r->keys, NULL);
	r->keys_started = false;
}
