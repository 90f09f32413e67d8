/* SPDX-License-Identifier: MIT */
/*
 * Authenticated sessions: the secret and VM uuid setters, and the steps of
 * the handshake that prove both sides hold the secret (order in session.h,
 * proof inputs in control/auth.h). Strangers learn nothing from a refusal
 * beyond "authentication failed".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/session.h"

int rdmig_set_secret(rdmig_session *s, const void *secret, size_t len)
{
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (!secret || len < RDM_AUTH_SECRET_MIN || len > RDM_AUTH_SECRET_MAX) {
		rdm_set_api_error(s, "set_secret: the secret must be %u..%u bytes, got %zu%s",
				  RDM_AUTH_SECRET_MIN, RDM_AUTH_SECRET_MAX, len,
				  secret ? "" : " (NULL)");
		return rdm_api_leave(s, -EINVAL);
	}
	ret = rdm_setup_lock(s, "set_secret: a migration is in progress");
	if (ret)
		return rdm_api_leave(s, ret);
	explicit_bzero(s->secret, sizeof(s->secret));
	memcpy(s->secret, secret, len);
	s->secret_len = len;
	pthread_mutex_unlock(&s->lock);
	return rdm_api_leave(s, 0);
}

int rdmig_set_vm_uuid(rdmig_session *s, const uint8_t uuid[16])
{
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (!uuid) {
		rdm_set_api_error(s, "set_vm_uuid: no uuid");
		return rdm_api_leave(s, -EINVAL);
	}
	ret = rdm_setup_lock(s, "set_vm_uuid: a migration is in progress");
	if (ret)
		return rdm_api_leave(s, ret);
	memcpy(s->uuid, uuid, RDM_UUID_LEN);
	s->has_uuid = true;
	pthread_mutex_unlock(&s->lock);
	return rdm_api_leave(s, 0);
}

int rdm_quiet_send(struct rdmig_session *s, const struct rdm_msg *m)
{
	/* Proofs and nonces pass through here: the frame is wiped after the send. */
	return rdm_encode_send(s, m, true);
}

int rdm_quiet_recv(struct rdmig_session *s, void *buf, size_t cap, struct rdm_msg *m,
		   int timeout_ms)
{
	size_t len;
	int ret;

	ret = rdm_tp_recv(s->tp, buf, cap, &len, timeout_ms);
	return ret ? ret : rdm_msg_decode(buf, len, m);
}

void rdm_auth_init(const struct rdmig_session *s, struct rdm_auth_state *a)
{
	memset(a, 0, sizeof(*a));
	a->bind.token = s->tp->token;
}

uint64_t rdm_auth_features(const struct rdmig_session *s)
{
	return s->secret_len ? RDM_FEAT_AUTH : 0;
}

int rdm_auth_send_nonce(struct rdmig_session *s, struct rdm_auth_state *a, bool source)
{
	struct rdm_msg m = {.type = RDM_MSG_AUTH_NONCE};
	uint8_t *mine = source ? a->bind.nonce_src : a->bind.nonce_dst;
	int ret;

	if (!s->secret_len)
		return 0;
	ret = rdm_auth_random(mine, RDM_AUTH_NONCE_LEN);
	if (ret) {
		rdm_set_error(s, "authentication: no random nonce from GnuTLS");
		return ret;
	}
	memcpy(m.u.nonce.nonce, mine, RDM_AUTH_NONCE_LEN);
	return rdm_quiet_send(s, &m);
}

int rdm_auth_match(const struct rdmig_session *s, struct rdm_auth_state *a, uint64_t peer_feat,
		   bool source, char *why, size_t len)
{
	bool mine = s->secret_len > 0, theirs = peer_feat & RDM_FEAT_AUTH;

	if (mine && !theirs) {
		snprintf(why, len, source ? "authentication failed: the destination has no secret; "
					    "this source sends RAM to authenticated peers only"
					  : "authentication failed: the source has no secret and "
					    "this destination requires one");
		return -EACCES;
	}
	if (!mine && theirs) {
		snprintf(why, len, source ? "authentication failed: the destination requires a "
					    "secret and this source has none (rdmig_set_secret)"
					  : "authentication failed: the source requires a secret and "
					    "this destination has none (rdmig_set_secret)");
		return -EACCES;
	}
	a->on = mine;
	return 0;
}

int rdm_auth_recv_nonce(struct rdmig_session *s, struct rdm_auth_state *a, bool source,
			int timeout_ms, char *why, size_t len)
{
	uint8_t buf[RDM_HDR_LEN + 6 + RDM_ERRMSG_MAX];
	struct rdm_msg m;
	int ret;

	if (!a->on)
		return 0;
	ret = rdm_quiet_recv(s, buf, sizeof(buf), &m, timeout_ms);
	if (ret) {
		snprintf(why, len, "authentication: no nonce from the %s: %s",
			 source ? "destination" : "source", strerror(-ret));
		return ret;
	}
	if (m.type == RDM_MSG_ERROR) {
		snprintf(why, len, "%s refused: %s", source ? "destination" : "source",
			 m.u.error.text);
		return m.u.error.code;
	}
	if (m.type != RDM_MSG_AUTH_NONCE) {
		snprintf(why, len, "authentication: expected auth-nonce, got %s",
			 rdm_msg_name((uint16_t)m.type));
		return -EPROTO;
	}
	memcpy(source ? a->bind.nonce_dst : a->bind.nonce_src, m.u.nonce.nonce,
	       RDM_AUTH_NONCE_LEN);
	/* Our own nonce coming back is a reflection, not a peer. */
	if (rdm_auth_equal(a->bind.nonce_src, a->bind.nonce_dst, RDM_AUTH_NONCE_LEN)) {
		snprintf(why, len, "authentication failed: the peer echoed this side's nonce");
		return -EACCES;
	}
	return 0;
}

