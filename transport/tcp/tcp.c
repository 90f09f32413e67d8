/* SPDX-License-Identifier: MIT */
/*
 * The tcp transport: connect, the source's page path, the control stream,
 * shutdown and close. Receivers are in rx.c, the listener in listen.c; the
 * session layout on the wire is described in tcp_int.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control/auth.h"
#include "transport/tcp/tcp_int.h"

/* The calling thread's message (transport.h): t's other threads keep their own. */
int rdm_tcp_err(struct rdm_tcp *t, int ret, const char *fmt, ...)
{
	va_list ap;

	(void)t;
	va_start(ap, fmt);
	rdm_tp_vfail(ret, fmt, ap);
	va_end(ap);
	return ret;
}

/* Any failure after shutdown() is reported as the cancel it is. */
static int failed(struct rdm_tcp *t, int ret, const char *what)
{
	if (atomic_load(&t->stopping))
		return rdm_tcp_err(t, -ECANCELED, "%s: transport shut down", what);
	switch (ret) {
	case -EPIPE:
	case -ECONNRESET:
		return rdm_tcp_err(t, ret, "%s: peer closed the connection", what);
	case -ETIMEDOUT:
		return rdm_tcp_err(t, ret, "%s: peer not responding for %d ms", what,
				   t->timeout_ms);
	default:
		return rdm_tcp_err(t, ret, "%s: %s", what, strerror(-ret));
	}
}

int rdm_tcp_new(enum rdm_tcp_role role, const struct rdm_tp_opts *o, unsigned nchan,
		uint64_t token, struct rdm_tcp **out)
{
	pthread_condattr_t ca;
	struct rdm_tcp *t;
	unsigned i;
	int ret = -ENOMEM;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->chan = calloc(nchan, sizeof(*t->chan));
	if (!t->chan)
		goto err_free_t;
	t->base.ops = &rdm_tcp_ops;
	t->role = role;
	t->tls_creds = o->tls;
	t->timeout_ms = rdm_tcp_eff_timeout(o->timeout_ms);
	t->chunk_size = o->chunk_size;
	t->token = token;
	t->base.token = token;
	t->secret = o->secret;
	t->secret_len = o->secret ? o->secret_len : 0;
	t->nchan = nchan;
	t->ndata = nchan;
	t->ctrl_fd = -1;
	atomic_init(&t->stopping, false);
	for (i = 0; i < nchan; i++) {
		t->chan[i].t = t;
		t->chan[i].index = i;
		t->chan[i].fd = -1;
		pthread_mutex_init(&t->chan[i].tx_lock, NULL);
	}
	pthread_mutex_init(&t->ctrl_tx_lock, NULL);
	pthread_mutex_init(&t->ctrl_rx_lock, NULL);
	pthread_mutex_init(&t->lock, NULL);
	/* wait_fence() deadlines must not jump with the wall clock. */
	ret = -pthread_condattr_init(&ca);
	if (ret)
		goto err_destroy_locks;
	ret = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!ret)
		ret = -pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		goto err_destroy_locks;
	*out = t;
	return 0;

err_destroy_locks:
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->ctrl_rx_lock);
	pthread_mutex_destroy(&t->ctrl_tx_lock);
	for (i = 0; i < nchan; i++)
		pthread_mutex_destroy(&t->chan[i].tx_lock);
	free(t->chan);
err_free_t:
	free(t);
	return ret;
}

/* Threads must be joined; closes whatever fds are set. */
void rdm_tcp_free(struct rdm_tcp *t)
{
	unsigned i;

	for (i = 0; i < t->nchan; i++) {
		rdm_tls_conn_free(t->chan[i].tls);
		if (t->chan[i].fd >= 0)
			close(t->chan[i].fd);
		pthread_mutex_destroy(&t->chan[i].tx_lock);
		free(t->chan[i].bounce);
	}
	rdm_tls_conn_free(t->ctrl_tls);
	if (t->ctrl_fd >= 0)
		close(t->ctrl_fd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->ctrl_rx_lock);
	pthread_mutex_destroy(&t->ctrl_tx_lock);
	free(t->rx_stash);
	free(t->blk);
	free(t->chan);
	free(t);
}

#define CTRL_INDEX UINT32_MAX /* open_channel(): the control socket */

/*
 * A TLS 1.3 server checks the client's certificate after the client is done
 * with the handshake: a refusal then shows as an alert or a reset at the
 * first send. Read the alert if it is there; say what a reset means if not.
 */
