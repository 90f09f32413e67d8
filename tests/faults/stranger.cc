/* SPDX-License-Identifier: MIT */
#include "stranger.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control/msg.h"

std::vector<uint8_t> ChannelFrame(uint16_t version, uint16_t index, uint16_t count,
				  uint16_t flags, uint64_t token)
{
	std::vector<uint8_t> b(RDM_HDR_LEN + 20);
	uint8_t *p = b.data() + RDM_HDR_LEN;

	/* By hand, not rdm_msg_encode(): the point is to send what it would refuse. */
	rdm_hdr_encode(b.data(), RDM_MSG_CHANNEL, 20);
	rdm_put_u32(p, RDM_WIRE_MAGIC);
	rdm_put_u16(p + 4, version);
	rdm_put_u16(p + 6, index);
	rdm_put_u16(p + 8, count);
	rdm_put_u16(p + 10, flags);
	rdm_put_u64(p + 12, token);
	return b;
}

std::vector<uint8_t> HugeFrame()
{
	std::vector<uint8_t> b = ChannelFrame(RDM_WIRE_VERSION, 0, 2, 0, 7);

	rdm_put_u32(b.data() + 4, 0xfffffff0u); /* payload length */
	return b;
}

std::vector<uint8_t> RandomBytes(size_t n, unsigned seed)
{
	std::vector<uint8_t> b(n);

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (uint8_t)(seed >> 16);
	}
	return b;
}

TcpStranger::~TcpStranger()
{
	if (fd >= 0)
		close(fd);
}

bool TcpStranger::Connect(uint16_t port)
{
	sockaddr_in sin{};

	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return fd >= 0 && connect(fd, (sockaddr *)&sin, sizeof(sin)) == 0;
}

bool TcpStranger::Send(const std::vector<uint8_t> &b)
{
	return send(fd, b.data(), b.size(), MSG_NOSIGNAL) == (ssize_t)b.size();
}

bool TcpStranger::ClosedWithin(int timeout_ms)
{
	char buf[256];
	pollfd pfd = {fd, POLLIN, 0};

	for (;;) {
		if (poll(&pfd, 1, timeout_ms) != 1)
			return false;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return true;
	}
}

static int64_t now_ms()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next event on ch within the deadline. */
static int next(rdma_event_channel *ch, int64_t deadline, rdma_cm_event_type *type)
{
	rdma_cm_event *ev;

	while (rdma_get_cm_event(ch, &ev)) {
		if (errno != EAGAIN)
			return -errno;
		pollfd pfd = {ch->fd, POLLIN, 0};
		int64_t left = deadline - now_ms();
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
			return -ETIMEDOUT;
	}
	*type = ev->event;
	rdma_ack_cm_event(ev);
	return 0;
}

CmStranger::~CmStranger()
{
	if (qp)
		rdma_destroy_qp(id);
	if (cq)
		ibv_destroy_cq(cq);
	if (pd)
		ibv_dealloc_pd(pd);
	if (id)
		rdma_destroy_id(id);
	if (ch)
		rdma_destroy_event_channel(ch);
}

int CmStranger::Connect(const std::string &host, uint16_t port, const std::vector<uint8_t> &pdata,
			int timeout_ms, rdma_cm_event_type *got)
{
	int64_t deadline = now_ms() + timeout_ms;
	sockaddr_in sin{};
	rdma_cm_event_type t;
	int ret;

	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, host.c_str(), &sin.sin_addr) != 1)
		return why = "not an IPv4 address: " + host, -EINVAL;
	ch = rdma_create_event_channel();
	if (!ch || fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) | O_NONBLOCK))
		return why = "event channel", -errno;
	if (rdma_create_id(ch, &id, nullptr, RDMA_PS_TCP) ||
	    rdma_resolve_addr(id, nullptr, (sockaddr *)&sin, timeout_ms))
		return why = std::string("resolve addr: ") + strerror(errno), -errno;
	if ((ret = next(ch, deadline, &t)) || t != RDMA_CM_EVENT_ADDR_RESOLVED)
		return why = "addr not resolved", ret ? ret : -EPROTO;
	if (rdma_resolve_route(id, timeout_ms))
		return why = "resolve route", -errno;
	if ((ret = next(ch, deadline, &t)) || t != RDMA_CM_EVENT_ROUTE_RESOLVED)
		return why = "route not resolved", ret ? ret : -EPROTO;
	pd = ibv_alloc_pd(id->verbs);
	cq = pd ? ibv_create_cq(id->verbs, 4, nullptr, nullptr, 0) : nullptr;
	if (!cq)
		return why = "pd/cq", -ENOMEM;
	ibv_qp_init_attr a{};
	a.send_cq = a.recv_cq = cq;
	a.qp_type = IBV_QPT_RC;
	a.cap.max_send_wr = a.cap.max_recv_wr = 1;
	a.cap.max_send_sge = a.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, pd, &a))
		return why = "create qp", -errno;
	qp = true;
	rdma_conn_param cp{};
	cp.private_data = pdata.data();
	cp.private_data_len = (uint8_t)pdata.size();
	cp.responder_resources = cp.initiator_depth = 1;
	cp.retry_count = cp.rnr_retry_count = 7;
	if (rdma_connect(id, &cp))
		return why = std::string("rdma_connect: ") + strerror(errno), -errno;
	if ((ret = next(ch, deadline, got)))
		return why = "no answer to the connect request", ret;
	return 0;
}
