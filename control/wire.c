/* SPDX-License-Identifier: MIT */
/*
 * Byte order and the frame header: the only place in rdmig that knows the wire
 * is big-endian. Byte-wise shifts instead of htobe*(): no alignment assumption
 * on frames received at any offset, and compilers turn them into one bswap.
 */
#include <errno.h>

#include "control/msg.h"

void rdm_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void rdm_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void rdm_put_u64(uint8_t *p, uint64_t v)
{
	rdm_put_u32(p, (uint32_t)(v >> 32));
	rdm_put_u32(p + 4, (uint32_t)v);
}

uint16_t rdm_get_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

uint32_t rdm_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t rdm_get_u64(const uint8_t *p)
{
	return (uint64_t)rdm_get_u32(p) << 32 | rdm_get_u32(p + 4);
}

void rdm_hdr_encode(void *buf, uint16_t type, uint32_t payload_len)
{
	uint8_t *p = buf;

	rdm_put_u16(p, type);
	rdm_put_u16(p + 2, 0);
	rdm_put_u32(p + 4, payload_len);
}

int rdm_hdr_decode(const void *buf, size_t len, uint16_t *type, uint32_t *payload_len)
{
	const uint8_t *p = buf;
	uint16_t t;
	uint32_t plen;

	if (len < RDM_HDR_LEN)
		return -EAGAIN;
	t = rdm_get_u16(p);
	plen = rdm_get_u32(p + 4);
	/* Flags are reserved: a peer that sets them speaks a protocol we do not. */
	if (rdm_get_u16(p + 2) != 0 || !rdm_msg_name(t))
		return -EPROTO;
	/* Refused before anyone allocates or waits for the declared length. */
	if (plen > RDM_MAX_PAYLOAD)
		return -EMSGSIZE;
	*type = t;
	*payload_len = plen;
	return 0;
}

void rdm_pages_hdr_encode(void *prefix, uint32_t block, uint64_t offset)
{
	uint8_t *p = prefix;

	rdm_put_u32(p, block);
	rdm_put_u64(p + 4, offset);
}

void rdm_pages_hdr_decode(const void *prefix, uint32_t *block, uint64_t *offset)
{
	const uint8_t *p = prefix;

	*block = rdm_get_u32(p);
	*offset = rdm_get_u64(p + 4);
}
