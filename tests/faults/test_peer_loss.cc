/* SPDX-License-Identifier: MIT */
/*
 * A peer lost mid-iteration: killed (SIGKILL), frozen (SIGSTOP), or its
 * connection cut inside the transport (an MR dropped under the source's
 * writes, a CM disconnect). Whichever side survives gives up within the peer
 * timeout, says why, and the source VM runs with nothing lost.
 */
#include <gtest/gtest.h>
#include <signal.h>

#include "core/uffd.h"
#include "faults.h"

namespace {

using PeerLoss = TransportTest;

/* An in-process source migrating to a destination child, caught mid-iteration. */
struct Running {
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	Source src;

	void Start(const ChildOpts &dopts, const ChildOpts &sopts = SlowSource())
	{
		ASSERT_TRUE(dest.Spawn(cfg, TestHost(), dopts));
		ASSERT_TRUE(src.Create(cfg));
		ASSERT_TRUE(ConfigureSource(src.s, sopts));
		ASSERT_EQ(0, guest_start_workload(src.g));
		ASSERT_TRUE(Dirtying(src.g)) << "the workload never started";
		ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);
		ASSERT_TRUE(WaitSent(src.s, 4 << 20)) << "never got mid-iteration";
	}

	/* The source ends FAILED within the deadline, VM running. */
	std::string SourceFails()
	{
		rdmig_status st = RDMIG_STATUS_NONE;
		EXPECT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st))
			<< "source not terminal " << DeadlineMs() << " ms after the fault";
		EXPECT_EQ(RDMIG_STATUS_FAILED, st);
		std::string err = rdmig_last_error(src.s);
		EXPECT_STRNE("", err.c_str());
		ExpectSourceRuns(src);
		return err;
	}
};

ChildOpts DestOpts()
{
	ChildOpts o;
	o.peer_timeout_ms = kPeerMs;
	return o;
}

TEST_F(PeerLoss, DestinationKilledMidIteration)
{
	Running m;
	ASSERT_NO_FATAL_FAILURE(m.Start(DestOpts()));
	ASSERT_EQ(0, m.dest.Signal(SIGKILL));
	std::string err = m.SourceFails();
	EXPECT_TRUE(Names(err, {"lost", "closed", "reset", "disconnect", "no word", "peer",
				"failed", "timed out"}))
		<< Quote(err);
}

TEST_F(PeerLoss, SourceKilledMidIteration)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	SourceProcess src;
	ChildOpts so = SlowSource();
	so.progress_bytes = 4 << 20;
	ASSERT_TRUE(src.Spawn(cfg, dest.Uri(), so));
	ASSERT_TRUE(src.WaitProgress(60000)) << "the source never got mid-iteration";
	ASSERT_EQ(0, src.Signal(SIGKILL));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()))
		<< "destination not terminal " << DeadlineMs() << " ms after the source died";
	EXPECT_EQ(RDMIG_STATUS_FAILED, r.status) << r.error;
	EXPECT_TRUE(Names(r.error, {"source connection lost", "no word from the source"}))
		<< Quote(r.error);
	ExpectDestNeverRan(r);
}

/*
 * Postcopy: the source is killed while the destination still lacks pages.
 * The VM runs at the destination (it started at go), which says it lost the
 * source with pages missing and waits in postcopy-paused for a recovery: it
 * neither claims a whole VM nor gives the VM up.
 */
TEST_F(PeerLoss, SourceKilledInPostcopy)
{
	char why[256];
	if (rdm_uffd_can_open(why, sizeof(why)))
		GTEST_SKIP() << "userfaultfd: " << why;
	guest_cfg cfg = FaultGuest(16, 32);
	cfg.dest_readers = 2; /* they fault on pages still on their way */
	DestProcess dest;
	ChildOpts dopts = DestOpts();
	dopts.postcopy_after_syncs = 1;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), dopts));
	SourceProcess src;
	ChildOpts so = SlowSource(4 << 20);
	so.postcopy_after_syncs = 1;
	ASSERT_TRUE(src.Spawn(cfg, dest.Uri(), so));
	ASSERT_TRUE(src.WaitProgress(60000)) << "the source never got to postcopy";
	ASSERT_EQ(0, src.Signal(SIGKILL));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()))
		<< "destination not terminal " << DeadlineMs() << " ms after the source died";
	printf("destination: %s (%llu pages missing)\n", r.error, (unsigned long long)r.pages_missing);
	EXPECT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, r.status) << r.error;
	EXPECT_TRUE(Names(r.error, {"postcopy paused: source lost"})) << Quote(r.error);
	EXPECT_TRUE(Names(r.error, {"pages not here yet"})) << Quote(r.error);
	EXPECT_GT(r.pages_missing, 0u) << "the source died after every page was in";
	EXPECT_EQ(1u, r.starts) << "the destination VM starts once, at go";
}

