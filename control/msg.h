/* SPDX-License-Identifier: MIT */
/*
 * rdmig wire format: every message that crosses the wire, in one X-macro list.
 *
 * Frame: an 8-byte header, then the payload.
 *   u16 type | u16 flags (0) | u32 payload length        (all big-endian)
 * Payload fields are fixed-width big-endian integers, encoded and decoded here
 * and nowhere else. Decoding never trusts the peer: every count, length and
 * string is checked against the frame before use, and variable parts stay in
 * the caller's buffer (zero copy) after validation, so the accessors below
 * cannot fail.
 */
#ifndef RDMIG_CONTROL_MSG_H
#define RDMIG_CONTROL_MSG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RDM_WIRE_MAGIC 0x52444d47u /* "RDMG" */
#define RDM_WIRE_VERSION 2u /* 2: the ready/go commit */
#define RDM_HDR_LEN 8u
#define RDM_MAX_PAYLOAD (64u << 20) /* larger frames are refused */
#define RDM_NAME_MAX 255u           /* block names, bytes, no NUL on the wire */
#define RDM_MAX_BLOCKS 4096u
#define RDM_ERRMSG_MAX 1024u

/*
 * X(NAME, code, "wire-name"). Codes are part of the protocol: never renumber.
 * Direction: S = source to destination, D = destination to source (return path).
 */
#define RDM_MSG_LIST(X)                                                       \
	X(HELLO, 1, "hello")                   /* S,D magic, version, features */ \
	X(BLOCKS, 2, "blocks")                 /* S   the RAM block list */        \
	X(BLOCKS_ACK, 3, "blocks-ack")         /* D   block list matches */        \
	X(ZERO_RUNS, 4, "zero-runs")           /* S   zero pages as runs */        \
	X(ITER_END, 5, "iter-end")             /* S   iteration fence (seq) */     \
	X(DEVSTATE, 6, "device-state")         /* S   a chunk of device state */   \
	X(DEVSTATE_END, 7, "device-state-end") /* S   total length, crc32 */       \
	X(COMPLETE, 8, "complete")             /* S   all sent (seq) */            \
	X(ERROR, 9, "error")                   /* S,D abort with code, text */     \
	X(PAGES, 10, "pages")                  /* S   page data (stream transports) */ \
	X(FENCE, 11, "fence")                  /* S   per-channel fence (seq) */   \
	X(CHANNEL, 12, "channel")              /* S   data channel hello */        \
	X(GO, 13, "go")                        /* S   commit: destination may run (seq) */ \
	X(POSTCOPY_LISTEN, 14, "postcopy-listen") /* S postcopy: stale pages follow (seq) */ \
	X(POSTCOPY_DISCARD, 15, "postcopy-discard") /* S postcopy: a stale range (req layout) */ \
	X(POSTCOPY_END, 26, "postcopy-end")    /* S   postcopy: every page pushed (seq) */ \
	X(RP_SHUT, 16, "rp-shut")              /* D   return path closing (code) */ \
	X(RP_PING, 17, "rp-ping")              /* S,D liveness probe (u32 id) */   \
	X(RP_PONG, 18, "rp-pong")              /* S,D answer to a ping (u32 id) */ \
	X(RP_REQ_PAGES, 19, "rp-req-pages")    /* D   postcopy page request */     \
	X(RP_RECV_BITMAP, 20, "rp-recv-bitmap") /* D  received bitmap of a block */ \
	X(RP_RESUME_ACK, 21, "rp-resume-ack")  /* D   postcopy resume ack (u32) */ \
	X(RP_SWITCHOVER_ACK, 22, "rp-switchover-ack") /* D ready for switchover */ \
	X(RP_FENCE_ACK, 23, "rp-fence-ack")    /* D   iteration seq applied */     \
	X(RP_COMPLETE_ACK, 24, "rp-complete-ack") /* D commit: destination runs (seq) */ \
	X(RP_READY, 25, "rp-ready")            /* D   commit: all loaded, waiting for go */ \
	X(RDMA_KEYS, 32, "rdma-keys")          /* S,D rkeys: D write targets, S postcopy reads */ \
	X(RDMA_REG, 33, "rdma-reg")            /* S   register these chunks, drop those */ \
	X(RDMA_READY, 34, "rdma-ready")        /* D   registration mode and budget */ \
	X(AUTH_NONCE, 40, "auth-nonce")        /* S,D fresh challenge (control/auth.h) */ \
	X(AUTH_PROOF, 41, "auth-proof")        /* S,D proof of the secret, VM uuid */ \
	X(CHAN_PROOF, 42, "channel-proof")     /* S   a channel belongs to the session */

