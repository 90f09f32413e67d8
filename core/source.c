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
	m.u.hello.flags = s->pc_resume ? RDM_HELLO_F_RESUME : 0;
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

int rdm_src_connect(struct rdmig_session *s)
{
	struct rdm_tp_opts to;
	char err[RDM_TP_ERRLEN] = "";
	struct rdm_tp *tp = NULL;
	uint8_t *buf;
	int ret;

	rdm_session_tp_opts(s, &to);
	/* A resumed postcopy's destination memory is guarded: nothing may be pinned there. */
	if (s->pc_resume)
		to.pin_all = false;
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
	if (ret)
		rdm_set_error(s, "transport block setup: %s", rdm_tp_why(ret));
	return ret;
}

static int setup(struct rdmig_session *s)
{
	int ret = rdm_src_connect(s);

	return ret ? ret : rdm_src_start_rp(s);
}

int rdm_src_pass(struct rdmig_session *s, struct rdm_ram *ram, uint64_t seq)
{
	struct rdm_msg m = {.type = RDM_MSG_ITER_END};
	int ret;

	/* Pages zeroed in earlier passes are ordered per write (ram.h: zold). */
	ret = rdm_ram_send_dirty(ram);
	if (ret)
		return ret;
	ret = rdm_tp_fence(s->tp, seq);
	if (ret) {
		rdm_set_error(s, "fence: %s", rdm_tp_why(ret));
		return ret;
	}
	/*
	 * One pass end at a time is timed to its ack: the stop's round trip
	 * (policy.h). Armed before the send: the ack may beat the send's return.
	 */
	pthread_mutex_lock(&s->lock);
	if (!s->probe_seq) {
		s->probe_seq = seq;
		s->probe_us = rdm_now_us();
	}
	pthread_mutex_unlock(&s->lock);
	m.u.seq.seq = seq;
	ret = rdm_send_msg(s, &m);
	if (ret)
		return ret;
	rdm_ram_pass_end(ram, seq);
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
	s->last_state_bytes = devbytes;
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
	/*
	 * The VM is stopped: the last pass goes at the link's speed, as QEMU's
	 * completion does (the estimate used the limited rate: it only gains).
	 */
	ram->unlimited = true;
	if (!ret)
		ret = rdm_src_pass(s, ram, ++*seq);
	if (ret)
		return ret;
	return rdm_src_commit(s, ram, *seq, unknown);
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
	/* After GO a destroy's cancel is no cancel: the VM runs over there. */
	if (ret && !unknown && rdm_cancelled(s) && !s->pc_running)
		ret = -ECANCELED;
	/* Before unwind: it reads the error and stats the return path writes. */
	rdm_src_stop_rp(s);
	if (ret)
		unwind(s, ret, unknown);
	rdm_track_disarm(s);
	rdm_ram_fini(&ram);
out:
	rdm_session_drop_tp(s);
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
	/* The device state the stop will send: the VMM's word, or what it wrote last time. */
	rdm_policy_set_state_bytes(&s->policy, s->opts.params[RDMIG_PARAM_DEVICE_STATE_SIZE] ?
						       s->opts.params[RDMIG_PARAM_DEVICE_STATE_SIZE] :
						       s->last_state_bytes);
	s->probe_seq = 0;
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
