/* SPDX-License-Identifier: MIT */
/*
 * Session configuration: RAM blocks, capabilities and parameters. Blocks and
 * capabilities are fixed once a migration starts; downtime-limit and
 * max-bandwidth change live (QEMU's migrate-set-parameters), the rest -EBUSY.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bitmap.h"
#include "core/session.h"
#include "core/track.h"

/* Lock held: a migration is starting or running, so the setup is fixed. */
static bool busy_locked(const struct rdmig_session *s)
{
	return s->starting || (s->started && !rdm_is_terminal(s->status));
}

int rdm_setup_lock(struct rdmig_session *s, const char *busy_why)
{
	pthread_mutex_lock(&s->lock);
	if (!busy_locked(s))
		return 0;
	pthread_mutex_unlock(&s->lock);
	rdm_set_api_error(s, "%s", busy_why);
	return -EBUSY;
}

static bool overlaps(const struct rdm_block *b, const uint8_t *host, uint64_t len)
{
	uintptr_t a0 = (uintptr_t)b->host, a1 = a0 + b->len;
	uintptr_t b0 = (uintptr_t)host, b1 = b0 + len;

	return a0 < b1 && b0 < a1;
}

/* Lock held. 0, or -errno with the reason in why. */
static int check_block(const struct rdmig_session *s, const char *name, void *host,
		       uint64_t length, uint32_t page_size, char *why, size_t whylen)
{
	size_t nlen = name ? strlen(name) : 0;

	if (s->started || s->starting) {
		snprintf(why, whylen, "blocks must be added before migrate/incoming");
		return -EBUSY;
	}
	if (nlen == 0 || nlen > RDM_NAME_MAX) {
		snprintf(why, whylen, "block name must be 1..%u bytes", RDM_NAME_MAX);
		return -EINVAL;
	}
	if (!host || page_size < 512 || (page_size & (page_size - 1)) || length == 0 ||
	    length % page_size) {
		snprintf(why, whylen,
			 "block %s: need a host pointer, a power-of-two page size >= 512 "
			 "and a non-zero length that is a multiple of it",
			 name);
		return -EINVAL;
	}
	/* Pages are registered, tracked and written whole: they must start on a page. */
	if ((uintptr_t)host % page_size) {
		snprintf(why, whylen, "block %s: host pointer %p is not aligned to its page size %u",
			 name, host, page_size);
		return -EINVAL;
	}
	if ((uintptr_t)host + length < (uintptr_t)host) {
		snprintf(why, whylen, "block %s: %p + %llu wraps the address space", name, host,
			 (unsigned long long)length);
		return -EINVAL;
	}
	if (s->nblocks >= RDM_MAX_BLOCKS) {
		snprintf(why, whylen, "too many blocks (at most %u)", RDM_MAX_BLOCKS);
		return -E2BIG;
	}
	for (unsigned i = 0; i < s->nblocks; i++) {
		const struct rdm_block *b = &s->blocks[i];

		if (!strcmp(b->name, name)) {
			snprintf(why, whylen, "block %s added twice", name);
			return -EEXIST;
		}
		/* One guest page in two blocks would be sent, and landed, twice. */
		if (overlaps(b, host, length)) {
			snprintf(why, whylen,
				 "block %s [%p, +%llu) overlaps block %s [%p, +%llu)", name, host,
				 (unsigned long long)length, b->name, (void *)b->host,
				 (unsigned long long)b->len);
			return -EINVAL;
		}
	}
	return 0;
}

