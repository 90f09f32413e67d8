/* SPDX-License-Identifier: MIT */
/*
 * End-to-end migrations between two processes, over the transport named by
 * RDMIG_TEST_TRANSPORT. Every successful migration is checked page for page:
 * the CRC32 of each destination block equals the source's once the source VM
 * has stopped, while a workload dirtied the source throughout.
 */
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

namespace {

using Migrate = TransportTest;

/* RDMIG_TEST_PIN_ALL=1 runs every migration with rdma-pin-all. */
bool PinAllDefault()
{
	const char *p = getenv("RDMIG_TEST_PIN_ALL");
	return p && *p == '1';
}

struct Opts {
	unsigned channels = 2;
	uint64_t chunk = 1u << 20;
	bool pin_all = PinAllDefault();
	uint64_t max_bw = 0;
	bool auto_converge = false;
	uint64_t downtime_ms = 300;
};

/* The guest dirties memory before and during the migration, not after. */
bool WorkloadRunning(guest *g)
{
	for (int i = 0; i < 500; i++) {
		struct guest_counters gc;
		guest_counters(g, &gc);
		if (gc.pages_dirtied > 0)
			return true;
		usleep(10 * 1000); /* a poll slice */
	}
	return false;
}

void Configure(rdmig_session *s, const Opts &o)
{
	ASSERT_EQ(0, rdmig_set_parameter(s, RDMIG_PARAM_CHANNELS, o.channels));
	ASSERT_EQ(0, rdmig_set_parameter(s, RDMIG_PARAM_CHUNK_SIZE, o.chunk));
	ASSERT_EQ(0, rdmig_set_capability(s, RDMIG_CAP_RDMA_PIN_ALL, o.pin_all));
	ASSERT_EQ(0, rdmig_set_parameter(s, RDMIG_PARAM_MAX_BANDWIDTH, o.max_bw));
	ASSERT_EQ(0, rdmig_set_capability(s, RDMIG_CAP_AUTO_CONVERGE, o.auto_converge));
	ASSERT_EQ(0, rdmig_set_parameter(s, RDMIG_PARAM_DOWNTIME_LIMIT, o.downtime_ms));
}

/* Migrate a guest under load and verify every block and the device state. */
void MigrateAndVerify(const guest_cfg &cfg, const Opts &o, const std::string &host,
		      const ChildOpts &d = ChildOpts{})
{
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, host, d));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	Configure(src.s, o);
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_TRUE(WorkloadRunning(src.g)) << "the workload never started";
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);

	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s) << "; destination: " << r.error;
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_FALSE(gc.running) << "source VM must stay stopped after completion";

	EXPECT_EQ(1u, r.starts) << "destination VM started once";
	ASSERT_EQ(guest_nblocks(src.g), r.nblocks);
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i << " differs";
	EXPECT_EQ(guest_devstate_crc(src.g), r.devcrc);

	rdmig_stats stats = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(src.s, &stats));
	EXPECT_EQ(RDMIG_STATUS_COMPLETED, stats.status);
	EXPECT_GT(stats.ram_duplicate, 0u) << "zero pages must go as runs";
	EXPECT_GT(stats.ram_normal, 0u);
	EXPECT_GE(stats.dirty_sync_count, 1u);
	EXPECT_GE(stats.ram_transferred, stats.ram_normal_bytes);
	EXPECT_LT(stats.ram_normal_bytes, stats.ram_total + gc.pages_dirtied * cfg.page_size)
		<< "zero pages were sent as data";
}

TEST_F(Migrate, TwoChannels64MiBUnderLoad)
{
	MigrateAndVerify(DefaultGuest(64, 16), Opts{}, TestHost());
}

/*
 * Zero runs go on the control stream, data on the channels. Here the
 * destination applies the first zero runs a second late: a page zeroed in
 * pass 1 and filled by the workload since must not have its pass-2 data
 * written before that zeroing is acked, or the late zeroing wipes it.
 */
TEST_F(Migrate, LateZeroingNeverWipesLaterData)
{
#ifndef RDMIG_FAULT_INJECTION
	GTEST_SKIP() << "needs a build with -Dfault_injection=true (scripts/build does that)";
#endif
	guest_cfg c = DefaultGuest(32, 32);
	c.zero_pct = 60;
	ChildOpts d;
	snprintf(d.fault, sizeof(d.fault), "dst-zero-late@1");
	Opts o;
	o.channels = 1;
	MigrateAndVerify(c, o, TestHost(), d);
}

