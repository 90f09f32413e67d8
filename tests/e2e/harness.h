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
	int first_status; /* the status rdmig_wait() returned, before any rdmig_resolve() */
	/* Filled by the fault-suite children (tests/faults/) as well. */
	unsigned stops;
	bool running;           /* the child's guest was running at the end */
	int cancel_ret;         /* what the child's rdmig_cancel() returned (1: not called) */
	uint64_t ram_transferred;
	uint64_t pages_missing; /* postcopy: pages that never arrived (memory then not summed) */
};

/*
 * What a child session does besides migrating (the fault suite sets these);
 * the defaults change nothing. Plain data: it travels to the child in hex.
 */
struct ChildOpts {
	int peer_timeout_ms = 0;              /* 0: the session's default */
	uint64_t max_bw = 0;                  /* source: bytes/s, 0 = none */
	uint64_t downtime_ms = 0;             /* source: 0 = the default */
	unsigned channels = 0;                /* source: 0 = the default */
	bool pin_all = false;                 /* source */
	bool pause_before_switchover = false; /* source: continue once paused, unless cancelling there */
	int cancel_in = -1;                   /* cancel once this rdmig_status is reached; -1: never */
	uint64_t cancel_after_syncs = 0;      /* ... and this many dirty syncs were counted */
	uint64_t progress_bytes = 0;          /* source: report progress once this much RAM moved */
	uint64_t memlock_bytes = 0;           /* soft RLIMIT_MEMLOCK in the child; 0: unchanged */
	char fault[64] = "";                  /* RDMIG_FAULT in the child */
	char report_on_news[48] = "";         /* dest: report a second after its news says this */
	/*
	 * Both: postcopy-ram on. Source: rdmig_postcopy_start() after this many
	 * dirty syncs, and its progress reported once postcopy-active. 0: off.
	 */
	unsigned postcopy_after_syncs = 0;
};

/* "tcp" or "rdma", from RDMIG_TEST_TRANSPORT. */
std::string TestTransport();
/* The address to listen on / connect to for the test transport. */
std::string TestHost(bool ipv6 = false);

/* A peer in a child process: its pid, its report pipe, signals and the kill. */
class ChildProcess {
      public:
	~ChildProcess();
	/* kill(pid, sig): SIGSTOP/SIGCONT/SIGKILL the child; 0 or -errno. */
	int Signal(int sig);
	void Kill();
	pid_t pid = -1;

      protected:
	/* The child's report, then its exit; false if it died or timed out. */
	bool ReadResult(PeerResult *r, int timeout_ms);
	int fd_ = -1;
};

class DestProcess : public ChildProcess {
      public:
	/* Start, listen on scheme:host:0, and return once the port is known. */
	bool Spawn(const guest_cfg &cfg, const std::string &host, int wait_ms = 300000);
	bool Spawn(const guest_cfg &cfg, const std::string &host, const ChildOpts &o,
		   int wait_ms = 300000);
	/* The destination's report; false if it died or timed out. */
	bool Result(PeerResult *r, int timeout_ms = 320000);
	std::string Uri() const;
	uint16_t port = 0;
	/* Set before Spawn(): the destination's secret, VM uuid (validate-uuid on), peer timeout. */
	std::string secret;
	std::string uuid; /* 16 bytes, or empty */
	bool validate_uuid = false;
	int peer_timeout_ms = 0; /* 0: the default */
	/*
	 * TLS for the destination, set before Spawn(): "" (none),
	 * "psk:IDENTITY:HEXKEY" or "x509:CA:CERT:KEY:VERIFY_PEER(0|1)".
	 */
	std::string tls;

      private:
	std::string host_;
};

/*
 * A source in a child process (re-executed like the destination), with its
 * own dirtying guest: for the cases where the source side must be killed or
 * frozen. Its report carries the source guest's CRCs at the end, its stops
 * and starts, and whether it was running.
 */
class SourceProcess : public ChildProcess {
      public:
	bool Spawn(const guest_cfg &cfg, const std::string &uri, const ChildOpts &o,
		   int wait_ms = 300000);
	/* True once the child moved o.progress_bytes of RAM (or ended before). */
	bool WaitProgress(int timeout_ms);
	bool Result(PeerResult *r, int timeout_ms = 320000);

      private:
	bool progress_ = false;
	bool want_progress_ = false;
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
