/* SPDX-License-Identifier: MIT */
/*
 * The destination's listener. A listener with a secret rejects a QP without
 * a valid channel proof (cm.c), so no stranger's QP ever joins a session (and
 * every session has its own PD: its rkeys are worth nothing on any other QP).
 * Up to RT_PENDING sessions are assembled side by side, each with a deadline.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/auth.h"
#include "common/errtext.h"
#include "transport/rdma/rdma_int.h"

#define RT_PENDING 8 /* sessions assembled at once */

/* A session being assembled: its QPs so far, and until when it may take. */
struct rt_pending {
	struct rdm_rdma *r;
	unsigned established;
	uint64_t deadline;
};

struct rt_listener {
	struct rdm_tp_listener base;
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct rdm_tp_opts opts;
	struct rt_pending pend[RT_PENDING];
	atomic_bool shut; /* listener_shutdown() from any thread */
};

int rt_listen(const struct rdm_addr *a, const struct rdm_tp_opts *o, struct rdm_tp_listener **out,
		char *err, size_t errlen)
{
	struct rt_listener *l;
	int ret;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->base.ops = &rdm_rdma_ops;
	l->opts = *o;
	l->ech = rdma_create_event_channel();
	if (!l->ech) {
		ret = -errno;
		rdm_errtext(err, errlen, "rdma_create_event_channel: %s (is an RDMA device present?)",
			 strerror(-ret));
		goto err_free;
	}
	ret = rt_set_nonblock(l->ech->fd);
	if (ret)
		goto err_ech;
	if (rdma_create_id(l->ech, &l->id, l, RDMA_PS_TCP)) {
		ret = -errno;
		rdm_errtext(err, errlen, "rdma_create_id: %s", strerror(-ret));
		goto err_ech;
	}
	if (rdma_bind_addr(l->id, (struct sockaddr *)&a->ss)) {
		ret = -errno;
		rdm_errtext(err, errlen, "binding %s:%u: %s", a->host, a->port, strerror(-ret));
		goto err_id;
	}
	if (rdma_listen(l->id, 16)) {
		ret = -errno;
		rdm_errtext(err, errlen, "listening on %s:%u: %s", a->host, a->port, strerror(-ret));
		goto err_id;
	}
	*out = &l->base;
	return 0;

err_id:
	rdma_destroy_id(l->id);
err_ech:
	rdma_destroy_event_channel(l->ech);
err_free:
	free(l);
	return ret;
}

int rt_listener_port(struct rdm_tp_listener *lb, uint16_t *port)
{
	struct rt_listener *l = (struct rt_listener *)lb;

	*port = ntohs(rdma_get_src_port(l->id));
	return *port ? 0 : -ENOTCONN;
}

static void refuse(struct rdma_cm_id *id, const char *why, char *err, size_t errlen)
{
	rdm_errtext(err, errlen, "refused a connection: %s", why);
	rdma_reject(id, why, (uint8_t)(strlen(why) < 48 ? strlen(why) : 48));
	rdma_destroy_id(id);
}

static struct rt_pending *pending_of_token(struct rt_listener *l, uint64_t token)
{
	for (unsigned i = 0; i < RT_PENDING; i++)
		if (l->pend[i].r && l->pend[i].r->token == token)
			return &l->pend[i];
	return NULL;
}

static bool is_pending_id(struct rdm_rdma *r, struct rdma_cm_id *id)
{
	if (!r)
		return false;
	if (r->ctrl.id == id)
		return true;
	for (unsigned i = 0; i < r->ndata; i++)
		if (r->data[i].id == id)
			return true;
	return false;
}

static struct rt_pending *pending_of_id(struct rt_listener *l, struct rdma_cm_id *id)
{
	for (unsigned i = 0; i < RT_PENDING; i++)
		if (is_pending_id(l->pend[i].r, id))
			return &l->pend[i];
	return NULL;
}

static void pending_drop(struct rt_pending *p)
{
	rt_free(p->r); /* disconnects what was established: the peer learns at once */
	memset(p, 0, sizeof(*p));
}

/*
 * The proof behind the CHANNEL frame (why it fails, or NULL). Without a
 * secret here proofs are not judged; the session handshake then refuses a
 * source that wants one.
 */