static int add_block_locked(struct rdmig_session *s, const struct rdmig_block_opts *o,
			    char *why, size_t whylen)
{
	const char *name = o->name;
	void *host = o->host;
	uint64_t length = o->length;
	uint32_t page_size = o->page_size;
	struct rdm_block *b, *nb;
	uint64_t *dirty = NULL;
	int ret;

	ret = check_block(s, name, host, length, page_size, why, whylen);
	if (ret)
		return ret;
	if (s->role == RDMIG_ROLE_SOURCE) {
		dirty = calloc(rdm_bitmap_words(length / page_size), sizeof(uint64_t));
		if (!dirty)
			goto err_nomem;
	}
	nb = realloc(s->blocks, (s->nblocks + 1) * sizeof(*nb));
	if (!nb)
		goto err_free_dirty;
	s->blocks = nb;
	b = &nb[s->nblocks];
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, strlen(name) + 1);
	b->host = host;
	b->len = length;
	b->page_size = page_size;
	b->npages = length / page_size;
	b->dirty = dirty;
	b->tracker = o->tracker;
	b->hold = o->hold;
	b->hold_opaque = o->hold_opaque;
	s->nblocks++;
	s->stats.ram_total += length;
	return 0;

err_free_dirty:
	free(dirty);
err_nomem:
	snprintf(why, whylen, "block %s: out of memory", name);
	return -ENOMEM;
}

/*
 * The caller's options into *o: sizes from the first layout on; bytes past
 * ours must be zero (fields this library does not know).
 */
static int copy_opts(const struct rdmig_block_opts *in, struct rdmig_block_opts *o, char *why,
		     size_t whylen)
{
	size_t first = offsetof(struct rdmig_block_opts, hold_opaque) + sizeof(void *);

	if (!in || in->size < first) {
		snprintf(why, whylen, "block options: size %zu unset or too small "
				      "(RDMIG_BLOCK_OPTS_INIT)",
			 in ? in->size : 0);
		return -EINVAL;
	}
	for (size_t i = sizeof(*o); i < in->size; i++)
		if (((const uint8_t *)in)[i]) {
			snprintf(why, whylen, "block options: size %zu carries fields this "
					      "library (%zu bytes) does not know",
				 in->size, sizeof(*o));
			return -EINVAL;
		}
	memset(o, 0, sizeof(*o));
	memcpy(o, in, in->size < sizeof(*o) ? in->size : sizeof(*o));
	if ((unsigned)o->tracker > RDMIG_TRACK_SOFT_DIRTY) {
		snprintf(why, whylen, "block %s: unknown tracker %d", o->name ? o->name : "?",
			 (int)o->tracker);
		return -EINVAL;
	}
	return 0;
}

static int add_block(rdmig_session *s, const struct rdmig_block_opts *in)
{
	char why[4 * RDM_ERRLEN] = ""; /* two names of up to 255 bytes; cut to RDM_ERRLEN later */
	char twhy[RDM_ERRLEN] = "";
	struct rdmig_block_opts o;
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	ret = copy_opts(in, &o, why, sizeof(why));
	if (ret)
		goto out;
	/* A destination's memory is written by the library alone: nothing to track. */
	if (s->role != RDMIG_ROLE_SOURCE)
		o.tracker = RDMIG_TRACK_NONE;
	/* Probed outside the lock (system calls), once the block itself is sound. */
	if (o.tracker != RDMIG_TRACK_NONE) {
		pthread_mutex_lock(&s->lock);
		ret = check_block(s, o.name, o.host, o.length, o.page_size, why, sizeof(why));
		pthread_mutex_unlock(&s->lock);
		if (ret)
			goto out;
		ret = rdm_track_resolve(o.tracker, o.host, o.length, o.page_size, o.hold != NULL,
					&o.tracker, twhy, sizeof(twhy));
		if (ret) {
			snprintf(why, sizeof(why), "block %s: %s", o.name ? o.name : "?", twhy);
			goto out;
		}
	}
	pthread_mutex_lock(&s->lock);
	ret = add_block_locked(s, &o, why, sizeof(why));
	pthread_mutex_unlock(&s->lock);
out:
	if (ret)
		rdm_set_api_error(s, "%s", why);
	return rdm_api_leave(s, ret);
}

int rdmig_add_block(rdmig_session *s, const char *name, void *host, uint64_t length,
		    uint32_t page_size)
{
	struct rdmig_block_opts o = {.size = sizeof(o), .name = name, .host = host,
				     .length = length, .page_size = page_size};

	return add_block(s, &o);
}

