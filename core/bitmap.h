/* SPDX-License-Identifier: MIT */
/* Dirty bitmaps: one bit per page, 64-bit words, bit i of word i/64. */
#ifndef RDMIG_CORE_BITMAP_H
#define RDMIG_CORE_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline uint64_t rdm_bitmap_words(uint64_t nbits)
{
	return (nbits + 63) / 64;
}

void rdm_bitmap_set_all(uint64_t *map, uint64_t nbits);
void rdm_bitmap_clear_all(uint64_t *map, uint64_t nbits);
void rdm_bitmap_set_range(uint64_t *map, uint64_t first, uint64_t n);
void rdm_bitmap_clear_range(uint64_t *map, uint64_t first, uint64_t n);
uint64_t rdm_bitmap_count(const uint64_t *map, uint64_t nbits);
/* true when any bit of [first, first + n) is set. */
bool rdm_bitmap_any(const uint64_t *map, uint64_t first, uint64_t n);
/* dst |= src over nbits bits. */
void rdm_bitmap_or(uint64_t *dst, const uint64_t *src, uint64_t nbits);

/*
 * Next run of set bits at or after *pos, at most max bits long (0 = no limit),
 * not crossing a multiple of `align` bits (align a power of two, 0 = no limit).
 * Returns the run length and sets *pos to its first bit; 0 when no bit is set
 * from *pos on (then *pos is left as it was).
 */
uint64_t rdm_bitmap_next_run(const uint64_t *map, uint64_t nbits, uint64_t *pos, uint64_t max,
			     uint64_t align);

/* true when len bytes at p are all zero (len a multiple of 8). */
bool rdm_is_zero(const void *p, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif
