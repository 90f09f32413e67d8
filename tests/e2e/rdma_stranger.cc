/* SPDX-License-Identifier: MIT */
#include "rdma_stranger.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>

#include <chrono>

#include <rdma/rdma_cma.h>

#include "control/msg.h"

namespace {

/* The next CM event within timeout_ms, or nullptr. */
rdma_cm_event *next_event(rdma_event_channel *ech, int timeout_ms)
{
	pollfd pfd = {ech->fd, POLLIN, 0};
	rdma_cm_event *ev = nullptr;

	if (poll(&pfd, 1, timeout_ms) <= 0 || rdma_get_cm_event(ech, &ev))
		return nullptr;
	return ev;
}

} // namespace

RdmaStranger::~RdmaStranger()
{
	if (id_) {
		if (qp_) {
			rdma_disconnect(id_);
			rdma_destroy_qp(id_);
		}
		rdma_destroy_id(id_);
	}
	if (ech_)
		rdma_destroy_event_channel(ech_);
}

int RdmaStranger::Connect(const std::string &host, uint16_t port, unsigned count)
{
	addrinfo hints{}, *ai = nullptr;
	std::string h = host;
	if (!h.empty() && h[0] == '[')
		h = h.substr(1, h.size() - 2);
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &ai)) {
		err = "bad address " + host;
		return -EINVAL;
	}
	ech_ = rdma_create_event_channel();
	if (!ech_ || rdma_create_id(ech_, &id_, nullptr, RDMA_PS_TCP)) {
		freeaddrinfo(ai);
		err = "rdma_create_id failed";
		return -ENODEV;
	}
	int ret = rdma_resolve_addr(id_, nullptr, ai->ai_addr, 5000);
	freeaddrinfo(ai);
	auto step = [&](rdma_cm_event_type want) {
		rdma_cm_event *ev = next_event(ech_, 10000);
		if (!ev) {
			err = std::string("no event, waiting for ") + rdma_event_str(want);
			return -ETIMEDOUT;
		}
		int r = 0;
		if (ev->event == RDMA_CM_EVENT_REJECTED) {
			err = "rejected";
			if (ev->param.conn.private_data_len)
				err += ": " + std::string((const char *)ev->param.conn.private_data,
							  strnlen((const char *)ev->param.conn.private_data,
								  ev->param.conn.private_data_len));
			r = -ECONNREFUSED;
		} else if (ev->event != want) {
			err = std::string(rdma_event_str(ev->event)) + " instead of " + rdma_event_str(want);
			r = -EPROTO;
		}
		rdma_ack_cm_event(ev);
		return r;
	};
	if (ret || (ret = step(RDMA_CM_EVENT_ADDR_RESOLVED)))
		return ret ? ret : -EIO;
	if ((ret = rdma_resolve_route(id_, 5000)) || (ret = step(RDMA_CM_EVENT_ROUTE_RESOLVED)))
		return ret;
	ibv_qp_init_attr qa{};
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = qa.cap.max_recv_wr = 4;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id_, nullptr, &qa)) {
		err = std::string("rdma_create_qp: ") + strerror(errno);
		return -EIO;
	}
	qp_ = true;

	/* What an rdmig source sends for its control QP: pin-all off, 1 MiB chunks. */
	rdm_msg m{};
	uint8_t pdata[64];
	size_t len = 0;
	m.type = RDM_MSG_CHANNEL;
	m.u.channel = {RDM_WIRE_MAGIC, RDM_WIRE_VERSION, 0, (uint16_t)count, (uint16_t)(20 << 8),
		       0x5354524e47455221ull};
	rdm_msg_encode(&m, pdata, sizeof(pdata), &len);
	rdma_conn_param cp{};
	cp.private_data = pdata;
	cp.private_data_len = (uint8_t)len;
	cp.responder_resources = cp.initiator_depth = 1;
	cp.retry_count = cp.rnr_retry_count = 7;
	if (rdma_connect(id_, &cp)) {
		err = std::string("rdma_connect: ") + strerror(errno);
		return -EIO;
	}
	return step(RDMA_CM_EVENT_ESTABLISHED);
}

bool RdmaStranger::WaitDisconnected(int timeout_ms)
{
	auto t0 = std::chrono::steady_clock::now();
	for (;;) {
		int left = timeout_ms - (int)std::chrono::duration_cast<std::chrono::milliseconds>(
						std::chrono::steady_clock::now() - t0).count();
		if (left <= 0) {
			err = "still connected";
			return false;
		}
		rdma_cm_event *ev = next_event(ech_, left);
		if (!ev)
			continue;
		bool gone = ev->event == RDMA_CM_EVENT_DISCONNECTED;
		rdma_ack_cm_event(ev);
		if (gone)
			return true;
	}
}
