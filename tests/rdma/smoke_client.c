/* rdma-smoke's client: connects, RDMA WRITEs the pattern where the accept's
 * private data says, then SENDs its length and CRC32 in the same post.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "smoke.h"

static int client_post_and_reap(struct smoke_ep *ep, const struct smoke_target *t)
{
	struct ibv_send_wr wr[NCHUNKS + 1], *bad;
	struct ibv_sge sge[NCHUNKS + 1];
	int64_t deadline = now_ms() + CQ_TIMEOUT_MS;
	unsigned pending = NCHUNKS + 1, seen_writes = 0;
	int ret;

	for (unsigned i = 0; i < NCHUNKS; i++) {
		sge[i] = (struct ibv_sge){ .addr = (uintptr_t)ep->buf + (uint64_t)i * CHUNK_LEN,
					   .length = CHUNK_LEN, .lkey = ep->mr->lkey };
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
	sge[NCHUNKS] = (struct ibv_sge){ .addr = (uintptr_t)&ep->done,
					 .length = sizeof(ep->done),
					 .lkey = ep->done_mr->lkey };
	wr[NCHUNKS] = (struct ibv_send_wr){
		.wr_id = WRID_SEND,
		.sg_list = &sge[NCHUNKS],
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	/* One post: the writes, then the SEND that RC orders after them. */
	ret = ibv_post_send(ep->id->qp, wr, &bad);
	if (ret) {
		logf_("client", "ibv_post_send (failed at wr_id %llu): %s",
		      (unsigned long long)bad->wr_id, strerror(ret));
		return -ret;
	}

	while (pending) {
		struct ibv_wc wc;

		ret = cq_next(&ep->scq, -1, deadline, &wc);
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

static int client_resolve(struct rdma_event_channel *ch, struct rdma_cm_id *id,
			  const struct sockaddr *dst)
{
	struct rdma_cm_event *ev;
	int ret;

	if (rdma_resolve_addr(id, NULL, (struct sockaddr *)dst, RESOLVE_TIMEOUT_MS)) {
		ret = -errno;
		logf_("client", "rdma_resolve_addr: %s", strerror(-ret));
		return ret;
	}
	ret = cm_wait("client", ch, -1, RDMA_CM_EVENT_ADDR_RESOLVED, &ev);
	if (ret)
		return ret;
	rdma_ack_cm_event(ev);
	if (rdma_resolve_route(id, RESOLVE_TIMEOUT_MS)) {
		ret = -errno;
		logf_("client", "rdma_resolve_route: %s", strerror(-ret));
		return ret;
	}
	ret = cm_wait("client", ch, -1, RDMA_CM_EVENT_ROUTE_RESOLVED, &ev);
	if (ret)
		return ret;
	rdma_ack_cm_event(ev);
	return 0;
}

/* Connected: the target from the accept's private data, in host order.  A bad
 * target hangs up again: only a failed connect leaves nothing to disconnect. */
static int client_connect(struct rdma_event_channel *ch, struct rdma_cm_id *id,
			  struct smoke_target *t)
{
	struct rdma_conn_param param = { .retry_count = 7, .rnr_retry_count = 7 };
	struct rdma_cm_event *ev;
	int ret;

	if (rdma_connect(id, &param)) {
		ret = -errno;
		logf_("client", "rdma_connect: %s", strerror(-ret));
		return ret;
	}
	ret = cm_wait("client", ch, -1, RDMA_CM_EVENT_ESTABLISHED, &ev);
	if (ret)
		return ret;
	if (ev->param.conn.private_data_len < sizeof(*t) || !ev->param.conn.private_data) {
		logf_("client", "accept carried %u bytes of private data, need %zu",
		      ev->param.conn.private_data_len, sizeof(*t));
		rdma_ack_cm_event(ev);
		rdma_disconnect(id);
		return -EPROTO;
	}
	memcpy(t, ev->param.conn.private_data, sizeof(*t));
	rdma_ack_cm_event(ev);
	*t = (struct smoke_target){ .magic = be32toh(t->magic), .rkey = be32toh(t->rkey),
				    .addr = be64toh(t->addr), .len = be64toh(t->len) };
	if (t->magic != SMOKE_MAGIC || t->len < BUF_LEN) {
		logf_("client", "bad target (magic 0x%08x, len %llu)", t->magic,
		      (unsigned long long)t->len);
		rdma_disconnect(id);
		return -EPROTO;
	}
	return 0;
}

int client_run(const struct sockaddr *dst, uint32_t *crc_out)
{
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct smoke_target t = { 0 };
	struct smoke_ep ep;
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
	ret = client_resolve(ch, id, dst);
	if (ret)
		goto destroy_id;
	ret = smoke_ep_open(&ep, id, SMOKE_CLIENT);
	if (ret)
		goto destroy_id;
	*crc_out = be32toh(ep.done.crc);

	ret = client_connect(ch, id, &t);
	if (ret)
		goto close_ep;
	ret = client_post_and_reap(&ep, &t);
	rdma_disconnect(id);
close_ep:
	smoke_ep_close(&ep);
destroy_id:
	rdma_destroy_id(id);
destroy_channel:
	rdma_destroy_event_channel(ch);
	return ret;
}
