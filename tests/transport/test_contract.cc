// SPDX-License-Identifier: MIT
// The transport contract (transport/transport.h), case by case, on every
// transport: the same cases run on tcp on the host (suite 'tcp') and on rdma
// inside the soft-RoCE VM (suite 'rdma'), so the two cannot drift apart.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <thread>

#include "control/msg.h"
#include "tests/transport/contract.h"

namespace contract {
namespace {

// Long enough that a transport which treats "no limit" as 0 has returned.
constexpr auto STILL_BLOCKED = std::chrono::milliseconds(300);
// Upper bound for "returns at once": never tighter than the peer timeout.
constexpr long PROMPTLY_MS = PEER_TIMEOUT_MS;

// Two blocks on each side: the source's random, the destination's zero.
struct Mem {
	std::vector<uint8_t> s[2], d[2];
	rdm_tp_block sb[2], db[2];
	Mem(size_t len0, size_t len1, uint64_t seed)
	{
		std::mt19937_64 rng(seed);
		const size_t lens[2] = { len0, len1 };
		for (int b = 0; b < 2; b++) {
			s[b].resize(lens[b]);
			FillRandom(rng, s[b].data(), lens[b]);
			d[b].assign(lens[b], 0);
			const char *name = b ? "ram1" : "ram0";
			sb[b] = rdm_tp_block{ name, s[b].data(), lens[b], 4096 };
			db[b] = rdm_tp_block{ name, d[b].data(), lens[b], 4096 };
		}
	}
	// The destination first: an rdma source waits for its registration answer.
	void Set(Pair &p)
	{
		ASSERT_EQ(p.ops->set_blocks(p.dst, db, 2), 0) << rdm_tp_errmsg();
		ASSERT_EQ(p.ops->set_blocks(p.src, sb, 2), 0) << rdm_tp_errmsg();
	}
	void ExpectSame(const char *when)
	{
		for (int b = 0; b < 2; b++)
			EXPECT_EQ(Crc(d[b].data(), d[b].size()), Crc(s[b].data(), s[b].size()))
				<< "block " << b << " " << when;
	}
};

// Sends frames from a thread (a big one need not fit a socket buffer).
std::thread SendAll(const rdm_tp_ops *ops, rdm_tp *t, const std::vector<std::vector<uint8_t>> &f,
		    std::atomic<int> *ret)
{
	return std::thread([=] {
		int r = 0;
		for (size_t i = 0; i < f.size() && r == 0; i++)
			r = ops->send(t, f[i].data(), f[i].size());
		*ret = r;
	});
}

// Receives the frames f, in order and whole.
void RecvExpect(const rdm_tp_ops *ops, rdm_tp *t, const std::vector<std::vector<uint8_t>> &f)
{
	std::vector<uint8_t> buf(RDM_TP_MAX_MSG);
	for (size_t i = 0; i < f.size(); i++) {
		size_t len = 0;
		ASSERT_EQ(ops->recv(t, buf.data(), buf.size(), &len, PEER_TIMEOUT_MS), 0)
			<< "message " << i << ": " << rdm_tp_errmsg();
		ASSERT_EQ(len, f[i].size()) << "message " << i;
		ASSERT_EQ(memcmp(buf.data(), f[i].data(), len), 0) << "message " << i;
	}
}

// Frames of mixed sizes, from header-only to the largest.
std::vector<std::vector<uint8_t>> Frames(unsigned n, uint64_t seed)
{
	std::mt19937_64 rng(seed);
	std::vector<std::vector<uint8_t>> f;
	for (unsigned i = 0; i < n; i++) {
		size_t len = RDM_HDR_LEN + rng() % (16u << 10);
		if (i % 50 == 7)
			len = RDM_TP_MAX_MSG;
		if (i % 50 == 3)
			len = RDM_HDR_LEN;
		f.push_back(Frame(len, seed * 1000 + i));
	}
	return f;
}

using Contract = ContractTest;

// ---- timeouts ----

TEST_P(Contract, TimeoutsReturnEtimedout)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Mem m(CHUNK, CHUNK, 1);
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	uint8_t buf[64];
	size_t len = 0;

