/* SPDX-License-Identifier: MIT */
/*
 * Registration: create/destroy, the verbs boundary, and the entry points that
 * take the lock and dispatch to pin-all (pin_all.c) or the cache (cache.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "pin/pin_int.h"

int64_t rdm_pin_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t rdm_pin_memlock_limit(void)
{
	struct rlimit rl;

	/* Cannot read it: assume nothing may be pinned rather than everything. */
	if (getrlimit(RLIMIT_MEMLOCK, &rl))
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	return (uint64_t)rl.rlim_cur;
}

int rdm_pin_reg(const struct rdm_pin *p, unsigned r, uint64_t off, uint64_t len,
		struct ibv_mr **out, char *err, size_t errlen)
{
	const struct rdm_pin_reg *g = &p->regs[r];
	struct ibv_mr *mr;
	char ebuf[64];
	int ret;

	mr = ibv_reg_mr(p->pd, g->addr + off, (size_t)len, p->access);
	if (!mr) {
		/* ibv_reg_mr's only error channel is errno: convert it here, once. */
		ret = errno > 0 ? -errno : -EIO;
		/* Pin-all threads fail here concurrently: strerror_r, not strerror. */
		rdm_errtext(err, errlen,
			    "ibv_reg_mr(region %u, offset %" PRIu64 ", %" PRIu64
			    " bytes at %p, access 0x%x): %s",
			    r, off, len, (void *)(g->addr + off), p->access,
			    strerror_r(-ret, ebuf, sizeof(ebuf)));
		return ret;
	}
	*out = mr;
	return 0;
}

int rdm_pin_dereg(struct ibv_mr *mr)
{
	int ret = ibv_dereg_mr(mr);

	/* Documented as 0 or an errno value; older providers returned -1 + errno. */
	if (ret > 0)
		return -ret;
	if (ret < 0)
		return errno > 0 ? -errno : -EIO;
	return 0;
}

void rdm_pin_account_add(struct rdm_pin *p, uint64_t len)
{
	p->st.registered_bytes += len;
	if (p->st.registered_bytes > p->st.peak_bytes)
		p->st.peak_bytes = p->st.registered_bytes;
}

/* ------------------------------------------------------------ create / destroy */

static int pin_opts_normalize(const struct rdm_pin_opts *in, struct rdm_pin_opts *o, char *err,
			      size_t errlen)
{
	long cpus;

	if (!in || in->size < sizeof(in->size)) {
		rdm_errtext(err, errlen, "pin: options missing or opts.size not set");
		return -EINVAL;
	}
	/* Fields past the caller's size keep their zero defaults. */
	memset(o, 0, sizeof(*o));
	memcpy(o, in, in->size < sizeof(*o) ? in->size : sizeof(*o));
	o->size = sizeof(*o);

	if (!o->chunk_size)
		o->chunk_size = RDM_PIN_DEFAULT_CHUNK;
	if (o->chunk_size & (o->chunk_size - 1)) {
		rdm_errtext(err, errlen, "pin: chunk size %" PRIu64 " is not a power of two",
			    o->chunk_size);
		return -EINVAL;
	}
	if (!o->threads) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		o->threads = cpus < 1 ? 1 : (unsigned)cpus;
		if (o->threads > RDM_PIN_DEFAULT_THREADS_MAX)
			o->threads = RDM_PIN_DEFAULT_THREADS_MAX;
	}
	if (o->threads > RDM_PIN_THREADS_MAX)
		o->threads = RDM_PIN_THREADS_MAX;
	return 0;
}

/* max_mr_size, and ODP when asked for and the device can take RC writes with it. */
static void pin_probe_device(struct rdm_pin *p)
{
	struct ibv_device_attr_ex ax;
	struct ibv_device_attr a;

	p->max_mr_size = 0; /* unknown: no cap on piece size */
	p->odp = false;
	memset(&ax, 0, sizeof(ax));
	if (ibv_query_device_ex(p->pd->context, NULL, &ax) == 0) {
		p->max_mr_size = ax.orig_attr.max_mr_size;
		p->odp = p->o.try_odp && (ax.odp_caps.general_caps & IBV_ODP_SUPPORT) &&
			 (ax.odp_caps.per_transport_caps.rc_odp_caps & IBV_ODP_SUPPORT_WRITE);
	} else if (ibv_query_device(p->pd->context, &a) == 0) {
		p->max_mr_size = a.max_mr_size;
	}
}

