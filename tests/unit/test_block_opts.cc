/* SPDX-License-Identifier: MIT */
/* rdmig_add_block_opts(): its size, fields and trackers are checked, through rdmig.h alone. */
#include <gtest/gtest.h>

#include <string.h>
#include <sys/mman.h>

#include "rdmig/rdmig.h"

namespace {

int NoHold(void *, bool)
{
	return 0;
}

class BlockOpts : public ::testing::Test {
      protected:
	void SetUp() override
	{
		mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, mem);
		ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, nullptr, nullptr, &src));
		ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_DEST, nullptr, nullptr, &dst));
		o.name = "ram0";
		o.host = mem;
		o.length = len;
		o.page_size = 4096;
	}
	void TearDown() override
	{
		rdmig_session_destroy(src);
		rdmig_session_destroy(dst);
		munmap(mem, len);
	}
	bool Mentions(rdmig_session *s, const char *what)
	{
		return strstr(rdmig_last_error(s), what) != nullptr;
	}
	size_t len = 1 << 20;
	void *mem = nullptr;
	rdmig_session *src = nullptr, *dst = nullptr;
	rdmig_block_opts o = RDMIG_BLOCK_OPTS_INIT;
};

TEST_F(BlockOpts, SizeMustBeSet)
{
	o.size = 0;
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, &o));
	EXPECT_TRUE(Mentions(src, "RDMIG_BLOCK_OPTS_INIT")) << rdmig_last_error(src);
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, nullptr));
}

TEST_F(BlockOpts, UnknownFieldsPastTheStructAreRefused)
{
	struct {
		rdmig_block_opts o;
		uint64_t extra;
	} big;
	memset(&big, 0, sizeof(big));
	big.o = o;
	big.o.size = sizeof(big);
	big.extra = 1;
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, &big.o));
	EXPECT_TRUE(Mentions(src, "does not know")) << rdmig_last_error(src);
	big.extra = 0; /* zeros are fields at their defaults */
	EXPECT_EQ(0, rdmig_add_block_opts(src, &big.o)) << rdmig_last_error(src);
}

TEST_F(BlockOpts, UnknownTrackerIsRefused)
{
	o.tracker = (rdmig_tracker)9;
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, &o));
	EXPECT_TRUE(Mentions(src, "unknown tracker")) << rdmig_last_error(src);
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(dst, &o));
}

TEST_F(BlockOpts, NoTrackerIsAddBlock)
{
	rdmig_tracker t = RDMIG_TRACK_AUTO;
	EXPECT_EQ(0, rdmig_add_block_opts(src, &o));
	EXPECT_EQ(0, rdmig_block_tracker(src, "ram0", &t));
	EXPECT_EQ(RDMIG_TRACK_NONE, t);
	EXPECT_EQ(-ENOENT, rdmig_block_tracker(src, "ram1", &t));
	EXPECT_EQ(-EEXIST, rdmig_add_block_opts(src, &o));
}

TEST_F(BlockOpts, BlockChecksStillApply)
{
	o.tracker = RDMIG_TRACK_AUTO;
	o.page_size = 1000;
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, &o));
	o.page_size = 4096;
	o.host = (char *)mem + 1;
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, &o));
}

TEST_F(BlockOpts, SoftDirtyNeedsHold)
{
	o.tracker = RDMIG_TRACK_SOFT_DIRTY;
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, &o));
	EXPECT_TRUE(Mentions(src, "hold")) << rdmig_last_error(src);
	o.hold = NoHold;
	o.page_size = 8192; /* a sound block, but not 4 KiB pages */
	o.length = 8192;
	o.host = (char *)mem + (8192 - (uintptr_t)mem % 8192) % 8192;
	EXPECT_EQ(-EINVAL, rdmig_add_block_opts(src, &o));
	EXPECT_TRUE(Mentions(src, "4 KiB")) << rdmig_last_error(src);
}

TEST_F(BlockOpts, DestinationIgnoresTheTracker)
{
	rdmig_tracker t = RDMIG_TRACK_AUTO;
	o.tracker = RDMIG_TRACK_SOFT_DIRTY; /* no hold: refused on a source, ignored here */
	EXPECT_EQ(0, rdmig_add_block_opts(dst, &o)) << rdmig_last_error(dst);
	EXPECT_EQ(0, rdmig_block_tracker(dst, "ram0", &t));
	EXPECT_EQ(RDMIG_TRACK_NONE, t);
}

/* AUTO resolves to a kernel mechanism or says why neither works. */
TEST_F(BlockOpts, AutoResolvesOrSaysWhy)
{
	rdmig_tracker t = RDMIG_TRACK_NONE;
	o.tracker = RDMIG_TRACK_AUTO;
	o.hold = NoHold;
	int ret = rdmig_add_block_opts(src, &o);
	if (ret == -ENOTSUP) {
		EXPECT_TRUE(Mentions(src, "uffd-wp")) << rdmig_last_error(src);
		GTEST_SKIP() << rdmig_last_error(src);
	}
	ASSERT_EQ(0, ret) << rdmig_last_error(src);
	ASSERT_EQ(0, rdmig_block_tracker(src, "ram0", &t));
	EXPECT_TRUE(t == RDMIG_TRACK_UFFD_WP || t == RDMIG_TRACK_SOFT_DIRTY) << t;
}

/* uffd-wp over rdma without pin-all, soft-dirty over rdma: refused at migrate. */
TEST_F(BlockOpts, RdmaLimitsAreRefusedAtMigrate)
{
	o.tracker = RDMIG_TRACK_UFFD_WP;
	int ret = rdmig_add_block_opts(src, &o);
	if (ret == -ENOTSUP)
		GTEST_SKIP() << rdmig_last_error(src);
	ASSERT_EQ(0, ret) << rdmig_last_error(src);
	EXPECT_EQ(-EINVAL, rdmig_migrate(src, "rdma:127.0.0.1:1"));
	EXPECT_TRUE(Mentions(src, "rdma-pin-all")) << rdmig_last_error(src);
}

TEST(TrackerName, Names)
{
	EXPECT_STREQ("none", rdmig_tracker_name(RDMIG_TRACK_NONE));
	EXPECT_STREQ("auto", rdmig_tracker_name(RDMIG_TRACK_AUTO));
	EXPECT_STREQ("uffd-wp", rdmig_tracker_name(RDMIG_TRACK_UFFD_WP));
	EXPECT_STREQ("soft-dirty", rdmig_tracker_name(RDMIG_TRACK_SOFT_DIRTY));
	EXPECT_STREQ("unknown", rdmig_tracker_name((rdmig_tracker)42));
}

} // namespace
