/* SPDX-License-Identifier: MIT */
/* rdmig_set_tls(): the public TLS options become the tcp transport's credentials. */
#include <errno.h>
#include <string.h>

#include "core/session.h"

static bool in_progress(struct rdmig_session *s)
{
	enum rdmig_status st;

	if (!s->started)
		return false;
	st = rdm_get_status(s);
	return st != RDMIG_STATUS_COMPLETED && st != RDMIG_STATUS_FAILED &&
	       st != RDMIG_STATUS_CANCELLED;
}

int rdmig_set_tls(rdmig_session *s, const struct rdmig_tls_opts *in)
{
	struct rdmig_tls_opts o;
	struct rdm_tls_cfg c;
	struct rdm_tls *tls = NULL, *old;
	char err[RDM_ERRLEN] = "";
	int ret;

	if (!s)
		return -EINVAL;
	if (in_progress(s)) {
		rdm_set_api_error(s, "TLS: a migration is in progress");
		return -EBUSY;
	}
	if (in) {
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
		ret = rdm_tls_new(&c, s->role == RDMIG_ROLE_DEST, &tls, err, sizeof(err));
		if (ret) {
			rdm_set_api_error(s, "%s", err);
			return ret;
		}
	}
	pthread_mutex_lock(&s->lock);
	old = s->tls;
	s->tls = tls;
	pthread_mutex_unlock(&s->lock);
	rdm_tls_free(old);
	return 0;
}