int rdm_pin_create(struct ibv_pd *pd, const struct rdm_pin_region *regions, unsigned n,
		   const struct rdm_pin_opts *opts, struct rdm_pin **out, char *err, size_t errlen)
{
	struct rdm_pin *p;
	uint64_t total = 0;
	int ret;

	if (!pd || !out || (n && !regions)) {
		rdm_errtext(err, errlen, "pin: no protection domain, regions or result pointer");
		return -EINVAL;
	}
	for (unsigned r = 0; r < n; r++) {
		uintptr_t a = (uintptr_t)regions[r].addr;

		if (!a || !regions[r].len || regions[r].len > UINTPTR_MAX - a ||
		    regions[r].len > UINT64_MAX - total) {
			rdm_errtext(err, errlen, "pin: region %u (%p, %" PRIu64 " bytes) is invalid",
				    r, regions[r].addr, regions[r].len);
			return -EINVAL;
		}
		total += regions[r].len;
	}

	p = calloc(1, sizeof(*p));
	if (!p) {
		rdm_errtext(err, errlen, "pin: out of memory");
		return -ENOMEM;
	}
	ret = pin_opts_normalize(opts, &p->o, err, errlen);
	if (ret)
		goto free_pin;
	ret = -pthread_mutex_init(&p->lock, NULL);
	if (ret) {
		rdm_errtext(err, errlen, "pin: pthread_mutex_init: %s", strerror(-ret));
		goto free_pin;
	}
	p->regs = calloc(n ? n : 1, sizeof(*p->regs));
	if (!p->regs) {
		rdm_errtext(err, errlen, "pin: out of memory for %u regions", n);
		ret = -ENOMEM;
		goto destroy_lock;
	}
	p->pd = pd;
	p->n = n;
	for (unsigned r = 0; r < n; r++) {
		p->regs[r].addr = regions[r].addr;
		p->regs[r].len = regions[r].len;
	}
	p->lru.next = p->lru.prev = &p->lru;

	pin_probe_device(p);
	p->access = p->o.access | (p->odp ? IBV_ACCESS_ON_DEMAND : 0);
	/* ODP pins nothing, so the memlock limit does not apply. */
	if (p->odp)
		p->budget = UINT64_MAX;
	else
		p->budget = p->o.budget ? p->o.budget : rdm_pin_memlock_limit();
	p->st.odp = p->odp;

	if (p->o.pin_all) {
		ret = rdm_pin_all_register(p, total, err, errlen);
		if (ret)
			goto free_pieces;
	} else {
		for (unsigned r = 0; r < n; r++)
			p->regs[r].nslots = (p->regs[r].len - 1) / p->o.chunk_size + 1;
	}
	*out = p;
	return 0;

free_pieces:
	for (unsigned r = 0; r < n; r++)
		free(p->regs[r].pieces);
	free(p->regs);
destroy_lock:
	pthread_mutex_destroy(&p->lock);
free_pin:
	free(p);
	return ret;
}

void rdm_pin_destroy(struct rdm_pin *p)
{
	if (!p)
		return;
	if (p->o.pin_all)
		rdm_pin_all_release(p);
	else
		rdm_pin_cache_destroy(p);
	for (unsigned r = 0; r < p->n; r++)
		free(p->regs[r].pieces);
	free(p->regs);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ------------------------------------------------------------ entry points */

/* Region r exists and [off, off+len) lies inside it and inside one chunk. */
static int pin_check_range(const struct rdm_pin *p, unsigned r, uint64_t off, uint64_t len,
			   char *err, size_t errlen)
{
	uint64_t chunk = p->o.chunk_size;

	if (r >= p->n) {
		rdm_errtext(err, errlen, "pin: region %u does not exist (%u regions)", r, p->n);
		return -EINVAL;
	}
	if (off >= p->regs[r].len || len > p->regs[r].len - off) {
		rdm_errtext(err, errlen,
			    "pin: range [%" PRIu64 ", +%" PRIu64 ") is outside region %u (%" PRIu64
			    " bytes)",
			    off, len, r, p->regs[r].len);
		return -ERANGE;
	}
	if (len && off / chunk != (off + len - 1) / chunk) {
		rdm_errtext(err, errlen,
			    "pin: range [%" PRIu64 ", +%" PRIu64 ") of region %u crosses a %" PRIu64
			    "-byte chunk boundary",
			    off, len, r, chunk);
		return -EINVAL;
	}
	return 0;
}

int rdm_pin_get(struct rdm_pin *p, unsigned r, uint64_t off, uint64_t len, struct rdm_pin_key *key,
		char *err, size_t errlen)
{
	int ret;

	pthread_mutex_lock(&p->lock);
	ret = pin_check_range(p, r, off, len, err, errlen);
	if (ret)
		goto unlock;
	if (p->o.pin_all)
		/* Pieces are whole chunks: a range inside a chunk is inside a piece. */
		rdm_pin_key_of(p->regs[r].pieces[off / p->piece], key);
	else
		ret = rdm_pin_cache_get(p, r, off, key, err, errlen);
unlock:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

bool rdm_pin_has(struct rdm_pin *p, unsigned r, uint64_t off)
{
	bool has;

	pthread_mutex_lock(&p->lock);
	if (r >= p->n || off >= p->regs[r].len)
		has = false;
	else if (p->o.pin_all)
		has = p->regs[r].pieces[off / p->piece] != NULL;
	else
		has = rdm_pin_cache_has(p, r, off);
	pthread_mutex_unlock(&p->lock);
	return has;
}

void rdm_pin_mark_busy(struct rdm_pin *p, unsigned r, uint64_t off, uint64_t seq)
{
	pthread_mutex_lock(&p->lock);
	/* Pin-all never evicts: nothing to track. */
	if (!p->o.pin_all && r < p->n && off < p->regs[r].len)
		rdm_pin_cache_mark_busy(p, r, off, seq);
	pthread_mutex_unlock(&p->lock);
}

void rdm_pin_idle_upto(struct rdm_pin *p, uint64_t seq)
{
	pthread_mutex_lock(&p->lock);
	if (!p->idle_any || seq > p->idle_seq)
		p->idle_seq = seq;
	p->idle_any = true;
	pthread_mutex_unlock(&p->lock);
}

int rdm_pin_drop(struct rdm_pin *p, unsigned r, uint64_t off)
{
	int ret;

	pthread_mutex_lock(&p->lock);
	if (r >= p->n || off >= p->regs[r].len)
		ret = -EINVAL;
	else if (p->o.pin_all)
		ret = -EOPNOTSUPP; /* pieces live until rdm_pin_destroy */
	else
		ret = rdm_pin_cache_drop(p, r, off);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void rdm_pin_get_stats(const struct rdm_pin *p, struct rdm_pin_stats *st)
{
	/* The lock is not part of the value: locking a const handle is fine. */
	pthread_mutex_t *lock = (pthread_mutex_t *)&p->lock;

	pthread_mutex_lock(lock);
	*st = p->st;
	pthread_mutex_unlock(lock);
}
