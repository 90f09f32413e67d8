/* rdma-smoke: two rdma_cm endpoints in one process (server thread + client)
 * on the RDMA device's address.  The client RDMA WRITEs a 4 MiB pattern into
 * the server's buffer (addr/rkey from the accept's private data), then SENDs
 * its length and CRC32; RC ordering places the SEND after the writes, so the
 * server checks the bytes once the SEND's receive completes.
 *
 * Address: $RDMIG_RDMA_ADDR (set by tests/vm/rxe-run), else the first IPv4
 * address bound to an RDMA device; also $RDMIG_RDMA_ADDR6 when set.
 * Exit: 0 pass, 1 fail, 77 skip (no device / no address), reason printed.
 * Under tests/vm/rxe-run (RDMIG_IN_VM set) rxe0 is promised: a skip is a failure.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <zlib.h>

#define EXIT_SKIP 77

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

static void logf_(const char *who, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", who);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deterministic, non-zero-page pattern both sides can generate. */
static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static uint32_t crc_of(const uint8_t *p, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	/* zlib's length is uInt: feed it in pieces. */
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)crc;
}

/* Wait until fd is readable, abort_fd (if >= 0) fires, or the deadline passes. */
static int wait_fd(int fd, int abort_fd, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = abort_fd, .events = POLLIN },
		};
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(pfd, abort_fd >= 0 ? 2 : 1, (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ETIMEDOUT;
		if (abort_fd >= 0 && pfd[1].revents)
			return -ECANCELED;
		if (pfd[0].revents)
			return 0;
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Next CM event, which must be of type want; the caller acks *out. */
static int cm_wait(const char *who, struct rdma_event_channel *ch, int abort_fd,
		   enum rdma_cm_event_type want, struct rdma_cm_event **out)
{
	int64_t deadline = now_ms() + CM_TIMEOUT_MS;
	struct rdma_cm_event *ev;
	int ret;

	for (;;) {
		if (rdma_get_cm_event(ch, &ev) == 0)
			break;
		if (errno != EAGAIN) {
			ret = -errno;
			logf_(who, "rdma_get_cm_event: %s", strerror(-ret));
			return ret;
		}
		ret = wait_fd(ch->fd, abort_fd, deadline);
		if (ret) {
			if (ret != -ECANCELED)
				logf_(who, "waiting for %s: %s", rdma_event_str(want),
				      strerror(-ret));
			return ret;
		}
	}
	if (ev->event != want) {
		logf_(who, "expected %s, got %s (status %d)", rdma_event_str(want),
		      rdma_event_str(ev->event), ev->status);
		ret = ev->event == RDMA_CM_EVENT_REJECTED ? -ECONNREFUSED : -EPROTO;
		rdma_ack_cm_event(ev);
		return ret;
	}
	*out = ev;
	return 0;
}

/* A CQ with its own completion channel, so waits can sleep with a timeout. */
struct cq_ctx {
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
};

static int cq_open(struct cq_ctx *c, struct ibv_context *verbs, int depth)
{
	int ret;

	c->ch = ibv_create_comp_channel(verbs);
	if (!c->ch)
		return -errno;
	ret = set_nonblock(c->ch->fd);
	if (ret)
		goto destroy_channel;
	c->cq = ibv_create_cq(verbs, depth, NULL, c->ch, 0);
	if (!c->cq) {
		ret = -errno;
		goto destroy_channel;
	}
	return 0;

destroy_channel:
	ibv_destroy_comp_channel(c->ch);
	c->ch = NULL;
	return ret;
}

static void cq_close(struct cq_ctx *c)
{
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->ch)
		ibv_destroy_comp_channel(c->ch);
	c->cq = NULL;
	c->ch = NULL;
}

/* One completion, whatever it is: the caller checks status and wr_id. */
static int cq_next(struct cq_ctx *c, int abort_fd, int64_t deadline, struct ibv_wc *wc)
{
	for (;;) {
		struct ibv_cq *ev_cq;
		void *ev_ctx;
		int n, ret;

		n = ibv_poll_cq(c->cq, 1, wc);
		if (n)
			return n < 0 ? -EIO : 0;
		/* Arm, then poll again: a completion may have slipped in between. */
		ret = ibv_req_notify_cq(c->cq, 0);
		if (ret)
			return -ret;
		n = ibv_poll_cq(c->cq, 1, wc);
		if (n)
			return n < 0 ? -EIO : 0;
		ret = wait_fd(c->ch->fd, abort_fd, deadline);
		if (ret)
			return ret;
		if (ibv_get_cq_event(c->ch, &ev_cq, &ev_ctx) == 0)
			ibv_ack_cq_events(ev_cq, 1);
		else if (errno != EAGAIN)
			return -errno;
	}
}

static int create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct cq_ctx *scq,
		     struct cq_ctx *rcq)
{
	struct ibv_qp_init_attr attr = {
		.send_cq = scq->cq,
		.recv_cq = rcq->cq,
		.qp_type = IBV_QPT_RC,
		.cap = {
			.max_send_wr = NCHUNKS + 4,
			.max_recv_wr = 4,
			.max_send_sge = 1,
			.max_recv_sge = 1,
		},
	};

