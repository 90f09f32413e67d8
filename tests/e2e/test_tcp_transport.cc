// SPDX-License-Identifier: MIT
// The tcp transport over loopback: the page path, chunk-to-channel mapping,
// fences, bounds, and the control stream. Sessions, refusals, shutdown and
// channel proofs are in test_tcp_transport_sessions.cc.
#include "tcp_util.h"

namespace {

struct PageCase {
	const char *host;
	unsigned channels;
};

class TcpPages : public testing::TestWithParam<PageCase> {};

// Random data in random runs, rewrites of the same bytes, two fenced rounds.
TEST_P(TcpPages, WriteFenceCompare)
{
	const PageCase &c = GetParam();
	if (strchr(c.host, ':') && !ipv6_loopback_usable())
		GTEST_SKIP() << "no IPv6 loopback on this machine";
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, c.host, c.channels, 64 << 10));

	const size_t sizes[2] = { 8u << 20, (8u << 20) + 12288 };
	std::mt19937_64 rng(42 + c.channels);
	Mem src, dst;
	src.a.resize(sizes[0]);
	src.b.resize(sizes[1]);
	dst.a.assign(sizes[0], 0);
	dst.b.assign(sizes[1], 0);
	fill_random(rng, src.a.data(), sizes[0]);
	fill_random(rng, src.b.data(), sizes[1]);
	auto sb = src.blocks(), db = dst.blocks();
	ASSERT_EQ(ops->set_blocks(p.src, sb.data(), 2), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->set_blocks(p.dst, db.data(), 2), 0) << rdm_tp_errmsg();

	// Round 1: every byte, in runs of random length (not chunk aligned).
	for (unsigned b = 0; b < 2; b++) {
		uint64_t off = 0;
		while (off < sizes[b]) {
			uint64_t len = std::min<uint64_t>(1 + rng() % (300 << 10), sizes[b] - off);
			ASSERT_EQ(rdm_tp_write(p.src, b, off, len), 0) << rdm_tp_errmsg();
			off += len;
		}
	}
	ASSERT_EQ(ops->fence(p.src, 1), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->wait_fence(p.dst, 1, 10000), 0) << rdm_tp_errmsg();
	EXPECT_EQ(crc(dst.a), crc(src.a));
	EXPECT_EQ(crc(dst.b), crc(src.b));

	// Round 2: the same bytes written several times with new contents; the
	// last write must win on every channel layout.
	for (int i = 0; i < 200; i++) {
		unsigned b = (unsigned)(rng() % 2);
		uint8_t *host = b ? src.b.data() : src.a.data();
		uint64_t len = 1 + rng() % (200 << 10);
		uint64_t off = rng() % (sizes[b] - len);
		fill_random(rng, host + off, len);
		ASSERT_EQ(rdm_tp_write(p.src, b, off, len), 0) << rdm_tp_errmsg();
		if (i % 3 == 0) { // and again, overlapping itself
			fill_random(rng, host + off, len / 2 + 1);
			ASSERT_EQ(rdm_tp_write(p.src, b, off, len / 2 + 1), 0) << rdm_tp_errmsg();
		}
	}
	ASSERT_EQ(ops->fence(p.src, 2), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->wait_fence(p.dst, 2, 10000), 0) << rdm_tp_errmsg();
	EXPECT_EQ(crc(dst.a), crc(src.a));
	EXPECT_EQ(crc(dst.b), crc(src.b));
	EXPECT_EQ(memcmp(dst.b.data(), src.b.data(), sizes[1]), 0);

	// An earlier fence stays reached; a later one is not (nothing sent).
	EXPECT_EQ(ops->wait_fence(p.dst, 1, 0), 0);
	EXPECT_EQ(ops->wait_fence(p.dst, 3, 50), -ETIMEDOUT);
}

INSTANTIATE_TEST_SUITE_P(Loopback, TcpPages,
			 testing::Values(PageCase{ "127.0.0.1", 1 }, PageCase{ "127.0.0.1", 4 },
					 PageCase{ "[::1]", 1 }, PageCase{ "[::1]", 4 }),
			 [](const testing::TestParamInfo<PageCase> &i) {
				 return std::string(strchr(i.param.host, ':') ? "v6_" : "v4_") +
					std::to_string(i.param.channels) + "ch";
			 });

