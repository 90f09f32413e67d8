// SPDX-License-Identifier: MIT
// The tcp transport over loopback: sessions, the page path, fences, the
// control stream, refusals, errors and shutdown. Where a test needs to see or
// forge the wire, one side is a raw socket speaking the frames by hand.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "control/msg.h"
#include "transport/transport.h"

namespace {

using Clock = std::chrono::steady_clock;

// The session handshake as tcp_int.h describes it (kept in sync by these tests).
constexpr uint16_t CHAN_CONTROL = 0x1;
constexpr uint16_t CHAN_ACK = 0x2;
constexpr size_t HELLO_LEN = RDM_HDR_LEN + 20;

const rdm_tp_ops *ops = &rdm_tcp_ops;

long ms_since(Clock::time_point t0)
{
	return (long)std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)
		.count();
}

rdm_tp_opts make_opts(unsigned channels, uint64_t chunk, int timeout_ms = 5000)
{
	rdm_tp_opts o{};
	o.channels = channels;
	o.chunk_size = chunk;
	o.pin_all = false;
	o.timeout_ms = timeout_ms;
	return o;
}

bool ipv6_loopback_usable()
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

// ---- raw wire helpers ----

void put_hello(uint8_t *buf, unsigned index, unsigned count, uint16_t flags, uint64_t token)
{
	rdm_msg m{};
	m.type = RDM_MSG_CHANNEL;
	m.u.channel.magic = RDM_WIRE_MAGIC;
	m.u.channel.version = RDM_WIRE_VERSION;
	m.u.channel.index = (uint16_t)index;
	m.u.channel.count = (uint16_t)count;
	m.u.channel.flags = flags;
	m.u.channel.token = token;
	size_t len = 0;
	ASSERT_EQ(rdm_msg_encode(&m, buf, HELLO_LEN, &len), 0);
	ASSERT_EQ(len, HELLO_LEN);
}

bool write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = (const uint8_t *)buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

