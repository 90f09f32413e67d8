/* SPDX-License-Identifier: MIT */
#include "faults.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

bool IsRdma()
{
	return TestTransport() == "rdma";
}

int MarginMs()
{
	return IsRdma() ? 30000 : 15000;
}

bool FaultInjectionBuilt()
{
#ifdef RDMIG_FAULT_INJECTION
	return true;
#else
	return false;
#endif
}

guest_cfg FaultGuest(uint64_t mib, uint64_t dirty_mib_s)
{
	guest_cfg c = DefaultGuest(mib, dirty_mib_s);

	c.devstate_bytes = 1 << 20;
	return c;
}

ChildOpts SlowSource(uint64_t max_bw)
{
	ChildOpts o;

	o.peer_timeout_ms = kPeerMs;
	o.max_bw = max_bw;
	o.pin_all = getenv("RDMIG_TEST_PIN_ALL") && *getenv("RDMIG_TEST_PIN_ALL") == '1';
	return o;
}

bool ConfigureSource(rdmig_session *s, const ChildOpts &o)
{
	return !(o.peer_timeout_ms &&
		 rdmig_set_parameter(s, RDMIG_PARAM_PEER_TIMEOUT, o.peer_timeout_ms)) &&
	       !(o.channels && rdmig_set_parameter(s, RDMIG_PARAM_CHANNELS, o.channels)) &&
	       !(o.downtime_ms && rdmig_set_parameter(s, RDMIG_PARAM_DOWNTIME_LIMIT, o.downtime_ms)) &&
	       !rdmig_set_parameter(s, RDMIG_PARAM_MAX_BANDWIDTH, o.max_bw) &&
	       !rdmig_set_capability(s, RDMIG_CAP_RDMA_PIN_ALL, o.pin_all) &&
	       !rdmig_set_capability(s, RDMIG_CAP_PAUSE_BEFORE_SWITCHOVER, o.pause_before_switchover);
}

bool Dirtying(guest *g)
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

bool WaitSent(rdmig_session *s, uint64_t bytes, int timeout_ms)
{
	return WaitFor(s, timeout_ms, [bytes](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_ACTIVE && st.ram_transferred > bytes;
	});
}

bool WaitStatus(rdmig_session *s, rdmig_status want, int timeout_ms)
{
	return WaitFor(s, timeout_ms, [want](const rdmig_stats &st) { return st.status == want; });
}

bool Names(const std::string &err, std::initializer_list<const char *> words)
{
	for (const char *w : words)
		if (strcasestr(err.c_str(), w))
			return true;
	return false;
}

std::string Quote(const std::string &err)
{
	return "error: \"" + err + "\"";
}

/* One line per side for the fault table in the README: test, side, status, error. */
static void Outcome(const char *side, int status, const char *err)
{
	const ::testing::TestInfo *t = ::testing::UnitTest::GetInstance()->current_test_info();

	printf("outcome: %s.%s %s: %s (%s)\n", t ? t->test_suite_name() : "?", t ? t->name() : "?",
	       side, rdmig_status_name((rdmig_status)status), err);
}

void ExpectSourceRuns(Source &src)
{
	struct guest_counters gc;
	rdmig_stats st = RDMIG_STATS_INIT;

	if (src.s && rdmig_query(src.s, &st) == 0)
		Outcome("source", st.status, rdmig_last_error(src.s));

	guest_counters(src.g, &gc);
	EXPECT_TRUE(gc.running) << "the source VM must run";
	EXPECT_EQ(gc.stops, gc.starts) << "every vm_stop on the source needs its vm_start";
	uint64_t before = gc.pages_dirtied;
	/* Within the peer timeout plus the margin: a loaded host may starve the workload a while. */
	for (int i = 0; i < DeadlineMs() / 10 && gc.pages_dirtied == before; i++) {
		usleep(10 * 1000); /* a poll slice */
		guest_counters(src.g, &gc);
	}
	EXPECT_GT(gc.pages_dirtied, before) << "the source guest must keep running";
}

void ExpectSourceChildRan(const PeerResult &r)
{
	Outcome("source", r.status, r.error);
	EXPECT_TRUE(r.running) << "the source VM must run";
	EXPECT_EQ(r.stops, r.starts) << "every vm_stop on the source needs its vm_start";
}

void ExpectDestNeverRan(const PeerResult &r)
{
	Outcome("destination", r.status, r.error);
	EXPECT_NE(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	EXPECT_EQ(0u, r.starts) << "the destination VM must never start here";
}

void ExpectDestHasAll(const PeerResult &r, guest *src)
{
	Outcome("destination", r.status, r.error);
	EXPECT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	EXPECT_EQ(1u, r.starts) << "the destination VM starts once";
	struct guest_counters gc;
	guest_counters(src, &gc);
	EXPECT_FALSE(gc.running) << "the source VM must stay stopped";
	ASSERT_EQ(guest_nblocks(src), r.nblocks);
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src, i), r.crc[i]) << "block " << i << " differs";
	EXPECT_EQ(guest_devstate_crc(src), r.devcrc);
}
