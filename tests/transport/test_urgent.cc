// SPDX-License-Identifier: MIT
// The urgent channel (opts.urgent_channel, write_urgent() in
// transport/transport.h), on the transports that push postcopy's requested
// pages (tcp): a requested page overtakes the background pages already queued
// in the sockets, fences cover it, and without the channel it is refused.
#include <gtest/gtest.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/transport/contract.h"

namespace contract {
namespace {

constexpr uint64_t kBackground = 48u << 20; // more than the data sockets' buffers hold
constexpr uint64_t kPiece = 256u << 10;     // one frame each
constexpr uint32_t kPage = 4096;

// Block 0 is the background, placed slowly (a destination busy placing);
// block 1 holds the requested page.
struct Slow : TwoBlocks {
	std::mutex lock;
	std::condition_variable cv;
	unsigned bg = 0;       // background frames placed
	int bg_at_page = -1;   // bg when the requested page was placed
	Slow() : TwoBlocks(kBackground, CHUNK, 9, kPage) {}
	static int Place(void *opaque, unsigned b, uint64_t off, uint64_t len, const void *src)
	{
		Slow *m = static_cast<Slow *>(opaque);
		if (b >= 2 || off + len > m->d[b].size())
			return -EINVAL;
		if (b == 0)
			std::this_thread::sleep_for(std::chrono::milliseconds(3));
		std::lock_guard<std::mutex> g(m->lock);
		memcpy(m->d[b].data() + off, src, len);
		if (b == 0)
			m->bg++;
		else if (m->bg_at_page < 0)
			m->bg_at_page = (int)m->bg;
		m->cv.notify_all();
		return 0;
	}
	void Set(Pair &p) { TwoBlocks::Set(p, Place, this); }
	// Background frames placed after the page went until it was placed.
	int Overtaken(Pair &p, bool urgent, std::string *err)
	{
		int sent = 1;
		std::thread writer([&] {
			for (uint64_t off = 0; off < kBackground; off += kPiece)
				if (rdm_tp_write(p.src, 0, off, kPiece))
					return;
		});
		unsigned before;
		{
			// The sockets fill up while the first frames are placed.
			std::unique_lock<std::mutex> g(lock);
			cv.wait_for(g, std::chrono::seconds(20), [&] { return bg >= 8; });
			before = bg;
		}
		sent = urgent ? rdm_tp_write_urgent(p.src, 1, 5 * kPage, kPage)
			      : rdm_tp_write(p.src, 1, 5 * kPage, kPage);
		*err = rdm_tp_errmsg();
		int at = -1;
		if (!sent) {
			std::unique_lock<std::mutex> g(lock);
			cv.wait_for(g, std::chrono::seconds(30), [&] { return bg_at_page >= 0; });
			at = bg_at_page;
		}
		writer.join();
		if (sent)
			return -1;
		EXPECT_EQ(p.ops->fence(p.src, 1), 0) << rdm_tp_errmsg();
		EXPECT_EQ(p.ops->wait_fence(p.dst, 1, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
		EXPECT_EQ(Crc(d[0].data(), kBackground), Crc(s[0].data(), kBackground));
		EXPECT_EQ(memcmp(d[1].data() + 5 * kPage, s[1].data() + 5 * kPage, kPage), 0);
		printf("%s page: %d background frames placed before it, of %llu queued or to go\n",
		       urgent ? "urgent" : "plain", at - (int)before,
		       (unsigned long long)(kBackground / kPiece - before));
		return at < 0 ? -1 : at - (int)before;
	}
};

class Urgent : public ContractTest {
      protected:
	void SetUp() override
	{
		ContractTest::SetUp();
		if (!IsSkipped() && !HasFatalFailure() && !ops->write_urgent)
			GTEST_SKIP() << ops->name << " reads requested pages itself, it pushes none";
	}
};

// The page overtakes the background frames queued in the data socket; a plain write waits behind them.
TEST_P(Urgent, RequestedPageOvertakesTheBackground)
{
	Param u = GetParam();
	u.urgent = true;
	Slow m; // outlives the pair: its receivers place into it
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(u, ops, p));
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	std::string err;
	int urgent = m.Overtaken(p, true, &err);
	ASSERT_GE(urgent, 0) << err;
	EXPECT_LE(urgent, 2) << "the requested page waited behind the background";

	// The same on one socket: what the urgent channel saves.
	Slow n;
	Pair q;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, q));
	ASSERT_NO_FATAL_FAILURE(n.Set(q));
	int plain = n.Overtaken(q, false, &err);
	ASSERT_GE(plain, 0) << err;
	EXPECT_GE(plain, 8) << "the background did not fill the socket: the case shows nothing";
}

TEST_P(Urgent, RefusedWithoutTheChannel)
{
	Slow m;
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	EXPECT_EQ(rdm_tp_write_urgent(p.src, 1, 0, kPage), -EOPNOTSUPP);
	EXPECT_NE(std::string(rdm_tp_errmsg()).find("urgent"), std::string::npos) << rdm_tp_errmsg();
	EXPECT_EQ(rdm_tp_write(p.src, 1, 0, kPage), 0) << rdm_tp_errmsg();
	EXPECT_EQ(p.ops->fence(p.src, 1), 0) << rdm_tp_errmsg();
	EXPECT_EQ(p.ops->wait_fence(p.dst, 1, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	EXPECT_EQ(memcmp(m.d[1].data(), m.s[1].data(), kPage), 0);
}

std::vector<Param> One(enum rdm_scheme s)
{
	return { Param{ s, false, 1 } };
}

INSTANTIATE_TEST_SUITE_P(tcp, Urgent, testing::ValuesIn(One(RDM_SCHEME_TCP)), ParamName);

} // namespace
} // namespace contract
