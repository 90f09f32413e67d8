// SPDX-License-Identifier: MIT
// control/auth: HMAC-SHA256 against RFC 4231, constant-time compare, and the proofs.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "control/auth.h"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes hex(const std::string &h)
{
	Bytes b;
	for (size_t i = 0; i + 1 < h.size(); i += 2)
		b.push_back(uint8_t(std::stoul(h.substr(i, 2), nullptr, 16)));
	return b;
}

struct Vector {
	Bytes key, data;
	std::string mac; // hex, possibly truncated (test case 5)
};

// RFC 4231 section 4, HMAC-SHA-256 results.
std::vector<Vector> rfc4231()
{
	std::string c3(100, 'x'), c4(100, 'x');
	Bytes d3(50, 0xdd), d4(50, 0xcd);
	std::string t6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	std::string t7 = "This is a test using a larger than block-size key and a larger than "
			 "block-size data. The key needs to be hashed before being used by the "
			 "HMAC algorithm.";
	std::string t2 = "what do ya want for nothing?";
	std::string t1 = "Hi There";
	std::string t5 = "Test With Truncation";
	return {
		{Bytes(20, 0x0b), Bytes(t1.begin(), t1.end()),
		 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{Bytes{'J', 'e', 'f', 'e'}, Bytes(t2.begin(), t2.end()),
		 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{Bytes(20, 0xaa), d3, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
		{hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), d4,
		 "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
		{Bytes(20, 0x0c), Bytes(t5.begin(), t5.end()), "a3b6167473100ee06e0c796c2955552b"},
		{Bytes(131, 0xaa), Bytes(t6.begin(), t6.end()),
		 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
		{Bytes(131, 0xaa), Bytes(t7.begin(), t7.end()),
		 "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
	};
}

} // namespace

TEST(Hmac, Rfc4231KnownAnswers)
{
	int n = 0;
	for (const auto &v : rfc4231()) {
		uint8_t mac[RDM_AUTH_MAC_LEN];
		SCOPED_TRACE("test case " + std::to_string(++n));
		ASSERT_EQ(0, rdm_auth_hmac(v.key.data(), v.key.size(), v.data.data(), v.data.size(), mac));
		Bytes want = hex(v.mac);
		EXPECT_EQ(Bytes(mac, mac + want.size()), want);
	}
}

TEST(Hmac, Sha256KnownAnswer)
{
	uint8_t d[RDM_AUTH_MAC_LEN];
	ASSERT_EQ(0, rdm_auth_sha256("abc", 3, d)); // FIPS 180-2 appendix B.1
	EXPECT_EQ(Bytes(d, d + 32),
		  hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

TEST(Equal, ComparesEveryByte)
{
	uint8_t a[32], b[32];
	std::memset(a, 7, sizeof(a));
	std::memcpy(b, a, sizeof(b));
	EXPECT_TRUE(rdm_auth_equal(a, b, 32));
	for (size_t i = 0; i < 32; i++) {
		b[i] ^= 0x80;
		EXPECT_FALSE(rdm_auth_equal(a, b, 32)) << i;
		b[i] ^= 0x80;
	}
	EXPECT_TRUE(rdm_auth_equal(a, b, 0));
}

TEST(Random, NoncesDiffer)
{
	uint8_t a[RDM_AUTH_NONCE_LEN] = {}, b[RDM_AUTH_NONCE_LEN] = {};
	ASSERT_EQ(0, rdm_auth_random(a, sizeof(a)));
	ASSERT_EQ(0, rdm_auth_random(b, sizeof(b)));
	EXPECT_NE(0, std::memcmp(a, b, sizeof(a)));
}

namespace {

rdm_auth_bind sample_bind()
{
	rdm_auth_bind b{};
	std::memset(b.nonce_src, 1, sizeof(b.nonce_src));
	std::memset(b.nonce_dst, 2, sizeof(b.nonce_dst));
	b.token = 0x1122334455667788ull;
	std::memset(b.blocks, 3, sizeof(b.blocks));
	b.flags = RDM_AUTH_F_UUID | RDM_AUTH_F_MAC;
	std::memset(b.uuid, 4, sizeof(b.uuid));
	return b;
}

const char kKey[] = "0123456789abcdef-secret";

Bytes session_mac(enum rdm_auth_dir dir, const rdm_auth_bind &b, const char *key = kKey)
{
	uint8_t mac[RDM_AUTH_MAC_LEN];
	EXPECT_EQ(0, rdm_auth_session_mac(key, strlen(key), dir, &b, mac));
	return Bytes(mac, mac + sizeof(mac));
}

} // namespace

TEST(SessionProof, DirectionsDifferSoAProofCannotBeReflected)
{
	rdm_auth_bind b = sample_bind();
	EXPECT_NE(session_mac(RDM_AUTH_FROM_SOURCE, b), session_mac(RDM_AUTH_FROM_DEST, b));
	EXPECT_EQ(session_mac(RDM_AUTH_FROM_SOURCE, b), session_mac(RDM_AUTH_FROM_SOURCE, b));
}

TEST(SessionProof, EveryBoundFieldChangesTheMac)
{
	const rdm_auth_bind base = sample_bind();
	const Bytes ref = session_mac(RDM_AUTH_FROM_SOURCE, base);
	std::vector<std::function<void(rdm_auth_bind &)>> edits = {
		[](rdm_auth_bind &b) { b.nonce_src[0] ^= 1; },
		[](rdm_auth_bind &b) { b.nonce_dst[31] ^= 1; },
		[](rdm_auth_bind &b) { b.token ^= 1ull << 63; },
		[](rdm_auth_bind &b) { b.blocks[5] ^= 1; },
		[](rdm_auth_bind &b) { b.flags ^= RDM_AUTH_F_UUID; },
		[](rdm_auth_bind &b) { b.uuid[15] ^= 1; },
		// Swapping the nonces must not give the same proof either.
		[](rdm_auth_bind &b) { std::swap(b.nonce_src, b.nonce_dst); },
	};
	for (size_t i = 0; i < edits.size(); i++) {
		rdm_auth_bind b = base;
		edits[i](b);
		EXPECT_NE(session_mac(RDM_AUTH_FROM_SOURCE, b), ref) << "edit " << i;
	}
	EXPECT_NE(session_mac(RDM_AUTH_FROM_SOURCE, base, "0123456789abcdef-secreT"), ref);
}

TEST(ChannelProof, BindsTokenIndexCountAndFlags)
{
	uint8_t ref[RDM_CHAN_MAC_LEN], m[RDM_CHAN_MAC_LEN];
	const size_t kl = strlen(kKey);
	ASSERT_EQ(0, rdm_auth_channel_mac(kKey, kl, 77, 1, 3, 0, ref));
	ASSERT_EQ(0, rdm_auth_channel_mac(kKey, kl, 77, 1, 3, 0, m));
	EXPECT_EQ(0, std::memcmp(ref, m, sizeof(m)));
	ASSERT_EQ(0, rdm_auth_channel_mac(kKey, kl, 78, 1, 3, 0, m));
	EXPECT_NE(0, std::memcmp(ref, m, sizeof(m)));
	ASSERT_EQ(0, rdm_auth_channel_mac(kKey, kl, 77, 2, 3, 0, m));
	EXPECT_NE(0, std::memcmp(ref, m, sizeof(m)));
	ASSERT_EQ(0, rdm_auth_channel_mac(kKey, kl, 77, 1, 4, 0, m));
	EXPECT_NE(0, std::memcmp(ref, m, sizeof(m)));
	ASSERT_EQ(0, rdm_auth_channel_mac(kKey, kl, 77, 1, 3, 1, m));
	EXPECT_NE(0, std::memcmp(ref, m, sizeof(m)));
	ASSERT_EQ(0, rdm_auth_channel_mac(kKey, kl - 1, 77, 1, 3, 0, m));
	EXPECT_NE(0, std::memcmp(ref, m, sizeof(m)));
}
