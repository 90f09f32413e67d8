// SPDX-License-Identifier: MIT
// Dirty bitmaps: set/clear/count, run scanning with max and align, zero pages.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "core/bitmap.h"

namespace {

using Map = std::vector<uint64_t>;
using Runs = std::vector<std::pair<uint64_t, uint64_t>>; // (first, length)

Map Empty(uint64_t nbits)
{
	// One spare word so a scan that reads past the map shows up under ASan.
	return Map(rdm_bitmap_words(nbits) + 1, 0);
}

void Set(Map &m, uint64_t bit)
{
	m[bit / 64] |= UINT64_C(1) << (bit % 64);
}

bool IsSet(const Map &m, uint64_t bit)
{
	return (m[bit / 64] >> (bit % 64)) & 1;
}

Runs AllRuns(const Map &m, uint64_t nbits, uint64_t max, uint64_t align)
{
	Runs out;
	uint64_t pos = 0, n;
	while ((n = rdm_bitmap_next_run(m.data(), nbits, &pos, max, align)) != 0) {
		out.emplace_back(pos, n);
		pos += n;
	}
	return out;
}

// Bit by bit, the obvious way: the reference for the randomized test.
Runs NaiveRuns(const Map &m, uint64_t nbits, uint64_t max, uint64_t align)
{
	Runs out;
	uint64_t i = 0;
	while (i < nbits) {
		if (!IsSet(m, i)) {
			i++;
			continue;
		}
		uint64_t start = i, len = 0;
		do {
			i++;
			len++;
		} while (i < nbits && IsSet(m, i) && (!max || len < max) && (!align || i % align));
		out.emplace_back(start, len);
	}
	return out;
}

TEST(Bitmap, Words)
{
	EXPECT_EQ(rdm_bitmap_words(0), 0u);
	EXPECT_EQ(rdm_bitmap_words(1), 1u);
	EXPECT_EQ(rdm_bitmap_words(64), 1u);
	EXPECT_EQ(rdm_bitmap_words(65), 2u);
}

TEST(Bitmap, SetAllLeavesTailClear)
{
	Map m = Empty(70);
	rdm_bitmap_set_all(m.data(), 70);
	EXPECT_EQ(m[0], ~UINT64_C(0));
	EXPECT_EQ(m[1], (UINT64_C(1) << 6) - 1);
	EXPECT_EQ(m[2], 0u); // past the map: untouched
	EXPECT_EQ(rdm_bitmap_count(m.data(), 70), 70u);
}

TEST(Bitmap, ClearAll)
{
	Map m = Empty(130);
	rdm_bitmap_set_all(m.data(), 130);
	rdm_bitmap_clear_all(m.data(), 130);
	EXPECT_EQ(rdm_bitmap_count(m.data(), 130), 0u);
	for (auto w : m)
		EXPECT_EQ(w, 0u);
}

TEST(Bitmap, SetRangeWithinWord)
{
	Map m = Empty(64);
	rdm_bitmap_set_range(m.data(), 3, 5);
	EXPECT_EQ(m[0], UINT64_C(0x1f) << 3);
	rdm_bitmap_set_range(m.data(), 63, 1);
	EXPECT_TRUE(IsSet(m, 63));
	rdm_bitmap_set_range(m.data(), 10, 0); // empty range: nothing
	EXPECT_EQ(rdm_bitmap_count(m.data(), 64), 6u);
}

TEST(Bitmap, SetRangeAcrossWords)
{
	const uint64_t nbits = 300;
	Map m = Empty(nbits);
	rdm_bitmap_set_range(m.data(), 60, 150); // 60..209: partial, full, full, partial
	for (uint64_t i = 0; i < nbits; i++)
		EXPECT_EQ(IsSet(m, i), i >= 60 && i < 210) << i;
	EXPECT_EQ(rdm_bitmap_count(m.data(), nbits), 150u);
}

TEST(Bitmap, SetRangeWholeWords)
{
	Map m = Empty(256);
	rdm_bitmap_set_range(m.data(), 64, 128);
	EXPECT_EQ(m[0], 0u);
	EXPECT_EQ(m[1], ~UINT64_C(0));
	EXPECT_EQ(m[2], ~UINT64_C(0));
	EXPECT_EQ(m[3], 0u);
}

TEST(Bitmap, ClearRangeWithinAndAcrossWords)
{
	const uint64_t nbits = 300;
	Map m = Empty(nbits);
	rdm_bitmap_set_all(m.data(), nbits);
	rdm_bitmap_clear_range(m.data(), 3, 5);    // within a word
	rdm_bitmap_clear_range(m.data(), 60, 150); // 60..209: partial, full, full, partial
	rdm_bitmap_clear_range(m.data(), 250, 0);  // empty range: nothing
	for (uint64_t i = 0; i < nbits; i++)
		EXPECT_EQ(IsSet(m, i), !(i >= 3 && i < 8) && !(i >= 60 && i < 210)) << i;
}

TEST(Bitmap, CountIgnoresBitsPastNbits)
{
	Map m = Empty(70);
	m[0] = m[1] = ~UINT64_C(0);
	EXPECT_EQ(rdm_bitmap_count(m.data(), 70), 70u);
	EXPECT_EQ(rdm_bitmap_count(m.data(), 0), 0u);
}

TEST(Bitmap, EmptyMapHasNoRun)
{
	for (uint64_t nbits : {0, 1, 64, 65, 1000}) {
		Map m = Empty(nbits);
		uint64_t pos = 0;
		EXPECT_EQ(rdm_bitmap_next_run(m.data(), nbits, &pos, 0, 0), 0u) << nbits;
		EXPECT_EQ(pos, 0u) << "pos left as it was";
	}
}

TEST(Bitmap, RunWithinWord)
{
	Map m = Empty(64);
	rdm_bitmap_set_range(m.data(), 5, 10);
	EXPECT_EQ(AllRuns(m, 64, 0, 0), (Runs{{5, 10}}));
}

TEST(Bitmap, RunAcrossWordBoundaries)
{
	Map m = Empty(512);
	rdm_bitmap_set_range(m.data(), 60, 200); // crosses 64, 128, 192, 256
	EXPECT_EQ(AllRuns(m, 512, 0, 0), (Runs{{60, 200}}));
}

TEST(Bitmap, RunEndingAtWordBoundary)
{
	Map m = Empty(192);
	rdm_bitmap_set_range(m.data(), 0, 64);
	rdm_bitmap_set_range(m.data(), 129, 63);
	EXPECT_EQ(AllRuns(m, 192, 0, 0), (Runs{{0, 64}, {129, 63}}));
}

TEST(Bitmap, FullMapIsOneRun)
{
	Map m = Empty(1000);
	rdm_bitmap_set_all(m.data(), 1000);
	EXPECT_EQ(AllRuns(m, 1000, 0, 0), (Runs{{0, 1000}}));
}

TEST(Bitmap, SparseBitsFarApart)
{
	const uint64_t nbits = 64 * 10000 + 7;
	Map m = Empty(nbits);
	Set(m, 0);
	Set(m, 64 * 5000 + 5);
	Set(m, nbits - 1);
	EXPECT_EQ(AllRuns(m, nbits, 0, 0), (Runs{{0, 1}, {64 * 5000 + 5, 1}, {nbits - 1, 1}}));
}

TEST(Bitmap, MaxLimitsRunLength)
{
	Map m = Empty(256);
	rdm_bitmap_set_range(m.data(), 10, 100);
	EXPECT_EQ(AllRuns(m, 256, 30, 0), (Runs{{10, 30}, {40, 30}, {70, 30}, {100, 10}}));
	EXPECT_EQ(AllRuns(m, 256, 1, 0).size(), 100u);
	EXPECT_EQ(AllRuns(m, 256, UINT64_MAX, 0), (Runs{{10, 100}})); // no overflow
}

TEST(Bitmap, AlignSplitsRuns)
{
	Map m = Empty(256);
	rdm_bitmap_set_range(m.data(), 10, 190); // 10..199
	EXPECT_EQ(AllRuns(m, 256, 0, 64), (Runs{{10, 54}, {64, 64}, {128, 64}, {192, 8}}));
	EXPECT_EQ(AllRuns(m, 256, 0, 128), (Runs{{10, 118}, {128, 72}}));
}

TEST(Bitmap, AlignSmallerThanWord)
{
	Map m = Empty(64);
	rdm_bitmap_set_range(m.data(), 3, 20); // 3..22
	EXPECT_EQ(AllRuns(m, 64, 0, 8), (Runs{{3, 5}, {8, 8}, {16, 7}}));
}

TEST(Bitmap, MaxAndAlignTogether)
{
	Map m = Empty(256);
	rdm_bitmap_set_range(m.data(), 60, 100); // 60..159
	// align 64 cuts at 64 and 128; max 40 cuts the 64-bit pieces.
	EXPECT_EQ(AllRuns(m, 256, 40, 64),
		  (Runs{{60, 4}, {64, 40}, {104, 24}, {128, 32}}));
}

TEST(Bitmap, NbitsNotMultipleOf64IgnoresTail)
{
	Map m = Empty(70);
	m[0] = m[1] = ~UINT64_C(0); // bits 70..127 set but outside the map
	EXPECT_EQ(AllRuns(m, 70, 0, 0), (Runs{{0, 70}}));
	uint64_t pos = 70;
	EXPECT_EQ(rdm_bitmap_next_run(m.data(), 70, &pos, 0, 0), 0u);
	m[0] = 0;
	m[1] = ~UINT64_C(0) << 6; // only bits past nbits
	pos = 0;
	EXPECT_EQ(rdm_bitmap_next_run(m.data(), 70, &pos, 0, 0), 0u);
}

TEST(Bitmap, RunStartsAtPos)
{
	Map m = Empty(128);
	rdm_bitmap_set_range(m.data(), 10, 80); // 10..89
	uint64_t pos = 50;
	EXPECT_EQ(rdm_bitmap_next_run(m.data(), 128, &pos, 0, 0), 40u);
	EXPECT_EQ(pos, 50u);
	pos = 200; // past nbits
	EXPECT_EQ(rdm_bitmap_next_run(m.data(), 128, &pos, 0, 0), 0u);
}

TEST(Bitmap, MatchesNaiveScan)
{
	std::mt19937_64 rng(12345);
	for (int iter = 0; iter < 2000; iter++) {
		uint64_t nbits = rng() % 700;
		Map m = Empty(nbits);
		// Mix of densities so both long runs and isolated bits appear.
		unsigned density = rng() % 4;
		for (auto &w : m) {
			w = rng();
			for (unsigned d = 0; d < density; d++)
				w &= (rng() % 2) ? rng() : ~UINT64_C(0);
			if (rng() % 4 == 0)
				w = (rng() % 2) ? ~UINT64_C(0) : 0;
		}
		uint64_t max = rng() % 3 ? rng() % 200 : 0;
		uint64_t align = rng() % 3 ? UINT64_C(1) << (rng() % 9) : 0;
		ASSERT_EQ(AllRuns(m, nbits, max, align), NaiveRuns(m, nbits, max, align))
			<< "iter " << iter << " nbits " << nbits << " max " << max << " align "
			<< align;
	}
}

TEST(IsZero, ZeroPage)
{
	alignas(64) static unsigned char page[4096];
	memset(page, 0, sizeof(page));
	EXPECT_TRUE(rdm_is_zero(page, sizeof(page)));
	EXPECT_TRUE(rdm_is_zero(page, 0));
	EXPECT_TRUE(rdm_is_zero(page, 8));
}

TEST(IsZero, OneNonzeroByteAnywhere)
{
	alignas(64) static unsigned char page[4096];
	memset(page, 0, sizeof(page));
	for (size_t i = 0; i < sizeof(page); i++) {
		page[i] = (unsigned char)(1u << (i % 8)); // every bit position too
		ASSERT_FALSE(rdm_is_zero(page, sizeof(page))) << "byte " << i;
		page[i] = 0;
	}
	EXPECT_TRUE(rdm_is_zero(page, sizeof(page)));
}

TEST(IsZero, UnalignedBufferAndShortLengths)
{
	alignas(64) static unsigned char buf[4096 + 8];
	memset(buf, 0, sizeof(buf));
	EXPECT_TRUE(rdm_is_zero(buf + 1, 4096));
	buf[4096] = 1; // last byte of the unaligned view
	EXPECT_FALSE(rdm_is_zero(buf + 1, 4096));
	EXPECT_TRUE(rdm_is_zero(buf + 1, 4088)); // stops before it
	buf[4096] = 0;
	buf[20] = 0x80; // in the word tail of a 24-byte buffer
	EXPECT_FALSE(rdm_is_zero(buf, 24));
	EXPECT_TRUE(rdm_is_zero(buf, 16));
}

} // namespace

TEST(Bitmap, AnyLooksOnlyInsideTheRange)
{
	uint64_t map[3] = {0, 0, 0};

	rdm_bitmap_set_range(map, 70, 1);
	EXPECT_FALSE(rdm_bitmap_any(map, 0, 70));
	EXPECT_TRUE(rdm_bitmap_any(map, 0, 71));
	EXPECT_TRUE(rdm_bitmap_any(map, 70, 1));
	EXPECT_FALSE(rdm_bitmap_any(map, 71, 100));
	EXPECT_FALSE(rdm_bitmap_any(map, 70, 0));
}

TEST(Bitmap, OrMergesEveryWord)
{
	uint64_t a[3] = {1, 0, 0}, b[3] = {0, 2, 4};

	rdm_bitmap_or(a, b, 150);
	EXPECT_EQ(1u, a[0]);
	EXPECT_EQ(2u, a[1]);
	EXPECT_EQ(4u, a[2]);
	EXPECT_EQ(3u, rdm_bitmap_count(a, 150));
}
