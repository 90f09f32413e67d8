/* SPDX-License-Identifier: MIT */
/*
 * The switchover commit under every lost message (core/commit.c): a fault
 * point cuts the link at one position of COMPLETE -> READY -> GO -> DONE (or
 * stalls the destination past the peer timeout), on the transport of
 * RDMIG_TEST_TRANSPORT. Expected: the statuses of the table below; at most one
 * side runs the VM before the VMM resolves an unknown outcome, exactly one
 * after; and whichever side runs has all the memory (the destination's blocks
 * and device state equal the source's at its stop).
 */
#include <gtest/gtest.h>
#include <stdlib.h>

#include "common/fault.h"
#include "harness.h"

namespace {

const int kPeerTimeoutMs = 2000;

struct CommitCase {
	const char *name;
	const char *src_fault; /* RDMIG_FAULT of the source (this process) */
	const char *dst_fault; /* RDMIG_FAULT of the destination child */
	rdmig_status src;      /* source status from rdmig_wait() */
	rdmig_status dst;      /* destination status from rdmig_wait(), ... */
	rdmig_status dst_alt;  /* ... or this one (a race the protocol allows) */
	const char *dst_resolve; /* destination's rdmig_resolve() if commit-unknown */
	bool dst_dies;           /* the destination's fault kills it (":kill") */
};

constexpr rdmig_status kUnknown = RDMIG_STATUS_COMMIT_UNKNOWN;
constexpr rdmig_status kFailed = RDMIG_STATUS_FAILED;
constexpr rdmig_status kDone = RDMIG_STATUS_COMPLETED;
constexpr rdmig_status kCancelled = RDMIG_STATUS_CANCELLED;

const CommitCase kCases[] = {
	/* COMPLETE never left: the source takes its VM back. */
	{"CompleteLost", "src-before-complete", "", kFailed, kFailed, kFailed, "", false},
	/* The destination stalls loading past the source's patience (both ran before). */
	{"DestinationStallsLoading", "", "dst-stall-load", kUnknown, kFailed, kUnknown, "stop", false},
	/* The destination never says READY: it knows it will not run. */
	{"ReadyNeverSent", "", "dst-before-ready", kUnknown, kFailed, kFailed, "", false},
	/* READY lost on the way: nobody knows; the VMM runs the source. */
	{"ReadyLost", "src-lose-ready", "", kUnknown, kUnknown, kUnknown, "stop", false},
	/* GO never sent: the destination cannot tell; the VMM runs the source. */
	{"GoNeverSent", "src-before-go", "", kUnknown, kUnknown, kUnknown, "stop", false},
	/* GO lost: the source cannot tell; the VMM runs the destination. */
	{"GoLost", "", "dst-lose-go", kUnknown, kUnknown, kUnknown, "run", false},
	/* DONE lost: the destination runs; the source must not. */
	{"DoneLost", "", "dst-before-done", kUnknown, kDone, kDone, "", false},
	/* A cancel before GO wins on either side: the source runs. */
	/* The source's ERROR may land while the destination sends READY: it fails instead, not running. */
	{"SourceCancelsBeforeGo", "src-cancel-wait-ready", "", kCancelled, kCancelled, kFailed, "", false},
	{"DestinationCancelsBeforeGo", "", "dst-cancel-wait-go", kFailed, kCancelled, kCancelled, "", false},
	/* After GO the source's cancel is refused (-EBUSY) and the migration completes. */
	{"SourceCancelAfterGoRefused", "src-cancel-after-go", "", kDone, kDone, kDone, "", false},
	/* The destination host dies inside the commit: the VMM runs the source. */
	{"DestinationDiesBeforeReady", "", "dst-before-ready:kill", kUnknown, kFailed, kFailed, "", true},
	{"DestinationDiesOnGo", "", "dst-lose-go:kill", kUnknown, kFailed, kFailed, "", true},
	/* Nothing lost. */
	{"NothingLost", "", "", kDone, kDone, kDone, "", false},
};

class Commit : public ::testing::TestWithParam<CommitCase> {
      protected:
	void SetUp() override
	{
		std::string why = NoTransportReason();
		if (!why.empty())
			GTEST_SKIP() << why;
	}
	void TearDown() override
	{
		unsetenv("RDMIG_FAULT");
		rdm_fault_reset();
	}
};

/* Sets (or clears) an environment variable; empty means unset. */
void Env(const char *name, const char *value)
{
	if (value && *value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

TEST_P(Commit, AtMostOneRunsAndItHasAllTheMemory)
{
#ifndef RDMIG_FAULT_INJECTION
	GTEST_SKIP() << "needs a build with -Dfault_injection=true (scripts/build does that)";
#endif
	const CommitCase &c = GetParam();
	guest_cfg cfg = DefaultGuest(16, 4);
	cfg.devstate_bytes = 256 << 10;

	/* The destination child takes its fault and policy from the environment. */
	Env("RDMIG_FAULT", c.dst_fault);
	Env("RDMIG_TEST_RESOLVE", c.dst_resolve);
	setenv("RDMIG_TEST_PEER_TIMEOUT", std::to_string(kPeerTimeoutMs).c_str(), 1);
	DestProcess dest;
	bool spawned = dest.Spawn(cfg, TestHost());
	unsetenv("RDMIG_TEST_RESOLVE");
	unsetenv("RDMIG_TEST_PEER_TIMEOUT");
	Env("RDMIG_FAULT", c.src_fault);
	rdm_fault_reset();
	ASSERT_TRUE(spawned);

	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_PEER_TIMEOUT, kPeerTimeoutMs));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);

