/* SPDX-License-Identifier: MIT */
/*
 * Memory registration for RDMA: which bytes of which block are registered
 * under which keys. Two modes:
 *  - pin-all: every block registered at create time, large blocks split into
 *    pieces registered by parallel threads; the memlock limit is checked first.
 *    Pieces are multiples of chunk_size (about four per thread), so a range
 *    inside one chunk is always inside one piece.
 *  - on demand: chunks (chunk_size, a power of two) registered on first use and
 *    kept in a cache bounded by a byte budget (RLIMIT_MEMLOCK by default);
 *    least recently used idle chunks are deregistered to make room.
 * ODP (IBV_ACCESS_ON_DEMAND) is used when asked and the device reports it.
 * Nothing here knows about migration: callers say when a chunk is busy.
 */
#ifndef RDMIG_PIN_PIN_H
#define RDMIG_PIN_PIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rdm_pin;

#define RDM_PIN_DEFAULT_CHUNK (1ull << 20) /* opts.chunk_size = 0 */

struct rdm_pin_region {
	void *addr;
	uint64_t len;
};

struct rdm_pin_opts {
	size_t size;          /* sizeof(struct rdm_pin_opts) */
	bool pin_all;
	uint64_t chunk_size;  /* on demand: unit of registration; pin-all: pieces are multiples */
	uint64_t budget;      /* bytes that may be registered at once; 0 = RLIMIT_MEMLOCK */
	int access;           /* IBV_ACCESS_* for every MR */
	unsigned threads;     /* pin-all: registration threads (0 = online CPUs up to 8; max 64) */
	bool try_odp;         /* use ODP when the device has it */
};

struct rdm_pin_key {
	uint64_t addr; /* address of the registered range that holds the bytes */
	uint64_t len;  /* its length */
	uint32_t lkey;
	uint32_t rkey;
};

/*
 * Register (pin-all) or prepare (on demand). Pin-all with a budget below the
 * total: -ENOMEM and err names the limit and the bytes needed, before anything
 * is pinned. ibv_reg_mr failures come back as -errno with the block named.
 */
int rdm_pin_create(struct ibv_pd *pd, const struct rdm_pin_region *regions, unsigned n,
		   const struct rdm_pin_opts *o, struct rdm_pin **out, char *err, size_t errlen);
/* Deregisters every MR: keys handed out before stop working. */
void rdm_pin_destroy(struct rdm_pin *p);

/*
 * Keys for the chunk (on demand) or piece (pin-all) holding [off, off+len) of
 * region r; len must not cross a chunk boundary. On demand this registers the
 * chunk if needed, evicting idle chunks over budget; -ENOSPC when every
 * registered chunk is busy and the budget is spent (the caller drains and tries
 * again), -ENOMEM when one chunk alone exceeds the budget.
 */
int rdm_pin_get(struct rdm_pin *p, unsigned r, uint64_t off, uint64_t len, struct rdm_pin_key *key,
		char *err, size_t errlen);

/* Is the chunk holding off registered now? (no side effect) */
bool rdm_pin_has(struct rdm_pin *p, unsigned r, uint64_t off);

/*
 * Busy tracking for on demand: a chunk marked busy with a sequence number is not
 * evicted until rdm_pin_idle_upto() reaches it (the caller's completions).
 * Marking a chunk that is not registered does nothing; a chunk keeps the highest
 * seq it was marked with; idle_upto never goes backwards. No-ops in pin-all.
 */
void rdm_pin_mark_busy(struct rdm_pin *p, unsigned r, uint64_t off, uint64_t seq);
void rdm_pin_idle_upto(struct rdm_pin *p, uint64_t seq);

/*
 * Deregister one chunk now (on demand), busy or not; 0 if it was not registered,
 * -EOPNOTSUPP in pin-all (pieces live until rdm_pin_destroy).
 */
int rdm_pin_drop(struct rdm_pin *p, unsigned r, uint64_t off);

struct rdm_pin_stats {
	uint64_t registered_bytes; /* now */
	uint64_t peak_bytes;
	uint64_t registrations, evictions;
	uint64_t reg_time_us;      /* time spent in ibv_reg_mr, wall clock */
	bool odp;
};
void rdm_pin_get_stats(const struct rdm_pin *p, struct rdm_pin_stats *st);

/* RLIMIT_MEMLOCK in bytes (UINT64_MAX when unlimited). */
uint64_t rdm_pin_memlock_limit(void);

#ifdef __cplusplus
}
#endif

#endif
