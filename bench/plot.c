/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plot.h"

int plot_open(struct plot *p)
{
	int fd;

	memset(p, 0, sizeof(*p));
	snprintf(p->data_path, sizeof(p->data_path), "/tmp/rdmig-plot-XXXXXX");
	fd = mkstemp(p->data_path);
	if (fd < 0)
		return -errno;
	p->data = fdopen(fd, "w");
	if (!p->data) {
		close(fd);
		unlink(p->data_path);
		return -errno;
	}
	p->last_sync = UINT64_MAX;
	return 0;
}

void plot_sample(struct plot *p, const struct rdmig_stats *st, double t_s)
{
	if (!p->data || st->dirty_sync_count == p->last_sync)
		return;
	p->last_sync = st->dirty_sync_count;
	fprintf(p->data, "%.3f %.2f %.3f %llu\n", t_s, st->mbps,
		(double)st->ram_remaining / (1024.0 * 1024.0),
		(unsigned long long)st->dirty_sync_count);
	p->points++;
}

int plot_finish(struct plot *p, const char *png, const char *title)
{
	FILE *g;
	int ret;

	if (!p->data)
		return -EINVAL;
	fclose(p->data);
	p->data = NULL;
	g = popen("gnuplot", "w");
	if (!g) {
		unlink(p->data_path);
		return -errno;
	}
	fprintf(g,
		"set terminal pngcairo size 900,500 font 'sans,10'\n"
		"set output '%s'\n"
		"set title '%s'\n"
		"set xlabel 'time (s)'\n"
		"set ylabel 'throughput (Mbit/s)'\n"
		"set y2label 'remaining (MiB)'\n"
		"set ytics nomirror\n"
		"set y2tics\n"
		"set grid\n"
		"set key top right\n"
		"plot '%s' using 1:2 axes x1y1 with linespoints lw 2 title 'throughput', "
		"'%s' using 1:3 axes x1y2 with linespoints lw 2 title 'bytes remaining'\n",
		png, title, p->data_path, p->data_path);
	ret = pclose(g);
	unlink(p->data_path);
	return ret == 0 ? 0 : -EIO;
}
