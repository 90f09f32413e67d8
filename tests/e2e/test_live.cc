/* SPDX-License-Identifier: MIT */
/*
 * Live tunables and cancel while stalled, end to end: max-bandwidth and
 * downtime-limit changed during a migration take effect within a period, and
 * a cancel reaches a source stuck in a send to a frozen destination. Memory is
 * checked by CRC32 as everywhere in the e2e tests.
 */
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include "harness.h"

namespace {

using Live = TransportTest;

uint64_t NowMs()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool PinAll()
{
	const char *p = getenv("RDMIG_TEST_PIN_ALL");
	return p && *p == '1';
}

/* Bytes per second put on the wire over the next ms milliseconds, and the most in any second. */
double RateOver(rdmig_session *s, int ms, double *peak)
{
	rdmig_stats a = RDMIG_STATS_INIT, b = RDMIG_STATS_INIT, prev = RDMIG_STATS_INIT;
	rdmig_query(s, &a);
	uint64_t t0 = NowMs(), tp = t0;
	prev = a;
	*peak = 0;
	/* The measuring window itself, in one-second samples: no ordering waits on it. */
	for (int i = 0; i < ms / 1000; i++) {
		usleep(1000 * 1000);
		rdmig_query(s, &b);
		uint64_t t = NowMs();
		double r = (double)(b.ram_transferred - prev.ram_transferred) * 1000.0 / (double)(t - tp);
		*peak = r > *peak ? r : *peak;
		prev = b;
		tp = t;
	}
	return (double)(prev.ram_transferred - a.ram_transferred) * 1000.0 / (double)(tp - t0);
}

void ExpectSameMemory(Source &src, DestProcess &dest)
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

TEST_F(Live, MaxBandwidthFollowsTheNewValue)
{
	const double mib = 1 << 20;
	/* Low figures: the soft-RoCE VM runs emulated and moves well under 10 MiB/s. */
	guest_cfg cfg = DefaultGuest(48, 0);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, PinAll()));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 1u << 20));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);
	ASSERT_TRUE(WaitFor(src.s, 60000, [](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_ACTIVE && st.ram_transferred > (256u << 10);
	}));
	double slow_peak, fast_peak;
	double slow = RateOver(src.s, 3000, &slow_peak);
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 4u << 20))
		<< rdmig_last_error(src.s);
	double fast = RateOver(src.s, 3000, &fast_peak);
	printf("max-bandwidth 1 MiB/s: measured %.2f MiB/s (busiest second %.2f); raised live "
	       "to 4 MiB/s: %.2f MiB/s (busiest second %.2f)\n",
	       slow / mib, slow_peak / mib, fast / mib, fast_peak / mib);
	rdmig_stats st = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(src.s, &st));
	ASSERT_EQ(RDMIG_STATUS_ACTIVE, st.status) << "it must still be running to measure";
	/*
	 * The limit is a ceiling (plus one 100 ms burst): load only slows a
	 * sender down. The floors are loose, for a loaded 2-core box or rdma
	 * under TCG: the slow rate moves at all, the fast one beats the slow
	 * ceiling (so the raised limit was applied).
	 */
	EXPECT_LE(slow, 1 * mib * 1.2);
	EXPECT_GE(slow, 1 * mib * 0.25);
	EXPECT_LE(fast, 4 * mib * 1.2);
	EXPECT_GE(fast, 1 * mib * 1.5) << "the raised limit was not applied";
	/* Smooth: no second carries much more than its share (a burst is 100 ms). */
	EXPECT_LE(slow_peak, 1 * mib * 1.5) << "bursty at 1 MiB/s";
	EXPECT_LE(fast_peak, 4 * mib * 1.5) << "bursty at 4 MiB/s";

	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 0));
	rdmig_status fin;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &fin));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, fin) << rdmig_last_error(src.s);
	EXPECT_STREQ("", rdmig_last_error(src.s));
	ExpectSameMemory(src, dest);
}