	for (rdm_tp *t : { p.dst, p.src }) {
		auto t0 = Clock::now();
		EXPECT_EQ(ops->recv(t, buf, sizeof(buf), &len, 200), -ETIMEDOUT) << rdm_tp_errmsg();
		long el = MsSince(t0);
		EXPECT_GE(el, 195); // never before the timeout (ms rounding aside)
		EXPECT_LT(el, PROMPTLY_MS);
		t0 = Clock::now();
		EXPECT_EQ(ops->recv(t, buf, sizeof(buf), &len, 0), -ETIMEDOUT) << rdm_tp_errmsg();
		EXPECT_LT(MsSince(t0), PROMPTLY_MS);
	}
	auto t0 = Clock::now();
	EXPECT_EQ(ops->wait_fence(p.dst, 1, 200), -ETIMEDOUT) << rdm_tp_errmsg();
	EXPECT_GE(MsSince(t0), 195);
	EXPECT_LT(MsSince(t0), PROMPTLY_MS);
	EXPECT_EQ(ops->wait_fence(p.dst, 1, 0), -ETIMEDOUT) << rdm_tp_errmsg();

	// A timeout costs nothing: both directions and the page path still work.
	auto f = Frame(100, 2);
	ASSERT_EQ(ops->send(p.src, f.data(), f.size()), 0) << rdm_tp_errmsg();
	ASSERT_NO_FATAL_FAILURE(RecvExpect(ops, p.dst, { f }));
	ASSERT_EQ(ops->send(p.dst, f.data(), f.size()), 0) << rdm_tp_errmsg();
	ASSERT_NO_FATAL_FAILURE(RecvExpect(ops, p.src, { f }));
	ASSERT_EQ(ops->write(p.src, 0, 0, CHUNK), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->write(p.src, 1, 0, CHUNK), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->fence(p.src, 1), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->wait_fence(p.dst, 1, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	m.ExpectSame("after the timeouts");
}

TEST_P(Contract, AcceptTimesOutWithEmptyError)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(Listen(GetParam(), ops, L));
	rdm_tp *t = nullptr;
	char err[RDM_TP_ERRLEN] = "stale";
	auto t0 = Clock::now();
	EXPECT_EQ(ops->accept(L.l, 200, &t, err, sizeof(err)), -ETIMEDOUT);
	EXPECT_GE(MsSince(t0), 195);
	EXPECT_LT(MsSince(t0), PROMPTLY_MS);
	EXPECT_STREQ(err, ""); // nobody came, nobody was refused
	EXPECT_EQ(t, nullptr);
	strcpy(err, "stale");
	EXPECT_EQ(ops->accept(L.l, 0, &t, err, sizeof(err)), -ETIMEDOUT);
	EXPECT_STREQ(err, "");
}

// ---- a negative timeout waits without limit ----

TEST_P(Contract, NegativeTimeoutRecvWaitsForMessage)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	// Destination (control stream) and source (return path) alike.
	for (int dir = 0; dir < 2; dir++) {
		rdm_tp *rx = dir ? p.src : p.dst, *tx = dir ? p.dst : p.src;
		std::vector<uint8_t> buf(4096);
		size_t len = 0;
		auto fut = std::async(std::launch::async,
				      [&] { return ops->recv(rx, buf.data(), buf.size(), &len, -1); });
		ASSERT_EQ(fut.wait_for(STILL_BLOCKED), std::future_status::timeout)
			<< "recv(-1) returned " << fut.get() << ": " << rdm_tp_errmsg();
		auto f = Frame(1000, 10 + dir);
		ASSERT_EQ(ops->send(tx, f.data(), f.size()), 0) << rdm_tp_errmsg();
		ASSERT_EQ(fut.get(), 0) << rdm_tp_errmsg();
		ASSERT_EQ(len, f.size());
		EXPECT_EQ(memcmp(buf.data(), f.data(), len), 0);
	}
}

TEST_P(Contract, NegativeTimeoutWaitFenceWaitsForFence)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Mem m(2 * CHUNK, CHUNK + 4096, 3);
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	auto fut = std::async(std::launch::async, [&] { return ops->wait_fence(p.dst, 1, -1); });
	ASSERT_EQ(fut.wait_for(STILL_BLOCKED), std::future_status::timeout)
		<< "wait_fence(-1) returned " << fut.get() << ": " << rdm_tp_errmsg();
	ASSERT_EQ(ops->write(p.src, 0, 0, 2 * CHUNK), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->write(p.src, 1, 0, CHUNK + 4096), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->fence(p.src, 1), 0) << rdm_tp_errmsg();
	ASSERT_EQ(fut.get(), 0) << rdm_tp_errmsg();
	m.ExpectSame("after wait_fence(-1)");
}

