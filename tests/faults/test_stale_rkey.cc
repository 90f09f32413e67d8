/* SPDX-License-Identifier: MIT */
/*
 * No rkey of a migration session is good for anything outside it: a WRITE
 * from a QP of another connection with a live session's rkey is refused, and
 * after the session ended its rkeys are dead on the device and nothing it
 * pinned stays pinned. rdma only; the stranger's QP is the loopback RC pair of
 * tests/rdma/test_pin.cc (copied: that file has its own main).
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
#include "transport/rdma/rdma_int.h"
#include "transport/transport.h"

namespace {

constexpr int kCmTimeoutMs = 30000;
constexpr int kCqTimeoutMs = 60000;

int64_t NowMs()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// between them, driven from one thread. The server side has its own PD: that
// is where the target memory gets registered through rdm_pin.
struct Loop {
	rdma_event_channel *sch = nullptr, *cch = nullptr;
	rdma_cm_id *listen = nullptr, *conn = nullptr, *cli = nullptr;
	ibv_pd *spd = nullptr, *cpd = nullptr;
	ibv_cq *scq = nullptr, *ccq = nullptr;
	ibv_mr *src_mr = nullptr;
	bool sqp = false, cqp = false, connected = false;
	std::string why;

	~Loop()
	{
		if (connected)
			rdma_disconnect(cli);
		if (src_mr)
			ibv_dereg_mr(src_mr);
		if (cqp)
			rdma_destroy_qp(cli);
		if (sqp)
			rdma_destroy_qp(conn);
		if (ccq)
			ibv_destroy_cq(ccq);
		if (scq)
			ibv_destroy_cq(scq);
		if (cpd)
			ibv_dealloc_pd(cpd);
		if (spd)
			ibv_dealloc_pd(spd);
		if (cli)
			rdma_destroy_id(cli);
		if (conn)
			rdma_destroy_id(conn);
		if (listen)
			rdma_destroy_id(listen);
		if (cch)
			rdma_destroy_event_channel(cch);
		if (sch)
			rdma_destroy_event_channel(sch);
	}

	int Fail(const std::string &what, int ret)
	{
		why = what + ": " + strerror(-ret);
		return ret;
	}

	static int NonBlock(int fd)
	{
		int fl = fcntl(fd, F_GETFL);
		return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
	}

	// The next event on ch must be `want`; its id is returned in *id.
	int Wait(rdma_event_channel *ch, rdma_cm_event_type want, rdma_cm_id **id)
	{
		int64_t deadline = NowMs() + kCmTimeoutMs;
		rdma_cm_event *ev;

		while (rdma_get_cm_event(ch, &ev)) {
			if (errno != EAGAIN)
				return Fail("rdma_get_cm_event", -errno);
			pollfd pfd = { ch->fd, POLLIN, 0 };
			int64_t left = deadline - NowMs();
			if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
				return Fail(std::string("waiting for ") + rdma_event_str(want),
					    -ETIMEDOUT);
		}
		rdma_cm_event_type got = ev->event;
		int status = ev->status;
		if (id)
			*id = ev->id;
		rdma_ack_cm_event(ev);
		if (got != want) {
			why = std::string("expected ") + rdma_event_str(want) + ", got " +
			      rdma_event_str(got) + " (status " + std::to_string(status) + ")";
			return -EPROTO;
		}
		return 0;
	}

	int Qp(rdma_cm_id *id, ibv_pd *pd, ibv_cq *cq)
	{
		ibv_qp_init_attr a{};
		a.send_cq = cq;
		a.recv_cq = cq;
		a.qp_type = IBV_QPT_RC;
		a.sq_sig_all = 1;
		a.cap.max_send_wr = 16;
		a.cap.max_recv_wr = 1;
		a.cap.max_send_sge = 1;
		a.cap.max_recv_sge = 1;
		return rdma_create_qp(id, pd, &a) ? -errno : 0;
	}

	int Open(const char *addr)
	{
		sockaddr_in sin{};
		rdma_conn_param param{};
		int ret;

		sin.sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
			return Fail(std::string("not an IPv4 address: ") + addr, -EINVAL);
		sch = rdma_create_event_channel();
		cch = rdma_create_event_channel();
		if (!sch || !cch)
			return Fail("rdma_create_event_channel", -errno);
		if ((ret = NonBlock(sch->fd)) || (ret = NonBlock(cch->fd)))
			return Fail("O_NONBLOCK", ret);
		if (rdma_create_id(sch, &listen, nullptr, RDMA_PS_TCP))
			return Fail("rdma_create_id", -errno);
		if (rdma_bind_addr(listen, (sockaddr *)&sin))
			return Fail(std::string("rdma_bind_addr ") + addr, -errno);
		if (rdma_listen(listen, 1))
			return Fail("rdma_listen", -errno);
		sin.sin_port = rdma_get_src_port(listen);

		if (rdma_create_id(cch, &cli, nullptr, RDMA_PS_TCP))
			return Fail("rdma_create_id", -errno);
		if (rdma_resolve_addr(cli, nullptr, (sockaddr *)&sin, 5000))
			return Fail("rdma_resolve_addr", -errno);
		if ((ret = Wait(cch, RDMA_CM_EVENT_ADDR_RESOLVED, nullptr)))
			return ret;
		if (rdma_resolve_route(cli, 5000))
			return Fail("rdma_resolve_route", -errno);
		if ((ret = Wait(cch, RDMA_CM_EVENT_ROUTE_RESOLVED, nullptr)))
			return ret;
		cpd = ibv_alloc_pd(cli->verbs);
		if (!cpd)
			return Fail("ibv_alloc_pd (client)", -errno);
		ccq = ibv_create_cq(cli->verbs, 32, nullptr, nullptr, 0);
		if (!ccq)
			return Fail("ibv_create_cq (client)", -errno);
		if ((ret = Qp(cli, cpd, ccq)))
			return Fail("rdma_create_qp (client)", ret);
		cqp = true;
		param.responder_resources = 1;
		param.initiator_depth = 1;
		param.retry_count = 7;
		param.rnr_retry_count = 7;
		if (rdma_connect(cli, &param))
			return Fail("rdma_connect", -errno);

		if ((ret = Wait(sch, RDMA_CM_EVENT_CONNECT_REQUEST, &conn)))
			return ret;
		spd = ibv_alloc_pd(conn->verbs);
		if (!spd)
			return Fail("ibv_alloc_pd (server)", -errno);
		scq = ibv_create_cq(conn->verbs, 32, nullptr, nullptr, 0);
		if (!scq)
			return Fail("ibv_create_cq (server)", -errno);
		if ((ret = Qp(conn, spd, scq)))
			return Fail("rdma_create_qp (server)", ret);
		sqp = true;
		if (rdma_accept(conn, &param))
			return Fail("rdma_accept", -errno);
		if ((ret = Wait(cch, RDMA_CM_EVENT_ESTABLISHED, nullptr)))
			return ret;
		connected = true;
		return Wait(sch, RDMA_CM_EVENT_ESTABLISHED, nullptr);
	}

	int RegisterSource(void *p, size_t len)
	{
		src_mr = ibv_reg_mr(cpd, p, len, IBV_ACCESS_LOCAL_WRITE);
		return src_mr ? 0 : Fail("ibv_reg_mr (source)", -errno);
	}

	// Post one signaled RDMA WRITE from the source MR.
	int PostWrite(const void *src, uint32_t len, uint64_t raddr, uint32_t rkey, uint64_t wr_id)
	{
		ibv_sge sge = { (uint64_t)(uintptr_t)src, len, src_mr->lkey };
		ibv_send_wr wr{}, *bad = nullptr;
		wr.wr_id = wr_id;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.opcode = IBV_WR_RDMA_WRITE;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey;
		int ret = ibv_post_send(cli->qp, &wr, &bad);
		return ret ? Fail("ibv_post_send", -ret) : 0;
	}

	// The next client completion, within the deadline.
	int Next(ibv_wc *wc)
	{
		int64_t deadline = NowMs() + kCqTimeoutMs;
		for (;;) {
			int n = ibv_poll_cq(ccq, 1, wc);
			if (n < 0)
				return Fail("ibv_poll_cq", -EIO);
			if (n == 1)
				return 0;
			if (NowMs() > deadline)
				return Fail("waiting for a send completion", -ETIMEDOUT);
			usleep(200);
		}
	}

	// One WRITE, waited for; its completion status.
	int Write(const void *src, uint32_t len, uint64_t raddr, uint32_t rkey, ibv_wc_status *st)
	{
		ibv_wc wc{};
		int ret = PostWrite(src, len, raddr, rkey, 1);
		if (!ret)
			ret = Next(&wc);
		if (!ret)
			*st = wc.status;
		return ret;
	}
};

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
	ASSERT_TRUE(k.valid);
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
	usleep(100 * 1000);
	for (uint64_t i = win; i < len; i++)
		ASSERT_EQ(0x11, dmem[i]) << "byte " << i << " changed outside the session's writes";
}

} // namespace
