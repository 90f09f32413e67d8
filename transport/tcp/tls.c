/* SPDX-License-Identifier: MIT */
/*
 * TLS sessions on the tcp transport's sockets: the handshake (non-blocking
 * steps for the listener, or bounded by a deadline for connect) and the
 * record I/O the control stream and the page path go through.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "transport/tcp/tcp_int.h"
#include "transport/tcp/tls.h"

/* Small pieces of a frame (headers) are gathered into one record of this size. */
#define REC_MAX 16384u
/*
 * GnuTLS pulls a record header, then its body: two recv() calls per 16 KiB.
 * One recv() of up to this much feeds several records instead.
 */
#define RX_BUF (64u << 10)

struct rdm_tls_conn {
	gnutls_session_t s;
	const struct rdm_tls *tls;
	int fd;
	bool peeked;  /* server: the first byte looked like TLS */
	int push_err; /* -errno of the last failed socket send / receive */
	int pull_err;
	char rx_why[128];
	/* Received, not yet pulled by GnuTLS: only the receiving thread touches these. */
	uint8_t *rbuf;
	size_t roff, rlen;
};

static ssize_t push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct rdm_tls_conn *c = p;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0) {
		c->push_err = -errno;
		gnutls_transport_set_errno(c->s, errno);
	}
	return n;
}

/*
 * E_AGAIN only when nothing is buffered here either, so a caller that polls
 * the socket after E_AGAIN never sleeps on bytes already received.
 */
static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct rdm_tls_conn *c = p;
	ssize_t n;

	if (c->roff == c->rlen) {
		n = recv(c->fd, c->rbuf, RX_BUF, MSG_DONTWAIT);
		if (n <= 0) {
			if (n < 0) {
				c->pull_err = -errno;
				gnutls_transport_set_errno(c->s, errno);
			}
			return n;
		}
		c->roff = 0;
		c->rlen = (size_t)n;
	}
	n = (ssize_t)(len < c->rlen - c->roff ? len : c->rlen - c->roff);
	memcpy(buf, c->rbuf + c->roff, (size_t)n);
	c->roff += (size_t)n;
	return n;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct rdm_tls_conn *c = p;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	if (c->roff < c->rlen)
		return 1;
	return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

/* SNI carries DNS names only; an address is still checked against the certificate. */
static bool is_ip(const char *host)
{
	struct in6_addr a;

	return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

int rdm_tls_conn_new(const struct rdm_tls *tls, int fd, struct rdm_tls_conn **out, char *err,
		     size_t errlen)
{
	unsigned flags = (tls->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
			 GNUTLS_NO_TICKETS;
	struct rdm_tls_conn *c;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "TLS: out of memory");
		return -ENOMEM;
	}
	c->tls = tls;
	c->fd = fd;
	c->rbuf = malloc(RX_BUF);
	if (!c->rbuf) {
		free(c);
		snprintf(err, errlen, "TLS: out of memory");
		return -ENOMEM;
	}
	ret = gnutls_init(&c->s, flags);
	if (ret)
		goto err_free;
	ret = gnutls_priority_set(c->s, tls->prio);
	if (!ret && tls->psk)
		ret = gnutls_credentials_set(c->s, GNUTLS_CRD_PSK,
					     tls->server ? (void *)tls->psk_server
							 : (void *)tls->psk_client);
	else if (!ret)
		ret = gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, tls->x509);
	if (ret)
		goto err_deinit;
	if (!tls->psk && tls->server) {
		gnutls_certificate_server_set_request(c->s, tls->verify_peer ? GNUTLS_CERT_REQUIRE
									 : GNUTLS_CERT_IGNORE);
		if (tls->verify_peer)
			gnutls_session_set_verify_cert(c->s, NULL, 0);
	} else if (!tls->psk) {
		/* The CA check always; the name too when one was given. */
		gnutls_session_set_verify_cert(c->s, tls->hostname, 0);
		if (tls->hostname && !is_ip(tls->hostname))
			(void)gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, tls->hostname,
						     strlen(tls->hostname));
	}
	/* The PSK lookup finds the credentials through the session. */
	gnutls_session_set_ptr(c->s, (void *)tls);
	gnutls_transport_set_ptr(c->s, c);
	gnutls_transport_set_vec_push_function(c->s, push);
	gnutls_transport_set_pull_function(c->s, pull);
	gnutls_transport_set_pull_timeout_function(c->s, pull_timeout);
	*out = c;
	return 0;

err_deinit:
	gnutls_deinit(c->s);
err_free:
	snprintf(err, errlen, "TLS session: %s", gnutls_strerror(ret));
	free(c->rbuf);
	free(c);
	return -ENOMEM;
}

void rdm_tls_conn_free(struct rdm_tls_conn *c)
{
	if (!c)
		return;
	gnutls_deinit(c->s);
	free(c->rbuf);
	free(c);
}

const char *rdm_tls_rx_why(const struct rdm_tls_conn *c)
{
	return c ? c->rx_why : "";
}

