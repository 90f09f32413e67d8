// SPDX-License-Identifier: MIT
// The tcp transport over loopback: sessions and refusals at the listener,
// timeouts, peers gone, shutdown, and channel proofs.
#include "tcp_util.h"

namespace {

TEST(TcpTransport, GarbageRefusedThenValidPeerAccepted)
{
	Listener L;
	// A hello limit above the source's 5 s peer timeout: the bound below tells them apart.
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(2, 65536, 6000)));
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
	// A short hello, then gone (a half-close: its refusal can be waited for below).
	int shorty = raw_connect(AF_INET, L.port);
	ASSERT_GE(shorty, 0);
	ASSERT_TRUE(write_all(shorty, h, 10));
	ASSERT_EQ(shutdown(shorty, SHUT_WR), 0);
	// Silent: must not hold up the others.
	int silent = raw_connect(AF_INET, L.port);
	ASSERT_GE(silent, 0);

	EXPECT_TRUE(closed_by_peer(http));
	EXPECT_TRUE(closed_by_peer(badmagic));
	EXPECT_TRUE(closed_by_peer(badver));
	EXPECT_TRUE(closed_by_peer(shorty));
	close(http);
	close(badmagic);
	close(badver);
	close(shorty);

	rdm_tp *src = nullptr;
	std::string err;
	auto t0 = Clock::now();
	ASSERT_EQ(connect_to("127.0.0.1", L.port, make_opts(2, 65536), &src, &err), 0) << err;
	EXPECT_LT(ms_since(t0), 5000); // not behind the silent socket's 6 s hello limit
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
	EXPECT_EQ(ops->accept(L.l, 6500, &none, aerr, sizeof(aerr)), -ETIMEDOUT);
	EXPECT_NE(strstr(aerr, "no channel hello within"), nullptr) << aerr;
	EXPECT_TRUE(closed_by_peer(silent, 0));
	close(silent);
}

// Sessions assemble side by side: a half-open stranger does not hold up the
// next one (it used to be refused until the stranger's deadline), and the
// stranger's half session is still dropped at its own deadline.
TEST(TcpTransport, SecondSessionAcceptedWhileOneIsHalfOpen)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(2, 65536, 3000)));
	Acceptor acc;
	acc.start(L.l, 10000);

	// Session A: control socket only, its data sockets never come.
	int a = raw_connect(AF_INET, L.port);
	ASSERT_GE(a, 0);
	uint8_t h[HELLO_LEN];
	ASSERT_NO_FATAL_FAILURE(put_hello(h, 0, 2, CHAN_CONTROL, 0xaaaa));
	ASSERT_TRUE(write_all(a, h, sizeof(h)));
	ASSERT_TRUE(peer_read_all(a)) << "the listener never read A's hello"; // A is in first

	rdm_tp *src = nullptr;
	std::string err;
	ASSERT_EQ(connect_to("127.0.0.1", L.port, make_opts(2, 65536, 3000), &src, &err), 0) << err;
	acc.join();
	ASSERT_EQ(acc.ret, 0) << acc.err;
	ASSERT_NE(acc.tp, nullptr);
	EXPECT_EQ(acc.tp->token, src->token);
	EXPECT_NE(acc.tp->token, 0xaaaau);
	ops->close(src);

	// A is dropped at its deadline by a later accept(), and closed.
	rdm_tp *none = nullptr;
	char aerr[RDM_TP_ERRLEN];
	EXPECT_EQ(ops->accept(L.l, 4500, &none, aerr, sizeof(aerr)), -ETIMEDOUT);
	EXPECT_NE(strstr(aerr, "incomplete after"), nullptr) << aerr;
	EXPECT_TRUE(closed_by_peer(a, 0));
	close(a);
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
	EXPECT_LT(el, 5000); // no tighter than the 5 s peer timeout: 2 loaded cores
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
	EXPECT_LT(ms_since(t0), 5000); // the peer timeout, well under the 10 s waits
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
	std::atomic<pid_t> rtid{ 0 }, ftid{ 0 };
	std::thread r([&] {
		uint8_t buf[64];
		size_t len;
		rtid = this_tid();
		rret = rdm_tp_recv(p.dst, buf, sizeof(buf), &len, -1);
	});
	std::thread f([&] {
		ftid = this_tid();
		fret = ops->wait_fence(p.dst, 1, -1);
	});
	EXPECT_TRUE(thread_blocked(rtid));
	EXPECT_TRUE(thread_blocked(ftid));
	EXPECT_EQ(rret.load(), 1); // really blocked
	EXPECT_EQ(fret.load(), 1);
	auto t0 = Clock::now();
	ops->shutdown(p.dst);
	r.join();
	f.join();
	EXPECT_LT(ms_since(t0), 5000); // the peer timeout: the calls themselves never time out
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
	std::atomic<pid_t> rtid{ 0 };
	std::thread r([&] {
		uint8_t buf[64];
		size_t len;
		rtid = this_tid();
		rret = rdm_tp_recv(p.src, buf, sizeof(buf), &len, 20000);
	});
	EXPECT_TRUE(thread_blocked(rtid));
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
	EXPECT_TRUE(thread_blocked(acc.tid));
	auto t0 = Clock::now();
	ops->listener_shutdown(L.l);
	acc.join();
	EXPECT_LT(ms_since(t0), 5000); // the peer timeout: accept(-1) itself never times out
	EXPECT_EQ(acc.ret, -ECANCELED);
}

} // namespace

// ---- channel proofs (a secret in rdm_tp_opts) ----