/* Like Migrate.NoConvergenceWithoutAutoConverge, until the limit is raised live. */
TEST_F(Live, RaisedDowntimeLimitLetsItComplete)
{
	guest_cfg cfg = DefaultGuest(32, 64);
	cfg.pattern = GUEST_HOTSET;
	cfg.hot_bytes = 24 << 20;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, PinAll()));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 4u << 20));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_DOWNTIME_LIMIT, 50));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	ASSERT_TRUE(WaitFor(src.s, 120000, [](const rdmig_stats &s) {
		return s.dirty_sync_count >= 3 ||
		       (s.status != RDMIG_STATUS_SETUP && s.status != RDMIG_STATUS_ACTIVE);
	}));
	rdmig_stats st = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(src.s, &st));
	ASSERT_EQ(RDMIG_STATUS_ACTIVE, st.status) << "it converged without the change";
	ASSERT_GT(st.expected_downtime_ms, 50u);
	uint64_t syncs = st.dirty_sync_count;
	/* Big enough for anything this guest can leave dirty at 16 MiB/s. */
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_DOWNTIME_LIMIT, 60000));
	rdmig_status fin;
	ASSERT_EQ(0, rdmig_wait(src.s, 120000, &fin));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, fin) << rdmig_last_error(src.s);
	ASSERT_EQ(0, rdmig_query(src.s, &st));
	printf("switched over %llu sync(s) after the change (at sync %llu), downtime %llu ms\n",
	       (unsigned long long)(st.dirty_sync_count - syncs), (unsigned long long)syncs,
	       (unsigned long long)st.downtime_ms);
	/* The pass under way, its check, the final pass: nothing more. */
	EXPECT_LE(st.dirty_sync_count, syncs + 3) << "the new limit was not used at once";
	ExpectSameMemory(src, dest);
}

/*
 * The destination freezes (SIGSTOP) mid-transfer: over tcp the source's sends
 * fill the socket buffers and block; over rdma (the NIC still places writes)
 * it blocks on the frozen side's credits, keys or acks. A cancel must not wait
 * out the 60 s peer timeout.
 */
TEST_F(Live, CancelReachesASourceStalledInASend)
{
	guest_cfg cfg = DefaultGuest(128, 16);
	setenv("RDMIG_TEST_PEER_TIMEOUT", "60000", 1);
	DestProcess dest;
	bool spawned = dest.Spawn(cfg, TestHost());
	unsetenv("RDMIG_TEST_PEER_TIMEOUT");
	ASSERT_TRUE(spawned);
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, PinAll()));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_PEER_TIMEOUT, 60000));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 32u << 20));
	/* Never converges: it is still iterating when the destination freezes. */
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_DOWNTIME_LIMIT, 0));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	ASSERT_TRUE(WaitFor(src.s, 60000, [](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_ACTIVE && st.ram_transferred > (8u << 20);
	}));
	ASSERT_EQ(0, kill(dest.pid, SIGSTOP));
	/* From here the source memory holds still, so the cancel can be checked against it. */
	guest_stop_workload(src.g);
	std::vector<uint32_t> before;
	for (unsigned i = 0; i < guest_nblocks(src.g); i++)
		before.push_back(guest_block_crc(src.g, i));
	/* Stalled: no byte moves for a second (buffers full, or waiting for an ack). */
	bool stalled = false;
	rdmig_stats a = RDMIG_STATS_INIT, b = RDMIG_STATS_INIT;
	rdmig_query(src.s, &a);
	for (int i = 0; i < 60 && !stalled; i++) {
		usleep(1000 * 1000); /* the measure is a second without progress */
		rdmig_query(src.s, &b);
		stalled = b.ram_transferred == a.ram_transferred;
		a = b;
	}
	if (!stalled || b.status != RDMIG_STATUS_ACTIVE) {
		kill(dest.pid, SIGCONT);
		FAIL() << "the source never stalled (status " << rdmig_status_name(b.status) << ")";
	}
	uint64_t t0 = NowMs();
	EXPECT_EQ(0, rdmig_cancel(src.s)) << rdmig_last_error(src.s);
	rdmig_status st;
	EXPECT_EQ(0, rdmig_wait(src.s, 30000, &st)) << "cancel did not interrupt the stall";
	uint64_t took = NowMs() - t0;
	printf("cancel of a stalled source took %llu ms (peer timeout 60000 ms)\n",
	       (unsigned long long)took);
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st) << rdmig_last_error(src.s);
	/* Well inside the 60 s peer timeout, with room for 2 loaded cores. */
	EXPECT_LT(took, 30000u);
	EXPECT_NE(nullptr, strstr(rdmig_last_error(src.s), "cancel")) << rdmig_last_error(src.s);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_TRUE(gc.running) << "the source VM must run after a cancel";
	for (unsigned i = 0; i < guest_nblocks(src.g); i++)
		EXPECT_EQ(before[i], guest_block_crc(src.g, i)) << "source block " << i << " changed";

	ASSERT_EQ(0, kill(dest.pid, SIGCONT));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 120000));
	EXPECT_NE(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	EXPECT_EQ(0u, r.starts) << "the destination must not start";
}

} // namespace
