/* SPDX-License-Identifier: MIT */
/*
 * Postcopy's destination (see postcopy.h): the blocks under userfaultfd
 * (core/uffd.c), received pages placed by copy through the transport's
 * placer, and for each first fault a page request on the return path, or,
 * where the transport reads (rdma), a read of the page out of the source's
 * memory; there a thread of ours also reads every discarded page in the
 * background, so the source's CPU does nothing in postcopy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/errtext.h"
#include "core/bitmap.h"
#include "core/postcopy.h"
#include "core/session.h"
#include "core/uffd.h"

#define RDM_PC_PULL_SPANS 8          /* spans per background read */
/* Bytes a background span, at most (or one page): a fault's read shares the link with a few. */
#define RDM_PC_PULL_SPAN (256u << 10)

struct rdm_pc_dst {
	struct rdmig_session *s;
	struct rdm_uffd *u;
	bool pull;      /* the transport reads (rdm_tp_pull): no requests, no push */
	int timeout_ms; /* a read's limit: the peer timeout */
	/*
	 * Requests and reads touch the transport under tx_lock (users: reads in
	 * flight) unless lost: the transport may be closing.
	 */
	pthread_mutex_t tx_lock;
	pthread_cond_t tx_cond;
	unsigned users;
	bool lost;
	uint64_t discarded; /* pages */
	/* the discarded pages (pull: read in the background from the switch on) */
	uint64_t **want;
	pthread_t bg;
	bool bg_started;
	int bg_state; /* under tx_lock: 1 reading, 0 done, -errno failed */
	char bg_why[RDM_ERRLEN];
	uint64_t fault_reads, bg_pages; /* under tx_lock */
};

/* A read may start: 0, or -ECANCELED once the transport is going. */
static int tx_enter(struct rdm_pc_dst *d)
{
	int ret = 0;

	pthread_mutex_lock(&d->tx_lock);
	if (d->lost)
		ret = -ECANCELED;
	else
		d->users++;
	pthread_mutex_unlock(&d->tx_lock);
	return ret;
}

static void tx_leave(struct rdm_pc_dst *d)
{
	pthread_mutex_lock(&d->tx_lock);
	d->users--;
	pthread_cond_broadcast(&d->tx_cond);
	pthread_mutex_unlock(&d->tx_lock);
}

/* pull: the page read out of the source's memory at once (a failure fails the transport). */
static void fault_read(struct rdm_pc_dst *d, unsigned block, uint64_t page)
{
	uint32_t ps = d->s->blocks[block].page_size;
	struct rdm_tp_span sp = {block, page * ps, ps};

	if (tx_enter(d))
		return;
	if (!rdm_tp_pull(d->s->tp, &sp, 1, true, d->timeout_ms)) {
		pthread_mutex_lock(&d->tx_lock);
		d->fault_reads++;
		pthread_mutex_unlock(&d->tx_lock);
	}
	tx_leave(d);
}

/* The fault thread: the first fault on a page not here asks the source for it. */
static void on_fault(void *opaque, unsigned block, uint64_t page)
{
	struct rdm_pc_dst *d = opaque;
	struct rdmig_session *s = d->s;
	struct rdm_msg m = {.type = RDM_MSG_RP_REQ_PAGES};

	if (d->pull) {
		fault_read(d, block, page);
		return;
	}
	m.u.req.block = block;
	m.u.req.offset = page * s->blocks[block].page_size;
	m.u.req.length = s->blocks[block].page_size;
	pthread_mutex_lock(&d->tx_lock);
	if (!d->lost)
		rdm_quiet_send(s, &m); /* a lost link is the serve loop's to report */
	pthread_mutex_unlock(&d->tx_lock);
}

/* The receivers: whole pages of one block, by copy (the first copy wins). */
static int place(void *opaque, unsigned block, uint64_t off, uint64_t len, const void *src)
{
	struct rdm_pc_dst *d = opaque;
	uint32_t ps = d->s->blocks[block].page_size;

	if (off % ps || len % ps)
		return -EBADMSG;
	return rdm_uffd_place(d->u, block, off / ps, len / ps, src);
}

/*
 * The pages of [pos, pos + n) of block b not here yet, appended to v (*k
 * spans of cap); returns how many pages it went through: fewer than n when v
 * is full.
 */
static uint64_t spans_of(struct rdm_pc_dst *d, unsigned b, uint64_t pos, uint64_t n,
			 struct rdm_tp_span *v, unsigned *k, unsigned cap)
{
	uint32_t ps = d->s->blocks[b].page_size;
	uint64_t p;

