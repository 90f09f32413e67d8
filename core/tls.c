/* SPDX-License-Identifier: MIT */
/* rdmig_set_tls(): the public TLS options become the tcp transport's credentials. */
#include <errno.h>
#include <string.h>

#include "core/session.h"

/* The credentials for in (NULL: none), checked now; -errno with the reason set. */
static int load(struct rdmig_session *s, const struct rdmig_tls_opts *in, struct rdm_tls **out)
{
	struct rdmig_tls_opts o;
	struct rdm_tls_cfg c;
	char err[RDM_ERRLEN] = "";
	int ret;

	*out = NULL;
	if (!in)
		return 0;
	if (in->size < sizeof(in->size)) {
		rdm_set_api_error(s, "TLS: opts.size not set");
		return -EINVAL;
	}
	/* Fields past the caller's size keep their zero defaults. */
	memset(&o, 0, sizeof(o));
	memcpy(&o, in, in->size < sizeof(o) ? in->size : sizeof(o));
	if (o.creds != RDMIG_TLS_X509 && o.creds != RDMIG_TLS_PSK) {
		rdm_set_api_error(s, "TLS: creds must be RDMIG_TLS_X509 or RDMIG_TLS_PSK");
		return -EINVAL;
	}
	c = (struct rdm_tls_cfg){
		.psk = o.creds == RDMIG_TLS_PSK,
		.ca_file = o.ca_file,
		.cert_file = o.cert_file,
		.key_file = o.key_file,
		.hostname = o.hostname,
		.verify_peer = o.verify_peer,
		.psk_identity = o.psk_identity,
		.psk_key = o.psk_key,
		.psk_key_len = o.psk_key_len,
		.priority = o.priority,
	};
	ret = rdm_tls_new(&c, s->role == RDMIG_ROLE_DEST, out, err, sizeof(err));
	if (ret)
		rdm_set_api_error(s, "%s", err);
	return ret;
}

int rdmig_set_tls(rdmig_session *s, const struct rdmig_tls_opts *in)
{
	struct rdm_tls *tls, *old;
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	ret = load(s, in, &tls);
	if (ret)
		return rdm_api_leave(s, ret);
	ret = rdm_setup_lock(s, "TLS: a migration is in progress");
	if (ret) {
		rdm_tls_free(tls); /* not ours to install */
		return rdm_api_leave(s, ret);
	}
	old = s->tls;
	s->tls = tls;
	pthread_mutex_unlock(&s->lock);
	rdm_tls_free(old);
	return rdm_api_leave(s, 0);
}
