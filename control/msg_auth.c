/* SPDX-License-Identifier: MIT */
/* Payload layouts of the authentication messages: nonces, proofs, channel proofs. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "control/codec.h"

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* ---- AUTH_NONCE: nonce[32] ---- */

static int nonce_size(const struct rdm_msg *m, uint64_t *plen)
{
	(void)m;
	*plen = RDM_AUTH_NONCE_LEN;
	return 0;
}

static void nonce_enc(const struct rdm_msg *m, uint8_t *p)
{
	memcpy(p, m->u.nonce.nonce, RDM_AUTH_NONCE_LEN);
}

static int nonce_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)plen;
	memcpy(m->u.nonce.nonce, p, RDM_AUTH_NONCE_LEN);
	/* All zero is what a broken random source or a lazy forger sends. */
	return all_zero(p, RDM_AUTH_NONCE_LEN) ? -EBADMSG : 0;
}

/* ---- AUTH_PROOF: u32 flags, uuid[16], mac[32] ---- */

#define PROOF_LEN (4u + RDM_UUID_LEN + 32u)

static bool proof_ok(const struct rdm_auth_proof *a)
{
	if (a->flags & ~RDM_AUTH_F_KNOWN)
		return false;
	if (!(a->flags & RDM_AUTH_F_UUID) && !all_zero(a->uuid, sizeof(a->uuid)))
		return false;
	return (a->flags & RDM_AUTH_F_MAC) || all_zero(a->mac, sizeof(a->mac));
}

static int proof_size(const struct rdm_msg *m, uint64_t *plen)
{
	*plen = PROOF_LEN;
	return proof_ok(&m->u.proof) ? 0 : -EINVAL;
}

static void proof_enc(const struct rdm_msg *m, uint8_t *p)
{
	const struct rdm_auth_proof *a = &m->u.proof;

	rdm_put_u32(p, a->flags);
	memcpy(p + 4, a->uuid, RDM_UUID_LEN);
	memcpy(p + 4 + RDM_UUID_LEN, a->mac, sizeof(a->mac));
}

static int proof_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	struct rdm_auth_proof *a = &m->u.proof;

	(void)plen;
	a->flags = rdm_get_u32(p);
	memcpy(a->uuid, p + 4, RDM_UUID_LEN);
	memcpy(a->mac, p + 4 + RDM_UUID_LEN, sizeof(a->mac));
	return proof_ok(a) ? 0 : -EBADMSG;
}

/* ---- CHAN_PROOF: mac[16] ---- */

static int chan_proof_size(const struct rdm_msg *m, uint64_t *plen)
{
	(void)m;
	*plen = RDM_CHAN_MAC_LEN;
	return 0;
}

static void chan_proof_enc(const struct rdm_msg *m, uint8_t *p)
{
	memcpy(p, m->u.chan_proof.mac, RDM_CHAN_MAC_LEN);
}

static int chan_proof_dec(const uint8_t *p, uint32_t plen, struct rdm_msg *m)
{
	(void)plen;
	memcpy(m->u.chan_proof.mac, p, RDM_CHAN_MAC_LEN);
	return 0;
}

RDM_LAYOUT(nonce, RDM_AUTH_NONCE_LEN, true);
RDM_LAYOUT(proof, PROOF_LEN, true);
RDM_LAYOUT(chan_proof, RDM_CHAN_MAC_LEN, true);