	rdmig_status st;
	/* Nothing may hang: the commit ends within a few peer timeouts. */
	ASSERT_EQ(0, rdmig_wait(src.s, 60000, &st));
	PeerResult r{};
	if (c.dst_dies) {
		/* Killed where its fault fired: it reports nothing and ran nothing. */
		ASSERT_FALSE(dest.Result(&r, 60000)) << "the destination should have died";
		r = PeerResult{};
		r.status = r.first_status = RDMIG_STATUS_FAILED;
		snprintf(r.error, sizeof(r.error), "killed at %s", c.dst_fault);
	} else {
		ASSERT_TRUE(dest.Result(&r, 60000)) << "the destination hung or died";
	}
	std::string why = std::string("source: ") + rdmig_last_error(src.s) + "; destination: " + r.error;

	EXPECT_EQ(c.src, st) << rdmig_status_name(st) << "; " << why;
	EXPECT_TRUE(r.first_status == c.dst || r.first_status == c.dst_alt)
		<< rdmig_status_name(rdmig_status(r.first_status)) << "; " << why;
	if (st != RDMIG_STATUS_COMPLETED) {
		EXPECT_STRNE("", rdmig_last_error(src.s)) << "a failed source says why";
	}
	if (r.first_status != RDMIG_STATUS_COMPLETED) {
		EXPECT_STRNE("", r.error) << "a failed destination says why";
	}

	struct guest_counters gc;
	guest_counters(src.g, &gc);
	bool dst_ran = r.starts > 0;
	/* Before any resolution: never two. */
	EXPECT_FALSE(gc.running && dst_ran) << "both sides run the VM; " << why;
	EXPECT_LE(r.starts, 1u);
	if (st == RDMIG_STATUS_COMMIT_UNKNOWN) {
		EXPECT_FALSE(gc.running) << "commit-unknown must leave the source VM stopped";
	}

	/* The VMM resolves an unknown source: it runs here unless the VM runs there. */
	if (st == RDMIG_STATUS_COMMIT_UNKNOWN) {
		EXPECT_EQ(-EALREADY, rdmig_cancel(src.s)) << "nothing left to cancel";
		EXPECT_EQ(-EBUSY, rdmig_migrate(src.s, dest.Uri().c_str())) << "resolve first";
		ASSERT_EQ(0, rdmig_resolve(src.s, !dst_ran)) << rdmig_last_error(src.s);
		ASSERT_EQ(0, rdmig_wait(src.s, 0, &st));
		EXPECT_EQ(dst_ran ? RDMIG_STATUS_COMPLETED : RDMIG_STATUS_FAILED, st);
		EXPECT_EQ(-EINVAL, rdmig_resolve(src.s, true)) << "resolved once";
	}
	/* A completed migration is the session's last; a failed one may be retried. */
	if (st == RDMIG_STATUS_COMPLETED) {
		EXPECT_EQ(-EBUSY, rdmig_migrate(src.s, dest.Uri().c_str()));
	}
	guest_counters(src.g, &gc);
	EXPECT_NE(gc.running, dst_ran) << "exactly one side runs the VM in the end; " << why;
	EXPECT_LE(r.starts, 1u);
	if (dst_ran) {
		ASSERT_EQ(guest_nblocks(src.g), r.nblocks);
		for (unsigned i = 0; i < r.nblocks; i++)
			EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i << " differs";
		EXPECT_EQ(guest_devstate_crc(src.g), r.devcrc);
		EXPECT_EQ(RDMIG_STATUS_COMPLETED, r.status);
	} else {
		EXPECT_NE(RDMIG_STATUS_COMPLETED, r.status);
	}
}

INSTANTIATE_TEST_SUITE_P(LostMessage, Commit, ::testing::ValuesIn(kCases),
			 [](const ::testing::TestParamInfo<CommitCase> &i) { return i.param.name; });

} // namespace

namespace {

using PreSwitchover = TransportTest;

/* Like QEMU: the VM is stopped before the pause, so the final pass is bounded. */
TEST_F(PreSwitchover, StopsTheVmFirstThenContinues)
{
	guest_cfg cfg = DefaultGuest(16, 4);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_PAUSE_BEFORE_SWITCHOVER, true));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);
	ASSERT_TRUE(WaitFor(src.s, 60000, [](const rdmig_stats &s) {
		return s.status == RDMIG_STATUS_PRE_SWITCHOVER || s.status == RDMIG_STATUS_FAILED;
	}));
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_FALSE(gc.running) << "pre-switchover with the VM still running";
	EXPECT_EQ(1u, gc.stops);
	ASSERT_EQ(0, rdmig_continue(src.s)) << rdmig_last_error(src.s);
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 60000, &st));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 60000));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s) << "; " << r.error;
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	EXPECT_EQ(1u, r.starts);
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i << " differs";
}

/* Cancel while paused: the VM runs again at the source, never at the destination. */
TEST_F(PreSwitchover, CancelResumesTheSource)
{
	guest_cfg cfg = DefaultGuest(16, 4);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_PAUSE_BEFORE_SWITCHOVER, true));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);
	ASSERT_TRUE(WaitFor(src.s, 60000, [](const rdmig_stats &s) {
		return s.status == RDMIG_STATUS_PRE_SWITCHOVER || s.status == RDMIG_STATUS_FAILED;
	}));
	ASSERT_EQ(0, rdmig_cancel(src.s));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 60000, &st));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 60000));
	EXPECT_NE(RDMIG_STATUS_COMPLETED, r.status);
	EXPECT_EQ(0u, r.starts);
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_TRUE(gc.running) << "the source VM must run again";
}

} // namespace
