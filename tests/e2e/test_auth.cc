/* SPDX-License-Identifier: MIT */
/*
 * Authenticated sessions end to end, over the transport named by
 * RDMIG_TEST_TRANSPORT: the right secret migrates (memory checked by CRC32),
 * a wrong or missing secret is refused on both sides with nothing written,
 * strangers that come first (refused, or left half-open) do not keep the
 * real source out, and validate-uuid refuses another VM.
 */
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "control/auth.h"
#include "control/msg.h"
#include "harness.h"
#include "rdma_stranger.h"

namespace {

using Auth = TransportTest;
using Clock = std::chrono::steady_clock;

const std::string kSecret = "per-migration secret, handed out of band";
const std::string kWrong = "per-migration secret, handed out of bane";
const std::string kUuidA = std::string("\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x01", 16);
const std::string kUuidB = std::string("\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x02", 16);

/* How long a destination that must refuse waits before it reports. */
int RefusalWaitMs()
{
	return TestTransport() == "rdma" ? 40000 : 12000;
}

bool PinAll()
{
	const char *p = getenv("RDMIG_TEST_PIN_ALL");
	return p && *p == '1';
}

void Prepare(Source &src, const guest_cfg &cfg, const std::string &secret,
	     const std::string &uuid = "")
{
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_capability(src.s, RDMIG_CAP_RDMA_PIN_ALL, PinAll()));
	if (!secret.empty()) {
		ASSERT_EQ(0, rdmig_set_secret(src.s, secret.data(), secret.size()))
			<< rdmig_last_error(src.s);
	}
	if (!uuid.empty()) {
		ASSERT_EQ(0, rdmig_set_vm_uuid(src.s, reinterpret_cast<const uint8_t *>(uuid.data())));
	}
}

/* The source migrates and every block and the device state arrive. */
void ExpectMigrated(Source &src, DestProcess &dest)
{
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, dest.Uri().c_str())) << rdmig_last_error(src.s);
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 300000, &st));
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src.s) << "; destination: " << r.error;
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, r.status) << r.error;
	EXPECT_EQ(1u, r.starts);
	ASSERT_EQ(guest_nblocks(src.g), r.nblocks);
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(src.g, i), r.crc[i]) << "block " << i << " differs";
	EXPECT_EQ(guest_devstate_crc(src.g), r.devcrc);
}

/* The source is refused with `want` in its error, never stops its VM, sends no RAM. */
void ExpectSourceRefused(Source &src, const std::string &uri, const char *want)
{
	ASSERT_EQ(0, guest_start_workload(src.g));
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str())) << rdmig_last_error(src.s);
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(src.s, 60000, &st));
	EXPECT_EQ(RDMIG_STATUS_FAILED, st);
	EXPECT_NE(nullptr, strstr(rdmig_last_error(src.s), want)) << rdmig_last_error(src.s);
	rdmig_stats stats = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(src.s, &stats));
	EXPECT_EQ(0u, stats.ram_transferred) << "no RAM may move before authentication";
	struct guest_counters gc;
	guest_counters(src.g, &gc);
	EXPECT_EQ(0u, gc.stops);
	EXPECT_TRUE(gc.running);
}

/* The destination's memory is what it started with: nothing was written. */
void ExpectUntouched(const guest_cfg &cfg, const PeerResult &r)
{
	guest *fresh = nullptr;
	ASSERT_EQ(0, guest_create(&cfg, true, &fresh));
	ASSERT_EQ(guest_nblocks(fresh), r.nblocks);
	for (unsigned i = 0; i < r.nblocks; i++)
		EXPECT_EQ(guest_block_crc(fresh, i), r.crc[i]) << "block " << i << " was written";
	guest_destroy(fresh);
	EXPECT_EQ(0u, r.starts) << "a refused destination must never start";
}