TEST_P(Contract, NegativeTimeoutAcceptWaitsForPeer)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(Listen(GetParam(), ops, L));
	rdm_tp *dst = nullptr, *src = nullptr;
	char err[RDM_TP_ERRLEN] = "";
	auto fut = std::async(std::launch::async,
			      [&] { return ops->accept(L.l, -1, &dst, err, sizeof(err)); });
	ASSERT_EQ(fut.wait_for(STILL_BLOCKED), std::future_status::timeout)
		<< "accept(-1) returned " << fut.get() << ": " << err;
	rdm_addr a;
	char cerr[RDM_TP_ERRLEN] = "";
	rdm_tp_opts o = Opts(GetParam());
	ASSERT_EQ(rdm_addr_parse(Uri(GetParam(), L.port).c_str(), &a, cerr, sizeof(cerr)), 0);
	int ret = ops->connect(&a, &o, &src, cerr, sizeof(cerr));
	int aret = fut.get();
	EXPECT_EQ(ret, 0) << cerr;
	EXPECT_EQ(aret, 0) << err;
	auto f = Frame(64, 4);
	if (ret == 0 && aret == 0) {
		ASSERT_EQ(ops->send(src, f.data(), f.size()), 0) << rdm_tp_errmsg();
		EXPECT_NO_FATAL_FAILURE(RecvExpect(ops, dst, { f }));
	}
	if (src)
		ops->close(src);
	if (dst)
		ops->close(dst);
}

// ---- ordering ----

// Both directions at once, mixed sizes: every message whole and in order.
TEST_P(Contract, MessagesWholeAndInOrderBothDirections)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	auto down = Frames(200, 5), up = Frames(200, 6);
	std::atomic<int> dret{ 1 }, uret{ 1 };
	std::thread td = SendAll(ops, p.src, down, &dret);
	std::thread tu = SendAll(ops, p.dst, up, &uret);
	std::thread ru([&] { RecvExpect(ops, p.src, up); });
	RecvExpect(ops, p.dst, down);
	ru.join();
	td.join();
	tu.join();
	EXPECT_EQ(dret.load(), 0) << rdm_tp_errmsg();
	EXPECT_EQ(uret.load(), 0) << rdm_tp_errmsg();
}

// ---- large messages ----

TEST_P(Contract, LargestMessageAndTooSmallBuffer)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	for (int dir = 0; dir < 2; dir++) {
		rdm_tp *rx = dir ? p.src : p.dst, *tx = dir ? p.dst : p.src;
		std::vector<std::vector<uint8_t>> f = { Frame(RDM_TP_MAX_MSG, 20 + dir),
							Frame(RDM_HDR_LEN + 10, 30 + dir) };
		std::atomic<int> sret{ 1 };
		std::thread th = SendAll(ops, tx, f, &sret);
		std::vector<uint8_t> buf(RDM_TP_MAX_MSG);
		size_t len = 0;
		// Too small a buffer: -EMSGSIZE, its size in *len, and the message kept.
		EXPECT_EQ(ops->recv(rx, buf.data(), RDM_TP_MAX_MSG - 1, &len, PEER_TIMEOUT_MS),
			  -EMSGSIZE)
			<< rdm_tp_errmsg();
		EXPECT_EQ(len, (size_t)RDM_TP_MAX_MSG);
		EXPECT_NO_FATAL_FAILURE(RecvExpect(ops, rx, f));
		th.join();
		EXPECT_EQ(sret.load(), 0) << rdm_tp_errmsg();
	}
}

// ---- shutdown ----

