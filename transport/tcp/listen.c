/* SPDX-License-Identifier: MIT */
/*
 * The tcp listener: accepts sockets, reads their CHANNEL hello and, with a
 * secret, its proof (all pending hellos at once, each with its own deadline,
 * so one silent peer cannot hold up the others), assembles up to
 * RDM_TCP_MAX_SESSIONS sessions side by side (each with its own deadline, so a
 * half-open stranger cannot hold up the real source) and refuses everything
 * else with a reason in err.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errtext.h"
#include "control/auth.h"
#include "transport/tcp/sessions.h"
#include "transport/tcp/tcp_int.h"

/* Sockets whose hello is still being read: a full session fits, with room for strays. */
#define MAX_PENDING (RDM_TCP_MAX_CHANNELS + 1 + 32)
#define PEER_LEN RDM_TCP_PEER_LEN
#define HELLO_MAX (RDM_TCP_HELLO_LEN + RDM_CHAN_PROOF_FRAME)

struct pending {
	int fd;
	struct rdm_tls_conn *tls; /* opts.tls: the handshake comes before the hello */
	bool tls_up;              /* handshake done */
	short tls_events;         /* what the handshake waits for */
	int64_t deadline;
	size_t got;
	uint8_t buf[HELLO_MAX];
	char peer[PEER_LEN];
};


struct rdm_tcp_listener {
	struct rdm_tp_listener base;
	int fd;
	int wake_fd; /* listener_shutdown() -> poll() */
	atomic_bool stopping;
	struct rdm_tp_opts opts;
	int timeout_ms; /* hello and session assembly limit */
	struct pending pend[MAX_PENDING];
	unsigned npend;
	struct rdm_tcp_sess sess[RDM_TCP_MAX_SESSIONS];
	/* Refusals of the current accept() call, reported through err. */
	unsigned refused;
	char last_refusal[RDM_TP_ERRLEN];
	char *err;
	size_t errlen;
};