/* A refused destination keeps waiting: it reports only when its wait runs out. */
void ExpectDestStillWaiting(DestProcess &dest, const guest_cfg &cfg, const char *want)
{
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, RefusalWaitMs() + 30000));
	EXPECT_EQ(RDMIG_STATUS_SETUP, r.status) << r.error;
	EXPECT_NE(nullptr, strstr(r.error, want)) << r.error;
	ExpectUntouched(cfg, r);
}

int RawConnect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr *>(&sin), sizeof(sin))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A valid control-channel hello for a session of two data channels that never come. */
bool SendHalfOpenHello(int fd)
{
	rdm_msg m{};
	uint8_t buf[64];
	size_t len = 0;
	m.type = RDM_MSG_CHANNEL;
	m.u.channel = {RDM_WIRE_MAGIC, RDM_WIRE_VERSION, 0, 2, 0x1 /* control */, 0x5742414e47455221ull};
	return rdm_msg_encode(&m, buf, sizeof(buf), &len) == 0 &&
	       send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* True when the peer closed fd within timeout_ms. */
bool ClosedWithin(int fd, int timeout_ms)
{
	auto t0 = Clock::now();
	for (;;) {
		int left = timeout_ms - (int)std::chrono::duration_cast<std::chrono::milliseconds>(
						Clock::now() - t0).count();
		pollfd pfd = {fd, POLLIN, 0};
		char c[256];
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return false;
		ssize_t n = recv(fd, c, sizeof(c), 0);
		if (n <= 0)
			return true;
		/* An ERROR frame may come first: read on to the close. */
	}
}

} // namespace

TEST_F(Auth, RightSecretMigratesWithMemoryVerified)
{
	guest_cfg cfg = DefaultGuest(24, 8);
	DestProcess dest;
	dest.secret = kSecret;
	dest.uuid = kUuidA;
	dest.validate_uuid = true;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(Prepare(src, cfg, kSecret, kUuidA));
	ExpectMigrated(src, dest);
}

namespace {

/*
 * A secret on one side that the other cannot match: both sides refuse, the
 * source sends no RAM and the destination keeps waiting with nothing written.
 * The source never sends RAM to a destination that cannot prove the secret.
 */
struct SecretRefusal {
	const char *name;
	const std::string *dest_secret; /* nullptr: none */
	const std::string *src_secret;
};

const SecretRefusal kSecretRefusals[] = {
	{"WrongSecret", &kSecret, &kWrong},
	{"SourceWithoutSecret", &kSecret, nullptr},
	{"DestinationWithoutSecret", nullptr, &kSecret},
};

class AuthRefusal : public ::testing::TestWithParam<SecretRefusal> {
      protected:
	void SetUp() override
	{
		std::string why = NoTransportReason();
		if (!why.empty())
			GTEST_SKIP() << why;
	}
};

TEST_P(AuthRefusal, RefusedOnBothSidesNothingWritten)
{
	const SecretRefusal &c = GetParam();
	guest_cfg cfg = DefaultGuest(8, 0);
	DestProcess dest;
	if (c.dest_secret)
		dest.secret = *c.dest_secret;
	/* It reports a second after the refusal (or at RefusalWaitMs() without one). */
	ChildOpts o;
	snprintf(o.report_on_news, sizeof(o.report_on_news), "authentication failed");
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), o, RefusalWaitMs()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(Prepare(src, cfg, c.src_secret ? *c.src_secret : ""));
	ExpectSourceRefused(src, dest.Uri(), "authentication failed");
	ExpectDestStillWaiting(dest, cfg, "authentication failed");
}

INSTANTIATE_TEST_SUITE_P(Secret, AuthRefusal, ::testing::ValuesIn(kSecretRefusals),
			 [](const ::testing::TestParamInfo<SecretRefusal> &i) { return i.param.name; });

} // namespace

/* Neither side has a secret: unauthenticated, as before. */
TEST_F(Auth, NoSecretOnEitherSideStillMigrates)
{
	guest_cfg cfg = DefaultGuest(16, 4);
	DestProcess dest;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(Prepare(src, cfg, ""));
	ExpectMigrated(src, dest);
}

