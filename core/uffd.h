/* SPDX-License-Identifier: MIT */
/*
 * Postcopy's destination memory: userfaultfd in missing mode over the RAM
 * blocks (anonymous or shared memory, 4 KiB pages or hugetlb 2 MiB pages).
 * A thread of its own reads the faults; the first fault on a page not yet
 * here goes to the caller's callback (an urgent request to the source),
 * later faults on it only wait. Pages land with rdm_uffd_place() (one
 * UFFDIO_COPY, which wakes every thread waiting on them); the received map
 * says which pages are here (postcopy recovery sends it back to the source).
 *
 * Blocktime (QEMU's postcopy-blocktime): for each faulting thread, the time
 * from its fault to the page's arrival; the total is their sum. Fault latency
 * is measured from the fault's read to the page's arrival.
 */
#ifndef RDMIG_CORE_UFFD_H
#define RDMIG_CORE_UFFD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RDM_UFFD_MAX_THREADS 64 /* faulting threads with their own blocktime */

struct rdm_uffd;

struct rdm_uffd_region {
	void *host;         /* page_size aligned; its pages must not have been touched */
	uint64_t len;       /* a multiple of page_size */
	uint64_t page_size; /* the mapping's page: 4 KiB, or 2 MiB for hugetlb */
};

/*
 * The fault thread calls this once per missing page, with no lock held; it
 * must not block for long (queue a request and return).
 */
typedef void (*rdm_uffd_fault_fn)(void *opaque, unsigned region, uint64_t page);

/* Whether this process can open a userfaultfd here (-errno with the reason in err). */
int rdm_uffd_can_open(char *err, size_t errlen);

/* Registers every region (missing mode) and starts the fault thread. */
int rdm_uffd_create(const struct rdm_uffd_region *rg, unsigned n, rdm_uffd_fault_fn fn,
		    void *opaque, struct rdm_uffd **out, char *err, size_t errlen);
/* Stops the fault thread and unregisters; pages not placed read as zero afterwards. */
void rdm_uffd_destroy(struct rdm_uffd *u);

/*
 * Pages [page, page + n) of a region arrive with the bytes at src (n pages
 * of that region's page size). Pages already here are left as they are
 * (the first copy wins). Any thread; returns 0 or -errno.
 */
int rdm_uffd_place(struct rdm_uffd *u, unsigned region, uint64_t page, uint64_t n,
		   const void *src);
/* The same for pages of zeros. */
int rdm_uffd_place_zero(struct rdm_uffd *u, unsigned region, uint64_t page, uint64_t n);

/*
 * Before the destination runs: pages [page, page + n) are stale (dirtied on
 * the source since they were sent): dropped, so that the next touch faults.
 */
int rdm_uffd_discard(struct rdm_uffd *u, unsigned region, uint64_t page, uint64_t n);

/* Whether the page is here; the whole received map of a region (one bit a page). */
int rdm_uffd_has(struct rdm_uffd *u, unsigned region, uint64_t page);
int rdm_uffd_received(struct rdm_uffd *u, unsigned region, uint64_t *map, uint64_t nwords);

/*
 * Every page a fault asked for that has not arrived, told to the callback
 * again (a request lost with a link); returns how many.
 */
int rdm_uffd_reask(struct rdm_uffd *u);

struct rdm_uffd_thread_time {
	uint32_t tid;
	uint64_t blocktime_us;
};

struct rdm_uffd_stats {
	uint64_t faults;            /* fault events read (every waiting thread counts) */
	uint64_t requests;          /* first faults on a missing page: callbacks made */
	uint64_t pages_placed;      /* pages that arrived (by fault or pushed) */
	uint64_t blocktime_us;      /* summed over the faulting threads */
	uint64_t latency_p50_us;    /* fault read to page arrival, over the resolved faults */
	uint64_t latency_p99_us;
	uint64_t latency_max_us;
	unsigned nthreads;          /* entries in threads[] */
	struct rdm_uffd_thread_time threads[RDM_UFFD_MAX_THREADS];
};

void rdm_uffd_get_stats(struct rdm_uffd *u, struct rdm_uffd_stats *st);

#ifdef __cplusplus
}
#endif

#endif