namespace {

const uint8_t kSecret[] = "channel-proof-secret-0123456789";
const uint8_t kOther[] = "channel-proof-secret-0123456788";

rdm_tp_opts with_secret(rdm_tp_opts o, const uint8_t *secret)
{
	o.secret = secret;
	o.secret_len = secret ? sizeof(kSecret) - 1 : 0;
	return o;
}

} // namespace

TEST(TcpTransportAuth, ProofsAcceptedWithTheSecret)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", with_secret(make_opts(3, 65536), kSecret)));
	Acceptor acc;
	acc.start(L.l, 10000);
	rdm_tp *src = nullptr;
	std::string err;
	ASSERT_EQ(connect_to("127.0.0.1", L.port, with_secret(make_opts(3, 65536), kSecret), &src,
			     &err), 0) << err;
	acc.join();
	ASSERT_EQ(acc.ret, 0) << acc.err;
	EXPECT_EQ(acc.tp->token, src->token);
	EXPECT_NE(src->token, 0u);
	ops->close(src);
}

TEST(TcpTransportAuth, NoProofOrWrongSecretRefusedWithAReasonOnBothSides)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", with_secret(make_opts(2, 65536), kSecret)));
	for (const uint8_t *bad : {(const uint8_t *)nullptr, kOther}) {
		SCOPED_TRACE(bad ? "wrong secret" : "no secret");
		Acceptor acc;
		acc.start(L.l, 2000);
		rdm_tp *src = nullptr;
		std::string err;
		EXPECT_EQ(connect_to("127.0.0.1", L.port, with_secret(make_opts(2, 65536), bad), &src,
				     &err), -EACCES);
		EXPECT_NE(err.find("authentication failed"), std::string::npos) << err;
		EXPECT_NE(err.find(bad ? "does not match" : "without a proof"), std::string::npos)
			<< err;
		acc.join();
		EXPECT_EQ(acc.ret, -ETIMEDOUT);
		EXPECT_NE(strstr(acc.err, "authentication failed"), nullptr) << acc.err;
	}
	// The real source still gets in.
	Acceptor acc;
	acc.start(L.l, 10000);
	rdm_tp *src = nullptr;
	std::string err;
	ASSERT_EQ(connect_to("127.0.0.1", L.port, with_secret(make_opts(2, 65536), kSecret), &src,
			     &err), 0) << err;
	acc.join();
	EXPECT_EQ(acc.ret, 0) << acc.err;
	ops->close(src);
}

// Without a secret the listener does not judge proofs (the session handshake
// refuses a source that wants authentication); it must still read them.
TEST(TcpTransportAuth, ProofReadButNotJudgedWithoutASecret)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", make_opts(2, 65536)));
	Acceptor acc;
	acc.start(L.l, 10000);
	rdm_tp *src = nullptr;
	std::string err;
	ASSERT_EQ(connect_to("127.0.0.1", L.port, with_secret(make_opts(2, 65536), kSecret), &src,
			     &err), 0) << err;
	acc.join();
	ASSERT_EQ(acc.ret, 0) << acc.err;
	// The control stream starts right after the proofs: nothing was left unread.
	rdm_msg ping{};
	ping.type = RDM_MSG_RP_PING;
	ping.u.u32.value = 99;
	auto m = encode(ping);
	ASSERT_EQ(rdm_tp_send(src, m.data(), m.size()), 0);
	uint8_t buf[64];
	size_t len = 0;
	ASSERT_EQ(rdm_tp_recv(acc.tp, buf, sizeof(buf), &len, 5000), 0) << rdm_tp_errmsg();
	EXPECT_EQ(len, m.size());
	EXPECT_EQ(0, memcmp(buf, m.data(), len));
	ops->close(src);
}

// A stranger's forged proof: an ERROR frame that says why, then the close.
TEST(TcpTransportAuth, ForgedProofGetsAnErrorFrameAndTheClose)
{
	Listener L;
	ASSERT_NO_FATAL_FAILURE(listen_on(L, "127.0.0.1", with_secret(make_opts(1, 65536), kSecret)));
	Acceptor acc;
	acc.start(L.l, 1500);
	int fd = raw_connect(AF_INET, L.port);
	ASSERT_GE(fd, 0);
	uint8_t h[HELLO_LEN + RDM_HDR_LEN + 16];
	ASSERT_NO_FATAL_FAILURE(put_hello(h, 0, 1, CHAN_CONTROL | 0x4, 0x1234));
	rdm_hdr_encode(h + HELLO_LEN, RDM_MSG_CHAN_PROOF, 16);
	memset(h + HELLO_LEN + RDM_HDR_LEN, 0x5a, 16);
	ASSERT_TRUE(write_all(fd, h, sizeof(h)));
	uint8_t hdr[RDM_HDR_LEN];
	ASSERT_TRUE(read_all(fd, hdr, sizeof(hdr)));
	uint16_t type = 0;
	uint32_t plen = 0;
	ASSERT_EQ(rdm_hdr_decode(hdr, sizeof(hdr), &type, &plen), 0);
	EXPECT_EQ(type, RDM_MSG_ERROR);
	std::vector<uint8_t> f(hdr, hdr + sizeof(hdr));
	f.resize(RDM_HDR_LEN + plen);
	ASSERT_TRUE(read_all(fd, f.data() + RDM_HDR_LEN, plen));
	rdm_msg e;
	ASSERT_EQ(rdm_msg_decode(f.data(), f.size(), &e), 0);
	EXPECT_EQ(e.u.error.code, -EACCES);
	EXPECT_NE(strstr(e.u.error.text, "authentication failed"), nullptr) << e.u.error.text;
	EXPECT_TRUE(closed_by_peer(fd));
	close(fd);
	acc.join();
	EXPECT_EQ(acc.ret, -ETIMEDOUT);
}
