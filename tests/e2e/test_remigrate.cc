/* SPDX-License-Identifier: MIT */
/*
 * A session migrates again after a cancel or a failure, like QEMU's migrate
 * after migrate_cancel: the same source session (blocks, callbacks, settings)
 * goes to a fresh destination while its workload keeps dirtying, and the
 * memory that lands there is checked by CRC32 as in every e2e test. On the
 * destination side one session listens again after its cancel.
 */
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "harness.h"

namespace {

using Remigrate = TransportTest;

bool PinAll()
{
	const char *p = getenv("RDMIG_TEST_PIN_ALL");
	return p && *p == '1';
}

void ExpectArrived(Source &src, DestProcess &dest)
{
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	EXPECT_EQ(1u, r.starts);
	ASSERT_EQ(guest_nblocks(src.g), r.nblocks);
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i << " differs";
	EXPECT_EQ(guest_devstate_crc(src.g), r.devcrc);
}

TEST_F(Remigrate, AfterCancelToAFreshDestination)
{
	guest_cfg cfg = DefaultGuest(32, 8);
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, PinAll()));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 4u << 20));
	ASSERT_EQ(0, guest_start_workload(src.g));

	DestProcess first;
	ASSERT_TRUE(first.Spawn(cfg, TestHost()));
	ASSERT_EQ(0, rdmig_migrate(src.s, first.Uri().c_str())) << rdmig_last_error(src.s);
	ASSERT_TRUE(WaitFor(src.s, 30000, [](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_ACTIVE && st.ram_transferred > (2u << 20);
	}));
	EXPECT_EQ(-EBUSY, rdmig_migrate(src.s, first.Uri().c_str())) << "one run at a time";
	ASSERT_EQ(0, rdmig_cancel(src.s));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 20000, &st));
	ASSERT_EQ(RDMIG_STATUS_CANCELLED, st);
	PeerResult r;
	ASSERT_TRUE(first.Result(&r, 30000));
	EXPECT_NE(RDMIG_STATUS_COMPLETED, r.status);
	EXPECT_EQ(0u, r.starts);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	ASSERT_TRUE(gc.running) << "the cancel gave the VM back";

	/* The same session again: a parameter changed in between, stats start over. */
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 0));
	DestProcess second;
	ASSERT_TRUE(second.Spawn(cfg, TestHost()));
	ASSERT_EQ(0, rdmig_migrate(src.s, second.Uri().c_str())) << rdmig_last_error(src.s);
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s);
	EXPECT_STREQ("", rdmig_last_error(src.s));
	rdmig_stats stats = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(src.s, &stats));
	EXPECT_EQ(stats.ram_total, (uint64_t)cfg.ram_bytes) << "the blocks stayed";
	EXPECT_STREQ("", stats.error_desc) << "the cancel's text went with its run";
	guest_counters(src.g, &gc);
	EXPECT_FALSE(gc.running);
	ExpectArrived(src, second);
	EXPECT_EQ(-EBUSY, rdmig_migrate(src.s, second.Uri().c_str())) << "completed is final";
}

TEST_F(Remigrate, AfterAFailedAttempt)
{
	guest_cfg cfg = DefaultGuest(16, 4);
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, PinAll()));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_PEER_TIMEOUT, 2000));
	ASSERT_EQ(0, guest_start_workload(src.g));
	/* A destination that is gone by the time the source connects. */
	std::string stale;
	{
		DestProcess gone;
		ASSERT_TRUE(gone.Spawn(cfg, TestHost()));
		stale = gone.Uri();
		gone.Kill();
	}
	ASSERT_EQ(0, rdmig_migrate(src.s, stale.c_str())) << rdmig_last_error(src.s);
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 60000, &st));
	ASSERT_EQ(RDMIG_STATUS_FAILED, st);

	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s);
	ExpectArrived(src, dest);
}

} // namespace