/*
 * Why the handshake failed, worded for the operator; returns the errno for it
 * and sets *alert to what to tell the peer (-1: nothing, it hung up or spoke
 * first).
 */
static int handshake_why(struct rdm_tls_conn *c, int ret, int *alert, char *err, size_t errlen)
{
	bool psk = c->tls->psk;
	gnutls_datum_t st = { NULL, 0 };
	unsigned status;
	int e;

	*alert = -1;
	switch (ret) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		status = gnutls_session_get_verify_cert_status(c->s);
		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &st, 0);
		snprintf(err, errlen, "TLS: the peer's certificate is not trusted: %s",
			 st.data ? (const char *)st.data : "verification failed");
		gnutls_free(st.data);
		*alert = status & GNUTLS_CERT_SIGNER_NOT_FOUND ? GNUTLS_A_UNKNOWN_CA
							       : GNUTLS_A_BAD_CERTIFICATE;
		return -EACCES;
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		/* GnuTLS clients send only a certificate of a CA the server names. */
		snprintf(err, errlen, "TLS: the peer sent no certificate signed by a CA this side "
				      "trusts, and this side requires one (verify-peer)");
		*alert = GNUTLS_A_CERTIFICATE_REQUIRED;
		return -EACCES;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		snprintf(err, errlen, "TLS: the peer refused the handshake (%s): %s",
			 gnutls_alert_get_name(gnutls_alert_get(c->s)),
			 psk ? "the PSK identity or key differs"
			     : "it does not accept this side's certificate");
		return -EACCES;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		e = ret == GNUTLS_E_PUSH_ERROR ? c->push_err : c->pull_err;
		if (ret == GNUTLS_E_PREMATURE_TERMINATION || e == -ECONNRESET || e == -EPIPE) {
			snprintf(err, errlen, "TLS: the peer closed the connection during the "
					      "handshake (is TLS set on both sides?)");
			return -ECONNRESET;
		}
		snprintf(err, errlen, "TLS handshake: %s", strerror(e ? -e : EIO));
		return e ? e : -EIO;
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET:
		snprintf(err, errlen, "TLS: the peer does not speak TLS (%s)", gnutls_strerror(ret));
		return -EPROTO;
	case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER: /* TLS 1.3: a PSK binder that does not verify */
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
	case GNUTLS_E_KEYFILE_ERROR:
		if (psk) {
			snprintf(err, errlen, "TLS: the peer's PSK identity or key differs (%s)",
				 gnutls_strerror(ret));
			*alert = GNUTLS_A_DECRYPT_ERROR;
			return -EACCES;
		}
		/* fall through */
	default:
		snprintf(err, errlen, "TLS handshake: %s", gnutls_strerror(ret));
		*alert = GNUTLS_A_HANDSHAKE_FAILURE;
		return -EPROTO;
	}
}

/* Server: a first byte that cannot start a TLS record is a plaintext peer. */
static int peek_first(struct rdm_tls_conn *c, short *events, char *err, size_t errlen)
{
	uint8_t b;
	int ret = rdm_tcp_sys(recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT));

	if (ret == -EAGAIN || ret == -EINTR) {
		*events = POLLIN;
		return -EAGAIN;
	}
	if (ret < 0) {
		snprintf(err, errlen, "TLS handshake: %s", strerror(-ret));
		return ret;
	}
	if (ret == 0) {
		snprintf(err, errlen, "TLS: closed before the handshake");
		return -ECONNRESET;
	}
	if (b != 0x16) { /* TLS content type "handshake" */
		snprintf(err, errlen, "not a TLS handshake (first byte 0x%02x): the peer does not use "
				      "TLS, and this side requires it",
			 b);
		return -EPROTO;
	}
	c->peeked = true;
	return 0;
}

int rdm_tls_handshake_step(struct rdm_tls_conn *c, short *events, char *err, size_t errlen)
{
	int ret, alert, tries = 0;

	if (c->tls->server && !c->peeked) {
		ret = peek_first(c, events, err, errlen);
		if (ret)
			return ret;
	}
	do
		ret = gnutls_handshake(c->s);
	while (ret < 0 && ret != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(ret) && ++tries < 16);
	if (ret == 0)
		return 0;
	if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
		*events = gnutls_record_get_direction(c->s) ? POLLOUT : POLLIN;
		return -EAGAIN;
	}
	ret = handshake_why(c, ret, &alert, err, errlen);
	/* Tell the peer why, best effort: it then reports the alert, not a bare hang-up. */
	if (alert >= 0)
		(void)gnutls_alert_send(c->s, GNUTLS_AL_FATAL, (gnutls_alert_description_t)alert);
	return ret;
}

int rdm_tls_handshake(struct rdm_tls_conn *c, int64_t deadline, char *err, size_t errlen)
{
	struct pollfd pfd = { .fd = c->fd };
	int ret;

	for (;;) {
		ret = rdm_tls_handshake_step(c, &pfd.events, err, errlen);
		if (ret != -EAGAIN)
			return ret;
		do
			ret = rdm_tcp_sys(poll(&pfd, 1, rdm_tcp_poll_ms(deadline)));
		while (ret == -EINTR);
		if (ret == 0) {
			snprintf(err, errlen, "TLS handshake: the peer did not answer in time");
			return -ETIMEDOUT;
		}
		if (ret < 0) {
			snprintf(err, errlen, "TLS handshake: poll: %s", strerror(-ret));
			return ret;
		}
	}
}