/* SIGSTOP: the socket or QP stays up, nothing moves; peer-timeout decides. */
TEST_F(PeerLoss, DestinationFrozen)
{
	Running m;
	ASSERT_NO_FATAL_FAILURE(m.Start(DestOpts()));
	ASSERT_EQ(0, m.dest.Signal(SIGSTOP));
	std::string err = m.SourceFails();
	EXPECT_TRUE(Names(err, {"ms", "timed out", "no completion", "stall"})) << Quote(err);
	m.dest.Kill(); /* SIGKILL ends a stopped process too */
}

TEST_F(PeerLoss, SourceFrozen)
{
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	SourceProcess src;
	ChildOpts so = SlowSource();
	so.progress_bytes = 4 << 20;
	ASSERT_TRUE(src.Spawn(cfg, dest.Uri(), so));
	ASSERT_TRUE(src.WaitProgress(60000)) << "the source never got mid-iteration";
	ASSERT_EQ(0, src.Signal(SIGSTOP));
	PeerResult r;
	bool ended = dest.Result(&r, DeadlineMs());
	src.Kill();
	ASSERT_TRUE(ended) << "destination not terminal " << DeadlineMs() << " ms after the freeze";
	EXPECT_EQ(RDMIG_STATUS_FAILED, r.status) << r.error;
	EXPECT_TRUE(Names(r.error, {"no word from the source", "ms"})) << Quote(r.error);
	ExpectDestNeverRan(r);
}

/* The resumed source migrates again to a fresh destination: nothing was lost. */
TEST_F(PeerLoss, SourceMigratesAgainAfterLosingItsDestination)
{
	Running m;
	ASSERT_NO_FATAL_FAILURE(m.Start(DestOpts()));
	ASSERT_EQ(0, m.dest.Signal(SIGKILL));
	m.SourceFails();
	rdmig_session_destroy(m.src.s);
	m.src.s = nullptr;
	rdmig_callbacks cb;
	guest_callbacks(m.src.g, &cb);
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, m.src.g, &m.src.s));
	ASSERT_EQ(0, guest_add_blocks(m.src.g, m.src.s));
	ChildOpts so = SlowSource(0);
	ASSERT_TRUE(ConfigureSource(m.src.s, so));
	DestProcess again;
	ASSERT_TRUE(again.Spawn(m.cfg, TestHost(), DestOpts()));
	ASSERT_EQ(0, rdmig_migrate(m.src.s, again.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(m.src.s, 300000, &st));
	PeerResult r;
	ASSERT_TRUE(again.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(m.src.s) << "; dest: " << r.error;
	ExpectDestHasAll(r, m.src.g);
}

/* rdma: the destination deregisters its MRs under the source's writes. */
TEST_F(PeerLoss, WorkCompletionErrorFromDroppedMr)
{
	if (!IsRdma())
		GTEST_SKIP() << "memory registration is an rdma matter";
	SKIP_WITHOUT_FAULTS();
	ChildOpts d = DestOpts();
	snprintf(d.fault, sizeof(d.fault), "dst-drop-mr@1");
	Running m;
	ASSERT_NO_FATAL_FAILURE(m.Start(d));
	std::string err = m.SourceFails();
	/* The work completion's status names it (ibv_wc_status_str). */
	EXPECT_TRUE(Names(err, {"remote access error", "remote invalid request"})) << Quote(err);
	PeerResult r;
	ASSERT_TRUE(m.dest.Result(&r, DeadlineMs()));
	EXPECT_STRNE("", r.error);
	ExpectDestNeverRan(r);
}

/* rdma: the destination hangs up (rdma_disconnect) mid-iteration. */
TEST_F(PeerLoss, CmDisconnectFromTheDestination)
{
	if (!IsRdma())
		GTEST_SKIP() << "rdma_cm is an rdma matter";
	SKIP_WITHOUT_FAULTS();
	ChildOpts d = DestOpts();
	snprintf(d.fault, sizeof(d.fault), "dst-cm-disconnect@1");
	Running m;
	ASSERT_NO_FATAL_FAILURE(m.Start(d));
	std::string err = m.SourceFails();
	EXPECT_TRUE(Names(err, {"disconnect", "flush", "closed", "lost"})) << Quote(err);
	PeerResult r;
	ASSERT_TRUE(m.dest.Result(&r, DeadlineMs()));
	EXPECT_STRNE("", r.error);
	ExpectDestNeverRan(r);
}

} // namespace