// shutdown() from another thread wakes every waiter with -ECANCELED. One side
// at a time: a shut-down side may hang up, and its peer then sees -ECONNRESET.
TEST_P(Contract, ShutdownWakesEveryWaiter)
{
	auto recv_any = [this](rdm_tp *t) {
		uint8_t buf[64];
		size_t len;
		return ops->recv(t, buf, sizeof(buf), &len, -1);
	};
	for (int side = 0; side < 2; side++) {
		SCOPED_TRACE(side ? "source" : "destination");
		Pair p;
		ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
		Mem m(CHUNK, CHUNK, 7);
		ASSERT_NO_FATAL_FAILURE(m.Set(p));
		rdm_tp *t = side ? p.src : p.dst;
		auto rx = std::async(std::launch::async, recv_any, t);
		// The destination also waits for a fence, and its listener for a peer.
		std::future<int> fence, acc;
		char err[RDM_TP_ERRLEN] = "";
		rdm_tp *extra = nullptr;
		if (!side) {
			fence = std::async(std::launch::async,
					   [&] { return ops->wait_fence(p.dst, 1, -1); });
			acc = std::async(std::launch::async, [&] {
				return ops->accept(p.L.l, -1, &extra, err, sizeof(err));
			});
		}
		EXPECT_EQ(rx.wait_for(STILL_BLOCKED), std::future_status::timeout);
		if (!side) {
			EXPECT_EQ(fence.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
			EXPECT_EQ(acc.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
		}

		auto t0 = Clock::now();
		std::thread([&] {
			ops->shutdown(t);
			if (!side)
				ops->listener_shutdown(p.L.l);
		}).join();
		EXPECT_EQ(rx.get(), -ECANCELED) << rdm_tp_errmsg();
		if (!side) {
			EXPECT_EQ(fence.get(), -ECANCELED) << rdm_tp_errmsg();
			EXPECT_EQ(acc.get(), -ECANCELED) << err;
			EXPECT_EQ(extra, nullptr);
		}
		EXPECT_LT(MsSince(t0), PROMPTLY_MS);

		// And every later call.
		uint8_t buf[64];
		size_t len;
		auto f = Frame(64, 8);
		EXPECT_EQ(ops->recv(t, buf, sizeof(buf), &len, 0), -ECANCELED);
		EXPECT_EQ(ops->send(t, f.data(), f.size()), -ECANCELED);
		if (side) {
			EXPECT_EQ(ops->write(t, 0, 0, 4096), -ECANCELED);
			EXPECT_EQ(ops->fence(t, 1), -ECANCELED);
		} else {
			EXPECT_EQ(ops->wait_fence(t, 1, 0), -ECANCELED);
		}
	}
}

// ---- hang-up ----

// What one side sent before close() reaches the other before -ECONNRESET.
TEST_P(Contract, MessagesBeforeHangupDeliveredFirst)
{
	for (int dir = 0; dir < 2; dir++) {
		Pair p;
		ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
		rdm_tp **tx = dir ? &p.dst : &p.src, *rx = dir ? p.src : p.dst;
		auto f = Frames(40, 40 + dir);
		std::atomic<int> sret{ 1 };
		std::thread th([&] {
			int r = 0;
			for (size_t i = 0; i < f.size() && r == 0; i++)
				r = ops->send(*tx, f[i].data(), f[i].size());
			sret = r;
			ops->close(*tx);
		});
		RecvExpect(ops, rx, f);
		th.join();
		*tx = nullptr;
		EXPECT_EQ(sret.load(), 0);
		uint8_t buf[64];
		size_t len;
		auto t0 = Clock::now();
		EXPECT_EQ(ops->recv(rx, buf, sizeof(buf), &len, PEER_TIMEOUT_MS), -ECONNRESET)
			<< (dir ? "source: " : "destination: ") << rdm_tp_errmsg();
		EXPECT_LT(MsSince(t0), PROMPTLY_MS);
		// And it stays so.
		EXPECT_EQ(ops->recv(rx, buf, sizeof(buf), &len, 0), -ECONNRESET) << rdm_tp_errmsg();
	}
}

// Fenced writes before the source's close() count; the next fence never comes.
TEST_P(Contract, FenceBeforeHangupCounts)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Mem m(3 * CHUNK, CHUNK / 2, 9);
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	ASSERT_EQ(ops->write(p.src, 0, 0, 3 * CHUNK), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->write(p.src, 1, 0, CHUNK / 2), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->fence(p.src, 1), 0) << rdm_tp_errmsg();
	ops->close(p.src);
	p.src = nullptr;
	EXPECT_EQ(ops->wait_fence(p.dst, 1, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	m.ExpectSame("after the hang-up");
	EXPECT_EQ(ops->wait_fence(p.dst, 2, PEER_TIMEOUT_MS), -ECONNRESET) << rdm_tp_errmsg();
}

// ---- many channels: writes, fences, issue order ----

using ContractChannels = ContractTest;

TEST_P(ContractChannels, WritesThenFenceLandInMemory)
{
	const unsigned nch = GetParam().channels;
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	// Enough chunks that every channel carries some of each block.
	Mem m(16 * CHUNK, 4 * CHUNK + 12288, 100 + nch);
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	std::mt19937_64 rng(200 + nch);

	// Round 1: every byte, in runs of random length that straddle chunks.
	for (unsigned b = 0; b < 2; b++) {
		uint64_t off = 0, size = m.s[b].size();
		while (off < size) {
			uint64_t len = std::min<uint64_t>(1 + rng() % (3 * CHUNK / 2), size - off);
			ASSERT_EQ(ops->write(p.src, b, off, len), 0) << rdm_tp_errmsg();
			off += len;
		}
	}
	ASSERT_EQ(ops->fence(p.src, 1), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->wait_fence(p.dst, 1, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	m.ExpectSame("after fence 1");

	// Round 2: the same bytes rewritten with new contents, the last write wins.
	for (int i = 0; i < 100; i++) {
		unsigned b = (unsigned)(rng() % 2);
		uint64_t size = m.s[b].size(), len = 1 + rng() % (CHUNK / 4);
		uint64_t off = rng() % (size - len);
		FillRandom(rng, m.s[b].data() + off, len);
		ASSERT_EQ(ops->write(p.src, b, off, len), 0) << rdm_tp_errmsg();
		if (i % 3 == 0) {
			FillRandom(rng, m.s[b].data() + off, len / 2 + 1);
			ASSERT_EQ(ops->write(p.src, b, off, len / 2 + 1), 0) << rdm_tp_errmsg();
		}
	}
	ASSERT_EQ(ops->fence(p.src, 2), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->wait_fence(p.dst, 2, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	m.ExpectSame("after fence 2");

	// A reached fence stays reached; a later one is not.
	EXPECT_EQ(ops->wait_fence(p.dst, 1, 0), 0) << rdm_tp_errmsg();
	EXPECT_EQ(ops->wait_fence(p.dst, 3, 200), -ETIMEDOUT) << rdm_tp_errmsg();
}

// Many writes to the same bytes, new contents each time: they land in issue order.
TEST_P(ContractChannels, SameBytesLandInIssueOrder)
{
	const unsigned nch = GetParam().channels;
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Mem m(4 * CHUNK, CHUNK, 300 + nch);
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	std::mt19937_64 rng(400 + nch);
	// The range straddles two chunks, so two channels carry it.
	const uint64_t off = CHUNK - 4096, len = 2 * 4096 + CHUNK / 2;
	for (uint64_t seq = 1; seq <= 4; seq++) {
		for (int i = 0; i < 16; i++) {
			FillRandom(rng, m.s[0].data() + off, len);
			ASSERT_EQ(ops->write(p.src, 0, off, len), 0) << rdm_tp_errmsg();
			// and a smaller one inside it
			FillRandom(rng, m.s[0].data() + off + 4096, 100);
			ASSERT_EQ(ops->write(p.src, 0, off + 4096, 100), 0) << rdm_tp_errmsg();
		}
		ASSERT_EQ(ops->fence(p.src, seq), 0) << rdm_tp_errmsg();
		ASSERT_EQ(ops->wait_fence(p.dst, seq, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
		ASSERT_EQ(Crc(m.d[0].data() + off, len), Crc(m.s[0].data() + off, len))
			<< "after fence " << seq;
	}
	// Nothing outside the range was touched.
	EXPECT_EQ(Crc(m.d[0].data(), off), Crc(std::vector<uint8_t>(off).data(), off));
	EXPECT_EQ(m.d[1], std::vector<uint8_t>(CHUNK, 0));
}

std::vector<Param> Families(enum rdm_scheme s)
{
	return { Param{ s, false, 1 }, Param{ s, true, 1 } };
}

std::vector<Param> Channels(enum rdm_scheme s)
{
	std::vector<Param> v;
	for (bool v6 : { false, true })
		for (unsigned ch : { 1u, 4u, 16u })
			v.push_back(Param{ s, v6, ch });
	return v;
}

// The prefix names the transport: meson selects one with GTEST_FILTER=tcp/* or rdma/*.
INSTANTIATE_TEST_SUITE_P(tcp, Contract, testing::ValuesIn(Families(RDM_SCHEME_TCP)), ParamName);
INSTANTIATE_TEST_SUITE_P(rdma, Contract, testing::ValuesIn(Families(RDM_SCHEME_RDMA)), ParamName);
INSTANTIATE_TEST_SUITE_P(tcp, ContractChannels, testing::ValuesIn(Channels(RDM_SCHEME_TCP)),
			 ParamName);
INSTANTIATE_TEST_SUITE_P(rdma, ContractChannels, testing::ValuesIn(Channels(RDM_SCHEME_RDMA)),
			 ParamName);

} // namespace
} // namespace contract
