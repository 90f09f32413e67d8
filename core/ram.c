/* SPDX-License-Identifier: MIT */
/* Dirty pages to writes and zero runs (see ram.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bitmap.h"
#include "core/ram.h"
#include "core/session.h"
#include "core/source.h"
#include "core/track.h"

int rdm_ram_init(struct rdm_ram *r, struct rdmig_session *s)
{
	memset(r, 0, sizeof(*r));
	r->s = s;
	r->zruns = calloc(RDM_ZRUNS_MAX, sizeof(*r->zruns));
	r->zbuf = malloc(RDM_HDR_LEN + 8 + (size_t)RDM_ZRUNS_MAX * 12);
	r->zcur = calloc(s->nblocks ? s->nblocks : 1, sizeof(*r->zcur));
	r->zold = calloc(s->nblocks ? s->nblocks : 1, sizeof(*r->zold));
	if (!r->zruns || !r->zbuf || !r->zcur || !r->zold) {
		rdm_ram_fini(r);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < s->nblocks; i++) {
		uint64_t words = rdm_bitmap_words(s->blocks[i].npages);

		r->zcur[i] = calloc(words ? words : 1, sizeof(uint64_t));
		r->zold[i] = calloc(words ? words : 1, sizeof(uint64_t));
		if (!r->zcur[i] || !r->zold[i]) {
			rdm_ram_fini(r);
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < s->nblocks; i++)
		rdm_bitmap_set_all(s->blocks[i].dirty, s->blocks[i].npages);
	r->remaining = s->stats.ram_total;
	return 0;
}

void rdm_ram_fini(struct rdm_ram *r)
{
	for (unsigned i = 0; r->s && i < r->s->nblocks; i++) {
		if (r->zcur)
			free(r->zcur[i]);
		if (r->zold)
			free(r->zold[i]);
	}
	free(r->zcur);
	free(r->zold);
	free(r->zruns);
	free(r->zbuf);
	r->zcur = r->zold = NULL;
	r->zruns = NULL;
	r->zbuf = NULL;
}

static void zold_clear(struct rdm_ram *r)
{
	for (unsigned i = 0; i < r->s->nblocks; i++)
		rdm_bitmap_clear_all(r->zold[i], r->s->blocks[i].npages);
	r->zold_seq = 0;
}

void rdm_ram_pass_end(struct rdm_ram *r, uint64_t seq)
{
	if (!r->zcur_any)
		return;
	for (unsigned i = 0; i < r->s->nblocks; i++) {
		rdm_bitmap_or(r->zold[i], r->zcur[i], r->s->blocks[i].npages);
		rdm_bitmap_clear_all(r->zcur[i], r->s->blocks[i].npages);
	}
	/* Acks are cumulative: the newest pass stands for the older ones too. */
	r->zold_seq = seq;
	r->zcur_any = false;
}

/* The ack for zold came already: nothing waits on it any more. */
static void zold_settle(struct rdm_ram *r)
{
	bool acked;

	if (!r->zold_seq)
		return;
	pthread_mutex_lock(&r->s->lock);
	acked = r->s->acked_seq >= r->zold_seq;
	pthread_mutex_unlock(&r->s->lock);
	if (acked)
		zold_clear(r);
}

/* Data for pages [first, first+n) of bi: if a pending zeroing covers one, its ack first. */
static int zold_order(struct rdm_ram *r, unsigned bi, uint64_t first, uint64_t n)
{
	struct rdmig_session *s = r->s;
	int ret;

	/* Postcopy places pages itself, first one wins (postcopy.h): no wait there. */
	if (!r->zold_seq || atomic_load(&s->pc_start) || !rdm_bitmap_any(r->zold[bi], first, n))
		return 0;
	r->zero_waits++;
	ret = rdm_src_wait_rp(s, r->zold_seq, (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT]);
	if (ret)
		return ret;
	zold_clear(r);
	return 0;
}

void rdm_ram_publish(struct rdm_ram *r)
{
	struct rdmig_session *s = r->s;

	pthread_mutex_lock(&s->lock);
	/* Requested pages are sent by the return-path thread, and counted there. */
	s->stats.ram_transferred = r->bytes_total + s->pc.pulled_bytes;
	s->stats.ram_normal = r->normal_pages;
	s->stats.ram_normal_bytes = r->normal_bytes;
	s->stats.ram_duplicate = r->zero_pages;
	s->stats.ram_remaining = r->remaining;
	s->stats.postcopy_pages_pushed = r->pc_pushed;
	pthread_mutex_unlock(&s->lock);
}

