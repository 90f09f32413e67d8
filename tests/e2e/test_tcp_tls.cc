/* SPDX-License-Identifier: MIT */
/*
 * The tcp transport with TLS on every socket (PSK), on its own over loopback:
 * pages and fences, control messages both ways at once, receive timeouts in
 * the middle of TLS records, shutdown waking every waiter.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <zlib.h>

#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "control/msg.h"
#include "transport/transport.h"
}

namespace {

const rdm_tp_ops *ops = &rdm_tcp_ops;
const uint8_t kKey[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
			  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

struct Creds {
	rdm_tls *client = nullptr, *server = nullptr;
	~Creds()
	{
		rdm_tls_free(client);
		rdm_tls_free(server);
	}
	void Make()
	{
		rdm_tls_cfg c{};
		char err[RDM_TP_ERRLEN] = "";
		c.psk = true;
		c.psk_identity = "transport-test";
		c.psk_key = kKey;
		c.psk_key_len = sizeof(kKey);
		ASSERT_EQ(0, rdm_tls_new(&c, false, &client, err, sizeof(err))) << err;
		ASSERT_EQ(0, rdm_tls_new(&c, true, &server, err, sizeof(err))) << err;
	}
};

struct TlsPair {
	Creds creds;
	rdm_tp_listener *l = nullptr;
	rdm_tp *src = nullptr, *dst = nullptr;
	~TlsPair()
	{
		if (src)
			ops->close(src);
		if (dst)
			ops->close(dst);
		if (l)
			ops->listener_close(l);
	}
};

void MakeTlsPair(TlsPair &p, unsigned channels)
{
	ASSERT_NO_FATAL_FAILURE(p.creds.Make());
	rdm_tp_opts o{};
	o.channels = channels;
	o.chunk_size = 64 << 10;
	o.timeout_ms = 5000;
	char err[RDM_TP_ERRLEN] = "", aerr[RDM_TP_ERRLEN] = "";
	rdm_addr a;
	ASSERT_EQ(0, rdm_addr_parse("tcp:127.0.0.1:0", &a, err, sizeof(err))) << err;
	o.tls = p.creds.server;
	ASSERT_EQ(0, ops->listen(&a, &o, &p.l, err, sizeof(err))) << err;
	uint16_t port = 0;
	ASSERT_EQ(0, ops->listener_port(p.l, &port));
	int aret = 1;
	std::thread acc([&] { aret = ops->accept(p.l, 10000, &p.dst, aerr, sizeof(aerr)); });
	std::string uri = "tcp:127.0.0.1:" + std::to_string(port);
	int cret = rdm_addr_parse(uri.c_str(), &a, err, sizeof(err));
	o.tls = p.creds.client;
	if (!cret)
		cret = ops->connect(&a, &o, &p.src, err, sizeof(err));
	acc.join();
	ASSERT_EQ(0, cret) << err;
	ASSERT_EQ(0, aret) << aerr;
}

std::vector<uint8_t> Encode(const rdm_msg &m)
{
	std::vector<uint8_t> b(rdm_msg_size(&m));
	size_t len = 0;
	EXPECT_EQ(0, rdm_msg_encode(&m, b.data(), b.size(), &len));
	b.resize(len);
	return b;
}

std::vector<uint8_t> DevState(size_t n, uint64_t seed)
{
	std::vector<uint8_t> v(n);
	std::mt19937_64 rng(seed);
	for (auto &x : v)
		x = (uint8_t)rng();
	return v;
}

std::vector<uint8_t> DevMsg(const std::vector<uint8_t> &state)
{
	rdm_msg dev{};
	dev.type = RDM_MSG_DEVSTATE;
	dev.u.dev.len = (uint32_t)state.size();
	dev.u.dev.data = state.data();
	return Encode(dev);
}

uint32_t Crc(const std::vector<uint8_t> &v)
{
	return (uint32_t)crc32(crc32(0, nullptr, 0), v.data(), (uInt)v.size());
}

TEST(TcpTls, PagesAndFencesOnFourChannels)
{
	TlsPair p;
	ASSERT_NO_FATAL_FAILURE(MakeTlsPair(p, 4));
	std::vector<uint8_t> src = DevState(6 << 20, 11), dst(src.size(), 0);
	rdm_tp_block sb{"ram0", src.data(), src.size(), 4096}, db{"ram0", dst.data(), dst.size(), 4096};
	ASSERT_EQ(0, ops->set_blocks(p.src, &sb, 1)) << rdm_tp_errmsg();
	ASSERT_EQ(0, ops->set_blocks(p.dst, &db, 1)) << rdm_tp_errmsg();
	std::mt19937_64 rng(12);
	for (uint64_t off = 0; off < src.size();) {
		uint64_t len = std::min<uint64_t>(1 + rng() % (200 << 10), src.size() - off);
		ASSERT_EQ(0, rdm_tp_write(p.src, 0, off, len)) << rdm_tp_errmsg();
		off += len;
	}
	ASSERT_EQ(0, ops->fence(p.src, 1)) << rdm_tp_errmsg();
	ASSERT_EQ(0, ops->wait_fence(p.dst, 1, 20000)) << rdm_tp_errmsg();
	EXPECT_EQ(Crc(src), Crc(dst));
	EXPECT_EQ(-ETIMEDOUT, ops->wait_fence(p.dst, 2, 50));
}

/* Both directions of the control stream at once: one TLS session, a sender and a receiver each side. */
TEST(TcpTls, ControlBothWaysAtOnce)
{
	TlsPair p;
	ASSERT_NO_FATAL_FAILURE(MakeTlsPair(p, 1));
	const std::vector<uint8_t> fwd = DevMsg(DevState(3 << 20, 1)), back = DevMsg(DevState(2 << 20, 2));
	const int rounds = 4;
	std::atomic<int> bad{0};
	std::mutex mu;
	std::string first_err; /* transport error text is per thread: keep the first */
	auto fail = [&](const char *what) {
		std::lock_guard<std::mutex> g(mu);
		if (first_err.empty())
			first_err = std::string(what) + ": " + rdm_tp_errmsg();
		bad++;
	};
	auto pump = [&](rdm_tp *tx, rdm_tp *rx, const std::vector<uint8_t> &out,
			const std::vector<uint8_t> &in) {
		std::thread s([&, tx] {
			for (int i = 0; i < rounds; i++)
				if (rdm_tp_send(tx, out.data(), out.size()))
					fail("send");
		});
		std::vector<uint8_t> buf(4 << 20);
		for (int i = 0; i < rounds; i++) {
			size_t len = 0;
			if (rdm_tp_recv(rx, buf.data(), buf.size(), &len, 20000) || len != in.size() ||
			    memcmp(buf.data(), in.data(), len))
				fail("recv");
		}
		s.join();
	};
	std::thread a([&] { pump(p.src, p.src, fwd, back); });
	std::thread b([&] { pump(p.dst, p.dst, back, fwd); });
	a.join();
	b.join();
	EXPECT_EQ(0, bad.load()) << first_err;
}