/*
 * Strangers first: an rdmig source with a wrong secret (refused), and one
 * left half-open (a raw socket on tcp, a lone control QP on rdma); then the
 * real source gets in and migrates.
 */
TEST_F(Auth, StrangersFirstThenTheRealSourceMigrates)
{
	guest_cfg cfg = DefaultGuest(16, 4);
	DestProcess dest;
	dest.secret = kSecret;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));

	Source stranger;
	ASSERT_NO_FATAL_FAILURE(Prepare(stranger, cfg, kWrong));
	ExpectSourceRefused(stranger, dest.Uri(), "authentication failed");

	int raw = -1;
	RdmaStranger rs;
	if (TestTransport() == "tcp") {
		raw = RawConnect(dest.port);
		ASSERT_GE(raw, 0);
	} else {
		/* Without a proof its first QP is rejected at once, with the reason. */
		EXPECT_EQ(-ECONNREFUSED, rs.Connect(TestHost(), dest.port, 3)) << rs.err;
		EXPECT_NE(std::string::npos, rs.err.find("authentication failed")) << rs.err;
	}

	Source src;
	ASSERT_NO_FATAL_FAILURE(Prepare(src, cfg, kSecret));
	ExpectMigrated(src, dest);
	if (raw >= 0)
		close(raw);
}

/* Strangers that connect and then say nothing more (see the test below). */
struct HalfOpen {
	int silent = -1, half = -1;
	RdmaStranger rs;

	~HalfOpen()
	{
		if (silent >= 0)
			close(silent);
		if (half >= 0)
			close(half);
	}
	void Open(uint16_t port)
	{
		if (TestTransport() == "tcp") {
			silent = RawConnect(port);
			half = RawConnect(port);
			ASSERT_GE(silent, 0);
			ASSERT_GE(half, 0);
			ASSERT_TRUE(SendHalfOpenHello(half));
		} else {
			ASSERT_EQ(0, rs.Connect(TestHost(), port, 3)) << rs.err;
		}
	}
	void ExpectDropped(int limit_ms)
	{
		if (TestTransport() == "tcp") {
			EXPECT_TRUE(ClosedWithin(silent, limit_ms)) << "the silent socket was never dropped";
			EXPECT_TRUE(ClosedWithin(half, limit_ms)) << "the half session was never dropped";
		} else {
			EXPECT_TRUE(rs.WaitDisconnected(limit_ms))
				<< "the lone control QP was never dropped: " << rs.err;
		}
	}
};

/*
 * A stranger that sends a valid hello and then nothing holds only a half
 * session: dropped at its deadline, and the real source gets in while one is
 * pending. Unauthenticated, so the hello gets as far as a hello can.
 */
TEST_F(Auth, SilentHalfOpenIsDroppedAtItsDeadlineAndDoesNotBlock)
{
	const int deadline_ms = 2000;
	guest_cfg cfg = DefaultGuest(16, 4);
	DestProcess dest;
	dest.peer_timeout_ms = deadline_ms;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost()));

	/* Dropped at the deadline: not before half of it, and (generously) not never. */
	HalfOpen first;
	auto t0 = Clock::now();
	ASSERT_NO_FATAL_FAILURE(first.Open(dest.port));
	first.ExpectDropped(deadline_ms * 10);
	auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
	EXPECT_GE(took, deadline_ms / 2) << "dropped before its deadline";

	/* Pending strangers do not keep the real source out. */
	HalfOpen second;
	ASSERT_NO_FATAL_FAILURE(second.Open(dest.port));
	Source src;
	ASSERT_NO_FATAL_FAILURE(Prepare(src, cfg, ""));
	ExpectMigrated(src, dest);
}