static void tls_refusal(struct rdm_tls_conn *tls, int ret, char *why, size_t whylen)
{
	uint8_t b;

	if (rdm_tls_recv_nb(tls, &b, 1) < 0 && rdm_tls_rx_why(tls)[0])
		snprintf(why, whylen, "refused after the TLS handshake: %s", rdm_tls_rx_why(tls));
	else if (ret == -ECONNRESET || ret == -EPIPE)
		snprintf(why, whylen, "the peer closed the connection right after the TLS "
				      "handshake (it may not accept this side's certificate; its "
				      "log says why)");
}

/*
 * One socket of the session: connected, tuned, TLS handshake done (with
 * TLS), hello sent. why: the reason when it is more than an errno.
 */
static int open_channel(struct rdm_tcp *t, const struct rdm_addr *a, unsigned index,
			int64_t deadline, int *out, struct rdm_tls_conn **tls, char *what,
			size_t whatlen, char *why, size_t whylen)
{
	bool ctrl = index == CTRL_INDEX;
	uint16_t flags = (ctrl ? RDM_TCP_CHAN_CONTROL : 0) | (t->secret ? RDM_TCP_CHAN_PROOF : 0);
	uint8_t hello[RDM_TCP_HELLO_LEN + RDM_CHAN_PROOF_FRAME];
	struct iovec iov = { hello, RDM_TCP_HELLO_LEN };
	int fd, ret;

	if (ctrl)
		snprintf(what, whatlen, "control socket to %s:%u", a->host, a->port);
	else
		snprintf(what, whatlen, "data socket %u to %s:%u", index, a->host, a->port);
	fd = rdm_tcp_socket(a->ss.ss_family);
	if (fd < 0)
		return fd;
	/* Before connect(): the window scale is agreed in the SYN. */
	if (!ctrl)
		rdm_tcp_set_bufsize(fd);
	ret = rdm_tcp_connect_fd(fd, (const struct sockaddr *)&a->ss, a->sslen, deadline);
	if (ret)
		goto err_close_fd;
	ret = rdm_tcp_set_keepalive(fd, t->timeout_ms);
	/*
	 * Every socket: a FENCE (or an urgent page) behind a data frame would
	 * otherwise wait for the peer's delayed ACK, 40 ms of downtime at the stop.
	 */
	if (!ret)
		ret = rdm_tcp_set_nodelay(fd);
	if (ret)
		goto err_close_fd;
	if (t->tls_creds) {
		ret = rdm_tls_conn_new(t->tls_creds, fd, tls, why, whylen);
		if (!ret)
			ret = rdm_tls_handshake(*tls, deadline, why, whylen);
		if (ret)
			goto err_free_tls;
	}
	ret = rdm_tcp_hello_encode(hello, ctrl ? 0 : index, t->nchan, flags, t->token);
	if (!ret && t->secret) {
		struct rdm_channel c = { RDM_WIRE_MAGIC, RDM_WIRE_VERSION, (uint16_t)(ctrl ? 0 : index),
					 (uint16_t)t->nchan, flags, t->token };

		ret = rdm_auth_chan_proof_encode(hello + RDM_TCP_HELLO_LEN, t->secret,
						 t->secret_len, &c);
		iov.iov_len += RDM_CHAN_PROOF_FRAME;
	}
	if (!ret)
		ret = rdm_tcp_io_send(fd, *tls, &iov, 1, t->timeout_ms);
	if (ret && *tls)
		tls_refusal(*tls, ret, why, whylen);
	if (ret)
		goto err_free_tls;
	*out = fd;
	return 0;

err_free_tls:
	rdm_tls_conn_free(*tls);
	*tls = NULL;
err_close_fd:
	close(fd);
	return ret;
}

/*
 * The listener's answer once it holds every socket of the session: the ack
 * (a CHANNEL frame), or an ERROR frame saying why it refused us.
 */