/* Small socket buffers on every socket of port's sessions, both ends (found through /proc). */
void ShrinkBuffers(uint16_t port)
{
	DIR *d = opendir("/proc/self/fd");
	ASSERT_NE(nullptr, d);
	for (dirent *e; (e = readdir(d));) {
		int fd = atoi(e->d_name);
		sockaddr_in me{}, peer{};
		socklen_t l1 = sizeof(me), l2 = sizeof(peer);
		int small = 8192;
		if (fd <= 2 || getsockname(fd, (sockaddr *)&me, &l1) || getpeername(fd, (sockaddr *)&peer, &l2) ||
		    me.sin_family != AF_INET)
			continue;
		if (ntohs(me.sin_port) == port)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		if (ntohs(peer.sin_port) == port)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	}
	closedir(d);
}

/* Timeouts land in the middle of TLS records; the message still arrives whole. */
TEST(TcpTls, RecvTimeoutsInsideAMessage)
{
	TlsPair p;
	ASSERT_NO_FATAL_FAILURE(MakeTlsPair(p, 1));
	uint16_t port = 0;
	ASSERT_EQ(0, ops->listener_port(p.l, &port));
	/* 128 KiB through 8 KiB windows: the receiver must find the socket empty mid-message. */
	ASSERT_NO_FATAL_FAILURE(ShrinkBuffers(port));
	const std::vector<uint8_t> msg = DevMsg(DevState(128 << 10, 3));
	/*
	 * On an idle machine the sender can keep ahead of a 1 ms wait for a
	 * whole message; a few messages in a row make a timeout mid-message
	 * (the case under test) all but certain, and each must arrive whole.
	 */
	int timeouts = 0, ret;
	for (int round = 0; round < 16 && !timeouts; round++) {
		std::thread s([&] {
			EXPECT_EQ(0, rdm_tp_send(p.src, msg.data(), msg.size())) << rdm_tp_errmsg();
		});
		size_t len = 0;
		/* The first wait may come before the sender began: it does not count. */
		for (bool first = true;; first = false) {
			/* A fresh buffer each call: the partial bytes must live in the transport. */
			std::vector<uint8_t> buf(msg.size() + 64, 0xcc);
			ret = rdm_tp_recv(p.dst, buf.data(), buf.size(), &len, 0);
			if (ret == -ETIMEDOUT) {
				timeouts += !first;
				continue;
			}
			if (ret)
				break;
			EXPECT_EQ(msg.size(), len);
			EXPECT_EQ(0, memcmp(buf.data(), msg.data(), len));
			break;
		}
		s.join();
		ASSERT_EQ(0, ret) << rdm_tp_errmsg();
	}
	EXPECT_GT(timeouts, 0);
}