	for (p = pos; p < pos + n; p++) {
		struct rdm_tp_span *last = *k ? &v[*k - 1] : NULL;

		if (rdm_uffd_has(d->u, b, p) == 1)
			continue;
		if (last && last->block == b && last->off + last->len == p * ps &&
		    last->len + ps <= RDM_PC_PULL_SPAN)
			last->len += ps;
		else if (*k < cap)
			v[(*k)++] = (struct rdm_tp_span){b, p * ps, ps};
		else
			break;
	}
	return p - pos;
}

/* One background read of the k spans in v; 0 or -errno (why in bg_why). */
static int bg_read(struct rdm_pc_dst *d, const struct rdm_tp_span *v, unsigned k)
{
	uint64_t pages = 0;
	int ret;

	for (unsigned i = 0; i < k; i++)
		pages += v[i].len / d->s->blocks[v[i].block].page_size;
	ret = tx_enter(d);
	if (ret)
		return ret;
	ret = rdm_tp_pull(d->s->tp, v, k, false, d->timeout_ms);
	if (ret)
		rdm_errtext(d->bg_why, sizeof(d->bg_why), "reading pages in the background: %s",
			    rdm_tp_why(ret));
	pthread_mutex_lock(&d->tx_lock);
	d->bg_pages += ret ? 0 : pages;
	pthread_mutex_unlock(&d->tx_lock);
	tx_leave(d);
	return ret;
}

/* pull: every discarded page, in block order, a few spans a read (faults go first there). */
static void *bg_main(void *arg)
{
	struct rdm_pc_dst *d = arg;
	struct rdmig_session *s = d->s;
	struct rdm_tp_span v[RDM_PC_PULL_SPANS];
	unsigned k = 0;
	int ret = 0;

	for (unsigned b = 0; b < s->nblocks && !ret; b++) {
		uint64_t pos = 0, n, npages = s->blocks[b].npages;

		while (!ret && (n = rdm_bitmap_next_run(d->want[b], npages, &pos, 0, 0))) {
			uint64_t used = spans_of(d, b, pos, n, v, &k, RDM_PC_PULL_SPANS);

			pos += used;
			if (used < n || k == RDM_PC_PULL_SPANS) {
				ret = bg_read(d, v, k);
				k = 0;
			}
		}
	}
	if (!ret && k)
		ret = bg_read(d, v, k);
	pthread_mutex_lock(&d->tx_lock);
	d->bg_state = ret;
	pthread_mutex_unlock(&d->tx_lock);
	return NULL;
}

int rdm_pc_run(struct rdm_pc_dst *d)
{
	int ret;

	if (!d->pull)
		return 0;
	pthread_mutex_lock(&d->tx_lock);
	d->bg_state = 1;
	pthread_mutex_unlock(&d->tx_lock);
	ret = -pthread_create(&d->bg, NULL, bg_main, d);
	d->bg_started = !ret;
	if (ret)
		rdm_errtext(d->bg_why, sizeof(d->bg_why), "cannot start the background reader: %s",
			    strerror(-ret));
	return ret;
}

int rdm_pc_pulled(struct rdm_pc_dst *d, char *why, size_t len)
{
	int st;

	if (!d->pull)
		return 0;
	pthread_mutex_lock(&d->tx_lock);
	st = d->bg_state;
	if (st < 0)
		rdm_errtext(why, len, "%s", d->bg_why);
	pthread_mutex_unlock(&d->tx_lock);
	return st;
}

int rdm_pc_check(struct rdmig_session *s)
{
	if (!s->opts.caps[RDMIG_CAP_POSTCOPY_RAM])
		return 0;
	if (!s->ops->set_placer) {
		rdm_set_api_error(s, "postcopy-ram is not available over %s", s->ops->name);
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < s->nblocks; i++)
		if (s->blocks[i].page_size > (2u << 20)) {
			rdm_set_api_error(s, "postcopy-ram: block %s has %u-byte pages (at most 2 MiB)",
					  s->blocks[i].name, s->blocks[i].page_size);
			return -ENOTSUP;
		}
	/* Reads pin all of the source's RAM until the end: nothing to give back. */
	if (s->role == RDMIG_ROLE_SOURCE && s->ops->pull && s->opts.caps[RDMIG_CAP_RELEASE_RAM]) {
		rdm_set_api_error(s, "release-ram is not available over %s: the source's RAM stays "
				     "registered for the destination's reads until the end",
				  s->ops->name);
		return -ENOTSUP;
	}
	/* The destination finds out now, not with the VM stopped at the switch. */
	if (s->role == RDMIG_ROLE_DEST) {
		char why[RDM_ERRLEN];
		int ret = rdm_uffd_can_open(why, sizeof(why));

		if (ret) {
			rdm_set_api_error(s, "postcopy-ram: %s", why);
			return ret;
		}
	}
	return 0;
}