static int wait_ack(struct rdm_tcp *t, int64_t deadline)
{
	uint8_t buf[RDM_HDR_LEN + 6 + RDM_ERRMSG_MAX];
	struct rdm_msg m;
	uint16_t type = 0;
	uint32_t plen = 0;
	size_t got = 0;
	int ret;

	ret = rdm_tcp_io_recv(t->ctrl_fd, t->ctrl_tls, buf, RDM_HDR_LEN, &got, deadline);
	if (!ret && (rdm_hdr_decode(buf, RDM_HDR_LEN, &type, &plen) ||
		     (type != RDM_MSG_CHANNEL && type != RDM_MSG_ERROR) ||
		     plen > sizeof(buf) - RDM_HDR_LEN))
		return rdm_tcp_err(t, -EPROTO, "bad session accept from the listener");
	if (!ret)
		ret = rdm_tcp_io_recv(t->ctrl_fd, t->ctrl_tls, buf, RDM_HDR_LEN + plen, &got,
				      deadline);
	if (ret && rdm_tls_rx_why(t->ctrl_tls)[0])
		return rdm_tcp_err(t, ret, "session refused: %s", rdm_tls_rx_why(t->ctrl_tls));
	if (ret == -ECONNRESET)
		return rdm_tcp_err(t, -ECONNREFUSED,
				   "session refused by the listener (closed before accepting; "
				   "its log says why: e.g. TLS set on one side only)");
	if (ret == -ETIMEDOUT)
		return rdm_tcp_err(t, ret, "listener did not accept the session in %d ms",
				   t->timeout_ms);
	if (ret)
		return failed(t, ret, "waiting for the session accept");
	ret = rdm_msg_decode(buf, RDM_HDR_LEN + plen, &m);
	if (!ret && m.type == RDM_MSG_ERROR)
		return rdm_tcp_err(t, m.u.error.code, "session refused by the listener: %s",
				   m.u.error.text);
	if (ret || m.type != RDM_MSG_CHANNEL || m.u.channel.version != RDM_WIRE_VERSION ||
	    m.u.channel.flags != (RDM_TCP_CHAN_CONTROL | RDM_TCP_CHAN_ACK) ||
	    m.u.channel.token != t->token || m.u.channel.count != t->nchan)
		return rdm_tcp_err(t, -EPROTO, "bad session accept from the listener");
	return 0;
}

static int tcp_connect(const struct rdm_addr *a, const struct rdm_tp_opts *o,
		       struct rdm_tp **out, char *err, size_t errlen)
{
	struct rdm_tcp *t;
	char what[300], why[RDM_TP_ERRLEN] = "";
	uint64_t token = 0;
	int64_t deadline;
	unsigned i;
	int ret;

	if (!a || !o || !out || a->scheme != RDM_SCHEME_TCP || o->channels < 1 ||
	    o->channels + o->urgent_channel > RDM_TCP_MAX_CHANNELS || o->chunk_size == 0) {
		snprintf(err, errlen,
			 "tcp connect: bad arguments (need a tcp: address, 1..%u channels, "
			 "chunk_size > 0)",
			 RDM_TCP_MAX_CHANNELS);
		return -EINVAL;
	}
	/* The token only tells concurrent sessions apart; it is not a secret. */
	while (token == 0) {
		ret = rdm_tcp_sys(getrandom(&token, sizeof(token), 0));
		if (ret < 0 && ret != -EINTR) {
			snprintf(err, errlen, "tcp connect: getrandom: %s", strerror(-ret));
			return ret;
		}
	}
	ret = rdm_tcp_new(RDM_TCP_SOURCE, o, o->channels + o->urgent_channel, token, &t);
	if (ret) {
		snprintf(err, errlen, "tcp connect: %s", strerror(-ret));
		return ret;
	}
	t->ndata = o->channels;
	t->urgent = o->urgent_channel;
	deadline = rdm_tcp_deadline(t->timeout_ms);

	ret = open_channel(t, a, CTRL_INDEX, deadline, &t->ctrl_fd, &t->ctrl_tls, what,
			   sizeof(what), why, sizeof(why));
	for (i = 0; !ret && i < t->nchan; i++)
		ret = open_channel(t, a, i, deadline, &t->chan[i].fd, &t->chan[i].tls, what,
				   sizeof(what), why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "tcp connect: %s: %s", what,
			 why[0] ? why : ret == -ETIMEDOUT ? "timed out" : strerror(-ret));
		goto err_free_tp;
	}
	ret = wait_ack(t, deadline);
	if (ret) {
		snprintf(err, errlen, "tcp connect to %s:%u: %s", a->host, a->port, rdm_tp_why(ret));
		goto err_free_tp;
	}
	*out = &t->base;
	return 0;

err_free_tp:
	rdm_tcp_free(t);
	return ret;
}

