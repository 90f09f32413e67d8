/* SPDX-License-Identifier: MIT */
/*
 * The tcp transport, internal to transport/tcp/.
 *
 * A session is one control socket plus `count` data sockets. Every socket the
 * connecting side (the source) opens first sends one CHANNEL frame:
 *
 *   magic RDM_WIRE_MAGIC, version RDM_WIRE_VERSION, count = data channels,
 *   token = a random non-zero u64 shared by every socket of the session,
 *   control socket: flags = RDM_TCP_CHAN_CONTROL, index 0
 *   data socket i:  flags = 0,                    index i (0 <= i < count)
 *
 * With a secret (opts.secret) each CHANNEL frame has RDM_TCP_CHAN_PROOF set
 * and a CHAN_PROOF frame right behind it (control/auth.h: the secret over the
 * token, index, count and flags); a listener with a secret refuses a socket
 * without a valid one, telling it why in an ERROR frame before it closes.
 *
 * Once the listener holds the control socket and all `count` data sockets of
 * one token it answers with a CHANNEL frame on the control socket (flags
 * RDM_TCP_CHAN_CONTROL | RDM_TCP_CHAN_ACK, same token and count); connect()
 * returns only after that answer, so a refused session fails at connect().
 *
 * Pages go source -> destination only: PAGES frames (header, 12-byte prefix,
 * bytes) and FENCE frames on the data sockets, chunk k of block b on data
 * channel (b + k) % ndata. Control frames go both ways on the control socket.
 * With opts.urgent_channel the source opens one data socket more (count =
 * ndata + 1): the last carries write_urgent()'s pages only, and FENCEs like
 * the others. The destination cannot tell it apart and needs not: every data
 * socket's receiver places what it gets.
 *
 * With TLS (opts.tls) every socket runs the TLS handshake right after
 * connect()/accept(), before the CHANNEL hello, and everything after it goes
 * through that socket's TLS session (the *tls next to each fd; NULL: plain).
 */
#ifndef RDMIG_TRANSPORT_TCP_INT_H
#define RDMIG_TRANSPORT_TCP_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "control/msg.h"
#include "transport/tcp/tls.h"
#include "transport/transport.h"

#define RDM_TCP_MAX_CHANNELS 256u
#define RDM_TCP_DEFAULT_TIMEOUT_MS 30000 /* when opts.timeout_ms <= 0 */
#define RDM_TCP_DATA_SOCKBUF (8 << 20)   /* data sockets: a few chunks in flight */
#define RDM_TCP_BOUNCE (2u << 20)        /* placer pieces: whole 4 KiB and 2 MiB pages */

/* CHANNEL flags (the CHANNEL frame's u16 flags field). */
#define RDM_TCP_CHAN_CONTROL 0x0001u /* this socket is the control stream */
#define RDM_TCP_CHAN_ACK 0x0002u     /* listener -> connector: session accepted */
#define RDM_TCP_CHAN_PROOF 0x0004u   /* a CHAN_PROOF frame follows this hello */
#define RDM_TCP_CHAN_KNOWN (RDM_TCP_CHAN_CONTROL | RDM_TCP_CHAN_ACK | RDM_TCP_CHAN_PROOF)

/* Header + CHANNEL payload (u32 + 4 x u16 + u64). */
#define RDM_TCP_HELLO_LEN (RDM_HDR_LEN + 20u)

enum rdm_tcp_role {
	RDM_TCP_SOURCE, /* connected: writes pages, sends fences */
	RDM_TCP_DEST,   /* accepted: receives pages, waits for fences */
};

struct rdm_tcp;

struct rdm_tcp_chan {
	struct rdm_tcp *t;
	unsigned index;
	int fd;
	struct rdm_tls_conn *tls; /* NULL: plaintext */
	pthread_mutex_t tx_lock; /* source: one frame at a time on the socket */
	int tx_err;              /* sticky, under tx_lock: a frame was cut half way */
	pthread_t thread;        /* destination receiver */
	bool thread_started;
	/* Destination, under t->lock: */
	uint64_t fence_seq; /* last FENCE seen */
	uint8_t *bounce;    /* pages for the placer pass through here (RDM_TCP_BOUNCE) */
	int rx_err;         /* the receiver stopped (EOF, socket error) */
	char rx_errmsg[RDM_TP_ERRLEN];
};

struct rdm_tcp_blk {
	uint8_t *host;
	uint64_t len;
	uint64_t chunk; /* channel mapping unit: chunk_size, or the page when larger */
};

struct rdm_tcp {
	struct rdm_tp base;
	enum rdm_tcp_role role;
	const struct rdm_tls *tls_creds; /* opts.tls: connect() runs TLS on every socket */
	int timeout_ms; /* > 0: connect/handshake limit, keepalive, send stall limit */
	uint64_t chunk_size;
	uint64_t token;
	const uint8_t *secret; /* connector: proofs for its channels (NULL: none) */
	size_t secret_len;
	atomic_bool stopping;

