// SPDX-License-Identifier: MIT
// rdm_addr_parse(): accepted forms and every way an address can be wrong.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "transport/transport.h"

namespace {

struct Parsed {
	int ret;
	rdm_addr a;
	char err[256];
};

Parsed parse(const char *uri)
{
	Parsed p;
	memset(&p.a, 0xa5, sizeof(p.a)); // an error must leave it alone
	strcpy(p.err, "untouched");
	p.ret = rdm_addr_parse(uri, &p.a, p.err, sizeof(p.err));
	return p;
}

std::string v4(const rdm_addr &a)
{
	char buf[INET_ADDRSTRLEN] = "";
	inet_ntop(AF_INET, &((const sockaddr_in *)&a.ss)->sin_addr, buf, sizeof(buf));
	return buf;
}

std::string v6(const rdm_addr &a)
{
	char buf[INET6_ADDRSTRLEN] = "";
	inet_ntop(AF_INET6, &((const sockaddr_in6 *)&a.ss)->sin6_addr, buf, sizeof(buf));
	return buf;
}

TEST(Addr, Ipv4Tcp)
{
	Parsed p = parse("tcp:192.168.1.20:4444");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_EQ(p.a.scheme, RDM_SCHEME_TCP);
	EXPECT_STREQ(p.a.host, "192.168.1.20");
	EXPECT_EQ(p.a.port, 4444);
	EXPECT_EQ(p.a.ss.ss_family, AF_INET);
	EXPECT_EQ(p.a.sslen, sizeof(sockaddr_in));
	EXPECT_EQ(ntohs(((sockaddr_in *)&p.a.ss)->sin_port), 4444);
	EXPECT_EQ(v4(p.a), "192.168.1.20");
}

TEST(Addr, RdmaPortZeroAndMax)
{
	Parsed p = parse("rdma:10.0.0.1:0");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_EQ(p.a.scheme, RDM_SCHEME_RDMA);
	EXPECT_EQ(p.a.port, 0);

	p = parse("rdma:0.0.0.0:65535");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_EQ(p.a.port, 65535);
	EXPECT_EQ(v4(p.a), "0.0.0.0");
}

TEST(Addr, Localhost)
{
	Parsed p = parse("tcp:localhost:80");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_STREQ(p.a.host, "localhost");
	EXPECT_EQ(p.a.ss.ss_family, AF_INET);
	EXPECT_EQ(v4(p.a), "127.0.0.1");
}

TEST(Addr, Ipv6)
{
	Parsed p = parse("tcp:[::1]:65535");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_STREQ(p.a.host, "::1");
	EXPECT_EQ(p.a.port, 65535);
	EXPECT_EQ(p.a.ss.ss_family, AF_INET6);
	EXPECT_EQ(p.a.sslen, sizeof(sockaddr_in6));
	EXPECT_EQ(ntohs(((sockaddr_in6 *)&p.a.ss)->sin6_port), 65535);
	EXPECT_EQ(v6(p.a), "::1");

	p = parse("rdma:[2001:db8::10:1]:7");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_EQ(v6(p.a), "2001:db8::10:1");

	p = parse("tcp:[::ffff:10.1.2.3]:9");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_EQ(v6(p.a), "::ffff:10.1.2.3");

	p = parse("tcp:[::]:0");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_EQ(v6(p.a), "::");
}

TEST(Addr, Ipv6Zone)
{
	Parsed p = parse("tcp:[fe80::1%3]:1");
	ASSERT_EQ(p.ret, 0) << p.err;
	EXPECT_EQ(((sockaddr_in6 *)&p.a.ss)->sin6_scope_id, 3u);

	unsigned lo = if_nametoindex("lo");
	if (lo) {
		p = parse("tcp:[fe80::1%lo]:1");
		ASSERT_EQ(p.ret, 0) << p.err;
		EXPECT_EQ(((sockaddr_in6 *)&p.a.ss)->sin6_scope_id, lo);
	}
}

struct Bad {
	const char *uri;
	const char *why; // a piece of the message that names the problem
};

class AddrBad : public testing::TestWithParam<Bad> {};

TEST_P(AddrBad, Refused)
{
	const Bad &b = GetParam();
	Parsed p = parse(b.uri);
	rdm_addr untouched;
	memset(&untouched, 0xa5, sizeof(untouched));

	EXPECT_EQ(p.ret, -EINVAL) << b.uri;
	EXPECT_NE(strstr(p.err, b.why), nullptr) << b.uri << " -> '" << p.err << "'";
	EXPECT_EQ(memcmp(&p.a, &untouched, sizeof(untouched)), 0) << b.uri;
}

const Bad bad_cases[] = {
	{ "", "empty address" },
	{ "127.0.0.1:80", "unknown scheme '127.0.0.1'" },
	{ "localhost", "missing scheme" },
	{ "udp:1.2.3.4:5", "unknown scheme 'udp'" },
	{ "TCP:1.2.3.4:5", "unknown scheme 'TCP'" },
	{ "tcp:", "missing HOST:PORT" },
	{ "tcp::80", "empty host" },
	{ "tcp:[]:80", "empty host" },
	{ "tcp:::1:80", "must be in brackets" },
	{ "tcp:fe80::1:80", "must be in brackets" },
	{ "tcp:[::1:80", "missing ']'" },
	{ "tcp:[::1]80", "expected ':PORT' after ']'" },
	{ "tcp:[::1]x:80", "expected ':PORT' after ']'" },
	{ "tcp:[1.2.3.4]:80", "not an IPv6 address" },
	{ "tcp:[::g]:80", "not an IPv6 address" },
	{ "tcp:[fe80::1%]:80", "empty IPv6 zone" },
	{ "tcp:[fe80::1%nosuchif9]:80", "unknown network interface 'nosuchif9'" },
	{ "tcp:1.2.3.4", "missing ':PORT'" },
	{ "tcp:1.2.3.4:", "empty port" },
	{ "tcp:[::1]:", "empty port" },
	{ "tcp:1.2.3.4:65536", "bad port '65536'" },
	{ "tcp:1.2.3.4:123456", "bad port" },
	{ "tcp:1.2.3.4:-1", "bad port '-1'" },
	{ "tcp:1.2.3.4:+80", "bad port '+80'" },
	{ "tcp:1.2.3.4:0x50", "bad port '0x50'" },
	{ "tcp:1.2.3.4: 80", "bad port ' 80'" },
	{ "tcp:1.2.3.4:80 ", "bad port '80 '" },
	{ "tcp:1.2.3.4:80x", "bad port '80x'" },
	{ "tcp:[::1]:80/x", "bad port '80/x'" },
	{ "tcp:1.2.3.4:80:90", "trailing characters" },
	{ "tcp:localhost:80:90", "trailing characters" },
	{ "tcp:example.com:80", "is not an IPv4 address" },
	{ "tcp:1.2.3:80", "is not an IPv4 address" },
	{ "tcp:256.1.1.1:80", "is not an IPv4 address" },
	{ "tcp: 1.2.3.4:80", "is not an IPv4 address" },
};

INSTANTIATE_TEST_SUITE_P(Cases, AddrBad, testing::ValuesIn(bad_cases));

TEST(Addr, TooLong)
{
	std::string uri = "tcp:" + std::string(400, '1') + ":80";
	Parsed p = parse(uri.c_str());
	EXPECT_EQ(p.ret, -EINVAL);
	EXPECT_NE(strstr(p.err, "too long"), nullptr) << p.err;

	// Short enough overall, host over the 255-byte field.
	uri = "tcp:[" + std::string(260, ':') + "]:80";
	p = parse(uri.c_str());
	EXPECT_EQ(p.ret, -EINVAL);
	EXPECT_NE(strstr(p.err, "too long"), nullptr) << p.err;
}

TEST(Addr, NullArgsAndNoErrBuffer)
{
	rdm_addr a;
	char err[64];
	EXPECT_EQ(rdm_addr_parse(nullptr, &a, err, sizeof(err)), -EINVAL);
	EXPECT_EQ(rdm_addr_parse("tcp:1.2.3.4:5", nullptr, err, sizeof(err)), -EINVAL);
	// No message buffer: still refused, nothing written.
	EXPECT_EQ(rdm_addr_parse("bogus", &a, nullptr, 0), -EINVAL);
	// A small buffer gets a truncated, terminated message.
	char small[8];
	EXPECT_EQ(rdm_addr_parse("bogus:1", &a, small, sizeof(small)), -EINVAL);
	EXPECT_EQ(strlen(small), sizeof(small) - 1);
}

TEST(Registry, Lookup)
{
	const rdm_tp_ops *tcp = rdm_tp_lookup(RDM_SCHEME_TCP);
	ASSERT_EQ(tcp, &rdm_tcp_ops);
	EXPECT_STREQ(tcp->name, "tcp");
	EXPECT_NE(tcp->listener_port, nullptr);
	const rdm_tp_ops *rdma = rdm_tp_lookup(RDM_SCHEME_RDMA);
	ASSERT_EQ(rdma, &rdm_rdma_ops);
	EXPECT_STREQ(rdma->name, "rdma");
	EXPECT_NE(rdma->listener_port, nullptr);
}

} // namespace
