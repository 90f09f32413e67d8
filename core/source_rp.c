/* SPDX-License-Identifier: MIT */
/*
 * The source's return path: a thread of its own reads acks, pings, page
 * requests and errors from the destination while the migration thread sends,
 * and pings so that both sides' silence detectors stay quiet.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "core/postcopy.h"
#include "core/session.h"
#include "core/source.h"

/* Return path: acks, pings, page requests and errors from the destination. */
static void rp_fail(struct rdmig_session *s, int err)
{
	pthread_mutex_lock(&s->lock);
	if (!s->rp_error)
		s->rp_error = err;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static int rp_handle(struct rdmig_session *s, const struct rdm_msg *m)
{
	struct rdm_msg pong = {.type = RDM_MSG_RP_PONG};

	switch (m->type) {
	case RDM_MSG_RP_FENCE_ACK:
		pthread_mutex_lock(&s->lock);
		if (m->u.seq.seq > s->acked_seq)
			s->acked_seq = m->u.seq.seq;
		if (s->probe_seq && m->u.seq.seq >= s->probe_seq) {
			rdm_policy_ack_sample(&s->policy, rdm_now_us() - s->probe_us);
			s->probe_seq = 0;
		}
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return 0;
	case RDM_MSG_RP_COMPLETE_ACK:
		pthread_mutex_lock(&s->lock);
		s->complete_acked = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return 0;
	case RDM_MSG_RP_READY:
		if (rdm_fault("src-lose-ready")) {
			/* Test builds: READY is lost with the link (commit.c lists the points). */
			rdm_set_error(s, "fault injected at src-lose-ready: link cut");
			s->tp->ops->shutdown(s->tp);
			return -ECONNRESET;
		}
		pthread_mutex_lock(&s->lock);
		s->ready_seq = m->u.seq.seq;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return 0;
	case RDM_MSG_RP_PING:
		pong.u.u32.value = m->u.u32.value;
		return rdm_send_msg(s, &pong);
	case RDM_MSG_RP_PONG:
		return 0;
	case RDM_MSG_RP_REQ_PAGES:
		return rdm_pc_request(s, &m->u.req);
	case RDM_MSG_ERROR:
		rdm_set_error(s, "destination failed: %s", m->u.error.text);
		/* Its word that it will not run the VM: the commit may resume ours. */
		pthread_mutex_lock(&s->lock);
		s->refused = true;
		pthread_mutex_unlock(&s->lock);
		/* The destination's cancel is this side's failure, not its cancel. */
		if (m->u.error.code == -ECANCELED)
			return -ECONNABORTED;
		return m->u.error.code < 0 ? m->u.error.code : -EPROTO;
	case RDM_MSG_RP_SHUT:
		rdm_set_error(s, "destination closed the return path (code %u)",
			      m->u.u32.value);
		return -ECONNRESET;
	default:
		rdm_set_error(s, "unexpected %s on the return path", rdm_msg_name(m->type));
		return -EPROTO;
	}
}

static void *rp_main(void *arg)
{
	struct rdmig_session *s = arg;
	int timeout = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT];
	uint64_t last_rx = rdm_now_ms(), last_ping = 0;
	bool ping_failed = false;
	struct rdm_msg m;
	uint8_t *buf;
	int ret = 0;

	buf = malloc(RDM_CTRL_BUF);
	if (!buf) {
		rp_fail(s, -ENOMEM);
		return NULL;
	}
	for (;;) {
		uint64_t now = rdm_now_ms();

		pthread_mutex_lock(&s->lock);
		bool stop = !s->rp_running;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			break;
		/*
		 * Pings keep both sides' silence detectors quiet while RAM flows.
		 * A ping that cannot go out ends nothing by itself: the peer may
		 * have said DONE and hung up, and the receive below still hands
		 * over every message it sent before it did, then the loss.
		 */
		if (!ping_failed && now - last_ping >= (uint64_t)timeout / 4) {
			struct rdm_msg ping = {.type = RDM_MSG_RP_PING};

			ping.u.u32.value = (uint32_t)now;
			last_ping = now;
			ping_failed = rdm_quiet_send(s, &ping) != 0;
		}
		ret = rdm_recv_msg(s, buf, RDM_CTRL_BUF, &m, 100);
		if (ret == -ETIMEDOUT) {
			ret = 0;
			if (rdm_now_ms() - last_rx > (uint64_t)timeout) {
				rdm_set_error(s, "no word from the destination for %d ms", timeout);
				ret = -ETIMEDOUT;
				break;
			}
			continue;
		}
		if (ret) {
			rdm_set_error(s, "return path: %s",
				      rdm_tp_why(ret));
			break;
		}
		last_rx = rdm_now_ms();
		ret = rp_handle(s, &m);
		if (ret)
			break;
	}
	if (ret)
		rp_fail(s, ret);
	free(buf);
	return NULL;
}

int rdm_src_start_rp(struct rdmig_session *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	s->rp_running = true;
	pthread_mutex_unlock(&s->lock);
	ret = -pthread_create(&s->rp_thread, NULL, rp_main, s);
	if (ret) {
		s->rp_running = false;
		rdm_set_error(s, "cannot start the return-path thread");
	}
	return ret;
}

void rdm_src_stop_rp(struct rdmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	bool running = s->rp_running;
	s->rp_running = false;
	pthread_mutex_unlock(&s->lock);
	if (running)
		pthread_join(s->rp_thread, NULL);
}