int rdm_pc_listen(struct rdmig_session *s, struct rdm_pc_dst **out, char *why, size_t len)
{
	struct rdm_uffd_region *rg;
	struct rdm_pc_dst *d;
	int ret = -ENOMEM;

	d = calloc(1, sizeof(*d));
	rg = calloc(s->nblocks, sizeof(*rg));
	if (!d || !rg) {
		rdm_errtext(why, len, "postcopy: out of memory");
		goto err;
	}
	d->s = s;
	d->pull = s->ops->pull != NULL;
	d->timeout_ms = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT];
	d->want = calloc(s->nblocks, sizeof(*d->want));
	if (!d->want) {
		rdm_errtext(why, len, "postcopy: out of memory");
		goto err;
	}
	for (unsigned i = 0; i < s->nblocks; i++) {
		d->want[i] = calloc(rdm_bitmap_words(s->blocks[i].npages), sizeof(uint64_t));
		if (!d->want[i]) {
			rdm_errtext(why, len, "postcopy: out of memory");
			goto err_want;
		}
	}
	pthread_mutex_init(&d->tx_lock, NULL);
	pthread_cond_init(&d->tx_cond, NULL);
	for (unsigned i = 0; i < s->nblocks; i++)
		rg[i] = (struct rdm_uffd_region){s->blocks[i].host, s->blocks[i].len,
						 s->blocks[i].page_size};
	ret = rdm_uffd_create(rg, s->nblocks, on_fault, d, &d->u, why, len);
	if (ret)
		goto err_lock;
	ret = s->tp->ops->set_placer(s->tp, place, d);
	if (ret) {
		rdm_errtext(why, len, "postcopy: %s", rdm_tp_why(ret));
		goto err_uffd;
	}
	free(rg);
	*out = d;
	return 0;

err_uffd:
	rdm_uffd_destroy(d->u);
err_lock:
	pthread_cond_destroy(&d->tx_cond);
	pthread_mutex_destroy(&d->tx_lock);
err_want:
	for (unsigned i = 0; i < s->nblocks; i++)
		free(d->want[i]);
	free(d->want);
err:
	free(rg);
	free(d);
	return ret;
}

int rdm_pc_discard(struct rdm_pc_dst *d, const struct rdm_req_pages *r, char *why, size_t len)
{
	struct rdmig_session *s = d->s;
	const struct rdm_block *b;
	int ret;

	if (r->block >= s->nblocks) {
		rdm_errtext(why, len, "postcopy-discard for block %u of %u", r->block, s->nblocks);
		return -EBADMSG;
	}
	b = &s->blocks[r->block];
	if (r->offset % b->page_size || r->length % b->page_size || r->offset > b->len ||
	    r->length > b->len - r->offset) {
		rdm_errtext(why, len, "postcopy-discard %llu+%llu outside %s or not in whole pages",
			    (unsigned long long)r->offset, (unsigned long long)r->length, b->name);
		return -EBADMSG;
	}
	ret = rdm_uffd_discard(d->u, r->block, r->offset / b->page_size,
			       r->length / b->page_size);
	if (ret) {
		rdm_errtext(why, len, "postcopy-discard in %s: %s", b->name, strerror(-ret));
		return ret;
	}
	d->discarded += r->length / b->page_size;
	rdm_bitmap_set_range(d->want[r->block], r->offset / b->page_size, r->length / b->page_size);
	return 0;
}

int rdm_pc_zero(struct rdm_pc_dst *d, unsigned block, uint64_t first, uint64_t n)
{
	return rdm_uffd_place_zero(d->u, block, first, n);
}

uint64_t rdm_pc_publish(struct rdm_pc_dst *d)
{
	struct rdmig_session *s = d->s;
	struct rdm_uffd_stats st;
	uint64_t missing;

	/* Only discarded pages are sent in postcopy: each one placed is one fewer missing. */
	rdm_uffd_get_stats(d->u, &st);
	missing = st.pages_placed < d->discarded ? d->discarded - st.pages_placed : 0;
	pthread_mutex_lock(&s->lock);
	s->stats.postcopy_requests = st.requests;
	s->stats.postcopy_pages_missing = missing;
	s->stats.postcopy_blocktime_ms = st.blocktime_us / 1000;
	s->stats.postcopy_latency_p50_us = st.latency_p50_us;
	s->stats.postcopy_latency_p99_us = st.latency_p99_us;
	s->stats.postcopy_latency_max_us = st.latency_max_us;
	pthread_mutex_unlock(&s->lock);
	if (d->pull) {
		/* The source sends nothing here: what it would count, this side did. */
		pthread_mutex_lock(&d->tx_lock);
		uint64_t faults = d->fault_reads, bg = d->bg_pages;
		pthread_mutex_unlock(&d->tx_lock);
		pthread_mutex_lock(&s->lock);
		s->stats.postcopy_pages_pulled = faults;
		s->stats.postcopy_pages_pushed = bg;
		pthread_mutex_unlock(&s->lock);
	}
	return missing;
}

