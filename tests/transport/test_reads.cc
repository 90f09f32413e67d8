// SPDX-License-Identifier: MIT
// Postcopy's reads (expose() and pull() in transport/transport.h), on the
// transports that have them (rdma, inside the soft-RoCE VM): the bytes the
// placer gets are the source's, the keys come only from expose() and die
// with the source's session, and a bad span is refused.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/transport/contract.h"

namespace contract {
namespace {

constexpr uint32_t kPage = 4096;

// Two blocks a side; the placer copies into the destination's own.
struct Blocks : TwoBlocks {
	std::mutex lock;
	unsigned places = 0;
	Blocks() : TwoBlocks(6 * CHUNK, 2 * CHUNK + 3 * kPage, 77, kPage) {}
	static int Place(void *opaque, unsigned b, uint64_t off, uint64_t len, const void *src)
	{
		Blocks *m = static_cast<Blocks *>(opaque);
		std::lock_guard<std::mutex> g(m->lock);
		if (b >= 2 || off + len > m->d[b].size())
			return -EINVAL;
		memcpy(m->d[b].data() + off, src, len);
		m->places++;
		return 0;
	}
	void Set(Pair &p) { TwoBlocks::Set(p, Place, this); }
	bool Same(unsigned b, uint64_t off, uint64_t len)
	{
		return !memcmp(d[b].data() + off, s[b].data() + off, len);
	}
};

class Reads : public ContractTest {
      protected:
	void SetUp() override
	{
		ContractTest::SetUp();
		if (!IsSkipped() && !HasFatalFailure() && !ops->pull)
			GTEST_SKIP() << ops->name << " pushes postcopy's pages, it reads none";
	}
};

TEST_P(Reads, PlacerGetsTheSourcesBytes)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Blocks m;
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	ASSERT_EQ(rdm_tp_expose(p.src), 0) << rdm_tp_errmsg();
	// A fault: one page.
	rdm_tp_span one{ 1, 2 * CHUNK + kPage, kPage };
	ASSERT_EQ(rdm_tp_pull(p.dst, &one, 1, true, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	EXPECT_TRUE(m.Same(1, one.off, one.len));
	// The background: spans longer than a staging slot, across both blocks, more than its slots.
	std::vector<rdm_tp_span> v;
	for (uint64_t off = 0; off < 6 * CHUNK; off += CHUNK / 2)
		v.push_back(rdm_tp_span{ 0, off, CHUNK / 2 });
	v.push_back(rdm_tp_span{ 1, 0, 2 * CHUNK + kPage }); // three slots' worth, split
	ASSERT_EQ(rdm_tp_pull(p.dst, v.data(), (unsigned)v.size(), false, PEER_TIMEOUT_MS), 0)
		<< rdm_tp_errmsg();
	EXPECT_TRUE(m.Same(0, 0, 6 * CHUNK));
	EXPECT_TRUE(m.Same(1, 0, 2 * CHUNK + 2 * kPage));
	EXPECT_GE(m.places, v.size() + 2);
	// A fault and the background at once, from two threads.
	int fault = 1;
	std::thread t([&] {
		rdm_tp_span last{ 1, 2 * CHUNK + 2 * kPage, kPage };
		fault = rdm_tp_pull(p.dst, &last, 1, true, PEER_TIMEOUT_MS);
	});
	EXPECT_EQ(rdm_tp_pull(p.dst, v.data(), (unsigned)v.size(), false, PEER_TIMEOUT_MS), 0)
		<< rdm_tp_errmsg();
	t.join();
	EXPECT_EQ(fault, 0);
	EXPECT_TRUE(m.Same(1, 0, m.d[1].size()));
}

TEST_P(Reads, BadSpansAndWrongSidesRefused)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Blocks m;
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	ASSERT_EQ(rdm_tp_expose(p.src), 0) << rdm_tp_errmsg();
	EXPECT_EQ(rdm_tp_expose(p.src), -EALREADY);
	EXPECT_EQ(rdm_tp_expose(p.dst), -EINVAL) << "a destination exposes nothing";
	rdm_tp_span bad[] = { { 2, 0, kPage },                // no such block
			      { 0, 100, kPage },              // not page aligned
			      { 0, 0, 0 },                    // empty
			      { 1, 2 * CHUNK + 2 * kPage, 2 * kPage } }; // past the end
	for (const rdm_tp_span &sp : bad)
		EXPECT_EQ(rdm_tp_pull(p.dst, &sp, 1, true, PEER_TIMEOUT_MS), -EINVAL)
			<< sp.block << " +" << sp.off << " len " << sp.len;
	rdm_tp_span ok{ 0, 0, kPage };
	EXPECT_EQ(rdm_tp_pull(p.src, &ok, 1, true, PEER_TIMEOUT_MS), -EINVAL) << "a source reads nothing";
	// Refused spans cost nothing: the transport still reads.
	EXPECT_EQ(rdm_tp_pull(p.dst, &ok, 1, true, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	EXPECT_TRUE(m.Same(0, 0, kPage));
}

// No expose(), no keys: a read waits for them, then says so.
TEST_P(Reads, NoReadBeforeTheSourceExposes)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Blocks m;
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	rdm_tp_span one{ 0, 0, kPage };
	auto t0 = Clock::now();
	EXPECT_EQ(rdm_tp_pull(p.dst, &one, 1, true, 300), -ETIMEDOUT);
	EXPECT_NE(std::string(rdm_tp_errmsg()).find("keys"), std::string::npos) << rdm_tp_errmsg();
	EXPECT_LT(MsSince(t0), 5000);
	EXPECT_EQ(m.places, 0u);
}

// The source's session ends: its read registrations go with it, and a read fails, it does not hang.
TEST_P(Reads, KeysDieWithTheSourcesSession)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(MakePair(GetParam(), ops, p));
	Blocks m;
	ASSERT_NO_FATAL_FAILURE(m.Set(p));
	ASSERT_EQ(rdm_tp_expose(p.src), 0) << rdm_tp_errmsg();
	rdm_tp_span one{ 0, CHUNK, kPage };
	ASSERT_EQ(rdm_tp_pull(p.dst, &one, 1, true, PEER_TIMEOUT_MS), 0) << rdm_tp_errmsg();
	unsigned before = m.places;
	ops->close(p.src);
	p.src = nullptr;
	auto t0 = Clock::now();
	rdm_tp_span next{ 0, 2 * CHUNK, kPage };
	int ret = rdm_tp_pull(p.dst, &next, 1, true, PEER_TIMEOUT_MS);
	EXPECT_NE(ret, 0) << "read from a closed session's memory";
	EXPECT_LT(MsSince(t0), PEER_TIMEOUT_MS + 5000);
	EXPECT_EQ(m.places, before);
	printf("read after the source closed: %s (%ld ms)\n", rdm_tp_why(ret), MsSince(t0));
}

std::vector<Param> Both(enum rdm_scheme s)
{
	return { Param{ s, false, 2 } };
}

INSTANTIATE_TEST_SUITE_P(rdma, Reads, testing::ValuesIn(Both(RDM_SCHEME_RDMA)), ParamName);

} // namespace
} // namespace contract