	return rdma_create_qp(id, pd, &attr) ? -errno : 0;
}

/* ------------------------------------------------------------------ server */

struct server {
	struct rdma_event_channel *ch;
	struct rdma_cm_id *listen_id;
	int abort_rd; /* readable when the client gave up */
	int ret;
	uint32_t crc;
};

static int server_listen(struct server *s, const struct sockaddr *addr)
{
	int ret;

	s->ch = rdma_create_event_channel();
	if (!s->ch)
		return -errno;
	ret = set_nonblock(s->ch->fd);
	if (ret)
		goto destroy_channel;
	if (rdma_create_id(s->ch, &s->listen_id, s, RDMA_PS_TCP)) {
		ret = -errno;
		goto destroy_channel;
	}
	/* Port 0 in addr: an ephemeral port, read back by the client. */
	if (rdma_bind_addr(s->listen_id, (struct sockaddr *)addr)) {
		ret = -errno;
		logf_("server", "rdma_bind_addr: %s", strerror(-ret));
		goto destroy_id;
	}
	if (rdma_listen(s->listen_id, 4)) {
		ret = -errno;
		logf_("server", "rdma_listen: %s", strerror(-ret));
		goto destroy_id;
	}
	return 0;

destroy_id:
	rdma_destroy_id(s->listen_id);
	s->listen_id = NULL;
destroy_channel:
	rdma_destroy_event_channel(s->ch);
	s->ch = NULL;
	return ret;
}

static void server_close(struct server *s)
{
	if (s->listen_id)
		rdma_destroy_id(s->listen_id);
	if (s->ch)
		rdma_destroy_event_channel(s->ch);
}

static int server_check(const uint8_t *buf, const struct smoke_done *done, uint32_t *crc_out)
{
	uint8_t *want;
	uint32_t crc, crc_want;
	int ret = 0;

	if (be32toh(done->magic) != SMOKE_MAGIC || be64toh(done->len) != BUF_LEN) {
		logf_("server", "bad SEND payload (magic 0x%08x, len %llu)",
		      be32toh(done->magic), (unsigned long long)be64toh(done->len));
		return -EPROTO;
	}
	want = malloc(BUF_LEN);
	if (!want)
		return -ENOMEM;
	fill_pattern(want, BUF_LEN, PATTERN_SEED);
	crc = crc_of(buf, BUF_LEN);
	crc_want = crc_of(want, BUF_LEN);
	if (crc != be32toh(done->crc) || crc != crc_want) {
		logf_("server", "crc32 mismatch: received 0x%08x, client says 0x%08x, pattern 0x%08x",
		      crc, be32toh(done->crc), crc_want);
		ret = -EBADMSG;
	}
	if (memcmp(buf, want, BUF_LEN)) {
		size_t i = 0;

		while (buf[i] == want[i])
			i++;
		logf_("server", "data mismatch at offset %zu (0x%02x, want 0x%02x)", i, buf[i],
		      want[i]);
		ret = -EBADMSG;
	}
	free(want);
	*crc_out = crc;
	return ret;
}

