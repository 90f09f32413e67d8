/* SPDX-License-Identifier: MIT */
/*
 * The transport vtable: what core/ calls to move bytes. A transport moves pages
 * and control messages and reports completions; it makes no migration decision
 * and never includes core/.
 *
 * Ordering contract (every transport keeps it):
 *  - send() delivers whole control messages, in order, on one control stream;
 *    the other side's recv() returns them in that order. The stream is
 *    bidirectional: the destination sends return-path messages on it.
 *  - write() copies [off, off+len) of local block b to the same bytes of the
 *    peer's block b. Writes issued before fence(seq) are placed in the peer's
 *    memory before the peer's wait_fence(seq) returns. Two writes to the same
 *    bytes are placed in the order they were issued (a transport with several
 *    channels keeps a fixed chunk -> channel mapping).
 *  - Every call that can block takes a timeout or is unblocked by shutdown().
 *  - All functions return 0 or -errno. A call that fails leaves its message in
 *    the calling thread's error buffer (rdm_tp_fail(), read with
 *    rdm_tp_errmsg()/rdm_tp_why()): several threads share a transport, and one
 *    thread's failure must never carry the text another thread wrote.
 */
#ifndef RDMIG_TRANSPORT_H
#define RDMIG_TRANSPORT_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RDM_TP_ERRLEN 256
/* Every transport carries control messages up to this size (header included). */
#define RDM_TP_MAX_MSG (256u << 10)

enum rdm_scheme {
	RDM_SCHEME_TCP,
	RDM_SCHEME_RDMA,
};

/* A parsed "tcp:HOST:PORT" or "rdma:HOST:PORT" (IPv6 literals as [::1]). */
struct rdm_addr {
	enum rdm_scheme scheme;
	char host[256];
	uint16_t port;
	struct sockaddr_storage ss;
	socklen_t sslen;
};

/*
 * Parse uri into a. Host must be an IPv4 or IPv6 literal or "localhost".
 * -EINVAL with a message in err (errlen bytes) naming what is wrong.
 */
int rdm_addr_parse(const char *uri, struct rdm_addr *a, char *err, size_t errlen);

struct rdm_tp_opts {
	unsigned channels;   /* data channels (queue pairs / sockets), >= 1 */
	uint64_t chunk_size; /* unit of chunk -> channel mapping and registration */
	bool pin_all;        /* rdma: register whole blocks at set_blocks() */
	int timeout_ms;      /* connect/accept/handshake and peer-silence limit */
	/*
	 * The session secret (NULL: none), owned by the caller and alive as long
	 * as the transport. With one, every channel a connector opens carries a
	 * CHAN_PROOF (control/auth.h) and a listener refuses channels without a
	 * valid one; without one, proofs are neither sent nor checked.
	 */
	const uint8_t *secret;
	size_t secret_len;
	/* tcp: TLS on every socket (NULL: plaintext); owned by the caller, alive as long as the transport. */
	const struct rdm_tls *tls;
	/*
	 * Connector: one more data channel that carries write_urgent() alone
	 * (postcopy's requested pages, QEMU's preempt channel), so a request
	 * never queues behind the background pages in the others. The listener
	 * needs nothing: it sees one more channel. Transports without
	 * write_urgent() ignore it (rdma reads urgent pages on a queue of their own).
	 */
	bool urgent_channel;
};

/*
 * TLS credentials for the tcp transport (transport/tcp/tls_creds.c), loaded
 * once and shared by every socket of a session. x509 (psk == false): the
 * server needs cert_file + key_file, and ca_file when verify_peer; the client
 * needs ca_file (the server's certificate is always verified, and its name too
 * when hostname is set) and cert_file + key_file when the server asks for
 * one. PSK: identity and key, the same on both sides.
 */
