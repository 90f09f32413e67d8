// SPDX-License-Identifier: MIT
// The wire codec: every field a peer can send out of range, per message type.
#include "control_util.h"

// ---- fields out of range, as a peer would send them ----

namespace {
Frame block_entry(Frame f, const std::string &name, uint64_t len, uint32_t ps)
{
	return f.u16(uint16_t(name.size())).str(name).u64(len).u32(ps);
}
Bytes one_block(const std::string &name, uint64_t len, uint32_t ps)
{
	return block_entry(Frame().u32(1), name, len, ps).frame(RDM_MSG_BLOCKS);
}
} // namespace

TEST(Hello, BadMagicRefused)
{
	Frame h;
	h.u32(RDM_WIRE_MAGIC ^ 1).u16(1).u16(0).u64(0);
	EXPECT_EQ(decode(h.frame(RDM_MSG_HELLO)), -EBADMSG);
}

TEST(Hello, VersionIsReportedNotJudged)
{
	Frame h;
	h.u32(RDM_WIRE_MAGIC).u16(0xbeef).u16(0).u64(1ull << 63);
	rdm_msg m;
	ASSERT_EQ(decode(h.frame(RDM_MSG_HELLO), &m), 0);
	EXPECT_EQ(m.u.hello.version, 0xbeef);
	EXPECT_EQ(m.u.hello.features, 1ull << 63);
}

TEST(Blocks, PageSizeMustBePowerOfTwoAtLeast512)
{
	EXPECT_EQ(decode(one_block("ram", 4096 * 3, 4096)), 0);
	EXPECT_EQ(decode(one_block("ram", 512, 512)), 0);
	for (uint32_t ps : {0u, 1u, 256u, 3000u, 4097u, 6144u, 0xffffffffu})
		EXPECT_EQ(decode(one_block("ram", uint64_t(ps) * 4, ps)), -EBADMSG) << ps;
}

TEST(Blocks, LengthNonZeroMultipleOfPageSize)
{
	EXPECT_EQ(decode(one_block("ram", 0, 4096)), -EBADMSG);
	EXPECT_EQ(decode(one_block("ram", 4096 + 512, 4096)), -EBADMSG);
	EXPECT_EQ(decode(one_block("ram", UINT64_MAX, 4096)), -EBADMSG);
}

TEST(Blocks, NameLengthAndContent)
{
	EXPECT_EQ(decode(one_block(std::string(255, 'a'), 4096, 4096)), 0);
	EXPECT_EQ(decode(one_block("", 4096, 4096)), -EBADMSG);
	Frame two = block_entry(block_entry(Frame().u32(2), "", 4096, 4096), "abc", 4096, 4096);
	EXPECT_EQ(decode(two.frame(RDM_MSG_BLOCKS)), -EBADMSG);
	EXPECT_EQ(decode(one_block(std::string(256, 'a'), 4096, 4096)), -EBADMSG);
	EXPECT_EQ(decode(one_block(std::string("a\0b", 3), 4096, 4096)), -EBADMSG);
	EXPECT_EQ(decode(one_block(std::string("ab\0", 3), 4096, 4096)), -EBADMSG);
}

TEST(Blocks, CountMustMatchEntries)
{
	Frame two = block_entry(block_entry(Frame(), "a", 4096, 4096), "b", 4096, 4096);
	Frame f;
	f.u32(2);
	f.b.insert(f.b.end(), two.b.begin(), two.b.end());
	EXPECT_EQ(decode(f.frame(RDM_MSG_BLOCKS)), 0);
	rdm_put_u32(f.b.data(), 3); // more entries announced than present
	EXPECT_EQ(decode(f.frame(RDM_MSG_BLOCKS)), -EBADMSG);
	rdm_put_u32(f.b.data(), 1); // second entry left over
	EXPECT_EQ(decode(f.frame(RDM_MSG_BLOCKS)), -EBADMSG);
	rdm_put_u32(f.b.data(), UINT32_MAX);
	EXPECT_EQ(decode(f.frame(RDM_MSG_BLOCKS)), -EBADMSG);
}

TEST(Blocks, NameLengthPastEndOfFrame)
{
	Frame f;
	f.u32(1).u16(200).str("short").u64(4096).u32(4096);
	EXPECT_EQ(decode(f.frame(RDM_MSG_BLOCKS)), -EBADMSG);
}

