/* SPDX-License-Identifier: MIT */
/*
 * rdmig_cancel() from either side in every state a test can reach: setup,
 * active, pre-switchover (pause-before-switchover) and device. Expected in
 * each: both sides terminal with a clear status (cancelled or failed), the
 * source VM running (resumed if it was stopped), the destination never started.
 */
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "faults.h"

namespace {

using Cancel = TransportTest;

ChildOpts DestOpts()
{
	ChildOpts o;
	o.peer_timeout_ms = kPeerMs;
	return o;
}

/* The source cancelled: CANCELLED within the deadline, VM running. */
void SourceCancelled(Source &src)
{
	rdmig_status st = RDMIG_STATUS_NONE;
	EXPECT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st)) << "cancel did not end the source";
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st) << rdmig_last_error(src.s);
	ExpectSourceRuns(src);
}

/* The destination heard of it: terminal, not completed, never started. */
void DestGaveUp(DestProcess &dest, int timeout_ms = DeadlineMs())
{
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, timeout_ms)) << "destination not terminal after the cancel";
	EXPECT_TRUE(r.status == RDMIG_STATUS_CANCELLED || r.status == RDMIG_STATUS_FAILED)
		<< rdmig_status_name((rdmig_status)r.status) << ": " << r.error;
	EXPECT_STRNE("", r.error);
	ExpectDestNeverRan(r);
}

void StartSource(Source &src, const guest_cfg &cfg, const ChildOpts &o, const std::string &uri)
{
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_TRUE(ConfigureSource(src.s, o));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_TRUE(Dirtying(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str())) << rdmig_last_error(src.s);
}

/* Setup: the destination is frozen, so the source's connect cannot finish. */
TEST_F(Cancel, SourceInSetup)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	/* It reports when its own wait runs out: it cannot know the source left. */
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts(), DeadlineMs()));
	ASSERT_EQ(0, dest.Signal(SIGSTOP));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, SlowSource(), dest.Uri()));
	/* A window for a source that wrongly gets past setup: a frozen peer gives nothing to wait on. */
	usleep(300 * 1000);
	rdmig_stats st = RDMIG_STATS_INIT;
	rdmig_query(src.s, &st);
	ASSERT_EQ(RDMIG_STATUS_SETUP, st.status) << "the source got past setup to a frozen peer";
	EXPECT_EQ(0, rdmig_cancel(src.s));
	SourceCancelled(src);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_EQ(0u, gc.stops) << "nothing to stop for in setup";
	ASSERT_EQ(0, dest.Signal(SIGCONT));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 2 * DeadlineMs()));
	ExpectDestNeverRan(r);
}

TEST_F(Cancel, SourceActive)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, SlowSource(), dest.Uri()));
	ASSERT_TRUE(WaitSent(src.s, 4 << 20));
	EXPECT_EQ(0, rdmig_cancel(src.s));
	SourceCancelled(src);
	DestGaveUp(dest);
}

/*
 * The session's last error names the first cause: after a cancel, the
 * cancel -- not a later, unrelated message like "return path: recv on the
 * control stream: peer closed the connection".
 */
TEST_F(Cancel, SourceLastErrorSaysCancelled)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, SlowSource(), dest.Uri()));
	ASSERT_TRUE(WaitSent(src.s, 4 << 20));
	EXPECT_EQ(0, rdmig_cancel(src.s));
	SourceCancelled(src);
	EXPECT_TRUE(Names(rdmig_last_error(src.s), {"cancel"})) << Quote(rdmig_last_error(src.s));
	DestGaveUp(dest);
}

/* A source that switches over after its first pass, and pauses there first. */
ChildOpts PausingSource(uint64_t max_bw)
{
	ChildOpts o = SlowSource(max_bw);
	o.pause_before_switchover = true;
	o.downtime_ms = 600000; /* any estimate fits: switch after the first pass */
	return o;
}

TEST_F(Cancel, SourcePreSwitchover)
{
	guest_cfg cfg = FaultGuest(16, 8);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, PausingSource(0), dest.Uri()));
	ASSERT_TRUE(WaitStatus(src.s, RDMIG_STATUS_PRE_SWITCHOVER)) << rdmig_last_error(src.s);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_FALSE(gc.running) << "pre-switchover comes with the VM stopped (like QEMU)";
	EXPECT_EQ(0, rdmig_cancel(src.s));
	SourceCancelled(src);
	DestGaveUp(dest);
}