static int server_serve(struct server *s)
{
	struct rdma_cm_event *ev;
	struct rdma_cm_id *id;
	struct cq_ctx scq = { 0 }, rcq = { 0 };
	struct smoke_target target;
	struct smoke_done done;
	struct rdma_conn_param param = { 0 };
	struct ibv_recv_wr rwr, *bad_rwr;
	struct ibv_sge rsge;
	struct ibv_pd *pd;
	struct ibv_mr *mr, *done_mr;
	struct ibv_wc wc;
	uint8_t *buf;
	void *mem;
	bool accepted = false;
	int ret;

	ret = cm_wait("server", s->ch, s->abort_rd, RDMA_CM_EVENT_CONNECT_REQUEST, &ev);
	if (ret)
		return ret;
	id = ev->id;
	rdma_ack_cm_event(ev);

	pd = ibv_alloc_pd(id->verbs);
	if (!pd) {
		ret = -errno;
		logf_("server", "ibv_alloc_pd: %s", strerror(-ret));
		goto reject;
	}
	ret = posix_memalign(&mem, 4096, BUF_LEN);
	if (ret) {
		ret = -ret;
		goto dealloc_pd;
	}
	buf = mem;
	/* Not zero: a write that never landed must not look like zeros that did. */
	memset(buf, 0xa5, BUF_LEN);
	mr = ibv_reg_mr(pd, buf, BUF_LEN, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!mr) {
		ret = -errno;
		logf_("server", "ibv_reg_mr(%u bytes): %s", BUF_LEN, strerror(-ret));
		goto free_buf;
	}
	done_mr = ibv_reg_mr(pd, &done, sizeof(done), IBV_ACCESS_LOCAL_WRITE);
	if (!done_mr) {
		ret = -errno;
		goto dereg_mr;
	}
	ret = cq_open(&scq, id->verbs, 8);
	if (ret)
		goto dereg_done_mr;
	ret = cq_open(&rcq, id->verbs, 8);
	if (ret)
		goto close_scq;
	ret = create_qp(id, pd, &scq, &rcq);
	if (ret) {
		logf_("server", "rdma_create_qp: %s", strerror(-ret));
		goto close_rcq;
	}

	/* The receive is posted before accept: the SEND never meets an RNR. */
	rsge = (struct ibv_sge){ .addr = (uintptr_t)&done, .length = sizeof(done),
				 .lkey = done_mr->lkey };
	rwr = (struct ibv_recv_wr){ .wr_id = WRID_RECV, .sg_list = &rsge, .num_sge = 1 };
	ret = ibv_post_recv(id->qp, &rwr, &bad_rwr);
	if (ret) {
		ret = -ret;
		logf_("server", "ibv_post_recv: %s", strerror(-ret));
		goto destroy_qp;
	}

	target = (struct smoke_target){
		.magic = htobe32(SMOKE_MAGIC),
		.rkey = htobe32(mr->rkey),
		.addr = htobe64((uintptr_t)buf),
		.len = htobe64(BUF_LEN),
	};
	param.private_data = &target;
	param.private_data_len = sizeof(target);
	param.rnr_retry_count = 7;
	if (rdma_accept(id, &param)) {
		ret = -errno;
		logf_("server", "rdma_accept: %s", strerror(-ret));
		goto destroy_qp;
	}
	accepted = true;
	ret = cm_wait("server", s->ch, s->abort_rd, RDMA_CM_EVENT_ESTABLISHED, &ev);
	if (ret)
		goto destroy_qp;
	rdma_ack_cm_event(ev);

	/* Only the one receive is expected; anything else is an error. */
	ret = cq_next(&rcq, s->abort_rd, now_ms() + CQ_TIMEOUT_MS, &wc);
	if (ret) {
		if (ret != -ECANCELED)
			logf_("server", "waiting for the SEND: %s", strerror(-ret));
		goto disconnect;
	}
	if (wc.status != IBV_WC_SUCCESS) {
		logf_("server", "receive wr_id %llu failed: %s (vendor_err 0x%x)",
		      (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status), wc.vendor_err);
		ret = -EIO;
		goto disconnect;
	}
	if (wc.wr_id != WRID_RECV || wc.opcode != IBV_WC_RECV || wc.byte_len != sizeof(done)) {
		logf_("server", "unexpected completion: wr_id %llu opcode %d byte_len %u",
		      (unsigned long long)wc.wr_id, wc.opcode, wc.byte_len);
		ret = -EPROTO;
		goto disconnect;
	}
	ret = server_check(buf, &done, &s->crc);
	if (ret)
		goto disconnect;

	/* The client hangs up once its sends completed. */
	if (cm_wait("server", s->ch, s->abort_rd, RDMA_CM_EVENT_DISCONNECTED, &ev) == 0)
		rdma_ack_cm_event(ev);

disconnect:
	rdma_disconnect(id);
destroy_qp:
	rdma_destroy_qp(id);
close_rcq:
	cq_close(&rcq);
close_scq:
	cq_close(&scq);
dereg_done_mr:
	ibv_dereg_mr(done_mr);
dereg_mr:
	ibv_dereg_mr(mr);
free_buf:
	free(buf);
dealloc_pd:
	ibv_dealloc_pd(pd);
reject:
	if (!accepted)
		rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
	return ret;
}