TEST(Blocks, AtMostMaxBlocks)
{
	Frame f;
	f.u32(RDM_MAX_BLOCKS + 1);
	for (uint32_t i = 0; i <= RDM_MAX_BLOCKS; i++)
		f = block_entry(std::move(f), "b" + std::to_string(i), 4096, 4096);
	EXPECT_EQ(decode(f.frame(RDM_MSG_BLOCKS)), -EBADMSG);
	Frame g;
	g.u32(RDM_MAX_BLOCKS);
	for (uint32_t i = 0; i < RDM_MAX_BLOCKS; i++)
		g = block_entry(std::move(g), "b" + std::to_string(i), 4096, 4096);
	rdm_msg m;
	ASSERT_EQ(decode(g.frame(RDM_MSG_BLOCKS), &m), 0);
	EXPECT_EQ(m.u.blocks.count, RDM_MAX_BLOCKS);
}

TEST(ZeroRuns, CountMustMatchLength)
{
	Frame f;
	f.u32(0).u32(2).u64(0).u32(1).u64(10).u32(1);
	EXPECT_EQ(decode(f.frame(RDM_MSG_ZERO_RUNS)), 0);
	rdm_put_u32(f.b.data() + 4, 3);
	EXPECT_EQ(decode(f.frame(RDM_MSG_ZERO_RUNS)), -EBADMSG);
	rdm_put_u32(f.b.data() + 4, 1);
	EXPECT_EQ(decode(f.frame(RDM_MSG_ZERO_RUNS)), -EBADMSG);
	// (2 + 2^30) * 12 wraps to 24 in 32-bit arithmetic: it must not match 2 runs.
	rdm_put_u32(f.b.data() + 4, 0x40000002u);
	EXPECT_EQ(decode(f.frame(RDM_MSG_ZERO_RUNS)), -EBADMSG);
	f.u32(0); // 4 bytes that are not a whole run
	rdm_put_u32(f.b.data() + 4, 2);
	EXPECT_EQ(decode(f.frame(RDM_MSG_ZERO_RUNS)), -EBADMSG);
}

TEST(ZeroRuns, EmptyRunAndOverflowRefused)
{
	EXPECT_EQ(decode(Frame().u32(0).u32(1).u64(5).u32(0).frame(RDM_MSG_ZERO_RUNS)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).u32(1).u64(UINT64_MAX).u32(1).frame(RDM_MSG_ZERO_RUNS)),
		  -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).u32(1).u64(UINT64_MAX - 10).u32(10).frame(RDM_MSG_ZERO_RUNS)),
		  0);
	EXPECT_EQ(decode(Frame().u32(0).u32(1).u64(UINT64_MAX - 10).u32(11).frame(RDM_MSG_ZERO_RUNS)),
		  -EBADMSG);
}

TEST(Bitmap, WordCountIsCeilNbitsOver64)
{
	EXPECT_EQ(decode(Frame().u32(0).u64(65).u64(0).u64(1).frame(RDM_MSG_RP_RECV_BITMAP)), 0);
	EXPECT_EQ(decode(Frame().u32(0).u64(65).u64(0).frame(RDM_MSG_RP_RECV_BITMAP)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).u64(64).u64(0).u64(0).frame(RDM_MSG_RP_RECV_BITMAP)),
		  -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).u64(64).u64(0).u32(0).frame(RDM_MSG_RP_RECV_BITMAP)),
		  -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).u64(UINT64_MAX).u64(0).frame(RDM_MSG_RP_RECV_BITMAP)),
		  -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).u64(0).frame(RDM_MSG_RP_RECV_BITMAP)), 0);
}

TEST(Bitmap, PaddingBitsRefusedOnDecodeMaskedOnEncode)
{
	EXPECT_EQ(decode(Frame().u32(0).u64(65).u64(0).u64(2).frame(RDM_MSG_RP_RECV_BITMAP)),
		  -EBADMSG);
	uint64_t w[2] = {1, ~0ull};
	rdm_msg m{};
	m.type = RDM_MSG_RP_RECV_BITMAP;
	m.u.bitmap = {3, 65, w, nullptr};
	EXPECT_EQ(encode(m), Frame().u32(3).u64(65).u64(1).u64(1).frame(RDM_MSG_RP_RECV_BITMAP));
}