	/* Control stream. */
	int ctrl_fd;
	struct rdm_tls_conn *ctrl_tls; /* NULL: plaintext */
	pthread_mutex_t ctrl_tx_lock;
	int ctrl_tx_err; /* sticky: a frame was cut half way, the stream is lost */
	pthread_mutex_t ctrl_rx_lock;
	int ctrl_rx_err;                /* sticky: bad or oversized frame, EOF */
	uint8_t rx_hdr[RDM_HDR_LEN];    /* the frame being received ... */
	size_t rx_hdr_got;              /* ... survives a -ETIMEDOUT recv() */
	uint32_t rx_plen;
	size_t rx_got;                  /* payload bytes received so far */
	uint8_t *rx_stash;              /* those bytes, between two recv() calls */

	/* Data channels. */
	unsigned nchan;
	unsigned ndata; /* source: those the chunk mapping uses (nchan, or nchan - 1 ...) */
	bool urgent;    /* ... when the last is the urgent channel */
	struct rdm_tcp_chan *chan;
	struct rdm_tcp_blk *blk;
	unsigned nblk;

	/*
	 * Destination: fences, receiver errors, under lock. A channel that stops
	 * fails only the fences it has not reached (the others may still be
	 * draining what was sent before the peer closed); a protocol violation
	 * (rx_err here) fails every later wait_fence().
	 */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int rx_err;
	char rx_errmsg[RDM_TP_ERRLEN];
	rdm_tp_place_fn place; /* set_placer(), under lock; NULL: into the blocks */
	void *place_opaque;
};

/* tcp.c */
int rdm_tcp_new(enum rdm_tcp_role role, const struct rdm_tp_opts *o, unsigned nchan,
		uint64_t token, struct rdm_tcp **out);
void rdm_tcp_free(struct rdm_tcp *t);
int rdm_tcp_err(struct rdm_tcp *t, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* rx.c: destination receivers */
int rdm_tcp_rx_start(struct rdm_tcp *t);
void rdm_tcp_rx_join(struct rdm_tcp *t);
int rdm_tcp_wait_fence(struct rdm_tp *tp, uint64_t seq, int timeout_ms);
int rdm_tcp_set_placer(struct rdm_tp *tp, rdm_tp_place_fn fn, void *opaque);

/* listen.c */
int rdm_tcp_listen(const struct rdm_addr *a, const struct rdm_tp_opts *o,
		   struct rdm_tp_listener **out, char *err, size_t errlen);
int rdm_tcp_accept(struct rdm_tp_listener *l, int timeout_ms, struct rdm_tp **out, char *err,
		   size_t errlen);
int rdm_tcp_listener_port(struct rdm_tp_listener *l, uint16_t *port);
void rdm_tcp_listener_shutdown(struct rdm_tp_listener *l);
void rdm_tcp_listener_close(struct rdm_tp_listener *l);

/* sock.c: syscalls as 0/-errno, deadlines, socket options */
#define RDM_TCP_NO_DEADLINE INT64_MAX
int64_t rdm_tcp_now_ms(void);
int64_t rdm_tcp_deadline(int timeout_ms); /* < 0: none */
int rdm_tcp_poll_ms(int64_t deadline);    /* poll() timeout until deadline */
int rdm_tcp_eff_timeout(int timeout_ms);  /* opts.timeout_ms, defaulted */

int rdm_tcp_sys(long r); /* r < 0 ? -errno : r: the one place errno is read */
int rdm_tcp_socket(int family);
int rdm_tcp_connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline);
int rdm_tcp_set_keepalive(int fd, int timeout_ms);
int rdm_tcp_set_nodelay(int fd);
void rdm_tcp_set_bufsize(int fd);
void rdm_tcp_peer_name(int fd, char *buf, size_t len);

/*
 * Send all of iov (modified). Each wait for socket space is bounded by
 * stall_ms of no progress (-ETIMEDOUT); MSG_NOSIGNAL, EINTR retried.
 */
int rdm_tcp_send_all(int fd, struct iovec *iov, int iovcnt, int stall_ms);
/*
 * Receive into buf until *got == len. -ETIMEDOUT at the deadline (keeping
 * *got), -ECONNRESET on EOF; with no deadline it blocks in recv().
 */
int rdm_tcp_recv_all(int fd, void *buf, size_t len, size_t *got, int64_t deadline);

/* Socket I/O, through TLS when the socket has a session: the plain path stays one branch. */
static inline int rdm_tcp_io_send(int fd, struct rdm_tls_conn *tls, struct iovec *iov,
				  int iovcnt, int stall_ms)
{
	return tls ? rdm_tls_send_all(tls, iov, iovcnt, stall_ms)
		   : rdm_tcp_send_all(fd, iov, iovcnt, stall_ms);
}

static inline int rdm_tcp_io_recv(int fd, struct rdm_tls_conn *tls, void *buf, size_t len,
				  size_t *got, int64_t deadline)
{
	return tls ? rdm_tls_recv_all(tls, buf, len, got, deadline)
		   : rdm_tcp_recv_all(fd, buf, len, got, deadline);
}

/* The CHANNEL frame of this socket into buf (RDM_TCP_HELLO_LEN bytes). */
int rdm_tcp_hello_encode(uint8_t *buf, unsigned index, unsigned count, uint16_t flags,
			 uint64_t token);

#endif