static void *server_thread(void *arg)
{
	struct server *s = arg;

	s->ret = server_serve(s);
	return NULL;
}

/* ------------------------------------------------------------------ client */

static int client_post_and_reap(struct rdma_cm_id *id, struct cq_ctx *scq, struct ibv_mr *mr,
				struct ibv_mr *done_mr, const struct smoke_target *t)
{
	struct ibv_send_wr wr[NCHUNKS + 1], *bad;
	struct ibv_sge sge[NCHUNKS + 1];
	int64_t deadline = now_ms() + CQ_TIMEOUT_MS;
	unsigned pending = NCHUNKS + 1, seen_writes = 0;
	int ret;

	for (unsigned i = 0; i < NCHUNKS; i++) {
		sge[i] = (struct ibv_sge){ .addr = (uintptr_t)mr->addr + (uint64_t)i * CHUNK_LEN,
					   .length = CHUNK_LEN, .lkey = mr->lkey };
		wr[i] = (struct ibv_send_wr){
			.wr_id = i,
			.next = &wr[i + 1],
			.sg_list = &sge[i],
			.num_sge = 1,
			.opcode = IBV_WR_RDMA_WRITE,
			.send_flags = IBV_SEND_SIGNALED,
			.wr.rdma = { .remote_addr = t->addr + (uint64_t)i * CHUNK_LEN,
				     .rkey = t->rkey },
		};
	}
	sge[NCHUNKS] = (struct ibv_sge){ .addr = (uintptr_t)done_mr->addr,
					 .length = (uint32_t)done_mr->length,
					 .lkey = done_mr->lkey };
	wr[NCHUNKS] = (struct ibv_send_wr){
		.wr_id = WRID_SEND,
		.sg_list = &sge[NCHUNKS],
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	/* One post: the writes, then the SEND that RC orders after them. */
	ret = ibv_post_send(id->qp, wr, &bad);
	if (ret) {
		logf_("client", "ibv_post_send (failed at wr_id %llu): %s",
		      (unsigned long long)bad->wr_id, strerror(ret));
		return -ret;
	}

	while (pending) {
		struct ibv_wc wc;

		ret = cq_next(scq, -1, deadline, &wc);
		if (ret) {
			logf_("client", "waiting for %u send completions: %s", pending,
			      strerror(-ret));
			return ret;
		}
		if (wc.status != IBV_WC_SUCCESS) {
			logf_("client", "%s wr_id %llu failed: %s (vendor_err 0x%x)",
			      wc.wr_id == WRID_SEND ? "SEND" : "RDMA WRITE",
			      (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status),
			      wc.vendor_err);
			return -EIO;
		}
		if (wc.wr_id < NCHUNKS && wc.opcode == IBV_WC_RDMA_WRITE) {
			seen_writes++;
		} else if (!(wc.wr_id == WRID_SEND && wc.opcode == IBV_WC_SEND)) {
			logf_("client", "unexpected completion: wr_id %llu opcode %d",
			      (unsigned long long)wc.wr_id, wc.opcode);
			return -EPROTO;
		}
		pending--;
	}
	if (seen_writes != NCHUNKS) {
		logf_("client", "%u write completions, expected %u", seen_writes, NCHUNKS);
		return -EPROTO;
	}
	return 0;
}

static int client_run(const struct sockaddr *dst, uint32_t *crc_out)
{
	struct rdma_event_channel *ch;
	struct rdma_cm_event *ev;
	struct rdma_cm_id *id;
	struct rdma_conn_param param = { 0 };
	struct cq_ctx scq = { 0 }, rcq = { 0 };
	struct smoke_target t;
	struct smoke_done done;
	struct ibv_pd *pd;
	struct ibv_mr *mr, *done_mr;
	uint8_t *buf;
	void *mem;
	int ret;

	ch = rdma_create_event_channel();
	if (!ch)
		return -errno;
	ret = set_nonblock(ch->fd);
	if (ret)
		goto destroy_channel;
	if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP)) {
		ret = -errno;
		goto destroy_channel;
	}
	if (rdma_resolve_addr(id, NULL, (struct sockaddr *)dst, RESOLVE_TIMEOUT_MS)) {
		ret = -errno;
		logf_("client", "rdma_resolve_addr: %s", strerror(-ret));
		goto destroy_id;
	}
	ret = cm_wait("client", ch, -1, RDMA_CM_EVENT_ADDR_RESOLVED, &ev);
	if (ret)
		goto destroy_id;
	rdma_ack_cm_event(ev);
	if (rdma_resolve_route(id, RESOLVE_TIMEOUT_MS)) {
		ret = -errno;
		logf_("client", "rdma_resolve_route: %s", strerror(-ret));
		goto destroy_id;
	}
	ret = cm_wait("client", ch, -1, RDMA_CM_EVENT_ROUTE_RESOLVED, &ev);
	if (ret)
		goto destroy_id;
	rdma_ack_cm_event(ev);

	pd = ibv_alloc_pd(id->verbs);
	if (!pd) {
		ret = -errno;
		goto destroy_id;
	}
	ret = posix_memalign(&mem, 4096, BUF_LEN);
	if (ret) {
		ret = -ret;
		goto dealloc_pd;
	}
	buf = mem;
	fill_pattern(buf, BUF_LEN, PATTERN_SEED);
	mr = ibv_reg_mr(pd, buf, BUF_LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!mr) {
		ret = -errno;
		logf_("client", "ibv_reg_mr(%u bytes): %s", BUF_LEN, strerror(-ret));
		goto free_buf;
	}
	*crc_out = crc_of(buf, BUF_LEN);
	done = (struct smoke_done){ .magic = htobe32(SMOKE_MAGIC), .crc = htobe32(*crc_out),
				    .len = htobe64(BUF_LEN) };
	done_mr = ibv_reg_mr(pd, &done, sizeof(done), 0);
	if (!done_mr) {
		ret = -errno;
		goto dereg_mr;
	}
	ret = cq_open(&scq, id->verbs, NCHUNKS + 4);
	if (ret)
		goto dereg_done_mr;
	ret = cq_open(&rcq, id->verbs, 4);
	if (ret)
		goto close_scq;
	ret = create_qp(id, pd, &scq, &rcq);
	if (ret) {
		logf_("client", "rdma_create_qp: %s", strerror(-ret));
		goto close_rcq;
	}

	param.retry_count = 7;
	param.rnr_retry_count = 7;
	if (rdma_connect(id, &param)) {
		ret = -errno;
		logf_("client", "rdma_connect: %s", strerror(-ret));
		goto destroy_qp;
	}
	ret = cm_wait("client", ch, -1, RDMA_CM_EVENT_ESTABLISHED, &ev);
	if (ret)
		goto destroy_qp;
	if (ev->param.conn.private_data_len < sizeof(t) || !ev->param.conn.private_data) {
		logf_("client", "accept carried %u bytes of private data, need %zu",
		      ev->param.conn.private_data_len, sizeof(t));
		rdma_ack_cm_event(ev);
		ret = -EPROTO;
		goto disconnect;
	}
	memcpy(&t, ev->param.conn.private_data, sizeof(t));
	rdma_ack_cm_event(ev);
	t = (struct smoke_target){ .magic = be32toh(t.magic), .rkey = be32toh(t.rkey),
				   .addr = be64toh(t.addr), .len = be64toh(t.len) };
	if (t.magic != SMOKE_MAGIC || t.len < BUF_LEN) {
		logf_("client", "bad target (magic 0x%08x, len %llu)", t.magic,
		      (unsigned long long)t.len);
		ret = -EPROTO;
		goto disconnect;
	}

	ret = client_post_and_reap(id, &scq, mr, done_mr, &t);

