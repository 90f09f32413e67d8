/* SPDX-License-Identifier: MIT */
/*
 * rdmig-ceiling: what the library itself can feed a link, with no link. A
 * null transport completes every write and message at once, so a pass over
 * all-dirty RAM measures the source's own software path: the dirty-bitmap
 * scan, zero-page detection, splitting runs into writes and the stats. Printed
 * next to this machine's memory read bandwidth from the same run (one core, a
 * plain read loop): the physical limit of anything that reads RAM.
 *
 *   rdmig-ceiling [--ram MiB] [--rounds N]
 *
 * Cases (every page dirty, 1 MiB chunks): "data" (random bytes: each page is
 * checked for zero and found not to be), "zero" (all zero pages: each page is
 * read whole, then sent as a zero run), "no zero check" (data with
 * zero-page-detection off), "sparse" (one page in 64 dirty: the scan with
 * little to send). Work-request building inside the rdma transport is not
 * here: the null transport stands in for the whole transport.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/bitmap.h"
#include "core/ram.h"
#include "core/session.h"

/* ---- the null transport: every call done at once ---- */

static uint64_t null_bytes, null_writes;

static int null_write(struct rdm_tp *t, unsigned b, uint64_t off, uint64_t len)
{
	(void)t, (void)b, (void)off;
	null_bytes += len;
	null_writes++;
	return 0;
}

static int null_send(struct rdm_tp *t, const void *msg, size_t len)
{
	(void)t, (void)msg, (void)len;
	return 0;
}

static int null_fence(struct rdm_tp *t, uint64_t seq)
{
	(void)t, (void)seq;
	return 0;
}

static const struct rdm_tp_ops null_ops = {
	.name = "null", .write = null_write, .send = null_send, .fence = null_fence,
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One core reading len bytes: the loads of rdm_is_zero() (OR-ed, 64 bytes a
 * step) without its early exit, so it is the same code reading all of it.
 */
static double read_bw(const uint8_t *p, size_t len, unsigned rounds, uint64_t *sink)
{
	double best = 0;

	for (unsigned r = 0; r < rounds; r++) {
		const volatile uint64_t *w = (const volatile uint64_t *)p;
		uint64_t acc = 0;
		double t0 = now_s();

		for (size_t i = 0; i + 8 <= len / 8; i += 8)
			acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] |
			       w[i + 6] | w[i + 7];
		double dt = now_s() - t0;
		*sink += acc;
		if (len / dt > best)
			best = (double)len / dt;
	}
	return best;
}

/* The best of rounds passes of rdm_ram_send_dirty() over the bitmap fill() leaves. */
static int pass_bw(struct rdmig_session *s, unsigned rounds, unsigned every, double *bps,
		   double *covered_bps)
{
	struct rdm_block *b = &s->blocks[0];
	struct rdm_ram ram;
	double best = 0, best_cov = 0;
	int ret = rdm_ram_init(&ram, s);

	if (ret)
		return ret;
	for (unsigned r = 0; r < rounds && !ret; r++) {
		rdm_bitmap_clear_all(b->dirty, b->npages);
		for (uint64_t pg = 0; pg < b->npages; pg += every)
			rdm_bitmap_set_range(b->dirty, pg, 1);
		null_bytes = 0;
		double t0 = now_s();

		ret = rdm_ram_send_dirty(&ram);
		double dt = now_s() - t0;
		uint64_t fed = (b->npages + every - 1) / every * b->page_size;

		if (fed / dt > best)
			best = (double)fed / dt;
		if ((double)b->len / dt > best_cov)
			best_cov = (double)b->len / dt;
	}
	rdm_ram_fini(&ram);
	*bps = best;
	*covered_bps = best_cov;
	return ret;
}

int main(int argc, char **argv)
{
	uint64_t ram_mib = 512, sink = 0;
	unsigned rounds = 5;
	struct rdmig_callbacks cb = {0};
	struct rdmig_session *s;
	struct rdm_tp tp = {.ops = &null_ops};
	uint8_t *mem;
	int ret;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--ram"))
			ram_mib = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else {
			fprintf(stderr, "usage: rdmig-ceiling [--ram MiB] [--rounds N]\n");
			return 2;
		}
	}
	size_t len = ram_mib << 20;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* Touched before any timing: first-touch faults are not the library's. */
	srand(7);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
		memcpy(mem + i, &v, 8);
	}
	ret = rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, NULL, &s);
	if (!ret)
		ret = rdmig_add_block(s, "ram0", mem, len, 4096);
	if (!ret)
		ret = rdmig_set_capability(s, RDMIG_CAP_ZERO_PAGE_DETECTION, true);
	if (ret) {
		fprintf(stderr, "rdmig-ceiling: session: %s\n", strerror(-ret));
		return 1;
	}
	s->tp = &tp;
	s->ops = &null_ops;
	s->stats.ram_total = len;

	double mem_bw = read_bw(mem, len, rounds, &sink);
	double data, zero, nozero, sparse, cov, cov_zero, cov_sparse;

	ret = pass_bw(s, rounds, 1, &data, &cov);
	rdmig_set_capability(s, RDMIG_CAP_ZERO_PAGE_DETECTION, false);
	if (!ret)
		ret = pass_bw(s, rounds, 1, &nozero, &cov);
	rdmig_set_capability(s, RDMIG_CAP_ZERO_PAGE_DETECTION, true);
	if (!ret)
		ret = pass_bw(s, rounds, 64, &sparse, &cov_sparse);
	memset(mem, 0, len);
	double zmem_bw = read_bw(mem, len, rounds, &sink);
	if (!ret)
		ret = pass_bw(s, rounds, 1, &zero, &cov_zero);
	if (ret) {
		fprintf(stderr, "rdmig-ceiling: pass: %s\n", strerror(-ret));
		return 1;
	}
	printf("rdmig-ceiling: %llu MiB, one core, best of %u passes (GB = 10^9 bytes)\n",
	       (unsigned long long)ram_mib, rounds);
	printf("%-34s %9s %14s\n", "what", "GB/s", "x memory read");
	printf("%-34s %9.2f %14.2f\n", "memory read (one core)", mem_bw / 1e9, 1.0);
	printf("%-34s %9.2f %14.2f\n", "data pages, zero check", data / 1e9, data / mem_bw);
	printf("%-34s %9.2f %14.2f\n", "data pages, no zero check", nozero / 1e9, nozero / mem_bw);
	printf("%-34s %9.2f %14.2f\n", "zero pages (each read whole)", zero / 1e9, zero / zmem_bw);
	printf("%-34s %9.2f %14s\n", "sparse (1 page in 64): RAM scanned", cov_sparse / 1e9, "-");
	printf("%-34s %9.2f %14s\n", "sparse: dirty bytes fed", sparse / 1e9, "-");
	printf("{\"ram_mib\": %llu, \"mem_read_gbs\": %.3f, \"data_gbs\": %.3f, "
	       "\"data_nozero_gbs\": %.3f, \"zero_gbs\": %.3f, \"sparse_scan_gbs\": %.3f, "
	       "\"sparse_fed_gbs\": %.3f, \"sink\": %llu}\n",
	       (unsigned long long)ram_mib, mem_bw / 1e9, data / 1e9, nozero / 1e9, zero / 1e9,
	       cov_sparse / 1e9, sparse / 1e9, (unsigned long long)(sink & 1));
	s->tp = NULL;
	rdmig_session_destroy(s);
	munmap(mem, len);
	return 0;
}
