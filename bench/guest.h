/* SPDX-License-Identifier: MIT */
/*
 * A synthetic guest for rdmig-bench and the end-to-end tests: RAM blocks with a
 * page mix, workload threads that dirty pages at a set rate and log them like
 * KVM's dirty log, a pause switch (vm_stop / vm_start), a throttle, and a small
 * device state. Uses the public API only.
 */
#ifndef RDMIG_BENCH_GUEST_H
#define RDMIG_BENCH_GUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "rdmig/rdmig.h"
#include "track.h"

#ifdef __cplusplus
extern "C" {
#endif

enum guest_pattern {
	GUEST_RANDOM, /* uniform random pages */
	GUEST_SEQ,    /* a sequential sweep */
	GUEST_HOTSET, /* uniform random within the first hot_bytes */
};

struct guest_cfg {
	uint64_t ram_bytes;   /* split over nblocks blocks */
	unsigned nblocks;     /* >= 1; the first gets half, the rest share the other half */
	uint32_t page_size;
	unsigned zero_pct;    /* share of zero pages */
	unsigned text_pct;    /* share of compressible text pages; the rest random */
	uint64_t dirty_rate;  /* bytes/s dirtied by all threads together; 0 = idle */
	enum guest_pattern pattern;
	uint64_t hot_bytes;
	unsigned threads;     /* workload threads, >= 1 */
	uint64_t seed;
	uint32_t devstate_bytes; /* size of the device state blob */
	uint32_t save_ms;        /* the save is spread over this long (a slow device); 0 = at once */
	enum track_kind tracker; /* how the source's dirty log is kept */
	unsigned dest_readers;   /* destination: threads reading pages once its VM runs */
};

struct guest;

/*
 * Source guest: RAM filled with the mix, dirty log kept by cfg->tracker.
 * dest = true: same layout, all zero, no tracking. err says why on failure.
 */
int guest_create(const struct guest_cfg *cfg, bool dest, struct guest **out);
/* Why the last guest_create() failed, when it was the tracker. */
const char *guest_error(void);
void guest_destroy(struct guest *g);

/* rdmig_add_block() for every block (names ram0, ram1, ...). */
int guest_add_blocks(struct guest *g, rdmig_session *s);
/* Callbacks wired to this guest (opaque = g). */
void guest_callbacks(struct guest *g, struct rdmig_callbacks *cb);

int guest_start_workload(struct guest *g);
void guest_stop_workload(struct guest *g);

unsigned guest_nblocks(const struct guest *g);
uint64_t guest_block_len(const struct guest *g, unsigned i);
void *guest_block_ptr(const struct guest *g, unsigned i);
uint32_t guest_block_crc(const struct guest *g, unsigned i);
/* CRC32 of the device state this guest holds (saved or loaded). */
uint32_t guest_devstate_crc(const struct guest *g);

struct guest_counters {
	uint64_t pages_dirtied;
	unsigned throttle;     /* current % */
	unsigned max_throttle; /* highest % set */
	unsigned stops, starts;
	bool running;          /* not paused by vm_stop */
	bool devstate_loaded;
	uint64_t dest_reads;   /* pages the destination's readers touched */
};
void guest_counters(struct guest *g, struct guest_counters *c);
/* CPU seconds the workload threads used so far (to leave them out of the cost). */
double guest_workload_cpu_s(struct guest *g);

#ifdef __cplusplus
}
#endif

#endif
