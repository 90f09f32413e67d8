/* SPDX-License-Identifier: MIT */
/* Payload layouts of the rdma transport's registration messages. */
#include <errno.h>
#include <stdbool.h>

#include "control/codec.h"

#define KEY_LEN 32u   /* u32 block, u64 offset, u64 len, u64 addr, u32 rkey */
#define CHUNK_LEN 12u /* u32 block, u64 offset */

/* ---- RDMA_KEYS ---- */

static bool key_ok(uint64_t offset, uint64_t len)
{
	return len >= 1 && rdm_range_ok(offset, len);
}

static int rdma_keys_size(const struct rdm_msg *m, uint64_t *plen)
{
	const struct rdm_rdma_keys *k = &m->u.keys;

	if (k->count > RDM_RDMA_KEYS_MAX || (k->count && !k->keys))
		return -EINVAL;
	for (uint32_t i = 0; i < k->count; i++)
		if (!key_ok(k->keys[i].offset, k->keys[i].len))
			return -EINVAL;
	*plen = 4 + (uint64_t)k->count * KEY_LEN;
	return 0;
}

static void rdma_keys_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_rdma_keys *k = &m->u.keys;

	rdm_put_u32(p, k->count);
	p += 4;
	for (uint32_t i = 0; i < k->count; i++, p += KEY_LEN) {
		rdm_put_u32(p, k->keys[i].block);
		rdm_put_u64(p + 4, k->keys[i].offset);
		rdm_put_u64(p + 12, k->keys[i].len);
		rdm_put_u64(p + 20, k->keys[i].addr);
		rdm_put_u32(p + 28, k->keys[i].rkey);
	}
}

static int rdma_keys_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_rdma_keys *k = &m->u.keys;

	k->count = rdm_get_u32(p);
	k->keys = NULL;
	k->raw = p + 4;
	if (k->count > RDM_RDMA_KEYS_MAX || (uint64_t)k->count * KEY_LEN != plen - 4)
		return -EBADMSG;
	for (uint32_t i = 0; i < k->count; i++) {
		const uint8_t *e = k->raw + (size_t)i * KEY_LEN;

		if (!key_ok(rdm_get_u64(e + 4), rdm_get_u64(e + 12)))
			return -EBADMSG;
	}
	return 0;
}

void rdm_rdma_keys_get(const struct rdm_rdma_keys *k, uint32_t i, struct rdm_rdma_key *out)
{
	const uint8_t *e = k->raw + (size_t)i * KEY_LEN;

	out->block = rdm_get_u32(e);
	out->offset = rdm_get_u64(e + 4);
	out->len = rdm_get_u64(e + 12);
	out->addr = rdm_get_u64(e + 20);
	out->rkey = rdm_get_u32(e + 28);
}

/* ---- RDMA_REG ---- */

static int rdma_reg_size(const struct rdm_msg *m, uint64_t *plen)
{
	const struct rdm_rdma_reg *r = &m->u.reg;
	uint64_t n = (uint64_t)r->nreg + r->ndrop;

	if (n > RDM_RDMA_KEYS_MAX || (n && !r->chunks))
		return -EINVAL;
	*plen = 8 + n * CHUNK_LEN;
	return 0;
}

static void rdma_reg_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_rdma_reg *r = &m->u.reg;

	rdm_put_u32(p, r->nreg);
	rdm_put_u32(p + 4, r->ndrop);
	p += 8;
	for (uint32_t i = 0; i < r->nreg + r->ndrop; i++, p += CHUNK_LEN) {
		rdm_put_u32(p, r->chunks[i].block);
		rdm_put_u64(p + 4, r->chunks[i].offset);
	}
}

static int rdma_reg_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_rdma_reg *r = &m->u.reg;
	uint64_t n;

	r->nreg = rdm_get_u32(p);
	r->ndrop = rdm_get_u32(p + 4);
	r->chunks = NULL;
	r->raw = p + 8;
	n = (uint64_t)r->nreg + r->ndrop;
	if (n > RDM_RDMA_KEYS_MAX || n * CHUNK_LEN != plen - 8)
		return -EBADMSG;
	return 0;
}

void rdm_rdma_reg_get(const struct rdm_rdma_reg *r, uint32_t i, struct rdm_rdma_chunk *out)
{
	const uint8_t *e = r->raw + (size_t)i * CHUNK_LEN;

	out->block = rdm_get_u32(e);
	out->offset = rdm_get_u64(e + 4);
}

/* ---- RDMA_READY ---- */

static int rdma_ready_size(const struct rdm_msg *m, uint64_t *plen)
{
	if (m->u.ready.flags & ~1u)
		return -EINVAL;
	*plen = 12;
	return 0;
}

static void rdma_ready_enc(const struct rdm_msg *m, uint8_t *p)
{
	rdm_put_u32(p, m->u.ready.flags);
	rdm_put_u64(p + 4, m->u.ready.budget);
}

static int rdma_ready_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)plen;
	m->u.ready.flags = rdm_get_u32(p);
	m->u.ready.budget = rdm_get_u64(p + 4);
	return m->u.ready.flags & ~1u ? -EBADMSG : 0;
}

RDM_LAYOUT(rdma_keys, 4, false);
RDM_LAYOUT(rdma_reg, 8, false);
RDM_LAYOUT(rdma_ready, 12, true);