static void note_refusal(struct rdm_tcp_listener *l, const char *peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note_refusal(struct rdm_tcp_listener *l, const char *peer, const char *fmt, ...)
{
	char why[RDM_TP_ERRLEN - PEER_LEN - 2];
	va_list ap;

	va_start(ap, fmt);
	rdm_verrtext(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(l->last_refusal, sizeof(l->last_refusal), "%s: %s", peer, why);
	l->refused++;
	if (l->err && l->errlen)
		snprintf(l->err, l->errlen, "refused %u connection(s), last from %s",
			 l->refused, l->last_refusal);
}





static void pend_refuse(struct rdm_tcp_listener *l, struct pending *p, const char *why)
{
	note_refusal(l, p->peer, "%s", why);
	rdm_tls_conn_free(p->tls);
	p->tls = NULL;
	close(p->fd);
	p->fd = -1;
}


/*
 * The proof behind hello c (p->buf past the hello, when c says there is one):
 * why it does not prove membership, or NULL. Without a secret here proofs are
 * not judged; the session handshake then refuses a source that wants one.
 */
static const char *proof_check(const struct rdm_tcp_listener *l, const struct pending *p,
			       const struct rdm_channel *c, char *why, size_t len)
{
	bool has = c->flags & RDM_TCP_CHAN_PROOF;
	int ret = 0;

	if (has)
		ret = rdm_auth_chan_proof_check(p->buf + RDM_TCP_HELLO_LEN, RDM_CHAN_PROOF_FRAME,
						l->opts.secret ? l->opts.secret : (const uint8_t *)"",
						l->opts.secret ? l->opts.secret_len : 0, c);
	if (ret == -EBADMSG) {
		snprintf(why, len, "bad channel proof frame");
		return why;
	}
	if (!l->opts.secret)
		return NULL;
	if (!has)
		snprintf(why, len, "authentication failed: channel %u came without a proof (the "
				   "source has no secret)", c->index);
	else if (ret)
		snprintf(why, len, "authentication failed: the proof of channel %u does not match "
				   "this destination's secret", c->index);
	else
		return NULL;
	return why;
}

/* Best effort, hardly blocking: a refused connector learns why before the close. */
static void tell(const struct pending *p, const char *why)
{
	struct rdm_msg m = { .type = RDM_MSG_ERROR };
	uint8_t buf[RDM_HDR_LEN + 6 + RDM_ERRMSG_MAX];
	size_t len;

	m.u.error.code = -EACCES;
	snprintf(m.u.error.text, sizeof(m.u.error.text), "%s", why);
	if (rdm_msg_encode(&m, buf, sizeof(buf), &len))
		return;
	if (p->tls) {
		struct iovec iov = { buf, len };

		(void)rdm_tls_send_all(p->tls, &iov, 1, 100);
	} else
		(void)!send(p->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/*
 * A whole, well-formed hello: check its proof, then check it against the
 * session of its token (or start one) and hand the socket over to it
 * (p->fd = -1 either way).
 */
static void pend_join(struct rdm_tcp_listener *l, struct pending *p, const struct rdm_channel *c)
{
	struct rdm_tcp_sess *s = rdm_tcp_sess_find(l->sess, c->token);
	bool ctrl = c->flags & RDM_TCP_CHAN_CONTROL;
	const char *bad;
	char why[160];

	bad = proof_check(l, p, c, why, sizeof(why));
	if (bad) {
		tell(p, bad);
		pend_refuse(l, p, bad);
		return;
	}
	bad = rdm_tcp_sess_join_check(s, c, why, sizeof(why));
	if (!bad && !s) {
		s = rdm_tcp_sess_free_slot(l->sess);
		if (!s)
			bad = "too many sessions being set up at once";
		else if (rdm_tcp_sess_start(s, c, p->peer, l->opts.tls != NULL, l->timeout_ms))
			bad = "out of memory";
	}
	if (!bad && (rdm_tcp_set_keepalive(p->fd, l->timeout_ms) ||
		     (ctrl && rdm_tcp_set_nodelay(p->fd))))
		bad = "cannot set socket options";
	if (bad) {
		pend_refuse(l, p, bad);
		return;
	}
	if (ctrl) {
		s->ctrl_fd = p->fd;
		s->ctrl_tls = p->tls;
	} else {
		s->data_fd[c->index] = p->fd;
		if (s->data_tls)
			s->data_tls[c->index] = p->tls;
		s->have++;
	}
	p->fd = -1;
	p->tls = NULL;
}

/* Why p's bytes so far cannot be a hello, or NULL; m is set once all are in. */
static const char *hello_check(const struct pending *p, struct rdm_msg *m, char *why, size_t len)
{
	uint16_t type;
	uint32_t plen;
	int ret;

	if (p->got < RDM_HDR_LEN)
		return NULL;
	/* The header alone tells a stranger (HTTP, a port scan) from a peer. */
	ret = rdm_hdr_decode(p->buf, RDM_HDR_LEN, &type, &plen);
	if (ret || type != RDM_MSG_CHANNEL || RDM_HDR_LEN + plen != RDM_TCP_HELLO_LEN) {
		snprintf(why, len, "not an rdmig channel hello (first bytes %02x%02x%02x%02x)%s",
			 p->buf[0], p->buf[1], p->buf[2], p->buf[3],
			 p->buf[0] == 0x16 && p->buf[1] == 0x03
				 ? ": a TLS handshake, but this listener has no TLS set"
				 : "");
		return why;
	}
	if (p->got < RDM_TCP_HELLO_LEN)
		return NULL;
	ret = rdm_msg_decode(p->buf, RDM_TCP_HELLO_LEN, m);
	if (!ret && m->type != RDM_MSG_CHANNEL)
		ret = -EBADMSG;
	if (ret) {
		snprintf(why, len, "bad channel hello (%s: wrong magic or index)", strerror(-ret));
		return why;
	}
	return NULL;
}

/* Bytes of p's hello to read: the CHANNEL frame, and its proof when it says so. */
static size_t pend_want(const struct pending *p)
{
	if (p->got < RDM_TCP_HELLO_LEN)
		return RDM_TCP_HELLO_LEN;
	/* CHANNEL flags: payload bytes 10..11. */
	if (rdm_get_u16(p->buf + RDM_HDR_LEN + 10) & RDM_TCP_CHAN_PROOF)
		return HELLO_MAX;
	return RDM_TCP_HELLO_LEN;
}

/* With TLS: one handshake step; false while p waits (or was refused). */
static bool pend_tls_up(struct rdm_tcp_listener *l, struct pending *p)
{
	char why[RDM_TP_ERRLEN - PEER_LEN - 2];
	int ret;

	if (!p->tls || p->tls_up)
		return true;
	ret = rdm_tls_handshake_step(p->tls, &p->tls_events, why, sizeof(why));
	if (ret == -EAGAIN)
		return false;
	if (ret) {
		pend_refuse(l, p, why);
		return false;
	}
	p->tls_up = true;
	p->tls_events = POLLIN;
	return true;
}

/* Reads what has arrived of p's hello; refuses p as soon as it cannot be one. */
static void pend_read(struct rdm_tcp_listener *l, struct pending *p)
{
	const char *bad = NULL;
	struct rdm_msg m;
	char why[160];
	ssize_t n;
	int ret;

	if (!pend_tls_up(l, p))
		return;
	/* With TLS the hello may have come with the handshake: read until E_AGAIN. */
	if (p->tls) {
		ret = rdm_tls_recv_nb(p->tls, p->buf + p->got, pend_want(p) - p->got);
		n = ret == -ECONNRESET ? 0 : ret;
		ret = (int)n;
	} else {
		n = recv(p->fd, p->buf + p->got, pend_want(p) - p->got, MSG_DONTWAIT);
		ret = rdm_tcp_sys(n);
	}
	if (ret == -EAGAIN || ret == -EINTR)
		return;
	if (ret < 0) {
		snprintf(why, sizeof(why), "reading the channel hello: %s", strerror(-ret));
		bad = why;
	} else if (n == 0) {
		bad = p->got ? "closed in the middle of its channel hello"
			     : "closed without a channel hello";
	} else {
		p->got += (size_t)n;
		bad = hello_check(p, &m, why, sizeof(why));
	}
	if (bad)
		pend_refuse(l, p, bad);
	else if (p->got >= RDM_TCP_HELLO_LEN && p->got == pend_want(p))
		pend_join(l, p, &m.u.channel);
	else if (p->tls)
		pend_read(l, p); /* GnuTLS may hold more than the socket shows */
}

/* Accepts what is queued on the listening socket into pend[]. */
static int accept_new(struct rdm_tcp_listener *l)
{
	int fd;

	while (l->npend < MAX_PENDING) {
		struct pending *p;

		fd = rdm_tcp_sys(accept4(l->fd, NULL, NULL, SOCK_CLOEXEC));
		if (fd == -EAGAIN || fd == -EINTR || fd == -ECONNABORTED)
			return 0;
		if (fd < 0)
			return fd;
		p = &l->pend[l->npend++];
		memset(p, 0, sizeof(*p));
		p->fd = fd;
		p->tls_events = POLLIN;
		p->deadline = rdm_tcp_now_ms() + l->timeout_ms;
		rdm_tcp_peer_name(fd, p->peer, sizeof(p->peer));
		if (l->opts.tls) {
			char why[RDM_TP_ERRLEN - PEER_LEN - 2];

			if (rdm_tls_conn_new(l->opts.tls, fd, &p->tls, why, sizeof(why))) {
				pend_refuse(l, p, why);
				l->npend--;
			}
		}
	}
	return 0;
}

static void pend_compact(struct rdm_tcp_listener *l)
{
	unsigned i, j = 0;

	for (i = 0; i < l->npend; i++)
		if (l->pend[i].fd >= 0)
			l->pend[j++] = l->pend[i];
	l->npend = j;
}

/* Drops hellos and sessions that took too long; returns the next deadline. */
static int64_t expire(struct rdm_tcp_listener *l, int64_t deadline)
{
	int64_t now = rdm_tcp_now_ms(), next = deadline;

	for (unsigned i = 0; i < l->npend; i++) {
		struct pending *p = &l->pend[i];
		char why[96];

		if (p->deadline <= now) {
			snprintf(why, sizeof(why), "no channel hello within %d ms", l->timeout_ms);
			pend_refuse(l, p, why);
		} else if (p->deadline < next) {
			next = p->deadline;
		}
	}
	pend_compact(l);
	for (unsigned i = 0; i < RDM_TCP_MAX_SESSIONS; i++) {
		struct rdm_tcp_sess *s = &l->sess[i];

		if (s->active && s->deadline <= now) {
			note_refusal(l, s->peer, "session %016llx incomplete after %d ms (control %s, %u of %u data channels)",
				     (unsigned long long)s->token, l->timeout_ms,
				     s->ctrl_fd >= 0 ? "in" : "missing", s->have, s->count);
			rdm_tcp_sess_drop(s);
		} else if (s->active && s->deadline < next) {
			next = s->deadline;
		}
	}
	return next;
}





int rdm_tcp_accept(struct rdm_tp_listener *lp, int timeout_ms, struct rdm_tp **out, char *err,
		   size_t errlen)
{
	struct rdm_tcp_listener *l = (struct rdm_tcp_listener *)lp;
	/* Every session socket comes from pend[], so MAX_PENDING bounds them too. */
	struct pollfd pfd[2 + 2 * MAX_PENDING + RDM_TCP_MAX_SESSIONS * (1 + RDM_TCP_MAX_CHANNELS)];
	struct rdm_tcp_sess *owner[sizeof(pfd) / sizeof(pfd[0])], *done;
	int64_t deadline = rdm_tcp_deadline(timeout_ms);
	unsigned npfd, first_pend, first_sess, i;
	struct rdm_tcp *t;
	int ret;

	l->err = err;
	l->errlen = errlen;
	l->refused = 0;
	if (err && errlen)
		err[0] = '\0';
	for (;;) {
		int64_t next;

		if (atomic_load(&l->stopping)) {
			ret = -ECANCELED;
			snprintf(err, errlen, "accept: listener shut down");
			break;
		}
		next = expire(l, deadline);
		npfd = 0;
		pfd[npfd++] = (struct pollfd){ .fd = l->wake_fd, .events = POLLIN };
		pfd[npfd++] = (struct pollfd){ .fd = l->npend < MAX_PENDING ? l->fd : -1,
					       .events = POLLIN };
		first_pend = npfd;
		for (i = 0; i < l->npend; i++)
			pfd[npfd++] = (struct pollfd){ .fd = l->pend[i].fd,
						       .events = l->pend[i].tls_events };
		first_sess = npfd;
		npfd += rdm_tcp_sess_pollfds(l->sess, pfd + npfd, owner + npfd);

		ret = rdm_tcp_sys(poll(pfd, npfd, rdm_tcp_poll_ms(next)));
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			snprintf(err, errlen, "accept: poll: %s", strerror(-ret));
			break;
		}
		if (ret == 0 && rdm_tcp_poll_ms(deadline) == 0) {
			/* err keeps only the refusals: callers poll with short timeouts. */
			ret = -ETIMEDOUT;
			break;
		}
		if (pfd[0].revents)
			continue; /* shutdown: reported at the top */
		for (i = first_sess; i < npfd; i++) {
			if (pfd[i].revents && owner[i]->active) {
				note_refusal(l, owner[i]->peer,
					     "session %016llx: a channel closed before the session "
					     "was complete",
					     (unsigned long long)owner[i]->token);
				rdm_tcp_sess_drop(owner[i]);
			}
		}
		for (i = first_pend; i < first_sess; i++)
			if (pfd[i].revents)
				pend_read(l, &l->pend[i - first_pend]);
		pend_compact(l);
		if (pfd[1].revents) {
			ret = accept_new(l);
			if (ret) {
				snprintf(err, errlen, "accept: %s", strerror(-ret));
				break;
			}
		}
		done = rdm_tcp_sess_ready(l->sess);
		if (!done)
			continue;
		ret = rdm_tcp_sess_finish(done, &l->opts, l->timeout_ms, &t);
		if (ret) {
			note_refusal(l, done->peer, "session %016llx: sending the accept: %s",
				     (unsigned long long)done->token, strerror(-ret));
			rdm_tcp_sess_drop(done);
			continue;
		}
		*out = &t->base;
		break;
	}
	l->err = NULL;
	l->errlen = 0;
	return ret;
}

int rdm_tcp_listen(const struct rdm_addr *a, const struct rdm_tp_opts *o,
		   struct rdm_tp_listener **out, char *err, size_t errlen)
{
	struct rdm_tcp_listener *l;
	int one = 1, ret, flags;

	if (!a || !o || !out || a->scheme != RDM_SCHEME_TCP) {
		snprintf(err, errlen, "tcp listen: bad arguments (need a tcp: address)");
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "tcp listen: out of memory");
		return -ENOMEM;
	}
	l->base.ops = &rdm_tcp_ops;
	l->opts = *o;
	l->timeout_ms = rdm_tcp_eff_timeout(o->timeout_ms);
	for (unsigned i = 0; i < RDM_TCP_MAX_SESSIONS; i++)
		l->sess[i].ctrl_fd = -1;
	atomic_init(&l->stopping, false);

	l->wake_fd = rdm_tcp_sys(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (l->wake_fd < 0) {
		ret = l->wake_fd;
		snprintf(err, errlen, "tcp listen: eventfd: %s", strerror(-ret));
		goto err_free_l;
	}
	l->fd = rdm_tcp_socket(a->ss.ss_family);
	if (l->fd < 0) {
		ret = l->fd;
		snprintf(err, errlen, "tcp listen: socket: %s", strerror(-ret));
		goto err_close_wake;
	}
	/* A restarted destination must not wait out TIME_WAIT of the last session. */
	ret = rdm_tcp_sys(setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	if (ret) {
		snprintf(err, errlen, "tcp listen: SO_REUSEADDR: %s", strerror(-ret));
		goto err_close_sock;
	}
	/* Inherited by accepted sockets, and set before the SYN as window scaling needs. */
	rdm_tcp_set_bufsize(l->fd);
	ret = rdm_tcp_sys(bind(l->fd, (const struct sockaddr *)&a->ss, a->sslen));
	if (ret) {
		snprintf(err, errlen, "tcp listen: bind %s:%u: %s", a->host, a->port,
			 strerror(-ret));
		goto err_close_sock;
	}
	ret = rdm_tcp_sys(listen(l->fd, SOMAXCONN));
	if (ret) {
		snprintf(err, errlen, "tcp listen on %s:%u: %s", a->host, a->port,
			 strerror(-ret));
		goto err_close_sock;
	}
	/* accept4() after poll() must not block if the peer went away meanwhile. */
	flags = rdm_tcp_sys(fcntl(l->fd, F_GETFL));
	ret = flags < 0 ? flags : rdm_tcp_sys(fcntl(l->fd, F_SETFL, flags | O_NONBLOCK));
	if (ret) {
		snprintf(err, errlen, "tcp listen: fcntl: %s", strerror(-ret));
		goto err_close_sock;
	}
	*out = &l->base;
	return 0;

err_close_sock:
	close(l->fd);
err_close_wake:
	close(l->wake_fd);
err_free_l:
	free(l);
	return ret;
}

int rdm_tcp_listener_port(struct rdm_tp_listener *lp, uint16_t *port)
{
	struct rdm_tcp_listener *l = (struct rdm_tcp_listener *)lp;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int ret;

	ret = rdm_tcp_sys(getsockname(l->fd, (struct sockaddr *)&ss, &sl));
	if (ret)
		return ret;
	if (ss.ss_family == AF_INET)
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		return -EAFNOSUPPORT;
	return 0;
}

void rdm_tcp_listener_shutdown(struct rdm_tp_listener *lp)
{
	struct rdm_tcp_listener *l = (struct rdm_tcp_listener *)lp;
	uint64_t one = 1;

	atomic_store(&l->stopping, true);
	/* Cannot fail in a way that matters: a full counter is already readable. */
	(void)!write(l->wake_fd, &one, sizeof(one));
}

void rdm_tcp_listener_close(struct rdm_tp_listener *lp)
{
	struct rdm_tcp_listener *l = (struct rdm_tcp_listener *)lp;

	if (!l)
		return;
	for (unsigned i = 0; i < l->npend; i++) {
		rdm_tls_conn_free(l->pend[i].tls);
		close(l->pend[i].fd);
	}
	for (unsigned i = 0; i < RDM_TCP_MAX_SESSIONS; i++)
		rdm_tcp_sess_drop(&l->sess[i]);
	close(l->fd);
	close(l->wake_fd);
	free(l);
}
