/* SPDX-License-Identifier: MIT */
/*
 * TLS on the tcp transport, end to end: PSK and x509 migrations checked by
 * CRC32, refusals (wrong PSK, a certificate of another CA, plaintext against
 * TLS both ways) with their errors on both sides, and a relay that records the
 * bytes between source and destination to show that a marker written into
 * guest RAM is on the wire in clear without TLS and not with it. Certificates
 * are made at run time with certtool into a temporary directory.
 */
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace {

const char kPskId[] = "rdmig-test";
const char kPskHex[] = "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef";
const char kOtherPskHex[] = "ffeeddccbbaa99887766554433221100fedcba9876543210fedcba9876543210";

/* A destination that sees only refused peers reports after this long. */
const int kRefusalWaitMs = 6000;

std::string Unhex(const char *hex)
{
	std::string out;

	for (size_t i = 0; hex[i] && hex[i + 1]; i += 2)
		out += (char)strtoul(std::string(hex + i, 2).c_str(), nullptr, 16);
	return out;
}

bool WriteFile(const std::string &path, const std::string &text)
{
	FILE *f = fopen(path.c_str(), "w");

	if (!f)
		return false;
	bool ok = fwrite(text.data(), 1, text.size(), f) == text.size();
	return fclose(f) == 0 && ok;
}

class Tls : public ::testing::Test {
      protected:
	void SetUp() override
	{
		if (TestTransport() != "tcp")
			GTEST_SKIP() << "TLS is for the tcp transport (the rdma data path cannot "
					"be encrypted; rdma URIs with TLS are refused)";
		char tmpl[] = "/tmp/rdmig-tls-XXXXXX";
		ASSERT_NE(nullptr, mkdtemp(tmpl));
		dir_ = tmpl;
	}

	void TearDown() override
	{
		if (!dir_.empty())
			(void)!system(("rm -rf '" + dir_ + "'").c_str());
	}

	std::string Path(const std::string &name) const { return dir_ + "/" + name; }

	bool Certtool(const std::string &args)
	{
		std::string cmd = "certtool " + args + " >>'" + Path("certtool.log") + "' 2>&1";
		return system(cmd.c_str()) == 0;
	}

	/* A CA (name-ca-cert.pem, name-ca-key.pem) and, signed by it, a server
	 * certificate for localhost / 127.0.0.1 and a client certificate. */
	void MakePki(const std::string &name)
	{
		if (system("command -v certtool >/dev/null 2>&1") != 0)
			GTEST_SKIP() << "certtool (gnutls-bin) is not installed; scripts/deps installs it";
		std::string p = Path(name);
		ASSERT_TRUE(WriteFile(p + "-ca.tmpl", "cn = \"rdmig test CA " + name +
							      "\"\nca\ncert_signing_key\n"
							      "expiration_days = 2\n"));
		ASSERT_TRUE(WriteFile(p + "-server.tmpl",
				      "cn = \"localhost\"\ndns_name = \"localhost\"\n"
				      "ip_address = \"127.0.0.1\"\ntls_www_server\n"
				      "signing_key\nencryption_key\nexpiration_days = 2\n"));
		ASSERT_TRUE(WriteFile(p + "-client.tmpl",
				      "cn = \"rdmig source\"\ntls_www_client\nsigning_key\n"
				      "encryption_key\nexpiration_days = 2\n"));
		for (const char *k : {"-ca-key.pem", "-server-key.pem", "-client-key.pem"})
			ASSERT_TRUE(Certtool("--generate-privkey --key-type=ecdsa --outfile '" + p +
					     k + "'"))
				<< "see " << Path("certtool.log");
		ASSERT_TRUE(Certtool("--generate-self-signed --load-privkey '" + p +
				     "-ca-key.pem' --template '" + p + "-ca.tmpl' --outfile '" + p +
				     "-ca-cert.pem'"));
		for (const char *who : {"server", "client"}) {
			std::string w = p + "-" + who;
			ASSERT_TRUE(Certtool("--generate-certificate --load-privkey '" + w +
					     "-key.pem' --load-ca-certificate '" + p +
					     "-ca-cert.pem' --load-ca-privkey '" + p +
					     "-ca-key.pem' --template '" + w + ".tmpl' --outfile '" +
					     w + "-cert.pem'"))
				<< "see " << Path("certtool.log");
		}
	}

	/* DestProcess::tls for a destination with name's server certificate. */
	std::string DestX509(const std::string &name, bool verify_peer)
	{
		std::string p = Path(name);
		return "x509:" + p + "-ca-cert.pem:" + p + "-server-cert.pem:" + p +
		       "-server-key.pem:" + (verify_peer ? "1" : "0");
	}

	/* The source trusts ca's CA and presents client's client certificate. */
	void SourceX509(rdmig_session *s, const std::string &ca, const std::string &client,
			const char *hostname = "localhost")
	{
		ca_ = Path(ca) + "-ca-cert.pem";
		cert_ = Path(client) + "-client-cert.pem";
		key_ = Path(client) + "-client-key.pem";
		rdmig_tls_opts o{};
		o.size = sizeof(o);
		o.creds = RDMIG_TLS_X509;
		o.ca_file = ca_.c_str();
		o.cert_file = cert_.c_str();
		o.key_file = key_.c_str();
		o.hostname = hostname;
		ASSERT_EQ(0, rdmig_set_tls(s, &o)) << rdmig_last_error(s);
	}

	std::string dir_, ca_, cert_, key_;
};

void SourcePsk(rdmig_session *s, const char *hex, const char *identity = kPskId)
{
	std::string key = Unhex(hex);
	rdmig_tls_opts o{};

	o.size = sizeof(o);
	o.creds = RDMIG_TLS_PSK;
	o.psk_identity = identity;
	o.psk_key = key.data();
	o.psk_key_len = key.size();
	ASSERT_EQ(0, rdmig_set_tls(s, &o)) << rdmig_last_error(s);
}

std::string DestPsk(const char *hex)
{
	return std::string("psk:") + kPskId + ":" + hex;
}

guest_cfg SmallGuest(uint64_t dirty_mib_s)
{
	guest_cfg c = DefaultGuest(16, dirty_mib_s);
	c.devstate_bytes = 256 << 10;
	return c;
}

/* Completed on both sides, destination memory and device state equal to the source's. */
void ExpectMigrated(Source &src, DestProcess &dest, rdmig_status st)
{
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s) << "; destination: "
					       << r.error;
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	ASSERT_EQ(guest_nblocks(src.g), r.nblocks);
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i << " differs";
	EXPECT_EQ(guest_devstate_crc(src.g), r.devcrc);
	EXPECT_EQ(1u, r.starts);
}

