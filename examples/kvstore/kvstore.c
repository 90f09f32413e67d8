/* SPDX-License-Identifier: MIT */
/*
 * A live in-memory key-value store migrated between two processes with the
 * library's dirty tracker. The store is a hash table in one mmap'd region; a
 * writer thread keeps putting and updating keys while the migration runs.
 * At switchover the source sends, as device state, the CRC32 of every page
 * and the number of keys; the destination checks its copy page by page and
 * looks every key up.
 *
 *   kvstore [uffd-wp|soft-dirty|auto]   fork a destination, migrate to it (tcp)
 * Exit 0: verified; 77: this kernel lacks the tracker; 1: anything else.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "rdmig/rdmig.h"

#define PAGE 4096u
#define STORE_BYTES (8u << 20)
#define SLOTS (STORE_BYTES / sizeof(struct slot))
#define KEYS 60000u

struct slot {
	uint64_t key; /* key + 1; 0: empty */
	uint64_t version;
	char value[48];
};

struct store {
	struct slot *t;
	pthread_mutex_t lock; /* one put at a time against a pause */
	bool stopped;         /* vm_stop */
	unsigned holds;       /* soft-dirty syncs */
	atomic_bool quit;
	_Atomic uint64_t puts;
	uint64_t nkeys; /* keys 0..nkeys-1 inserted */
};

/*
 * The store's writes race with the library reading its memory: that is live
 * migration (the dirty log, not a lock, orders them), so TSan builds do not
 * watch them, as they do not watch a guest's RAM writes in bench/guest.c.
 */
#ifdef __SANITIZE_THREAD__
#define STORE_ACCESS __attribute__((no_sanitize_thread, noinline))
#else
#define STORE_ACCESS
#endif

static uint64_t hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

STORE_ACCESS static void value_of(uint64_t key, uint64_t version, char *v)
{
	char tmp[48] = {0};

	snprintf(tmp, sizeof(tmp), "key-%llu-v%llu", (unsigned long long)key,
		 (unsigned long long)version);
	/* Byte by byte: a memcpy into the store would go through TSan's interceptor. */
	for (size_t i = 0; i < sizeof(tmp); i++)
		((volatile char *)v)[i] = tmp[i];
}

STORE_ACCESS static struct slot *find(struct slot *t, uint64_t key, bool insert)
{
	for (uint64_t i = hash(key) % SLOTS, n = 0; n < SLOTS; i = (i + 1) % SLOTS, n++) {
		if (t[i].key == key + 1)
			return &t[i];
		if (!t[i].key)
			return insert ? &t[i] : NULL;
	}
	return NULL;
}

STORE_ACCESS static void put(struct store *st, uint64_t key)
{
	struct slot *sl = find(st->t, key, true);

	sl->version++;
	value_of(key, sl->version, sl->value);
	sl->key = key + 1;
}

static void *writer(void *arg)
{
	struct store *st = arg;
	uint64_t r = 88172645463325252ull;

	while (!atomic_load(&st->quit)) {
		pthread_mutex_lock(&st->lock);
		if (!st->stopped && !st->holds) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			if (st->nkeys < KEYS && (r & 3) == 0)
				put(st, st->nkeys++);
			else if (st->nkeys)
				put(st, r % st->nkeys);
			atomic_fetch_add(&st->puts, 1);
		}
		pthread_mutex_unlock(&st->lock);
		if ((atomic_load(&st->puts) & 63) == 0)
			usleep(50);
	}
	return NULL;
}

static int set_stopped(struct store *st, bool on)
{
	pthread_mutex_lock(&st->lock);
	st->stopped = on;
	pthread_mutex_unlock(&st->lock);
	return 0;
}

static int vm_stop(void *o) { return set_stopped(o, true); }
static int vm_start(void *o) { return set_stopped(o, false); }

static int hold(void *o, bool on)
{
	struct store *st = o;

	pthread_mutex_lock(&st->lock);
	st->holds += on ? 1 : -1u;
	pthread_mutex_unlock(&st->lock);
	return 0;
}

/* Device state: nkeys, then the CRC32 of every page. */
static int save_state(void *o, rdmig_writer *w)
{
	struct store *st = o;
	uint32_t crc;
	int ret = rdmig_write(w, &st->nkeys, sizeof(st->nkeys));

	for (size_t p = 0; !ret && p < STORE_BYTES / PAGE; p++) {
		crc = (uint32_t)crc32(0, (const Bytef *)st->t + p * PAGE, PAGE);
		ret = rdmig_write(w, &crc, sizeof(crc));
	}
	return ret;
}

struct dest_state {
	struct store *st;
	uint64_t nkeys;
	uint32_t crc[STORE_BYTES / PAGE];
	bool loaded;
};

static int read_all(rdmig_reader *r, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = rdmig_read(r, (char *)buf + got, len - got);

		if (n <= 0)
			return n < 0 ? (int)n : -EPROTO;
		got += (size_t)n;
	}
	return 0;
}

static int load_state(void *o, rdmig_reader *r)
{
	struct dest_state *d = o;
	int ret = read_all(r, &d->nkeys, sizeof(d->nkeys));

	if (!ret)
		ret = read_all(r, d->crc, sizeof(d->crc));
	d->loaded = ret == 0;
	return ret;
}

