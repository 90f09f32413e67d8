/* SPDX-License-Identifier: MIT */
/*
 * Payload layouts with counts, strings or trailing bytes. Every count is
 * checked against the payload length in 64-bit arithmetic before any element
 * is read; decoded variable parts stay in the frame and the accessors read
 * them from there.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "control/codec.h"

#define BLOCK_FIXED 14u /* u16 name_len, u64 length, u32 page_size */
#define RUN_LEN 12u     /* u64 first_page, u32 npages */

/* The kernel's convention: -4095..-1 are errors; anything else is not one. */
#define ERRNO_MAX 4095

static bool page_size_ok(uint32_t ps)
{
	return ps >= 512 && (ps & (ps - 1)) == 0;
}

static bool block_ok(uint64_t length, uint32_t page_size)
{
	return page_size_ok(page_size) && length > 0 && length % page_size == 0;
}

static uint64_t bitmap_words(uint64_t nbits)
{
	/* Not (nbits + 63) / 64: that wraps for nbits near UINT64_MAX. */
	return nbits / 64 + (nbits % 64 != 0);
}

/* ---- BLOCKS: u32 count, count x (u16 name_len, name, u64 length, u32 page_size) ---- */

static int blocks_size(const struct rdm_msg *m, uint64_t *plen)
{
	const struct rdm_blocks *b = &m->u.blocks;
	uint64_t n = 4;

	if (b->count > RDM_MAX_BLOCKS || (b->count && !b->desc))
		return -EINVAL;
	for (uint32_t i = 0; i < b->count; i++) {
		const struct rdm_block_desc *d = &b->desc[i];
		size_t nlen = strnlen(d->name, sizeof(d->name));

		/* nlen == sizeof(name) means no terminating NUL: too long. */
		if (nlen == 0 || nlen > RDM_NAME_MAX || !block_ok(d->length, d->page_size))
			return -EINVAL;
		n += BLOCK_FIXED + nlen;
	}
	*plen = n;
	return 0;
}

static void blocks_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_blocks *b = &m->u.blocks;

	rdm_put_u32(p, b->count);
	p += 4;
	for (uint32_t i = 0; i < b->count; i++) {
		const struct rdm_block_desc *d = &b->desc[i];
		size_t nlen = strlen(d->name); /* size() proved it is 1..255 */

		rdm_put_u16(p, (uint16_t)nlen);
		memcpy(p + 2, d->name, nlen);
		p += 2 + nlen;
		rdm_put_u64(p, d->length);
		rdm_put_u32(p + 8, d->page_size);
		p += 12;
	}
}

static int blocks_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_blocks *b = &m->u.blocks;
	const uint8_t *q = p + 4;
	uint32_t left = plen - 4;

	b->count = rdm_get_u32(p);
	b->desc = NULL;
	b->raw = q;
	/* Cheap bound first, so a huge count costs nothing to refuse. */
	if (b->count > RDM_MAX_BLOCKS || (uint64_t)b->count * (BLOCK_FIXED + 1) > left)
		return -EBADMSG;
	for (uint32_t i = 0; i < b->count; i++) {
		uint16_t nlen;

		if (left < 2)
			return -EBADMSG;
		nlen = rdm_get_u16(q);
		if (nlen == 0 || nlen > RDM_NAME_MAX || left < BLOCK_FIXED + (uint32_t)nlen)
			return -EBADMSG;
		/* Names become C strings: an embedded NUL would silently shorten one. */
		if (memchr(q + 2, 0, nlen))
			return -EBADMSG;
		if (!block_ok(rdm_get_u64(q + 2 + nlen), rdm_get_u32(q + 2 + nlen + 8)))
			return -EBADMSG;
		q += BLOCK_FIXED + nlen;
		left -= BLOCK_FIXED + nlen;
	}
	return left == 0 ? 0 : -EBADMSG;
}