TEST(Error, TextLengthChecks)
{
	EXPECT_EQ(decode(Frame().u32(uint32_t(-EIO)).u16(3).str("bad").frame(RDM_MSG_ERROR)), 0);
	EXPECT_EQ(decode(Frame().u32(uint32_t(-EIO)).u16(4).str("bad").frame(RDM_MSG_ERROR)),
		  -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(uint32_t(-EIO)).u16(2).str("bad").frame(RDM_MSG_ERROR)),
		  -EBADMSG);
	std::string big(RDM_ERRMSG_MAX + 1, 'x');
	EXPECT_EQ(decode(Frame().u32(uint32_t(-EIO)).u16(uint16_t(big.size())).str(big).frame(
			  RDM_MSG_ERROR)),
		  -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(uint32_t(-EIO)).u16(3).str(std::string("b\0d", 3)).frame(
			  RDM_MSG_ERROR)),
		  -EBADMSG);
}

TEST(Error, CodeMustBeNegativeErrno)
{
	for (uint32_t c : {0u, 5u, uint32_t(INT32_MIN), uint32_t(-4096)})
		EXPECT_EQ(decode(Frame().u32(c).u16(0).frame(RDM_MSG_ERROR)), -EBADMSG) << c;
	EXPECT_EQ(decode(Frame().u32(uint32_t(-4095)).u16(0).frame(RDM_MSG_ERROR)), 0);
}

TEST(Error, LongTextTruncatedOnEncode)
{
	rdm_msg m{};
	m.type = RDM_MSG_ERROR;
	m.u.error.code = -EPROTO;
	std::memset(m.u.error.text, 'z', sizeof(m.u.error.text)); // not even NUL-terminated
	Bytes f = encode(m);
	EXPECT_EQ(f.size(), RDM_HDR_LEN + 6 + RDM_ERRMSG_MAX);
	rdm_msg d;
	ASSERT_EQ(decode(f, &d), 0);
	EXPECT_EQ(std::strlen(d.u.error.text), RDM_ERRMSG_MAX);
}

TEST(Channel, MagicAndIndexChecked)
{
	auto ch = [](uint32_t magic, uint16_t idx, uint16_t cnt) {
		return Frame().u32(magic).u16(7).u16(idx).u16(cnt).u16(0).u64(1).frame(RDM_MSG_CHANNEL);
	};
	EXPECT_EQ(decode(ch(RDM_WIRE_MAGIC, 0, 1)), 0);
	EXPECT_EQ(decode(ch(0x47444d52, 0, 1)), -EBADMSG);
	EXPECT_EQ(decode(ch(RDM_WIRE_MAGIC, 1, 1)), -EBADMSG);
	EXPECT_EQ(decode(ch(RDM_WIRE_MAGIC, 0, 0)), -EBADMSG);
}

TEST(ReqPages, EmptyOrWrappingRangeRefused)
{
	auto rq = [](uint64_t off, uint64_t len) {
		return Frame().u32(0).u64(off).u64(len).frame(RDM_MSG_RP_REQ_PAGES);
	};
	EXPECT_EQ(decode(rq(0, 4096)), 0);
	EXPECT_EQ(decode(rq(4096, 0)), -EBADMSG);
	EXPECT_EQ(decode(rq(UINT64_MAX - 4096, 4096)), 0);
	EXPECT_EQ(decode(rq(UINT64_MAX - 4096, 4097)), -EBADMSG);
}

TEST(PostcopyDiscard, EmptyOrWrappingRangeRefused)
{
	auto dc = [](uint64_t off, uint64_t len) {
		return Frame().u32(3).u64(off).u64(len).frame(RDM_MSG_POSTCOPY_DISCARD);
	};
	rdm_msg m;
	ASSERT_EQ(decode(dc(8192, 4096), &m), 0);
	EXPECT_EQ(m.u.req.block, 3u);
	EXPECT_EQ(m.u.req.offset, 8192u);
	EXPECT_EQ(decode(dc(4096, 0)), -EBADMSG);
	EXPECT_EQ(decode(dc(UINT64_MAX, 2)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(3).u64(0).frame(RDM_MSG_POSTCOPY_DISCARD)), -EBADMSG);
}