TEST_F(Migrate, OneChannel)
{
	Opts o;
	o.channels = 1;
	MigrateAndVerify(DefaultGuest(32, 16), o, TestHost());
}

TEST_F(Migrate, FourChannelsHotSet)
{
	guest_cfg c = DefaultGuest(96, 32);
	c.pattern = GUEST_HOTSET;
	c.hot_bytes = 8 << 20;
	c.threads = 2;
	Opts o;
	o.channels = 4;
	MigrateAndVerify(c, o, TestHost());
}

TEST_F(Migrate, LargestChunkSequentialSweep)
{
	guest_cfg c = DefaultGuest(48, 16);
	c.pattern = GUEST_SEQ;
	Opts o;
	o.chunk = 1u << 30;
	MigrateAndVerify(c, o, TestHost());
}

TEST_F(Migrate, IPv6)
{
	MigrateAndVerify(DefaultGuest(16, 8), Opts{}, TestHost(true));
}

TEST_F(Migrate, ManyBlocksOfMixedSizes)
{
	guest_cfg c = DefaultGuest(64, 8);
	c.nblocks = 64; /* one of 32 MiB, 63 of ~0.5 MiB */
	c.devstate_bytes = 100;
	MigrateAndVerify(c, Opts{}, TestHost());
}

TEST_F(Migrate, CancelMidMigration)
{
	guest_cfg cfg = DefaultGuest(64, 8);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	Opts o;
	o.max_bw = 8 << 20; /* slow enough to catch it mid-way */
	Configure(src.s, o);
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	ASSERT_TRUE(WaitFor(src.s, 30000, [](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_ACTIVE && st.ram_transferred > (4u << 20);
	}));
	ASSERT_EQ(0, rdmig_cancel(src.s));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 20000, &st));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_TRUE(gc.running) << "the source VM must run after a cancel";

	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 30000));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, r.status) << r.error;
	EXPECT_EQ(0u, r.starts) << "a cancelled destination must never start";
}

TEST_F(Migrate, MismatchedBlocksFailBeforeRam)
{
	guest_cfg scfg = DefaultGuest(32, 0);
	guest_cfg dcfg = scfg;
	dcfg.ram_bytes = 40 << 20;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(dcfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(scfg));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 30000, &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_NE(nullptr, strstr(rdmig_last_error(src.s), "mismatch")) << rdmig_last_error(src.s);
	rdmig_stats stats = RDMIG_STATS_INIT;
	rdmig_query(src.s, &stats);
	EXPECT_EQ(0u, stats.ram_transferred) << "no RAM may move before the blocks agree";

	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 30000));
	EXPECT_EQ(RDMIG_STATUS_FAILED, r.status);
	EXPECT_NE(nullptr, strstr(r.error, "mismatch")) << r.error;
	EXPECT_EQ(0u, r.starts);
}

TEST_F(Migrate, DestinationKilledSourceResumes)
{
	guest_cfg cfg = DefaultGuest(64, 8);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	Opts o;
	o.max_bw = 8 << 20;
	Configure(src.s, o);
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_PEER_TIMEOUT, 3000));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	ASSERT_TRUE(WaitFor(src.s, 30000, [](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_ACTIVE && st.ram_transferred > (4u << 20);
	}));
	dest.Kill();
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 20000, &st)) << "source did not notice the loss";
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_STRNE("", rdmig_last_error(src.s));
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_TRUE(gc.running);
	uint64_t before = gc.pages_dirtied;
	/* Within the peer timeout: a loaded host may starve the workload a while. */
	for (int i = 0; i < 300 && gc.pages_dirtied == before; i++) {
		usleep(10 * 1000); /* a poll slice */
		guest_counters(src.g, &gc);
	}
	EXPECT_GT(gc.pages_dirtied, before) << "the source guest must keep running";
}

