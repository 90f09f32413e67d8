/* SPDX-License-Identifier: MIT */
/*
 * Postcopy's source (see postcopy.h): the switch, then the pages still dirty
 * pushed in the background, a page the destination asked for going first.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "common/fault.h"
#include "core/bitmap.h"
#include "core/postcopy.h"
#include "core/ram.h"
#include "core/session.h"
#include "core/source.h"

int rdm_pc_request(struct rdmig_session *s, const struct rdm_req_pages *r)
{
	const struct rdm_block *b;
	bool listening;
	int ret;

	if (r->block >= s->nblocks) {
		rdm_set_error(s, "page request for block %u of %u", r->block, s->nblocks);
		return -EBADMSG;
	}
	b = &s->blocks[r->block];
	if (r->offset % b->page_size || r->length % b->page_size || r->offset > b->len ||
	    r->length > b->len - r->offset || r->length > RDM_PC_REQ_MAX) {
		rdm_set_error(s, "page request %llu+%llu outside %s, not in whole pages or over "
				 "2 MiB", (unsigned long long)r->offset,
			      (unsigned long long)r->length, b->name);
		return -EBADMSG;
	}
	pthread_mutex_lock(&s->lock);
	listening = s->pc.listening;
	pthread_mutex_unlock(&s->lock);
	if (!listening || s->ops->pull) {
		/* Where the destination reads, nothing is ever written into its guarded memory. */
		rdm_set_error(s, "page request %s", listening ? "over a transport the destination "
								"reads from" : "before postcopy began");
		return -EPROTO;
	}
	/*
	 * Not rate limited: a thread of the VM waits for it. On the urgent
	 * channel where there is one: the background pages queued in the data
	 * channels' sockets go on beside it, not ahead.
	 */
	if (s->ops->write_urgent)
		ret = rdm_tp_write_urgent(s->tp, r->block, r->offset, r->length);
	else
		ret = rdm_tp_write(s->tp, r->block, r->offset, r->length);
	if (ret) {
		rdm_set_error(s, "sending requested pages: %s", rdm_tp_why(ret));
		return ret;
	}
	pthread_mutex_lock(&s->lock);
	s->pc.requests++;
	s->pc.pulled += r->length / b->page_size;
	s->pc.pulled_bytes += r->length;
	s->stats.postcopy_requests = s->pc.requests;
	s->stats.postcopy_pages_pulled = s->pc.pulled;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int send_seq(struct rdmig_session *s, enum rdm_msg_type type, uint64_t seq)
{
	struct rdm_msg m = {.type = type};

	m.u.seq.seq = seq;
	return rdm_send_msg(s, &m);
}

/* LISTEN, then one DISCARD per dirty run: those pages are stale over there. */
static int send_discards(struct rdmig_session *s, uint64_t seq)
{
	struct rdm_msg m = {.type = RDM_MSG_POSTCOPY_DISCARD};
	int ret;

	pthread_mutex_lock(&s->lock);
	s->pc.listening = true;
	pthread_mutex_unlock(&s->lock);
	ret = send_seq(s, RDM_MSG_POSTCOPY_LISTEN, seq);
	for (unsigned i = 0; i < s->nblocks && !ret; i++) {
		const struct rdm_block *b = &s->blocks[i];
		uint64_t pos = 0, n;

		while (!ret && (n = rdm_bitmap_next_run(b->dirty, b->npages, &pos, 0, 0))) {
			m.u.req.block = i;
			m.u.req.offset = pos * b->page_size;
			m.u.req.length = n * b->page_size;
			ret = rdm_send_msg(s, &m);
			pos += n;
		}
	}
	return ret;
}

