/* SPDX-License-Identifier: MIT */
/*
 * The source state machine: setup -> active (iterations) -> [pre-switchover,
 * VM stopped] -> device (VM stopped, final pass, device state) -> the commit
 * (commit.c) -> completed once the destination runs. Any error or cancel
 * before the final state is handed over resumes the VM; after that only the
 * destination's refusal does, and an unknown outcome is commit-unknown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"
#include "core/bitmap.h"
#include "core/commit.h"
#include "core/postcopy.h"
#include "core/ram.h"
#include "core/session.h"
#include "core/source.h"
#include "core/track.h"

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

int rdm_src_wait_rp(struct rdmig_session *s, uint64_t seq, int timeout_ms)
{
	uint64_t deadline = rdm_now_ms() + (uint64_t)timeout_ms;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->acked_seq >= seq)
			break;
		if (s->rp_error) {
			ret = s->rp_error;
			break;
		}
		if (atomic_load(&s->cancel)) {
			ret = -ECANCELED;
			break;
		}
		if (rdm_now_ms() >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		rdm_cond_slice(s, 50);
	}
	pthread_mutex_unlock(&s->lock);
	if (ret == -ETIMEDOUT)
		rdm_set_error(s, "destination did not confirm iteration %llu within %d ms",
			      (unsigned long long)seq, timeout_ms);
	return ret;
}

/* A refusal of ours: recorded here and told to the destination. */
static int refuse_dest(struct rdmig_session *s, int err, const char *why)
{
	rdm_set_error(s, "%s", why);
	rdm_send_error(s, err, why);
	return err;
}

/* BLOCKS, encoded here so its exact bytes can be bound into the proofs. */
static int send_blocks(struct rdmig_session *s, struct rdm_auth_state *a)
{
	struct rdm_msg m = {.type = RDM_MSG_BLOCKS};
	struct rdm_block_desc *desc;
	uint8_t *frame = NULL;
	size_t len = 0;
	int ret = -ENOMEM;

	desc = calloc(s->nblocks, sizeof(*desc));
	if (!desc)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nblocks; i++) {
		memcpy(desc[i].name, s->blocks[i].name, sizeof(desc[i].name));
		desc[i].length = s->blocks[i].len;
		desc[i].page_size = s->blocks[i].page_size;
	}
	m.u.blocks.count = s->nblocks;
	m.u.blocks.desc = desc;
	len = rdm_msg_size(&m);
	frame = len ? malloc(len) : NULL;
	if (!frame)
		goto out_desc;
	ret = rdm_msg_encode(&m, frame, len, &len);
	if (!ret)
		ret = rdm_auth_digest_blocks(a, frame, len);
	if (!ret) {
		ret = rdm_tp_send(s->tp, frame, len);
		if (ret)
			rdm_set_error(s, "sending blocks: %s", rdm_tp_why(ret));
	}
	free(frame);
out_desc:
	free(desc);
	return ret;
}

/* Next message, with the destination's ERROR turned into the refusal it is. */
static int recv_answer(struct rdmig_session *s, uint8_t *buf, struct rdm_msg *m, const char *what)
{
	int timeout = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT];
	int ret;

	ret = rdm_recv_msg(s, buf, RDM_CTRL_BUF, m, timeout);
	if (ret) {
		rdm_set_error(s, "no %s from the destination: %s", what, strerror(-ret));
		return ret;
	}
	if (m->type == RDM_MSG_ERROR) {
		rdm_set_error(s, "destination refused: %s", m->u.error.text);
		return m->u.error.code < 0 ? m->u.error.code : -ECONNREFUSED;
	}
	return 0;
}

/*
 * HELLO [AUTH_NONCE] both ways, then BLOCKS and our AUTH_PROOF; with a secret
 * the destination's AUTH_PROOF must check out before its BLOCKS_ACK counts.
 */
