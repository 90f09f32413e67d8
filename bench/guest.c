/* SPDX-License-Identifier: MIT */
/* The synthetic guest (see guest.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <zlib.h>

#include "guest.h"

#define GUEST_MAX_THREADS 16

struct gblock {
	uint8_t *host;
	uint64_t len, npages;
	_Atomic uint64_t *log; /* pages written since the last dirty_log call */
};

struct worker {
	struct guest *g;
	pthread_t thread;
	unsigned idx;
	atomic_bool in_write; /* with g->paused: a Dekker pair, see cb_vm_stop() */
	double cpu_s;         /* CPU time of a joined worker */
	uint64_t rng;
};

struct guest {
	struct guest_cfg cfg;
	struct gblock *blocks;
	unsigned nblocks;
	uint64_t total_pages;

	struct worker workers[GUEST_MAX_THREADS];
	/* Destination: readers, started with the VM (postcopy: they fault on missing pages). */
	pthread_t readers[GUEST_MAX_THREADS];
	unsigned nreaders;
	atomic_bool stop_readers;
	_Atomic uint64_t reads;
	atomic_bool stop_workers;
	atomic_bool paused;
	bool workload_running;

	atomic_uint throttle;
	atomic_uint max_throttle;
	atomic_uint stops, starts;
	_Atomic uint64_t dirtied;

	uint8_t *devstate;
	uint32_t devstate_len;
	bool devstate_loaded;
	bool dest;
	bool tracked;   /* source with a library tracker: the workload logs nothing */
	bool hold_was;  /* paused before the library's hold(true) */
};

static char last_error[256];

const char *guest_error(void)
{
	return last_error;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static void fill_page(struct guest *g, uint8_t *p, uint64_t gpage)
{
	static const char words[] = "migration dirty page bitmap remote write queue pair ";
	uint64_t h = mix(gpage ^ g->cfg.seed), r = h | 1;
	unsigned kind = (unsigned)(h % 100);

	if (kind < g->cfg.zero_pct)
		return;
	if (kind < g->cfg.zero_pct + g->cfg.text_pct) {
		for (uint32_t i = 0; i < g->cfg.page_size; i++)
			p[i] = (uint8_t)words[(i + gpage) % (sizeof(words) - 1)];
		return;
	}
	for (uint32_t i = 0; i < g->cfg.page_size; i += 8) {
		uint64_t v = xorshift(&r);

		memcpy(p + i, &v, 8);
	}
}

static int cb_hold(void *opaque, bool hold);

/* Block i with the library's tracker on a tracked source, plain otherwise. */
static int add_block(struct guest *g, rdmig_session *s, unsigned i, const char *name)
{
	struct rdmig_block_opts o = RDMIG_BLOCK_OPTS_INIT;

	o.name = name;
	o.host = g->blocks[i].host;
	o.length = g->blocks[i].len;
	o.page_size = g->cfg.page_size;
	o.tracker = g->tracked ? track_to_rdmig(g->cfg.tracker) : RDMIG_TRACK_NONE;
	o.hold = cb_hold;
	o.hold_opaque = g;
	return rdmig_add_block_opts(s, &o);
}

/* Can this kernel keep the tracker's log? Asked of a throwaway session. */
static int probe_tracker(struct guest *g)
{
	struct rdmig_callbacks cb = {.size = sizeof(cb)};
	rdmig_session *s;
	int ret;

	ret = rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, g, &s);
	if (ret)
		return ret;
	ret = add_block(g, s, 0, "probe");
	if (ret)
		snprintf(last_error, sizeof(last_error), "%s", rdmig_last_error(s));
	rdmig_session_destroy(s);
	return ret;
}

