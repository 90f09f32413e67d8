/* SPDX-License-Identifier: MIT */
/*
 * Migrations whose dirty log comes from the kernel (soft-dirty, userfaultfd
 * write-protect) instead of the workload's own bookkeeping: if the tracker
 * misses a write, the destination's CRC32 differs.
 */
#include <gtest/gtest.h>

#include "harness.h"

namespace {

using Tracking = TransportTest;

void MigrateTracked(enum track_kind kind)
{
	bool rdma = TestTransport() == "rdma";
	if (rdma && kind == TRACK_SOFT_DIRTY)
		GTEST_SKIP() << "soft-dirty cannot track pinned memory: clear_refs copies a pinned "
				"page away from its registration on the next write";
	guest_cfg cfg = DefaultGuest(48, rdma ? 4 : 24);
	cfg.tracker = kind;
	cfg.pattern = GUEST_HOTSET;
	cfg.hot_bytes = 16 << 20;
	guest *probe = nullptr;
	int ret = guest_create(&cfg, false, &probe);
	if (ret == -ENOTSUP)
		GTEST_SKIP() << guest_error();
	ASSERT_EQ(0, ret) << guest_error();
	guest_destroy(probe);

	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_DOWNTIME_LIMIT, 100));
	/* Write-protected pages cannot be registered later: pin them all first. */
	if (rdma) {
		ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, true));
	}
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s) << "; " << r.error;
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_GT(gc.pages_dirtied, 0u);
	rdmig_stats stats = RDMIG_STATS_INIT;
	rdmig_query(src.s, &stats);
	EXPECT_GE(stats.dirty_sync_count, 2u) << "the tracker never reported a dirty page";
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i << " differs";
	EXPECT_EQ(guest_devstate_crc(src.g), r.devcrc);
}

TEST_F(Tracking, UserfaultfdWriteProtect)
{
	MigrateTracked(TRACK_UFFD_WP);
}

TEST_F(Tracking, SoftDirty)
{
	MigrateTracked(TRACK_SOFT_DIRTY);
}

} // namespace