static int flush_zero(struct rdm_ram *r)
{
	struct rdmig_session *s = r->s;
	struct rdm_msg m = {.type = RDM_MSG_ZERO_RUNS};
	size_t len;
	int ret;

	if (!r->nz)
		return 0;
	m.u.zero.block = r->zblock;
	m.u.zero.count = r->nz;
	m.u.zero.runs = r->zruns;
	ret = rdm_msg_encode(&m, r->zbuf, RDM_HDR_LEN + 8 + (size_t)RDM_ZRUNS_MAX * 12, &len);
	if (!ret)
		ret = rdm_tp_send(s->tp, r->zbuf, len);
	if (ret) {
		rdm_set_error(s, "sending zero runs: %s", rdm_tp_why(ret));
		return ret;
	}
	r->bytes_total += len;
	r->nz = 0;
	return 0;
}

static int add_zero(struct rdm_ram *r, unsigned block, uint64_t first, uint64_t n)
{
	struct rdm_zero_run *last = r->nz ? &r->zruns[r->nz - 1] : NULL;
	int ret;

	if (r->nz && r->zblock != block) {
		ret = flush_zero(r);
		if (ret)
			return ret;
		last = NULL;
	}
	r->zblock = block;
	rdm_bitmap_set_range(r->zcur[block], first, n);
	r->zcur_any = true;
	if (last && last->first_page + last->npages == first && last->npages + n <= UINT32_MAX) {
		last->npages += (uint32_t)n;
		return 0;
	}
	if (r->nz == RDM_ZRUNS_MAX) {
		ret = flush_zero(r);
		if (ret)
			return ret;
	}
	r->zruns[r->nz++] = (struct rdm_zero_run){first, (uint32_t)n};
	return 0;
}

