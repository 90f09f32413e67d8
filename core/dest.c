/* SPDX-License-Identifier: MIT */
/*
 * The destination state machine: setup (listen, accept, negotiate) -> active
 * (serve zero runs and fences while the transport places pages) -> device
 * (device state arrives) -> the commit (commit.c): the state loaded, ready
 * told, and the VM started only on the source's go. It never starts the VM on
 * any other path; a commit cut short after ready is commit-unknown.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/fault.h"
#include "core/bitmap.h"
#include "core/commit.h"
#include "core/lobby.h"
#include "core/postcopy.h"
#include "core/prefault.h"
#include "core/session.h"

struct dest {
	struct rdmig_session *s;
	uint8_t *buf;
	struct rdm_devbuf dev;
	int timeout;
	char why[RDM_ERRLEN];
	bool retry; /* negotiate(): not our source; drop it and go on accepting */
	struct rdm_pc_dst *pc; /* postcopy: from LISTEN on */
	bool pc_running;       /* postcopy: the VM runs here, pages still coming */
	uint64_t pc_end_seq;   /* postcopy by reads: END came, acknowledged once all are read */
};

/* Record why, tell the source, and return err. */
static int refuse(struct dest *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(struct dest *d, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rdm_verrtext(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
	rdm_set_error(d->s, "%s", d->why);
	rdm_send_error(d->s, err, d->why);
	return err;
}

/*
 * A peer that has not proven to be our source (garbage, a wrong version, no
 * or a wrong secret, silence): tell it, log it as news, and go on accepting.
 */
static int drop(struct dest *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int drop(struct dest *d, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rdm_verrtext(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
	rdm_set_api_error(d->s, "refused a connection: %s", d->why);
	if (err != -ETIMEDOUT && err != -ECONNRESET && err != -ECANCELED) {
		struct rdm_msg m = {.type = RDM_MSG_ERROR};

		m.u.error.code = err < 0 && err >= -4095 ? err : -EPROTO;
		snprintf(m.u.error.text, sizeof(m.u.error.text), "%s", d->why);
		rdm_quiet_send(d->s, &m); /* best effort: the peer may be gone */
	}
	d->retry = true;
	return err;
}

static int check_blocks(struct dest *d, const struct rdm_blocks *bl)
{
	struct rdmig_session *s = d->s;
	struct rdm_block_desc in;

	if (bl->count != s->nblocks)
		return refuse(d, -EINVAL, "block list mismatch: source has %u blocks, destination %u",
			      bl->count, s->nblocks);
	for (uint32_t i = 0; i < bl->count; i++) {
		const struct rdm_block *b = &s->blocks[i];

		rdm_blocks_get(bl, i, &in);
		if (strcmp(in.name, b->name) || in.length != b->len ||
		    in.page_size != b->page_size)
			return refuse(d, -EINVAL,
				      "block list mismatch at %u: source %s (%llu bytes, page %u), "
				      "destination %s (%llu bytes, page %u)",
				      i, in.name, (unsigned long long)in.length, in.page_size,
				      b->name, (unsigned long long)b->len, b->page_size);
	}
	return 0;
}

/* Frame length of a received message (its header says, and recv checked it). */
static size_t frame_len(const uint8_t *buf)
{
	return RDM_HDR_LEN + (size_t)rdm_get_u32(buf + 4);
}

/*
 * HELLO [AUTH_NONCE] both ways, BLOCKS and the source's AUTH_PROOF, then our
 * [AUTH_PROOF]; memory is registered (rkeys handed out) only after the
 * source's proof checked out. Order and proofs: core/session.h, control/auth.h.
 * The first message came through the lobby: in d->buf (len bytes), or the
 * failure first says.
 */
static int negotiate(struct dest *d, int first, size_t len)
{
	struct rdmig_session *s = d->s;
	uint8_t pbuf[RDM_HDR_LEN + 6 + RDM_ERRMSG_MAX];
	struct rdm_auth_state a;
	struct rdm_msg m, pm;
	char why[RDM_ERRLEN];
	int ret;

	rdm_auth_init(s, &a);
	ret = first ? first : rdm_msg_decode(d->buf, len, &m);
	if (ret)
		return drop(d, ret, "no hello from the source: %s", strerror(-ret));
	if (m.type != RDM_MSG_HELLO)
		return drop(d, -EPROTO, "expected hello, got %s", rdm_msg_name(m.type));
	if (m.u.hello.version != RDM_WIRE_VERSION)
		return drop(d, -EPROTONOSUPPORT,
			    "source speaks protocol version %u, destination %u",
			    m.u.hello.version, RDM_WIRE_VERSION);
	/* A paused postcopy takes only its source's resume; a fresh listener only a new migration. */
	if (!(m.u.hello.flags & RDM_HELLO_F_RESUME) != !d->pc_running)
		return drop(d, -EPROTO, "%s", d->pc_running ? "a new migration, but this destination "
							      "waits for its postcopy to resume"
							    : "a postcopy resume, but nothing here to resume");
	ret = rdm_auth_match(s, &a, m.u.hello.features, false, why, sizeof(why));
	if (ret)
		return drop(d, ret, "%s", why);
	ret = rdm_auth_recv_nonce(s, &a, false, d->timeout, why, sizeof(why));
	if (ret)
		return drop(d, ret, "%s", why);
	m.type = RDM_MSG_HELLO;
	m.u.hello = (struct rdm_hello){RDM_WIRE_MAGIC, RDM_WIRE_VERSION, 0,
				       RDM_FEAT_ZERO_RUNS | RDM_FEAT_RETURN_PATH |
					       rdm_auth_features(s)};
	if (s->opts.caps[RDMIG_CAP_POSTCOPY_RAM])
		m.u.hello.features |= RDM_FEAT_POSTCOPY;
	ret = rdm_quiet_send(s, &m);
	if (!ret)
		ret = rdm_auth_send_nonce(s, &a, false);
	if (ret)
		return drop(d, ret, "answering the hello: %s", strerror(-ret));

	ret = rdm_quiet_recv(s, d->buf, RDM_CTRL_BUF, &m, d->timeout);
	if (ret)
		return drop(d, ret, "no block list from the source: %s", strerror(-ret));
	if (m.type != RDM_MSG_BLOCKS)
		return drop(d, -EPROTO, "expected blocks, got %s", rdm_msg_name(m.type));
	ret = rdm_auth_digest_blocks(&a, d->buf, frame_len(d->buf));
	if (ret)
		return refuse(d, ret, "authentication: SHA-256 failed in GnuTLS");
	/* Into its own buffer: m's block list stays in d->buf for check_blocks(). */
	ret = rdm_quiet_recv(s, pbuf, sizeof(pbuf), &pm, d->timeout);
	if (ret)
		return drop(d, ret, "no auth-proof from the source: %s", strerror(-ret));
	if (pm.type != RDM_MSG_AUTH_PROOF)
		return drop(d, -EPROTO, "expected auth-proof, got %s", rdm_msg_name(pm.type));
	ret = rdm_auth_check_source_proof(s, &a, &pm.u.proof, why, sizeof(why));
	/* A wrong VM fails the migration (as in QEMU), like a block mismatch does. */
	if (ret == -EACCES && !strncmp(why, "validate-uuid", 13))
		return refuse(d, ret, "%s", why);
	if (ret)
		return drop(d, ret, "%s", why);
	ret = check_blocks(d, &m.u.blocks);
	if (ret)
		return ret;
	ret = rdm_auth_send_dest_proof(s, &a);
	if (ret)
		return ret;

	/* Before the transport registers anything: pin-all then pins populated memory. */
	if (s->opts.caps[RDMIG_CAP_PREFAULT]) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		uint64_t t0 = rdm_now_ms(), bytes = 0;

		/* Half the peer timeout at most: the source waits for BLOCKS_ACK meanwhile. */
		ret = rdm_prefault(s, n > 0 ? (unsigned)n : 1, (uint64_t)d->timeout / 2, &bytes);
		if (ret)
			return refuse(d, ret, "prefault: %s", strerror(-ret));
		pthread_mutex_lock(&s->lock);
		s->stats.prefault_time_ms = rdm_now_ms() - t0;
		s->stats.prefault_bytes = bytes;
		pthread_mutex_unlock(&s->lock);
	}
	ret = rdm_session_set_blocks(s);
	if (ret)
		return refuse(d, ret, "destination transport setup: %s", rdm_tp_why(ret));
	m.type = RDM_MSG_BLOCKS_ACK;
	return rdm_send_msg(s, &m);
}

static int apply_zero(struct dest *d, const struct rdm_zero_runs *z)
{
	struct rdmig_session *s = d->s;
	struct rdm_zero_run run;
	struct rdm_block *b;

	if (z->block >= s->nblocks)
		return refuse(d, -EBADMSG, "zero runs for block %u of %u", z->block, s->nblocks);
	b = &s->blocks[z->block];
	/* dst-zero-late: these runs are applied a second late (a slow control stream). */
	if (rdm_fault("dst-zero-late"))
		sleep(1);
	for (uint32_t i = 0; i < z->count; i++) {
		rdm_zero_runs_get(z, i, &run);
		if (run.first_page > b->npages || run.npages > b->npages - run.first_page)
			return refuse(d, -EBADMSG, "zero run %llu+%u outside %s (%llu pages)",
				      (unsigned long long)run.first_page, run.npages, b->name,
				      (unsigned long long)b->npages);
		/* Guarded memory takes pages only by copy (a touch would wait on itself). */
		if (d->pc) {
			int ret = rdm_pc_zero(d->pc, z->block, run.first_page, run.npages);

			if (ret)
				return refuse(d, ret, "postcopy: zero pages in %s: %s", b->name,
					      strerror(-ret));
			continue;
		}
		/* Reading first keeps untouched zero pages unallocated here. */
		for (uint64_t p = run.first_page; p < run.first_page + run.npages; p++) {
			uint8_t *page = b->host + p * b->page_size;

			if (!rdm_is_zero(page, b->page_size))
				memset(page, 0, b->page_size);
		}
	}
	return 0;
}

static int ack(struct dest *d, enum rdm_msg_type type, uint64_t seq)
{
	struct rdm_msg m = {.type = type};

	m.u.seq.seq = seq;
	return rdm_send_msg(d->s, &m);
}

/* Pages of iteration seq are in memory once every data channel's fence arrived. */
static int wait_pages(struct dest *d, uint64_t seq)
{
	struct rdmig_session *s = d->s;
	int ret;

	ret = rdm_tp_wait_fence(s->tp, seq, d->timeout);
	if (ret)
		rdm_set_error(s, "waiting for the pages of iteration %llu: %s",
			      (unsigned long long)seq, rdm_tp_why(ret));
	return ret;
}

/* COMPLETE arrived: run the commit. 0 when the VM runs here. */
static int complete(struct dest *d, uint64_t seq, bool *unknown)
{
	struct rdm_commit c = {.s = d->s, .st = RDM_COMMIT_DST_LOAD, .seq = seq,
			       .buf = d->buf, .dev = &d->dev, .timeout_ms = d->timeout};

	if (!d->dev.ended)
		return refuse(d, -EPROTO, "completion before the end of the device state");
	switch (rdm_commit_run(&c)) {
	case RDM_COMMIT_DONE:
		return 0;
	case RDM_COMMIT_UNKNOWN:
		*unknown = true;
		return c.err ? c.err : -EPROTO;
	default:
		return c.err ? c.err : -EPROTO;
	}
}

/* LISTEN: the pages of seq are in; from here pages land by copy, behind the guard. */
static int pc_listen(struct dest *d, uint64_t seq)
{
	struct rdmig_session *s = d->s;
	int ret;

	if (!s->opts.caps[RDMIG_CAP_POSTCOPY_RAM] || d->pc)
		return refuse(d, -EPROTO, "postcopy-listen %s", d->pc ? "twice" : "without postcopy-ram");
	ret = wait_pages(d, seq);
	if (ret)
		return ret;
	ret = rdm_pc_listen(s, &d->pc, d->why, sizeof(d->why));
	if (ret)
		return refuse(d, ret, "%s", d->why);
	return 0;
}

/* Every page is here: the guard comes off with the transport, and the source hears it. */
static int pc_done(struct dest *d, uint64_t seq)
{
	rdm_pc_publish(d->pc);
	d->pc_running = false; /* nothing missing: the guard comes off with the transport */
	ack(d, RDM_MSG_RP_FENCE_ACK, seq); /* a lost ack fails only the source's wait */
	return 0;
}

/*
 * POSTCOPY_END: every page pushed (*done), or, where this side reads them,
 * none will be: done once the reader has them all (pc_reading()).
 */
static int pc_end(struct dest *d, uint64_t seq, bool *done)
{
	int ret;

	if (!d->pc_running || d->pc_end_seq)
		return refuse(d, -EPROTO, "postcopy-end %s", d->pc_running ? "twice" : "before the switch");
	ret = wait_pages(d, seq);
	if (ret)
		return ret;
	if (rdm_pc_pulled(d->pc, d->why, sizeof(d->why))) {
		d->pc_end_seq = seq;
		return 0;
	}
	*done = true;
	return pc_done(d, seq);
}

/* Postcopy by reads, between messages: 1 still reading, 0 done (END came and all is read), or -errno. */
static int pc_reading(struct dest *d)
{
	int st = rdm_pc_pulled(d->pc, d->why, sizeof(d->why));

	if (st < 0) {
		rdm_set_error(d->s, "%s", d->why);
		return st;
	}
	if (st || !d->pc_end_seq)
		return 1;
	return pc_done(d, d->pc_end_seq);
}

/* Serve the source until completion, an abort, or an error. */
static int serve(struct dest *d, bool *unknown)
{
	struct rdmig_session *s = d->s;
	uint64_t last_rx = rdm_now_ms(), last_pub = 0;
	struct rdm_msg m;
	int ret;

	for (;;) {
		bool done = false;

		if (d->pc && rdm_now_ms() - last_pub >= 100) {
			rdm_pc_publish(d->pc);
			last_pub = rdm_now_ms();
		}
		if (d->pc_running && (ret = pc_reading(d)) <= 0)
			return ret;
		ret = rdm_recv_msg(s, d->buf, RDM_CTRL_BUF, &m, d->pc_end_seq ? 20 : 200);
		if (ret == -ETIMEDOUT) {
			if (rdm_now_ms() - last_rx > (uint64_t)d->timeout) {
				rdm_set_error(s, "no word from the source for %d ms", d->timeout);
				return ret;
			}
			continue;
		}
		if (ret == -ECANCELED || rdm_cancelled(s))
			return -ECANCELED;
		if (ret) {
			rdm_set_error(s, "source connection lost: %s",
				      rdm_tp_why(ret));
			return ret;
		}
		last_rx = rdm_now_ms();
		switch (m.type) {
		case RDM_MSG_ZERO_RUNS:
			ret = apply_zero(d, &m.u.zero);
			break;
		case RDM_MSG_ITER_END:
			/* In postcopy a fence of the push (release-ram), not a pass. */
			ret = wait_pages(d, m.u.seq.seq);
			if (!ret)
				ret = ack(d, RDM_MSG_RP_FENCE_ACK, m.u.seq.seq);
			pthread_mutex_lock(&s->lock);
			s->stats.dirty_sync_count += !d->pc_running;
			pthread_mutex_unlock(&s->lock);
			break;
		case RDM_MSG_RP_PING:
			m.type = RDM_MSG_RP_PONG;
			ret = rdm_send_msg(s, &m);
			break;
		case RDM_MSG_RP_PONG:
			break;
		case RDM_MSG_DEVSTATE:
			if (rdm_get_status(s) == RDMIG_STATUS_ACTIVE)
				rdm_set_status(s, RDMIG_STATUS_DEVICE);
			ret = rdm_devstate_append(&d->dev, &m.u.dev, d->why, sizeof(d->why));
			if (ret)
				return refuse(d, ret, "%s", d->why);
			break;
		case RDM_MSG_DEVSTATE_END:
			if (rdm_get_status(s) == RDMIG_STATUS_ACTIVE)
				rdm_set_status(s, RDMIG_STATUS_DEVICE);
			ret = rdm_devstate_end(&d->dev, &m.u.dev_end, d->why, sizeof(d->why));
			if (ret)
				return refuse(d, ret, "%s", d->why);
			break;
		case RDM_MSG_POSTCOPY_LISTEN:
			ret = pc_listen(d, m.u.seq.seq);
			break;
		case RDM_MSG_POSTCOPY_DISCARD:
			if (!d->pc || d->pc_running)
				return refuse(d, -EPROTO, "postcopy-discard %s",
					      d->pc ? "after the switch" : "before postcopy-listen");
			ret = rdm_pc_discard(d->pc, &m.u.req, d->why, sizeof(d->why));
			if (ret)
				return refuse(d, ret, "%s", d->why);
			break;
		case RDM_MSG_COMPLETE:
			ret = complete(d, m.u.seq.seq, unknown);
			if (ret || !d->pc)
				return ret;
			/* Postcopy: the VM runs here now, its missing pages still to come. */
			d->pc_running = true;
			rdm_set_status(s, RDMIG_STATUS_POSTCOPY_ACTIVE);
			ret = rdm_pc_run(d->pc);
			if (ret)
				rdm_set_error(s, "postcopy: %s", strerror(-ret));
			break;
		case RDM_MSG_POSTCOPY_END:
			ret = pc_end(d, m.u.seq.seq, &done);
			if (ret || done)
				return ret;
			break;
		case RDM_MSG_ERROR:
			if (m.u.error.code == -ECANCELED)
				return -ECANCELED;
			rdm_set_error(s, "source aborted: %s", m.u.error.text);
			return m.u.error.code < 0 ? m.u.error.code : -EPROTO;
		default:
			return refuse(d, -EPROTO, "unexpected %s from the source",
				      rdm_msg_name(m.type));
		}
		if (ret)
			return ret;
	}
}

/*
 * Postcopy given up (the session destroyed while paused): the migration
 * failed, and the VM's threads that touch missing pages wait on them
 * (rdm_pc_dst_end()) until the guard goes with the session.
 */
static void lost_in_postcopy(struct dest *d, int *ret)
{
	if (!*ret)
		*ret = -EPROTO;
	rdm_error_context(d->s, *ret, "source lost in postcopy: %llu pages never arrived, the VM "
				      "here cannot go on", (unsigned long long)rdm_pc_publish(d->pc));
}

/*
 * Strangers are dropped and the listener goes on; the real source ends the
 * loop (then s->tp is its transport, negotiated unless this fails). Peers
 * wait in the lobby until one speaks (lobby.h). The listener is closed after.
 */
static int accept_source(struct dest *d, uint64_t *t0)
{
	struct rdmig_session *s = d->s;
	struct rdm_lobby lobby;
	size_t len = 0;
	int ret, first;

	rdm_lobby_init(&lobby, s, d->timeout);
	do {
		d->retry = false;
		ret = rdm_lobby_next(&lobby, d->buf, RDM_CTRL_BUF, &len, &first);
		if (ret)
			break;
		*t0 = rdm_now_ms();
		ret = negotiate(d, first, len);
		if (d->retry && !rdm_cancelled(s))
			rdm_session_drop_tp(s);
	} while (d->retry && !rdm_cancelled(s));
	rdm_lobby_close(&lobby);
	pthread_mutex_lock(&s->lock);
	s->ops->listener_close(s->listener);
	s->listener = NULL;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/*
 * The source is gone with the VM running here and pages missing: paused
 * until a recovery brings them (or the session is destroyed: then *ret is
 * the loss, and the VM's threads that touch those pages wait on them,
 * rdm_pc_dst_end()). Returns once postcopy ended either way.
 */
static void pc_paused(struct dest *d, int *ret, bool *unknown)
{
	struct rdmig_session *s = d->s;
	uint64_t t0;

	while (*ret && d->pc_running) {
		rdm_pc_dst_stop(d->pc);
		rdm_session_drop_tp(s);
		rdm_error_context(s, *ret, "postcopy paused: source lost with %llu pages not here yet "
					   "(the VM runs here; rdmig_postcopy_recover() goes on)",
				  (unsigned long long)rdm_pc_publish(d->pc));
		if (rdm_pc_pause_wait(s)) {
			/* Given up: no listener of the last attempt stays open. */
			pthread_mutex_lock(&s->lock);
			if (s->listener)
				s->ops->listener_close(s->listener);
			s->listener = NULL;
			pthread_mutex_unlock(&s->lock);
			return;
		}
		*ret = accept_source(d, &t0);
		if (!*ret) {
			d->pc_end_seq = 0;
			*ret = rdm_pc_resume(d->pc, d->why, sizeof(d->why));
			if (*ret)
				rdm_set_error(s, "%s", d->why);
		}
		if (!*ret) {
			rdm_set_status(s, RDMIG_STATUS_POSTCOPY_ACTIVE);
			*ret = serve(d, unknown);
		} else if (!s->tp && rdm_cancelled(s)) {
			return;
		}
	}
}

void *rdm_dest_main(void *arg)
{
	struct rdmig_session *s = arg;
	struct dest d = {.s = s, .timeout = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT]};
	bool unknown = false;
	uint64_t t0 = 0;
	int ret;

	d.buf = malloc(RDM_CTRL_BUF);
	if (!d.buf) {
		ret = -ENOMEM;
		pthread_mutex_lock(&s->lock);
		s->ops->listener_close(s->listener); /* a later incoming() listens anew */
		s->listener = NULL;
		pthread_mutex_unlock(&s->lock);
		goto out;
	}
	ret = accept_source(&d, &t0);
	if (!s->tp)
		goto out_buf;
	if (ret)
		goto out_tp;
	pthread_mutex_lock(&s->lock);
	s->stats.setup_time_ms = rdm_now_ms() - t0;
	pthread_mutex_unlock(&s->lock);
	rdm_set_status(s, RDMIG_STATUS_ACTIVE);
	ret = serve(&d, &unknown);
	pc_paused(&d, &ret, &unknown);

out_tp:
	if (rdm_cancelled(s) && !unknown && !d.pc_running)
		ret = ret ? -ECANCELED : 0;
	if (d.pc_running)
		lost_in_postcopy(&d, &ret);
	rdm_pc_dst_stop(d.pc);
	rdm_session_drop_tp(s);
	rdm_pc_dst_end(s, d.pc, d.pc_running);
out_buf:
	rdm_devbuf_free(&d.dev);
	free(d.buf);
out:
	if (unknown) {
		rdm_set_error(s, "switchover outcome unknown: %s", strerror(-ret));
		rdm_set_status(s, RDMIG_STATUS_COMMIT_UNKNOWN);
	} else if (ret == -ECANCELED) {
		rdm_set_error(s, "migration cancelled");
		rdm_set_status(s, RDMIG_STATUS_CANCELLED);
	} else if (ret) {
		rdm_set_error(s, "incoming migration failed: %s", strerror(-ret));
		rdm_set_status(s, RDMIG_STATUS_FAILED);
	} else {
		rdm_set_status(s, RDMIG_STATUS_COMPLETED);
	}
	return NULL;
}

int rdm_dest_incoming(struct rdmig_session *s, const char *uri)
{
	char err[RDM_TP_ERRLEN] = "";
	struct rdm_tp_opts to;
	int ret;

	ret = rdm_session_begin(s, RDMIG_ROLE_DEST, uri);
	if (ret)
		return ret;
	if (s->opts.caps[RDMIG_CAP_VALIDATE_UUID] && !s->has_uuid) {
		rdm_set_api_error(s, "validate-uuid needs this VM's uuid (rdmig_set_vm_uuid)");
		return -EINVAL;
	}
	rdm_session_tp_opts(s, &to);
	ret = s->ops->listen(&s->addr, &to, &s->listener, err, sizeof(err));
	if (ret) {
		rdm_set_api_error(s, "listen on '%s': %s", uri, err[0] ? err : strerror(-ret));
		return ret;
	}
	ret = s->ops->listener_port(s->listener, &s->port);
	if (ret) {
		s->ops->listener_close(s->listener);
		s->listener = NULL;
		rdm_set_api_error(s, "listen on '%s': cannot read the bound port", uri);
		return ret;
	}
	s->t_start_ms = rdm_now_ms();
	rdm_set_status(s, RDMIG_STATUS_SETUP);
	ret = rdm_session_start(s, rdm_dest_main);
	if (ret) {
		s->ops->listener_close(s->listener);
		s->listener = NULL;
		rdm_set_status(s, RDMIG_STATUS_NONE);
		rdm_set_api_error(s, "cannot start the incoming thread");
	}
	return ret;
}
