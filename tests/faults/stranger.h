/* SPDX-License-Identifier: MIT */
/*
 * Strangers at a destination's listener, for the garbage cases: raw bytes on
 * a tcp socket, raw rdma_cm connect requests with chosen private data, and a
 * peer that speaks the transport correctly (rdm_tp connect) but then says
 * the wrong thing or nothing at all.
 */
#ifndef RDMIG_TESTS_FAULTS_STRANGER_H
#define RDMIG_TESTS_FAULTS_STRANGER_H

#include <stdint.h>

#include <string>
#include <vector>

#include <rdma/rdma_cma.h>

/* A CHANNEL frame (the first thing every tcp socket or rdma_cm request carries). */
std::vector<uint8_t> ChannelFrame(uint16_t version, uint16_t index, uint16_t count,
				  uint16_t flags, uint64_t token);
/* A header claiming a payload far past any limit, with a little payload after it. */
std::vector<uint8_t> HugeFrame();
std::vector<uint8_t> RandomBytes(size_t n, unsigned seed);

/* tcp: connect to 127.0.0.1:port, send bytes (maybe none), keep the socket. */
struct TcpStranger {
	int fd = -1;
	~TcpStranger();
	bool Connect(uint16_t port);
	bool Send(const std::vector<uint8_t> &b);
	/* The listener closed us within timeout_ms. */
	bool ClosedWithin(int timeout_ms);
};

/*
 * rdma: one rdma_cm connect request with the given private data (<= 56 bytes)
 * to host:port. Connect() returns the event it ended with: REJECTED for a
 * refusal, ESTABLISHED when let in.
 */
struct CmStranger {
	rdma_event_channel *ch = nullptr;
	rdma_cm_id *id = nullptr;
	ibv_pd *pd = nullptr;
	ibv_cq *cq = nullptr;
	bool qp = false;
	std::string why;
	~CmStranger();
	int Connect(const std::string &host, uint16_t port, const std::vector<uint8_t> &pdata,
		    int timeout_ms, rdma_cm_event_type *got);
};

#endif