// A raw destination shows what a write puts on which socket.
TEST(TcpTransport, ChunkSplitAndChannelMapping)
{
	const unsigned nch = 3;
	const uint64_t chunk = 4096;
	RawDest rd;
	ASSERT_NO_FATAL_FAILURE(raw_dest_listen(rd));
	rdm_tp *src = nullptr;
	std::string err;
	int cret = 1;
	std::thread conn([&] {
		cret = connect_to("127.0.0.1", rd.port, make_opts(nch, chunk), &src, &err);
	});
	raw_dest_accept(rd, nch);
	conn.join();
	ASSERT_FALSE(HasFatalFailure());
	ASSERT_EQ(cret, 0) << err;
	auto &data = rd.data;

	std::vector<uint8_t> b0(4 * chunk), b1(4 * chunk);
	std::mt19937_64 rng(7);
	fill_random(rng, b0.data(), b0.size());
	fill_random(rng, b1.data(), b1.size());
	rdm_tp_block blocks[2] = { Mem::blk("a", b0), Mem::blk("b", b1) };
	ASSERT_EQ(ops->set_blocks(src, blocks, 2), 0) << rdm_tp_errmsg();

	// Block 1, [1000, 11000): chunks 0, 1, 2 -> channels 1, 2, 0.
	ASSERT_EQ(rdm_tp_write(src, 1, 1000, 10000), 0) << rdm_tp_errmsg();
	// Block 0, exactly chunk 3 -> channel 0; then a fence.
	ASSERT_EQ(rdm_tp_write(src, 0, 3 * chunk, chunk), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->fence(src, 9), 0) << rdm_tp_errmsg();

	struct Expect {
		unsigned ch, block;
		uint64_t off, len;
	};
	const Expect want[] = {
		{ 1, 1, 1000, chunk - 1000 },
		{ 2, 1, chunk, chunk },
		{ 0, 1, 2 * chunk, 11000 - 2 * chunk },
		{ 0, 0, 3 * chunk, chunk },
	};
	for (const Expect &e : want) {
		uint8_t head[RDM_HDR_LEN + RDM_PAGES_PREFIX];
		ASSERT_TRUE(read_all(data[e.ch], head, sizeof(head))) << "channel " << e.ch;
		uint16_t type;
		uint32_t plen, block;
		uint64_t off;
		ASSERT_EQ(rdm_hdr_decode(head, RDM_HDR_LEN, &type, &plen), 0);
		ASSERT_EQ(type, RDM_MSG_PAGES);
		rdm_pages_hdr_decode(head + RDM_HDR_LEN, &block, &off);
		EXPECT_EQ(block, e.block);
		EXPECT_EQ(off, e.off);
		ASSERT_EQ(plen, RDM_PAGES_PREFIX + e.len);
		std::vector<uint8_t> bytes(e.len);
		ASSERT_TRUE(read_all(data[e.ch], bytes.data(), e.len));
		const uint8_t *from = (e.block ? b1.data() : b0.data()) + e.off;
		EXPECT_EQ(memcmp(bytes.data(), from, e.len), 0);
	}
	// Then one FENCE on every channel, and nothing else.
	for (unsigned c = 0; c < nch; c++) {
		uint8_t f[RDM_HDR_LEN + 8];
		ASSERT_TRUE(read_all(data[c], f, sizeof(f))) << "channel " << c;
		rdm_msg m{};
		ASSERT_EQ(rdm_msg_decode(f, sizeof(f), &m), 0);
		EXPECT_EQ(m.type, RDM_MSG_FENCE);
		EXPECT_EQ(m.u.seq.seq, 9u);
		char extra;
		EXPECT_EQ(recv(data[c], &extra, 1, MSG_DONTWAIT), -1) << "channel " << c;
	}

	ops->close(src);
}

