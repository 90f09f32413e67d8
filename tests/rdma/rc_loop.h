/* SPDX-License-Identifier: MIT */
/*
 * A loopback RC connection for the rdma tests that post verbs by hand
 * (tests/rdma/test_pin.cc, tests/faults/test_stale_rkey.cc).
 */
#ifndef RDMIG_TESTS_RDMA_RC_LOOP_H
#define RDMIG_TESTS_RDMA_RC_LOOP_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <string>

namespace rc_loop {

// TCG-emulated rxe is slow: generous, finite waits.
constexpr int kCmTimeoutMs = 30000;
constexpr int kCqTimeoutMs = 60000;

inline int64_t NowMs()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// A server and a client rdma_cm endpoint on one device, one RC connection
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

} // namespace rc_loop

using rc_loop::kCmTimeoutMs;
using rc_loop::kCqTimeoutMs;
using rc_loop::Loop;
using rc_loop::NowMs;

#endif