/* Runs a configured source against uri under load and checks everything arrived. */
void MigrateUnderLoad(Source &src, DestProcess &dest, const std::string &uri)
{
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str())) << rdmig_last_error(src.s);
	/* Credentials cannot change under a running migration. */
	EXPECT_EQ(-EBUSY, rdmig_set_tls(src.s, nullptr));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	ExpectMigrated(src, dest, st);
}

/* The source's migration fails; returns its error. */
std::string MigrateRefused(Source &src, const std::string &uri)
{
	rdmig_status st = RDMIG_STATUS_NONE;

	EXPECT_EQ(0, rdmig_migrate(src.s, uri.c_str())) << rdmig_last_error(src.s);
	EXPECT_EQ(0, rdmig_wait(src.s, 120000, &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	return rdmig_last_error(src.s);
}

/* A destination that only saw refused peers: not completed, and why. */
std::string DestRefusal(DestProcess &dest)
{
	PeerResult r;

	EXPECT_TRUE(dest.Result(&r, kRefusalWaitMs + 60000));
	EXPECT_NE(RDMIG_STATUS_COMPLETED, r.status);
	EXPECT_EQ(0u, r.starts) << "a refused source must not start the destination VM";
	return r.error;
}

TEST_F(Tls, PskMigration)
{
	guest_cfg cfg = SmallGuest(4);
	DestProcess dest;
	dest.tls = DestPsk(kPskHex);
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	SourcePsk(src.s, kPskHex);
	MigrateUnderLoad(src, dest, dest.Uri());
}

TEST_F(Tls, X509MigrationWithClientCertificate)
{
	MakePki("a");
	guest_cfg cfg = SmallGuest(4);
	DestProcess dest;
	dest.tls = DestX509("a", true);
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	SourceX509(src.s, "a", "a");
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_CHANNELS, 3));
	MigrateUnderLoad(src, dest, dest.Uri());
}

