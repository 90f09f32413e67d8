// SPDX-License-Identifier: MIT
// The wire codec: round trips, exact bytes, and every way a peer's frame can be wrong.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "control/msg.h"

namespace {

using Bytes = std::vector<uint8_t>;

// Big-endian frame builder written independently of the codec, so a byte-order
// mistake made symmetrically in encode and decode still fails here.
struct Frame {
	Bytes b;
	Frame &u16(uint16_t v) { return be(v, 2); }
	Frame &u32(uint32_t v) { return be(v, 4); }
	Frame &u64(uint64_t v) { return be(v, 8); }
	Frame &str(const std::string &s) { b.insert(b.end(), s.begin(), s.end()); return *this; }
	Frame &be(uint64_t v, int n)
	{
		for (int i = n - 1; i >= 0; i--)
			b.push_back(uint8_t(v >> (8 * i)));
		return *this;
	}
	// Header in front: type, flags, and the payload length (declared or real).
	Bytes frame(uint16_t type, int64_t declared = -1, uint16_t flags = 0) const
	{
		Frame h;
		h.u16(type).u16(flags).u32(declared < 0 ? uint32_t(b.size()) : uint32_t(declared));
		h.b.insert(h.b.end(), b.begin(), b.end());
		return h.b;
	}
};

// Frames are decoded from the end of a mapping that an inaccessible page
// follows, so a read past the frame faults even without ASan. m's variable
// parts stay valid until the next decode().
const uint8_t *guarded(const Bytes &f)
{
	static const size_t cap = 8u << 20;
	static uint8_t *arena;
	if (!arena) {
		size_t pg = size_t(sysconf(_SC_PAGESIZE));
		void *p = mmap(nullptr, cap + pg, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || mprotect(static_cast<uint8_t *>(p) + cap, pg, PROT_NONE))
			abort();
		arena = static_cast<uint8_t *>(p);
	}
	if (f.size() > cap)
		abort();
	if (!f.empty())
		std::memcpy(arena + cap - f.size(), f.data(), f.size());
	return arena + cap - f.size();
}

int decode(const Bytes &f, rdm_msg *m)
{
	return rdm_msg_decode(guarded(f), f.size(), m);
}

int decode(const Bytes &f)
{
	rdm_msg m;
	return decode(f, &m);
}

Bytes encode(const rdm_msg &m)
{
	size_t n = rdm_msg_size(&m), out = 0;
	Bytes buf(n + 16, 0xa5);
	EXPECT_GT(n, 0u);
	EXPECT_EQ(rdm_msg_encode(&m, buf.data(), buf.size(), &out), 0);
	EXPECT_EQ(out, n);
	buf.resize(out);
	return buf;
}

// Storage that outlives the messages pointing into it.
struct Samples {
	std::vector<rdm_block_desc> blocks;
	std::vector<rdm_zero_run> runs{{0, 1}, {100, 7}, {UINT64_MAX - 3, 3}};
	std::vector<uint64_t> words{0x0123456789abcdefull, 0x3ull};
	Bytes data{1, 2, 3, 4, 5, 6, 7, 8, 9};
	std::vector<rdm_rdma_key> keys{{0, 0, 1u << 20, 0x7f0000001000ull, 0x1234},
				       {3, 1ull << 30, 4096, 0x1000, 0xffffffffu}};
	std::vector<rdm_rdma_chunk> chunks{{0, 0}, {1, 1u << 20}, {2, 5ull << 20}};
	std::vector<rdm_msg> all;

	rdm_msg of(rdm_msg_type t) const
	{
		for (const auto &m : all)
			if (m.type == t)
				return m;
		abort();
	}

