/* SPDX-License-Identifier: MIT */
/*
 * --plot: throughput and bytes remaining over time, one point per iteration,
 * by gnuplot; with postcopy a second panel: pages pulled on request and
 * pushed in the background, sampled every 100 ms while postcopy runs.
 */
#ifndef RDMIG_BENCH_PLOT_H
#define RDMIG_BENCH_PLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rdmig/rdmig.h"

struct plot {
	FILE *data;
	char data_path[64];
	uint64_t last_sync;
	double last_t;
	unsigned points;
	bool postcopy; /* a postcopy page was seen */
};

int plot_open(struct plot *p);
/* Adds a point when a new iteration (dirty sync) shows in st. */
void plot_sample(struct plot *p, const struct rdmig_stats *st, double t_s);
/* Draws png with gnuplot; returns 0 or -errno (gnuplot missing or failed). */
int plot_finish(struct plot *p, const char *png, const char *title);

#endif