/*
 * Credentials that do not match: the source fails with a reason, the
 * destination refuses it (and never starts its VM). One row per mismatch;
 * wants lists what each side's error must mention.
 */
struct TlsRefusalCase {
	const char *name;
	const char *pki[2]; /* CAs to make first */
	/* Destination: PSK kPskHex, or x509 with dest_ca's server certificate. */
	const char *dest_ca; /* nullptr: PSK */
	bool dest_verify_peer;
	/* Source: PSK src_psk under src_identity, or x509 trusting src_ca. */
	const char *src_psk, *src_identity;
	const char *src_ca, *src_client, *src_hostname;
	const char *src_wants[2], *dest_wants[2];
};

const TlsRefusalCase kTlsRefusals[] = {
	{"WrongPsk", {}, nullptr, false, kOtherPskHex, kPskId, nullptr, nullptr, nullptr,
	 {"TLS", "PSK"}, {"refused", "TLS"}},
	{"UnknownPskIdentity", {}, nullptr, false, kPskHex, "someone-else", nullptr, nullptr,
	 nullptr, {"PSK"}, {"TLS"}},
	/* Signed by CA b; the source trusts only a. */
	{"CertificateOfAnotherCa", {"a", "b"}, "b", false, nullptr, nullptr, "a", "a",
	 "localhost", {"not trusted"}, {"TLS"}},
	{"CertificateForAnotherName", {"a"}, "a", false, nullptr, nullptr, "a", "a",
	 "migration-target.example", {"not trusted", "name"}, {}},
	/* The source trusts a, and presents a certificate of b. */
	{"ClientCertificateOfAnotherCa", {"a", "b"}, "a", true, nullptr, nullptr, "a", "b",
	 "localhost", {"TLS"}, {"no certificate signed by a CA"}},
};

class TlsRefusal : public Tls, public ::testing::WithParamInterface<TlsRefusalCase> {};

TEST_P(TlsRefusal, RefusedOnBothSides)
{
	const TlsRefusalCase &c = GetParam();
	for (const char *ca : c.pki) {
		if (ca) {
			ASSERT_NO_FATAL_FAILURE(MakePki(ca));
		}
	}
	if (IsSkipped())
		return; /* no certtool */
	guest_cfg cfg = SmallGuest(0);
	DestProcess dest;
	dest.tls = c.dest_ca ? DestX509(c.dest_ca, c.dest_verify_peer) : DestPsk(kPskHex);
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), kRefusalWaitMs));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	if (c.src_ca) {
		ASSERT_NO_FATAL_FAILURE(SourceX509(src.s, c.src_ca, c.src_client, c.src_hostname));
	} else {
		ASSERT_NO_FATAL_FAILURE(SourcePsk(src.s, c.src_psk, c.src_identity));
	}
	std::string err = MigrateRefused(src, dest.Uri());
	for (const char *w : c.src_wants) {
		if (w) {
			EXPECT_NE(std::string::npos, err.find(w)) << err;
		}
	}
	err = DestRefusal(dest);
	for (const char *w : c.dest_wants) {
		if (w) {
			EXPECT_NE(std::string::npos, err.find(w)) << err;
		}
	}
}