TEST(DevstatePages, OffsetPlusLengthMustNotWrap)
{
	EXPECT_EQ(decode(Frame().u64(UINT64_MAX - 2).str("ab").frame(RDM_MSG_DEVSTATE)), 0);
	EXPECT_EQ(decode(Frame().u64(UINT64_MAX - 2).str("abc").frame(RDM_MSG_DEVSTATE)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).u64(UINT64_MAX).str("a").frame(RDM_MSG_PAGES)), -EBADMSG);
	rdm_msg m;
	ASSERT_EQ(decode(Frame().u32(0).u64(UINT64_MAX).frame(RDM_MSG_PAGES), &m), 0);
	EXPECT_EQ(m.u.pages.len, 0u);
}

// ---- encode refuses what decode would refuse ----

TEST(Encode, UnknownTypeInvalid)
{
	rdm_msg m{};
	uint8_t buf[64];
	size_t out = 99;
	m.type = rdm_msg_type(27);
	EXPECT_EQ(rdm_msg_encode(&m, buf, sizeof(buf), &out), -EINVAL);
	EXPECT_EQ(rdm_msg_size(&m), 0u);
	EXPECT_EQ(out, 99u);
	m.type = rdm_msg_type(-1);
	EXPECT_EQ(rdm_msg_encode(&m, buf, sizeof(buf), &out), -EINVAL);
}

TEST(Encode, InvalidFieldsRefused)
{
	Samples s;
	auto invalid = [](const rdm_msg &m) {
		uint8_t buf[8192];
		EXPECT_EQ(rdm_msg_size(&m), 0u) << rdm_msg_name(uint16_t(m.type));
		return rdm_msg_encode(&m, buf, sizeof(buf), nullptr);
	};
	rdm_msg m = s.of(RDM_MSG_HELLO);
	m.u.hello.magic = 0;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_BLOCKS);
	s.blocks[0].page_size = 1000;
	EXPECT_EQ(invalid(m), -EINVAL);
	s.blocks[0].page_size = 4096;
	s.blocks[0].length = 4096 + 1;
	EXPECT_EQ(invalid(m), -EINVAL);
	s.blocks[0].length = 4096;
	s.blocks[0].name[0] = '\0';
	EXPECT_EQ(invalid(m), -EINVAL);
	std::memset(s.blocks[0].name, 'q', sizeof(s.blocks[0].name)); // 256 bytes, no NUL
	EXPECT_EQ(invalid(m), -EINVAL);
	std::vector<rdm_block_desc> many(RDM_MAX_BLOCKS + 1, s.blocks[1]);
	m.u.blocks.desc = many.data();
	m.u.blocks.count = RDM_MAX_BLOCKS;
	EXPECT_GT(rdm_msg_size(&m), 0u);
	m.u.blocks.count = RDM_MAX_BLOCKS + 1;
	EXPECT_EQ(invalid(m), -EINVAL);
	m.u.blocks.count = 1;
	m.u.blocks.desc = nullptr;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_ZERO_RUNS);
	s.runs[0].npages = 0;
	EXPECT_EQ(invalid(m), -EINVAL);
	s.runs[0] = {UINT64_MAX, 1};
	EXPECT_EQ(invalid(m), -EINVAL);

	m.u.zero.runs = nullptr;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_RP_RECV_BITMAP);
	m.u.bitmap.words = nullptr;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_DEVSTATE);
	m.u.dev.offset = UINT64_MAX - m.u.dev.len + 1;
	EXPECT_EQ(invalid(m), -EINVAL);
	m.u.dev.data = nullptr;
	m.u.dev.offset = 0;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_PAGES);
	m.u.pages.offset = UINT64_MAX;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_ERROR);
	m.u.error.code = 0;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_CHANNEL);
	m.u.channel.index = m.u.channel.count;
	EXPECT_EQ(invalid(m), -EINVAL);

	m = s.of(RDM_MSG_RP_REQ_PAGES);
	m.u.req.length = 0;
	EXPECT_EQ(invalid(m), -EINVAL);
}