void rdm_blocks_get(const struct rdm_blocks *b, uint32_t i, struct rdm_block_desc *out)
{
	const uint8_t *q = b->raw;
	uint16_t nlen;

	/* Entries have variable length: walk to entry i (validated by decode). */
	for (; i > 0; i--)
		q += BLOCK_FIXED + rdm_get_u16(q);
	nlen = rdm_get_u16(q);
	memcpy(out->name, q + 2, nlen);
	out->name[nlen] = '\0';
	out->length = rdm_get_u64(q + 2 + nlen);
	out->page_size = rdm_get_u32(q + 2 + nlen + 8);
}

/* ---- ZERO_RUNS: u32 block, u32 count, count x (u64 first_page, u32 npages) ---- */

static bool run_ok(uint64_t first, uint32_t npages)
{
	return npages >= 1 && rdm_range_ok(first, npages);
}

static int zero_size(const struct rdm_msg *m, uint64_t *plen)
{
	const struct rdm_zero_runs *z = &m->u.zero;

	if (z->count && !z->runs)
		return -EINVAL;
	for (uint32_t i = 0; i < z->count; i++)
		if (!run_ok(z->runs[i].first_page, z->runs[i].npages))
			return -EINVAL;
	*plen = 8 + (uint64_t)z->count * RUN_LEN;
	return 0;
}

static void zero_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_zero_runs *z = &m->u.zero;

	rdm_put_u32(p, z->block);
	rdm_put_u32(p + 4, z->count);
	p += 8;
	for (uint32_t i = 0; i < z->count; i++, p += RUN_LEN) {
		rdm_put_u64(p, z->runs[i].first_page);
		rdm_put_u32(p + 8, z->runs[i].npages);
	}
}

static int zero_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_zero_runs *z = &m->u.zero;

	z->block = rdm_get_u32(p);
	z->count = rdm_get_u32(p + 4);
	z->runs = NULL;
	z->raw = p + 8;
	if ((uint64_t)z->count * RUN_LEN != plen - 8)
		return -EBADMSG;
	for (uint32_t i = 0; i < z->count; i++) {
		const uint8_t *r = z->raw + (size_t)i * RUN_LEN;

		if (!run_ok(rdm_get_u64(r), rdm_get_u32(r + 8)))
			return -EBADMSG;
	}
	return 0;
}

void rdm_zero_runs_get(const struct rdm_zero_runs *z, uint32_t i, struct rdm_zero_run *out)
{
	const uint8_t *r = z->raw + (size_t)i * RUN_LEN;

	out->first_page = rdm_get_u64(r);
	out->npages = rdm_get_u32(r + 8);
}

/* ---- DEVSTATE: u64 offset, bytes ---- */

static int dev_size(const struct rdm_msg *m, uint64_t *plen)
{
	const struct rdm_devstate *d = &m->u.dev;

	if ((d->len && !d->data) || !rdm_range_ok(d->offset, d->len))
		return -EINVAL;
	*plen = 8 + (uint64_t)d->len;
	return 0;
}

static void dev_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_devstate *d = &m->u.dev;

	rdm_put_u64(p, d->offset);
	if (d->len)
		memcpy(p + 8, d->data, d->len);
}

static int dev_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_devstate *d = &m->u.dev;

	d->offset = rdm_get_u64(p);
	d->len = plen - 8;
	d->data = p + 8;
	return rdm_range_ok(d->offset, d->len) ? 0 : -EBADMSG;
}

/* ---- ERROR: i32 code, u16 text_len, text ---- */

static bool errcode_ok(int32_t code)
{
	/* A code >= 0 would read as success to a caller that returns it. */
	return code < 0 && code >= -ERRNO_MAX;
}

static int error_size(const struct rdm_msg *m, uint64_t *plen)
{
	if (!errcode_ok(m->u.error.code))
		return -EINVAL;
	/* Longer text is cut, not refused: the abort must still get through. */
	*plen = 6 + strnlen(m->u.error.text, RDM_ERRMSG_MAX);
	return 0;
}

static void error_enc(const struct rdm_msg *m, uint8_t *p)
{
	size_t tlen = strnlen(m->u.error.text, RDM_ERRMSG_MAX);

	rdm_put_u32(p, (uint32_t)m->u.error.code);
	rdm_put_u16(p + 4, (uint16_t)tlen);
	memcpy(p + 6, m->u.error.text, tlen);
}