static const char *proof_check(const struct rt_listener *l, const struct rdma_conn_param *cp,
			       const struct rdm_channel *ch)
{
	bool has = ch->flags & RT_FLAG_PROOF;
	int ret = -EBADMSG;

	if (has && cp->private_data_len >= RT_HELLO_LEN + RDM_CHAN_PROOF_FRAME)
		ret = rdm_auth_chan_proof_check((const uint8_t *)cp->private_data + RT_HELLO_LEN,
						RDM_CHAN_PROOF_FRAME,
						l->opts.secret ? l->opts.secret : (const uint8_t *)"",
						l->opts.secret ? l->opts.secret_len : 0, ch);
	if (has && ret == -EBADMSG)
		return "bad channel proof";
	if (!l->opts.secret)
		return NULL;
	if (!has)
		return "authentication failed: no proof";
	return ret ? "authentication failed: wrong proof" : NULL;
}

/* A connect request: validate, then join it to the session of its token. */
static int on_request(struct rt_listener *l, struct rdma_cm_event *ev, char *err, size_t errlen)
{
	const struct rdma_conn_param *cp = &ev->param.conn;
	struct rdma_conn_param acc = {0};
	struct rt_pending *p;
	struct rdm_channel ch;
	const char *bad;
	struct rdm_rdma *r;
	struct rt_qp *q;
	struct rdm_msg m;
	unsigned shift;
	int ret;

	if (!cp->private_data ||
	    rdm_msg_decode(cp->private_data,
			   cp->private_data_len < RT_HELLO_LEN ? cp->private_data_len : RT_HELLO_LEN,
			   &m) ||
	    m.type != RDM_MSG_CHANNEL) {
		refuse(ev->id, "not an rdmig peer", err, errlen);
		return 0;
	}
	ch = m.u.channel;
	if (ch.version != RDM_WIRE_VERSION) {
		refuse(ev->id, "unsupported protocol version", err, errlen);
		return 0;
	}
	bad = proof_check(l, cp, &ch);
	if (bad) {
		refuse(ev->id, bad, err, errlen);
		return 0;
	}
	if (ch.count < 2 || ch.count > 65) {
		refuse(ev->id, "bad channel count", err, errlen);
		return 0;
	}
	shift = ch.flags >> RT_FLAG_CHUNK_SHIFT;
	if (shift < 20 || shift > 30) {
		refuse(ev->id, "bad chunk size", err, errlen);
		return 0;
	}
	p = pending_of_token(l, ch.token);
	if (!p) {
		if (ch.index != 0) {
			refuse(ev->id, "data channel before control", err, errlen);
			return 0;
		}
		for (unsigned i = 0; !p && i < RT_PENDING; i++)
			if (!l->pend[i].r)
				p = &l->pend[i];
		if (!p) {
			refuse(ev->id, "too many migrations being set up", err, errlen);
			return 0;
		}
		p->r = rt_alloc(&l->opts, false, ch.count - 1u);
		if (!p->r) {
			refuse(ev->id, "out of memory", err, errlen);
			return 0;
		}
		p->r->token = ch.token;
		p->r->base.token = ch.token;
		p->r->pin_all = ch.flags & RT_FLAG_PIN_ALL;
		p->r->chunk = 1ull << shift;
		p->established = 0;
		p->deadline = rt_now_ms() + (uint64_t)p->r->timeout_ms;
	} else if (ch.count != p->r->ndata + 1 || ch.index == 0 || p->r->chunk != 1ull << shift) {
		refuse(ev->id, "channel does not fit its session", err, errlen);
		return 0;
	}
	r = p->r;
	q = ch.index == 0 ? &r->ctrl : &r->data[ch.index - 1];
	if (q->id) {
		refuse(ev->id, "channel announced twice", err, errlen);
		return 0;
	}
	q->index = ch.index;
	ret = rt_setup_qp(r, q, ev->id, ch.index > 0);
	if (!ret && ch.index == 0)
		ret = rt_ctrl_init(r);
	if (!ret && ch.index > 0)
		ret = rt_data_post_fence_recvs(q);
	if (ret) {
		rdm_errtext(err, errlen, "setting up channel %u: %s", ch.index, strerror(-ret));
		rdma_reject(ev->id, NULL, 0);
		return ret;
	}
	rt_rd_depth(r, &acc.initiator_depth, &acc.responder_resources);
	acc.retry_count = 7;
	acc.rnr_retry_count = 7;
	if (rdma_accept(ev->id, &acc)) {
		ret = -errno;
		rdm_errtext(err, errlen, "rdma_accept: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* Sessions past their deadline are dropped (and their peers disconnected). */
static void expire(struct rt_listener *l, char *err, size_t errlen)
{
	uint64_t now = rt_now_ms();

	for (unsigned i = 0; i < RT_PENDING; i++) {
		struct rt_pending *p = &l->pend[i];

		if (!p->r || now < p->deadline)
			continue;
		rdm_errtext(err, errlen, "refused a connection: session %016llx incomplete after %d ms "
				      "(%u of %u channels)",
			 (unsigned long long)p->r->token, p->r->timeout_ms, p->established,
			 p->r->ndata + 1);
		pending_drop(p);
	}
}

/* The assembled session leaves the listener: its own event channel and threads. */
static int finish(struct rt_pending *p, struct rdm_tp **out)
{
	struct rdm_rdma *r = p->r;
	int ret;

	memset(p, 0, sizeof(*p));
	r->ech = rdma_create_event_channel();
	if (!r->ech || rt_set_nonblock(r->ech->fd) || rdma_migrate_id(r->ctrl.id, r->ech)) {
		rt_free(r);
		return -EIO;
	}
	for (unsigned i = 0; i < r->ndata; i++)
		if (rdma_migrate_id(r->data[i].id, r->ech)) {
			rt_free(r);
			return -EIO;
		}
	ret = rt_progress_start(r);
	if (!ret)
		ret = rt_start_cm_thread(r);
	if (ret) {
		rt_free(r);
		return ret;
	}
	*out = &r->base;
	return 0;
}

int rt_accept(struct rdm_tp_listener *lb, int timeout_ms, struct rdm_tp **out, char *err,
		size_t errlen)
{
	struct rt_listener *l = (struct rt_listener *)lb;
	uint64_t deadline = rt_deadline(timeout_ms);
	struct rdma_cm_event *ev;
	struct rt_pending *p;
	int ret;

	/* Only this call's refusals: -ETIMEDOUT with an empty err means nobody came. */
	if (errlen)
		err[0] = '\0';
	while (!atomic_load(&l->shut)) {
		uint64_t now = rt_now_ms();

		expire(l, err, errlen);
		if (now >= deadline)
			return -ETIMEDOUT;
		ret = rt_next_event(l->ech, (int)(deadline - now > 100 ? 100 : deadline - now), &ev);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret)
			return ret;
		ret = 0;
		p = pending_of_id(l, ev->id);
		switch (ev->event) {
		case RDMA_CM_EVENT_CONNECT_REQUEST:
			p = NULL;
			ret = on_request(l, ev, err, errlen);
			if (ret)
				p = pending_of_id(l, ev->id);
			break;
		case RDMA_CM_EVENT_ESTABLISHED:
			if (p)
				p->established++;
			break;
		default:
			if (p) {
				rdm_errtext(err, errlen, "connection failed during setup: %s",
					 rdma_event_str(ev->event));
				ret = -ECONNABORTED;
			}
		}
		rdma_ack_cm_event(ev);
		if (ret) {
			if (p)
				pending_drop(p);
			continue; /* a broken attempt does not end the listening */
		}
		if (p && p->established == p->r->ndata + 1)
			return finish(p, out);
	}
	return -ECANCELED;
}

void rt_listener_shutdown(struct rdm_tp_listener *lb)
{
	atomic_store(&((struct rt_listener *)lb)->shut, true);
}

void rt_listener_close(struct rdm_tp_listener *lb)
{
	struct rt_listener *l = (struct rt_listener *)lb;

	if (!l)
		return;
	for (unsigned i = 0; i < RT_PENDING; i++)
		if (l->pend[i].r)
			pending_drop(&l->pend[i]);
	rdma_destroy_id(l->id);
	rdma_destroy_event_channel(l->ech);
	free(l);
}
