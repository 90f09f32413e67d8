/* rdma-smoke's shared pieces: logging, pattern and CRC, the waits on CM
 * events and CQs, and the per-side fixture (smoke_ep) with its one setup and
 * one teardown.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "smoke.h"

void logf_(const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", who);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

uint32_t crc_of(const uint8_t *p, size_t len)
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

int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int cm_wait(const char *who, struct rdma_event_channel *ch, int abort_fd,
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
	ibv_destroy_cq(c->cq);
	ibv_destroy_comp_channel(c->ch);
	c->cq = NULL;
	c->ch = NULL;
}

int cq_next(struct cq_ctx *c, int abort_fd, int64_t deadline, struct ibv_wc *wc)
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

int smoke_ep_open(struct smoke_ep *ep, struct rdma_cm_id *id, enum smoke_role role)
{
	bool server = role == SMOKE_SERVER;
	int buf_access = server ? IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE
				: IBV_ACCESS_LOCAL_WRITE;
	/* The server receives the SEND into done; the client only sends from it. */
	int done_access = server ? IBV_ACCESS_LOCAL_WRITE : 0;
	void *mem;
	int ret;

	memset(ep, 0, sizeof(*ep));
	ep->who = server ? "server" : "client";
	ep->id = id;
	ep->pd = ibv_alloc_pd(id->verbs);
	if (!ep->pd) {
		ret = -errno;
		logf_(ep->who, "ibv_alloc_pd: %s", strerror(-ret));
		return ret;
	}
	ret = posix_memalign(&mem, 4096, BUF_LEN);
	if (ret) {
		ret = -ret;
		goto dealloc_pd;
	}
	ep->buf = mem;
	if (server) {
		memset(ep->buf, 0xa5, BUF_LEN);
	} else {
		fill_pattern(ep->buf, BUF_LEN, PATTERN_SEED);
		ep->done = (struct smoke_done){ .magic = htobe32(SMOKE_MAGIC),
						.crc = htobe32(crc_of(ep->buf, BUF_LEN)),
						.len = htobe64(BUF_LEN) };
	}
	ep->mr = ibv_reg_mr(ep->pd, ep->buf, BUF_LEN, buf_access);
	if (!ep->mr) {
		ret = -errno;
		logf_(ep->who, "ibv_reg_mr(%u bytes): %s", BUF_LEN, strerror(-ret));
		goto free_buf;
	}
	ep->done_mr = ibv_reg_mr(ep->pd, &ep->done, sizeof(ep->done), done_access);
	if (!ep->done_mr) {
		ret = -errno;
		logf_(ep->who, "ibv_reg_mr(done): %s", strerror(-ret));
		goto dereg_mr;
	}
	ret = cq_open(&ep->scq, id->verbs, server ? 8 : NCHUNKS + 4);
	if (ret)
		goto dereg_done_mr;
	ret = cq_open(&ep->rcq, id->verbs, server ? 8 : 4);
	if (ret)
		goto close_scq;
	ret = create_qp(id, ep->pd, &ep->scq, &ep->rcq);
	if (ret) {
		logf_(ep->who, "rdma_create_qp: %s", strerror(-ret));
		goto close_rcq;
	}
	return 0;

close_rcq:
	cq_close(&ep->rcq);
close_scq:
	cq_close(&ep->scq);
dereg_done_mr:
	ibv_dereg_mr(ep->done_mr);
dereg_mr:
	ibv_dereg_mr(ep->mr);
free_buf:
	free(ep->buf);
dealloc_pd:
	ibv_dealloc_pd(ep->pd);
	memset(ep, 0, sizeof(*ep));
	return ret;
}

void smoke_ep_close(struct smoke_ep *ep)
{
	rdma_destroy_qp(ep->id);
	cq_close(&ep->rcq);
	cq_close(&ep->scq);
	ibv_dereg_mr(ep->done_mr);
	ibv_dereg_mr(ep->mr);
	free(ep->buf);
	ibv_dealloc_pd(ep->pd);
	memset(ep, 0, sizeof(*ep));
}
