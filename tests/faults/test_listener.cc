/* SPDX-License-Identifier: MIT */
/*
 * What reaches a listening destination before (or instead of) the real
 * source: random bytes, a wrong wire version, a huge length, a silent
 * connection, a peer that speaks the transport but the wrong protocol version
 * or nothing at all; and the plain mismatches: block lists, memlock. The
 * stranger is refused with a reason; the destination never runs anything it
 * did not get whole; where the real source can still come, it migrates and
 * its memory is checked.
 */
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include "control/msg.h"
#include "faults.h"
#include "stranger.h"
#include "transport/transport.h"

namespace {

using Listener = TransportTest;

ChildOpts DestOpts()
{
	ChildOpts o;
	o.peer_timeout_ms = kPeerMs;
	return o;
}

/* The real source migrates to dest under load; memory verified. */
void RealSourceMigrates(DestProcess &dest, const guest_cfg &cfg)
{
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ChildOpts so = SlowSource(0);
	ASSERT_TRUE(ConfigureSource(src.s, so));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_TRUE(Dirtying(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s) << "; dest: " << r.error;
	ExpectDestHasAll(r, src.g);
}

/* Stranger bytes at the listener (tcp socket or rdma_cm private data). */
void GarbageThenRealSource(const std::vector<uint8_t> &bytes, bool silent = false)
{
	guest_cfg cfg = FaultGuest(16, 8);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	if (!IsRdma()) {
		TcpStranger t;
		ASSERT_TRUE(t.Connect(dest.port));
		if (!silent) {
			ASSERT_TRUE(t.Send(bytes));
			EXPECT_TRUE(t.ClosedWithin(DeadlineMs())) << "the listener kept the garbage";
			RealSourceMigrates(dest, cfg);
			return;
		}
		/* A silent socket must not hold up the real source (it has its own deadline). */
		RealSourceMigrates(dest, cfg);
		return;
	}
	CmStranger c;
	rdma_cm_event_type got;
	ASSERT_EQ(0, c.Connect(TestHost(), dest.port, bytes, DeadlineMs(), &got)) << c.why;
	EXPECT_EQ(RDMA_CM_EVENT_REJECTED, got) << rdma_event_str(got);
	RealSourceMigrates(dest, cfg);
}

TEST_F(Listener, RandomBytesRefusedThenRealSourceMigrates)
{
	GarbageThenRealSource(RandomBytes(IsRdma() ? 56 : 4096, 1));
}

TEST_F(Listener, WrongWireVersionRefusedThenRealSourceMigrates)
{
	GarbageThenRealSource(ChannelFrame(RDM_WIRE_VERSION + 7, 0, 3, 20u << 8, 0x1234));
}

TEST_F(Listener, HugeLengthRefusedThenRealSourceMigrates)
{
	GarbageThenRealSource(HugeFrame());
}

TEST_F(Listener, SilentSocketDoesNotBlockTheRealSource)
{
	if (IsRdma())
		GTEST_SKIP() << "tcp form; over rdma a silent peer is a half session: "
				"Listener.HalfSessionOverRdmaDoesNotBlockTheRealSource";
	GarbageThenRealSource({}, true);
}

/*
 * rdma: a valid control-channel request whose data channels never come. The
 * half session is assembled beside the real source's, with its own deadline,
 * so the real source gets in.
 */
TEST_F(Listener, HalfSessionOverRdmaDoesNotBlockTheRealSource)
{
	if (!IsRdma())
		GTEST_SKIP() << "rdma form of SilentSocketDoesNotBlockTheRealSource";
	guest_cfg cfg = FaultGuest(16, 8);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	CmStranger c;
	rdma_cm_event_type got;
	ASSERT_EQ(0, c.Connect(TestHost(), dest.port, ChannelFrame(RDM_WIRE_VERSION, 0, 3, 20u << 8, 99),
			       DeadlineMs(), &got))
		<< c.why;
	RealSourceMigrates(dest, cfg);
}

/* A peer that speaks the transport (rdm_tp connect) and then a control message of its choice. */
struct TpStranger {
	rdm_tp *tp = nullptr;
	std::string why;
	~TpStranger()
	{
		if (tp)
			tp->ops->close(tp);
	}
	bool Connect(const std::string &uri)
	{
		rdm_addr a;
		char err[RDM_TP_ERRLEN] = "";
		if (rdm_addr_parse(uri.c_str(), &a, err, sizeof(err)))
			return why = err, false;
		const rdm_tp_ops *ops = rdm_tp_lookup(a.scheme);
		rdm_tp_opts o{};
		o.channels = 1;
		o.chunk_size = 1 << 20;
		o.timeout_ms = kPeerMs;
		if (!ops || ops->connect(&a, &o, &tp, err, sizeof(err)))
			return why = err, false;
		return true;
	}
	bool Hello(uint16_t version)
	{
		rdm_msg m{};
		uint8_t buf[64];
		size_t len;
		m.type = RDM_MSG_HELLO;
		m.u.hello = rdm_hello{RDM_WIRE_MAGIC, version, 0, 0};
		return rdm_msg_encode(&m, buf, sizeof(buf), &len) == 0 && rdm_tp_send(tp, buf, len) == 0;
	}
	/* The destination closed this connection within timeout_ms. */
	bool Dropped(int timeout_ms)
	{
		static uint8_t buf[RDM_TP_MAX_MSG];
		size_t len = 0;
		int ret = rdm_tp_recv(tp, buf, sizeof(buf), &len, timeout_ms);
		while (ret == 0) /* whatever it said before closing */
			ret = rdm_tp_recv(tp, buf, sizeof(buf), &len, timeout_ms);
		return ret != -ETIMEDOUT;
	}
	/* The destination's answer: an ERROR with its text, or "" */
	std::string Refusal()
	{
		static uint8_t buf[RDM_TP_MAX_MSG];
		size_t len = 0;
		rdm_msg m;
		for (int i = 0; i < 4; i++) {
			if (rdm_tp_recv(tp, buf, sizeof(buf), &len, DeadlineMs()) ||
			    rdm_msg_decode(buf, len, &m))
				return "";
			if (m.type == RDM_MSG_ERROR)
				return m.u.error.text;
		}
		return "";
	}
};

/*
 * A source speaking another protocol version: refused with a reason that
 * names the version, and the destination goes on waiting: the real source
 * then migrates.
 */
TEST_F(Listener, VersionMismatchRefusedThenRealSourceMigrates)
{
	guest_cfg cfg = FaultGuest(16, 8);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	{
		TpStranger t;
		ASSERT_TRUE(t.Connect(dest.Uri())) << t.why;
		ASSERT_TRUE(t.Hello(RDM_WIRE_VERSION + 1));
		std::string refusal = t.Refusal();
		EXPECT_TRUE(Names(refusal, {"version"})) << "the stranger heard: \"" << refusal << "\"";
	}
	RealSourceMigrates(dest, cfg);
}

/*
 * One valid transport handshake, then silence: the stranger holds nothing.
 * The destination gives each peer 8 peer timeouts to speak, far longer than
 * the real source waits for its hello's answer, so the real source migrates
 * only if it is served while the stranger is still waiting; the stranger is
 * dropped once the real source is in.
 */
TEST_F(Listener, SilentAfterTheHandshakeThenRealSourceMigrates)
{
	guest_cfg cfg = FaultGuest(16, 8);
	ChildOpts o = DestOpts();
	o.peer_timeout_ms = 8 * kPeerMs;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), o));
	TpStranger t;
	ASSERT_TRUE(t.Connect(dest.Uri())) << t.why;
	RealSourceMigrates(dest, cfg);
	EXPECT_TRUE(t.Dropped(DeadlineMs())) << "the silent stranger is still connected";
}

