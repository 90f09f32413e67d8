/* SPDX-License-Identifier: MIT */
#include "report.h"

#define MIB (1024.0 * 1024.0)

double bench_throughput_mibs(const struct bench_report *r)
{
	uint64_t ms = r->src.total_time_ms - r->src.setup_time_ms;

	return ms ? (double)r->src.ram_transferred / MIB / ((double)ms / 1000.0) : 0.0;
}

/* Postcopy's pages were counted by whoever moved them: the source (tcp) or the destination's reads (rdma). */
static const struct rdmig_stats *mover(const struct bench_report *r)
{
	return r->src.postcopy_pages_pulled || r->src.postcopy_pages_pushed ? &r->src : &r->dst;
}

void bench_print_table(FILE *f, const struct bench_report *r)
{
	const struct rdmig_stats *s = &r->src;

	fprintf(f, "rdmig-bench: %s, %u channel%s, chunk %llu KiB%s, %.0f MiB RAM, "
		   "dirtying %.0f MiB/s (%s, tracked by %s)\n",
		r->transport, r->channels, r->channels == 1 ? "" : "s",
		(unsigned long long)(r->chunk >> 10), r->pin_all ? ", pin-all" : "",
		(double)r->ram_bytes / MIB, (double)r->dirty_rate / MIB, r->pattern, r->tracker);
	fprintf(f, "  %-22s %s\n", "status", rdmig_status_name(s->status));
	fprintf(f, "  %-22s %s\n", "destination", rdmig_status_name(r->dest_status));
	fprintf(f, "  %-22s %llu ms\n", "total time", (unsigned long long)s->total_time_ms);
	fprintf(f, "  %-22s %llu ms\n", "setup time", (unsigned long long)s->setup_time_ms);
	fprintf(f, "  %-22s %llu ms\n", "downtime", (unsigned long long)s->downtime_ms);
	fprintf(f, "  %-22s %llu\n", "iterations", (unsigned long long)s->dirty_sync_count);
	fprintf(f, "  %-22s %.1f MiB\n", "bytes sent", (double)s->ram_transferred / MIB);
	fprintf(f, "  %-22s %llu (%.1f MiB)\n", "pages sent as data",
		(unsigned long long)s->ram_normal, (double)s->ram_normal_bytes / MIB);
	fprintf(f, "  %-22s %llu\n", "zero pages (as runs)", (unsigned long long)s->ram_duplicate);
	fprintf(f, "  %-22s %.1f MiB/s\n", "throughput", bench_throughput_mibs(r));
	fprintf(f, "  %-22s %.2f s\n", "source CPU", r->src_cpu_s);
	fprintf(f, "  %-22s %.2f s\n", "destination CPU", r->dest_cpu_s);
	fprintf(f, "  %-22s %u %%\n", "throttle reached", r->max_throttle);
	if (r->postcopy) {
		const struct rdmig_stats *d = &r->dst;

		fprintf(f, "  %-22s %llu received, %llu sent by the destination\n",
			"postcopy requests", (unsigned long long)s->postcopy_requests,
			(unsigned long long)d->postcopy_requests);
		fprintf(f, "  %-22s %llu pulled, %llu pushed%s\n", "postcopy pages",
			(unsigned long long)mover(r)->postcopy_pages_pulled,
			(unsigned long long)mover(r)->postcopy_pages_pushed,
			mover(r) == d ? " (read by the destination)" : "");
		fprintf(f, "  %-22s %llu ms (destination threads, summed)\n", "blocktime",
			(unsigned long long)d->postcopy_blocktime_ms);
		fprintf(f, "  %-22s p50 %llu us, p99 %llu us, max %llu us\n", "fault latency",
			(unsigned long long)d->postcopy_latency_p50_us,
			(unsigned long long)d->postcopy_latency_p99_us,
			(unsigned long long)d->postcopy_latency_max_us);
		fprintf(f, "  %-22s %llu\n", "destination reads", (unsigned long long)r->dest_reads);
		if (r->recoveries)
			fprintf(f, "  %-22s %u, paused %.0f ms in all\n", "recoveries", r->recoveries,
				r->paused_ms);
	}
	fprintf(f, "  %-22s %s (%u/%u blocks CRC32, device state %s)\n", "memory verified",
		r->verified ? "yes" : "NO", r->blocks_verified, r->nblocks,
		r->devstate_verified ? "ok" : "differs");
	if (r->error[0])
		fprintf(f, "  %-22s %s\n", "error", r->error);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

void bench_print_json(FILE *f, const struct bench_report *r)
{
	const struct rdmig_stats *s = &r->src;

	fprintf(f, "{\"transport\": \"%s\", \"channels\": %u, \"chunk_size\": %llu, "
		   "\"pin_all\": %s, \"ram_bytes\": %llu, \"dirty_rate\": %llu, \"pattern\": \"%s\", "
		   "\"tracker\": \"%s\", ",
		r->transport, r->channels, (unsigned long long)r->chunk,
		r->pin_all ? "true" : "false", (unsigned long long)r->ram_bytes,
		(unsigned long long)r->dirty_rate, r->pattern, r->tracker);
	fprintf(f, "\"status\": \"%s\", \"dest_status\": \"%s\", \"total_time_ms\": %llu, "
		   "\"setup_time_ms\": %llu, \"downtime_ms\": %llu, \"iterations\": %llu, ",
		rdmig_status_name(s->status), rdmig_status_name(r->dest_status),
		(unsigned long long)s->total_time_ms, (unsigned long long)s->setup_time_ms,
		(unsigned long long)s->downtime_ms, (unsigned long long)s->dirty_sync_count);
	fprintf(f, "\"bytes_sent\": %llu, \"normal_pages\": %llu, \"normal_bytes\": %llu, "
		   "\"zero_pages\": %llu, \"throughput_mibs\": %.2f, \"src_cpu_s\": %.3f, "
		   "\"dest_cpu_s\": %.3f, \"max_throttle\": %u, \"verified\": %s, \"error\": ",
		(unsigned long long)s->ram_transferred, (unsigned long long)s->ram_normal,
		(unsigned long long)s->ram_normal_bytes, (unsigned long long)s->ram_duplicate,
		bench_throughput_mibs(r), r->src_cpu_s, r->dest_cpu_s, r->max_throttle,
		r->verified ? "true" : "false");
	json_str(f, r->error);
	fprintf(f, ", \"dest_setup_ms\": %llu, \"prefault_ms\": %llu, \"prefault_bytes\": %llu",
		(unsigned long long)r->dst.setup_time_ms, (unsigned long long)r->dst.prefault_time_ms,
		(unsigned long long)r->dst.prefault_bytes);
	if (r->postcopy)
		fprintf(f, ", \"postcopy\": {\"requests\": %llu, \"pulled\": %llu, \"pushed\": %llu, "
			   "\"blocktime_ms\": %llu, \"latency_p50_us\": %llu, \"latency_p99_us\": %llu, "
			   "\"latency_max_us\": %llu, \"dest_reads\": %llu, \"recoveries\": %u, "
			   "\"paused_ms\": %.0f}",
			(unsigned long long)r->dst.postcopy_requests,
			(unsigned long long)mover(r)->postcopy_pages_pulled,
			(unsigned long long)mover(r)->postcopy_pages_pushed,
			(unsigned long long)r->dst.postcopy_blocktime_ms,
			(unsigned long long)r->dst.postcopy_latency_p50_us,
			(unsigned long long)r->dst.postcopy_latency_p99_us,
			(unsigned long long)r->dst.postcopy_latency_max_us,
			(unsigned long long)r->dest_reads, r->recoveries, r->paused_ms);
	fprintf(f, "}\n");
}

void bench_print_progress(FILE *f, const struct rdmig_stats *st, uint64_t ram_total)
{
	double done = ram_total ? 1.0 - (double)st->ram_remaining / (double)ram_total : 0;
	char bar[31];
	int fill;

	if (done < 0)
		done = 0;
	fill = (int)(done * 30);
	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	fprintf(f, "\r%-14s [%s] %8.1f MiB left  %7.1f Mbit/s  iter %llu  dirty %llu p/s  thr %u%%  ",
		rdmig_status_name(st->status), bar, (double)st->ram_remaining / MIB, st->mbps,
		(unsigned long long)st->dirty_sync_count, (unsigned long long)st->dirty_pages_rate,
		st->cpu_throttle_percentage);
	fflush(f);
}
