/* SPDX-License-Identifier: MIT */
/*
 * TLS on the sockets of the tcp transport (GnuTLS). One rdm_tls_conn per
 * socket, made right after connect()/accept(); the handshake runs before the
 * CHANNEL hello. Every GnuTLS call is non-blocking at the socket; the waits
 * (poll with the caller's deadline or stall limit) are here, so a timeout
 * leaves the session resumable and shutdown(fd) wakes every waiter.
 *
 * One thread may send while another receives on the same conn (GnuTLS allows
 * that for TLS); two senders or two receivers need the caller's lock, as on a
 * plain socket.
 */
#ifndef RDMIG_TRANSPORT_TCP_TLS_H
#define RDMIG_TRANSPORT_TCP_TLS_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "transport/transport.h"

/* Loaded credentials (tls_creds.c), read-only once made: shared by every socket. */
struct rdm_tls {
	bool server, psk, verify_peer;
	char *hostname; /* client: checked against the server's certificate */
	gnutls_priority_t prio;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_client_credentials_t psk_client;
	gnutls_psk_server_credentials_t psk_server;
	char *psk_identity; /* server: the one identity it knows */
	gnutls_datum_t psk_key;
};

struct rdm_tls_conn;

/* A TLS session on fd for the credentials' side (client or server). */
int rdm_tls_conn_new(const struct rdm_tls *tls, int fd, struct rdm_tls_conn **out, char *err,
		     size_t errlen);
/* Frees the session; the fd stays the caller's. */
void rdm_tls_conn_free(struct rdm_tls_conn *c);

/*
 * One non-blocking step of the handshake: 0 once it is done, -EAGAIN with
 * *events (POLLIN/POLLOUT) to wait for, or -errno with the reason in err (a
 * plaintext peer, wrong credentials, an untrusted certificate, ...).
 */
int rdm_tls_handshake_step(struct rdm_tls_conn *c, short *events, char *err, size_t errlen);
/* The whole handshake, bounded by deadline (rdm_tcp_deadline()). */
int rdm_tls_handshake(struct rdm_tls_conn *c, int64_t deadline, char *err, size_t errlen);

/* As rdm_tcp_send_all()/rdm_tcp_recv_all(), through the TLS session. */
int rdm_tls_send_all(struct rdm_tls_conn *c, struct iovec *iov, int iovcnt, int stall_ms);
int rdm_tls_recv_all(struct rdm_tls_conn *c, void *buf, size_t len, size_t *got,
		     int64_t deadline);
/*
 * What has arrived, without waiting: bytes read (> 0), -EAGAIN, -ECONNRESET
 * at the peer's end, or another -errno.
 */
int rdm_tls_recv_nb(struct rdm_tls_conn *c, void *buf, size_t len);

/* Why the last receive failed at the TLS layer ("" when it was not TLS). */
const char *rdm_tls_rx_why(const struct rdm_tls_conn *c);

#endif