// Reads exactly len bytes within timeout_ms; false on EOF, error or timeout.
bool read_all(int fd, void *buf, size_t len, int timeout_ms = 5000)
{
	uint8_t *p = (uint8_t *)buf;
	auto t0 = Clock::now();
	while (len) {
		pollfd pfd{ fd, POLLIN, 0 };
		int left = timeout_ms - (int)ms_since(t0);
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return false;
		ssize_t n = recv(fd, p, len, 0);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

// True when the peer closed fd (EOF or reset) within timeout_ms.
bool closed_by_peer(int fd, int timeout_ms = 5000)
{
	pollfd pfd{ fd, POLLIN, 0 };
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	char c;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

int raw_connect(int family, uint16_t port)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	sockaddr_storage ss{};
	socklen_t sl;
	if (family == AF_INET) {
		auto *s = (sockaddr_in *)&ss;
		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s->sin_port = htons(port);
		sl = sizeof(*s);
	} else {
		auto *s = (sockaddr_in6 *)&ss;
		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		s->sin6_port = htons(port);
		sl = sizeof(*s);
	}
	if (connect(fd, (sockaddr *)&ss, sl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

// A raw source: control + count data sockets with hellos; the ack is read.
struct RawSource {
	int ctrl = -1;
	std::vector<int> data;
	~RawSource()
	{
		if (ctrl >= 0)
			close(ctrl);
		for (int fd : data)
			close(fd);
	}
};

void raw_source(RawSource &rs, uint16_t port, unsigned count, uint64_t token)
{
	uint8_t hello[HELLO_LEN];
	rs.ctrl = raw_connect(AF_INET, port);
	ASSERT_GE(rs.ctrl, 0);
	ASSERT_NO_FATAL_FAILURE(put_hello(hello, 0, count, CHAN_CONTROL, token));
	ASSERT_TRUE(write_all(rs.ctrl, hello, sizeof(hello)));
	for (unsigned i = 0; i < count; i++) {
		int fd = raw_connect(AF_INET, port);
		ASSERT_GE(fd, 0);
		rs.data.push_back(fd);
		ASSERT_NO_FATAL_FAILURE(put_hello(hello, i, count, 0, token));
		ASSERT_TRUE(write_all(fd, hello, sizeof(hello)));
	}
	uint8_t ack[HELLO_LEN];
	ASSERT_TRUE(read_all(rs.ctrl, ack, sizeof(ack)));
	rdm_msg m{};
	ASSERT_EQ(rdm_msg_decode(ack, sizeof(ack), &m), 0);
	ASSERT_EQ(m.type, RDM_MSG_CHANNEL);
	EXPECT_EQ(m.u.channel.flags, CHAN_CONTROL | CHAN_ACK);
	EXPECT_EQ(m.u.channel.token, token);
	EXPECT_EQ(m.u.channel.count, count);
}

// ---- a listener and a session through the transport itself ----

struct Listener {
	rdm_tp_listener *l = nullptr;
	uint16_t port = 0;
	~Listener()
	{
		if (l)
			ops->listener_close(l);
	}
};

void listen_on(Listener &L, const char *host, const rdm_tp_opts &o)
{
	char uri[128], err[RDM_TP_ERRLEN] = "";
	rdm_addr a;
	snprintf(uri, sizeof(uri), "tcp:%s:0", host);
	ASSERT_EQ(rdm_addr_parse(uri, &a, err, sizeof(err)), 0) << err;
	ASSERT_EQ(ops->listen(&a, &o, &L.l, err, sizeof(err)), 0) << err;
	ASSERT_EQ(ops->listener_port(L.l, &L.port), 0);
	ASSERT_NE(L.port, 0);
}

int connect_to(const char *host, uint16_t port, const rdm_tp_opts &o, rdm_tp **out,
	       std::string *errs = nullptr)
{
	char uri[128], err[RDM_TP_ERRLEN] = "";
	rdm_addr a;
	snprintf(uri, sizeof(uri), "tcp:%s:%u", host, port);
	int ret = rdm_addr_parse(uri, &a, err, sizeof(err));
	if (ret == 0)
		ret = ops->connect(&a, &o, out, err, sizeof(err));
	if (errs)
		*errs = err;
	return ret;
}

// accept() in a thread, because connect() returns only once accepted.
struct Acceptor {
	std::thread th;
	int ret = 1;
	rdm_tp *tp = nullptr;
	char err[RDM_TP_ERRLEN] = "";
	void start(rdm_tp_listener *l, int timeout_ms)
	{
		th = std::thread([this, l, timeout_ms] {
			ret = ops->accept(l, timeout_ms, &tp, err, sizeof(err));
		});
	}
	void join()
	{
		if (th.joinable())
			th.join();
	}
	~Acceptor()
	{
		join();
		if (tp)
			ops->close(tp);
	}
};

struct Pair {
	Listener L;
	rdm_tp *src = nullptr, *dst = nullptr;
	~Pair()
	{
		if (src)
			ops->close(src);
		if (dst)
			ops->close(dst);
	}
};

void make_pair(Pair &p, const char *host, unsigned channels, uint64_t chunk, int timeout_ms = 5000)
{
	rdm_tp_opts o = make_opts(channels, chunk, timeout_ms);
	ASSERT_NO_FATAL_FAILURE(listen_on(p.L, host, o));
	Acceptor acc;
	acc.start(p.L.l, 10000);
	std::string err;
	int ret = connect_to(host, p.L.port, o, &p.src, &err);
	acc.join();
	ASSERT_EQ(ret, 0) << err;
	ASSERT_EQ(acc.ret, 0) << acc.err;
	p.dst = acc.tp;
	acc.tp = nullptr;
}

struct Mem {
	std::vector<uint8_t> a, b;
	std::vector<rdm_tp_block> blocks() { return { blk("ram0", a), blk("ram1", b) }; }
	static rdm_tp_block blk(const char *name, std::vector<uint8_t> &v)
	{
		return rdm_tp_block{ name, v.data(), v.size(), 4096 };
	}
};

uint32_t crc(const std::vector<uint8_t> &v)
{
	return (uint32_t)crc32(crc32(0, nullptr, 0), v.data(), (uInt)v.size());
}

void fill_random(std::mt19937_64 &rng, uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rng();
}

// ---- sessions and the page path ----

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

// A raw destination: takes a session of nch data sockets and acks it.
struct RawDest {
	int lfd = -1, ctrl = -1;
	uint16_t port = 0;
	std::vector<int> data;
	~RawDest()
	{
		for (int fd : data)
			if (fd >= 0)
				close(fd);
		if (ctrl >= 0)
			close(ctrl);
		if (lfd >= 0)
			close(lfd);
	}
};

void raw_dest_listen(RawDest &rd)
{
	rd.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(rd.lfd, 0);
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	ASSERT_EQ(bind(rd.lfd, (sockaddr *)&sa, sl), 0);
	ASSERT_EQ(listen(rd.lfd, 16), 0);
	ASSERT_EQ(getsockname(rd.lfd, (sockaddr *)&sa, &sl), 0);
	rd.port = ntohs(sa.sin_port);
}

// Sorts the sockets by their hello and sends the ack.
void raw_dest_accept(RawDest &rd, unsigned nch)
{
	uint64_t token = 0;
	rd.data.assign(nch, -1);
	for (unsigned i = 0; i < nch + 1; i++) {
		int fd = accept4(rd.lfd, nullptr, nullptr, SOCK_CLOEXEC);
		ASSERT_GE(fd, 0);
		uint8_t h[HELLO_LEN];
		ASSERT_TRUE(read_all(fd, h, sizeof(h)));
		rdm_msg m{};
		ASSERT_EQ(rdm_msg_decode(h, sizeof(h), &m), 0);
		ASSERT_EQ(m.type, RDM_MSG_CHANNEL);
		EXPECT_EQ(m.u.channel.version, RDM_WIRE_VERSION);
		EXPECT_EQ(m.u.channel.count, nch);
		EXPECT_NE(m.u.channel.token, 0u);
		if (token == 0)
			token = m.u.channel.token;
		EXPECT_EQ(m.u.channel.token, token); // one token for the session
		if (m.u.channel.flags & CHAN_CONTROL) {
			EXPECT_EQ(rd.ctrl, -1);
			rd.ctrl = fd;
		} else {
			ASSERT_LT(m.u.channel.index, nch);
			EXPECT_EQ(rd.data[m.u.channel.index], -1);
			rd.data[m.u.channel.index] = fd;
		}
	}
	ASSERT_GE(rd.ctrl, 0);
	uint8_t ack[HELLO_LEN];
	ASSERT_NO_FATAL_FAILURE(put_hello(ack, 0, nch, CHAN_CONTROL | CHAN_ACK, token));
	ASSERT_TRUE(write_all(rd.ctrl, ack, sizeof(ack)));
}

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
	EXPECT_LT(ms_since(t0), 1500);
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
	EXPECT_LT(ms_since(t0), 2000);
	EXPECT_NE(strstr(rdm_tp_errmsg(), "pages out of bounds: block 0 off 4046 len 100"), nullptr)
		<< rdm_tp_errmsg();
	EXPECT_EQ(mem, std::vector<uint8_t>(3 * 4096, 0xee));
}

// ---- the control stream ----

std::vector<uint8_t> encode(const rdm_msg &m)
{
	std::vector<uint8_t> buf(rdm_msg_size(&m));
	size_t len = 0;
	EXPECT_GT(buf.size(), 0u);
	EXPECT_EQ(rdm_msg_encode(&m, buf.data(), buf.size(), &len), 0);
	buf.resize(len);
	return buf;
}

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
	EXPECT_LT(el, 1000);
	t0 = Clock::now();
	EXPECT_EQ(rdm_tp_recv(p.src, buf, sizeof(buf), &len, 0), -ETIMEDOUT);
	EXPECT_LT(ms_since(t0), 100);
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

TEST(TcpTransport, GarbageRefusedThenValidPeerAccepted)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(2, 65536, 3000)));
	Acceptor acc;
	acc.start(L.l, 10000);

	// Not rdmig at all.
	int http = raw_connect(AF_INET, L.port);
	ASSERT_GE(http, 0);
	const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	ASSERT_TRUE(write_all(http, req, sizeof(req) - 1));
	// A CHANNEL frame with the wrong magic.
	int badmagic = raw_connect(AF_INET, L.port);
	ASSERT_GE(badmagic, 0);
	uint8_t h[HELLO_LEN];
	ASSERT_NO_FATAL_FAILURE(put_hello(h, 0, 2, CHAN_CONTROL, 5));
	h[RDM_HDR_LEN] ^= 0xff;
	ASSERT_TRUE(write_all(badmagic, h, sizeof(h)));
	// The wrong version.
	int badver = raw_connect(AF_INET, L.port);
	ASSERT_GE(badver, 0);
	ASSERT_NO_FATAL_FAILURE(put_hello(h, 0, 2, CHAN_CONTROL, 5));
	rdm_put_u16(h + RDM_HDR_LEN + 4, RDM_WIRE_VERSION + 1);
	ASSERT_TRUE(write_all(badver, h, sizeof(h)));
	// A short hello, then gone.
	int shorty = raw_connect(AF_INET, L.port);
	ASSERT_GE(shorty, 0);
	ASSERT_TRUE(write_all(shorty, h, 10));
	close(shorty);
	// Silent: must not hold up the others.
	int silent = raw_connect(AF_INET, L.port);
	ASSERT_GE(silent, 0);

	EXPECT_TRUE(closed_by_peer(http));
	EXPECT_TRUE(closed_by_peer(badmagic));
	EXPECT_TRUE(closed_by_peer(badver));
	close(http);
	close(badmagic);
	close(badver);

	rdm_tp *src = nullptr;
	std::string err;
	auto t0 = Clock::now();
	ASSERT_EQ(connect_to("127.0.0.1", L.port, make_opts(2, 65536), &src, &err), 0) << err;
	EXPECT_LT(ms_since(t0), 2500); // not behind the silent socket's 3 s hello limit
	acc.join();
	ASSERT_EQ(acc.ret, 0) << acc.err;
	EXPECT_NE(strstr(acc.err, "refused 4 connection(s)"), nullptr) << acc.err;

	// The session works.
	rdm_msg ping{};
	ping.type = RDM_MSG_RP_PING;
	auto m = encode(ping);
	ASSERT_EQ(rdm_tp_send(src, m.data(), m.size()), 0);
	uint8_t buf[64];
	size_t len = 0;
	EXPECT_EQ(rdm_tp_recv(acc.tp, buf, sizeof(buf), &len, 5000), 0) << rdm_tp_errmsg();
	ops->close(src);

	// The silent socket is dropped at its deadline by a later accept().
	rdm_tp *none = nullptr;
	char aerr[RDM_TP_ERRLEN];
	EXPECT_EQ(ops->accept(L.l, 3500, &none, aerr, sizeof(aerr)), -ETIMEDOUT);
	EXPECT_NE(strstr(aerr, "no channel hello within"), nullptr) << aerr;
	EXPECT_TRUE(closed_by_peer(silent, 0));
	close(silent);
}

// One session at a time: a second one is refused while the first assembles.
TEST(TcpTransport, SecondSessionRefusedWhilePending)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(2, 65536, 5000)));
	Acceptor acc;
	acc.start(L.l, 10000);

	// Session A: control socket only, its data sockets never come.
	int a = raw_connect(AF_INET, L.port);
	ASSERT_GE(a, 0);
	uint8_t h[HELLO_LEN];
	ASSERT_NO_FATAL_FAILURE(put_hello(h, 0, 2, CHAN_CONTROL, 0xaaaa));
	ASSERT_TRUE(write_all(a, h, sizeof(h)));
	usleep(100 * 1000); // let the listener take it in first

	rdm_tp *src = nullptr;
	std::string err;
	auto t0 = Clock::now();
	EXPECT_EQ(connect_to("127.0.0.1", L.port, make_opts(2, 65536, 3000), &src, &err),
		  -ECONNREFUSED);
	EXPECT_LT(ms_since(t0), 2000);
	EXPECT_NE(err.find("refused"), std::string::npos) << err;

	// A's peer gives up: the listener drops it, and the next session is accepted.
	close(a);
	usleep(100 * 1000);
	ASSERT_EQ(connect_to("127.0.0.1", L.port, make_opts(2, 65536), &src, &err), 0) << err;
	acc.join();
	ASSERT_EQ(acc.ret, 0) << acc.err;
	// Which refusal came last depends on timing; that there were some does not.
	EXPECT_NE(strstr(acc.err, "refused"), nullptr) << acc.err;
	ops->close(src);
}