	Samples()
	{
		rdm_block_desc d{};
		strcpy(d.name, "pc.ram");
		d.length = 1ull << 30;
		d.page_size = 4096;
		blocks.push_back(d);
		std::memset(d.name, 'n', RDM_NAME_MAX);
		d.name[RDM_NAME_MAX] = '\0';
		d.length = 2ull << 21;
		d.page_size = 2u << 20;
		blocks.push_back(d);

		rdm_msg m{};
		auto add = [&](rdm_msg_type t) { m.type = t; all.push_back(m); m = rdm_msg{}; };
		m.u.hello = {RDM_WIRE_MAGIC, RDM_WIRE_VERSION, 0x8001, RDM_FEAT_ALL};
		add(RDM_MSG_HELLO);
		m.u.blocks.count = uint32_t(blocks.size());
		m.u.blocks.desc = blocks.data();
		add(RDM_MSG_BLOCKS);
		add(RDM_MSG_BLOCKS_ACK);
		m.u.zero = {7, uint32_t(runs.size()), runs.data(), nullptr};
		add(RDM_MSG_ZERO_RUNS);
		m.u.seq.seq = 0x1122334455667788ull;
		add(RDM_MSG_ITER_END);
		m.u.dev = {0xfffffffffull, uint32_t(data.size()), data.data()};
		add(RDM_MSG_DEVSTATE);
		m.u.dev_end = {123456789012ull, 0xdeadbeef};
		add(RDM_MSG_DEVSTATE_END);
		m.u.seq.seq = 3;
		add(RDM_MSG_COMPLETE);
		m.u.error.code = -EIO;
		strcpy(m.u.error.text, "block pc.ram: length mismatch");
		add(RDM_MSG_ERROR);
		m.u.pages = {2, 1ull << 40, uint32_t(data.size()), data.data()};
		add(RDM_MSG_PAGES);
		m.u.seq.seq = UINT64_MAX;
		add(RDM_MSG_FENCE);
		m.u.channel = {RDM_WIRE_MAGIC, 1, 3, 4, 0x10, 0xcafef00dcafef00dull};
		add(RDM_MSG_CHANNEL);
		m.u.u32.value = 0x80000001u;
		add(RDM_MSG_RP_SHUT);
		m.u.u32.value = 1;
		add(RDM_MSG_RP_PING);
		m.u.u32.value = 2;
		add(RDM_MSG_RP_PONG);
		m.u.req = {5, 4096, 8192};
		add(RDM_MSG_RP_REQ_PAGES);
		m.u.bitmap = {9, 66, words.data(), nullptr};
		add(RDM_MSG_RP_RECV_BITMAP);
		m.u.u32.value = 77;
		add(RDM_MSG_RP_RESUME_ACK);
		m.u.u32.value = 0;
		add(RDM_MSG_RP_SWITCHOVER_ACK);
		m.u.seq.seq = 42;
		add(RDM_MSG_RP_FENCE_ACK);
		m.u.seq.seq = 43;
		add(RDM_MSG_RP_COMPLETE_ACK);
		m.u.seq.seq = 44;
		add(RDM_MSG_GO);
		m.u.seq.seq = 45;
		add(RDM_MSG_RP_READY);
		m.u.keys = {uint32_t(keys.size()), keys.data(), nullptr};
		add(RDM_MSG_RDMA_KEYS);
		m.u.reg = {2, 1, chunks.data(), nullptr};
		add(RDM_MSG_RDMA_REG);
		m.u.ready = {1, 64ull << 20};
		add(RDM_MSG_RDMA_READY);
		for (unsigned i = 0; i < RDM_AUTH_NONCE_LEN; i++)
			m.u.nonce.nonce[i] = uint8_t(0xa0 + i);
		add(RDM_MSG_AUTH_NONCE);
		m.u.proof.flags = RDM_AUTH_F_UUID | RDM_AUTH_F_MAC;
		for (unsigned i = 0; i < RDM_UUID_LEN; i++)
			m.u.proof.uuid[i] = uint8_t(i + 1);
		for (unsigned i = 0; i < sizeof(m.u.proof.mac); i++)
			m.u.proof.mac[i] = uint8_t(0xff - i);
		add(RDM_MSG_AUTH_PROOF);
		for (unsigned i = 0; i < RDM_CHAN_MAC_LEN; i++)
			m.u.chan_proof.mac[i] = uint8_t(3 * i);
		add(RDM_MSG_CHAN_PROOF);
	}
};

// Turns a decoded message back into encode input (its arrays read through the
// accessors) and encodes it: a correct decoder gives back the very same bytes.
Bytes reencode(const rdm_msg &d)
{
	rdm_msg m = d;
	std::vector<rdm_block_desc> desc(m.type == RDM_MSG_BLOCKS ? d.u.blocks.count : 0);
	std::vector<rdm_zero_run> runs(m.type == RDM_MSG_ZERO_RUNS ? d.u.zero.count : 0);
	std::vector<uint64_t> words(m.type == RDM_MSG_RP_RECV_BITMAP ? (d.u.bitmap.nbits + 63) / 64 : 0);
	for (uint32_t i = 0; i < desc.size(); i++)
		rdm_blocks_get(&d.u.blocks, i, &desc[i]);
	for (uint32_t i = 0; i < runs.size(); i++)
		rdm_zero_runs_get(&d.u.zero, i, &runs[i]);
	for (uint64_t i = 0; i < words.size(); i++)
		words[i] = rdm_recv_bitmap_word(&d.u.bitmap, i);
	if (m.type == RDM_MSG_BLOCKS)
		m.u.blocks.desc = desc.data();
	if (m.type == RDM_MSG_ZERO_RUNS)
		m.u.zero.runs = runs.data();
	if (m.type == RDM_MSG_RP_RECV_BITMAP)
		m.u.bitmap.words = words.data();
	std::vector<rdm_rdma_key> keys(m.type == RDM_MSG_RDMA_KEYS ? d.u.keys.count : 0);
	std::vector<rdm_rdma_chunk> chunks(m.type == RDM_MSG_RDMA_REG ? d.u.reg.nreg + d.u.reg.ndrop : 0);
	for (uint32_t i = 0; i < keys.size(); i++)
		rdm_rdma_keys_get(&d.u.keys, i, &keys[i]);
	for (uint32_t i = 0; i < chunks.size(); i++)
		rdm_rdma_reg_get(&d.u.reg, i, &chunks[i]);
	if (m.type == RDM_MSG_RDMA_KEYS)
		m.u.keys.keys = keys.data();
	if (m.type == RDM_MSG_RDMA_REG)
		m.u.reg.chunks = chunks.data();
	return encode(m);
}

void expect_round_trip(const rdm_msg &m)
{
	Bytes f = encode(m);
	rdm_msg d;
	SCOPED_TRACE(rdm_msg_name(uint16_t(m.type)));
	ASSERT_EQ(decode(f, &d), 0);
	EXPECT_EQ(d.type, m.type);
	EXPECT_EQ(reencode(d), f);
}

struct ListEntry {
	uint16_t code;
	const char *name;
};
const std::vector<ListEntry> kList = {
#define X(name, code, str) {code, str},
	RDM_MSG_LIST(X)
#undef X
};

bool is_fixed_size(rdm_msg_type t)
{
	return t != RDM_MSG_BLOCKS && t != RDM_MSG_ZERO_RUNS && t != RDM_MSG_DEVSTATE &&
	       t != RDM_MSG_ERROR && t != RDM_MSG_PAGES && t != RDM_MSG_RP_RECV_BITMAP &&
	       t != RDM_MSG_RDMA_KEYS && t != RDM_MSG_RDMA_REG;
}

} // namespace