/* The guest dirties faster than max-bandwidth drains: only a throttle ends it. */
TEST_F(Migrate, NoConvergenceWithoutAutoConverge)
{
	guest_cfg cfg = DefaultGuest(32, 64);
	cfg.pattern = GUEST_HOTSET;
	cfg.hot_bytes = 24 << 20;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	Opts o;
	o.max_bw = 16 << 20;
	o.downtime_ms = 50;
	Configure(src.s, o);
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	/* Three iterations in, it is still going: the guest outruns the link. */
	EXPECT_TRUE(WaitFor(src.s, 120000, [](const rdmig_stats &s) {
		return s.dirty_sync_count >= 3 || s.status == RDMIG_STATUS_COMPLETED ||
		       s.status == RDMIG_STATUS_FAILED;
	}));
	rdmig_stats stats = RDMIG_STATS_INIT;
	rdmig_query(src.s, &stats);
	EXPECT_EQ(RDMIG_STATUS_ACTIVE, stats.status);
	EXPECT_EQ(0u, stats.cpu_throttle_percentage);
	EXPECT_GE(stats.dirty_sync_count, 3u);
	EXPECT_GT(stats.expected_downtime_ms, 50u) << "it would have switched over";
	rdmig_cancel(src.s);
	ASSERT_EQ(0, rdmig_wait(src.s, 20000, &st));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 30000));
	EXPECT_EQ(0u, r.starts);
}

TEST_F(Migrate, AutoConvergeThrottlesUntilItFits)
{
	guest_cfg cfg = DefaultGuest(32, 64);
	cfg.pattern = GUEST_HOTSET;
	cfg.hot_bytes = 24 << 20;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	Opts o;
	o.max_bw = 16 << 20;
	o.downtime_ms = 50;
	o.auto_converge = true;
	Configure(src.s, o);
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_CPU_THROTTLE_INITIAL, 30));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_CPU_THROTTLE_INCREMENT, 20));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s);
	rdmig_stats stats = RDMIG_STATS_INIT;
	rdmig_query(src.s, &stats);
	EXPECT_GT(stats.cpu_throttle_percentage, 0u);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_GE(gc.max_throttle, 30u);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i;
}

/* Garbage at a listening destination is refused; a real source still gets in. */
TEST_F(Migrate, GarbageToListenerIsRefused)
{
	if (TestTransport() != "tcp")
		GTEST_SKIP() << "raw bytes to a listener are a tcp matter";
	guest_cfg cfg = DefaultGuest(16, 4);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_GE(fd, 0);
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	sin.sin_port = htons(dest.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(0, connect(fd, reinterpret_cast<sockaddr *>(&sin), sizeof(sin)));
	char junk[512];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 37 + 11);
	ASSERT_EQ((ssize_t)sizeof(junk), send(fd, junk, sizeof(junk), MSG_NOSIGNAL));
	pollfd pfd = {fd, POLLIN, 0};
	ASSERT_EQ(1, poll(&pfd, 1, 15000)) << "the destination did not drop the garbage";
	char c;
	EXPECT_LE(recv(fd, &c, 1, 0), 0) << "expected the connection to be closed";
	close(fd);

	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 60000, &st));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]);
}

TEST_F(Migrate, NoListenerIsAClearError)
{
	guest_cfg cfg = DefaultGuest(8, 0);
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_PEER_TIMEOUT, 2000));
	std::string uri = TestTransport() + ":" + TestHost() + ":1";
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 20000, &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_NE(nullptr, strstr(rdmig_last_error(src.s), "connect")) << rdmig_last_error(src.s);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_EQ(0u, gc.stops) << "the VM must not stop when nothing was connected";
}

/* Pin-all that cannot fit under RLIMIT_MEMLOCK fails before pinning, naming both numbers. */
TEST_F(Migrate, MemlockTooLowForPinAll)
{
	if (TestTransport() != "rdma")
		GTEST_SKIP() << "memory is pinned by the rdma transport only";
	guest_cfg cfg = DefaultGuest(32, 4);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, true));
	struct rlimit old, low;
	ASSERT_EQ(0, getrlimit(RLIMIT_MEMLOCK, &old));
	low = old;
	low.rlim_cur = 16 << 20; /* half the guest, more than the control buffers */
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &low));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	int wret = rdmig_wait(src.s, 60000, &st);
	setrlimit(RLIMIT_MEMLOCK, &old);
	ASSERT_EQ(0, wret);
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	std::string err = rdmig_last_error(src.s);
	EXPECT_NE(std::string::npos, err.find("memlock limit is 16777216")) << err;
	EXPECT_NE(std::string::npos, err.find("33554432")) << err;
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_TRUE(gc.running);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 60000));
	EXPECT_NE(RDMIG_STATUS_COMPLETED, r.status);
	EXPECT_EQ(0u, r.starts);
}

} // namespace
