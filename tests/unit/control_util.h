// SPDX-License-Identifier: MIT
// Helpers of the codec tests (test_control*.cc): an independent frame
// builder, guarded decoding, one sample of every message type.
#ifndef RDMIG_TESTS_UNIT_CONTROL_UTIL_H
#define RDMIG_TESTS_UNIT_CONTROL_UTIL_H

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
inline const uint8_t *guarded(const Bytes &f)
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

inline int decode(const Bytes &f, rdm_msg *m)
{
	return rdm_msg_decode(guarded(f), f.size(), m);
}

inline int decode(const Bytes &f)
{
	rdm_msg m;
	return decode(f, &m);
}

inline Bytes encode(const rdm_msg &m)
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
		m.u.seq.seq = 46;
		add(RDM_MSG_POSTCOPY_LISTEN);
		m.u.req = {1, 1ull << 21, 3 * 4096};
		add(RDM_MSG_POSTCOPY_DISCARD);
		m.u.seq.seq = 47;
		add(RDM_MSG_POSTCOPY_END);
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
inline Bytes reencode(const rdm_msg &d)
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

inline void expect_round_trip(const rdm_msg &m)
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

inline bool is_fixed_size(rdm_msg_type t)
{
	return t != RDM_MSG_BLOCKS && t != RDM_MSG_ZERO_RUNS && t != RDM_MSG_DEVSTATE &&
	       t != RDM_MSG_ERROR && t != RDM_MSG_PAGES && t != RDM_MSG_RP_RECV_BITMAP &&
	       t != RDM_MSG_RDMA_KEYS && t != RDM_MSG_RDMA_REG;
}

} // namespace

#endif