/* The stop, the discards, the device state and the commit: 0 once GO got its DONE. */
static int handover(struct rdmig_session *s, struct rdm_ram *ram, uint64_t seq, bool *unknown)
{
	int ret;

	ret = rdm_src_stop_sync(s, ram);
	if (!ret)
		ret = send_discards(s, seq);
	if (!ret)
		ret = rdm_src_commit(s, ram, seq, unknown);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	s->pc_running = true;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/*
 * release-ram: the push walks the blocks in order, so every page before its
 * cursor is at the destination once a fence sent at that cursor is
 * acknowledged (pages sent in precopy were in before LISTEN, the rest were
 * pushed). A late request for such a page reads zeros here, but the copy the
 * destination already placed wins there.
 */
struct release {
	uint64_t seq;        /* the fence in flight; 0: none */
	unsigned bi;         /* the cursor when it went */
	uint64_t pos;
	unsigned done_bi;    /* released up to here */
	uint64_t done_pos;
	unsigned pieces;     /* pushed since the last fence */
	bool resumed;        /* after a recovery the push starts over: END alone releases */
};

#define RDM_PC_RELEASE_EVERY 128 /* pieces (8 MiB at most) between fences */

/* Frees one range: shared memory's backing store too, private pages otherwise. */
static uint64_t free_pages(struct rdm_block *b, uint64_t first, uint64_t n)
{
	void *at = b->host + first * b->page_size;
	size_t len = n * b->page_size;

	if (!n)
		return 0;
	if (madvise(at, len, MADV_REMOVE) && madvise(at, len, MADV_DONTNEED))
		return 0; /* memory that cannot be given back stays: the migration goes on */
	return len;
}

/* [done, (bi, pos)) is at the destination: give it back. */
static void release_to(struct rdmig_session *s, struct release *r, unsigned bi, uint64_t pos)
{
	uint64_t freed = 0;

	for (unsigned i = r->done_bi; i < s->nblocks && i <= bi; i++) {
		struct rdm_block *b = &s->blocks[i];
		uint64_t from = i == r->done_bi ? r->done_pos : 0;
		uint64_t to = i == bi ? pos : b->npages;

		if (to > from)
			freed += free_pages(b, from, to - from);
	}
	r->done_bi = bi;
	r->done_pos = pos;
	pthread_mutex_lock(&s->lock);
	s->stats.ram_released += freed;
	pthread_mutex_unlock(&s->lock);
}

/* After a piece: release what an acknowledged fence covers; send the next fence. */
static int release_step(struct rdmig_session *s, struct rdm_ram *ram, struct release *r,
			uint64_t *seq, unsigned bi, uint64_t pos)
{
	struct rdm_msg m = {.type = RDM_MSG_ITER_END};
	bool acked;
	int ret;

	if (r->resumed)
		return 0;
	if (r->seq) {
		pthread_mutex_lock(&s->lock);
		acked = s->acked_seq >= r->seq;
		pthread_mutex_unlock(&s->lock);
		if (!acked)
			return 0;
		release_to(s, r, r->bi, r->pos);
		r->seq = 0;
	}
	if (++r->pieces < RDM_PC_RELEASE_EVERY)
		return 0;
	/* Zero runs go on the control channel, ahead of the fence's message. */
	ret = rdm_ram_flush(ram);
	if (!ret)
		ret = rdm_tp_fence(s->tp, ++*seq);
	if (ret)
		return ret;
	m.u.seq.seq = *seq;
	ret = rdm_send_msg(s, &m);
	if (ret)
		return ret;
	r->seq = *seq;
	r->bi = bi;
	r->pos = pos;
	r->pieces = 0;
	return 0;
}

/* Tests: the link dies with pages still missing over there. */
static int cut(struct rdmig_session *s)
{
	if (!rdm_fault("src-postcopy-cut"))
		return 0;
	rdm_set_error(s, "fault injected at src-postcopy-cut: link cut");
	s->tp->ops->shutdown(s->tp);
	return -ECONNRESET;
}

/* Every dirty page goes, a piece at a time (requests go beside them, from rp_main). */
static int push(struct rdmig_session *s, struct rdm_ram *ram, struct release *rel, uint64_t *seq)
{
	bool release = s->opts.caps[RDMIG_CAP_RELEASE_RAM];
	unsigned bi = 0;
	uint64_t pos = 0;
	int ret;

	for (;;) {
		ret = rdm_check_abort(s);
		if (ret)
			return ret;
		ret = cut(s);
		if (ret)
			return ret;
		ret = rdm_ram_send_next(ram, &bi, &pos);
		if (ret <= 0)
			return ret;
		if (release) {
			ret = release_step(s, ram, rel, seq, bi, pos);
			if (ret)
				return ret;
		}
	}
}

/*
 * The destination reads what it lacks: END at once, then its word that it
 * has everything, however long that takes (the return path's silence
 * detector, not a deadline, tells a dead destination).
 */
static int await_reads(struct rdmig_session *s, uint64_t seq)
{
	int ret = send_seq(s, RDM_MSG_POSTCOPY_END, seq);

	while (!ret) {
		pthread_mutex_lock(&s->lock);
		if (s->acked_seq < seq && !s->rp_error)
			rdm_cond_slice(s, 10);
		bool acked = s->acked_seq >= seq;
		ret = acked ? 0 : s->rp_error;
		pthread_mutex_unlock(&s->lock);
		if (acked)
			break;
		if (!ret)
			ret = cut(s);
	}
	return ret;
}

/* After GO: every page the destination lacks goes (or it reads them), then END and its ack. */
static int finish(struct rdmig_session *s, struct rdm_ram *ram, struct release *rel, uint64_t *seq)
{
	int ret = 0;

	if (s->ops->pull) {
		/* A resumed transport registers anew: the first one's keys died with it. */
		if (rel->resumed)
			ret = rdm_tp_expose(s->tp);
		/* A seq of its own: the last pass's was acknowledged long ago. */
		if (!ret)
			ret = rdm_tp_fence(s->tp, ++*seq);
		if (ret)
			rdm_set_error(s, "postcopy: %s", rdm_tp_why(ret));
		else
			ret = await_reads(s, *seq);
		rdm_src_update_stats(s, ram);
		return ret;
	}
	ret = push(s, ram, rel, seq);
	if (!ret)
		ret = rdm_ram_flush(ram);
	if (!ret)
		ret = rdm_tp_fence(s->tp, ++*seq);
	if (!ret)
		ret = send_seq(s, RDM_MSG_POSTCOPY_END, *seq);
	if (!ret)
		ret = rdm_src_wait_rp(s, *seq, (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT]);
	/* END acknowledged: the destination has every page. */
	if (!ret && s->opts.caps[RDMIG_CAP_RELEASE_RAM])
		release_to(s, rel, s->nblocks, 0);
	rdm_src_update_stats(s, ram);
	return ret;
}

/*
 * The link failed (err) after GO: the VM runs over there, so nothing is
 * resumed here; postcopy-paused until a recovery reconnects (0) or the
 * session is destroyed (err stands). A failed attempt pauses again.
 */
static int paused(struct rdmig_session *s, struct rdm_ram *ram, int err)
{
	for (;;) {
		rdm_src_stop_rp(s);
		rdm_session_drop_tp(s);
		rdm_error_context(s, err, "postcopy paused (the VM runs at the destination; "
					  "rdmig_postcopy_recover() goes on)");
		if (rdm_pc_pause_wait(s))
			return err;
		err = rdm_pc_src_resume(s, ram);
		if (!err)
			return 0;
		if (rdm_cancelled(s))
			return err;
	}
}

int rdm_pc_switchover(struct rdmig_session *s, struct rdm_ram *ram, uint64_t *seq, bool *unknown)
{
	struct release rel = {0};
	int ret;

	/* Registered while the VM still runs: the downtime does not pay for it. */
	if (s->ops->pull) {
		ret = rdm_tp_expose(s->tp);
		if (ret) {
			rdm_set_error(s, "postcopy: %s", rdm_tp_why(ret));
			return ret;
		}
	}
	/* LISTEN's seq is the last pass's: its pages are in before the guard goes on. */
	ret = handover(s, ram, *seq, unknown);
	if (ret)
		return ret;
	rdm_set_status(s, RDMIG_STATUS_POSTCOPY_ACTIVE);
	for (;;) {
		ret = finish(s, ram, &rel, seq);
		if (!ret || rdm_cancelled(s))
			return ret;
		ret = paused(s, ram, ret);
		if (ret)
			return ret;
		rel.resumed = true;
		rdm_set_status(s, RDMIG_STATUS_POSTCOPY_ACTIVE);
	}
}