static int tcp_set_blocks(struct rdm_tp *tp, const struct rdm_tp_block *b, unsigned n)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;
	struct rdm_tcp_blk *blk;
	unsigned i;

	if (atomic_load(&t->stopping))
		return rdm_tcp_err(t, -ECANCELED, "set_blocks: transport shut down");
	if (t->blk)
		return rdm_tcp_err(t, -EALREADY, "set_blocks: block list already set");
	if (!b || n == 0 || n > RDM_MAX_BLOCKS)
		return rdm_tcp_err(t, -EINVAL, "set_blocks: need 1..%u blocks, got %u",
				   RDM_MAX_BLOCKS, n);
	for (i = 0; i < n; i++)
		if (!b[i].host || b[i].len == 0)
			return rdm_tcp_err(t, -EINVAL, "set_blocks: block %u ('%s') is empty", i,
					   b[i].name ? b[i].name : "?");
	blk = calloc(n, sizeof(*blk));
	if (!blk)
		return rdm_tcp_err(t, -ENOMEM, "set_blocks: out of memory");
	for (i = 0; i < n; i++) {
		blk[i].host = b[i].host;
		blk[i].len = b[i].len;
		/* A page never spans two channels: postcopy places whole pages only. */
		blk[i].chunk = t->chunk_size > b[i].page_size ? t->chunk_size : b[i].page_size;
	}
	t->blk = blk;
	t->nblk = n;
	return t->role == RDM_TCP_DEST ? rdm_tcp_rx_start(t) : 0;
}

/* One frame on data channel c; a cut frame leaves nothing after it parseable. */
static int chan_send(struct rdm_tcp *t, unsigned c, struct iovec *iov, int iovcnt,
		     const char *op)
{
	struct rdm_tcp_chan *ch = &t->chan[c];
	char what[64];
	int ret;

	pthread_mutex_lock(&ch->tx_lock);
	ret = ch->tx_err;
	if (!ret) {
		ret = rdm_tcp_io_send(ch->fd, ch->tls, iov, iovcnt, t->timeout_ms);
		ch->tx_err = ret;
	}
	pthread_mutex_unlock(&ch->tx_lock);
	if (!ret)
		return 0;
	snprintf(what, sizeof(what), "%s on data channel %u", op, c);
	return failed(t, ret, what);
}

/* One PAGES frame: header, prefix, then the bytes straight from guest memory. */
static int send_pages(struct rdm_tcp *t, unsigned c, unsigned block, uint64_t off,
		      uint64_t len)
{
	uint8_t head[RDM_HDR_LEN + RDM_PAGES_PREFIX];
	struct iovec iov[2] = {
		{ head, sizeof(head) },
		{ t->blk[block].host + off, (size_t)len },
	};

	rdm_hdr_encode(head, RDM_MSG_PAGES, (uint32_t)(RDM_PAGES_PREFIX + len));
	rdm_pages_hdr_encode(head + RDM_HDR_LEN, block, off);
	return chan_send(t, c, iov, 2, "write");
}

/* Checks a write's arguments; 0 when the pages may go. */
static int write_check(struct rdm_tcp *t, unsigned block, uint64_t off, uint64_t len)
{
	if (atomic_load(&t->stopping))
		return rdm_tcp_err(t, -ECANCELED, "write: transport shut down");
	if (t->role != RDM_TCP_SOURCE)
		return rdm_tcp_err(t, -EOPNOTSUPP, "write: pages flow from the connecting side");
	if (!t->blk)
		return rdm_tcp_err(t, -EINVAL, "write: set_blocks() was not called");
	if (block >= t->nblk)
		return rdm_tcp_err(t, -EINVAL, "write: block %u out of range (%u blocks)", block,
				   t->nblk);
	if (off > t->blk[block].len || len > t->blk[block].len - off)
		return rdm_tcp_err(t, -EINVAL,
				   "write out of bounds: block %u off %llu len %llu (block length "
				   "%llu)",
				   block, (unsigned long long)off, (unsigned long long)len,
				   (unsigned long long)t->blk[block].len);
	return 0;
}

