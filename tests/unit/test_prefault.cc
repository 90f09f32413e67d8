// SPDX-License-Identifier: MIT
// The destination's prefault (core/prefault.h): every page of every block
// becomes resident, what was written stays, and the time budget is kept.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "core/prefault.h"
#include "rdmig/rdmig.h"

namespace {

constexpr size_t kLen = 96u << 20; // three pieces of 32 MiB
constexpr long kPage = 4096;

struct Dest {
	rdmig_session *s = nullptr;
	uint8_t *mem[2] = {};
	Dest()
	{
		rdmig_callbacks cb{};
		EXPECT_EQ(rdmig_session_create(RDMIG_ROLE_DEST, &cb, nullptr, &s), 0);
		for (int b = 0; b < 2; b++) {
			mem[b] = static_cast<uint8_t *>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE,
							   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
			EXPECT_NE(mem[b], MAP_FAILED);
			EXPECT_EQ(rdmig_add_block(s, b ? "ram1" : "ram0", mem[b], kLen, kPage), 0);
		}
	}
	~Dest()
	{
		rdmig_session_destroy(s);
		for (uint8_t *m : mem)
			munmap(m, kLen);
	}
	size_t Resident(int b)
	{
		std::vector<unsigned char> v(kLen / kPage);
		EXPECT_EQ(mincore(mem[b], kLen, v.data()), 0);
		size_t n = 0;
		for (unsigned char c : v)
			n += c & 1;
		return n * kPage;
	}
};

TEST(Prefault, EveryPageResidentContentsKept)
{
	Dest d;
	memcpy(d.mem[1] + 5 * kPage, "kept", 5);
	ASSERT_LT(d.Resident(0), kLen / 10) << "fresh anonymous memory should not be resident yet";
	uint64_t done = 0;
	ASSERT_EQ(rdm_prefault(d.s, 2, 60000, &done), 0);
	if (done == 0)
		GTEST_SKIP() << "this kernel has no MADV_POPULATE_WRITE (Linux 5.14)";
	EXPECT_EQ(done, 2 * kLen);
	EXPECT_EQ(d.Resident(0), kLen);
	EXPECT_EQ(d.Resident(1), kLen);
	EXPECT_STREQ(reinterpret_cast<char *>(d.mem[1] + 5 * kPage), "kept");
	EXPECT_EQ(d.mem[0][kLen - 1], 0);
}

// No time left: the threads stop after the piece they are in, the rest is left to the receivers.
TEST(Prefault, BudgetStopsIt)
{
	Dest d;
	uint64_t done = 0;
	ASSERT_EQ(rdm_prefault(d.s, 2, 0, &done), 0);
	EXPECT_LE(done, 2 * (32ull << 20)) << "one piece per thread at most";
	EXPECT_LT(d.Resident(0) + d.Resident(1), 2 * kLen);
}

} // namespace