TEST(TcpTls, ShutdownWakesEveryWaiter)
{
	TlsPair p;
	ASSERT_NO_FATAL_FAILURE(MakeTlsPair(p, 2));
	std::vector<uint8_t> d(1 << 20);
	rdm_tp_block db{"a", d.data(), d.size(), 4096};
	ASSERT_EQ(0, ops->set_blocks(p.dst, &db, 1));
	std::atomic<int> rret{1}, fret{1}, sret{1};
	std::thread r([&] {
		uint8_t buf[64];
		size_t len;
		rret = rdm_tp_recv(p.dst, buf, sizeof(buf), &len, -1);
	});
	std::thread f([&] { fret = ops->wait_fence(p.dst, 1, -1); });
	/* Another pair: a shutdown here would reach the other side as a hang-up. */
	TlsPair q;
	ASSERT_NO_FATAL_FAILURE(MakeTlsPair(q, 1));
	std::thread sr([&] {
		uint8_t buf[64];
		size_t len;
		sret = rdm_tp_recv(q.src, buf, sizeof(buf), &len, -1);
	});
	ops->shutdown(p.dst);
	ops->shutdown(q.src);
	r.join();
	f.join();
	sr.join();
	EXPECT_EQ(-ECANCELED, rret.load());
	EXPECT_EQ(-ECANCELED, fret.load());
	EXPECT_EQ(-ECANCELED, sret.load());
}

/* The destination closes: the source's page path reports it, nothing hangs. */
TEST(TcpTls, PeerGoneSourceErrors)
{
	TlsPair p;
	ASSERT_NO_FATAL_FAILURE(MakeTlsPair(p, 2));
	std::vector<uint8_t> src = DevState(8 << 20, 4);
	rdm_tp_block sb{"ram0", src.data(), src.size(), 4096};
	ASSERT_EQ(0, ops->set_blocks(p.src, &sb, 1)) << rdm_tp_errmsg();
	ops->close(p.dst);
	p.dst = nullptr;
	int ret = 0;
	for (int i = 0; i < 64 && ret == 0; i++)
		ret = rdm_tp_write(p.src, 0, 0, src.size());
	EXPECT_TRUE(ret == -EPIPE || ret == -ECONNRESET) << ret << " " << rdm_tp_errmsg();
	uint8_t buf[64];
	size_t len;
	EXPECT_EQ(-ECONNRESET, rdm_tp_recv(p.src, buf, sizeof(buf), &len, 5000)) << rdm_tp_errmsg();
}

} // namespace