// A destination that stops reading is detected within the peer timeout.
TEST(TcpTransport, StalledPeerTimesOut)
{
	RawDest rd;
	ASSERT_NO_FATAL_FAILURE(raw_dest_listen(rd));
	rdm_tp *src = nullptr;
	std::string err;
	int cret = 1;
	std::thread conn([&] {
		cret = connect_to("127.0.0.1", rd.port, make_opts(2, 1 << 20, 500), &src, &err);
	});
	raw_dest_accept(rd, 2);
	conn.join();
	ASSERT_FALSE(HasFatalFailure());
	ASSERT_EQ(cret, 0) << err;

	std::vector<uint8_t> mem(16 << 20, 3);
	rdm_tp_block b = Mem::blk("a", mem);
	ASSERT_EQ(ops->set_blocks(src, &b, 1), 0);
	auto t0 = Clock::now();
	int ret = 0;
	for (int i = 0; i < 64 && ret == 0; i++) // far more than the socket buffers hold
		ret = rdm_tp_write(src, 0, 0, mem.size());
	EXPECT_EQ(ret, -ETIMEDOUT);
	EXPECT_NE(strstr(rdm_tp_errmsg(), "not responding"), nullptr) << rdm_tp_errmsg();
	EXPECT_LT(ms_since(t0), 5000);
	// The cut frame poisons that channel: no half frame is followed by another.
	t0 = Clock::now();
	EXPECT_EQ(ops->fence(src, 1), -ETIMEDOUT);
	EXPECT_LT(ms_since(t0), 5000); // no hang; as loose as the bound above (2 loaded cores)
	ops->close(src);
}

TEST(TcpTransport, OutOfBoundsWriteRejected)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, "127.0.0.1", 2, 4096));
	std::vector<uint8_t> s0(64 << 10, 0x11), s1(32 << 10, 0x22);
	std::vector<uint8_t> d0(64 << 10), d1(32 << 10);
	rdm_tp_block sb[2] = { Mem::blk("a", s0), Mem::blk("b", s1) };
	rdm_tp_block db[2] = { Mem::blk("a", d0), Mem::blk("b", d1) };

	// Before set_blocks() there is nothing to write.
	EXPECT_EQ(rdm_tp_write(p.src, 0, 0, 1), -EINVAL);
	ASSERT_EQ(ops->set_blocks(p.src, sb, 2), 0) << rdm_tp_errmsg();
	ASSERT_EQ(ops->set_blocks(p.dst, db, 2), 0) << rdm_tp_errmsg();

	EXPECT_EQ(rdm_tp_write(p.src, 2, 0, 1), -EINVAL);
	EXPECT_NE(strstr(rdm_tp_errmsg(), "block 2 out of range"), nullptr) << rdm_tp_errmsg();
	EXPECT_EQ(rdm_tp_write(p.src, 1, (32 << 10) - 10, 11), -EINVAL);
	EXPECT_NE(strstr(rdm_tp_errmsg(), "out of bounds"), nullptr) << rdm_tp_errmsg();
	EXPECT_EQ(rdm_tp_write(p.src, 1, (32 << 10) + 1, 0), -EINVAL);
	EXPECT_EQ(rdm_tp_write(p.src, 0, 1, UINT64_MAX), -EINVAL); // off + len wraps
	EXPECT_EQ(rdm_tp_write(p.src, 0, UINT64_MAX, 2), -EINVAL);
	// A second block list, and page calls on the wrong side, are refused too.
	EXPECT_EQ(ops->set_blocks(p.src, sb, 2), -EALREADY);
	EXPECT_EQ(rdm_tp_write(p.dst, 0, 0, 1), -EOPNOTSUPP);
	EXPECT_EQ(ops->wait_fence(p.src, 1, 0), -EOPNOTSUPP);

	// The session is still good: the edge of the block goes through.
	ASSERT_EQ(rdm_tp_write(p.src, 1, (32 << 10) - 10, 10), 0) << rdm_tp_errmsg();
	ASSERT_EQ(rdm_tp_write(p.src, 1, 32 << 10, 0), 0) << rdm_tp_errmsg(); // empty, at the end
	ASSERT_EQ(ops->fence(p.src, 1), 0);
	ASSERT_EQ(ops->wait_fence(p.dst, 1, 5000), 0) << rdm_tp_errmsg();
	for (size_t i = 0; i < d1.size(); i++)
		ASSERT_EQ(d1[i], i >= d1.size() - 10 ? 0x22 : 0) << i;
	EXPECT_EQ(d0, std::vector<uint8_t>(64 << 10, 0));
}