disconnect:
	rdma_disconnect(id);
destroy_qp:
	rdma_destroy_qp(id);
close_rcq:
	cq_close(&rcq);
close_scq:
	cq_close(&scq);
dereg_done_mr:
	ibv_dereg_mr(done_mr);
dereg_mr:
	ibv_dereg_mr(mr);
free_buf:
	free(buf);
dealloc_pd:
	ibv_dealloc_pd(pd);
destroy_id:
	rdma_destroy_id(id);
destroy_channel:
	rdma_destroy_event_channel(ch);
	return ret;
}

/* ------------------------------------------------------------------ main */

static int smoke_one(const struct sockaddr_storage *addr, const char *name)
{
	struct sockaddr_storage dst;
	struct server s = { 0 };
	pthread_t thr;
	int abort_pipe[2];
	uint32_t crc = 0;
	int ret, cret;

	if (pipe2(abort_pipe, O_CLOEXEC))
		return -errno;
	s.abort_rd = abort_pipe[0];
	ret = server_listen(&s, (const struct sockaddr *)addr);
	if (ret)
		goto close_pipe;

	/* Connect to the port the listener got. */
	memset(&dst, 0, sizeof(dst));
	memcpy(&dst, rdma_get_local_addr(s.listen_id),
	       addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					   : sizeof(struct sockaddr_in));
	ret = pthread_create(&thr, NULL, server_thread, &s);
	if (ret) {
		ret = -ret;
		goto close_server;
	}
	cret = client_run((const struct sockaddr *)&dst, &crc);
	if (cret) {
		/* Do not leave the server waiting out its timeouts. */
		if (write(abort_pipe[1], "x", 1) < 0)
			logf_("main", "abort pipe: %s", strerror(errno));
	}
	pthread_join(thr, NULL);
	ret = cret ? cret : s.ret;
	if (!ret && s.crc != crc) {
		logf_("main", "crc32 client 0x%08x != server 0x%08x", crc, s.crc);
		ret = -EBADMSG;
	}
	if (!ret)
		printf("ok: %s port %u: %u MiB RDMA WRITE + SEND verified, crc32 0x%08x\n", name,
		       ntohs(rdma_get_src_port(s.listen_id)), BUF_LEN >> 20, crc);

close_server:
	server_close(&s);
close_pipe:
	close(abort_pipe[0]);
	close(abort_pipe[1]);
	return ret;
}