INSTANTIATE_TEST_SUITE_P(Mismatch, TlsRefusal, ::testing::ValuesIn(kTlsRefusals),
			 [](const ::testing::TestParamInfo<TlsRefusalCase> &i) { return i.param.name; });

TEST_F(Tls, PlaintextSourceRefusedThenTlsSourceMigrates)
{
	guest_cfg cfg = SmallGuest(4);
	DestProcess dest;
	dest.tls = DestPsk(kPskHex);
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	{
		Source plain;
		ASSERT_TRUE(plain.Create(cfg));
		std::string err = MigrateRefused(plain, dest.Uri());
		EXPECT_NE(std::string::npos, err.find("refused")) << err;
	}
	/* The listener is not blocked by the refused peer. */
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	SourcePsk(src.s, kPskHex);
	MigrateUnderLoad(src, dest, dest.Uri());
}

TEST_F(Tls, TlsSourceAgainstPlaintextDestinationRefused)
{
	guest_cfg cfg = SmallGuest(0);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), kRefusalWaitMs));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	SourcePsk(src.s, kPskHex);
	std::string err = MigrateRefused(src, dest.Uri());
	EXPECT_NE(std::string::npos, err.find("TLS")) << err;
	err = DestRefusal(dest);
	EXPECT_NE(std::string::npos, err.find("no TLS set")) << err;
}

