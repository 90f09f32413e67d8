/* SPDX-License-Identifier: MIT */
/*
 * The link dies mid-iteration. tcp: a relay between the two sides stops
 * moving bytes (nothing is closed, like a pulled cable). rdma, inside the
 * soft-RoCE VM: the netdev under rxe0 goes down (ip link), or the rxe device
 * itself is deleted (rdma link delete) and re-added afterwards. Whatever the
 * transport makes of it, exactly one side runs the VM, with all its memory,
 * and neither side waits past the peer timeout plus the margin.
 *
 * These run last in the binary: they change the VM's network.
 */
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "faults.h"
#include "relay.h"

namespace {

using LinkDown = TransportTest;

const char *kPort = "/sys/class/infiniband/rxe0/ports/1/state";

std::string ReadLine(const char *path)
{
	std::ifstream f(path);
	std::string s;
	std::getline(f, s);
	return s;
}

/* Why the VM's network cannot be changed from here ("" when it can). */
std::string NoVmNetReason()
{
	if (!getenv("RDMIG_IN_VM"))
		return "changes the soft-RoCE VM's network: run through tests/vm/rxe-run";
	if (geteuid() != 0)
		return "needs root inside the VM (ip link, rdma link)";
	return "";
}

/* The IPv4-mapped GID of $RDMIG_RDMA_ADDR is in rxe0's table. */
bool HasGid4()
{
	unsigned a, b, c, d;
	const char *ip = getenv("RDMIG_RDMA_ADDR");
	char want[64], path[96];

	if (!ip || sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4)
		return true; /* nothing to look for */
	snprintf(want, sizeof(want), "0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x", a, b, c, d);
	for (int i = 0; i < 16; i++) {
		snprintf(path, sizeof(path), "/sys/class/infiniband/rxe0/ports/1/gids/%d", i);
		if (ReadLine(path) == want)
			return true;
	}
	return false;
}

/* rxe0 is ACTIVE with the IPv4 GID again (what rdma_cm needs), within 20 s. */
bool RxeReady()
{
	for (int i = 0; i < 200; i++) {
		if (ReadLine(kPort).find("ACTIVE") != std::string::npos && HasGid4())
			return true;
		usleep(100 * 1000);
	}
	return false;
}

int Sh(const std::string &cmd)
{
	int rc = system(cmd.c_str());
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/*
 * After the link died: each side terminal within the deadline, and exactly
 * one runs with everything. Prints which one, for the fault table.
 */
void ExpectOneRunner(Source &src, DestProcess &dest)
{
	rdmig_status st = RDMIG_STATUS_NONE;
	EXPECT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st))
		<< "source not terminal " << DeadlineMs() << " ms after the link died";
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()))
		<< "destination not terminal " << DeadlineMs() << " ms after the link died";
	printf("link down: source %s (%s); destination %s (%s)\n", rdmig_status_name(st),
	       rdmig_last_error(src.s), rdmig_status_name((rdmig_status)r.status), r.error);
	if (st == RDMIG_STATUS_COMPLETED) {
		ExpectDestHasAll(r, src.g);
		return;
	}
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_STRNE("", rdmig_last_error(src.s));
	ExpectSourceRuns(src);
	EXPECT_STRNE("", r.error);
	ExpectDestNeverRan(r);
}

/* Start an in-process source to uri and wait until it is mid-iteration. */
void StartTo(Source &src, const guest_cfg &cfg, const std::string &uri)
{
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_TRUE(ConfigureSource(src.s, SlowSource()));
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_TRUE(Dirtying(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str())) << rdmig_last_error(src.s);
	ASSERT_TRUE(WaitSent(src.s, 4 << 20)) << "never got mid-iteration";
}

ChildOpts DestOpts()
{
	ChildOpts o;
	o.peer_timeout_ms = kPeerMs;
	return o;
}

TEST_F(LinkDown, TcpRelayStopsForwarding)
{
	if (IsRdma())
		GTEST_SKIP() << "the relay is the tcp form of this case; rdma has LinkDown.NetdevDown";
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Relay relay;
	ASSERT_TRUE(relay.Start(dest.port));
	Source src;
	ASSERT_NO_FATAL_FAILURE(
		StartTo(src, cfg, "tcp:127.0.0.1:" + std::to_string(relay.port)));
	relay.Stall();
	/* Over tcp nothing can complete through a stalled relay: both must give up. */
	rdmig_status st = RDMIG_STATUS_NONE;
	EXPECT_EQ(0, rdmig_wait(src.s, DeadlineMs(), &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	std::string err = rdmig_last_error(src.s);
	EXPECT_TRUE(Names(err, {"ms", "timed out", "stall"})) << Quote(err);
	ExpectSourceRuns(src);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, DeadlineMs()));
	EXPECT_EQ(RDMIG_STATUS_FAILED, r.status);
	EXPECT_TRUE(Names(r.error, {"no word from the source", "ms"})) << Quote(r.error);
	ExpectDestNeverRan(r);
}

TEST_F(LinkDown, NetdevDown)
{
	if (!IsRdma())
		GTEST_SKIP() << "ip link under rxe0 is the rdma form; tcp has LinkDown.TcpRelayStopsForwarding";
	std::string why = NoVmNetReason();
	if (!why.empty())
		GTEST_SKIP() << why;
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartTo(src, cfg, dest.Uri()));
	ASSERT_EQ(0, Sh("ip link set dummy0 down"));
	ExpectOneRunner(src, dest);
	EXPECT_EQ(0, Sh("ip link set dummy0 up"));
	EXPECT_TRUE(RxeReady()) << "rxe0 did not come back: " << ReadLine(kPort);
}

TEST_F(LinkDown, RxeDeviceDeleted)
{
	if (!IsRdma())
		GTEST_SKIP() << "there is no rdma device to delete over tcp";
	std::string why = NoVmNetReason();
	if (!why.empty())
		GTEST_SKIP() << why;
	guest_cfg cfg = FaultGuest();
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), DestOpts()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(StartTo(src, cfg, dest.Uri()));
	/* The delete waits until every user let go of the device: in the background. */
	ASSERT_EQ(0, Sh("timeout 120 rdma link delete rxe0 >/dev/null 2>&1 & echo $! >/tmp/rxe-del.pid"));
	ExpectOneRunner(src, dest);
	rdmig_session_destroy(src.s);
	src.s = nullptr;
	dest.Kill();
	Sh("while kill -0 $(cat /tmp/rxe-del.pid) 2>/dev/null; do sleep 0.2; done");
	EXPECT_EQ(0, Sh("rdma link add rxe0 type rxe netdev dummy0"));
	EXPECT_TRUE(RxeReady()) << "rxe0 did not come back: " << ReadLine(kPort);
}

} // namespace
