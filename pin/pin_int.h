/* SPDX-License-Identifier: MIT */
/*
 * Memory registration, internal to pin/: pin.c owns create/destroy, the entry
 * points and the verbs boundary (every ibv_reg_mr / ibv_dereg_mr goes through
 * rdm_pin_reg / rdm_pin_dereg); pin_all.c owns pin-all; cache.c owns the
 * on-demand chunk cache.
 *
 * Pin-all: each region is cut into pieces of p->piece bytes (a multiple of
 * chunk_size, so a range that does not cross a chunk never crosses a piece; the
 * last piece of a region may be short), registered by parallel threads.
 *
 * On demand: region r has nchunks slots (allocated on its first use); chunk k
 * covers [k*chunk, min((k+1)*chunk, len)). Registered chunks sit on one LRU
 * list (head = most recently used) so a touch is O(1).
 */
#ifndef RDMIG_PIN_PIN_INT_H
#define RDMIG_PIN_PIN_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errtext.h"
#include "pin/pin.h"

#define RDM_PIN_DEFAULT_THREADS_MAX 8u /* threads = 0: online CPUs, at most this */
#define RDM_PIN_THREADS_MAX 64u        /* an explicit count is clamped here */

/* One on-demand chunk slot. */
struct rdm_pin_chunk {
	struct ibv_mr *mr; /* NULL: not registered (and not on the LRU list) */
	struct rdm_pin_chunk *prev, *next; /* LRU links while registered */
	uint64_t busy_seq; /* highest sequence it was marked busy with */
	bool busy;         /* marked busy since it was registered */
	unsigned region;
};

struct rdm_pin_reg {
	uint8_t *addr;
	uint64_t len;
	uint64_t nslots;              /* pieces (pin-all) or chunks (on demand) */
	struct ibv_mr **pieces;       /* pin-all: nslots MRs */
	struct rdm_pin_chunk *chunks; /* on demand: nslots slots, NULL until first use */
};

struct rdm_pin {
	pthread_mutex_t lock; /* data path and progress thread both call in */
	struct ibv_pd *pd;
	struct rdm_pin_opts o; /* normalized copy: chunk_size and threads filled in */
	int access;            /* o.access, plus IBV_ACCESS_ON_DEMAND with ODP */
	bool odp;
	uint64_t budget;       /* bytes registered at once; UINT64_MAX: no limit */
	uint64_t max_mr_size;  /* from the device */
	uint64_t piece;        /* pin-all piece size */
	unsigned n;
	struct rdm_pin_reg *regs;

	/* on demand */
	struct rdm_pin_chunk lru; /* sentinel: lru.next is the most recent */
	uint64_t idle_seq;        /* every seq <= idle_seq has completed ... */
	bool idle_any;            /* ... once rdm_pin_idle_upto was called */

	struct rdm_pin_stats st;
};

int64_t rdm_pin_now_us(void);

/*
 * The verbs boundary: register / deregister [off, off+len) of region r.
 * Failures come back as -errno with err naming region, offset and length.
 * Neither touches p->st nor takes the lock: callers account.
 */
int rdm_pin_reg(const struct rdm_pin *p, unsigned r, uint64_t off, uint64_t len,
		struct ibv_mr **out, char *err, size_t errlen);
int rdm_pin_dereg(struct ibv_mr *mr);

void rdm_pin_account_add(struct rdm_pin *p, uint64_t len);

static inline void rdm_pin_key_of(const struct ibv_mr *mr, struct rdm_pin_key *key)
{
	key->addr = (uint64_t)(uintptr_t)mr->addr;
	key->len = mr->length;
	key->lkey = mr->lkey;
	key->rkey = mr->rkey;
}

/* pin_all.c: register every piece (p->pieces filled) or nothing; release them all. */
int rdm_pin_all_register(struct rdm_pin *p, uint64_t total, char *err, size_t errlen);
void rdm_pin_all_release(struct rdm_pin *p);

/* cache.c: on-demand mode; the caller holds p->lock. */
int rdm_pin_cache_get(struct rdm_pin *p, unsigned r, uint64_t off, struct rdm_pin_key *key,
		      char *err, size_t errlen);
bool rdm_pin_cache_has(const struct rdm_pin *p, unsigned r, uint64_t off);
void rdm_pin_cache_mark_busy(struct rdm_pin *p, unsigned r, uint64_t off, uint64_t seq);
int rdm_pin_cache_drop(struct rdm_pin *p, unsigned r, uint64_t off);
void rdm_pin_cache_destroy(struct rdm_pin *p);

#endif