TEST(TcpTransport, AcceptTimesOut)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(1, 4096)));
	rdm_tp *t = nullptr;
	char err[RDM_TP_ERRLEN] = "stale";
	auto t0 = Clock::now();
	EXPECT_EQ(ops->accept(L.l, 150, &t, err, sizeof(err)), -ETIMEDOUT);
	long el = ms_since(t0);
	EXPECT_GE(el, 140);
	EXPECT_LT(el, 1500);
	EXPECT_STREQ(err, ""); // nothing refused: callers poll accept() in a loop
}

TEST(TcpTransport, ConnectNobodyListening)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(1, 4096)));
	uint16_t port = L.port;
	ops->listener_close(L.l);
	L.l = nullptr;
	rdm_tp *t = nullptr;
	std::string err;
	EXPECT_EQ(connect_to("127.0.0.1", port, make_opts(1, 4096), &t, &err), -ECONNREFUSED);
	EXPECT_NE(err.find("control socket"), std::string::npos) << err;
}

// ---- failures and shutdown ----

TEST(TcpTransport, PeerClosesNoHang)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, "127.0.0.1", 4, 65536));
	std::vector<uint8_t> s(1 << 20, 1), d(1 << 20);
	rdm_tp_block sb = Mem::blk("a", s), db = Mem::blk("a", d);
	ASSERT_EQ(ops->set_blocks(p.src, &sb, 1), 0);
	ASSERT_EQ(ops->set_blocks(p.dst, &db, 1), 0);
	ASSERT_EQ(rdm_tp_write(p.src, 0, 0, s.size()), 0);
	ASSERT_EQ(ops->fence(p.src, 1), 0);
	ops->close(p.src);
	p.src = nullptr;

	auto t0 = Clock::now();
	uint8_t buf[64];
	size_t len;
	EXPECT_EQ(rdm_tp_recv(p.dst, buf, sizeof(buf), &len, 10000), -ECONNRESET);
	EXPECT_NE(strstr(rdm_tp_errmsg(), "peer closed"), nullptr) << rdm_tp_errmsg();
	// What was fenced before the close counts; the next fence never comes.
	EXPECT_EQ(ops->wait_fence(p.dst, 1, 10000), 0) << rdm_tp_errmsg();
	EXPECT_EQ(ops->wait_fence(p.dst, 2, 10000), -ECONNRESET);
	EXPECT_NE(strstr(rdm_tp_errmsg(), "peer closed"), nullptr) << rdm_tp_errmsg();
	EXPECT_LT(ms_since(t0), 3000);
	EXPECT_EQ(d, s);
}