TEST(Encode, TooBigForAFrameInvalid)
{
	uint8_t byte = 0;
	rdm_msg m{};
	m.type = RDM_MSG_DEVSTATE;
	m.u.dev = {0, RDM_MAX_PAYLOAD - 8 + 1, &byte}; // data never read: size is checked first
	EXPECT_EQ(rdm_msg_size(&m), 0u);
	EXPECT_EQ(rdm_msg_encode(&m, &byte, 1, nullptr), -EINVAL);
	m.u.dev.len = RDM_MAX_PAYLOAD - 8;
	EXPECT_EQ(rdm_msg_size(&m), RDM_HDR_LEN + RDM_MAX_PAYLOAD);

	m = rdm_msg{};
	m.type = RDM_MSG_RP_RECV_BITMAP;
	uint64_t w = 0;
	m.u.bitmap = {0, UINT64_MAX, &w, nullptr};
	EXPECT_EQ(rdm_msg_size(&m), 0u);
	m.u.bitmap.nbits = (RDM_MAX_PAYLOAD - 12) * 8ull + 1; // one word too many
	EXPECT_EQ(rdm_msg_size(&m), 0u);
}

TEST(Encode, NoSpaceLeavesBufferUntouched)
{
	Samples s;
	for (const auto &m : s.all) {
		size_t n = rdm_msg_size(&m);
		ASSERT_GT(n, 0u);
		Bytes buf(n, 0x5a);
		size_t out = 7;
		for (size_t cap : {size_t(0), size_t(RDM_HDR_LEN - 1), n - 1}) {
			if (cap >= n)
				continue;
			EXPECT_EQ(rdm_msg_encode(&m, buf.data(), cap, &out), -ENOSPC)
				<< rdm_msg_name(uint16_t(m.type)) << " cap " << cap;
		}
		EXPECT_EQ(buf, Bytes(n, 0x5a));
		EXPECT_EQ(out, 7u);
		EXPECT_EQ(rdm_msg_encode(&m, buf.data(), n, &out), 0);
		EXPECT_EQ(out, n);
	}
}

// ---- a cheap in-tree fuzz: mutated valid frames decode cleanly or not at all ----

TEST(Mutation, FlippedBytesDecodeCleanlyAndCanonically)
{
	Samples s;
	std::mt19937 rng(12345);
	const std::set<int> allowed = {0, -EAGAIN, -EPROTO, -EBADMSG, -EMSGSIZE};
	int accepted = 0;
	for (int iter = 0; iter < 20000; iter++) {
		const rdm_msg &m = s.all[rng() % s.all.size()];
		Bytes f = encode(m);
		for (int k = 1 + int(rng() % 3); k > 0; k--)
			f[rng() % f.size()] ^= uint8_t(1u << (rng() % 8));
		rdm_msg d;
		int rc = decode(f, &d);
		ASSERT_TRUE(allowed.count(rc)) << rc;
		if (rc != 0)
			continue;
		accepted++;
		// One wire form per message: nothing accepted is lost or normalised away.
		EXPECT_EQ(reencode(d), f) << rdm_msg_name(uint16_t(d.type));
	}
	EXPECT_GT(accepted, 0); // the mutation must leave some frames valid, or it tests nothing
}

// ---- rdma registration messages ----

TEST(RdmaMessages, KeyCountMustMatchLength)
{
	Samples s;
	Bytes f = encode(s.of(RDM_MSG_RDMA_KEYS));
	f[RDM_HDR_LEN + 3] = 3; // claims three keys, carries two
	rdm_msg d;
	EXPECT_EQ(decode(f, &d), -EBADMSG);
}

TEST(RdmaMessages, EmptyOrWrappingKeyRangeRefused)
{
	Samples s;
	rdm_msg m = s.of(RDM_MSG_RDMA_KEYS);
	std::vector<rdm_rdma_key> k{{0, 0, 0, 0x1000, 1}};
	m.u.keys.keys = k.data();
	m.u.keys.count = 1;
	EXPECT_EQ(rdm_msg_size(&m), 0u);
	k[0] = {0, UINT64_MAX, 2, 0x1000, 1};
	EXPECT_EQ(rdm_msg_size(&m), 0u);
	k[0] = {0, 4096, 4096, 0x1000, 1};
	Bytes f = encode(m);
	rdm_put_u64(&f[RDM_HDR_LEN + 4 + 12], 0); // len 0 on the wire
	rdm_msg d;
	EXPECT_EQ(decode(f, &d), -EBADMSG);
}