/* [off, off + len) of block in frames; urgent: all on the urgent channel. */
static int write_pieces(struct rdm_tcp *t, unsigned block, uint64_t off, uint64_t len,
			bool urgent)
{
	const uint64_t max_piece = RDM_MAX_PAYLOAD - RDM_PAGES_PREFIX;
	int ret = write_check(t, block, off, len);

	while (!ret && len) {
		/* Split at chunk boundaries: chunk k of block b always rides channel (b+k)%n. */
		uint64_t k = off / t->blk[block].chunk;
		uint64_t piece = (k + 1) * t->blk[block].chunk - off;
		unsigned c = urgent ? t->nchan - 1 : (unsigned)((block + k) % t->ndata);

		if (piece > len)
			piece = len;
		if (piece > max_piece)
			piece = max_piece;
		ret = send_pages(t, c, block, off, piece);
		off += piece;
		len -= piece;
	}
	return ret;
}

static int tcp_write(struct rdm_tp *tp, unsigned block, uint64_t off, uint64_t len)
{
	return write_pieces((struct rdm_tcp *)tp, block, off, len, false);
}

static int tcp_write_urgent(struct rdm_tp *tp, unsigned block, uint64_t off, uint64_t len)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;

	if (!t->urgent)
		return rdm_tcp_err(t, -EOPNOTSUPP, "write_urgent: connected without an urgent "
						   "channel");
	return write_pieces(t, block, off, len, true);
}

static int tcp_fence(struct rdm_tp *tp, uint64_t seq)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;
	struct rdm_msg m = { .type = RDM_MSG_FENCE, .u.seq.seq = seq };
	uint8_t buf[RDM_HDR_LEN + 8];
	size_t len;
	unsigned c;
	int ret;

	if (atomic_load(&t->stopping))
		return rdm_tcp_err(t, -ECANCELED, "fence: transport shut down");
	if (t->role != RDM_TCP_SOURCE)
		return rdm_tcp_err(t, -EOPNOTSUPP, "fence: pages flow from the connecting side");
	ret = rdm_msg_encode(&m, buf, sizeof(buf), &len);
	if (ret)
		return rdm_tcp_err(t, ret, "fence: encode: %s", strerror(-ret));
	/* Behind the writes already queued on each channel: TCP keeps the order. */
	for (c = 0; c < t->nchan; c++) {
		struct iovec iov = { buf, len };

		ret = chan_send(t, c, &iov, 1, "fence");
		if (ret)
			return ret;
	}
	return 0;
}

static int tcp_send(struct rdm_tp *tp, const void *msg, size_t len)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;
	struct iovec iov = { (void *)msg, len };
	int ret;

	if (!msg || len < RDM_HDR_LEN)
		return rdm_tcp_err(t, -EINVAL, "send: not a whole frame (%zu bytes)", len);
	pthread_mutex_lock(&t->ctrl_tx_lock);
	if (atomic_load(&t->stopping))
		ret = rdm_tcp_err(t, -ECANCELED, "send: transport shut down");
	else if (t->ctrl_tx_err)
		ret = rdm_tcp_err(t, t->ctrl_tx_err, "send: control stream lost by an earlier "
						      "failure");
	else {
		ret = rdm_tcp_io_send(t->ctrl_fd, t->ctrl_tls, &iov, 1, t->timeout_ms);
		if (ret) {
			/* Part of a frame may be on the wire: nothing after it can be framed. */
			t->ctrl_tx_err = ret;
			ret = failed(t, ret, "send on the control stream");
		}
	}
	pthread_mutex_unlock(&t->ctrl_tx_lock);
	return ret;
}

/*
 * recv(): header into rx_hdr, payload straight into the caller's buf. A
 * timeout leaves the partial frame in t (payload bytes copied to rx_stash,
 * since the next call may pass another buffer); the next call resumes it.
 */