// ---- names and header ----

TEST(Names, EveryTypeHasItsListName)
{
	std::set<std::string> seen;
	for (const auto &e : kList) {
		ASSERT_NE(rdm_msg_name(e.code), nullptr) << e.code;
		EXPECT_STREQ(rdm_msg_name(e.code), e.name);
		EXPECT_TRUE(seen.insert(e.name).second) << "duplicate name " << e.name;
	}
	EXPECT_STREQ(rdm_msg_name(RDM_MSG_ZERO_RUNS), "zero-runs");
}

TEST(Names, UnknownCodesHaveNone)
{
	for (uint16_t c : {0, 14, 15, 26, 27, 255, 0x100 | 1, 0xffff})
		EXPECT_EQ(rdm_msg_name(c), nullptr) << c;
}

TEST(ByteOrder, BigEndianBytes)
{
	uint8_t b[8];
	rdm_put_u16(b, 0x0102);
	EXPECT_EQ(Bytes(b, b + 2), (Bytes{1, 2}));
	rdm_put_u32(b, 0x01020304);
	EXPECT_EQ(Bytes(b, b + 4), (Bytes{1, 2, 3, 4}));
	rdm_put_u64(b, 0x0102030405060708ull);
	EXPECT_EQ(Bytes(b, b + 8), (Bytes{1, 2, 3, 4, 5, 6, 7, 8}));
	EXPECT_EQ(rdm_get_u64(b), 0x0102030405060708ull);
	EXPECT_EQ(rdm_get_u32(b + 4), 0x05060708u);
	EXPECT_EQ(rdm_get_u16(b + 6), 0x0708u);
}