enum rdm_msg_type {
#define RDM_X_ENUM(name, code, str) RDM_MSG_##name = code,
	RDM_MSG_LIST(RDM_X_ENUM)
#undef RDM_X_ENUM
};

/* Features negotiated in HELLO (the intersection is used). */
#define RDM_FEAT_ZERO_RUNS (1ull << 0)
#define RDM_FEAT_RETURN_PATH (1ull << 1)
#define RDM_FEAT_POSTCOPY (1ull << 2)
/* The sender holds a secret: AUTH_NONCE and AUTH_PROOF both ways follow (control/auth.h). */
#define RDM_FEAT_AUTH (1ull << 3)
#define RDM_FEAT_ALL (RDM_FEAT_ZERO_RUNS | RDM_FEAT_RETURN_PATH | RDM_FEAT_POSTCOPY)

/* HELLO flags: the source resumes a paused postcopy (core/postcopy_recover.c). */
#define RDM_HELLO_F_RESUME 0x1u

struct rdm_hello {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint64_t features;
};

/* One RAM block as described on the wire. */
struct rdm_block_desc {
	char name[RDM_NAME_MAX + 1]; /* NUL-terminated after decode */
	uint64_t length;
	uint32_t page_size;
};

/*
 * BLOCKS: u32 count, then per block: u16 name_len, name, u64 length, u32 page_size.
 * Encode reads desc[0..count); decode validates every entry (name length 1..255,
 * no NUL in names, page_size a power of two >= 512, length a multiple of
 * page_size and > 0) and leaves them in raw for rdm_blocks_get().
 */
struct rdm_blocks {
	uint32_t count;
	const struct rdm_block_desc *desc; /* encode input */
	const uint8_t *raw;                /* decode output, points into the frame */
};

/* ZERO_RUNS: u32 block, u32 count, count x (u64 first_page, u32 npages). */
struct rdm_zero_run {
	uint64_t first_page;
	uint32_t npages; /* >= 1 */
};
struct rdm_zero_runs {
	uint32_t block;
	uint32_t count;
	const struct rdm_zero_run *runs; /* encode input */
	const uint8_t *raw;              /* decode output */
};

/* BLOCKS_ACK: empty payload (a mismatch is answered with ERROR instead). */

/*
 * ITER_END, COMPLETE, GO, FENCE, RP_FENCE_ACK, RP_COMPLETE_ACK, RP_READY,
 * POSTCOPY_LISTEN, POSTCOPY_END: u64 seq.
 */
struct rdm_seq {
	uint64_t seq;
};

/* RP_PING, RP_PONG, RP_RESUME_ACK, RP_SHUT, RP_SWITCHOVER_ACK: u32 value. */
struct rdm_u32 {
	uint32_t value;
};

/* DEVSTATE: u64 offset, then the bytes (length = payload - 8); offset + len must not wrap. */
struct rdm_devstate {
	uint64_t offset;
	uint32_t len;
	const uint8_t *data;
};

/* DEVSTATE_END: u64 total length, u32 crc32 (zlib) of the whole stream. */
struct rdm_devstate_end {
	uint64_t total;
	uint32_t crc;
};

/*
 * ERROR: i32 code (negative errno, -4095..-1: anything else would read as
 * success or garbage), u16 text length (0..RDM_ERRMSG_MAX), text (no NUL on the wire).
 */
struct rdm_error {
	int32_t code;
	char text[RDM_ERRMSG_MAX + 1]; /* NUL-terminated after decode; truncated on encode */
};

/*
 * PAGES: u32 block, u64 offset, then the bytes (length = payload - 12).
 * Bounds against the local block are the receiver's check; the decoder checks
 * only the frame (and that offset + len does not wrap). For stream transports,
 * rdm_pages_hdr_encode()/_decode() handle the 12-byte prefix alone so the bytes
 * can be sent from and received straight into guest memory.
 */
