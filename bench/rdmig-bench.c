/* SPDX-License-Identifier: MIT */
/*
 * rdmig-bench: migrate a synthetic guest under a dirtying workload and report
 * what it cost. --role both (the default) forks the destination and verifies
 * every block by CRC32; --role source / --role dest run one side each.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"
#include "plot.h"
#include "report.h"
#include "tls.h"

#define MAX_BLOCKS 4096

struct bench {
	struct guest_cfg g;
	const char *transport, *host, *role, *pattern, *plot;
	const char *tls_psk, *tls_x509; /* --tls-psk FILE, --tls-x509 DIR */
	unsigned port;
	unsigned channels;
	uint64_t chunk, max_bw, downtime, timeout_s;
	bool pin_all, auto_converge, json, progress, prefault;
	/* Postcopy: rdmig_postcopy_start() after this many passes, or postcopy-after; 0 = off. */
	unsigned postcopy, postcopy_after;
	/* --postcopy-cut N: the source's link cut N pieces into the push; --recover: go on. */
	unsigned postcopy_cut;
	bool recover;
	/* Authentication: a secret (file, or random in --role both), the VM's uuid. */
	uint8_t secret[1024];
	size_t secret_len;
	uint8_t uuid[16];
	bool has_uuid;
};

/* What the destination tells the source side when both run here. */
struct dest_report {
	int status;
	unsigned nblocks;
	uint32_t devcrc;
	double cpu_s;
	char error[256];
	struct rdmig_stats st; /* its stats at the end (postcopy: blocktime, fault latency) */
	uint64_t reads;        /* pages its readers touched after its VM started */
	uint32_t crc[MAX_BLOCKS];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rdmig-bench [options]\n"
		"  --role both|source|dest   who runs here (both: fork the destination)\n"
		"  --transport tcp|rdma      (tcp)\n"
		"  --host ADDR --port N      address of the destination (127.0.0.1, port 0 = any)\n"
		"  --ram MiB --blocks N      guest RAM and how many blocks (256, 2)\n"
		"  --zero-pct P --text-pct P page mix (30, 10; the rest random)\n"
		"  --dirty-rate MiB/s        workload dirtying rate (64; 0 = paused guest)\n"
		"  --pattern random|seq|hotset  --hot MiB  --threads N\n"
		"  --channels N --chunk KiB --pin-all --max-bandwidth MiB/s\n"
		"  --prefault                destination: populate its RAM before the pages come\n"
		"  --downtime-limit ms --auto-converge --timeout s (300)\n"
		"  --postcopy N              switch to postcopy after N passes (both sides\n"
		"                            set postcopy-ram, the destination reads its RAM once\n"
		"                            it runs: --dest-readers threads, 2)\n"
		"  --postcopy-after N        let the source switch by itself after N passes that\n"
		"                            did not lower the expected downtime\n"
		"  --postcopy-cut N          cut the link N pieces into the postcopy push (fault\n"
		"                            point src-postcopy-cut: a -Dfault_injection=true build)\n"
		"  --recover                 --role both: when postcopy pauses, rdmig_postcopy_recover()\n"
		"                            on both sides over a new connection (times it)\n"
		"  --dirty-tracker coop|soft-dirty|uffd-wp  how the guest's dirty log is kept (coop)\n"
		"  --secret-file PATH        authenticate with the secret in PATH (16..1024 bytes),\n"
		"                            the same file on both sides; --role both: a random one\n"
		"  --uuid UUID               the VM's uuid; the destination refuses another (validate-uuid)\n"
		"  --tls-psk FILE            TLS with a PSK (FILE: IDENTITY:HEXKEY, as psktool writes)\n"
		"  --tls-x509 DIR            TLS with certificates (ca-cert.pem, server-*.pem,\n"
		"                            client-*.pem as QEMU's tls-creds-x509 lays them out)\n"
		"  --json                    print the report as JSON\n"
		"  --plot FILE.png           throughput and bytes remaining per iteration (gnuplot)\n");
}

/* The whole file is the secret; the library judges its length. */
static int read_secret(const char *path, struct bench *b)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	int c;

	if (!f) {
		fprintf(stderr, "rdmig-bench: --secret-file %s: %s\n", path, strerror(errno));
		return -errno;
	}
	n = fread(b->secret, 1, sizeof(b->secret), f);
	c = fgetc(f);
	fclose(f);
	if (c != EOF) {
		fprintf(stderr, "rdmig-bench: --secret-file %s: more than %zu bytes\n", path,
			sizeof(b->secret));
		return -EINVAL;
	}
	b->secret_len = n;
	return 0;
}

