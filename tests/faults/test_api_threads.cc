/* SPDX-License-Identifier: MIT */
/*
 * The public API from several threads at once during a migration: query,
 * last_error, wait with timeouts, get/set_parameter, then cancel. No crash,
 * no hang, and what the threads see agrees (status never goes back, counters
 * never shrink, every waiter sees the same terminal state).
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "faults.h"

extern "C" unsigned rdm_session_users(rdmig_session *s);

namespace {

using ApiThreads = TransportTest;

ChildOpts DestOpts()
{
	ChildOpts o;
	o.peer_timeout_ms = kPeerMs;
	return o;
}

/* Order of the states a source goes through (terminal ones last). */
int Rank(rdmig_status st)
{
	switch (st) {
	case RDMIG_STATUS_NONE:
		return 0;
	case RDMIG_STATUS_SETUP:
		return 1;
	case RDMIG_STATUS_ACTIVE:
		return 2;
	case RDMIG_STATUS_PRE_SWITCHOVER:
	case RDMIG_STATUS_DEVICE:
		return 3;
	case RDMIG_STATUS_CANCELLING:
		return 4;
	default:
		return 5;
	}
}

struct Seen {
	std::atomic<int> errors{0};
	std::string what;
	void Bad(const std::string &w)
	{
		if (errors++ == 0)
			what = w;
	}
};

bool Terminal(rdmig_status st)
{
	return Rank(st) == 5;
}

/* Queries: status rank and RAM counters never go back. */
void Querier(rdmig_session *s, std::atomic<bool> *stop, Seen *seen)
{
	int rank = 0;
	uint64_t sent = 0;

	while (!*stop) {
		rdmig_stats st = RDMIG_STATS_INIT;
		if (rdmig_query(s, &st))
			seen->Bad("query failed");
		/* ACTIVE -> CANCELLING -> CANCELLED; DEVICE may not follow CANCELLING. */
		if (Rank(st.status) < rank && !(rank == 4 && Rank(st.status) == 3))
			seen->Bad(std::string("status went back to ") + rdmig_status_name(st.status));
		rank = std::max(rank, Rank(st.status));
		if (st.ram_transferred < sent)
			seen->Bad("ram_transferred shrank");
		sent = st.ram_transferred;
		std::string e = rdmig_last_error(s); /* must be a readable string */
		if (e.size() > 4096)
			seen->Bad("last_error too long");
	}
}

/* Live tunables: accepted (0) or refused as not changeable now (-EBUSY). */
void Tuner(rdmig_session *s, std::atomic<bool> *stop, Seen *seen)
{
	for (uint64_t i = 0; !*stop; i++) {
		int r1 = rdmig_set_parameter(s, RDMIG_PARAM_MAX_BANDWIDTH, (8 + i % 8) << 20);
		int r2 = rdmig_set_parameter(s, RDMIG_PARAM_DOWNTIME_LIMIT, 100 + i % 200);
		uint64_t v;
		int r3 = rdmig_get_parameter(s, RDMIG_PARAM_CHANNELS, &v);
		if ((r1 && r1 != -EBUSY) || (r2 && r2 != -EBUSY) || r3)
			seen->Bad("set/get_parameter: " + std::to_string(r1) + " " + std::to_string(r2) +
				  " " + std::to_string(r3));
		usleep(1000); // the workload's pace: a call a millisecond
	}
}

/* Waits in short slices until terminal; returns what it saw. */
rdmig_status Waiter(rdmig_session *s, Seen *seen)
{
	rdmig_status st = RDMIG_STATUS_NONE;
	for (int i = 0; i < 100000; i++) {
		int r = rdmig_wait(s, 50, &st);
		if (r == 0)
			return st;
		if (r != -ETIMEDOUT) {
			seen->Bad("wait: " + std::to_string(r));
			return st;
		}
		if (Terminal(st))
			seen->Bad("wait timed out in a terminal state");
	}
	seen->Bad("wait never ended");
	return st;
}

