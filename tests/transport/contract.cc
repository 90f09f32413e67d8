// SPDX-License-Identifier: MIT
// The contract test's plumbing: transports, addresses, pairs, frames.
#include "tests/transport/contract.h"

#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "control/msg.h"

namespace contract {

std::string ParamName(const testing::TestParamInfo<Param> &i)
{
	std::string n = i.param.v6 ? "v6" : "v4";
	if (i.param.channels != 1)
		n += "_" + std::to_string(i.param.channels) + "ch";
	if (i.param.urgent)
		n += "_urgent";
	return n;
}

long MsSince(Clock::time_point t0)
{
	return (long)std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)
		.count();
}

static bool ipv6_loopback_usable()
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	sockaddr_in6 sa{};
	sa.sin6_family = AF_INET6;
	sa.sin6_addr = in6addr_loopback;
	bool ok = bind(fd, (sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static bool rdma_device_present()
{
	int n = 0;
	ibv_device **l = ibv_get_device_list(&n);
	if (l)
		ibv_free_device_list(l);
	return n > 0;
}

// The address the rdma device answers on (tests/vm/rxe-run sets both).
static const char *rdma_addr(bool v6)
{
	const char *a = getenv(v6 ? "RDMIG_RDMA_ADDR6" : "RDMIG_RDMA_ADDR");
	return a && *a ? a : nullptr;
}

const rdm_tp_ops *OpsFor(const Param &p, std::string *why)
{
	const rdm_tp_ops *ops = rdm_tp_lookup(p.scheme);
	if (!ops) {
		*why = "transport not built in";
		return nullptr;
	}
	if (p.scheme == RDM_SCHEME_TCP) {
		if (p.v6 && !ipv6_loopback_usable()) {
			*why = "no IPv6 loopback on this machine";
			return nullptr;
		}
		return ops;
	}
	if (!rdma_device_present()) {
		*why = "no RDMA device (the rdma cases run inside tests/vm/rxe-run)";
		return nullptr;
	}
	if (!rdma_addr(p.v6)) {
		*why = std::string(p.v6 ? "RDMIG_RDMA_ADDR6" : "RDMIG_RDMA_ADDR") + " not set";
		return nullptr;
	}
	return ops;
}

std::string Uri(const Param &p, uint16_t port)
{
	std::string host;
	if (p.scheme == RDM_SCHEME_RDMA)
		host = rdma_addr(p.v6) ? rdma_addr(p.v6) : "";
	else
		host = p.v6 ? "::1" : "127.0.0.1";
	if (p.v6)
		host = "[" + host + "]";
	return std::string(p.scheme == RDM_SCHEME_RDMA ? "rdma:" : "tcp:") + host + ":" +
	       std::to_string(port);
}

Listener::~Listener()
{
	if (l)
		ops->listener_close(l);
}

Pair::~Pair()
{
	if (src)
		ops->close(src);
	if (dst)
		ops->close(dst);
}

rdm_tp_opts Opts(const Param &p)
{
	rdm_tp_opts o{};
	o.channels = p.channels;
	o.chunk_size = CHUNK;
	o.pin_all = false;
	o.timeout_ms = PEER_TIMEOUT_MS;
	o.urgent_channel = p.urgent;
	return o;
}

void Listen(const Param &p, const rdm_tp_ops *ops, Listener &L)
{
	char err[RDM_TP_ERRLEN] = "";
	rdm_addr a;
	rdm_tp_opts o = Opts(p);
	L.ops = ops;
	ASSERT_EQ(rdm_addr_parse(Uri(p, 0).c_str(), &a, err, sizeof(err)), 0) << err;
	ASSERT_EQ(ops->listen(&a, &o, &L.l, err, sizeof(err)), 0) << err;
	ASSERT_EQ(ops->listener_port(L.l, &L.port), 0);
	ASSERT_NE(L.port, 0);
}

int Connect(const Param &p, Listener &L, rdm_tp **src, rdm_tp **dst, int *acc, std::string *err)
{
	char aerr[RDM_TP_ERRLEN] = "", cerr[RDM_TP_ERRLEN] = "";
	rdm_tp_opts o = Opts(p);
	rdm_addr a;
	// connect() returns only once accepted: accept in a thread.
	std::thread th([&] { *acc = L.ops->accept(L.l, PEER_TIMEOUT_MS, dst, aerr, sizeof(aerr)); });
	int ret = rdm_addr_parse(Uri(p, L.port).c_str(), &a, cerr, sizeof(cerr));
	if (ret == 0)
		ret = L.ops->connect(&a, &o, src, cerr, sizeof(cerr));
	th.join();
	*err = std::string("connect: ") + cerr + "; accept: " + aerr;
	return ret;
}

void MakePair(const Param &p, const rdm_tp_ops *ops, Pair &pair)
{
	pair.ops = ops;
	ASSERT_NO_FATAL_FAILURE(Listen(p, ops, pair.L));
	int acc = 1;
	std::string err;
	int ret = Connect(p, pair.L, &pair.src, &pair.dst, &acc, &err);
	ASSERT_EQ(ret, 0) << err;
	ASSERT_EQ(acc, 0) << err;
	ASSERT_NE(pair.src, nullptr);
	ASSERT_NE(pair.dst, nullptr);
}

std::vector<uint8_t> Frame(size_t len, uint64_t seed)
{
	std::vector<uint8_t> f(len);
	std::mt19937_64 rng(seed);
	// Device state: a type every transport hands through without looking inside.
	rdm_hdr_encode(f.data(), RDM_MSG_DEVSTATE, (uint32_t)(len - RDM_HDR_LEN));
	FillRandom(rng, f.data() + RDM_HDR_LEN, len - RDM_HDR_LEN);
	return f;
}

uint32_t Crc(const uint8_t *p, size_t len)
{
	return (uint32_t)crc32(crc32(0, nullptr, 0), p, (uInt)len);
}

void FillRandom(std::mt19937_64 &rng, uint8_t *p, size_t len)
{
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t v = rng();
		memcpy(p + i, &v, 8);
	}
	for (; i < len; i++)
		p[i] = (uint8_t)rng();
}

TwoBlocks::TwoBlocks(size_t len0, size_t len1, uint64_t seed, uint32_t page)
{
	std::mt19937_64 rng(seed);
	const size_t lens[2] = { len0, len1 };
	for (int b = 0; b < 2; b++) {
		s[b].resize(lens[b]);
		FillRandom(rng, s[b].data(), lens[b]);
		d[b].assign(lens[b], 0);
		const char *name = b ? "ram1" : "ram0";
		sb[b] = rdm_tp_block{ name, s[b].data(), lens[b], page };
		db[b] = rdm_tp_block{ name, d[b].data(), lens[b], page };
	}
}

void TwoBlocks::Set(Pair &p, rdm_tp_place_fn fn, void *opaque)
{
	ASSERT_EQ(p.ops->set_blocks(p.dst, db, 2), 0) << rdm_tp_errmsg();
	ASSERT_EQ(p.ops->set_blocks(p.src, sb, 2), 0) << rdm_tp_errmsg();
	ASSERT_EQ(p.ops->set_placer(p.dst, fn, opaque), 0) << rdm_tp_errmsg();
}

void ContractTest::SetUp()
{
	std::string why;
	ops = OpsFor(GetParam(), &why);
	if (ops)
		return;
	// Inside the soft-RoCE VM every case must run: a missing device is a failure.
	if (getenv("RDMIG_IN_VM"))
		FAIL() << why;
	GTEST_SKIP() << why;
}

} // namespace contract