static int error_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_error *e = &m->u.error;
	uint16_t tlen = rdm_get_u16(p + 4);

	e->code = (int32_t)rdm_get_u32(p);
	e->text[0] = '\0';
	if (!errcode_ok(e->code) || tlen > RDM_ERRMSG_MAX || plen - 6 != tlen)
		return -EBADMSG;
	if (memchr(p + 6, 0, tlen))
		return -EBADMSG;
	memcpy(e->text, p + 6, tlen);
	e->text[tlen] = '\0';
	return 0;
}

/* ---- PAGES: u32 block, u64 offset, bytes ---- */

static int pages_size(const struct rdm_msg *m, uint64_t *plen)
{
	const struct rdm_pages *pg = &m->u.pages;

	if ((pg->len && !pg->data) || !rdm_range_ok(pg->offset, pg->len))
		return -EINVAL;
	*plen = RDM_PAGES_PREFIX + (uint64_t)pg->len;
	return 0;
}

static void pages_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_pages *pg = &m->u.pages;

	rdm_pages_hdr_encode(p, pg->block, pg->offset);
	if (pg->len)
		memcpy(p + RDM_PAGES_PREFIX, pg->data, pg->len);
}

static int pages_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_pages *pg = &m->u.pages;

	rdm_pages_hdr_decode(p, &pg->block, &pg->offset);
	pg->len = plen - RDM_PAGES_PREFIX;
	pg->data = p + RDM_PAGES_PREFIX;
	return rdm_range_ok(pg->offset, pg->len) ? 0 : -EBADMSG;
}

/* ---- RP_RECV_BITMAP: u32 block, u64 nbits, ceil(nbits/64) x u64 ---- */

/* Bits of the last word that lie past nbits; 0 when nbits fills it. */
static uint64_t bitmap_pad_mask(uint64_t nbits)
{
	return nbits % 64 ? ~0ull << (nbits % 64) : 0;
}

static int bitmap_size(const struct rdm_msg *m, uint64_t *plen)
{
	const struct rdm_recv_bitmap *b = &m->u.bitmap;
	uint64_t nw = bitmap_words(b->nbits);

	if (nw && !b->words)
		return -EINVAL;
	/* nw <= 2^58, so this cannot wrap; the caller refuses > RDM_MAX_PAYLOAD. */
	*plen = 12 + nw * 8;
	return 0;
}

static void bitmap_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_recv_bitmap *b = &m->u.bitmap;
	uint64_t nw = bitmap_words(b->nbits);

	rdm_put_u32(p, b->block);
	rdm_put_u64(p + 4, b->nbits);
	p += 12;
	for (uint64_t i = 0; i < nw; i++, p += 8) {
		uint64_t w = b->words[i];

		/* Bits past nbits mean nothing; sending them as 0 keeps frames canonical. */
		if (i == nw - 1)
			w &= ~bitmap_pad_mask(b->nbits);
		rdm_put_u64(p, w);
	}
}

static int bitmap_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_recv_bitmap *b = &m->u.bitmap;
	uint64_t nw;

	b->block = rdm_get_u32(p);
	b->nbits = rdm_get_u64(p + 4);
	b->words = NULL;
	b->raw = p + 12;
	nw = bitmap_words(b->nbits);
	/* Compare in bytes / 8 so no product can wrap. */
	if ((plen - 12) % 8 != 0 || (plen - 12) / 8 != nw)
		return -EBADMSG;
	if (nw && (rdm_get_u64(b->raw + (nw - 1) * 8) & bitmap_pad_mask(b->nbits)))
		return -EBADMSG;
	return 0;
}

uint64_t rdm_recv_bitmap_word(const struct rdm_recv_bitmap *b, uint64_t i)
{
	if (b->words)
		return b->words[i];
	return rdm_get_u64(b->raw + i * 8);
}

RDM_LAYOUT(blocks, 4, false);
RDM_LAYOUT(zero, 8, false);
RDM_LAYOUT(dev, 8, false);
RDM_LAYOUT(error, 6, false);
RDM_LAYOUT(pages, RDM_PAGES_PREFIX, false);
RDM_LAYOUT(bitmap, 12, false);