static struct slot *map_store(void)
{
	void *p = mmap(NULL, STORE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Every page as the source had it at switchover, every key found with its value. */
static int verify(struct dest_state *d)
{
	char v[48];
	size_t bad = 0;

	for (size_t p = 0; p < STORE_BYTES / PAGE; p++)
		if ((uint32_t)crc32(0, (const Bytef *)d->st->t + p * PAGE, PAGE) != d->crc[p])
			bad++;
	for (uint64_t k = 0; k < d->nkeys; k++) {
		struct slot *sl = find(d->st->t, k, false);

		if (!sl) {
			fprintf(stderr, "kvstore dest: key %llu missing\n", (unsigned long long)k);
			return 1;
		}
		value_of(k, sl->version, v);
		if (memcmp(v, sl->value, sizeof(v))) {
			fprintf(stderr, "kvstore dest: key %llu has a torn value\n",
				(unsigned long long)k);
			return 1;
		}
	}
	if (bad) {
		fprintf(stderr, "kvstore dest: %zu pages differ from the source's\n", bad);
		return 1;
	}
	printf("kvstore dest: %llu keys and %u pages verified\n",
	       (unsigned long long)d->nkeys, STORE_BYTES / PAGE);
	return 0;
}

static int run_dest(int port_fd)
{
	static struct dest_state d;
	struct store st = {0};
	struct rdmig_callbacks cb = {.size = sizeof(cb), .load_state = load_state};
	enum rdmig_status fin = RDMIG_STATUS_NONE;
	rdmig_session *s;
	uint16_t port = 0;
	int ret;

	st.t = map_store();
	d.st = &st;
	if (!st.t || rdmig_session_create(RDMIG_ROLE_DEST, &cb, &d, &s))
		return 1;
	ret = rdmig_add_block(s, "store", st.t, STORE_BYTES, PAGE);
	if (!ret)
		ret = rdmig_incoming(s, "tcp:127.0.0.1:0");
	if (!ret)
		ret = rdmig_incoming_port(s, &port);
	if (write(port_fd, &port, sizeof(port)) != sizeof(port) || ret) {
		fprintf(stderr, "kvstore dest: %s\n", rdmig_last_error(s));
		return 1;
	}
	ret = rdmig_wait(s, 120000, &fin);
	if (ret || fin != RDMIG_STATUS_COMPLETED || !d.loaded) {
		fprintf(stderr, "kvstore dest: %s (%s)\n", rdmig_status_name(fin),
			rdmig_last_error(s));
		return 1;
	}
	rdmig_session_destroy(s);
	return verify(&d);
}

static int run_source(enum rdmig_tracker want, uint16_t port)
{
	struct store st = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct rdmig_callbacks cb = {.size = sizeof(cb), .vm_stop = vm_stop, .vm_start = vm_start,
				     .save_state = save_state};
	struct rdmig_block_opts o = RDMIG_BLOCK_OPTS_INIT;
	struct rdmig_stats stats = RDMIG_STATS_INIT;
	enum rdmig_status fin = RDMIG_STATUS_NONE;
	enum rdmig_tracker got = RDMIG_TRACK_NONE;
	pthread_t w;
	rdmig_session *s;
	char uri[64];
	int ret;

	st.t = map_store();
	if (!st.t || rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, &st, &s))
		return 1;
	for (uint64_t k = 0; k < KEYS / 2; k++)
		put(&st, st.nkeys++);
	o.name = "store";
	o.host = st.t;
	o.length = STORE_BYTES;
	o.page_size = PAGE;
	o.tracker = want;
	o.hold = hold;
	o.hold_opaque = &st;
	ret = rdmig_add_block_opts(s, &o);
	if (ret) {
		fprintf(stderr, "kvstore source: %s\n", rdmig_last_error(s));
		rdmig_session_destroy(s);
		return ret == -ENOTSUP ? 77 : 1;
	}
	rdmig_block_tracker(s, "store", &got);
	rdmig_set_parameter(s, RDMIG_PARAM_DOWNTIME_LIMIT, 50);
	pthread_create(&w, NULL, writer, &st);
	usleep(20000);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", port);
	ret = rdmig_migrate(s, uri);
	if (!ret)
		ret = rdmig_wait(s, 120000, &fin);
	rdmig_query(s, &stats);
	atomic_store(&st.quit, true);
	pthread_join(w, NULL);
	printf("kvstore source: tracker %s, %s, %llu puts, %llu keys, %llu syncs\n",
	       rdmig_tracker_name(got), rdmig_status_name(fin),
	       (unsigned long long)atomic_load(&st.puts), (unsigned long long)st.nkeys,
	       (unsigned long long)stats.dirty_sync_count);
	if (ret || fin != RDMIG_STATUS_COMPLETED) {
		fprintf(stderr, "kvstore source: %s\n", rdmig_last_error(s));
		ret = 1;
	}
	rdmig_session_destroy(s);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "auto";
	enum rdmig_tracker want;
	int pfd[2], status = 0, src;
	uint16_t port = 0;
	pid_t pid;

	if (!strcmp(name, "uffd-wp"))
		want = RDMIG_TRACK_UFFD_WP;
	else if (!strcmp(name, "soft-dirty"))
		want = RDMIG_TRACK_SOFT_DIRTY;
	else if (!strcmp(name, "auto"))
		want = RDMIG_TRACK_AUTO;
	else {
		fprintf(stderr, "usage: kvstore [uffd-wp|soft-dirty|auto]\n");
		return 2;
	}
	/* The destination is another process, forked before any thread starts. */
	if (pipe(pfd))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(pfd[0]);
		int rc = run_dest(pfd[1]);

		fflush(stdout);
		_exit(rc);
	}
	close(pfd[1]);
	if (read(pfd[0], &port, sizeof(port)) != sizeof(port) || !port) {
		waitpid(pid, NULL, 0);
		return 1;
	}
	src = run_source(want, port);
	if (src)
		kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	if (src)
		return src;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
