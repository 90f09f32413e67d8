/* SPDX-License-Identifier: MIT */
/* rdmig-bench's report: a table for people, JSON for machines, a progress line. */
#ifndef RDMIG_BENCH_REPORT_H
#define RDMIG_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rdmig/rdmig.h"

struct bench_report {
	const char *transport;
	unsigned channels;
	uint64_t chunk;
	bool pin_all;
	uint64_t ram_bytes;
	uint64_t dirty_rate;
	const char *pattern;
	const char *tracker;
	struct rdmig_stats src;  /* source stats at the end */
	enum rdmig_status dest_status;
	double src_cpu_s;        /* migration CPU of the source (workload excluded) */
	double dest_cpu_s;       /* whole destination process */
	unsigned max_throttle;
	unsigned nblocks;
	unsigned blocks_verified; /* blocks whose CRC32 matched */
	bool devstate_verified;
	bool verified;            /* every block and the device state matched */
	bool postcopy;            /* --postcopy or --postcopy-after */
	struct rdmig_stats dst;   /* destination stats at the end */
	uint64_t dest_reads;      /* pages the destination's readers touched */
	unsigned recoveries;      /* --recover: postcopy recoveries that were started */
	double paused_ms;         /* ... and the time from each pause to postcopy-active again */
	double paused_at;         /* (bookkeeping: when the pause under way began, 0: none) */
	char error[256];
};

/* Throughput of the RAM phase in MiB/s (data bytes over time after setup). */
double bench_throughput_mibs(const struct bench_report *r);

void bench_print_table(FILE *f, const struct bench_report *r);
void bench_print_json(FILE *f, const struct bench_report *r);
/* One line, redrawn in place (\r), while the migration runs on a terminal. */
void bench_print_progress(FILE *f, const struct rdmig_stats *st, uint64_t ram_total);

#endif