static int parse_uuid(const char *str, uint8_t out[16])
{
	unsigned n = 0;

	for (const char *p = str; *p; p++) {
		unsigned v;

		if (*p == '-' && (p - str == 8 || p - str == 13 || p - str == 18 || p - str == 23))
			continue;
		if (n == 32 || sscanf(p, "%1x", &v) != 1)
			return -EINVAL;
		out[n / 2] = (uint8_t)(n % 2 ? out[n / 2] | v : v << 4);
		n++;
	}
	return n == 32 && strlen(str) == 36 ? 0 : -EINVAL;
}

static int parse(int argc, char **argv, struct bench *b)
{
	static const struct option opts[] = {
		{"role", 1, 0, 'r'}, {"transport", 1, 0, 't'}, {"host", 1, 0, 'H'},
		{"port", 1, 0, 'p'}, {"ram", 1, 0, 'm'}, {"blocks", 1, 0, 'b'},
		{"zero-pct", 1, 0, 'z'}, {"text-pct", 1, 0, 'x'}, {"dirty-rate", 1, 0, 'd'},
		{"pattern", 1, 0, 'P'}, {"hot", 1, 0, 'o'}, {"threads", 1, 0, 'T'},
		{"channels", 1, 0, 'c'}, {"chunk", 1, 0, 'k'}, {"pin-all", 0, 0, 'A'},
		{"max-bandwidth", 1, 0, 'B'}, {"downtime-limit", 1, 0, 'D'},
		{"auto-converge", 0, 0, 'a'}, {"timeout", 1, 0, 'w'}, {"json", 0, 0, 'j'},
		{"dirty-tracker", 1, 0, 'y'}, {"plot", 1, 0, 'g'}, {"secret-file", 1, 0, 'S'},
		{"uuid", 1, 0, 'U'}, {"tls-psk", 1, 0, 'K'}, {"tls-x509", 1, 0, 'X'},
		{"prefault", 0, 0, 'F'}, {"postcopy", 1, 0, 'Q'}, {"postcopy-after", 1, 0, 'q'}, {"dest-readers", 1, 0, 'R'},
		{"postcopy-cut", 1, 0, 'C'}, {"recover", 0, 0, 'V'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		uint64_t v = optarg ? strtoull(optarg, NULL, 0) : 0;

		switch (c) {
		case 'r': b->role = optarg; break;
		case 't': b->transport = optarg; break;
		case 'H': b->host = optarg; break;
		case 'p': b->port = (unsigned)v; break;
		case 'm': b->g.ram_bytes = v << 20; break;
		case 'b': b->g.nblocks = (unsigned)v; break;
		case 'z': b->g.zero_pct = (unsigned)v; break;
		case 'x': b->g.text_pct = (unsigned)v; break;
		case 'd': b->g.dirty_rate = v << 20; break;
		case 'P': b->pattern = optarg; break;
		case 'o': b->g.hot_bytes = v << 20; break;
		case 'T': b->g.threads = (unsigned)v; break;
		case 'c': b->channels = (unsigned)v; break;
		case 'k': b->chunk = v << 10; break;
		case 'A': b->pin_all = true; break;
		case 'F': b->prefault = true; break;
		case 'B': b->max_bw = v << 20; break;
		case 'D': b->downtime = v; break;
		case 'a': b->auto_converge = true; break;
		case 'w': b->timeout_s = v; break;
		case 'j': b->json = true; break;
		case 'g': b->plot = optarg; break;
		case 'S':
			if (read_secret(optarg, b))
				return -EINVAL;
			break;
		case 'U':
			if (parse_uuid(optarg, b->uuid)) {
				fprintf(stderr, "rdmig-bench: --uuid wants 8-4-4-4-12 hex digits\n");
				return -EINVAL;
			}
			b->has_uuid = true;
			break;
		case 'Q': b->postcopy = (unsigned)v; break;
		case 'q': b->postcopy_after = (unsigned)v; break;
		case 'R': b->g.dest_readers = (unsigned)v; break;
		case 'C': b->postcopy_cut = (unsigned)v; break;
		case 'V': b->recover = true; break;
		case 'K': b->tls_psk = optarg; break;
		case 'X': b->tls_x509 = optarg; break;
		case 'y':
			if (track_from_name(optarg, &b->g.tracker)) {
				fprintf(stderr, "rdmig-bench: unknown dirty tracker %s\n", optarg);
				return -EINVAL;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: return -EINVAL;
		}
	}
	if (optind != argc || (strcmp(b->transport, "tcp") && strcmp(b->transport, "rdma")) ||
	    (strcmp(b->role, "both") && strcmp(b->role, "source") && strcmp(b->role, "dest"))) {
		fprintf(stderr, "rdmig-bench: bad arguments\n");
		return -EINVAL;
	}
	if (!strcmp(b->pattern, "seq"))
		b->g.pattern = GUEST_SEQ;
	else if (!strcmp(b->pattern, "hotset"))
		b->g.pattern = GUEST_HOTSET;
	else if (!strcmp(b->pattern, "random"))
		b->g.pattern = GUEST_RANDOM;
	else {
		fprintf(stderr, "rdmig-bench: unknown pattern %s\n", b->pattern);
		return -EINVAL;
	}
	/*
	 * Kernel trackers write-protect guest pages. ibv_reg_mr cannot pin a
	 * write-protected page, and clear_refs makes the next write copy a pinned
	 * page away from its MR: uffd-wp needs every page pinned before it arms
	 * (pin-all), soft-dirty cannot be used with rdma at all. rdmig_migrate()
	 * refuses both too; said here before the guest's RAM is built.
	 */
	if (!strcmp(b->transport, "rdma") && b->g.tracker == TRACK_SOFT_DIRTY) {
		fprintf(stderr, "rdmig-bench: soft-dirty tracking cannot be used with rdma "
				"(clear_refs copies pinned pages away from their registration); "
				"use --dirty-tracker uffd-wp --pin-all\n");
		return -EINVAL;
	}
	if (!strcmp(b->transport, "rdma") && b->g.tracker == TRACK_UFFD_WP && !b->pin_all) {
		fprintf(stderr, "rdmig-bench: uffd-wp tracking over rdma needs --pin-all "
				"(write-protected pages cannot be registered on demand)\n");
		return -EINVAL;
	}
	if (b->g.nblocks > MAX_BLOCKS) {
		fprintf(stderr, "rdmig-bench: at most %u blocks\n", MAX_BLOCKS);
		return -EINVAL;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double process_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int configure(rdmig_session *s, const struct bench *b, bool dest)
{
	int ret = 0;

	if (bench_tls_apply(s, dest, b->tls_psk, b->tls_x509, b->host))
		return -EINVAL;

	ret |= rdmig_set_parameter(s, RDMIG_PARAM_CHANNELS, b->channels);
	ret |= rdmig_set_parameter(s, RDMIG_PARAM_CHUNK_SIZE, b->chunk);
	ret |= rdmig_set_capability(s, RDMIG_CAP_RDMA_PIN_ALL, b->pin_all);
	ret |= rdmig_set_parameter(s, RDMIG_PARAM_MAX_BANDWIDTH, b->max_bw);
	ret |= rdmig_set_parameter(s, RDMIG_PARAM_DOWNTIME_LIMIT, b->downtime);
	ret |= rdmig_set_capability(s, RDMIG_CAP_AUTO_CONVERGE, b->auto_converge);
	if (b->postcopy || b->postcopy_after)
		ret |= rdmig_set_capability(s, RDMIG_CAP_POSTCOPY_RAM, true);
	if (dest && b->prefault)
		ret |= rdmig_set_capability(s, RDMIG_CAP_PREFAULT, true);
	if (!dest) {
		ret |= rdmig_set_parameter(s, RDMIG_PARAM_POSTCOPY_AFTER, b->postcopy_after);
		/* A VMM knows its device state's size: the downtime estimate counts it. */
		ret |= rdmig_set_parameter(s, RDMIG_PARAM_DEVICE_STATE_SIZE, b->g.devstate_bytes);
	}
	if (!ret && b->secret_len)
		ret = rdmig_set_secret(s, b->secret, b->secret_len);
	if (!ret && b->has_uuid)
		ret = rdmig_set_vm_uuid(s, b->uuid);
	if (ret)
		fprintf(stderr, "rdmig-bench: %s\n", rdmig_last_error(s));
	return ret ? -EINVAL : 0;
}

/* The destination side; reports through fd (or prints when fd < 0). */
static int run_dest(const struct bench *b, int fd)
{
	struct dest_report *r = calloc(1, sizeof(*r));
	struct guest_counters gc;
	struct rdmig_callbacks cb;
	enum rdmig_status st = RDMIG_STATUS_FAILED;
	rdmig_session *s = NULL;
	struct guest *g = NULL;
	char uri[300];
	uint16_t port = 0;
	int ret;

	if (!r)
		return -ENOMEM;
	ret = guest_create(&b->g, true, &g);
	if (ret)
		goto out;
	guest_callbacks(g, &cb);
	ret = rdmig_session_create(RDMIG_ROLE_DEST, &cb, g, &s);
	if (!ret)
		ret = guest_add_blocks(g, s);
	if (!ret)
		ret = configure(s, b, true);
	/* The destination checks the VM it takes in. */
	if (!ret && b->has_uuid)
		ret = rdmig_set_capability(s, RDMIG_CAP_VALIDATE_UUID, true);
	snprintf(uri, sizeof(uri), "%s:%s:%u", b->transport, b->host, b->port);
	if (!ret)
		ret = rdmig_incoming(s, uri);
	if (!ret)
		ret = rdmig_incoming_port(s, &port);
	if (ret) {
		snprintf(r->error, sizeof(r->error), "%s", s ? rdmig_last_error(s) : strerror(-ret));
		goto out;
	}
	if (fd >= 0 && write(fd, &port, sizeof(port)) != sizeof(port))
		goto out;
	if (fd < 0)
		printf("listening on %s:%s:%u\n", b->transport, b->host, port), fflush(stdout);
	ret = rdmig_wait(s, (int)b->timeout_s * 1000, &st);
	/* --recover: listen anew, and tell the source where (the pipe carries the port). */
	while (!ret && st == RDMIG_STATUS_POSTCOPY_PAUSED && b->recover && fd >= 0) {
		uint16_t again = 0;

		snprintf(uri, sizeof(uri), "%s:%s:0", b->transport, b->host);
		if (rdmig_postcopy_recover(s, uri) || rdmig_incoming_port(s, &again))
			fprintf(stderr, "rdmig-bench: destination recover: %s\n", rdmig_last_error(s));
		if (write(fd, &again, sizeof(again)) != sizeof(again) || !again)
			break;
		ret = rdmig_wait(s, (int)b->timeout_s * 1000, &st);
	}
	snprintf(r->error, sizeof(r->error), "%s", ret ? "timed out" : rdmig_last_error(s));
	r->nblocks = guest_nblocks(g);
	for (unsigned i = 0; i < r->nblocks; i++)
		r->crc[i] = guest_block_crc(g, i);
	r->devcrc = guest_devstate_crc(g);
	r->st.size = sizeof(r->st);
	rdmig_query(s, &r->st);
	guest_counters(g, &gc);
	r->reads = gc.dest_reads;
out:
	r->status = st;
	r->cpu_s = process_cpu_s();
	if (fd >= 0) {
		if (!port && write(fd, &port, sizeof(port)) != sizeof(port))
			ret = -EIO;
		if (write(fd, r, sizeof(*r)) != sizeof(*r))
			ret = -EIO;
	} else {
		printf("destination: %s%s%s\n", rdmig_status_name(st), r->error[0] ? ": " : "",
		       r->error);
		for (unsigned i = 0; i < r->nblocks; i++)
			printf("  ram%u crc32 %08x\n", i, r->crc[i]);
	}
	rdmig_session_destroy(s);
	guest_destroy(g);
	free(r);
	return st == RDMIG_STATUS_COMPLETED ? 0 : 1;
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n <= 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The source paused in postcopy: the destination's new port comes down the pipe, then recover. */
static int recover_source(rdmig_session *s, const struct bench *b, int fd,
			  struct bench_report *rep)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	uint16_t port = 0;
	char uri[300];

	if (!rep->paused_at)
		rep->paused_at = now_s();
	/* The destination pauses by itself within its peer timeout, then listens anew. */
	if (poll(&pfd, 1, (int)b->timeout_s * 1000) != 1 || read_full(fd, &port, sizeof(port)) ||
	    !port) {
		fprintf(stderr, "rdmig-bench: the destination gave no port to recover on\n");
		return -EIO;
	}
	snprintf(uri, sizeof(uri), "%s:%s:%u", b->transport, b->host, port);
	if (rdmig_postcopy_recover(s, uri)) {
		fprintf(stderr, "rdmig-bench: recover %s: %s\n", uri, rdmig_last_error(s));
		return -EIO;
	}
	rep->recoveries++;
	return 0;
}

static int run_source(const struct bench *b, uint16_t port, int fd, pid_t child)
{
	struct bench_report rep = {.transport = b->transport, .channels = b->channels,
				   .chunk = b->chunk, .pin_all = b->pin_all,
				   .ram_bytes = b->g.ram_bytes, .dirty_rate = b->g.dirty_rate,
				   .pattern = b->pattern, .tracker = track_name(b->g.tracker),
				   .dest_status = RDMIG_STATUS_NONE};
	struct dest_report *dr = calloc(1, sizeof(*dr));
	struct rdmig_callbacks cb;
	rdmig_session *s = NULL;
	struct guest *g = NULL;
	enum rdmig_status st;
	struct guest_counters gc;
	struct plot plot = {0};
	char uri[300];
	double cpu0, t0 = 0;
	bool switched = false;
	int ret;

	if (!dr)
		return -ENOMEM;
	rep.postcopy = b->postcopy || b->postcopy_after;
	ret = guest_create(&b->g, false, &g);
	if (ret) {
		fprintf(stderr, "rdmig-bench: cannot create the guest: %s\n",
			guest_error()[0] ? guest_error() : strerror(-ret));
		goto out;
	}
	guest_callbacks(g, &cb);
	ret = rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, g, &s);
	if (!ret)
		ret = guest_add_blocks(g, s);
	if (!ret)
		ret = configure(s, b, false);
	if (!ret)
		ret = guest_start_workload(g);
	snprintf(uri, sizeof(uri), "%s:%s:%u", b->transport, b->host, port);
	cpu0 = process_cpu_s();
	if (!ret && b->plot && plot_open(&plot))
		fprintf(stderr, "rdmig-bench: cannot record the plot data\n");
	/* Read by the library at its first fault point: set before the session runs. */
	if (!ret && b->postcopy_cut) {
		char f[48];

		snprintf(f, sizeof(f), "src-postcopy-cut@%u", b->postcopy_cut);
		setenv("RDMIG_FAULT", f, 1);
	}
	t0 = now_s();
	if (!ret)
		ret = rdmig_migrate(s, uri);
	if (ret) {
		fprintf(stderr, "rdmig-bench: migrate %s: %s\n", uri, s ? rdmig_last_error(s) : "");
		goto out;
	}
	/* Polled often enough to see each iteration for the plot. */
	for (;;) {
		struct rdmig_stats now = RDMIG_STATS_INIT;

		/* Finer while recovering: the pause is timed at this grain. */
		if (rdmig_wait(s, b->plot || rep.paused_at ? 20 : 200, &st) != -ETIMEDOUT) {
			if (st != RDMIG_STATUS_POSTCOPY_PAUSED || !b->recover || fd < 0 ||
			    recover_source(s, b, fd, &rep))
				break;
			continue;
		}
		rdmig_query(s, &now);
		if (rep.paused_at && now.status == RDMIG_STATUS_POSTCOPY_ACTIVE) {
			rep.paused_ms += (now_s() - rep.paused_at) * 1000.0;
			rep.paused_at = 0;
		}
		plot_sample(&plot, &now, now_s() - t0);
		/* --postcopy N: like an operator's migrate-start-postcopy once N passes went. */
		if (b->postcopy && !switched && now.dirty_sync_count >= b->postcopy &&
		    now.status == RDMIG_STATUS_ACTIVE) {
			if (rdmig_postcopy_start(s))
				fprintf(stderr, "rdmig-bench: postcopy-start: %s\n", rdmig_last_error(s));
			switched = true;
		}
		if (b->progress)
			bench_print_progress(stderr, &now, b->g.ram_bytes);
	}
	if (rep.paused_at) {
		rep.paused_ms += (now_s() - rep.paused_at) * 1000.0;
		rep.paused_at = 0;
	}
	if (b->progress)
		fprintf(stderr, "\n");
	rep.src.size = sizeof(rep.src);
	rdmig_query(s, &rep.src);
	plot_sample(&plot, &rep.src, now_s() - t0);
	rep.src_cpu_s = process_cpu_s() - cpu0 - guest_workload_cpu_s(g);
	guest_stop_workload(g);
	guest_counters(g, &gc);
	rep.max_throttle = gc.max_throttle;
	rep.nblocks = guest_nblocks(g);
	if (st != RDMIG_STATUS_COMPLETED)
		snprintf(rep.error, sizeof(rep.error), "%s", rdmig_last_error(s));
	if (fd >= 0 && read_full(fd, dr, sizeof(*dr)) == 0) {
		rep.dest_status = dr->status;
		rep.dest_cpu_s = dr->cpu_s;
		rep.dst = dr->st;
		rep.dest_reads = dr->reads;
		for (unsigned i = 0; i < rep.nblocks && i < dr->nblocks; i++)
			rep.blocks_verified += guest_block_crc(g, i) == dr->crc[i];
		rep.devstate_verified = dr->devcrc == guest_devstate_crc(g);
		if (!rep.error[0] && dr->status != RDMIG_STATUS_COMPLETED)
			snprintf(rep.error, sizeof(rep.error), "destination: %.200s", dr->error);
	}
	rep.verified = st == RDMIG_STATUS_COMPLETED && rep.dest_status == RDMIG_STATUS_COMPLETED &&
		       rep.blocks_verified == rep.nblocks && rep.devstate_verified;
	if (b->json)
		bench_print_json(stdout, &rep);
	else
		bench_print_table(stdout, &rep);
	if (b->plot) {
		char title[160];

		snprintf(title, sizeof(title), "rdmig %s, %u channels, %.0f MiB, dirtying %.0f MiB/s",
			 b->transport, b->channels, (double)b->g.ram_bytes / 1048576.0,
			 (double)b->g.dirty_rate / 1048576.0);
		if (plot_finish(&plot, b->plot, title))
			fprintf(stderr, "rdmig-bench: gnuplot could not draw %s\n", b->plot);
	}
	ret = rep.verified || (fd < 0 && st == RDMIG_STATUS_COMPLETED) ? 0 : 1;
out:
	if (child > 0)
		waitpid(child, NULL, 0);
	rdmig_session_destroy(s);
	guest_destroy(g);
	free(dr);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct bench b = {
		.g = {.ram_bytes = 256ull << 20, .nblocks = 2, .page_size = 4096, .zero_pct = 30,
		      .text_pct = 10, .dirty_rate = 64ull << 20, .threads = 1, .seed = 7,
		      .hot_bytes = 16ull << 20, .devstate_bytes = 1 << 20},
		.transport = "tcp", .host = "127.0.0.1", .role = "both", .pattern = "random",
		.channels = 2, .chunk = 1u << 20, .downtime = 300, .timeout_s = 300,
	};
	uint16_t port = 0;
	int p[2];
	pid_t child;

	if (parse(argc, argv, &b)) {
		usage(stderr);
		return 2;
	}
	b.progress = isatty(STDERR_FILENO) && !b.json;
	/* A destination that runs first must touch its RAM, or no page is ever pulled. */
	if ((b.postcopy || b.postcopy_after) && !b.g.dest_readers)
		b.g.dest_readers = 2;
	if (b.recover && strcmp(b.role, "both")) {
		fprintf(stderr, "rdmig-bench: --recover needs --role both (the new port goes by pipe)\n");
		return 2;
	}
	if (!strcmp(b.role, "dest"))
		return run_dest(&b, -1);
	if (!strcmp(b.role, "source")) {
		if (!b.port) {
			fprintf(stderr, "rdmig-bench: --role source needs --port\n");
			return 2;
		}
		return run_source(&b, (uint16_t)b.port, -1, -1);
	}
	/* Both sides here: a fresh random secret, so the demo is authenticated. */
	if (!b.secret_len) {
		if (getrandom(b.secret, 32, 0) != 32) {
			fprintf(stderr, "rdmig-bench: getrandom: %s\n", strerror(errno));
			return 1;
		}
		b.secret_len = 32;
	}
	if (pipe(p))
		return 1;
	fflush(NULL);
	child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		close(p[0]);
		/* A source that dies (or is killed) takes its destination with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		_exit(run_dest(&b, p[1]));
	}
	close(p[1]);
	if (read_full(p[0], &port, sizeof(port)) || !port) {
		struct dest_report dr;

		if (!read_full(p[0], &dr, sizeof(dr)))
			fprintf(stderr, "rdmig-bench: destination: %s\n", dr.error);
		waitpid(child, NULL, 0);
		return 1;
	}
	return run_source(&b, port, p[0], child);
}