TEST(TcpTransport, DestinationGoneSourceErrors)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, "127.0.0.1", 2, 65536, 2000));
	std::vector<uint8_t> s(4 << 20, 1), d(4 << 20);
	rdm_tp_block sb = Mem::blk("a", s), db = Mem::blk("a", d);
	ASSERT_EQ(ops->set_blocks(p.src, &sb, 1), 0);
	ASSERT_EQ(ops->set_blocks(p.dst, &db, 1), 0);
	ops->close(p.dst);
	p.dst = nullptr;

	uint8_t buf[64];
	size_t len;
	auto t0 = Clock::now();
	EXPECT_EQ(rdm_tp_recv(p.src, buf, sizeof(buf), &len, 10000), -ECONNRESET);
	// Writes fail once the kernel learns the sockets are gone.
	int ret = 0;
	for (int i = 0; i < 100 && ret == 0; i++)
		ret = rdm_tp_write(p.src, 0, 0, s.size());
	EXPECT_TRUE(ret == -EPIPE || ret == -ECONNRESET) << ret << " " << rdm_tp_errmsg();
	EXPECT_NE(strstr(rdm_tp_errmsg(), "peer closed"), nullptr) << rdm_tp_errmsg();
	EXPECT_LT(ms_since(t0), 5000);
}