/* Different block lists: both sides fail before a byte of RAM, naming the mismatch. */
TEST_F(Listener, BlockMismatch)
{
	guest_cfg scfg = FaultGuest(16, 8), dcfg = scfg;
	dcfg.nblocks = 3;
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(dcfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_TRUE(src.Create(scfg));
	ASSERT_TRUE(ConfigureSource(src.s, SlowSource(0)));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_TRUE(Names(rdmig_last_error(src.s), {"block list mismatch"})) << Quote(rdmig_last_error(src.s));
	rdmig_stats stats = RDMIG_STATS_INIT;
	rdmig_query(src.s, &stats);
	EXPECT_EQ(0u, stats.ram_transferred) << "no RAM may move before the blocks agree";
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_EQ(0u, gc.stops);
	ExpectSourceRuns(src);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()));
	EXPECT_EQ(RDMIG_STATUS_FAILED, r.status);
	EXPECT_TRUE(Names(r.error, {"source has 2 blocks, destination 3"})) << Quote(r.error);
	ExpectDestNeverRan(r);
}

/* rdma: the destination cannot pin what pin-all asks (RLIMIT_MEMLOCK in its child). */
void MemlockTooLow(bool source_hears_why)
{
	if (!IsRdma())
		GTEST_SKIP() << "memory is pinned by the rdma transport only";
	guest_cfg cfg = FaultGuest(32, 8);
	ChildOpts d = DestOpts();
	d.memlock_bytes = 8 << 20; /* a quarter of the guest */
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), d));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ChildOpts so = SlowSource(0);
	so.pin_all = true;
	ASSERT_TRUE(ConfigureSource(src.s, so));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str()));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_STRNE("", rdmig_last_error(src.s));
	if (source_hears_why) {
		EXPECT_TRUE(Names(rdmig_last_error(src.s), {"memlock"})) << Quote(rdmig_last_error(src.s));
	}
	ExpectSourceRuns(src);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()));
	EXPECT_EQ(RDMIG_STATUS_FAILED, r.status);
	EXPECT_TRUE(Names(r.error, {"memlock limit is 8388608"})) << Quote(r.error);
	ExpectDestNeverRan(r);
}

TEST_F(Listener, MemlockTooLowAtTheDestination)
{
	MemlockTooLow(false);
}

/*
 * The source learns the destination's reason: the failed registration leaves
 * the control channel up, so the destination's ERROR (naming the memlock
 * limit) arrives before the hang-up.
 */
TEST_F(Listener, MemlockTooLowSourceHearsWhy)
{
	MemlockTooLow(true);
}

} // namespace