static int handshake(struct rdmig_session *s, uint8_t *buf)
{
	struct rdm_msg m = {.type = RDM_MSG_HELLO};
	int timeout = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT];
	struct rdm_auth_state a;
	char why[RDM_ERRLEN];
	int ret;

	rdm_auth_init(s, &a);
	m.u.hello.magic = RDM_WIRE_MAGIC;
	m.u.hello.version = RDM_WIRE_VERSION;
	m.u.hello.features = RDM_FEAT_ZERO_RUNS | RDM_FEAT_RETURN_PATH | rdm_auth_features(s);
	if (s->opts.caps[RDMIG_CAP_POSTCOPY_RAM])
		m.u.hello.features |= RDM_FEAT_POSTCOPY;
	ret = rdm_send_msg(s, &m);
	if (!ret)
		ret = rdm_auth_send_nonce(s, &a, true);
	if (ret)
		return ret;
	ret = recv_answer(s, buf, &m, "hello");
	if (ret)
		return ret;
	if (m.type != RDM_MSG_HELLO || m.u.hello.version != RDM_WIRE_VERSION) {
		rdm_set_error(s, "destination speaks %s version %u, this source %u",
			      rdm_msg_name(m.type), m.u.hello.version, RDM_WIRE_VERSION);
		return -EPROTONOSUPPORT;
	}
	/* Like QEMU, postcopy-ram must be on at both ends (checked before any RAM moves). */
	if (s->opts.caps[RDMIG_CAP_POSTCOPY_RAM] && !(m.u.hello.features & RDM_FEAT_POSTCOPY))
		return refuse_dest(s, -ENOTSUP, "postcopy-ram is on at the source but not at the "
						"destination");
	ret = rdm_auth_match(s, &a, m.u.hello.features, true, why, sizeof(why));
	if (ret)
		return refuse_dest(s, ret, why);
	ret = rdm_auth_recv_nonce(s, &a, true, timeout, why, sizeof(why));
	if (ret) {
		rdm_set_error(s, "%s", why);
		return ret;
	}

	ret = send_blocks(s, &a);
	if (!ret)
		ret = rdm_auth_send_source_proof(s, &a);
	if (ret)
		return ret;
	if (a.on) {
		ret = recv_answer(s, buf, &m, "proof");
		if (ret)
			return ret;
		if (m.type != RDM_MSG_AUTH_PROOF)
			return refuse_dest(s, -EACCES, "authentication failed: the destination "
						       "answered without a proof");
		ret = rdm_auth_check_dest_proof(s, &a, &m.u.proof, why, sizeof(why));
		if (ret)
			return refuse_dest(s, ret, why);
	}
	ret = rdm_recv_msg(s, buf, RDM_CTRL_BUF, &m, timeout);
	if (ret) {
		rdm_set_error(s, "no answer to the block list: %s", strerror(-ret));
		return ret;
	}
	if (m.type == RDM_MSG_ERROR) {
		rdm_set_error(s, "destination refused the block list: %s", m.u.error.text);
		return m.u.error.code < 0 ? m.u.error.code : -EINVAL;
	}
	if (m.type != RDM_MSG_BLOCKS_ACK) {
		rdm_set_error(s, "expected blocks-ack, got %s", rdm_msg_name(m.type));
		return -EPROTO;
	}
	return 0;
}

static int setup(struct rdmig_session *s)
{
	struct rdm_tp_opts to;
	char err[RDM_TP_ERRLEN] = "";
	struct rdm_tp *tp = NULL;
	uint8_t *buf;
	int ret;

	rdm_session_tp_opts(s, &to);
	ret = s->ops->connect(&s->addr, &to, &tp, err, sizeof(err));
	if (ret) {
		rdm_set_error(s, "connect %s:%u: %s", s->addr.host, s->addr.port,
			      err[0] ? err : strerror(-ret));
		return ret;
	}
	/* Published under the lock: a cancel may shut it down from another thread. */
	pthread_mutex_lock(&s->lock);
	s->tp = tp;
	pthread_mutex_unlock(&s->lock);
	buf = malloc(RDM_CTRL_BUF);
	if (!buf)
		return -ENOMEM;
	ret = handshake(s, buf);
	free(buf);
	if (ret)
		return ret;

	ret = rdm_session_set_blocks(s);
	if (ret) {
		rdm_set_error(s, "transport block setup: %s", rdm_tp_why(ret));
		return ret;
	}
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

int rdm_src_pass(struct rdmig_session *s, struct rdm_ram *ram, uint64_t seq)
{
	int timeout = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT];
	struct rdm_msg m = {.type = RDM_MSG_ITER_END};
	int ret;

	/* Pages zeroed in the last pass must be zero there before new data lands. */
	if (ram->zero_pending) {
		ret = rdm_src_wait_rp(s, ram->zero_pending, timeout);
		if (ret)
			return ret;
		ram->zero_pending = 0;
	}
	ret = rdm_ram_send_dirty(ram);
	if (ret)
		return ret;
	ret = rdm_tp_fence(s->tp, seq);
	if (ret) {
		rdm_set_error(s, "fence: %s", rdm_tp_why(ret));
		return ret;
	}
	m.u.seq.seq = seq;
	ret = rdm_send_msg(s, &m);
	if (ret)
		return ret;
	if (ram->zero_sent_in_pass)
		ram->zero_pending = seq;
	return 0;
}