struct rdm_pages {
	uint32_t block;
	uint64_t offset;
	uint32_t len;
	const uint8_t *data;
};
#define RDM_PAGES_PREFIX 12u

/*
 * CHANNEL: u32 magic, u16 version, u16 index, u16 count, u16 flags, u64 token.
 * magic must be RDM_WIRE_MAGIC and index < count; the version is the caller's to judge.
 */
struct rdm_channel {
	uint32_t magic;
	uint16_t version;
	uint16_t index;
	uint16_t count;
	uint16_t flags;
	uint64_t token;
};

/*
 * RP_REQ_PAGES, POSTCOPY_DISCARD: u32 block, u64 offset, u64 length (>= 1,
 * offset + length must not wrap). Bounds against the block are the receiver's.
 */
struct rdm_req_pages {
	uint32_t block;
	uint64_t offset;
	uint64_t length;
};

/*
 * RP_RECV_BITMAP: u32 block, u64 nbits, then ceil(nbits/64) u64 words. Bits of
 * the last word past nbits are sent as 0 (encode masks them, decode refuses them).
 * A block's map may come in several messages, in order: each goes on where the
 * one before ended (all but the last carry a multiple of 64 bits).
 */
struct rdm_recv_bitmap {
	uint32_t block;
	uint64_t nbits;
	const uint64_t *words; /* encode input (host order) */
	const uint8_t *raw;    /* decode output (big-endian words) */
};

/*
 * RDMA_KEYS: u32 count, count x (u32 block, u64 offset, u64 len, u64 addr, u32 rkey).
 * A registered range of a block: [offset, offset+len) lives at addr under rkey.
 */
struct rdm_rdma_key {
	uint32_t block;
	uint64_t offset, len, addr;
	uint32_t rkey;
};
struct rdm_rdma_keys {
	uint32_t count;
	const struct rdm_rdma_key *keys; /* encode input */
	const uint8_t *raw;              /* decode output */
};
#define RDM_RDMA_KEYS_MAX 4096u

/* RDMA_REG: u32 nreg, u32 ndrop, (nreg + ndrop) x (u32 block, u64 offset): chunks. */
struct rdm_rdma_chunk {
	uint32_t block;
	uint64_t offset;
};
struct rdm_rdma_reg {
	uint32_t nreg, ndrop;
	const struct rdm_rdma_chunk *chunks; /* encode input: nreg to register, then ndrop */
	const uint8_t *raw;                  /* decode output */
};

/* RDMA_READY: u32 flags (bit 0 pin-all), u64 budget (bytes the destination may register). */
struct rdm_rdma_ready {
	uint32_t flags;
	uint64_t budget;
};

/* AUTH_NONCE: 32 random bytes, fresh per session and side. */
#define RDM_AUTH_NONCE_LEN 32u
struct rdm_auth_nonce {
	uint8_t nonce[RDM_AUTH_NONCE_LEN];
};

/*
 * AUTH_PROOF: u32 flags, uuid[16], mac[32]. The source always sends one after
 * BLOCKS (its VM uuid, if set); the destination answers with one (mac only)
 * when the session is authenticated. Unknown flags are refused, and the uuid
 * and mac must be all zero when their flag is clear (one encoding per value).
 */
#define RDM_UUID_LEN 16u
#define RDM_AUTH_F_UUID 0x1u /* uuid holds the source VM's uuid */
#define RDM_AUTH_F_MAC 0x2u  /* mac holds the HMAC (control/auth.h) */
#define RDM_AUTH_F_KNOWN (RDM_AUTH_F_UUID | RDM_AUTH_F_MAC)
struct rdm_auth_proof {
	uint32_t flags;
	uint8_t uuid[RDM_UUID_LEN];
	uint8_t mac[32];
};

/*
 * CHAN_PROOF: mac[16], right behind a transport channel's CHANNEL hello:
 * the channel's token, index and count signed with the secret (control/auth.h).
 */