int rdmig_add_block_opts(rdmig_session *s, const struct rdmig_block_opts *o)
{
	return add_block(s, o);
}

int rdmig_block_tracker(const rdmig_session *cs, const char *name, enum rdmig_tracker *t)
{
	struct rdmig_session *s = (struct rdmig_session *)cs;
	int ret = -ENOENT;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (!name || !t) {
		rdm_set_api_error(s, "block_tracker: no name or no result pointer");
		return rdm_api_leave(s, -EINVAL);
	}
	ret = -ENOENT;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nblocks; i++)
		if (!strcmp(s->blocks[i].name, name)) {
			*t = s->blocks[i].tracker;
			ret = 0;
			break;
		}
	pthread_mutex_unlock(&s->lock);
	if (ret)
		rdm_set_api_error(s, "block_tracker: no block %s", name);
	return rdm_api_leave(s, ret);
}

int rdmig_set_capability(rdmig_session *s, enum rdmig_cap cap, bool on)
{
	char err[RDM_ERRLEN] = "";
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	ret = rdm_setup_lock(s, "capabilities cannot change during a migration");
	if (ret)
		return rdm_api_leave(s, ret);
	ret = rdm_options_set_cap(&s->opts, cap, on, err, sizeof(err));
	pthread_mutex_unlock(&s->lock);
	if (ret)
		rdm_set_api_error(s, "%s", err);
	return rdm_api_leave(s, ret);
}

int rdmig_get_capability(const rdmig_session *cs, enum rdmig_cap cap, bool *on)
{
	/* const for the caller; the lock and the user count still change. */
	struct rdmig_session *s = (struct rdmig_session *)cs;
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (!on || (unsigned)cap >= RDMIG_CAP__COUNT) {
		rdm_set_api_error(s, "get_capability: unknown capability %u or no result pointer",
				  (unsigned)cap);
		return rdm_api_leave(s, -EINVAL);
	}
	pthread_mutex_lock(&s->lock);
	*on = s->opts.caps[cap];
	pthread_mutex_unlock(&s->lock);
	return rdm_api_leave(s, 0);
}

static bool is_live(enum rdmig_param p)
{
	return p == RDMIG_PARAM_DOWNTIME_LIMIT || p == RDMIG_PARAM_MAX_BANDWIDTH;
}

int rdmig_set_parameter(rdmig_session *s, enum rdmig_param p, uint64_t value)
{
	char err[RDM_ERRLEN] = "";
	bool running;
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	running = s->started && !rdm_is_terminal(s->status);
	if (s->starting || (running && (unsigned)p < RDMIG_PARAM__COUNT && !is_live(p))) {
		snprintf(err, sizeof(err),
			 "%s cannot change during a migration (only downtime-limit and "
			 "max-bandwidth can)",
			 rdmig_param_name(p));
		ret = -EBUSY;
	} else {
		ret = rdm_options_set_param(&s->opts, p, value, err, sizeof(err));
	}
	/* The running source's policy reads these at every period and every write. */
	if (!ret && running)
		rdm_policy_set_live(&s->policy, s->opts.params[RDMIG_PARAM_DOWNTIME_LIMIT],
				    s->opts.params[RDMIG_PARAM_MAX_BANDWIDTH]);
	pthread_mutex_unlock(&s->lock);
	if (ret)
		rdm_set_api_error(s, "%s", err);
	return rdm_api_leave(s, ret);
}

int rdmig_get_parameter(const rdmig_session *cs, enum rdmig_param p, uint64_t *value)
{
	struct rdmig_session *s = (struct rdmig_session *)cs;
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (!value || (unsigned)p >= RDMIG_PARAM__COUNT) {
		rdm_set_api_error(s, "get_parameter: unknown parameter %u or no result pointer",
				  (unsigned)p);
		return rdm_api_leave(s, -EINVAL);
	}
	pthread_mutex_lock(&s->lock);
	*value = s->opts.params[p];
	pthread_mutex_unlock(&s->lock);
	return rdm_api_leave(s, 0);
}