/* A failed record call as -errno; receive failures also leave words in rx_why. */
static int record_err(struct rdm_tls_conn *c, ssize_t ret, bool rx)
{
	int e;

	switch (ret) {
	case GNUTLS_E_PREMATURE_TERMINATION:
		return -ECONNRESET;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		e = ret == GNUTLS_E_PUSH_ERROR ? c->push_err : c->pull_err;
		return e ? e : -EIO;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		if (rx)
			snprintf(c->rx_why, sizeof(c->rx_why), "TLS alert from the peer: %s",
				 gnutls_alert_get_name(gnutls_alert_get(c->s)));
		return -ECONNREFUSED;
	case GNUTLS_E_DECRYPTION_FAILED:
		if (rx)
			snprintf(c->rx_why, sizeof(c->rx_why),
				 "TLS: a record failed authentication (tampered with?)");
		return -EBADMSG;
	default:
		if (rx)
			snprintf(c->rx_why, sizeof(c->rx_why), "TLS: %s",
				 gnutls_strerror((int)ret));
		return -EPROTO;
	}
}

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret;

	do
		ret = rdm_tcp_sys(poll(&pfd, 1, timeout_ms));
	while (ret == -EINTR);
	if (ret == 0)
		return -ETIMEDOUT;
	return ret < 0 ? ret : 0;
}

/* One record call, retried until it moved bytes; each wait bounded by stall_ms. */
static int send_some(struct rdm_tls_conn *c, const uint8_t *p, size_t len, int stall_ms,
		     size_t *sent)
{
	ssize_t n;
	int ret;

	for (;;) {
		n = gnutls_record_send(c->s, p, len);
		if (n > 0) {
			*sent = (size_t)n;
			return 0;
		}
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n != GNUTLS_E_AGAIN)
			return record_err(c, n, false);
		/* Called again with the same bytes, as GnuTLS asks after E_AGAIN. */
		ret = wait_fd(c->fd, POLLOUT, stall_ms);
		if (ret)
			return ret;
	}
}

static int send_buf(struct rdm_tls_conn *c, const uint8_t *p, size_t len, int stall_ms)
{
	size_t n;
	int ret;

	while (len) {
		ret = send_some(c, p, len, stall_ms, &n);
		if (ret)
			return ret;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Large pieces go straight from the caller's memory (GnuTLS encrypts them into
 * its own buffer); small ones, like a frame header, are gathered with what
 * follows so a frame does not cost an extra small record.
 */
int rdm_tls_send_all(struct rdm_tls_conn *c, struct iovec *iov, int iovcnt, int stall_ms)
{
	uint8_t rec[REC_MAX];
	size_t fill = 0;
	int ret;

	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		while (len) {
			size_t n;

			if (fill == 0 && len >= REC_MAX) {
				ret = send_some(c, p, len, stall_ms, &n);
				if (ret)
					return ret;
			} else {
				n = len < REC_MAX - fill ? len : REC_MAX - fill;
				memcpy(rec + fill, p, n);
				fill += n;
				if (fill == REC_MAX) {
					ret = send_buf(c, rec, fill, stall_ms);
					if (ret)
						return ret;
					fill = 0;
				}
			}
			p += n;
			len -= n;
		}
	}
	return fill ? send_buf(c, rec, fill, stall_ms) : 0;
}

int rdm_tls_recv_nb(struct rdm_tls_conn *c, void *buf, size_t len)
{
	unsigned tries = 0;
	ssize_t n;

	/* Non-fatal news (a warning alert, a TLS 1.2 renegotiation request) is skipped. */
	do
		n = gnutls_record_recv(c->s, buf, len);
	while (n == GNUTLS_E_INTERRUPTED ||
	       (n < 0 && n != GNUTLS_E_AGAIN && !gnutls_error_is_fatal((int)n) && ++tries < 16));
	if (n > 0)
		return n > INT32_MAX ? INT32_MAX : (int)n;
	if (n == 0)
		return -ECONNRESET; /* close_notify */
	if (n == GNUTLS_E_AGAIN)
		return -EAGAIN;
	return record_err(c, n, true);
}

int rdm_tls_recv_all(struct rdm_tls_conn *c, void *buf, size_t len, size_t *got,
		     int64_t deadline)
{
	uint8_t *p = buf;
	int ret;

	while (*got < len) {
		ret = rdm_tls_recv_nb(c, p + *got, len - *got);
		if (ret > 0) {
			*got += (size_t)ret;
			continue;
		}
		if (ret != -EAGAIN)
			return ret;
		/* Nothing decrypted is left in GnuTLS after E_AGAIN: the socket tells. */
		ret = wait_fd(c->fd, POLLIN, rdm_tcp_poll_ms(deadline));
		if (ret)
			return ret;
	}
	return 0;
}