#define RDM_PC_MAP_WORDS (16u << 10) /* a received map's piece: 128 KiB, 1 Mi pages */

/* RP_RECV_BITMAP pieces of every block: a page is here unless discarded and not placed since. */
static int send_received(struct rdm_pc_dst *d, uint32_t *pieces, char *why, size_t len)
{
	struct rdmig_session *s = d->s;
	struct rdm_msg m = {.type = RDM_MSG_RP_RECV_BITMAP};
	uint64_t *map = NULL;
	int ret = 0;

	*pieces = 0;
	for (unsigned b = 0; b < s->nblocks && !ret; b++) {
		uint64_t npages = s->blocks[b].npages, nw = rdm_bitmap_words(npages);

		free(map);
		map = malloc(nw * sizeof(*map));
		if (!map) {
			rdm_errtext(why, len, "postcopy resume: out of memory");
			return -ENOMEM;
		}
		ret = rdm_uffd_received(d->u, b, map, nw);
		for (uint64_t w = 0; !ret && w < nw; w++)
			map[w] |= ~d->want[b][w];
		for (uint64_t w = 0; !ret && w < nw; w += RDM_PC_MAP_WORDS) {
			uint64_t n = nw - w < RDM_PC_MAP_WORDS ? nw - w : RDM_PC_MAP_WORDS;

			m.u.bitmap.block = b;
			m.u.bitmap.nbits = w + n == nw ? npages - w * 64 : n * 64;
			m.u.bitmap.words = map + w;
			ret = rdm_quiet_send(s, &m);
			++*pieces;
		}
		if (ret)
			rdm_errtext(why, len, "postcopy resume: sending the received map of %s: %s",
				    s->blocks[b].name, strerror(-ret));
	}
	free(map);
	return ret;
}

int rdm_pc_resume(struct rdm_pc_dst *d, char *why, size_t len)
{
	struct rdmig_session *s = d->s;
	struct rdm_msg m = {.type = RDM_MSG_RP_RESUME_ACK};
	uint32_t pieces;
	int ret;

	/* Before the source hears anything: a page it sends must not land unguarded. */
	ret = s->tp->ops->set_placer(s->tp, place, d);
	if (ret) {
		rdm_errtext(why, len, "postcopy resume: %s", rdm_tp_why(ret));
		return ret;
	}
	ret = send_received(d, &pieces, why, len);
	if (ret)
		return ret;
	m.u.u32.value = pieces;
	ret = rdm_quiet_send(s, &m);
	if (ret) {
		rdm_errtext(why, len, "postcopy resume: sending resume-ack: %s", strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&d->tx_lock);
	d->lost = false;
	pthread_mutex_unlock(&d->tx_lock);
	ret = rdm_pc_run(d);
	if (ret) {
		rdm_errtext(why, len, "%s", d->bg_why);
		return ret;
	}
	rdm_uffd_reask(d->u);
	return 0;
}

void rdm_pc_dst_stop(struct rdm_pc_dst *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->tx_lock);
	d->lost = true; /* from here no request or read touches the transport */
	while (d->users)
		pthread_cond_wait(&d->tx_cond, &d->tx_lock);
	pthread_mutex_unlock(&d->tx_lock);
	if (d->bg_started)
		pthread_join(d->bg, NULL);
	d->bg_started = false;
}

void rdm_pc_dst_end(struct rdmig_session *s, struct rdm_pc_dst *d, bool lost)
{
	if (!d)
		return;
	rdm_pc_dst_stop(d);
	if (!lost) {
		rdm_pc_dst_release(d);
		return;
	}
	pthread_mutex_lock(&s->lock);
	rdm_pc_dst_release(s->pc_kept); /* none: a session migrates once at a time */
	s->pc_kept = d;
	pthread_mutex_unlock(&s->lock);
}

void rdm_pc_dst_release(struct rdm_pc_dst *d)
{
	if (!d)
		return;
	rdm_uffd_destroy(d->u);
	pthread_cond_destroy(&d->tx_cond);
	pthread_mutex_destroy(&d->tx_lock);
	for (unsigned i = 0; i < d->s->nblocks; i++)
		free(d->want[i]);
	free(d->want);
	free(d);
}

void rdm_pc_dst_free(struct rdmig_session *s)
{
	struct rdm_pc_dst *d;

	pthread_mutex_lock(&s->lock);
	d = s->pc_kept;
	s->pc_kept = NULL;
	pthread_mutex_unlock(&s->lock);
	rdm_pc_dst_release(d);
}