void rdm_src_update_stats(struct rdmig_session *s, struct rdm_ram *ram)
{
	rdm_ram_publish(ram);
	pthread_mutex_lock(&s->lock);
	s->stats.dirty_sync_count = ram->syncs;
	s->stats.dirty_pages_rate = s->policy.dirty_pages_rate;
	s->stats.cpu_throttle_percentage = s->policy.throttle;
	s->stats.expected_downtime_ms = rdm_policy_expected_downtime(&s->policy, ram->remaining);
	if (s->stats.expected_downtime_ms == UINT64_MAX)
		s->stats.expected_downtime_ms = 0;
	s->stats.mbps = s->policy.bandwidth * 8.0 / 1000.0; /* bytes/ms -> Mbit/s */
	s->stats.pages_per_second = ram->pages_per_second;
	pthread_mutex_unlock(&s->lock);
}

static int iterate(struct rdmig_session *s, struct rdm_ram *ram, uint64_t *seq)
{
	uint64_t period_start = rdm_now_ms(), period_dirty = 0, period_sent = 0;
	uint64_t period_dirty_pages = 0;
	int ret;

	for (;;) {
		uint64_t t0 = rdm_now_ms(), sent0 = ram->bytes_total, dirty, dbytes, now;

		ret = rdm_src_pass(s, ram, ++*seq);
		if (ret)
			return ret;
		now = rdm_now_ms();
		rdm_policy_sent(&s->policy, ram->bytes_total - sent0, now - t0);
		period_sent += ram->bytes_total - sent0;
		ret = rdm_ram_sync(ram, &dirty, &dbytes);
		if (ret)
			return ret;
		period_dirty += dbytes;
		period_dirty_pages += dirty;
		/* Like QEMU, judge the dirty rate over periods of at least a second. */
		now = rdm_now_ms();
		if (now - period_start >= 1000) {
			unsigned old = s->policy.throttle;
			unsigned thr = rdm_policy_after_sync(&s->policy, period_dirty,
							     period_dirty_pages, period_sent,
							     now - period_start);

			if (thr != old && s->cb.set_throttle)
				s->cb.set_throttle(s->opaque, thr);
			ram->pages_per_second =
				(ram->normal_pages - ram->period_pages) * 1000 / (now - period_start);
			ram->period_pages = ram->normal_pages;
			period_start = now;
			period_dirty = period_sent = period_dirty_pages = 0;
		}
		rdm_src_update_stats(s, ram);
		if (rdm_policy_should_switch(&s->policy, dbytes) || atomic_load(&s->pc_start))
			return 0;
		/* Not converging: switch to postcopy by itself (postcopy-after). */
		if (rdm_policy_postcopy_due(&s->policy,
					    rdm_policy_expected_downtime(&s->policy, dbytes))) {
			atomic_store(&s->pc_start, true);
			return 0;
		}
		ret = rdm_check_abort(s);
		if (ret)
			return ret;
	}
}