// A forged PAGES frame past the end of a block never reaches memory.
TEST(TcpTransport, OutOfBoundsPagesRefusedByReceiver)
{
	Listener L;
	rdm_tp_opts o = make_opts(1, 4096);
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", o));
	Acceptor acc;
	acc.start(L.l, 5000);
	RawSource rs;
	ASSERT_NO_FATAL_FAILURE(raw_source(rs, L.port, 1, 0x1234));
	acc.join();
	ASSERT_EQ(acc.ret, 0) << acc.err;

	// The block sits inside a guard area that must stay untouched.
	std::vector<uint8_t> mem(3 * 4096, 0xee);
	rdm_tp_block blk{ "a", mem.data() + 4096, 4096, 4096 };
	ASSERT_EQ(ops->set_blocks(acc.tp, &blk, 1), 0) << rdm_tp_errmsg();

	std::vector<uint8_t> frame(RDM_HDR_LEN + RDM_PAGES_PREFIX + 100, 0x55);
	rdm_hdr_encode(frame.data(), RDM_MSG_PAGES, RDM_PAGES_PREFIX + 100);
	rdm_pages_hdr_encode(frame.data() + RDM_HDR_LEN, 0, 4096 - 50);
	ASSERT_TRUE(write_all(rs.data[0], frame.data(), frame.size()));

	auto t0 = Clock::now();
	EXPECT_EQ(ops->wait_fence(acc.tp, 1, 5000), -EBADMSG);
	EXPECT_LT(ms_since(t0), 5000); // refused, not waited out (the wait's own limit)
	EXPECT_NE(strstr(rdm_tp_errmsg(), "pages out of bounds: block 0 off 4046 len 100"), nullptr)
		<< rdm_tp_errmsg();
	EXPECT_EQ(mem, std::vector<uint8_t>(3 * 4096, 0xee));
}

// ---- the control stream ----


TEST(TcpTransport, ControlBothDirections)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, "127.0.0.1", 2, 65536));

	// A big message (device state) and small ones behind it, in order.
	std::vector<uint8_t> state(3 << 20);
	std::mt19937_64 rng(3);
	fill_random(rng, state.data(), state.size());
	rdm_msg dev{};
	dev.type = RDM_MSG_DEVSTATE;
	dev.u.dev.offset = 0;
	dev.u.dev.len = (uint32_t)state.size();
	dev.u.dev.data = state.data();
	std::vector<std::vector<uint8_t>> sent = { encode(dev) };
	for (uint32_t i = 0; i < 20; i++) {
		rdm_msg ping{};
		ping.type = RDM_MSG_RP_PING;
		ping.u.u32.value = i;
		sent.push_back(encode(ping));
	}
	// Sent from another thread: 3 MiB does not fit the socket buffers.
	std::thread tx([&] {
		for (auto &m : sent)
			ASSERT_EQ(rdm_tp_send(p.src, m.data(), m.size()), 0) << rdm_tp_errmsg();
	});
	std::vector<uint8_t> buf(4 << 20);
	for (auto &m : sent) {
		size_t len = 0;
		ASSERT_EQ(rdm_tp_recv(p.dst, buf.data(), buf.size(), &len, 5000), 0) << rdm_tp_errmsg();
		ASSERT_EQ(len, m.size());
		EXPECT_EQ(memcmp(buf.data(), m.data(), len), 0);
	}
	tx.join();

	// The return path: destination -> source on the same stream.
	rdm_msg ack{};
	ack.type = RDM_MSG_RP_FENCE_ACK;
	ack.u.seq.seq = 77;
	auto a = encode(ack);
	ASSERT_EQ(rdm_tp_send(p.dst, a.data(), a.size()), 0) << rdm_tp_errmsg();
	size_t len = 0;
	ASSERT_EQ(rdm_tp_recv(p.src, buf.data(), buf.size(), &len, 5000), 0) << rdm_tp_errmsg();
	rdm_msg got{};
	ASSERT_EQ(rdm_msg_decode(buf.data(), len, &got), 0);
	EXPECT_EQ(got.type, RDM_MSG_RP_FENCE_ACK);
	EXPECT_EQ(got.u.seq.seq, 77u);

	// A fragment is not a frame.
	EXPECT_EQ(rdm_tp_send(p.src, a.data(), 3), -EINVAL);
}

