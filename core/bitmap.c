/* SPDX-License-Identifier: MIT */
/*
 * Dirty bitmaps. Scans go a 64-bit word at a time: a mostly clean map of a
 * large guest costs one load and compare per 64 pages.
 */
#include <string.h>

#include "core/bitmap.h"

#define WORD_BITS 64u

/* Bits of the last word that lie below nbits (all ones when nbits is a multiple of 64). */
static inline uint64_t tail_mask(uint64_t nbits)
{
	unsigned r = nbits % WORD_BITS;

	return r ? (UINT64_C(1) << r) - 1 : ~UINT64_C(0);
}

void rdm_bitmap_set_all(uint64_t *map, uint64_t nbits)
{
	uint64_t words = rdm_bitmap_words(nbits);

	if (!words)
		return;
	memset(map, 0xff, (words - 1) * sizeof(*map));
	/* Bits past nbits stay clear so a raw word compare or count never sees them. */
	map[words - 1] = tail_mask(nbits);
}

void rdm_bitmap_clear_all(uint64_t *map, uint64_t nbits)
{
	memset(map, 0, rdm_bitmap_words(nbits) * sizeof(*map));
}

/* Bits [first, first + n) set or cleared, whole words at a time between the two ends. */
static void range(uint64_t *map, uint64_t first, uint64_t n, bool set)
{
	uint64_t w, last_w, head, tail;

	if (!n)
		return;
	w = first / WORD_BITS;
	last_w = (first + n - 1) / WORD_BITS;
	head = ~UINT64_C(0) << (first % WORD_BITS);
	tail = ~UINT64_C(0) >> (WORD_BITS - 1 - (first + n - 1) % WORD_BITS);
	if (w == last_w)
		head &= tail;
	map[w] = set ? map[w] | head : map[w] & ~head;
	if (w == last_w)
		return;
	for (w++; w < last_w; w++)
		map[w] = set ? ~UINT64_C(0) : 0;
	map[last_w] = set ? map[last_w] | tail : map[last_w] & ~tail;
}

void rdm_bitmap_set_range(uint64_t *map, uint64_t first, uint64_t n)
{
	range(map, first, n, true);
}

void rdm_bitmap_clear_range(uint64_t *map, uint64_t first, uint64_t n)
{
	range(map, first, n, false);
}

uint64_t rdm_bitmap_count(const uint64_t *map, uint64_t nbits)
{
	uint64_t words = rdm_bitmap_words(nbits), n = 0;

	if (!words)
		return 0;
	for (uint64_t i = 0; i + 1 < words; i++)
		n += (uint64_t)__builtin_popcountll(map[i]);
	return n + (uint64_t)__builtin_popcountll(map[words - 1] & tail_mask(nbits));
}

void rdm_bitmap_or(uint64_t *dst, const uint64_t *src, uint64_t nbits)
{
	for (uint64_t i = 0, words = rdm_bitmap_words(nbits); i < words; i++)
		dst[i] |= src[i];
}

/*
 * First bit at or after pos, below end, whose value is `want`; end when none.
 * Words are inverted when looking for a clear bit so both cases use ctz.
 */
static uint64_t find_bit(const uint64_t *map, uint64_t pos, uint64_t end, bool want)
{
	uint64_t flip = want ? 0 : ~UINT64_C(0);
	uint64_t w, word;

	if (pos >= end)
		return end;
	w = pos / WORD_BITS;
	word = (map[w] ^ flip) & (~UINT64_C(0) << (pos % WORD_BITS));
	while (!word) {
		/* Next word starts past end: nothing found (also avoids reading past the map). */
		if (++w >= (end + WORD_BITS - 1) / WORD_BITS)
			return end;
		word = map[w] ^ flip;
	}
	pos = w * WORD_BITS + (uint64_t)__builtin_ctzll(word);
	return pos < end ? pos : end;
}

bool rdm_bitmap_any(const uint64_t *map, uint64_t first, uint64_t n)
{
	return n && find_bit(map, first, first + n, true) < first + n;
}

uint64_t rdm_bitmap_next_run(const uint64_t *map, uint64_t nbits, uint64_t *pos, uint64_t max,
			     uint64_t align)
{
	uint64_t start, end;

	start = find_bit(map, *pos, nbits, true);
	if (start >= nbits)
		return 0;
	end = nbits;
	/* max 0 means no length limit. Subtraction form: start + max may overflow. */
	if (max && max < end - start)
		end = start + max;
	if (align) {
		/* Works for any align; the header asks for a power of two anyway. */
		uint64_t room = align - start % align;

		if (room < end - start)
			end = start + room;
	}
	*pos = start;
	return find_bit(map, start, end, false) - start;
}

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	/* memcpy: p may be unaligned; compiles to a single load. */
	memcpy(&v, p, sizeof(v));
	return v;
}

bool rdm_is_zero(const void *p, uint64_t len)
{
	const unsigned char *b = p;
	uint64_t i = 0;

	/* 64 bytes a step, OR-ed so there is one branch per cache line. */
	for (; i + 64 <= len; i += 64) {
		uint64_t acc = load64(b + i) | load64(b + i + 8) | load64(b + i + 16) |
			       load64(b + i + 24) | load64(b + i + 32) | load64(b + i + 40) |
			       load64(b + i + 48) | load64(b + i + 56);
		if (acc)
			return false;
	}
	for (; i + 8 <= len; i += 8)
		if (load64(b + i))
			return false;
	/* Length not a multiple of 8 is outside the contract; still answer correctly. */
	for (; i < len; i++)
		if (b[i])
			return false;
	return true;
}