struct rdm_tls_cfg {
	bool psk;
	const char *ca_file, *cert_file, *key_file;
	const char *hostname; /* client: the name the server's certificate must carry */
	bool verify_peer;     /* server: require a client certificate signed by ca_file */
	const char *psk_identity;
	const uint8_t *psk_key;
	size_t psk_key_len;
	const char *priority; /* GnuTLS priority string; NULL: the default */
};
struct rdm_tls;
/* Loads and checks the credentials (files read now); -errno with a reason in err. */
int rdm_tls_new(const struct rdm_tls_cfg *c, bool server, struct rdm_tls **out, char *err,
		size_t errlen);
void rdm_tls_free(struct rdm_tls *t);

struct rdm_tp_block {
	const char *name;
	void *host;
	uint64_t len;
	uint32_t page_size;
};

struct rdm_tp;
struct rdm_tp_listener;

/*
 * Postcopy's destination: where received pages go instead of straight into
 * the block (memory userfaultfd guards cannot be written by the receivers
 * themselves, nor registered). Bytes [off, off+len) of block b, held at src
 * only for the call; returns 0 or -errno (which fails the channel).
 */
typedef int (*rdm_tp_place_fn)(void *opaque, unsigned block, uint64_t off, uint64_t len,
			       const void *src);

/* A range of one block: [off, off + len), in whole pages. */
struct rdm_tp_span {
	unsigned block;
	uint64_t off, len;
};

struct rdm_tp_ops {
	const char *name;
	int (*connect)(const struct rdm_addr *a, const struct rdm_tp_opts *o, struct rdm_tp **out,
		       char *err, size_t errlen);
	int (*listen)(const struct rdm_addr *a, const struct rdm_tp_opts *o,
		      struct rdm_tp_listener **out, char *err, size_t errlen);
	/*
	 * Waits for one valid peer; refuses (and logs into err) bad handshakes.
	 * err is emptied first; after success or -ETIMEDOUT it holds only this
	 * call's refusals, so -ETIMEDOUT with an empty err means nobody came.
	 */
	int (*accept)(struct rdm_tp_listener *l, int timeout_ms, struct rdm_tp **out, char *err,
		      size_t errlen);
	/* The port the listener is bound to (the chosen one when listening on port 0). */
	int (*listener_port)(struct rdm_tp_listener *l, uint16_t *port);
	/* Unblocks a pending accept() from another thread. */
	void (*listener_shutdown)(struct rdm_tp_listener *l);
	void (*listener_close)(struct rdm_tp_listener *l);
	/* Both sides, same list, after the block list was agreed. */
	int (*set_blocks)(struct rdm_tp *t, const struct rdm_tp_block *b, unsigned n);
	int (*write)(struct rdm_tp *t, unsigned block, uint64_t off, uint64_t len);
	/*
	 * Optional (NULL: none): write() on the urgent channel (opts.urgent_channel,
	 * -EOPNOTSUPP without it), ahead of what write() queued. Fences cover it
	 * like any write, but it is not ordered against write() to the same
	 * bytes: only for bytes that no longer change (postcopy, the VM stopped
	 * here), where either copy may land first and the placer keeps one.
	 */
	int (*write_urgent)(struct rdm_tp *t, unsigned block, uint64_t off, uint64_t len);
	int (*fence)(struct rdm_tp *t, uint64_t seq);
	int (*wait_fence)(struct rdm_tp *t, uint64_t seq, int timeout_ms);
	int (*send)(struct rdm_tp *t, const void *msg, size_t len);
	/*
	 * One whole message into buf; -ETIMEDOUT, -EMSGSIZE (> cap; *len = its
	 * size; the message is kept for a call with a bigger buffer), -ECONNRESET
	 * (after every message the peer sent before it hung up). A message cut by
	 * a timeout is kept for the next call.
	 * Timeouts here and in wait_fence()/accept(): < 0 waits without limit.
	 */
	int (*recv)(struct rdm_tp *t, void *buf, size_t cap, size_t *len, int timeout_ms);
	/*
	 * Destination, optional (NULL: the transport cannot do postcopy): from
	 * the next page received on, pages go through fn (NULL: into the blocks
	 * again). Set it only while no pages are in flight (after a fence).
	 */
	int (*set_placer)(struct rdm_tp *t, rdm_tp_place_fn fn, void *opaque);
	/*
	 * Postcopy by one-sided reads (optional, both or neither; NULL: the
	 * source pushes pages and answers requests). Source, expose(): from now
	 * until close() the peer may read the blocks (registered for it, keys
	 * sent on the control stream, ahead of what send() sends after).
	 * Destination, pull(): reads n spans of the source's blocks into staging
	 * buffers and hands each to the placer (set_placer() first) before it
	 * returns; urgent reads never wait behind the others. Several threads may
	 * pull at once.
	 */
	int (*expose)(struct rdm_tp *t);
	int (*pull)(struct rdm_tp *t, const struct rdm_tp_span *v, unsigned n, bool urgent,
		    int timeout_ms);
	/* Makes blocked and later calls fail with -ECANCELED; safe from any thread. */
	void (*shutdown)(struct rdm_tp *t);
	void (*close)(struct rdm_tp *t);
};