TEST_F(Auth, UuidMismatchRefusedOnBothSides)
{
	guest_cfg cfg = DefaultGuest(8, 0);
	DestProcess dest;
	dest.secret = kSecret;
	dest.uuid = kUuidA;
	dest.validate_uuid = true;
	ASSERT_TRUE(dest.Spawn(cfg, TestHost(), RefusalWaitMs()));
	Source src;
	ASSERT_NO_FATAL_FAILURE(Prepare(src, cfg, kSecret, kUuidB));
	ExpectSourceRefused(src, dest.Uri(), "validate-uuid");
	EXPECT_NE(nullptr, strstr(rdmig_last_error(src.s), "11223344-5566-7788-99aa-bbccddeeff02"))
		<< rdmig_last_error(src.s);
	PeerResult r;
	ASSERT_TRUE(dest.Result(&r, 60000));
	EXPECT_EQ(RDMIG_STATUS_FAILED, r.status) << r.error;
	EXPECT_NE(nullptr, strstr(r.error, "validate-uuid")) << r.error;
	ExpectUntouched(cfg, r);
}

TEST_F(Auth, SecretLengthChecked)
{
	guest_cfg cfg = DefaultGuest(8, 0);
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	EXPECT_EQ(-EINVAL, rdmig_set_secret(src.s, "short", 5));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(src.s), "16..1024")) << rdmig_last_error(src.s);
	std::string big(1025, 'x');
	EXPECT_EQ(-EINVAL, rdmig_set_secret(src.s, big.data(), big.size()));
	EXPECT_EQ(-EINVAL, rdmig_set_secret(src.s, nullptr, 32));
	EXPECT_EQ(-EINVAL, rdmig_set_vm_uuid(src.s, nullptr));
	EXPECT_EQ(0, rdmig_set_secret(src.s, big.data(), 1024));
	EXPECT_EQ(0, rdmig_set_secret(src.s, big.data(), 16));
}

/* -EBUSY while a migration runs: here one that waits on a listener that never answers. */
TEST_F(Auth, SettersBusyDuringAMigration)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_GE(l, 0);
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sin);
	ASSERT_EQ(0, bind(l, reinterpret_cast<sockaddr *>(&sin), sizeof(sin)));
	ASSERT_EQ(0, listen(l, 8)); /* the kernel completes connects; nobody answers */
	ASSERT_EQ(0, getsockname(l, reinterpret_cast<sockaddr *>(&sin), &sl));

	guest_cfg cfg = DefaultGuest(8, 0);
	Source src;
	ASSERT_TRUE(src.Create(cfg));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_PEER_TIMEOUT, 5000));
	std::string uri = "tcp:127.0.0.1:" + std::to_string(ntohs(sin.sin_port));
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str()));
	EXPECT_EQ(-EBUSY, rdmig_set_secret(src.s, kSecret.data(), kSecret.size()));
	EXPECT_EQ(-EBUSY, rdmig_set_vm_uuid(src.s, reinterpret_cast<const uint8_t *>(kUuidA.data())));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(src.s), "in progress")) << rdmig_last_error(src.s);
	ASSERT_EQ(0, rdmig_cancel(src.s));
	rdmig_status st;
	EXPECT_EQ(0, rdmig_wait(src.s, 30000, &st));
	close(l);
}

TEST_F(Auth, ValidateUuidNeedsTheDestinationsUuid)
{
	guest_cfg cfg = DefaultGuest(8, 0);
	guest *g = nullptr;
	ASSERT_EQ(0, guest_create(&cfg, true, &g));
	rdmig_callbacks cb;
	guest_callbacks(g, &cb);
	rdmig_session *s = nullptr;
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_DEST, &cb, g, &s));
	ASSERT_EQ(0, guest_add_blocks(g, s));
	ASSERT_EQ(0, rdmig_set_capability(s, RDMIG_CAP_VALIDATE_UUID, true));
	std::string uri = TestTransport() + ":" + TestHost() + ":0";
	EXPECT_EQ(-EINVAL, rdmig_incoming(s, uri.c_str()));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(s), "rdmig_set_vm_uuid")) << rdmig_last_error(s);
	rdmig_session_destroy(s);
	guest_destroy(g);
}