TEST(Header, RoundTripAndShort)
{
	uint8_t b[8];
	uint16_t t = 0;
	uint32_t len = 0;
	rdm_hdr_encode(b, RDM_MSG_PAGES, 4108);
	EXPECT_EQ(Bytes(b, b + 8), (Bytes{0, 10, 0, 0, 0, 0, 0x10, 0x0c}));
	ASSERT_EQ(rdm_hdr_decode(b, 8, &t, &len), 0);
	EXPECT_EQ(t, RDM_MSG_PAGES);
	EXPECT_EQ(len, 4108u);
	for (size_t n = 0; n < 8; n++)
		EXPECT_EQ(rdm_hdr_decode(b, n, &t, &len), -EAGAIN) << n;
}

TEST(Header, UnknownTypeIsProtocolError)
{
	uint16_t t;
	uint32_t len;
	for (uint16_t c : {0, 14, 26, 0xffff}) {
		Bytes f = Frame().frame(c);
		EXPECT_EQ(rdm_hdr_decode(f.data(), f.size(), &t, &len), -EPROTO) << c;
		EXPECT_EQ(decode(f), -EPROTO) << c;
	}
}

TEST(Header, NonZeroFlagsAreProtocolError)
{
	for (uint16_t fl : {1, 0x8000, 0xffff}) {
		Bytes f = Frame().u64(1).frame(RDM_MSG_FENCE, -1, fl);
		EXPECT_EQ(decode(f), -EPROTO) << fl;
	}
}

TEST(Header, OversizedLengthRefused)
{
	uint16_t t;
	uint32_t len;
	Bytes f = Frame().frame(RDM_MSG_DEVSTATE, RDM_MAX_PAYLOAD + 1ull);
	EXPECT_EQ(rdm_hdr_decode(f.data(), f.size(), &t, &len), -EMSGSIZE);
	EXPECT_EQ(decode(f), -EMSGSIZE);
	f = Frame().frame(RDM_MSG_DEVSTATE, UINT32_MAX);
	EXPECT_EQ(decode(f), -EMSGSIZE);
	f = Frame().frame(RDM_MSG_DEVSTATE, RDM_MAX_PAYLOAD);
	EXPECT_EQ(rdm_hdr_decode(f.data(), f.size(), &t, &len), 0);
	EXPECT_EQ(decode(f), -EAGAIN); // the limit itself is allowed, just not here yet
}

// ---- round trips ----

TEST(RoundTrip, SamplesCoverEveryType)
{
	Samples s;
	std::set<int> types;
	for (const auto &m : s.all)
		types.insert(m.type);
	for (const auto &e : kList)
		EXPECT_TRUE(types.count(e.code)) << e.name << " has no sample";
}

TEST(RoundTrip, EveryType)
{
	Samples s;
	for (const auto &m : s.all)
		expect_round_trip(m);
}

