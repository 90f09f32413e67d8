/* SPDX-License-Identifier: MIT */
/* Proof inputs and the GnuTLS calls behind them (no cryptography by hand). */
#include <errno.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "control/auth.h"

static const char session_label_src[] = "rdmig v1 source proof";
static const char session_label_dst[] = "rdmig v1 destination proof";
static const char channel_label[] = "rdmig v1 channel proof";

int rdm_auth_hmac(const void *key, size_t klen, const void *data, size_t len,
		  uint8_t mac[RDM_AUTH_MAC_LEN])
{
	return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, klen, data, len, mac) ? -EIO : 0;
}

int rdm_auth_sha256(const void *data, size_t len, uint8_t out[RDM_AUTH_MAC_LEN])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) ? -EIO : 0;
}

int rdm_auth_random(void *buf, size_t n)
{
	return gnutls_rnd(GNUTLS_RND_NONCE, buf, n) ? -EIO : 0;
}

bool rdm_auth_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t diff = 0;

	/* No early exit: the time taken must not say where the first difference is. */
	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

int rdm_auth_session_mac(const void *key, size_t klen, enum rdm_auth_dir dir,
			 const struct rdm_auth_bind *b, uint8_t mac[RDM_AUTH_MAC_LEN])
{
	const char *label = dir == RDM_AUTH_FROM_SOURCE ? session_label_src : session_label_dst;
	size_t llen = strlen(label) + 1; /* the NUL keeps the label prefix-free */
	uint8_t in[sizeof(session_label_dst) + 2 * RDM_AUTH_NONCE_LEN + 8 + RDM_AUTH_MAC_LEN +
		   4 + RDM_UUID_LEN];
	uint8_t *p = in;
	int ret;

	memcpy(p, label, llen);
	p += llen;
	memcpy(p, b->nonce_src, RDM_AUTH_NONCE_LEN);
	p += RDM_AUTH_NONCE_LEN;
	memcpy(p, b->nonce_dst, RDM_AUTH_NONCE_LEN);
	p += RDM_AUTH_NONCE_LEN;
	rdm_put_u64(p, b->token);
	p += 8;
	memcpy(p, b->blocks, RDM_AUTH_MAC_LEN);
	p += RDM_AUTH_MAC_LEN;
	rdm_put_u32(p, b->flags);
	p += 4;
	memcpy(p, b->uuid, RDM_UUID_LEN);
	p += RDM_UUID_LEN;
	ret = rdm_auth_hmac(key, klen, in, (size_t)(p - in), mac);
	memset(in, 0, sizeof(in));
	return ret;
}

int rdm_auth_channel_mac(const void *key, size_t klen, uint64_t token, uint16_t index,
			 uint16_t count, uint16_t flags, uint8_t mac[RDM_CHAN_MAC_LEN])
{
	uint8_t in[sizeof(channel_label) + 8 + 6], full[RDM_AUTH_MAC_LEN];
	uint8_t *p = in;
	int ret;

	memcpy(p, channel_label, sizeof(channel_label));
	p += sizeof(channel_label);
	rdm_put_u64(p, token);
	rdm_put_u16(p + 8, index);
	rdm_put_u16(p + 10, count);
	rdm_put_u16(p + 12, flags);
	ret = rdm_auth_hmac(key, klen, in, sizeof(in), full);
	/* Truncated (RFC 2104 section 5): the rdma_cm private data has 56 bytes in all. */
	if (!ret)
		memcpy(mac, full, RDM_CHAN_MAC_LEN);
	return ret;
}

int rdm_auth_chan_proof_encode(uint8_t buf[RDM_CHAN_PROOF_FRAME], const void *key, size_t klen,
			       const struct rdm_channel *c)
{
	struct rdm_msg m = {.type = RDM_MSG_CHAN_PROOF};
	int ret;

	ret = rdm_auth_channel_mac(key, klen, c->token, c->index, c->count, c->flags,
				   m.u.chan_proof.mac);
	if (!ret)
		ret = rdm_msg_encode(&m, buf, RDM_CHAN_PROOF_FRAME, NULL);
	return ret;
}

int rdm_auth_chan_proof_check(const void *buf, size_t len, const void *key, size_t klen,
			      const struct rdm_channel *c)
{
	uint8_t want[RDM_CHAN_MAC_LEN];
	struct rdm_msg m;
	int ret;

	if (len != RDM_CHAN_PROOF_FRAME || rdm_msg_decode(buf, len, &m) ||
	    m.type != RDM_MSG_CHAN_PROOF)
		return -EBADMSG;
	ret = rdm_auth_channel_mac(key, klen, c->token, c->index, c->count, c->flags, want);
	if (!ret && !rdm_auth_equal(want, m.u.chan_proof.mac, RDM_CHAN_MAC_LEN))
		ret = -EACCES;
	return ret;
}