TEST(TcpTransport, ShutdownUnblocksRecvAndWaitFence)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(make_pair(p, "127.0.0.1", 2, 65536));
	std::vector<uint8_t> d(1 << 20);
	rdm_tp_block db = Mem::blk("a", d);
	ASSERT_EQ(ops->set_blocks(p.dst, &db, 1), 0);

	std::atomic<int> rret{ 1 }, fret{ 1 };
	std::thread r([&] {
		uint8_t buf[64];
		size_t len;
		rret = rdm_tp_recv(p.dst, buf, sizeof(buf), &len, -1);
	});
	std::thread f([&] { fret = ops->wait_fence(p.dst, 1, -1); });
	usleep(150 * 1000);
	EXPECT_EQ(rret.load(), 1); // really blocked
	EXPECT_EQ(fret.load(), 1);
	auto t0 = Clock::now();
	ops->shutdown(p.dst);
	r.join();
	f.join();
	EXPECT_LT(ms_since(t0), 1000);
	EXPECT_EQ(rret.load(), -ECANCELED);
	EXPECT_EQ(fret.load(), -ECANCELED);
	// And later calls too.
	rdm_msg ping{};
	ping.type = RDM_MSG_RP_PING;
	auto m = encode(ping);
	EXPECT_EQ(rdm_tp_send(p.dst, m.data(), m.size()), -ECANCELED);
}

TEST(TcpTransport, ShutdownUnblocksSourceRecv)
{
	Pair p;
	const char *host = ipv6_loopback_usable() ? "[::1]" : "127.0.0.1";
	ASSERT_NO_FATAL_FAILURE(make_pair(p, host, 1, 65536));
	std::atomic<int> rret{ 1 };
	std::thread r([&] {
		uint8_t buf[64];
		size_t len;
		rret = rdm_tp_recv(p.src, buf, sizeof(buf), &len, 20000);
	});
	usleep(100 * 1000);
	ops->shutdown(p.src);
	r.join();
	EXPECT_EQ(rret.load(), -ECANCELED);
	EXPECT_EQ(rdm_tp_write(p.src, 0, 0, 1), -ECANCELED);
}

TEST(TcpTransport, ListenerShutdownUnblocksAccept)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(1, 4096)));
	Acceptor acc;
	acc.start(L.l, -1);
	usleep(100 * 1000);
	auto t0 = Clock::now();
	ops->listener_shutdown(L.l);
	acc.join();
	EXPECT_LT(ms_since(t0), 1000);
	EXPECT_EQ(acc.ret, -ECANCELED);
}

} // namespace
