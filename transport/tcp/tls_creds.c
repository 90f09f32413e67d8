/* SPDX-License-Identifier: MIT */
/*
 * TLS credentials for the tcp transport: x509 files or a PSK, loaded and
 * checked once (so a bad file is an error when the VMM sets it, not halfway
 * through a migration), like QEMU's tls-creds-x509 / tls-creds-psk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errtext.h"
#include "transport/tcp/tls.h"

/*
 * x509: GnuTLS's defaults. PSK: also the (EC)DHE-PSK and plain PSK key
 * exchanges (ECDHE-PSK wins: forward secrecy); TLS 1.3 binds an external PSK
 * to SHA-256, which leaves AES-128-GCM and ChaCha20 of NORMAL's suites, and
 * NORMAL would pick ChaCha20: AES-GCM first, it is the faster one with AES-NI.
 */
#define PRIO_X509 "NORMAL"
#define PRIO_PSK                                                                           \
	"NORMAL:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+ECDHE-PSK:+DHE-PSK:" \
	"+PSK"
#define PSK_KEY_MAX 512

/* A file GnuTLS will read: a clearer errno than GnuTLS's "Error while reading file". */
static int readable(const char *what, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) == 0)
		return 0;
	return rdm_errret(err, errlen, -errno, "TLS %s '%s': %s", what, path, strerror(errno));
}

static int load_x509(struct rdm_tls *t, const struct rdm_tls_cfg *c, char *err, size_t errlen)
{
	bool need_ca = !t->server || c->verify_peer;
	int ret;

	if (t->server && (!c->cert_file || !c->key_file))
		return rdm_errret(err, errlen, -EINVAL,
				  "TLS x509: the destination needs a certificate and its key");
	if (!c->cert_file != !c->key_file)
		return rdm_errret(err, errlen, -EINVAL,
				  "TLS x509: a certificate needs its key file and a key its certificate");
	if (need_ca && !c->ca_file)
		return rdm_errret(err, errlen, -EINVAL, "TLS x509: %s",
				  t->server ? "verify-peer needs a CA file to check client certificates"
				  : "the source needs a CA file to check the destination");
	ret = gnutls_certificate_allocate_credentials(&t->x509);
	if (ret)
		return rdm_errret(err, errlen, -ENOMEM, "TLS x509: %s", gnutls_strerror(ret));
	if (c->ca_file) {
		ret = readable("CA file", c->ca_file, err, errlen);
		if (ret)
			return ret;
		ret = gnutls_certificate_set_x509_trust_file(t->x509, c->ca_file,
							     GNUTLS_X509_FMT_PEM);
		if (ret <= 0)
			return rdm_errret(err, errlen, -EINVAL, "TLS CA file '%s': %s", c->ca_file,
					  ret ? gnutls_strerror(ret) : "no PEM certificate in it");
	}
	if (c->cert_file) {
		ret = readable("certificate", c->cert_file, err, errlen);
		if (!ret)
			ret = readable("key", c->key_file, err, errlen);
		if (ret)
			return ret;
		ret = gnutls_certificate_set_x509_key_file(t->x509, c->cert_file, c->key_file,
							   GNUTLS_X509_FMT_PEM);
		if (ret < 0)
			return rdm_errret(err, errlen, -EINVAL, "TLS certificate '%s' with key '%s': %s",
					  c->cert_file, c->key_file, gnutls_strerror(ret));
	}
	if (c->hostname && !t->server) {
		t->hostname = strdup(c->hostname);
		if (!t->hostname)
			return rdm_errret(err, errlen, -ENOMEM, "TLS: out of memory");
	}
	t->verify_peer = t->server ? c->verify_peer : true;
	return 0;
}

