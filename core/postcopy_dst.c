/* SPDX-License-Identifier: MIT */
/*
 * Postcopy's destination (see postcopy.h): the blocks under userfaultfd
 * (core/uffd.c), received pages placed by copy through the transport's
 * placer, and a page request on the return path for each first fault.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/errtext.h"
#include "core/postcopy.h"
#include "core/session.h"
#include "core/uffd.h"

struct rdm_pc_dst {
	struct rdmig_session *s;
	struct rdm_uffd *u;
	/* Requests go out under tx_lock unless lost: the transport may be closing. */
	pthread_mutex_t tx_lock;
	bool lost;
	uint64_t discarded; /* pages */
};

/* The fault thread: the first fault on a page not here asks the source for it. */
static void on_fault(void *opaque, unsigned block, uint64_t page)
{
	struct rdm_pc_dst *d = opaque;
	struct rdmig_session *s = d->s;
	struct rdm_msg m = {.type = RDM_MSG_RP_REQ_PAGES};

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

int rdm_pc_check(struct rdmig_session *s)
{
	if (!s->opts.caps[RDMIG_CAP_POSTCOPY_RAM])
		return 0;
	if (!s->ops->set_placer) {
		rdm_set_api_error(s, "postcopy-ram is not available over %s yet (tcp only)",
				  s->ops->name);
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < s->nblocks; i++)
		if (s->blocks[i].page_size > (2u << 20)) {
			rdm_set_api_error(s, "postcopy-ram: block %s has %u-byte pages (at most 2 MiB)",
					  s->blocks[i].name, s->blocks[i].page_size);
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
	pthread_mutex_init(&d->tx_lock, NULL);
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
	pthread_mutex_destroy(&d->tx_lock);
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
	return missing;
}

void rdm_pc_dst_stop(struct rdm_pc_dst *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->tx_lock);
	d->lost = true; /* from here no request touches the transport */
	pthread_mutex_unlock(&d->tx_lock);
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
	pthread_mutex_destroy(&d->tx_lock);
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