int rdm_auth_digest_blocks(struct rdm_auth_state *a, const void *frame, size_t len)
{
	return rdm_auth_sha256(frame, len, a->bind.blocks);
}

int rdm_auth_send_source_proof(struct rdmig_session *s, struct rdm_auth_state *a)
{
	struct rdm_msg m = {.type = RDM_MSG_AUTH_PROOF};
	struct rdm_auth_proof *p = &m.u.proof;
	int ret;

	if (s->has_uuid) {
		p->flags |= RDM_AUTH_F_UUID;
		memcpy(p->uuid, s->uuid, RDM_UUID_LEN);
	}
	if (a->on)
		p->flags |= RDM_AUTH_F_MAC;
	a->bind.flags = p->flags;
	memcpy(a->bind.uuid, p->uuid, RDM_UUID_LEN);
	if (a->on) {
		ret = rdm_auth_session_mac(s->secret, s->secret_len, RDM_AUTH_FROM_SOURCE, &a->bind,
					   p->mac);
		if (ret) {
			rdm_set_error(s, "authentication: HMAC failed in GnuTLS");
			return ret;
		}
	}
	ret = rdm_quiet_send(s, &m);
	explicit_bzero(&m, sizeof(m));
	return ret;
}

static void uuid_str(const uint8_t *u, char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
}

/* The peer's mac against the one we compute for dir; -EACCES when they differ. */
static int verify(struct rdmig_session *s, struct rdm_auth_state *a, enum rdm_auth_dir dir,
		  const uint8_t *mac)
{
	uint8_t want[RDM_AUTH_MAC_LEN];
	int ret;

	ret = rdm_auth_session_mac(s->secret, s->secret_len, dir, &a->bind, want);
	if (!ret && !rdm_auth_equal(want, mac, RDM_AUTH_MAC_LEN))
		ret = -EACCES;
	explicit_bzero(want, sizeof(want));
	return ret;
}

int rdm_auth_check_source_proof(struct rdmig_session *s, struct rdm_auth_state *a,
				const struct rdm_auth_proof *p, char *why, size_t len)
{
	char theirs[37], mine[37];
	int ret;

	a->bind.flags = p->flags;
	memcpy(a->bind.uuid, p->uuid, RDM_UUID_LEN);
	if (a->on != !!(p->flags & RDM_AUTH_F_MAC)) {
		snprintf(why, len, a->on ? "authentication failed: the source sent no proof"
					 : "the source sent a proof in an unauthenticated session");
		return a->on ? -EACCES : -EPROTO;
	}
	if (a->on) {
		ret = verify(s, a, RDM_AUTH_FROM_SOURCE, p->mac);
		if (ret) {
			snprintf(why, len, "authentication failed: the source's proof does not match "
					   "this destination's secret (wrong secret?)");
			return ret;
		}
	}
	if (!s->opts.caps[RDMIG_CAP_VALIDATE_UUID])
		return 0;
	if (!(p->flags & RDM_AUTH_F_UUID)) {
		snprintf(why, len, "validate-uuid: the source sent no VM uuid");
		return -EACCES;
	}
	if (!s->has_uuid || memcmp(p->uuid, s->uuid, RDM_UUID_LEN)) {
		uuid_str(p->uuid, theirs);
		uuid_str(s->uuid, mine);
		snprintf(why, len, "validate-uuid: the source VM is %s, this destination expects %s",
			 theirs, s->has_uuid ? mine : "(none set)");
		return -EACCES;
	}
	return 0;
}

int rdm_auth_send_dest_proof(struct rdmig_session *s, struct rdm_auth_state *a)
{
	struct rdm_msg m = {.type = RDM_MSG_AUTH_PROOF};
	int ret;

	if (!a->on)
		return 0;
	m.u.proof.flags = RDM_AUTH_F_MAC;
	ret = rdm_auth_session_mac(s->secret, s->secret_len, RDM_AUTH_FROM_DEST, &a->bind,
				   m.u.proof.mac);
	if (ret) {
		rdm_set_error(s, "authentication: HMAC failed in GnuTLS");
		return ret;
	}
	ret = rdm_send_msg(s, &m);
	explicit_bzero(&m, sizeof(m));
	return ret;
}

int rdm_auth_check_dest_proof(struct rdmig_session *s, struct rdm_auth_state *a,
			      const struct rdm_auth_proof *p, char *why, size_t len)
{
	int ret;

	if (p->flags != RDM_AUTH_F_MAC) {
		snprintf(why, len, "authentication failed: the destination's proof has flags 0x%x",
			 p->flags);
		return -EACCES;
	}
	ret = verify(s, a, RDM_AUTH_FROM_DEST, p->mac);
	if (ret)
		snprintf(why, len, "authentication failed: the destination's proof does not match "
				   "this source's secret (wrong secret?)");
	return ret;
}