#define RDM_CHAN_MAC_LEN 16u
struct rdm_chan_proof {
	uint8_t mac[RDM_CHAN_MAC_LEN];
};

struct rdm_msg {
	enum rdm_msg_type type;
	union {
		struct rdm_hello hello;
		struct rdm_blocks blocks;
		struct rdm_zero_runs zero;
		struct rdm_seq seq;
		struct rdm_u32 u32;
		struct rdm_devstate dev;
		struct rdm_devstate_end dev_end;
		struct rdm_error error;
		struct rdm_pages pages;
		struct rdm_channel channel;
		struct rdm_req_pages req;
		struct rdm_recv_bitmap bitmap;
		struct rdm_rdma_keys keys;
		struct rdm_rdma_reg reg;
		struct rdm_rdma_ready ready;
		struct rdm_auth_nonce nonce;
		struct rdm_auth_proof proof;
		struct rdm_chan_proof chan_proof;
	} u;
};

/* Name of a message type ("zero-runs"), or NULL when the code is unknown. */
const char *rdm_msg_name(uint16_t type);

/* Encoded size of m (header included), or 0 if m is invalid. */
size_t rdm_msg_size(const struct rdm_msg *m);

/*
 * Encode m into buf (header included). 0 and *out_len set (out_len may be
 * NULL), -ENOSPC when cap is too small (buf untouched), -EINVAL when m is
 * invalid (unknown type, bad counts, too long).
 */
int rdm_msg_encode(const struct rdm_msg *m, void *buf, size_t cap, size_t *out_len);

/*
 * Read a frame header: 0 and type/len set; -EAGAIN when fewer than 8 bytes;
 * -EPROTO for an unknown type or non-zero flags; -EMSGSIZE when len exceeds
 * RDM_MAX_PAYLOAD.
 */
int rdm_hdr_decode(const void *buf, size_t len, uint16_t *type, uint32_t *payload_len);

/* Write a frame header for a payload of payload_len bytes (buf >= 8 bytes). */
void rdm_hdr_encode(void *buf, uint16_t type, uint32_t payload_len);

/*
 * Decode one whole frame (header + payload, len bytes exactly). 0 on success;
 * -EAGAIN truncated; -EPROTO unknown type, bad flags; -EBADMSG a field out of
 * range, a count that does not match the length, trailing bytes; -EMSGSIZE too
 * big. m's variable parts point into buf.
 */
int rdm_msg_decode(const void *buf, size_t len, struct rdm_msg *m);

/*
 * The 12-byte PAGES prefix (after the header). A stream sender writes
 * rdm_hdr_encode(buf, RDM_MSG_PAGES, RDM_PAGES_PREFIX + len), then this prefix
 * at buf + RDM_HDR_LEN, then the len bytes from guest memory.
 */
void rdm_pages_hdr_encode(void *prefix, uint32_t block, uint64_t offset);
void rdm_pages_hdr_decode(const void *prefix, uint32_t *block, uint64_t *offset);

/*
 * Element accessors for decoded messages (i < count, already validated).
 * BLOCKS entries have variable length: rdm_blocks_get() walks i entries.
 */
void rdm_blocks_get(const struct rdm_blocks *b, uint32_t i, struct rdm_block_desc *out);
void rdm_zero_runs_get(const struct rdm_zero_runs *z, uint32_t i, struct rdm_zero_run *out);
uint64_t rdm_recv_bitmap_word(const struct rdm_recv_bitmap *b, uint64_t i);
void rdm_rdma_keys_get(const struct rdm_rdma_keys *k, uint32_t i, struct rdm_rdma_key *out);
void rdm_rdma_reg_get(const struct rdm_rdma_reg *r, uint32_t i, struct rdm_rdma_chunk *out);

/* Fixed-width big-endian helpers, the only byte-order code in rdmig. */
void rdm_put_u16(uint8_t *p, uint16_t v);
void rdm_put_u32(uint8_t *p, uint32_t v);
void rdm_put_u64(uint8_t *p, uint64_t v);
uint16_t rdm_get_u16(const uint8_t *p);
uint32_t rdm_get_u32(const uint8_t *p);
uint64_t rdm_get_u64(const uint8_t *p);

#ifdef __cplusplus
}
#endif

#endif
