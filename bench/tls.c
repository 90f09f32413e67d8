/* SPDX-License-Identifier: MIT */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PSK_LINE 1200

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int apply_psk(rdmig_session *s, const char *path)
{
	struct rdmig_tls_opts o = {.size = sizeof(o), .creds = RDMIG_TLS_PSK};
	char line[PSK_LINE];
	unsigned char key[PSK_LINE / 2];
	size_t n = 0;
	char *colon, *hex;
	FILE *f = fopen(path, "r");
	int ret;

	if (!f) {
		ret = -errno;
		fprintf(stderr, "rdmig-bench: --tls-psk %s: %s\n", path, strerror(errno));
		return ret;
	}
	ret = fgets(line, sizeof(line), f) ? 0 : -EINVAL;
	fclose(f);
	colon = ret ? NULL : strchr(line, ':');
	if (!colon) {
		fprintf(stderr, "rdmig-bench: --tls-psk %s: expected IDENTITY:HEXKEY\n", path);
		return -EINVAL;
	}
	*colon = '\0';
	for (hex = colon + 1; hexval(hex[0]) >= 0 && hexval(hex[1]) >= 0; hex += 2)
		key[n++] = (unsigned char)(hexval(hex[0]) << 4 | hexval(hex[1]));
	o.psk_identity = line;
	o.psk_key = key;
	o.psk_key_len = n;
	ret = rdmig_set_tls(s, &o);
	if (ret)
		fprintf(stderr, "rdmig-bench: --tls-psk %s: %s\n", path, rdmig_last_error(s));
	memset(key, 0, sizeof(key));
	return ret;
}

static int apply_x509(rdmig_session *s, bool dest, const char *dir, const char *hostname)
{
	struct rdmig_tls_opts o = {.size = sizeof(o), .creds = RDMIG_TLS_X509};
	char ca[4096], cert[4096], key[4096], client[4096];
	bool client_cert;
	int ret;

	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	snprintf(client, sizeof(client), "%s/client-cert.pem", dir);
	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, dest ? "server" : "client");
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, dest ? "server" : "client");
	client_cert = access(client, R_OK) == 0;
	o.ca_file = ca;
	if (dest || client_cert) {
		o.cert_file = cert;
		o.key_file = key;
	}
	o.verify_peer = dest && client_cert;
	o.hostname = dest ? NULL : hostname;
	ret = rdmig_set_tls(s, &o);
	if (ret)
		fprintf(stderr, "rdmig-bench: --tls-x509 %s: %s\n", dir, rdmig_last_error(s));
	return ret;
}

int bench_tls_apply(rdmig_session *s, bool dest, const char *psk_file, const char *x509_dir,
		    const char *hostname)
{
	if (psk_file && x509_dir) {
		fprintf(stderr, "rdmig-bench: --tls-psk and --tls-x509 exclude each other\n");
		return -EINVAL;
	}
	if (psk_file)
		return apply_psk(s, psk_file);
	if (x509_dir)
		return apply_x509(s, dest, x509_dir, hostname);
	return 0;
}