static int recv_locked(struct rdm_tcp *t, uint8_t *buf, size_t cap, size_t *len,
		       int timeout_ms)
{
	int64_t deadline = rdm_tcp_deadline(timeout_ms);
	uint16_t type;
	uint32_t plen;
	size_t got;
	int ret;

	if (t->rx_hdr_got < RDM_HDR_LEN) {
		ret = rdm_tcp_io_recv(t->ctrl_fd, t->ctrl_tls, t->rx_hdr, RDM_HDR_LEN,
				      &t->rx_hdr_got, deadline);
		if (ret == -ETIMEDOUT)
			return rdm_tcp_err(t, ret, "recv: no message within %d ms", timeout_ms);
		if (ret)
			goto fail;
		ret = rdm_hdr_decode(t->rx_hdr, RDM_HDR_LEN, &type, &plen);
		if (ret) {
			t->ctrl_rx_err = ret;
			return rdm_tcp_err(t, ret, "recv: bad frame header on the control "
						   "stream (%s)", strerror(-ret));
		}
		t->rx_plen = plen;
		t->rx_got = 0;
	}
	if (RDM_HDR_LEN + (size_t)t->rx_plen > cap) {
		/* Only the header is in: the message stays for a bigger buffer. */
		*len = RDM_HDR_LEN + (size_t)t->rx_plen;
		return rdm_tcp_err(t, -EMSGSIZE, "recv: %zu-byte message exceeds the %zu-byte "
						 "buffer", *len, cap);
	}
	memcpy(buf, t->rx_hdr, RDM_HDR_LEN);
	if (t->rx_stash)
		memcpy(buf + RDM_HDR_LEN, t->rx_stash, t->rx_got);
	got = t->rx_got;
	ret = rdm_tcp_io_recv(t->ctrl_fd, t->ctrl_tls, buf + RDM_HDR_LEN, t->rx_plen, &got,
			      deadline);
	if (ret == -ETIMEDOUT) {
		if (!t->rx_stash) {
			t->rx_stash = malloc(t->rx_plen);
			if (!t->rx_stash) {
				t->ctrl_rx_err = -ENOMEM;
				return rdm_tcp_err(t, -ENOMEM, "recv: out of memory");
			}
		}
		memcpy(t->rx_stash, buf + RDM_HDR_LEN, got);
		t->rx_got = got;
		return rdm_tcp_err(t, ret, "recv: message incomplete after %d ms", timeout_ms);
	}
	if (ret)
		goto fail;
	*len = RDM_HDR_LEN + (size_t)t->rx_plen;
	free(t->rx_stash);
	t->rx_stash = NULL;
	t->rx_hdr_got = 0;
	t->rx_got = 0;
	return 0;

fail:
	ret = failed(t, ret, "recv on the control stream");
	if (ret != -ECANCELED)
		t->ctrl_rx_err = ret;
	return ret;
}

static int tcp_recv(struct rdm_tp *tp, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;
	int ret;

	if (!buf || !len)
		return rdm_tcp_err(t, -EINVAL, "recv: no buffer");
	pthread_mutex_lock(&t->ctrl_rx_lock);
	if (atomic_load(&t->stopping))
		ret = rdm_tcp_err(t, -ECANCELED, "recv: transport shut down");
	else if (t->ctrl_rx_err)
		ret = rdm_tcp_err(t, t->ctrl_rx_err, "recv: control stream lost by an earlier "
						      "failure");
	else
		ret = recv_locked(t, buf, cap, len, timeout_ms);
	pthread_mutex_unlock(&t->ctrl_rx_lock);
	return ret;
}

static void tcp_shutdown(struct rdm_tp *tp)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;
	unsigned i;

	atomic_store(&t->stopping, true);
	/* Wakes recv()/send()/receivers blocked on these sockets; fds stay open. */
	if (t->ctrl_fd >= 0)
		shutdown(t->ctrl_fd, SHUT_RDWR);
	for (i = 0; i < t->nchan; i++)
		if (t->chan[i].fd >= 0)
			shutdown(t->chan[i].fd, SHUT_RDWR);
	pthread_mutex_lock(&t->lock);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void tcp_close(struct rdm_tp *tp)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;

	if (!t)
		return;
	/* Receivers block in recv(): wake them to join. A source has none and
	 * just closes, so the kernel still flushes what it queued. */
	if (t->role == RDM_TCP_DEST)
		tcp_shutdown(tp);
	rdm_tcp_rx_join(t);
	rdm_tcp_free(t);
}

const struct rdm_tp_ops rdm_tcp_ops = {
	.name = "tcp",
	.connect = tcp_connect,
	.listen = rdm_tcp_listen,
	.accept = rdm_tcp_accept,
	.listener_port = rdm_tcp_listener_port,
	.listener_shutdown = rdm_tcp_listener_shutdown,
	.listener_close = rdm_tcp_listener_close,
	.set_blocks = tcp_set_blocks,
	.write = tcp_write,
	.write_urgent = tcp_write_urgent,
	.fence = tcp_fence,
	.wait_fence = rdm_tcp_wait_fence,
	.send = tcp_send,
	.recv = tcp_recv,
	.set_placer = rdm_tcp_set_placer,
	.shutdown = tcp_shutdown,
	.close = tcp_close,
};
