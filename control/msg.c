/* SPDX-License-Identifier: MIT */
/*
 * Message codec entry points. The table below is generated from
 * RDM_MSG_LIST: it gives each type its wire name and its payload layout
 * (msg_fixed.c, msg_var.c), so a new type without a layout does not compile.
 * Nothing here allocates; decoded variable parts point into the frame.
 */
#include <errno.h>

#include "control/codec.h"

/* The payload layout of each type; a type missing here fails to compile. */
#define LAYOUT_OF_HELLO hello
#define LAYOUT_OF_BLOCKS blocks
#define LAYOUT_OF_BLOCKS_ACK empty
#define LAYOUT_OF_ZERO_RUNS zero
#define LAYOUT_OF_ITER_END seq
#define LAYOUT_OF_DEVSTATE dev
#define LAYOUT_OF_DEVSTATE_END dev_end
#define LAYOUT_OF_COMPLETE seq
#define LAYOUT_OF_ERROR error
#define LAYOUT_OF_PAGES pages
#define LAYOUT_OF_FENCE seq
#define LAYOUT_OF_CHANNEL channel
#define LAYOUT_OF_GO seq
#define LAYOUT_OF_POSTCOPY_LISTEN seq
#define LAYOUT_OF_POSTCOPY_DISCARD req
#define LAYOUT_OF_POSTCOPY_END seq
#define LAYOUT_OF_RP_SHUT u32
#define LAYOUT_OF_RP_PING u32
#define LAYOUT_OF_RP_PONG u32
#define LAYOUT_OF_RP_REQ_PAGES req
#define LAYOUT_OF_RP_RECV_BITMAP bitmap
#define LAYOUT_OF_RP_RESUME_ACK u32
#define LAYOUT_OF_RP_SWITCHOVER_ACK u32
#define LAYOUT_OF_RP_FENCE_ACK seq
#define LAYOUT_OF_RP_COMPLETE_ACK seq
#define LAYOUT_OF_RP_READY seq
#define LAYOUT_OF_RDMA_KEYS rdma_keys
#define LAYOUT_OF_RDMA_REG rdma_reg
#define LAYOUT_OF_RDMA_READY rdma_ready
#define LAYOUT_OF_AUTH_NONCE nonce
#define LAYOUT_OF_AUTH_PROOF proof
#define LAYOUT_OF_CHAN_PROOF chan_proof

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

struct codec {
	const char *name;
	const struct rdm_layout *layout;
};

/* Indexed by code; holes (unassigned codes) have name == NULL. A duplicate
 * code is a compile error under -Werror (-Woverride-init). */
static const struct codec codecs[] = {
#define RDM_X_CODEC(name, code, str) [code] = { str, &CAT(rdm_layout_, LAYOUT_OF_##name) },
	RDM_MSG_LIST(RDM_X_CODEC)
#undef RDM_X_CODEC
};

static const struct codec *codec_of(unsigned type)
{
	if (type >= sizeof(codecs) / sizeof(codecs[0]) || !codecs[type].name)
		return NULL;
	return &codecs[type];
}

const char *rdm_msg_name(uint16_t type)
{
	const struct codec *c = codec_of(type);

	return c ? c->name : NULL;
}

/* Validated payload length of m, or -EINVAL. */
static int payload_len(const struct rdm_msg *m, const struct codec **cp, uint32_t *plen)
{
	const struct codec *c = codec_of((unsigned)m->type);
	uint64_t n;
	int rc;

	if (!c)
		return -EINVAL;
	rc = c->layout->size(m, &n);
	if (rc)
		return rc;
	/* We would refuse this frame from a peer: never send one. */
	if (n > RDM_MAX_PAYLOAD)
		return -EINVAL;
	*cp = c;
	*plen = (uint32_t)n;
	return 0;
}

size_t rdm_msg_size(const struct rdm_msg *m)
{
	const struct codec *c;
	uint32_t plen;

	if (!m || payload_len(m, &c, &plen))
		return 0;
	return RDM_HDR_LEN + (size_t)plen;
}

int rdm_msg_encode(const struct rdm_msg *m, void *buf, size_t cap, size_t *out_len)
{
	const struct codec *c;
	uint32_t plen;
	int rc;

	if (!m)
		return -EINVAL;
	rc = payload_len(m, &c, &plen);
	if (rc)
		return rc;
	if (cap < RDM_HDR_LEN + (size_t)plen)
		return -ENOSPC;
	rdm_hdr_encode(buf, (uint16_t)m->type, plen);
	c->layout->enc(m, (uint8_t *)buf + RDM_HDR_LEN);
	if (out_len)
		*out_len = RDM_HDR_LEN + (size_t)plen;
	return 0;
}

int rdm_msg_decode(const void *buf, size_t len, struct rdm_msg *m)
{
	const struct rdm_layout *l;
	uint16_t type;
	uint32_t plen;
	int rc;

	rc = rdm_hdr_decode(buf, len, &type, &plen);
	if (rc)
		return rc;
	if (len - RDM_HDR_LEN < plen)
		return -EAGAIN;
	/* One frame per call: extra bytes mean the sender's framing is broken. */
	if (len - RDM_HDR_LEN > plen)
		return -EBADMSG;
	l = codec_of(type)->layout;
	if (plen < l->min || (l->fixed && plen != l->min))
		return -EBADMSG;
	m->type = (enum rdm_msg_type)type;
	return l->dec((const uint8_t *)buf + RDM_HDR_LEN, plen, m);
}