static int parse_addr(const char *text, struct sockaddr_storage *out)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_family = AF_UNSPEC };
	struct addrinfo *res;

	if (getaddrinfo(text, NULL, &hints, &res))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* First IPv4 address that rdma_cm binds to an RDMA device. */
static int find_rdma_ipv4(struct sockaddr_storage *out, char *name, size_t name_len)
{
	struct rdma_event_channel *ch;
	struct ifaddrs *ifa, *i;
	int ret = -ENOENT;

	if (getifaddrs(&ifa))
		return -errno;
	ch = rdma_create_event_channel();
	if (!ch) {
		ret = -errno;
		goto free_ifa;
	}
	for (i = ifa; i && ret; i = i->ifa_next) {
		struct rdma_cm_id *id;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP))
			continue;
		if (rdma_bind_addr(id, i->ifa_addr) == 0 && id->verbs) {
			memset(out, 0, sizeof(*out));
			memcpy(out, i->ifa_addr, sizeof(struct sockaddr_in));
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, name,
				  (socklen_t)name_len);
			ret = 0;
		}
		rdma_destroy_id(id);
	}
	rdma_destroy_event_channel(ch);
free_ifa:
	freeifaddrs(ifa);
	return ret;
}

/* A missing device is a skip on a plain host, a failure inside the rxe VM. */
static int skip(void)
{
	const char *in_vm = getenv("RDMIG_IN_VM");

	if (in_vm && *in_vm) {
		printf("FAIL: RDMIG_IN_VM is set, so an RDMA device was promised\n");
		return 1;
	}
	return EXIT_SKIP;
}