/* Every transport embeds this first. */
struct rdm_tp {
	const struct rdm_tp_ops *ops;
	/* The random id every channel of this session carries; bound into its proofs. */
	uint64_t token;
};

/*
 * Per-thread error text (errmsg.c). rdm_tp_fail() sets the calling thread's
 * message and returns ret; the wrappers below clear it before each call, so
 * what a failed call leaves is that call's own text.
 */
int rdm_tp_fail(int ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rdm_tp_vfail(int ret, const char *fmt, va_list ap);
void rdm_tp_err_clear(void);
/* This thread's last message ("" when none since the last clear). */
const char *rdm_tp_errmsg(void);
/* The message, or strerror(-ret) when the call left none. */
const char *rdm_tp_why(int ret);

struct rdm_tp_listener {
	const struct rdm_tp_ops *ops;
};

extern const struct rdm_tp_ops rdm_tcp_ops;
extern const struct rdm_tp_ops rdm_rdma_ops;

/* The transport for a scheme, or NULL when it is not built in. */
const struct rdm_tp_ops *rdm_tp_lookup(enum rdm_scheme s);

static inline int rdm_tp_write(struct rdm_tp *t, unsigned b, uint64_t off, uint64_t len)
{
	rdm_tp_err_clear();
	return t->ops->write(t, b, off, len);
}

static inline int rdm_tp_write_urgent(struct rdm_tp *t, unsigned b, uint64_t off, uint64_t len)
{
	rdm_tp_err_clear();
	return t->ops->write_urgent(t, b, off, len);
}

static inline int rdm_tp_send(struct rdm_tp *t, const void *msg, size_t len)
{
	rdm_tp_err_clear();
	return t->ops->send(t, msg, len);
}

static inline int rdm_tp_recv(struct rdm_tp *t, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	rdm_tp_err_clear();
	return t->ops->recv(t, buf, cap, len, timeout_ms);
}

static inline int rdm_tp_fence(struct rdm_tp *t, uint64_t seq)
{
	rdm_tp_err_clear();
	return t->ops->fence(t, seq);
}

static inline int rdm_tp_wait_fence(struct rdm_tp *t, uint64_t seq, int timeout_ms)
{
	rdm_tp_err_clear();
	return t->ops->wait_fence(t, seq, timeout_ms);
}

static inline int rdm_tp_expose(struct rdm_tp *t)
{
	rdm_tp_err_clear();
	return t->ops->expose(t);
}

static inline int rdm_tp_pull(struct rdm_tp *t, const struct rdm_tp_span *v, unsigned n,
			      bool urgent, int timeout_ms)
{
	rdm_tp_err_clear();
	return t->ops->pull(t, v, n, urgent, timeout_ms);
}

static inline int rdm_tp_set_blocks(struct rdm_tp *t, const struct rdm_tp_block *b, unsigned n)
{
	rdm_tp_err_clear();
	return t->ops->set_blocks(t, b, n);
}

#ifdef __cplusplus
}
#endif

#endif