int rdm_src_pause(struct rdmig_session *s)
{
	int ret = 0;

	rdm_set_status(s, RDMIG_STATUS_PRE_SWITCHOVER);
	pthread_mutex_lock(&s->lock);
	while (!atomic_load(&s->go_on)) {
		if (atomic_load(&s->cancel)) {
			ret = -ECANCELED;
			break;
		}
		if (s->rp_error) {
			ret = s->rp_error;
			break;
		}
		/* rdmig_continue(), rdmig_cancel() and the return path all broadcast. */
		pthread_cond_wait(&s->cond, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int rdm_src_stop_vm(struct rdmig_session *s)
{
	int ret;

	s->t_stop_ms = rdm_now_ms();
	if (!s->cb.vm_stop)
		return 0;
	ret = rdm_cb_ret(s->cb.vm_stop(s->opaque));
	if (ret)
		rdm_set_error(s, "vm_stop callback failed: %s", strerror(-ret));
	return ret;
}

int rdm_src_stop_sync(struct rdmig_session *s, struct rdm_ram *ram)
{
	uint64_t dirty, dbytes;
	int ret;

	ret = rdm_src_stop_vm(s);
	if (ret)
		return ret;
	if (s->opts.caps[RDMIG_CAP_PAUSE_BEFORE_SWITCHOVER]) {
		ret = rdm_src_pause(s);
		if (ret)
			return ret;
	}
	rdm_set_status(s, RDMIG_STATUS_DEVICE);
	return rdm_ram_sync(ram, &dirty, &dbytes);
}

int rdm_src_commit(struct rdmig_session *s, struct rdm_ram *ram, uint64_t seq, bool *unknown)
{
	struct rdm_commit c = {.s = s, .st = RDM_COMMIT_SRC_HANDOVER, .seq = seq,
			       .timeout_ms = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT]};
	uint64_t devbytes;
	int ret;

	rdm_src_update_stats(s, ram);
	ret = rdm_devstate_save(s, &devbytes);
	if (ret)
		return ret;
	switch (rdm_commit_run(&c)) {
	case RDM_COMMIT_DONE:
		break;
	case RDM_COMMIT_UNKNOWN:
		*unknown = true;
		return c.err ? c.err : -EPROTO;
	default:
		return c.err ? c.err : -EPROTO;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.downtime_ms = rdm_now_ms() - s->t_stop_ms;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/*
 * Stop, final pass, device state, then the commit. 0 when the destination runs;
 * otherwise -errno, with *unknown set when this side cannot know the outcome.
 */
static int switchover(struct rdmig_session *s, struct rdm_ram *ram, uint64_t *seq, bool *unknown)
{
	int ret;

	ret = rdm_src_stop_sync(s, ram);
	if (!ret)
		ret = rdm_src_pass(s, ram, ++*seq);
	if (ret)
		return ret;
	return rdm_src_commit(s, ram, *seq, unknown);
}

static void stop_rp(struct rdmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	bool running = s->rp_running;
	s->rp_running = false;
	pthread_mutex_unlock(&s->lock);
	if (running)
		pthread_join(s->rp_thread, NULL);
}

/*
 * Failure or cancel: tell the peer, give the guest its CPU and run back --
 * unless the commit's outcome is unknown: then the VM stays stopped. The
 * return-path thread is already joined: nothing it writes changes under us.
 */
static void unwind(struct rdmig_session *s, int err, bool unknown)
{
	char why[sizeof(s->stats.error_desc)];
	bool tell;

	pthread_mutex_lock(&s->lock);
	tell = s->tp && !s->committed;
	memcpy(why, s->stats.error_desc, sizeof(why));
	pthread_mutex_unlock(&s->lock);
	if (tell) {
		if (err == -ECANCELED)
			rdm_send_error(s, -ECANCELED, "migration cancelled by the source");
		else
			rdm_send_error(s, err, why);
	}
	if (s->policy.throttle && s->cb.set_throttle)
		s->cb.set_throttle(s->opaque, 0);
	/* In postcopy after GO the VM runs over there: it never comes back here. */
	if (unknown || s->pc_running)
		return;
	if (s->t_stop_ms && s->cb.vm_start)
		s->cb.vm_start(s->opaque);
	s->t_stop_ms = 0;
}

void *rdm_source_main(void *arg)
{
	struct rdmig_session *s = arg;
	struct rdm_ram ram;
	uint64_t seq = 0;
	bool unknown = false;
	int ret;

	ret = rdm_ram_init(&ram, s);
	if (ret)
		goto out;
	ret = setup(s);
	if (ret)
		goto out_ram;
	pthread_mutex_lock(&s->lock);
	s->stats.setup_time_ms = rdm_now_ms() - s->t_start_ms;
	pthread_mutex_unlock(&s->lock);
	if (rdm_cancelled(s)) {
		ret = -ECANCELED;
		goto out_ram;
	}
	/* Memory is registered by now: write protection cannot get in its way. */
	ret = rdm_track_arm(s);
	if (ret)
		goto out_ram;
	rdm_set_status(s, RDMIG_STATUS_ACTIVE);
	ret = iterate(s, &ram, &seq);
	if (ret)
		goto out_ram;
	if (atomic_load(&s->pc_start))
		ret = rdm_pc_switchover(s, &ram, &seq, &unknown);
	else
		ret = switchover(s, &ram, &seq, &unknown);

out_ram:
	if (ret && !unknown && rdm_cancelled(s))
		ret = -ECANCELED;
	/* Before unwind: it reads the error and stats the return path writes. */
	stop_rp(s);
	if (ret)
		unwind(s, ret, unknown);
	rdm_track_disarm(s);
	rdm_ram_fini(&ram);
out:
	pthread_mutex_lock(&s->lock);
	struct rdm_tp *tp = s->tp;
	s->tp = NULL;
	pthread_mutex_unlock(&s->lock);
	if (tp)
		tp->ops->close(tp);
	if (unknown) {
		rdm_set_error(s, "switchover outcome unknown: %s", strerror(-ret));
		rdm_set_status(s, RDMIG_STATUS_COMMIT_UNKNOWN);
	} else if (ret == -ECANCELED) {
		rdm_set_error(s, "migration cancelled");
		rdm_set_status(s, RDMIG_STATUS_CANCELLED);
	} else if (ret && s->pc_running) {
		rdm_error_context(s, ret, "postcopy failed (the VM runs at the destination, without "
					  "the pages it still lacked)");
		rdm_set_status(s, RDMIG_STATUS_FAILED);
	} else if (ret) {
		rdm_set_error(s, "migration failed: %s", strerror(-ret));
		rdm_set_status(s, RDMIG_STATUS_FAILED);
	} else {
		rdm_set_status(s, RDMIG_STATUS_COMPLETED);
	}
	return NULL;
}

int rdm_source_migrate(struct rdmig_session *s, const char *uri)
{
	struct rdm_policy_cfg pc;
	char why[RDM_ERRLEN];
	int ret;

	ret = rdm_session_begin(s, RDMIG_ROLE_SOURCE, uri);
	if (ret)
		return ret;
	ret = rdm_track_check_transport(s, s->addr.scheme == RDM_SCHEME_RDMA,
					s->opts.caps[RDMIG_CAP_RDMA_PIN_ALL], why, sizeof(why));
	if (ret) {
		rdm_set_api_error(s, "%s", why);
		return ret;
	}
	pc = (struct rdm_policy_cfg){
		.downtime_limit_ms = s->opts.params[RDMIG_PARAM_DOWNTIME_LIMIT],
		.max_bandwidth = s->opts.params[RDMIG_PARAM_MAX_BANDWIDTH],
		.auto_converge = s->opts.caps[RDMIG_CAP_AUTO_CONVERGE],
		.throttle_initial = (unsigned)s->opts.params[RDMIG_PARAM_CPU_THROTTLE_INITIAL],
		.throttle_increment = (unsigned)s->opts.params[RDMIG_PARAM_CPU_THROTTLE_INCREMENT],
		.throttle_max = (unsigned)s->opts.params[RDMIG_PARAM_MAX_CPU_THROTTLE],
		.throttle_tailslow = s->opts.params[RDMIG_PARAM_CPU_THROTTLE_TAILSLOW] != 0,
		.trigger_threshold = (unsigned)s->opts.params[RDMIG_PARAM_THROTTLE_TRIGGER_THRESHOLD],
		.postcopy_after = (unsigned)s->opts.params[RDMIG_PARAM_POSTCOPY_AFTER],
	};
	rdm_policy_init(&s->policy, &pc);
	s->stats.ram_remaining = s->stats.ram_total; /* all of it, until the first pass says */
	s->t_start_ms = rdm_now_ms();
	rdm_set_status(s, RDMIG_STATUS_SETUP);
	ret = rdm_session_start(s, rdm_source_main);
	if (ret) {
		rdm_set_status(s, RDMIG_STATUS_NONE);
		rdm_set_api_error(s, "cannot start the migration thread");
	}
	return ret;
}