/* A raw connection to 127.0.0.1:port that stays silent; -1 on failure. */
int SilentConnection(uint16_t port)
{
	sockaddr_in a{};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	if (fd >= 0 && connect(fd, (sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

TEST_F(Tls, SilentPeerDoesNotBlockTheListener)
{
	guest_cfg cfg = SmallGuest(4);
	DestProcess dest;
	dest.tls = DestPsk(kPskHex);
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	/* Connected first and never sends a ClientHello: the handshake waits alongside. */
	int silent = SilentConnection(dest.port);
	ASSERT_GE(silent, 0);
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	SourcePsk(src.s, kPskHex);
	MigrateUnderLoad(src, dest, dest.Uri());
	close(silent);
}

TEST_F(Tls, HandshakeHasADeadline)
{
	/* A listener that accepts (in the kernel) and never answers the ClientHello. */
	sockaddr_in a{};
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_GE(lfd, 0);
	ASSERT_EQ(0, bind(lfd, (sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, listen(lfd, 8));
	ASSERT_EQ(0, getsockname(lfd, (sockaddr *)&a, &len));

	Source src;
	ASSERT_TRUE(src.Create(SmallGuest(0)));
	SourcePsk(src.s, kPskHex);
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_PEER_TIMEOUT, 1000));
	std::string err = MigrateRefused(src, "tcp:127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
	EXPECT_NE(std::string::npos, err.find("TLS handshake")) << err;
	EXPECT_NE(std::string::npos, err.find("in time")) << err;
	close(lfd);
}

/*
 * A tcp relay between source and destination: every connection it accepts is
 * joined to a new one to the destination, and the source -> destination bytes
 * of all of them are kept.
 */
class Relay {
      public:
	bool Start(uint16_t dest_port)
	{
		sockaddr_in a{};
		socklen_t len = sizeof(a);

		dest_port_ = dest_port;
		lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (lfd_ < 0 || bind(lfd_, (sockaddr *)&a, sizeof(a)) || listen(lfd_, 64) ||
		    getsockname(lfd_, (sockaddr *)&a, &len) || pipe(stop_))
			return false;
		port = ntohs(a.sin_port);
		acceptor_ = std::thread([this] { AcceptLoop(); });
		return true;
	}

	~Relay()
	{
		if (acceptor_.joinable()) {
			(void)!write(stop_[1], "x", 1);
			acceptor_.join();
		}
		for (auto &t : pumps_)
			t.join();
		for (int fd : {lfd_, stop_[0], stop_[1]})
			if (fd >= 0)
				close(fd);
	}

	/* Everything the source sent so far, all connections one after another. */
	std::string Recorded()
	{
		std::lock_guard<std::mutex> g(mu_);
		std::string all;
		for (auto &s : streams_)
			all += s;
		return all;
	}

	uint16_t port = 0;

      private:
	void AcceptLoop()
	{
		for (;;) {
			pollfd p[2] = {{lfd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
			if (poll(p, 2, -1) < 0 || p[1].revents)
				return;
			int in = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (in < 0)
				continue;
			int out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			sockaddr_in a{};
			a.sin_family = AF_INET;
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			a.sin_port = htons(dest_port_);
			if (out < 0 || connect(out, (sockaddr *)&a, sizeof(a))) {
				close(in);
				if (out >= 0)
					close(out);
				continue;
			}
			size_t idx;
			{
				std::lock_guard<std::mutex> g(mu_);
				idx = streams_.size();
				streams_.emplace_back();
			}
			pumps_.emplace_back([this, in, out, idx] { Pump(in, out, idx); });
		}
	}

	/* Copies both ways until either side closes or the relay stops. */
	void Pump(int in, int out, size_t idx)
	{
		std::vector<char> buf(1 << 16);

		for (;;) {
			pollfd p[3] = {{in, POLLIN, 0}, {out, POLLIN, 0}, {stop_[0], POLLIN, 0}};
			if (poll(p, 3, -1) < 0 || p[2].revents)
				break;
			bool done = false;
			for (int i = 0; i < 2 && !done; i++) {
				if (!p[i].revents)
					continue;
				ssize_t n = read(p[i].fd, buf.data(), buf.size());
				if (n <= 0) {
					done = true;
					break;
				}
				if (i == 0) {
					std::lock_guard<std::mutex> g(mu_);
					streams_[idx].append(buf.data(), (size_t)n);
				}
				for (ssize_t off = 0; off < n && !done;) {
					ssize_t w = send(p[1 - i].fd, buf.data() + off, (size_t)(n - off),
							 MSG_NOSIGNAL);
					if (w <= 0)
						done = true;
					else
						off += w;
				}
			}
			if (done)
				break;
		}
		close(in);
		close(out);
	}

	int lfd_ = -1, stop_[2] = {-1, -1};
	uint16_t dest_port_ = 0;
	std::thread acceptor_;
	std::vector<std::thread> pumps_;
	std::mutex mu_;
	std::vector<std::string> streams_;
};

/* Migrates an idle guest carrying a 64-byte marker through a relay; true if the
 * marker was seen in the recorded stream. */
void MigrateThroughRelay(bool tls, bool *seen)
{
	guest_cfg cfg = SmallGuest(0);
	DestProcess dest;
	if (tls)
		dest.tls = DestPsk(kPskHex);
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Relay relay;
	ASSERT_TRUE(relay.Start(dest.port));
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	if (tls)
		SourcePsk(src.s, kPskHex);

	char marker[64];
	for (unsigned i = 0; i < sizeof(marker); i++)
		marker[i] = (char)("rdmig-tls-wire-marker-"[i % 22] ^ (i / 22));
	memcpy((char *)guest_block_ptr(src.g, 0) + 5 * 4096 + 123, marker, sizeof(marker));

	std::string uri = "tcp:127.0.0.1:" + std::to_string(relay.port);
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str())) << rdmig_last_error(src.s);
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	ExpectMigrated(src, dest, st);
	std::string wire = relay.Recorded();
	ASSERT_GT(wire.size(), guest_block_len(src.g, 0) / 2) << "the relay saw too little";
	*seen = memmem(wire.data(), wire.size(), marker, sizeof(marker)) != nullptr;
}

TEST_F(Tls, MarkerOnTheWireWithoutTls)
{
	bool seen = false;
	MigrateThroughRelay(false, &seen);
	EXPECT_TRUE(seen) << "without TLS the marker must be visible (else the check proves nothing)";
}

TEST_F(Tls, MarkerNotOnTheWireWithTls)
{
	bool seen = true;
	MigrateThroughRelay(true, &seen);
	EXPECT_FALSE(seen) << "guest RAM crossed the relay in clear";
}

/* The options themselves: no peer needed, any transport. */
TEST(TlsApi, BadFilesAreErrorsAtSetTime)
{
	rdmig_session *s;
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, nullptr, nullptr, &s));
	rdmig_tls_opts o{};
	o.size = sizeof(o);
	o.creds = RDMIG_TLS_X509;
	o.ca_file = "/nonexistent/ca.pem";
	EXPECT_EQ(-ENOENT, rdmig_set_tls(s, &o));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(s), "/nonexistent/ca.pem")) << rdmig_last_error(s);

	o.ca_file = "/etc/hostname"; /* readable, not a certificate */
	EXPECT_EQ(-EINVAL, rdmig_set_tls(s, &o));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(s), "CA file")) << rdmig_last_error(s);

	o.ca_file = nullptr; /* a source must be able to check the destination */
	EXPECT_EQ(-EINVAL, rdmig_set_tls(s, &o));

	rdmig_tls_opts p{};
	p.size = sizeof(p);
	p.creds = RDMIG_TLS_PSK;
	p.psk_identity = kPskId;
	p.psk_key = "short";
	p.psk_key_len = 5;
	EXPECT_EQ(-EINVAL, rdmig_set_tls(s, &p));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(s), "key")) << rdmig_last_error(s);

	p.creds = (rdmig_tls_creds)7;
	EXPECT_EQ(-EINVAL, rdmig_set_tls(s, &p));
	p.size = 0;
	EXPECT_EQ(-EINVAL, rdmig_set_tls(s, &p));
	EXPECT_EQ(0, rdmig_set_tls(s, nullptr));
	rdmig_session_destroy(s);
}

