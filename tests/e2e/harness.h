/* SPDX-License-Identifier: MIT */
/*
 * End-to-end harness: the destination runs in a forked process with its own
 * synthetic guest, and reports back through a pipe: its final status, error,
 * CRC32 of every block and of the device state, and how often it started the VM.
 * The transport comes from RDMIG_TEST_TRANSPORT (tcp by default, rdma in the VM).
 */
#ifndef RDMIG_TESTS_E2E_HARNESS_H
#define RDMIG_TESTS_E2E_HARNESS_H

#include <sys/types.h>

#include <functional>
#include <string>

#include "guest.h"
#include "rdmig/rdmig.h"

#define HARNESS_MAX_BLOCKS 64

struct PeerResult {
	int status;
	unsigned nblocks;
	uint32_t crc[HARNESS_MAX_BLOCKS];
	uint32_t devcrc;
	unsigned starts;
	char error[256];
};

/* "tcp" or "rdma", from RDMIG_TEST_TRANSPORT. */
std::string TestTransport();
/* The address to listen on / connect to for the test transport. */
std::string TestHost(bool ipv6 = false);

class DestProcess {
      public:
	~DestProcess();
	/* Start, listen on scheme:host:0, and return once the port is known. */
	bool Spawn(const guest_cfg &cfg, const std::string &host, int wait_ms = 300000);
	/* The destination's report; false if it died or timed out. */
	bool Result(PeerResult *r, int timeout_ms = 320000);
	void Kill();
	std::string Uri() const;
	pid_t pid = -1;
	uint16_t port = 0;
	/*
	 * TLS for the destination, set before Spawn(): "" (none),
	 * "psk:IDENTITY:HEXKEY" or "x509:CA:CERT:KEY:VERIFY_PEER(0|1)".
	 */
	std::string tls;

      private:
	int fd_ = -1;
	std::string host_;
};

/* A source session on a fresh guest, configured by the test. */
struct Source {
	guest *g = nullptr;
	rdmig_session *s = nullptr;
	~Source();
	bool Create(const guest_cfg &cfg);
};

/* Waits up to timeout_ms for pred(stats) to hold; false on timeout. */
bool WaitFor(rdmig_session *s, int timeout_ms, const std::function<bool(const rdmig_stats &)> &pred);

guest_cfg DefaultGuest(uint64_t mib, uint64_t dirty_mib_s);

/* Why the test transport cannot run here ("" when it can). */
std::string NoTransportReason();

#include <gtest/gtest.h>

/* Skips (with the reason) when the transport has no device here. */
class TransportTest : public ::testing::Test {
      protected:
	void SetUp() override;
};

#endif
