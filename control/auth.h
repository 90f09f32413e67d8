/* SPDX-License-Identifier: MIT */
/*
 * Authentication helpers: HMAC-SHA256 and random nonces from GnuTLS, and the
 * exact inputs of every proof rdmig sends. Both sides build the same input
 * here, so a proof checks out only when both hold the secret and agree on
 * every bound field. Each proof starts with a label of its own: a proof made
 * for one direction or purpose is never valid for another (no reflection).
 *
 * Session proof (AUTH_PROOF, control stream), MAC =
 *   HMAC(secret, label || nonce_src || nonce_dst || u64 token ||
 *        SHA256(BLOCKS frame) || u32 flags || uuid[16])
 *   label "rdmig v1 source proof" or "rdmig v1 destination proof".
 * Channel proof (CHAN_PROOF, each transport channel), MAC truncated to 16 bytes =
 *   HMAC(secret, "rdmig v1 channel proof" || u64 token || u16 index ||
 *        u16 count || u16 flags)
 */
#ifndef RDMIG_CONTROL_AUTH_H
#define RDMIG_CONTROL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RDM_AUTH_MAC_LEN 32u
#define RDM_AUTH_SECRET_MIN 16u
#define RDM_AUTH_SECRET_MAX 1024u

/* HMAC-SHA256(key, data) into mac[32]. 0, or -EIO when GnuTLS fails. */
int rdm_auth_hmac(const void *key, size_t klen, const void *data, size_t len,
		  uint8_t mac[RDM_AUTH_MAC_LEN]);
/* SHA-256 of data into out[32]. */
int rdm_auth_sha256(const void *data, size_t len, uint8_t out[RDM_AUTH_MAC_LEN]);
/* n fresh random bytes (GnuTLS's nonce generator). */
int rdm_auth_random(void *buf, size_t n);
/* Constant-time comparison: true when the n bytes are equal. */
bool rdm_auth_equal(const void *a, const void *b, size_t n);

enum rdm_auth_dir {
	RDM_AUTH_FROM_SOURCE,
	RDM_AUTH_FROM_DEST,
};

/* What a session proof binds; both sides fill it with the same values. */
struct rdm_auth_bind {
	uint8_t nonce_src[RDM_AUTH_NONCE_LEN];
	uint8_t nonce_dst[RDM_AUTH_NONCE_LEN];
	uint64_t token;                     /* the transport's session token */
	uint8_t blocks[RDM_AUTH_MAC_LEN];   /* SHA-256 of the BLOCKS frame as sent */
	uint32_t flags;                     /* the source's AUTH_PROOF flags */
	uint8_t uuid[RDM_UUID_LEN];
};

int rdm_auth_session_mac(const void *key, size_t klen, enum rdm_auth_dir dir,
			 const struct rdm_auth_bind *b, uint8_t mac[RDM_AUTH_MAC_LEN]);
/* The channel proof of one transport channel. */
int rdm_auth_channel_mac(const void *key, size_t klen, uint64_t token, uint16_t index,
			 uint16_t count, uint16_t flags, uint8_t mac[RDM_CHAN_MAC_LEN]);

/* A whole CHAN_PROOF frame (header + mac) as it follows a CHANNEL hello. */
#define RDM_CHAN_PROOF_FRAME (RDM_HDR_LEN + RDM_CHAN_MAC_LEN)
int rdm_auth_chan_proof_encode(uint8_t buf[RDM_CHAN_PROOF_FRAME], const void *key, size_t klen,
			       const struct rdm_channel *c);
/*
 * Check the CHAN_PROOF frame buf[0..len) of channel c: 0 when it proves
 * knowledge of key, -EBADMSG when it is not a CHAN_PROOF frame, -EACCES when
 * the mac does not match.
 */
int rdm_auth_chan_proof_check(const void *buf, size_t len, const void *key, size_t klen,
			      const struct rdm_channel *c);

#ifdef __cplusplus
}
#endif

#endif