TEST_F(ApiThreads, QueryTuneWaitThenCancel)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_TRUE(ConfigureSource(src.s, SlowSource()));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));

	std::atomic<bool> stop{false};
	Seen seen;
	rdmig_status waited = RDMIG_STATUS_NONE;
	std::vector<std::thread> t;
	for (int i = 0; i < 2; i++)
		t.emplace_back(Querier, src.s, &stop, &seen);
	t.emplace_back(Tuner, src.s, &stop, &seen);
	t.emplace_back([&] { waited = Waiter(src.s, &seen); });
	bool mid = WaitSent(src.s, 4 << 20);
	EXPECT_TRUE(mid) << "never got mid-iteration";
	EXPECT_EQ(0, rdmig_cancel(src.s));
	t.back().join(); /* the waiter ends on its own */
	t.pop_back();
	stop = true;
	for (auto &th : t)
		th.join();

	EXPECT_EQ(0, seen.errors.load()) << seen.what;
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, waited);
	rdmig_status st;
	EXPECT_EQ(0, rdmig_wait(src.s, 0, &st));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st) << "a second look must agree with the waiter";
	EXPECT_EQ(-EALREADY, rdmig_cancel(src.s));
	ExpectSourceRuns(src);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()));
	ExpectDestNeverRan(r);
}

/*
 * A parameter that cannot change live is refused with -EBUSY during a
 * migration (channels, chunk size).
 */
TEST_F(ApiThreads, ChannelsRefusedLive)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_TRUE(ConfigureSource(src.s, SlowSource()));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	ASSERT_TRUE(WaitSent(src.s, 4 << 20));
	EXPECT_EQ(-EBUSY, rdmig_set_parameter(src.s, RDMIG_PARAM_CHANNELS, 3));
	EXPECT_EQ(-EBUSY, rdmig_set_parameter(src.s, RDMIG_PARAM_CHUNK_SIZE, 2 << 20));
	EXPECT_EQ(0, rdmig_cancel(src.s));
	rdmig_status st;
	EXPECT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()));
	ExpectDestNeverRan(r);
}

/*
 * Several threads in rdmig_wait() at once through a whole migration, and a
 * destroy while one still waits: one join, nobody uses a freed session.
 */
TEST_F(ApiThreads, SeveralWaitersSeeTheSameEnd)
{
	guest_cfg cfg = FaultGuest(16, 8);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_TRUE(ConfigureSource(src.s, SlowSource(0)));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	Seen seen;
	rdmig_status got[4] = {};
	std::vector<std::thread> t;
	for (int i = 0; i < 3; i++)
		t.emplace_back([&, i] { got[i] = Waiter(src.s, &seen); });
	t.emplace_back([&] {
		if (rdmig_wait(src.s, -1, &got[3]))
			seen.Bad("wait without limit failed");
	});
	for (auto &th : t)
		th.join();
	EXPECT_EQ(0, seen.errors.load()) << seen.what;
	for (rdmig_status g : got)
		EXPECT_EQ(RDMIG_STATUS_COMPLETED, g);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ExpectDestHasAll(r, src.g);
}

TEST_F(ApiThreads, DestroyWhileAnotherThreadWaits)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_TRUE(ConfigureSource(src.s, SlowSource()));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	ASSERT_TRUE(WaitSent(src.s, 4 << 20));
	int wret = 1;
	std::thread w([&] {
		rdmig_status st;
		wret = rdmig_wait(src.s, -1, &st);
	});
	/* The waiter is inside rdmig_wait before the destroy starts (no ASSERT: w is joined below). */
	auto t0 = std::chrono::steady_clock::now();
	while (rdm_session_users(src.s) == 0 &&
	       std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(DeadlineMs()))
		usleep(1000); /* a poll slice */
	EXPECT_GE(rdm_session_users(src.s), 1u) << "the waiter never got into rdmig_wait";
	rdmig_session_destroy(src.s); /* waits for the waiter, or makes it return */
	src.s = nullptr;
	w.join();
	EXPECT_TRUE(wret == 0 || wret == -ECANCELED) << wret;
	ExpectSourceRuns(src);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()));
	ExpectDestNeverRan(r);
}

} // namespace