/* query-migrate sees progress every 16 MiB, or every 100 ms at a low limit. */
static void maybe_publish(struct rdm_ram *r)
{
	if (r->bytes_total >= r->next_stats || rdm_now_ms() >= r->next_stats_ms) {
		rdm_ram_publish(r);
		r->next_stats = r->bytes_total + (16u << 20);
		r->next_stats_ms = rdm_now_ms() + 100;
	}
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* max-bandwidth, read live: wait until the bucket lets len more bytes go. */
static int rate_limit(struct rdm_ram *r, uint64_t len)
{
	struct rdmig_session *s = r->s;
	uint64_t wait;

	for (;;) {
		wait = rdm_rate_take(&r->rate, r->unlimited ? 0 : rdm_policy_max_bandwidth(&s->policy),
				     len, now_us());
		if (!wait)
			return 0;
		if (rdm_cancelled(s))
			return -ECANCELED;
		/* Short naps: a cancel or a raised limit is seen within 20 ms. */
		if (wait > 20000)
			wait = 20000;
		struct timespec ts = {0, (long)wait * 1000};

		nanosleep(&ts, NULL);
	}
}

/* Pages [first, first+n) of block bi as writes of at most one limiter piece each. */
static int write_data(struct rdm_ram *r, unsigned bi, uint64_t first, uint64_t n)
{
	struct rdmig_session *s = r->s;
	struct rdm_block *b = &s->blocks[bi];
	int ret;

	while (n) {
		uint64_t bw = r->unlimited ? 0 : rdm_policy_max_bandwidth(&s->policy);
		uint64_t piece = bw ? rdm_rate_piece(bw, b->page_size) / b->page_size : n;
		uint64_t k = n < piece ? n : piece, len = k * b->page_size;

		ret = rate_limit(r, len);
		if (!ret)
			ret = zold_order(r, bi, first, k);
		if (ret)
			return ret;
		ret = rdm_tp_write(s->tp, bi, first * b->page_size, len);
		if (ret) {
			rdm_set_error(s, "writing %s+%llu: %s", b->name,
				      (unsigned long long)(first * b->page_size), rdm_tp_why(ret));
			return ret;
		}
		r->bytes_total += len;
		r->normal_pages += k;
		r->normal_bytes += len;
		first += k;
		n -= k;
		maybe_publish(r);
	}
	return 0;
}

/* Split a dirty run into data and zero segments; data goes as few writes as it can. */
static int send_run(struct rdm_ram *r, unsigned bi, uint64_t first, uint64_t n)
{
	struct rdmig_session *s = r->s;
	struct rdm_block *b = &s->blocks[bi];
	uint64_t i = first, end = first + n;
	int ret;

	if (!s->opts.caps[RDMIG_CAP_ZERO_PAGE_DETECTION])
		return write_data(r, bi, first, n);
	while (i < end) {
		bool zero = rdm_is_zero(b->host + i * b->page_size, b->page_size);
		uint64_t j = i + 1;

		while (j < end && rdm_is_zero(b->host + j * b->page_size, b->page_size) == zero)
			j++;
		if (zero) {
			ret = add_zero(r, bi, i, j - i);
			r->zero_pages += j - i;
		} else {
			ret = write_data(r, bi, i, j - i);
		}
		if (ret)
			return ret;
		i = j;
	}
	return 0;
}

int rdm_ram_send_dirty(struct rdm_ram *r)
{
	struct rdmig_session *s = r->s;
	uint64_t chunk = s->opts.params[RDMIG_PARAM_CHUNK_SIZE];
	int ret;

	zold_settle(r);
	for (unsigned bi = 0; bi < s->nblocks; bi++) {
		struct rdm_block *b = &s->blocks[bi];
		uint64_t cpages = chunk / b->page_size ? chunk / b->page_size : 1;
		uint64_t pos = 0, n;

		/* Runs stop at chunk boundaries: the unit transports map to channels. */
		while ((n = rdm_bitmap_next_run(b->dirty, b->npages, &pos, cpages, cpages))) {
			ret = rdm_check_abort(s);
			if (!ret)
				ret = send_run(r, bi, pos, n);
			if (ret)
				return ret;
			pos += n;
			r->remaining -= r->remaining < n * b->page_size ? r->remaining
									: n * b->page_size;
			maybe_publish(r);
			/* Postcopy sends what is left: this block's bits stay as they are. */
			if (atomic_load(&s->pc_start))
				goto out;
		}
		rdm_bitmap_clear_all(b->dirty, b->npages);
	}
out:
	ret = flush_zero(r);
	rdm_ram_publish(r);
	return ret;
}

int rdm_ram_sync(struct rdm_ram *r, uint64_t *pages, uint64_t *bytes)
{
	struct rdmig_session *s = r->s;
	uint64_t np = 0, nb = 0;
	int ret;

	ret = rdm_track_sync(s);
	if (ret)
		return ret;
	for (unsigned bi = 0; bi < s->nblocks; bi++) {
		struct rdm_block *b = &s->blocks[bi];
		uint64_t c;

		if (b->tracker != RDMIG_TRACK_NONE) {
			ret = rdm_track_collect(s, bi);
			if (ret)
				return ret;
		} else if (s->cb.dirty_log) {
			ret = rdm_cb_ret(s->cb.dirty_log(s->opaque, bi, b->dirty, b->npages));
			if (ret) {
				rdm_set_error(s, "dirty_log callback failed for %s: %s", b->name,
					      strerror(-ret));
				return ret;
			}
		}
		c = rdm_bitmap_count(b->dirty, b->npages);
		np += c;
		nb += c * b->page_size;
	}
	r->syncs++;
	r->remaining = nb;
	*pages = np;
	*bytes = nb;
	return 0;
}

int rdm_ram_send_next(struct rdm_ram *r, unsigned *bi, uint64_t *pos)
{
	struct rdmig_session *s = r->s;
	uint64_t chunk = s->opts.params[RDMIG_PARAM_CHUNK_SIZE];
	int ret;

	for (; *bi < s->nblocks; (*bi)++, *pos = 0) {
		struct rdm_block *b = &s->blocks[*bi];
		uint64_t cpages = chunk / b->page_size ? chunk / b->page_size : 1;
		/* Small pieces: a request waits for one of them at most, not a whole chunk. */
		uint64_t max = RDM_PC_PIECE / b->page_size ? RDM_PC_PIECE / b->page_size : 1;
		uint64_t n = rdm_bitmap_next_run(b->dirty, b->npages, pos, max, cpages);

		if (!n)
			continue;
		rdm_bitmap_clear_range(b->dirty, *pos, n);
		ret = send_run(r, *bi, *pos, n);
		if (!ret)
			ret = flush_zero(r);
		if (ret)
			return ret;
		*pos += n;
		r->pc_pushed += n;
		r->remaining -= r->remaining < n * b->page_size ? r->remaining : n * b->page_size;
		maybe_publish(r);
		return 1;
	}
	return 0;
}

int rdm_ram_flush(struct rdm_ram *r)
{
	int ret = flush_zero(r);

	rdm_ram_publish(r);
	return ret;
}
