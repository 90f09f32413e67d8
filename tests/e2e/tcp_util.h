// SPDX-License-Identifier: MIT
// Helpers of the tcp transport tests (test_tcp_transport*.cc): options, raw
// sockets that speak the frames by hand, listener/acceptor/pair setups.
#ifndef RDMIG_TESTS_E2E_TCP_UTIL_H
#define RDMIG_TESTS_E2E_TCP_UTIL_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
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

inline long ms_since(Clock::time_point t0)
{
	return (long)std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)
		.count();
}

inline rdm_tp_opts make_opts(unsigned channels, uint64_t chunk, int timeout_ms = 5000)
{
	rdm_tp_opts o{};
	o.channels = channels;
	o.chunk_size = chunk;
	o.pin_all = false;
	o.timeout_ms = timeout_ms;
	return o;
}

inline bool ipv6_loopback_usable()
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

inline void put_hello(uint8_t *buf, unsigned index, unsigned count, uint16_t flags, uint64_t token)
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

inline bool write_all(int fd, const void *buf, size_t len)
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
inline bool read_all(int fd, void *buf, size_t len, int timeout_ms = 5000)
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
inline bool closed_by_peer(int fd, int timeout_ms = 5000)
{
	pollfd pfd{ fd, POLLIN, 0 };
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	char c;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

// The calling thread's id, for thread_blocked().
inline pid_t this_tid()
{
	return (pid_t)syscall(SYS_gettid);
}

// Thread tid of this process sleeps in the kernel (state S) within timeout_ms:
// it is blocked inside the call it was started for, not still on its way in.
// tid 0 (not yet set by the thread) counts as not blocked.
inline bool thread_blocked(const std::atomic<pid_t> &tid, int timeout_ms = 5000)
{
	auto t0 = Clock::now();
	do {
		pid_t t = tid.load();
		if (t) {
			std::ifstream f("/proc/self/task/" + std::to_string(t) + "/stat");
			std::string line;
			std::getline(f, line);
			size_t rp = line.rfind(')'); // the name may hold spaces
			if (rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] == 'S')
				return true;
		}
		usleep(1000); // a poll slice
	} while (ms_since(t0) < timeout_ms);
	return false;
}

// The other end of fd (an IPv4 loopback connection to a listener in this
// process) has read everything fd sent, within timeout_ms: its receive queue
// in /proc/net/tcp is empty.
inline bool peer_read_all(int fd, int timeout_ms = 5000)
{
	sockaddr_in me{}, peer{};
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	if (getsockname(fd, (sockaddr *)&me, &ml) || getpeername(fd, (sockaddr *)&peer, &pl) ||
	    me.sin_family != AF_INET)
		return false;
	unsigned want_local = ntohs(peer.sin_port), want_remote = ntohs(me.sin_port);
	auto t0 = Clock::now();
	do {
		std::ifstream f("/proc/net/tcp");
		std::string line;
		std::getline(f, line); // the heading
		while (std::getline(f, line)) {
			unsigned lport, rport, st;
			unsigned long txq, rxq;
			// "sl: LOCALIP:PORT REMIP:PORT ST TXQ:RXQ ..."
			if (sscanf(line.c_str(), " %*u: %*x:%x %*x:%x %x %lx:%lx", &lport, &rport, &st,
				   &txq, &rxq) != 5)
				continue;
			if (lport == want_local && rport == want_remote && rxq == 0)
				return true;
		}
		usleep(1000); // a poll slice
	} while (ms_since(t0) < timeout_ms);
	return false;
}

inline int raw_connect(int family, uint16_t port)
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

inline void raw_source(RawSource &rs, uint16_t port, unsigned count, uint64_t token)
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

inline void listen_on(Listener &L, const char *host, const rdm_tp_opts &o)
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
	std::atomic<pid_t> tid{ 0 }; // for thread_blocked()
	int ret = 1;
	rdm_tp *tp = nullptr;
	char err[RDM_TP_ERRLEN] = "";
	void start(rdm_tp_listener *l, int timeout_ms)
	{
		th = std::thread([this, l, timeout_ms] {
			tid = this_tid();
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

inline void make_pair(Pair &p, const char *host, unsigned channels, uint64_t chunk, int timeout_ms = 5000)
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

inline uint32_t crc(const std::vector<uint8_t> &v)
{
	return (uint32_t)crc32(crc32(0, nullptr, 0), v.data(), (uInt)v.size());
}

inline void fill_random(std::mt19937_64 &rng, uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rng();
}

// ---- sessions and the page path ----

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

inline void raw_dest_listen(RawDest &rd)
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
inline void raw_dest_accept(RawDest &rd, unsigned nch)
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


inline std::vector<uint8_t> encode(const rdm_msg &m)
{
	std::vector<uint8_t> buf(rdm_msg_size(&m));
	size_t len = 0;
	EXPECT_GT(buf.size(), 0u);
	EXPECT_EQ(rdm_msg_encode(&m, buf.data(), buf.size(), &len), 0);
	buf.resize(len);
	return buf;
}

} // namespace

#endif