TEST(RoundTrip, EmptyAndLimitShapes)
{
	rdm_msg m{};
	m.type = RDM_MSG_DEVSTATE; // no bytes at all
	expect_round_trip(m);
	m.type = RDM_MSG_PAGES;
	expect_round_trip(m);
	m.type = RDM_MSG_BLOCKS;
	expect_round_trip(m);
	m.type = RDM_MSG_ZERO_RUNS;
	expect_round_trip(m);
	m.type = RDM_MSG_RP_RECV_BITMAP;
	expect_round_trip(m);
	m.type = RDM_MSG_ERROR;
	m.u.error.code = -ECANCELED;
	expect_round_trip(m);
	std::memset(m.u.error.text, 'e', RDM_ERRMSG_MAX);
	m.u.error.text[RDM_ERRMSG_MAX] = '\0';
	expect_round_trip(m);
	uint64_t w = ~0ull;
	m = rdm_msg{};
	m.type = RDM_MSG_RP_RECV_BITMAP;
	m.u.bitmap = {0, 64, &w, nullptr};
	expect_round_trip(m);
}

TEST(RoundTrip, DecodedPartsReadThroughAccessors)
{
	Samples s;
	Bytes f = encode(s.of(RDM_MSG_BLOCKS));
	rdm_msg d;
	ASSERT_EQ(decode(f, &d), 0);
	rdm_block_desc b;
	rdm_blocks_get(&d.u.blocks, 1, &b);
	EXPECT_EQ(std::string(b.name), std::string(RDM_NAME_MAX, 'n'));
	EXPECT_EQ(b.length, 2ull << 21);
	EXPECT_EQ(b.page_size, 2u << 20);
	EXPECT_EQ(d.u.blocks.desc, nullptr);

	f = encode(s.of(RDM_MSG_DEVSTATE));
	ASSERT_EQ(decode(f, &d), 0);
	EXPECT_EQ(d.u.dev.offset, 0xfffffffffull);
	ASSERT_EQ(d.u.dev.len, s.data.size());
	EXPECT_EQ(Bytes(d.u.dev.data, d.u.dev.data + d.u.dev.len), s.data);
}

TEST(RoundTrip, SizeMatchesEncodedLength)
{
	Samples s;
	for (const auto &m : s.all) {
		size_t out = 0;
		Bytes buf(4096);
		ASSERT_EQ(rdm_msg_encode(&m, buf.data(), buf.size(), &out), 0);
		EXPECT_EQ(rdm_msg_size(&m), out) << rdm_msg_name(uint16_t(m.type));
		EXPECT_EQ(rdm_get_u32(buf.data() + 4), out - RDM_HDR_LEN);
	}
}

// Exact bytes of the variable layouts, against the independent builder.
TEST(Golden, BlocksZeroRunsBitmapErrorBytes)
{
	Samples s;
	Frame blocks;
	blocks.u32(2).u16(6).str("pc.ram").u64(1ull << 30).u32(4096);
	blocks.u16(255).str(std::string(255, 'n')).u64(2ull << 21).u32(2u << 20);
	EXPECT_EQ(encode(s.of(RDM_MSG_BLOCKS)), blocks.frame(RDM_MSG_BLOCKS));

	Frame zero;
	zero.u32(7).u32(3).u64(0).u32(1).u64(100).u32(7).u64(UINT64_MAX - 3).u32(3);
	EXPECT_EQ(encode(s.of(RDM_MSG_ZERO_RUNS)), zero.frame(RDM_MSG_ZERO_RUNS));

	Frame bm; // 66 bits: second word keeps only its 2 low bits
	bm.u32(9).u64(66).u64(0x0123456789abcdefull).u64(0x3);
	EXPECT_EQ(encode(s.of(RDM_MSG_RP_RECV_BITMAP)), bm.frame(RDM_MSG_RP_RECV_BITMAP));

	Frame err;
	err.u32(uint32_t(-EIO)).u16(29).str("block pc.ram: length mismatch");
	EXPECT_EQ(encode(s.of(RDM_MSG_ERROR)), err.frame(RDM_MSG_ERROR));
}