int main(void)
{
	struct ibv_device **devs;
	struct sockaddr_storage addr;
	char name[INET6_ADDRSTRLEN] = "";
	const char *env4 = getenv("RDMIG_RDMA_ADDR");
	const char *env6 = getenv("RDMIG_RDMA_ADDR6");
	int ndev = 0, ret, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	devs = ibv_get_device_list(&ndev);
	if (!devs || ndev == 0) {
		printf("SKIP: no RDMA device (ibv_get_device_list: %s)\n",
		       devs ? "0 devices" : strerror(errno));
		if (devs)
			ibv_free_device_list(devs);
		return skip();
	}
	printf("devices:");
	for (int i = 0; i < ndev; i++)
		printf(" %s", ibv_get_device_name(devs[i]));
	printf("\n");
	ibv_free_device_list(devs);

	if (env4 && *env4) {
		if (parse_addr(env4, &addr)) {
			printf("FAIL: RDMIG_RDMA_ADDR=%s is not a numeric address\n", env4);
			return 1;
		}
		snprintf(name, sizeof(name), "%s", env4);
	} else {
		ret = find_rdma_ipv4(&addr, name, sizeof(name));
		if (ret) {
			printf("SKIP: no IPv4 address on an RDMA device (%s); set RDMIG_RDMA_ADDR\n",
			       strerror(-ret));
			return skip();
		}
	}
	ret = smoke_one(&addr, name);
	if (ret) {
		printf("FAIL: %s: %s\n", name, strerror(-ret));
		failed = 1;
	}

	if (env6 && *env6) {
		if (parse_addr(env6, &addr)) {
			printf("FAIL: RDMIG_RDMA_ADDR6=%s is not a numeric address\n", env6);
			return 1;
		}
		ret = smoke_one(&addr, env6);
		if (ret) {
			printf("FAIL: %s: %s\n", env6, strerror(-ret));
			failed = 1;
		}
	}
	return failed;
}
