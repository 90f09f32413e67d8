/* SPDX-License-Identifier: MIT */
/*
 * Registration across the wire. Pin-all: the destination registers every
 * block and sends all keys, then RDMA_READY. On demand: the source asks for
 * the keys of the chunks ahead of its writer, RT_PREFETCH at a time in one
 * RDMA_REG, keeps writing to chunks it has keys for meanwhile, and when the
 * destination's budget is spent names idle chunks (all their writes complete)
 * for it to drop in the same message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/rdma/rdma_int.h"

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

/* Destination (lock held), pin-all: every piece of every block, in as few messages as fit. */
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
				ret = rt_ctrl_send_msg(r, &m);
				n = 0;
			}
		}
	}
	if (!ret && n) {
		m.u.keys = (struct rdm_rdma_keys){n, keys, NULL};
		ret = rt_ctrl_send_msg(r, &m);
	}
	free(keys);
	return ret;
}

static int dest_setup(struct rdm_rdma *r)
{
	/* Keys go out when the source asks (an empty RDMA_REG): it is ready for them then. */
	return open_pin(r, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
}

/* Lock held: the source's first, empty RDMA_REG. */
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
	return rt_ctrl_send_msg(r, &m);
}

/* Lock held: an ERROR already queued for the core explains a stalled setup. */
static int peer_error(struct rdm_rdma *r)
{
	struct rdm_msg m;

	if (!r->qhead || rdm_msg_decode(r->qhead->data, r->qhead->len, &m) ||
	    m.type != RDM_MSG_ERROR)
		return 0;
	return rt_fail(r, m.u.error.code, "destination: %s", m.u.error.text);
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
	if (ret)
		return ret;
	pthread_mutex_lock(&r->lock);
	m.u.reg = (struct rdm_rdma_reg){0, 0, NULL, NULL};
	ret = rt_ctrl_send_msg(r, &m);
	while (!ret && !r->ready && !r->error && !(ret = peer_error(r))) {
		struct timespec ts;

		if (rt_now_ms() >= deadline) {
			ret = rt_fail(r, -ETIMEDOUT, "no registration answer from the destination");
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

			if (e->valid && e->last_gseq <= idle && (!best || e->lru < best->lru)) {
				best = e;
				*vb = b;
				*vk = k;
			}
		}
	return best;
}

/* Lock held: ask for chunks [k, k + RT_PREFETCH) of block b we lack. */
static int ask(struct rdm_rdma *r, unsigned b, uint64_t k)
{
	struct rdm_rdma_chunk want[RT_PREFETCH], drop[RT_PREFETCH], all[2 * RT_PREFETCH];
	struct rdm_msg m = {.type = RDM_MSG_RDMA_REG};
	uint32_t nw = 0, nd = 0;
	uint64_t need = 0, idle = rt_idle_gseq(r);

	for (uint64_t i = k; i < r->nchunks[b] && i < k + RT_PREFETCH; i++) {
		struct rt_rkey *e = &r->remote[b][i];
		uint64_t len = chunk_len(r, b, i);

		if (e->valid || e->asked)
			continue;
		if (len > r->peer_budget)
			return rt_fail(r, -ENOMEM,
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
			v->valid = false;
			r->remote_bytes -= v->len;
			drop[nd++] = (struct rdm_rdma_chunk){vb, vk * r->chunk};
		}
		if (r->remote_bytes + need + len > r->peer_budget)
			break; /* the rest waits for writes to complete */
		e->asked = true;
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

int rt_keys_get(struct rdm_rdma *r, unsigned b, uint64_t off, struct rt_rkey **out)
{
	uint64_t k = off / r->chunk, deadline = rt_now_ms() + (uint64_t)r->timeout_ms;
	struct rt_rkey *e = &r->remote[b][k];
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (!r->pin_all) {
		/* Ask ahead so the answer is back before the writer gets there. */
		if (!e->valid && !e->asked)
			ret = ask(r, b, k);
		if (!ret && k + RT_PREFETCH / 2 < r->nchunks[b] &&
		    !r->remote[b][k + RT_PREFETCH / 2].asked &&
		    !r->remote[b][k + RT_PREFETCH / 2].valid)
			ret = ask(r, b, k + RT_PREFETCH / 2);
	}
	while (!ret && !e->valid) {
		struct timespec ts;

		if (r->error || r->pin_all) {
			ret = r->error ? r->error
				       : rt_fail(r, -EPROTO, "no key for block %u chunk %llu", b,
						 (unsigned long long)k);
			break;
		}
		if (rt_now_ms() >= deadline) {
			ret = rt_fail(r, -ETIMEDOUT, "no key for block %u chunk %llu in %d ms", b,
				      (unsigned long long)k, r->timeout_ms);
			break;
		}
		ret = rt_data_flush(r); /* our own queued writes may be what must complete */
		if (!ret && !e->asked)
			ret = ask(r, b, k); /* room may have come free */
		if (ret)
			break;
		rt_slice(&ts, 50);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	if (!ret) {
		e->lru = ++r->tick;
		*out = e;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Source: install keys the destination sent. */
static int on_keys(struct rdm_rdma *r, const struct rdm_rdma_keys *ks)
{
	for (uint32_t i = 0; i < ks->count; i++) {
		struct rdm_rdma_key k;

		rdm_rdma_keys_get(ks, i, &k);
		if (k.block >= r->nblocks || k.offset % r->chunk || k.offset >= r->blocks[k.block].len ||
		    k.len > r->blocks[k.block].len - k.offset)
			return rt_fail(r, -EBADMSG, "key for block %u +%llu len %llu out of range",
				       k.block, (unsigned long long)k.offset,
				       (unsigned long long)k.len);
		for (uint64_t c = k.offset / r->chunk; c * r->chunk < k.offset + k.len; c++) {
			struct rt_rkey *e = &r->remote[k.block][c];

			e->addr = k.addr + (c * r->chunk - k.offset);
			e->len = chunk_len(r, k.block, c);
			e->rkey = k.rkey;
			e->valid = true;
			e->asked = false;
		}
	}
	if (!r->pin_all && r->asks_out)
		r->asks_out--;
	pthread_cond_broadcast(&r->cond);
	return 0;
}

/* Destination: drop, then register and answer with the keys. */
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
	return rt_ctrl_send_msg(r, &m);
}

int rt_keys_on_msg(struct rdm_rdma *r, const struct rdm_msg *m)
{
	if (!r->blocks)
		return rt_fail(r, -EPROTO, "%s before the block list", rdm_msg_name(m->type));
	switch (m->type) {
	case RDM_MSG_RDMA_KEYS:
		if (!r->source)
			break;
		return on_keys(r, &m->u.keys);
	case RDM_MSG_RDMA_READY:
		if (!r->source || (m->u.ready.flags & 1) != r->pin_all)
			break;
		r->peer_budget = m->u.ready.budget;
		r->ready = true;
		pthread_cond_broadcast(&r->cond);
		return 0;
	case RDM_MSG_RDMA_REG:
		return on_reg(r, &m->u.reg);
	default:
		break;
	}
	return rt_fail(r, -EPROTO, "unexpected %s", rdm_msg_name(m->type));
}
