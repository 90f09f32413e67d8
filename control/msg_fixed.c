/* SPDX-License-Identifier: MIT */
/* Payload layouts of one fixed size: the handshake, sequence numbers, acks. */
#include <errno.h>
#include <stdbool.h>

#include "control/codec.h"

/* ---- empty: BLOCKS_ACK ---- */

static int empty_size(const struct rdm_msg *m, uint64_t *plen)
{
	(void)m;
	*plen = 0;
	return 0;
}

static void empty_enc(const struct rdm_msg *m, uint8_t *p)
{
	(void)m;
	(void)p;
}

static int empty_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)p;
	(void)plen;
	(void)m;
	return 0;
}

/* ---- HELLO: u32 magic, u16 version, u16 flags, u64 features ---- */

static int hello_size(const struct rdm_msg *m, uint64_t *plen)
{
	*plen = 16;
	return m->u.hello.magic == RDM_WIRE_MAGIC ? 0 : -EINVAL;
}

static void hello_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_hello *h = &m->u.hello;

	rdm_put_u32(p, h->magic);
	rdm_put_u16(p + 4, h->version);
	rdm_put_u16(p + 6, h->flags);
	rdm_put_u64(p + 8, h->features);
}

static int hello_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_hello *h = &m->u.hello;

	(void)plen;
	h->magic = rdm_get_u32(p);
	h->version = rdm_get_u16(p + 4);
	h->flags = rdm_get_u16(p + 6);
	h->features = rdm_get_u64(p + 8);
	/* The version is the caller's to judge; a wrong magic is not our protocol. */
	return h->magic == RDM_WIRE_MAGIC ? 0 : -EBADMSG;
}

/* ---- u64 seq: ITER_END, COMPLETE, FENCE, RP_FENCE_ACK, RP_COMPLETE_ACK ---- */

static int seq_size(const struct rdm_msg *m, uint64_t *plen)
{
	(void)m;
	*plen = 8;
	return 0;
}

static void seq_enc(const struct rdm_msg *m, uint8_t *p)
{
	rdm_put_u64(p, m->u.seq.seq);
}

static int seq_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)plen;
	m->u.seq.seq = rdm_get_u64(p);
	return 0;
}

/* ---- u32 value: RP_SHUT, RP_PING, RP_PONG, RP_RESUME_ACK, RP_SWITCHOVER_ACK ---- */

static int u32_size(const struct rdm_msg *m, uint64_t *plen)
{
	(void)m;
	*plen = 4;
	return 0;
}

static void u32_enc(const struct rdm_msg *m, uint8_t *p)
{
	rdm_put_u32(p, m->u.u32.value);
}

static int u32_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)plen;
	m->u.u32.value = rdm_get_u32(p);
	return 0;
}

/* ---- DEVSTATE_END: u64 total, u32 crc ---- */

static int dev_end_size(const struct rdm_msg *m, uint64_t *plen)
{
	(void)m;
	*plen = 12;
	return 0;
}

static void dev_end_enc(const struct rdm_msg *m, uint8_t *p)
{
	rdm_put_u64(p, m->u.dev_end.total);
	rdm_put_u32(p + 8, m->u.dev_end.crc);
}

static int dev_end_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)plen;
	m->u.dev_end.total = rdm_get_u64(p);
	m->u.dev_end.crc = rdm_get_u32(p + 8);
	return 0;
}

/* ---- CHANNEL: u32 magic, u16 version, u16 index, u16 count, u16 flags, u64 token ---- */

static bool channel_ok(const struct rdm_channel *c)
{
	return c->magic == RDM_WIRE_MAGIC && c->index < c->count;
}

static int channel_size(const struct rdm_msg *m, uint64_t *plen)
{
	*plen = 20;
	return channel_ok(&m->u.channel) ? 0 : -EINVAL;
}

static void channel_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_channel *c = &m->u.channel;

	rdm_put_u32(p, c->magic);
	rdm_put_u16(p + 4, c->version);
	rdm_put_u16(p + 6, c->index);
	rdm_put_u16(p + 8, c->count);
	rdm_put_u16(p + 10, c->flags);
	rdm_put_u64(p + 12, c->token);
}

static int channel_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_channel *c = &m->u.channel;

	(void)plen;
	c->magic = rdm_get_u32(p);
	c->version = rdm_get_u16(p + 4);
	c->index = rdm_get_u16(p + 6);
	c->count = rdm_get_u16(p + 8);
	c->flags = rdm_get_u16(p + 10);
	c->token = rdm_get_u64(p + 12);
	return channel_ok(c) ? 0 : -EBADMSG;
}

/* ---- RP_REQ_PAGES: u32 block, u64 offset, u64 length ---- */

static bool req_ok(const struct rdm_req_pages *r)
{
	return r->length > 0 && rdm_range_ok(r->offset, r->length);
}

static int req_size(const struct rdm_msg *m, uint64_t *plen)
{
	*plen = 20;
	return req_ok(&m->u.req) ? 0 : -EINVAL;
}

static void req_enc(const struct rdm_msg *m, uint8_t *p)
{
	rdm_put_u32(p, m->u.req.block);
	rdm_put_u64(p + 4, m->u.req.offset);
	rdm_put_u64(p + 12, m->u.req.length);
}

static int req_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)plen;
	m->u.req.block = rdm_get_u32(p);
	m->u.req.offset = rdm_get_u64(p + 4);
	m->u.req.length = rdm_get_u64(p + 12);
	return req_ok(&m->u.req) ? 0 : -EBADMSG;
}

RDM_LAYOUT(empty, 0, true);
RDM_LAYOUT(hello, 16, true);
RDM_LAYOUT(seq, 8, true);
RDM_LAYOUT(u32, 4, true);
RDM_LAYOUT(dev_end, 12, true);
RDM_LAYOUT(channel, 20, true);
RDM_LAYOUT(req, 20, true);