/*
 * Device: a slow device save (4 s) holds the phase open; cancel inside it.
 * (The final pass goes at link speed, so it cannot be what holds it.)
 */
TEST_F(Cancel, SourceDevice)
{
	guest_cfg cfg = FaultGuest(16, 32);
	cfg.save_ms = 4000;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, PausingSource(4 << 20), dest.Uri()));
	ASSERT_TRUE(WaitStatus(src.s, RDMIG_STATUS_PRE_SWITCHOVER)) << rdmig_last_error(src.s);
	ASSERT_EQ(0, rdmig_continue(src.s));
	ASSERT_TRUE(WaitStatus(src.s, RDMIG_STATUS_DEVICE, 10000));
	EXPECT_EQ(0, rdmig_cancel(src.s)) << "device is before the commit point: "
					  << rdmig_last_error(src.s);
	SourceCancelled(src);
	DestGaveUp(dest);
}

/* The destination cancels while it listens: the source finds nobody. */
TEST_F(Cancel, DestinationInSetup)
{
	guest_cfg cfg = FaultGuest(16, 8);
	ChildOpts d = DestOpts();
	d.cancel_in = RDMIG_STATUS_SETUP;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), d));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()));
	EXPECT_EQ(0, r.cancel_ret);
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, r.status) << r.error;
	EXPECT_TRUE(Names(r.error, {"cancel"})) << Quote(r.error);
	ExpectDestNeverRan(r);
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, SlowSource(), dest.Uri()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_TRUE(Names(rdmig_last_error(src.s), {"connect", "refused", "reject", "unreachable"}))
		<< Quote(rdmig_last_error(src.s));
	ExpectSourceRuns(src);
}

/* The source ends failed (or cancelled) with a reason, VM running. */
void SourceGaveUp(Source &src)
{
	rdmig_status st = RDMIG_STATUS_NONE;
	EXPECT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st)) << "source not terminal";
	EXPECT_TRUE(st == RDMIG_STATUS_FAILED || st == RDMIG_STATUS_CANCELLED)
		<< rdmig_status_name(st) << ": " << rdmig_last_error(src.s);
	EXPECT_STRNE("", rdmig_last_error(src.s));
	ExpectSourceRuns(src);
}

TEST_F(Cancel, DestinationActive)
{
	guest_cfg cfg = FaultGuest();
	ChildOpts d = DestOpts();
	d.cancel_in = RDMIG_STATUS_ACTIVE;
	d.cancel_after_syncs = 1; /* one iteration fenced: mid-migration */
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), d));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, SlowSource(16 << 20), dest.Uri()));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 120000));
	EXPECT_EQ(0, r.cancel_ret);
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, r.status) << r.error;
	ExpectDestNeverRan(r);
	SourceGaveUp(src);
}

/*
 * Device on the destination: device state is arriving (a large blob). A
 * cancel there must leave the source able to take its VM back.
 */
TEST_F(Cancel, DestinationDevice)
{
	guest_cfg cfg = FaultGuest(16, 8);
	cfg.devstate_bytes = 48 << 20;
	ChildOpts d = DestOpts();
	d.cancel_in = RDMIG_STATUS_DEVICE;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), d));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartSource(src, cfg, SlowSource(0), dest.Uri()));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 120000));
	rdmig_status st = RDMIG_STATUS_NONE;
	EXPECT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st));
	if (r.cancel_ret == -EBUSY) {
		/* Too late: it had started. Then it is the one runner, with everything. */
		EXPECT_EQ(RDMIG_STATUS_COMPLETED, st);
		ExpectDestHasAll(r, src.g);
		return;
	}
	EXPECT_EQ(0, r.cancel_ret);
	EXPECT_TRUE(r.status == RDMIG_STATUS_CANCELLED || r.status == RDMIG_STATUS_FAILED)
		<< rdmig_status_name((rdmig_status)r.status) << ": " << r.error;
	ExpectDestNeverRan(r);
	EXPECT_TRUE(st == RDMIG_STATUS_FAILED || st == RDMIG_STATUS_CANCELLED)
		<< rdmig_status_name(st) << ": " << rdmig_last_error(src.s);
	EXPECT_STRNE("", rdmig_last_error(src.s));
	ExpectSourceRuns(src);
}

} // namespace