TEST(RdmaMessages, RegCountsMustMatchLength)
{
	Samples s;
	Bytes f = encode(s.of(RDM_MSG_RDMA_REG));
	f[RDM_HDR_LEN + 7] = 5; // ndrop 5: more chunks than carried
	rdm_msg d;
	EXPECT_EQ(decode(f, &d), -EBADMSG);
}

TEST(RdmaMessages, ReadyUnknownFlagsRefused)
{
	Samples s;
	Bytes f = encode(s.of(RDM_MSG_RDMA_READY));
	f[RDM_HDR_LEN + 3] = 0x3;
	rdm_msg d;
	EXPECT_EQ(decode(f, &d), -EBADMSG);
}

// ---- authentication messages ----

TEST(AuthMessages, GoldenProofBytes)
{
	Samples s;
	Bytes f = encode(s.of(RDM_MSG_AUTH_PROOF));
	Frame w;
	w.u32(RDM_AUTH_F_UUID | RDM_AUTH_F_MAC);
	for (unsigned i = 0; i < RDM_UUID_LEN; i++)
		w.b.push_back(uint8_t(i + 1));
	for (unsigned i = 0; i < 32; i++)
		w.b.push_back(uint8_t(0xff - i));
	EXPECT_EQ(f, w.frame(RDM_MSG_AUTH_PROOF));
	EXPECT_EQ(f.size(), RDM_HDR_LEN + 52u);
}

TEST(AuthMessages, FixedLengthsOnly)
{
	Samples s;
	for (rdm_msg_type t : {RDM_MSG_AUTH_NONCE, RDM_MSG_AUTH_PROOF, RDM_MSG_CHAN_PROOF}) {
		SCOPED_TRACE(rdm_msg_name(uint16_t(t)));
		Bytes f = encode(s.of(t));
		Bytes longer = f;
		longer.push_back(0);
		rdm_put_u32(&longer[4], uint32_t(longer.size() - RDM_HDR_LEN));
		EXPECT_EQ(decode(longer), -EBADMSG);
		Bytes shorter(f.begin(), f.end() - 1);
		rdm_put_u32(&shorter[4], uint32_t(shorter.size() - RDM_HDR_LEN));
		EXPECT_EQ(decode(shorter), -EBADMSG);
		for (size_t n = 0; n < f.size(); n++)
			EXPECT_EQ(decode(Bytes(f.begin(), f.begin() + long(n))), -EAGAIN) << n;
	}
}

TEST(AuthMessages, ZeroNonceRefused)
{
	Frame w;
	w.b.assign(RDM_AUTH_NONCE_LEN, 0);
	EXPECT_EQ(decode(w.frame(RDM_MSG_AUTH_NONCE)), -EBADMSG);
	w.b[31] = 1;
	EXPECT_EQ(decode(w.frame(RDM_MSG_AUTH_NONCE)), 0);
}

TEST(AuthMessages, ProofFlagsAndCanonicalZeros)
{
	Samples s;
	Bytes f = encode(s.of(RDM_MSG_AUTH_PROOF));
	Bytes g = f;
	g[RDM_HDR_LEN + 3] |= 0x4; // unknown flag
	EXPECT_EQ(decode(g), -EBADMSG);
	g = f;
	g[RDM_HDR_LEN + 3] = RDM_AUTH_F_MAC; // no uuid flag, but uuid bytes set
	EXPECT_EQ(decode(g), -EBADMSG);
	g = f;
	g[RDM_HDR_LEN + 3] = RDM_AUTH_F_UUID; // no mac flag, but mac bytes set
	EXPECT_EQ(decode(g), -EBADMSG);

	rdm_msg m = s.of(RDM_MSG_AUTH_PROOF);
	m.u.proof.flags = RDM_AUTH_F_UUID;
	EXPECT_EQ(rdm_msg_size(&m), 0u) << "a mac without its flag must not be sent";
	m.u.proof.flags = 0x80;
	EXPECT_EQ(rdm_msg_size(&m), 0u);
	m = rdm_msg{};
	m.type = RDM_MSG_AUTH_PROOF; // unauthenticated, no uuid: all zero
	expect_round_trip(m);
	rdm_msg d;
	ASSERT_EQ(decode(encode(m), &d), 0);
	EXPECT_EQ(d.u.proof.flags, 0u);
}