int guest_create(const struct guest_cfg *cfg, bool dest, struct guest **out)
{
	struct guest *g;
	uint64_t gpage = 0;
	int ret = -ENOMEM;

	if (!cfg->nblocks || !cfg->page_size || cfg->ram_bytes < (uint64_t)cfg->page_size * cfg->nblocks * 2 ||
	    cfg->threads > GUEST_MAX_THREADS || cfg->zero_pct + cfg->text_pct > 100)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->cfg = *cfg;
	if (!g->cfg.threads)
		g->cfg.threads = 1;
	g->blocks = calloc(cfg->nblocks, sizeof(*g->blocks));
	if (!g->blocks)
		goto err_guest;
	for (unsigned i = 0; i < cfg->nblocks; i++) {
		struct gblock *b = &g->blocks[i];
		uint64_t pages = cfg->ram_bytes / cfg->page_size;
		uint64_t first = cfg->nblocks == 1 ? pages : pages / 2;
		uint64_t np = i == 0 ? first : (pages - first) / (cfg->nblocks - 1);

		b->npages = np;
		b->len = np * cfg->page_size;
		b->host = mmap(NULL, b->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (b->host == MAP_FAILED) {
			b->host = NULL;
			goto err_blocks;
		}
		b->log = calloc((np + 63) / 64, sizeof(uint64_t));
		if (!b->log)
			goto err_blocks;
		g->nblocks++;
		for (uint64_t p = 0; !dest && p < np; p++)
			fill_page(g, b->host + p * cfg->page_size, gpage + p);
		gpage += np;
	}
	g->total_pages = gpage;
	g->devstate_len = cfg->devstate_bytes;
	g->devstate = calloc(1, g->devstate_len ? g->devstate_len : 1);
	if (!g->devstate)
		goto err_blocks;
	if (!dest) {
		uint64_t r = cfg->seed | 1;

		for (uint32_t i = 0; i < g->devstate_len; i++)
			g->devstate[i] = (uint8_t)xorshift(&r);
	}
	atomic_store(&g->paused, false);
	g->dest = dest;
	g->tracked = !dest && cfg->tracker != TRACK_COOP;
	if (g->tracked) {
		ret = probe_tracker(g);
		if (ret) {
			free(g->devstate);
			goto err_blocks;
		}
	}
	*out = g;
	return 0;

err_blocks:
	for (unsigned i = 0; i < cfg->nblocks; i++) {
		if (g->blocks[i].host)
			munmap(g->blocks[i].host, g->blocks[i].len);
		free((void *)g->blocks[i].log);
	}
	free(g->blocks);
err_guest:
	free(g);
	return ret;
}

static void stop_readers(struct guest *g)
{
	atomic_store(&g->stop_readers, true);
	for (unsigned i = 0; i < g->nreaders; i++)
		pthread_join(g->readers[i], NULL);
	g->nreaders = 0;
}

void guest_destroy(struct guest *g)
{
	if (!g)
		return;
	guest_stop_workload(g);
	stop_readers(g);
	for (unsigned i = 0; i < g->nblocks; i++) {
		munmap(g->blocks[i].host, g->blocks[i].len);
		free((void *)g->blocks[i].log);
	}
	free(g->blocks);
	free(g->devstate);
	free(g);
}

int guest_add_blocks(struct guest *g, rdmig_session *s)
{
	char name[32];
	int ret;

	for (unsigned i = 0; i < g->nblocks; i++) {
		snprintf(name, sizeof(name), "ram%u", i);
		ret = add_block(g, s, i, name);
		if (ret)
			return ret;
	}
	return 0;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

	nanosleep(&ts, NULL);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t pick_page(struct worker *w, uint64_t *seq)
{
	struct guest *g = w->g;
	uint64_t hot = g->cfg.hot_bytes / g->cfg.page_size;

	switch (g->cfg.pattern) {
	case GUEST_SEQ:
		return (*seq)++ % g->total_pages;
	case GUEST_HOTSET:
		if (hot && hot < g->total_pages)
			return xorshift(&w->rng) % hot;
		/* fall through */
	case GUEST_RANDOM:
	default:
		return xorshift(&w->rng) % g->total_pages;
	}
}

/*
 * A real guest's writes happen in guest mode, where no sanitizer sees them; so
 * must ours: TSan would report every write racing with the migration reading
 * RAM, which is live migration itself (the dirty log, not a lock, orders them).
 */
#ifdef __SANITIZE_THREAD__
#define GUEST_RAM_WRITE __attribute__((no_sanitize_thread, noinline))
#else
#define GUEST_RAM_WRITE
#endif

/* Write into one page, then log it: the log must never run ahead of the data. */
GUEST_RAM_WRITE static void dirty_page(struct guest *g, uint64_t gpage, uint64_t val)
{
	unsigned bi = 0;

	while (gpage >= g->blocks[bi].npages)
		gpage -= g->blocks[bi++].npages;
	struct gblock *b = &g->blocks[bi];
	uint8_t *p = b->host + gpage * g->cfg.page_size;
	uint64_t off = (val % (g->cfg.page_size / 64)) * 64;

	for (unsigned i = 0; i < 8; i++)
		memcpy(p + off + i * 8, &val, 8);
	if (!g->tracked)
		atomic_fetch_or_explicit(&b->log[gpage / 64], 1ull << (gpage % 64),
					 memory_order_release);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct guest *g = w->g;
	uint64_t seq = w->idx * (g->total_pages / g->cfg.threads), batch = 16;
	uint64_t per_thread = g->cfg.dirty_rate / g->cfg.threads / g->cfg.page_size;
	uint64_t t = now_ns();

	if (!per_thread)
		per_thread = 1;
	while (!atomic_load(&g->stop_workers)) {
		unsigned thr = atomic_load(&g->throttle);
		uint64_t rate = per_thread * (100 - thr) / 100;

		atomic_store(&w->in_write, true);
		if (atomic_load(&g->paused)) {
			atomic_store(&w->in_write, false);
			sleep_ns(1000000);
			t = now_ns();
			continue;
		}
		for (uint64_t i = 0; i < batch; i++)
			dirty_page(g, pick_page(w, &seq), xorshift(&w->rng));
		atomic_store(&w->in_write, false);
		atomic_fetch_add(&g->dirtied, batch);
		/* Pace to the rate: a throttled vCPU sleeps the rest of its slice. */
		t += batch * 1000000000ull / (rate ? rate : 1);
		uint64_t n = now_ns();
		if (t > n)
			sleep_ns(t - n);
		else if (n - t > 100000000ull)
			t = n; /* do not bank more than 100 ms of lag */
	}
	return NULL;
}

int guest_start_workload(struct guest *g)
{
	if (!g->cfg.dirty_rate || g->workload_running)
		return 0;
	atomic_store(&g->stop_workers, false);
	for (unsigned i = 0; i < g->cfg.threads; i++) {
		struct worker *w = &g->workers[i];

		w->g = g;
		w->idx = i;
		w->rng = mix(g->cfg.seed + i + 1) | 1;
		if (pthread_create(&w->thread, NULL, worker_main, w)) {
			atomic_store(&g->stop_workers, true);
			while (i--)
				pthread_join(g->workers[i].thread, NULL);
			return -EAGAIN;
		}
	}
	g->workload_running = true;
	return 0;
}

static double thread_cpu_s(pthread_t t)
{
	struct timespec ts;
	clockid_t cid;

	if (pthread_getcpuclockid(t, &cid) || clock_gettime(cid, &ts))
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double guest_workload_cpu_s(struct guest *g)
{
	double s = 0;

	for (unsigned i = 0; i < g->cfg.threads; i++)
		s += g->workload_running ? thread_cpu_s(g->workers[i].thread) : g->workers[i].cpu_s;
	return s;
}

void guest_stop_workload(struct guest *g)
{
	if (!g->workload_running)
		return;
	atomic_store(&g->stop_workers, true);
	for (unsigned i = 0; i < g->cfg.threads; i++) {
		g->workers[i].cpu_s = thread_cpu_s(g->workers[i].thread);
		pthread_join(g->workers[i].thread, NULL);
	}
	g->workload_running = false;
}

/* Hold every writer out of guest memory (a Dekker pair with worker_main). */
static void hold_writers(struct guest *g)
{
	atomic_store(&g->paused, true);
	for (unsigned i = 0; g->workload_running && i < g->cfg.threads; i++)
		while (atomic_load(&g->workers[i].in_write))
			sleep_ns(10000);
}

static int cb_dirty_log(void *opaque, unsigned block, uint64_t *bitmap, uint64_t npages)
{
	struct guest *g = opaque;
	struct gblock *b;

	if (block >= g->nblocks || npages != g->blocks[block].npages)
		return -EINVAL;
	b = &g->blocks[block];
	for (uint64_t w = 0; w < (npages + 63) / 64; w++) {
		if (atomic_load_explicit(&b->log[w], memory_order_relaxed))
			bitmap[w] |= atomic_exchange_explicit(&b->log[w], 0, memory_order_acquire);
	}
	return 0;
}

/* Once this returns no worker writes guest memory until guest resumes. */
static int cb_vm_stop(void *opaque)
{
	struct guest *g = opaque;

	hold_writers(g);
	atomic_fetch_add(&g->stops, 1);
	return 0;
}

/* The library's soft-dirty sync: the vCPUs held briefly, then as they were. */
static int cb_hold(void *opaque, bool hold)
{
	struct guest *g = opaque;

	if (hold) {
		g->hold_was = atomic_load(&g->paused);
		hold_writers(g);
	} else {
		atomic_store(&g->paused, g->hold_was);
	}
	return 0;
}

/* A vCPU of the destination: one byte of a random page at a time, read only. */
static void *reader_main(void *arg)
{
	struct guest *g = arg;
	uint64_t rng = mix(g->cfg.seed + (uint64_t)(uintptr_t)&rng) | 1;

	while (!atomic_load(&g->stop_readers)) {
		uint64_t gpage = xorshift(&rng) % g->total_pages;
		unsigned bi = 0;

		while (gpage >= g->blocks[bi].npages)
			gpage -= g->blocks[bi++].npages;
		(void)*(volatile uint8_t *)(g->blocks[bi].host + gpage * g->cfg.page_size);
		atomic_fetch_add_explicit(&g->reads, 1, memory_order_relaxed);
	}
	return NULL;
}

static int cb_vm_start(void *opaque)
{
	struct guest *g = opaque;

	/* Called once per run on a destination; the session thread is the only caller. */
	while (g->dest && g->nreaders < g->cfg.dest_readers && g->nreaders < GUEST_MAX_THREADS) {
		if (pthread_create(&g->readers[g->nreaders], NULL, reader_main, g))
			break;
		g->nreaders++;
	}
	atomic_store(&g->paused, false);
	atomic_fetch_add(&g->starts, 1);
	return 0;
}

static void cb_set_throttle(void *opaque, unsigned percent)
{
	struct guest *g = opaque;

	if (percent > 99)
		percent = 99;
	atomic_store(&g->throttle, percent);
	if (percent > atomic_load(&g->max_throttle))
		atomic_store(&g->max_throttle, percent);
}

static int cb_save_state(void *opaque, rdmig_writer *w)
{
	struct guest *g = opaque;
	uint32_t slices = g->cfg.save_ms ? 8 : 1, off = 0;

	/* A slow device: eight slices with a pause before each (tests hold the device phase open). */
	for (uint32_t i = 0; i < slices; i++) {
		uint32_t end = (uint32_t)((uint64_t)g->devstate_len * (i + 1) / slices);
		int ret;

		if (g->cfg.save_ms) {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)g->cfg.save_ms * 1000000L / slices};

			ts.tv_sec = ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			nanosleep(&ts, NULL);
		}
		ret = rdmig_write(w, g->devstate + off, end - off);
		if (ret)
			return ret;
		off = end;
	}
	return 0;
}

static int cb_load_state(void *opaque, rdmig_reader *r)
{
	struct guest *g = opaque;
	uint32_t got = 0;
	uint8_t extra;
	ssize_t n;

	while (got < g->devstate_len) {
		n = rdmig_read(r, g->devstate + got, g->devstate_len - got);
		if (n <= 0)
			return n < 0 ? (int)n : -EBADMSG; /* short device state */
		got += (uint32_t)n;
	}
	if (rdmig_read(r, &extra, 1) != 0)
		return -EBADMSG; /* longer than this guest's devices */
	g->devstate_loaded = true;
	return 0;
}

void guest_callbacks(struct guest *g, struct rdmig_callbacks *cb)
{
	(void)g;
	memset(cb, 0, sizeof(*cb));
	cb->size = sizeof(*cb);
	cb->dirty_log = cb_dirty_log;
	cb->vm_stop = cb_vm_stop;
	cb->vm_start = cb_vm_start;
	cb->set_throttle = cb_set_throttle;
	cb->save_state = cb_save_state;
	cb->load_state = cb_load_state;
}

unsigned guest_nblocks(const struct guest *g)
{
	return g->nblocks;
}

uint64_t guest_block_len(const struct guest *g, unsigned i)
{
	return i < g->nblocks ? g->blocks[i].len : 0;
}

void *guest_block_ptr(const struct guest *g, unsigned i)
{
	return i < g->nblocks ? g->blocks[i].host : NULL;
}

uint32_t guest_block_crc(const struct guest *g, unsigned i)
{
	const struct gblock *b = &g->blocks[i];
	uLong crc = crc32(0, NULL, 0);

	/* zlib takes uInt lengths: feed it in 1 GiB pieces. */
	for (uint64_t off = 0; off < b->len; off += 1u << 30) {
		uint64_t n = b->len - off < (1u << 30) ? b->len - off : (1u << 30);

		crc = crc32(crc, b->host + off, (uInt)n);
	}
	return (uint32_t)crc;
}

uint32_t guest_devstate_crc(const struct guest *g)
{
	return (uint32_t)crc32(crc32(0, NULL, 0), g->devstate, g->devstate_len);
}

void guest_counters(struct guest *g, struct guest_counters *c)
{
	c->pages_dirtied = atomic_load(&g->dirtied);
	c->throttle = atomic_load(&g->throttle);
	c->max_throttle = atomic_load(&g->max_throttle);
	c->stops = atomic_load(&g->stops);
	c->starts = atomic_load(&g->starts);
	c->running = !atomic_load(&g->paused);
	c->devstate_loaded = g->devstate_loaded;
	c->dest_reads = atomic_load(&g->reads);
}