TEST(TlsApi, DestinationNeedsACertificate)
{
	rdmig_session *s;
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_DEST, nullptr, nullptr, &s));
	rdmig_tls_opts o{};
	o.size = sizeof(o);
	o.creds = RDMIG_TLS_X509;
	EXPECT_EQ(-EINVAL, rdmig_set_tls(s, &o));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(s), "certificate")) << rdmig_last_error(s);
	rdmig_session_destroy(s);
}

TEST(TlsApi, RdmaWithTlsIsRefused)
{
	std::string key = Unhex(kPskHex);
	static char ram[1 << 16] __attribute__((aligned(4096)));
	rdmig_session *s;

	for (int role = 0; role < 2; role++) {
		ASSERT_EQ(0, rdmig_session_create(role ? RDMIG_ROLE_DEST : RDMIG_ROLE_SOURCE,
						  nullptr, nullptr, &s));
		ASSERT_EQ(0, rdmig_add_block(s, "ram0", ram, sizeof(ram), 4096));
		rdmig_tls_opts o{};
		o.size = sizeof(o);
		o.creds = RDMIG_TLS_PSK;
		o.psk_identity = kPskId;
		o.psk_key = key.data();
		o.psk_key_len = key.size();
		ASSERT_EQ(0, rdmig_set_tls(s, &o)) << rdmig_last_error(s);
		int ret = role ? rdmig_incoming(s, "rdma:127.0.0.1:0")
			       : rdmig_migrate(s, "rdma:127.0.0.1:4444");
		EXPECT_EQ(-ENOTSUP, ret);
		EXPECT_NE(nullptr, strstr(rdmig_last_error(s), "rdma data path cannot be encrypted"))
			<< rdmig_last_error(s);
		rdmig_session_destroy(s);
	}
}

} // namespace
