/* SPDX-License-Identifier: MIT */
/*
 * No rkey of a migration session is good for anything outside it: a WRITE
 * from a QP of another connection with a live session's rkey is refused, and
 * after the session ended its rkeys are dead on the device and nothing it
 * pinned stays pinned. rdma only; the stranger's QP is the loopback RC pair of
 * tests/rdma/rc_loop.h, shared with tests/rdma/test_pin.cc.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "faults.h"
#include "../rdma/rc_loop.h"
#include "transport/rdma/rdma_int.h"
#include "transport/transport.h"

namespace {

long VmPinKiB()
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* A WRITE of len bytes from a fresh stranger connection with (raddr, rkey); its status. */
ibv_wc_status StrangerWrite(const char *ip, uint64_t raddr, uint32_t rkey, std::string *why)
{
	Loop l;
	std::vector<uint8_t> src(64 << 10, 0xee);
	ibv_wc_status st = IBV_WC_SUCCESS;

	if (l.Open(ip) || l.RegisterSource(src.data(), src.size()) ||
	    l.Write(src.data(), (uint32_t)src.size(), raddr, rkey, &st)) {
		*why = l.why;
		return IBV_WC_GENERAL_ERR;
	}
	return st;
}

using StaleRkey = TransportTest;

TEST_F(StaleRkey, RefusedOutsideTheSessionAndAfterItsEnd)
{
	if (!IsRdma())
		GTEST_SKIP() << "rkeys are an rdma matter";
	const char *ip = getenv("RDMIG_RDMA_ADDR");
	if (!ip || !*ip)
		GTEST_SKIP() << "RDMIG_RDMA_ADDR is not set (tests/vm/rxe-run sets it)";
	const uint64_t len = 4 << 20, win = 64 << 10;
	std::vector<uint8_t> smem(len), dmem(len, 0x11);
	for (uint64_t i = 0; i < len; i++)
		smem[i] = (uint8_t)(i * 7 + (i >> 12));
	long pin0 = VmPinKiB();

	/* A session of two rdma transports in this process: pin-all, one block. */
	char err[RDM_TP_ERRLEN] = "", lerr[RDM_TP_ERRLEN] = "";
	rdm_addr a;
	ASSERT_EQ(0, rdm_addr_parse((std::string("rdma:") + ip + ":0").c_str(), &a, err, sizeof(err))) << err;
	rdm_tp_opts o{};
	o.channels = 1;
	o.chunk_size = 1 << 20;
	o.pin_all = true;
	o.timeout_ms = 20000;
	rdm_tp_listener *lis = nullptr;
	ASSERT_EQ(0, rdm_rdma_ops.listen(&a, &o, &lis, err, sizeof(err))) << err;
	ASSERT_EQ(0, rdm_rdma_ops.listener_port(lis, &a.port));
	((sockaddr_in *)&a.ss)->sin_port = htons(a.port);
	rdm_tp_block sb = {"ram0", smem.data(), len, 4096}, db = {"ram0", dmem.data(), len, 4096};
	rdm_tp *dst = nullptr, *src = nullptr;
	int aret = -1, dret = -1;
	std::string derr; /* transport error text is per thread */
	std::thread acc([&] {
		aret = rdm_rdma_ops.accept(lis, 30000, &dst, lerr, sizeof(lerr));
		if (!aret)
			dret = rdm_tp_set_blocks(dst, &db, 1);
		derr = rdm_tp_errmsg();
	});
	int cret = rdm_rdma_ops.connect(&a, &o, &src, err, sizeof(err));
	acc.join();
	rdm_rdma_ops.listener_close(lis);
	ASSERT_EQ(0, cret) << err;
	ASSERT_EQ(0, aret) << lerr;
	ASSERT_EQ(0, dret) << derr;
	ASSERT_EQ(0, rdm_tp_set_blocks(src, &sb, 1)) << rdm_tp_errmsg();
	ASSERT_EQ(0, rdm_tp_write(src, 0, 0, win)) << rdm_tp_errmsg();
	ASSERT_EQ(0, rdm_tp_fence(src, 1)) << rdm_tp_errmsg();
	ASSERT_EQ(0, rdm_tp_wait_fence(dst, 1, 30000)) << rdm_tp_errmsg();
	ASSERT_EQ(0, memcmp(dmem.data(), smem.data(), win)) << "the session's write did not land";
	rt_rkey k = to_rdma(src)->remote[0][0];
	ASSERT_EQ(RT_KEY_VALID, k.state);
	EXPECT_GT(VmPinKiB(), pin0) << "pin-all pinned nothing?";

	/* A live rkey, from a QP of another connection: refused, nothing written. */
	std::string why;
	uint64_t target = k.addr + 2 * win;
	ibv_wc_status st = StrangerWrite(ip, target, k.rkey, &why);
	ASSERT_TRUE(why.empty()) << why;
	EXPECT_NE(IBV_WC_SUCCESS, st) << "a QP outside the session wrote with its rkey";
	printf("live rkey 0x%08x from a stranger QP: %s\n", k.rkey, ibv_wc_status_str(st));

	src->ops->close(src);
	dst->ops->close(dst);
	if (pin0 >= 0) {
		EXPECT_EQ(pin0, VmPinKiB()) << "the ended session left memory pinned";
	}

	/* After the end: the same rkey is dead for everyone. */
	st = StrangerWrite(ip, target, k.rkey, &why);
	ASSERT_TRUE(why.empty()) << why;
	EXPECT_EQ(IBV_WC_REM_ACCESS_ERR, st) << ibv_wc_status_str(st);
	printf("stale rkey 0x%08x after the session: %s\n", k.rkey, ibv_wc_status_str(st));
	usleep(100 * 1000); /* a window for a late write to land, were one let through */
	for (uint64_t i = win; i < len; i++)
		ASSERT_EQ(0x11, dmem[i]) << "byte " << i << " changed outside the session's writes";
}

} // namespace