TEST(TcpTransport, RecvTimeoutIsQuick)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, "127.0.0.1", 1, 65536));
	uint8_t buf[64];
	size_t len = 0;
	auto t0 = Clock::now();
	EXPECT_EQ(rdm_tp_recv(p.dst, buf, sizeof(buf), &len, 100), -ETIMEDOUT);
	long el = ms_since(t0);
	EXPECT_GE(el, 90);
	// Upper bounds no tighter than the peer timeout (5 s): sanitizer runs share 2 cores.
	EXPECT_LT(el, 5000);
	t0 = Clock::now();
	EXPECT_EQ(rdm_tp_recv(p.src, buf, sizeof(buf), &len, 0), -ETIMEDOUT);
	EXPECT_LT(ms_since(t0), 5000);
	// Still usable after a timeout.
	rdm_msg ping{};
	ping.type = RDM_MSG_RP_PING;
	ping.u.u32.value = 5;
	auto m = encode(ping);
	ASSERT_EQ(rdm_tp_send(p.src, m.data(), m.size()), 0);
	ASSERT_EQ(rdm_tp_recv(p.dst, buf, sizeof(buf), &len, 5000), 0) << rdm_tp_errmsg();
	EXPECT_EQ(len, m.size());
}

// A frame that trickles in across timeouts is resumed, not lost or torn.
TEST(TcpTransport, RecvResumesPartialFrame)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(1, 4096)));
	Acceptor acc;
	acc.start(L.l, 5000);
	RawSource rs;
	ASSERT_NO_FATAL_FAILURE(raw_source(rs, L.port, 1, 99));
	acc.join();
	ASSERT_EQ(acc.ret, 0) << acc.err;

	std::vector<uint8_t> blob(5000);
	std::mt19937_64 rng(5);
	fill_random(rng, blob.data(), blob.size());
	rdm_msg dev{};
	dev.type = RDM_MSG_DEVSTATE;
	dev.u.dev.offset = 123;
	dev.u.dev.len = (uint32_t)blob.size();
	dev.u.dev.data = blob.data();
	auto frame = encode(dev);

	const size_t cuts[] = { 0, 5, 8, 1000, 3000, frame.size() };
	size_t len = 0;
	for (size_t i = 1; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		ASSERT_TRUE(write_all(rs.ctrl, frame.data() + cuts[i - 1], cuts[i] - cuts[i - 1]));
		// A fresh buffer each time: the partial bytes must live in the transport.
		std::vector<uint8_t> buf(8192, 0xcc);
		int ret = rdm_tp_recv(acc.tp, buf.data(), buf.size(), &len, 100);
		if (cuts[i] < frame.size()) {
			ASSERT_EQ(ret, -ETIMEDOUT) << "after " << cuts[i] << " bytes";
		} else {
			ASSERT_EQ(ret, 0) << rdm_tp_errmsg();
			ASSERT_EQ(len, frame.size());
			EXPECT_EQ(memcmp(buf.data(), frame.data(), len), 0);
		}
	}
}

TEST(TcpTransport, RecvTooBigForBuffer)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, "127.0.0.1", 1, 65536));
	std::vector<uint8_t> blob(1000, 1);
	rdm_msg dev{};
	dev.type = RDM_MSG_DEVSTATE;
	dev.u.dev.len = (uint32_t)blob.size();
	dev.u.dev.data = blob.data();
	auto m = encode(dev);
	ASSERT_EQ(rdm_tp_send(p.src, m.data(), m.size()), 0);
	uint8_t small[100];
	size_t len = 0;
	EXPECT_EQ(rdm_tp_recv(p.dst, small, sizeof(small), &len, 5000), -EMSGSIZE);
	EXPECT_EQ(len, m.size());
	EXPECT_NE(strstr(rdm_tp_errmsg(), "exceeds"), nullptr) << rdm_tp_errmsg();
	// The message is kept: a big enough buffer gets it whole.
	std::vector<uint8_t> big(4096);
	ASSERT_EQ(rdm_tp_recv(p.dst, big.data(), big.size(), &len, 5000), 0) << rdm_tp_errmsg();
	ASSERT_EQ(len, m.size());
	EXPECT_EQ(memcmp(big.data(), m.data(), len), 0);
}

// ---- refusals ----

} // namespace