TEST(Golden, HelloAndChannelBytes)
{
	Samples s;
	Frame h;
	h.u32(RDM_WIRE_MAGIC).u16(RDM_WIRE_VERSION).u16(0x8001).u64(RDM_FEAT_ALL);
	EXPECT_EQ(encode(s.of(RDM_MSG_HELLO)), h.frame(RDM_MSG_HELLO));
	Frame c;
	c.u32(RDM_WIRE_MAGIC).u16(1).u16(3).u16(4).u16(0x10).u64(0xcafef00dcafef00dull);
	EXPECT_EQ(encode(s.of(RDM_MSG_CHANNEL)), c.frame(RDM_MSG_CHANNEL));
}

TEST(Pages, PrefixHelpersMatchTheCodec)
{
	Samples s;
	rdm_msg pm = s.of(RDM_MSG_PAGES);
	const rdm_pages &p = pm.u.pages;
	Bytes f(RDM_HDR_LEN + RDM_PAGES_PREFIX + p.len);
	rdm_hdr_encode(f.data(), RDM_MSG_PAGES, RDM_PAGES_PREFIX + p.len);
	rdm_pages_hdr_encode(f.data() + RDM_HDR_LEN, p.block, p.offset);
	std::memcpy(f.data() + RDM_HDR_LEN + RDM_PAGES_PREFIX, p.data, p.len);
	EXPECT_EQ(f, encode(s.of(RDM_MSG_PAGES)));
	uint32_t block = 0;
	uint64_t off = 0;
	rdm_pages_hdr_decode(f.data() + RDM_HDR_LEN, &block, &off);
	EXPECT_EQ(block, p.block);
	EXPECT_EQ(off, p.offset);
}

// ---- truncation and framing ----

TEST(Truncated, EveryPrefixIsEagain)
{
	Samples s;
	for (const auto &m : s.all) {
		Bytes f = encode(m);
		for (size_t n = 0; n < f.size(); n++)
			EXPECT_EQ(decode(Bytes(f.begin(), f.begin() + long(n))), -EAGAIN)
				<< rdm_msg_name(uint16_t(m.type)) << " cut at " << n;
	}
}

TEST(Truncated, ShorterDeclaredPayloadIsCleanError)
{
	Samples s;
	for (const auto &m : s.all) {
		Bytes f = encode(m);
		size_t plen = f.size() - RDM_HDR_LEN;
		for (size_t k = 0; k < plen; k++) {
			Bytes g(f.begin(), f.begin() + long(RDM_HDR_LEN + k));
			rdm_put_u32(g.data() + 4, uint32_t(k));
			int rc = decode(g);
			SCOPED_TRACE(std::string(rdm_msg_name(uint16_t(m.type))) + " payload " +
				     std::to_string(k));
			if (is_fixed_size(m.type))
				EXPECT_EQ(rc, -EBADMSG);
			else
				EXPECT_TRUE(rc == 0 || rc == -EBADMSG) << rc;
		}
	}
}

TEST(Framing, TrailingBytesAfterFrame)
{
	Samples s;
	for (const auto &m : s.all) {
		Bytes f = encode(m);
		f.push_back(0);
		EXPECT_EQ(decode(f), -EBADMSG) << rdm_msg_name(uint16_t(m.type));
	}
}

TEST(Framing, FixedTypeWithLongerPayload)
{
	EXPECT_EQ(decode(Frame().u64(1).u32(0).frame(RDM_MSG_FENCE)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).frame(RDM_MSG_BLOCKS_ACK)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(1).u32(2).frame(RDM_MSG_RP_PING)), -EBADMSG);
}

TEST(Framing, PayloadShorterThanFixedPart)
{
	EXPECT_EQ(decode(Frame().u32(0).frame(RDM_MSG_ZERO_RUNS)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(0).frame(RDM_MSG_PAGES)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u16(0).frame(RDM_MSG_BLOCKS)), -EBADMSG);
	EXPECT_EQ(decode(Frame().u32(uint32_t(-5)).frame(RDM_MSG_ERROR)), -EBADMSG);
}

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
	m.type = rdm_msg_type(14);
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
