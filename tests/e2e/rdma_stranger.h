/* SPDX-License-Identifier: MIT */
/*
 * A stranger at an rdma listener: one rdma_cm connection (the control QP of
 * a session of `count` channels) with a CHANNEL hello and no proof, then
 * silence. For the tests of half-open deadlines and refusals over rdma.
 */
#ifndef RDMIG_TESTS_E2E_RDMA_STRANGER_H
#define RDMIG_TESTS_E2E_RDMA_STRANGER_H

#include <stdint.h>

#include <string>

struct rdma_event_channel;
struct rdma_cm_id;

class RdmaStranger {
      public:
	~RdmaStranger();
	/* 0 once established; -ECONNREFUSED (err has the reason) when rejected. */
	int Connect(const std::string &host, uint16_t port, unsigned count);
	/* True when the listener disconnected us within timeout_ms. */
	bool WaitDisconnected(int timeout_ms);
	std::string err;

      private:
	rdma_event_channel *ech_ = nullptr;
	rdma_cm_id *id_ = nullptr;
	bool qp_ = false;
};

#endif
