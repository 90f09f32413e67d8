/* rdma-smoke's shared pieces: the wire structs, the waits (CM events, CQs)
 * and the one fixture both sides set up and tear down the same way
 * (smoke_ep).  The server lives in smoke_server.c, the client in
 * smoke_client.c, the cases and main in test_rdma_smoke.c.
 */
#ifndef RDMIG_TESTS_RDMA_SMOKE_H
#define RDMIG_TESTS_RDMA_SMOKE_H

#include <stdint.h>
#include <sys/socket.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#define BUF_LEN (4u << 20)
#define CHUNK_LEN (1u << 20)
#define NCHUNKS (BUF_LEN / CHUNK_LEN)
#define PATTERN_SEED 0x5eed5eedu
#define SMOKE_MAGIC 0x72646d73u /* "rdms" */

/* TCG-emulated rxe is slow: generous, but finite, waits. */
#define CM_TIMEOUT_MS 30000
#define CQ_TIMEOUT_MS 60000
#define RESOLVE_TIMEOUT_MS 5000

/* Accept private data: where the client may write.  Big-endian on the wire. */
struct smoke_target {
	uint32_t magic;
	uint32_t rkey;
	uint64_t addr;
	uint64_t len;
};

/* The SEND that follows the writes. */
struct smoke_done {
	uint32_t magic;
	uint32_t crc;
	uint64_t len;
};

enum { WRID_SEND = 1000, WRID_RECV = 2000 };

void logf_(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t now_ms(void);

/* Deterministic, non-zero-page pattern both sides can generate. */
void fill_pattern(uint8_t *p, size_t len, uint32_t seed);
uint32_t crc_of(const uint8_t *p, size_t len);

int set_nonblock(int fd);

/* Next CM event, which must be of type want; the caller acks *out.
 * abort_fd (if >= 0) readable: -ECANCELED. */
int cm_wait(const char *who, struct rdma_event_channel *ch, int abort_fd,
	    enum rdma_cm_event_type want, struct rdma_cm_event **out);

/* A CQ with its own completion channel, so waits can sleep with a timeout. */
struct cq_ctx {
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
};

/* One completion, whatever it is: the caller checks status and wr_id. */
int cq_next(struct cq_ctx *c, int abort_fd, int64_t deadline, struct ibv_wc *wc);

enum smoke_role { SMOKE_SERVER, SMOKE_CLIENT };

/*
 * One side's verbs resources on a connected-to-be id: a PD, the 4 MiB buffer
 * and its MR, the small SEND payload and its MR, a send and a receive CQ, and
 * the RC QP.  The server's buffer is the remote-writable target (filled with
 * 0xa5, so a write that never landed does not look like zeros that did); the
 * client's holds the pattern, and its `done` the SEND it will post.
 */
struct smoke_ep {
	const char *who;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	uint8_t *buf;
	struct ibv_mr *mr;
	struct smoke_done done;
	struct ibv_mr *done_mr;
	struct cq_ctx scq, rcq;
};

/* Sets up all of ep on id (which stays the caller's); nothing is left on error. */
int smoke_ep_open(struct smoke_ep *ep, struct rdma_cm_id *id, enum smoke_role role);
/* Undoes smoke_ep_open. */
void smoke_ep_close(struct smoke_ep *ep);

/* The server side: a listener on addr, then one connection served on a thread. */
struct server {
	struct rdma_event_channel *ch;
	struct rdma_cm_id *listen_id;
	int abort_rd; /* readable when the client gave up */
	int ret;
	uint32_t crc;
};

int server_listen(struct server *s, const struct sockaddr *addr);
void server_close(struct server *s);
void *server_thread(void *arg); /* serves one connection into s->ret, s->crc */

/* The client side: connect to dst, write the pattern, SEND its CRC (*crc_out). */
int client_run(const struct sockaddr *dst, uint32_t *crc_out);

#endif
