/* SPDX-License-Identifier: MIT */
/* rdmig-bench's --tls-psk FILE / --tls-x509 DIR, as QEMU's tls-creds-psk / tls-creds-x509 lay them out. */
#ifndef RDMIG_BENCH_TLS_H
#define RDMIG_BENCH_TLS_H

#include <stdbool.h>

#include "rdmig/rdmig.h"

/*
 * psk_file: one line "IDENTITY:HEXKEY" (psktool's format, QEMU's keys.psk).
 * x509_dir: ca-cert.pem; the destination's server-cert.pem + server-key.pem;
 * the source's client-cert.pem + client-key.pem when present (the destination
 * then requires one). The source checks the destination's certificate
 * against hostname. 0, or -errno with the reason on stderr.
 */
int bench_tls_apply(rdmig_session *s, bool dest, const char *psk_file, const char *x509_dir,
		    const char *hostname);

#endif
