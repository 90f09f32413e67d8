/* SPDX-License-Identifier: MIT */
/*
 * The transport contract test's plumbing: which transport and address a case
 * runs on, a connected pair of transports, memory to write, frames to send.
 * Every case takes a Param, so the same case runs on tcp and on rdma.
 */
#ifndef RDMIG_TESTS_TRANSPORT_CONTRACT_H
#define RDMIG_TESTS_TRANSPORT_CONTRACT_H

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace contract {

using Clock = std::chrono::steady_clock;

/* Peer-silence limit of every pair: generous, the machine is a loaded 2-core box. */
constexpr int PEER_TIMEOUT_MS = 20000;
/* Every data chunk is 1 MiB: rdma refuses chunks below that. */
constexpr uint64_t CHUNK = 1u << 20;

struct Param {
	enum rdm_scheme scheme;
	bool v6;
	unsigned channels;
	bool urgent = false; /* opts.urgent_channel */
};

std::string ParamName(const testing::TestParamInfo<Param> &i);

long MsSince(Clock::time_point t0);

/* The transport of p, or why it cannot run here (then *why is set). */
const rdm_tp_ops *OpsFor(const Param &p, std::string *why);
/* "tcp:HOST:PORT" / "rdma:HOST:PORT" for p's address family. */
std::string Uri(const Param &p, uint16_t port);

struct Listener {
	const rdm_tp_ops *ops = nullptr;
	rdm_tp_listener *l = nullptr;
	uint16_t port = 0;
	~Listener();
};

struct Pair {
	const rdm_tp_ops *ops = nullptr;
	Listener L;
	rdm_tp *src = nullptr, *dst = nullptr;
	~Pair();
};

rdm_tp_opts Opts(const Param &p);
void Listen(const Param &p, const rdm_tp_ops *ops, Listener &L);
/* Connects to L from this thread while another accepts; *acc gets accept()'s result. */
int Connect(const Param &p, Listener &L, rdm_tp **src, rdm_tp **dst, int *acc, std::string *err);
void MakePair(const Param &p, const rdm_tp_ops *ops, Pair &pair);

/* A whole control frame of len bytes (header included), contents from seed. */
std::vector<uint8_t> Frame(size_t len, uint64_t seed);

uint32_t Crc(const uint8_t *p, size_t len);
void FillRandom(std::mt19937_64 &rng, uint8_t *p, size_t len);

/*
 * Two blocks a side ("ram0", "ram1"): the source's random from seed, the
 * destination's zero. Set() gives both lists to a pair and fn as its placer.
 */
struct TwoBlocks {
	std::vector<uint8_t> s[2], d[2];
	rdm_tp_block sb[2], db[2];
	TwoBlocks(size_t len0, size_t len1, uint64_t seed, uint32_t page);
	void Set(Pair &p, rdm_tp_place_fn fn, void *opaque);
};

/* Skips (or, inside the soft-RoCE VM, fails) when the transport cannot run here. */
class ContractTest : public testing::TestWithParam<Param> {
      protected:
	void SetUp() override;
	const rdm_tp_ops *ops = nullptr;
};

} // namespace contract

#endif
