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
	bool pc = st->status == RDMIG_STATUS_POSTCOPY_ACTIVE;

	if (!p->data)
		return;
	if (st->dirty_sync_count == p->last_sync && !(pc && t_s - p->last_t >= 0.1))
		return;
	p->last_sync = st->dirty_sync_count;
	p->last_t = t_s;
	p->postcopy |= st->postcopy_pages_pulled || st->postcopy_pages_pushed;
	fprintf(p->data, "%.3f %.2f %.3f %llu %llu %llu\n", t_s, st->mbps,
		(double)st->ram_remaining / (1024.0 * 1024.0),
		(unsigned long long)st->dirty_sync_count,
		(unsigned long long)st->postcopy_pages_pulled,
		(unsigned long long)st->postcopy_pages_pushed);
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
		"set terminal pngcairo size 900,%d font 'sans,10'\n"
		"set output '%s'\n"
		"%s"
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
		p->postcopy ? 800 : 500, png, p->postcopy ? "set multiplot layout 2,1\n" : "",
		title, p->data_path, p->data_path);
	if (p->postcopy)
		fprintf(g,
			"set title 'postcopy: pages sent'\n"
			"unset y2label\n"
			"unset y2tics\n"
			"set ylabel 'pages'\n"
			"set key top left\n"
			"plot '%s' using 1:5 with lines lw 2 title 'pulled (requested)', "
			"'%s' using 1:6 with lines lw 2 title 'pushed (background)'\n"
			"unset multiplot\n",
			p->data_path, p->data_path);
	ret = pclose(g);
	unlink(p->data_path);
	return ret == 0 ? 0 : -EIO;
}
