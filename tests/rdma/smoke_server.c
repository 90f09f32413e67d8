/* rdma-smoke's server: listens, accepts one connection whose private data
 * says where the client may write, then checks the bytes once the client's
 * SEND has arrived (RC orders it after the writes).
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "smoke.h"

int server_listen(struct server *s, const struct sockaddr *addr)
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

void server_close(struct server *s)
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

/* The receive is posted before accept: the SEND never meets an RNR. */
static int server_post_recv(struct smoke_ep *ep)
{
	struct ibv_sge sge = { .addr = (uintptr_t)&ep->done, .length = sizeof(ep->done),
			       .lkey = ep->done_mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = WRID_RECV, .sg_list = &sge, .num_sge = 1 }, *bad;
	int ret = ibv_post_recv(ep->id->qp, &wr, &bad);

	if (ret)
		logf_("server", "ibv_post_recv: %s", strerror(ret));
	return -ret;
}

static int server_accept(struct smoke_ep *ep)
{
	struct smoke_target target = {
		.magic = htobe32(SMOKE_MAGIC),
		.rkey = htobe32(ep->mr->rkey),
		.addr = htobe64((uintptr_t)ep->buf),
		.len = htobe64(BUF_LEN),
	};
	struct rdma_conn_param param = {
		.private_data = &target,
		.private_data_len = sizeof(target),
		.rnr_retry_count = 7,
	};

	if (rdma_accept(ep->id, &param)) {
		int ret = -errno;

		logf_("server", "rdma_accept: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* Only the one receive is expected; anything else is an error. */
static int server_reap(struct server *s, struct smoke_ep *ep)
{
	struct ibv_wc wc;
	int ret;

	ret = cq_next(&ep->rcq, s->abort_rd, now_ms() + CQ_TIMEOUT_MS, &wc);
	if (ret) {
		if (ret != -ECANCELED)
			logf_("server", "waiting for the SEND: %s", strerror(-ret));
		return ret;
	}
	if (wc.status != IBV_WC_SUCCESS) {
		logf_("server", "receive wr_id %llu failed: %s (vendor_err 0x%x)",
		      (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status), wc.vendor_err);
		return -EIO;
	}
	if (wc.wr_id != WRID_RECV || wc.opcode != IBV_WC_RECV || wc.byte_len != sizeof(ep->done)) {
		logf_("server", "unexpected completion: wr_id %llu opcode %d byte_len %u",
		      (unsigned long long)wc.wr_id, wc.opcode, wc.byte_len);
		return -EPROTO;
	}
	return server_check(ep->buf, &ep->done, &s->crc);
}

static int server_serve(struct server *s)
{
	struct rdma_cm_event *ev;
	struct rdma_cm_id *id;
	struct smoke_ep ep;
	bool accepted = false;
	int ret;

	ret = cm_wait("server", s->ch, s->abort_rd, RDMA_CM_EVENT_CONNECT_REQUEST, &ev);
	if (ret)
		return ret;
	id = ev->id;
	rdma_ack_cm_event(ev);

	ret = smoke_ep_open(&ep, id, SMOKE_SERVER);
	if (ret)
		goto reject;
	ret = server_post_recv(&ep);
	if (ret)
		goto close_ep;
	ret = server_accept(&ep);
	if (ret)
		goto close_ep;
	accepted = true;
	ret = cm_wait("server", s->ch, s->abort_rd, RDMA_CM_EVENT_ESTABLISHED, &ev);
	if (ret)
		goto close_ep;
	rdma_ack_cm_event(ev);

	ret = server_reap(s, &ep);
	if (ret)
		goto disconnect;

	/* The client hangs up once its sends completed. */
	if (cm_wait("server", s->ch, s->abort_rd, RDMA_CM_EVENT_DISCONNECTED, &ev) == 0)
		rdma_ack_cm_event(ev);

disconnect:
	rdma_disconnect(id);
close_ep:
	smoke_ep_close(&ep);
reject:
	if (!accepted)
		rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
	return ret;
}

void *server_thread(void *arg)
{
	struct server *s = arg;

	s->ret = server_serve(s);
	return NULL;
}