/* Server side: the key of the one identity it was given. */
static int psk_lookup(gnutls_session_t s, const char *identity, gnutls_datum_t *key)
{
	const struct rdm_tls *t = gnutls_session_get_ptr(s);

	if (!t || strcmp(identity, t->psk_identity))
		return -1;
	key->data = gnutls_malloc(t->psk_key.size);
	if (!key->data)
		return -1;
	memcpy(key->data, t->psk_key.data, t->psk_key.size);
	key->size = t->psk_key.size;
	return 0;
}

static int load_psk(struct rdm_tls *t, const struct rdm_tls_cfg *c, char *err, size_t errlen)
{
	gnutls_datum_t key;
	int ret;

	if (!c->psk_identity || !c->psk_identity[0] || strlen(c->psk_identity) > 255)
		return rdm_errret(err, errlen, -EINVAL, "TLS PSK: need an identity of 1..255 bytes");
	if (!c->psk_key || c->psk_key_len < 16 || c->psk_key_len > PSK_KEY_MAX)
		return rdm_errret(err, errlen, -EINVAL, "TLS PSK: need a key of 16..%u bytes",
				  PSK_KEY_MAX);
	key.data = (unsigned char *)c->psk_key;
	key.size = (unsigned)c->psk_key_len;
	if (!t->server) {
		ret = gnutls_psk_allocate_client_credentials(&t->psk_client);
		if (!ret)
			ret = gnutls_psk_set_client_credentials(t->psk_client, c->psk_identity, &key,
								GNUTLS_PSK_KEY_RAW);
		if (ret)
			return rdm_errret(err, errlen, -EINVAL, "TLS PSK: %s", gnutls_strerror(ret));
		return 0;
	}
	t->psk_identity = strdup(c->psk_identity);
	t->psk_key.data = malloc(key.size);
	if (!t->psk_identity || !t->psk_key.data)
		return rdm_errret(err, errlen, -ENOMEM, "TLS: out of memory");
	memcpy(t->psk_key.data, key.data, key.size);
	t->psk_key.size = key.size;
	ret = gnutls_psk_allocate_server_credentials(&t->psk_server);
	if (ret)
		return rdm_errret(err, errlen, -ENOMEM, "TLS PSK: %s", gnutls_strerror(ret));
	gnutls_psk_set_server_credentials_function(t->psk_server, psk_lookup);
	return 0;
}

int rdm_tls_new(const struct rdm_tls_cfg *c, bool server, struct rdm_tls **out, char *err,
		size_t errlen)
{
	const char *prio, *where = NULL;
	struct rdm_tls *t;
	int ret;

	if (!c || !out)
		return rdm_errret(err, errlen, -EINVAL, "TLS: no options");
	t = calloc(1, sizeof(*t));
	if (!t)
		return rdm_errret(err, errlen, -ENOMEM, "TLS: out of memory");
	t->server = server;
	t->psk = c->psk;
	ret = c->psk ? load_psk(t, c, err, errlen) : load_x509(t, c, err, errlen);
	if (ret)
		goto err_free;
	prio = c->priority ? c->priority : c->psk ? PRIO_PSK : PRIO_X509;
	ret = gnutls_priority_init(&t->prio, prio, &where);
	if (ret) {
		ret = rdm_errret(err, errlen, -EINVAL, "TLS priority '%s': %s%s%s", prio,
				 gnutls_strerror(ret), where ? " at " : "", where ? where : "");
		goto err_free;
	}
	*out = t;
	return 0;

err_free:
	rdm_tls_free(t);
	return ret;
}

void rdm_tls_free(struct rdm_tls *t)
{
	if (!t)
		return;
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	if (t->x509)
		gnutls_certificate_free_credentials(t->x509);
	if (t->psk_client)
		gnutls_psk_free_client_credentials(t->psk_client);
	if (t->psk_server)
		gnutls_psk_free_server_credentials(t->psk_server);
	if (t->psk_key.data) {
		explicit_bzero(t->psk_key.data, t->psk_key.size);
		free(t->psk_key.data);
	}
	free(t->psk_identity);
	free(t->hostname);
	free(t);
}
