/* SPDX-License-Identifier: MIT */
/*
 * On-demand registration: chunks registered on first use, kept on an LRU list,
 * and deregistered least recently used first when the budget is spent. A chunk
 * marked busy (a write from or into it may still be in flight) stays until the
 * caller reports its sequence number idle. Every function here runs under
 * p->lock (taken by the entry points in pin.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pin/pin_int.h"

static void lru_unlink(struct rdm_pin_chunk *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void lru_push_front(struct rdm_pin *p, struct rdm_pin_chunk *c)
{
	c->prev = &p->lru;
	c->next = p->lru.next;
	p->lru.next->prev = c;
	p->lru.next = c;
}

static bool chunk_evictable(const struct rdm_pin *p, const struct rdm_pin_chunk *c)
{
	return !c->busy || (p->idle_any && c->busy_seq <= p->idle_seq);
}

/* Least recently used chunk that is not busy, or NULL. */
static struct rdm_pin_chunk *lru_victim(const struct rdm_pin *p)
{
	for (struct rdm_pin_chunk *c = p->lru.prev; c != &p->lru; c = c->prev)
		if (chunk_evictable(p, c))
			return c;
	return NULL;
}

static uint64_t chunk_index(const struct rdm_pin *p, const struct rdm_pin_chunk *c)
{
	return (uint64_t)(c - p->regs[c->region].chunks);
}

/* Deregister c; on failure it stays registered and on the list. */
static int chunk_release(struct rdm_pin *p, struct rdm_pin_chunk *c)
{
	uint64_t len = c->mr->length;
	int ret;

	ret = rdm_pin_dereg(c->mr);
	if (ret)
		return ret;
	lru_unlink(c);
	c->mr = NULL;
	c->busy = false;
	c->busy_seq = 0;
	p->st.registered_bytes -= len;
	return 0;
}

/* Slots for region r, allocated on its first use. */
static int region_slots(struct rdm_pin *p, unsigned r, char *err, size_t errlen)
{
	struct rdm_pin_reg *g = &p->regs[r];

	if (g->chunks)
		return 0;
	g->chunks = calloc(g->nslots, sizeof(*g->chunks));
	if (!g->chunks) {
		rdm_errtext(err, errlen, "pin: out of memory for %" PRIu64 " chunk slots of region %u",
			    g->nslots, r);
		return -ENOMEM;
	}
	for (uint64_t k = 0; k < g->nslots; k++)
		g->chunks[k].region = r;
	return 0;
}

/* Evict idle chunks, oldest first, until len more bytes fit in the budget. */
static int make_room(struct rdm_pin *p, uint64_t len, char *err, size_t errlen)
{
	while (len > p->budget - p->st.registered_bytes) {
		struct rdm_pin_chunk *c = lru_victim(p);
		char ebuf[64];
		uint64_t k;
		int ret;

		if (!c) {
			uint64_t n = 0;

			for (struct rdm_pin_chunk *b = p->lru.next; b != &p->lru; b = b->next)
				n++;
			rdm_errtext(err, errlen,
				    "pin: budget of %" PRIu64 " bytes spent by %" PRIu64
				    " registered chunks (%" PRIu64 " bytes), all busy; %" PRIu64
				    " more needed",
				    p->budget, n, p->st.registered_bytes, len);
			return -ENOSPC;
		}
		k = chunk_index(p, c);
		ret = chunk_release(p, c);
		if (ret) {
			rdm_errtext(err, errlen, "ibv_dereg_mr(region %u, chunk %" PRIu64 "): %s",
				    c->region, k, strerror_r(-ret, ebuf, sizeof(ebuf)));
			return ret;
		}
		p->st.evictions++;
	}
	return 0;
}

int rdm_pin_cache_get(struct rdm_pin *p, unsigned r, uint64_t off, struct rdm_pin_key *key,
		      char *err, size_t errlen)
{
	struct rdm_pin_reg *g = &p->regs[r];
	uint64_t chunk = p->o.chunk_size;
	uint64_t k = off / chunk, start = k * chunk;
	uint64_t len = g->len - start < chunk ? g->len - start : chunk; /* the last may be short */
	struct rdm_pin_chunk *c;
	struct ibv_mr *mr;
	int64_t t0;
	int ret;

	ret = region_slots(p, r, err, errlen);
	if (ret)
		return ret;
	c = &g->chunks[k];
	if (c->mr) {
		/* Hit: most recently used now. */
		lru_unlink(c);
		lru_push_front(p, c);
		rdm_pin_key_of(c->mr, key);
		return 0;
	}

	if (len > p->budget) {
		rdm_errtext(err, errlen,
			    "pin: chunk %" PRIu64 " of region %u is %" PRIu64
			    " bytes, more than the whole budget of %" PRIu64
			    " (use a smaller chunk size or raise the budget / ulimit -l)",
			    k, r, len, p->budget);
		return -ENOMEM;
	}
	ret = make_room(p, len, err, errlen);
	if (ret)
		return ret;

	t0 = rdm_pin_now_us();
	ret = rdm_pin_reg(p, r, start, len, &mr, err, errlen);
	p->st.reg_time_us += (uint64_t)(rdm_pin_now_us() - t0);
	if (ret)
		return ret;
	c->mr = mr;
	c->busy = false;
	c->busy_seq = 0;
	lru_push_front(p, c);
	p->st.registrations++;
	rdm_pin_account_add(p, len);
	rdm_pin_key_of(mr, key);
	return 0;
}

bool rdm_pin_cache_has(const struct rdm_pin *p, unsigned r, uint64_t off)
{
	const struct rdm_pin_reg *g = &p->regs[r];

	return g->chunks && g->chunks[off / p->o.chunk_size].mr;
}

void rdm_pin_cache_mark_busy(struct rdm_pin *p, unsigned r, uint64_t off, uint64_t seq)
{
	struct rdm_pin_reg *g = &p->regs[r];
	struct rdm_pin_chunk *c;

	/* Not registered: nothing to keep (the next get registers it afresh). */
	if (!g->chunks)
		return;
	c = &g->chunks[off / p->o.chunk_size];
	if (!c->mr)
		return;
	/* Keep the highest: the chunk is idle once its last user completes. */
	if (!c->busy || seq > c->busy_seq)
		c->busy_seq = seq;
	c->busy = true;
}

int rdm_pin_cache_drop(struct rdm_pin *p, unsigned r, uint64_t off)
{
	struct rdm_pin_reg *g = &p->regs[r];
	struct rdm_pin_chunk *c;

	if (!g->chunks)
		return 0;
	c = &g->chunks[off / p->o.chunk_size];
	return c->mr ? chunk_release(p, c) : 0;
}

void rdm_pin_cache_destroy(struct rdm_pin *p)
{
	while (p->lru.next != &p->lru) {
		struct rdm_pin_chunk *c = p->lru.next;

		/* A failed dereg still leaves the list: the PD's owner reclaims the MR. */
		if (chunk_release(p, c)) {
			lru_unlink(c);
			c->mr = NULL;
		}
	}
	for (unsigned r = 0; r < p->n; r++) {
		free(p->regs[r].chunks);
		p->regs[r].chunks = NULL;
	}
	p->st.registered_bytes = 0;
}
