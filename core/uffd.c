/* SPDX-License-Identifier: MIT */
/* userfaultfd for postcopy's destination memory (see uffd.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "core/bitmap.h"
#include "core/uffd.h"

#define PENDING_MAX 1024u /* faults waiting at once that are timed */
#define HIST_SUB 8u       /* latency buckets per power of two */
#define HIST_N (41u * HIST_SUB)

struct region {
	struct rdm_uffd_region r;
	uint64_t npages;
	uint64_t *has;       /* pages here */
	uint64_t *requested; /* pages the callback was told about */
	uint64_t epoch;      /* discards so far: a copy that raced one proves nothing */
};

/* A thread waiting for a page, since t_us. */
struct pending {
	unsigned region;
	uint64_t page, t_us;
	uint32_t tid;
};

struct rdm_uffd {
	int fd, stop[2];
	unsigned n;
	struct region *rg;
	rdm_uffd_fault_fn fn;
	void *opaque;
	pthread_t thread;
	void *zeros; /* one hugetlb page of zeros, for place_zero there */

	pthread_mutex_t lock; /* everything below, and the maps */
	struct pending pend[PENDING_MAX];
	unsigned npend;
	struct rdm_uffd_stats st;
	uint64_t hist[HIST_N];
	uint64_t resolved;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void errf(char *err, size_t errlen, const char *what, int e)
{
	rdm_errtext(err, errlen, "userfaultfd: %s: %s", what, strerror(e));
}

static void set_bit(uint64_t *m, uint64_t i)
{
	m[i / 64] |= 1ull << (i % 64);
}

static bool test_bit(const uint64_t *m, uint64_t i)
{
	return (m[i / 64] >> (i % 64)) & 1;
}

static void clear_bit(uint64_t *m, uint64_t i)
{
	m[i / 64] &= ~(1ull << (i % 64));
}

/* Log-linear bucket of a latency, and back to the bucket's lower bound. */
static unsigned bucket(uint64_t us)
{
	unsigned e, sub;

	if (us < HIST_SUB)
		return (unsigned)us;
	e = 63u - (unsigned)__builtin_clzll(us);
	sub = (unsigned)((us >> (e - 3)) & (HIST_SUB - 1));
	e = e - 2; /* buckets 0..7 are 0..7 us exactly */
	return e * HIST_SUB + sub < HIST_N ? e * HIST_SUB + sub : HIST_N - 1;
}

static uint64_t bucket_floor(unsigned b)
{
	unsigned e = b / HIST_SUB, sub = b % HIST_SUB;

	if (e == 0)
		return sub;
	e += 2;
	return (1ull << e) | ((uint64_t)sub << (e - 3));
}

static int open_fd(void)
{
	/* Kernel-mode faults too: a VMM's KVM touches guest memory from the kernel. */
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

#ifdef UFFD_USER_MODE_ONLY
	/* Without privilege (vm.unprivileged_userfaultfd=0): faults of user code only. */
	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
#endif
	return fd < 0 ? -errno : fd;
}

int rdm_uffd_can_open(char *err, size_t errlen)
{
	int fd = open_fd();

	if (fd < 0) {
		errf(err, errlen, "cannot open (kernel without it, or vm.unprivileged_userfaultfd=0 "
				  "for a process without CAP_SYS_PTRACE)", -fd);
		return fd;
	}
	close(fd);
	return 0;
}

static int find(struct rdm_uffd *u, uint64_t addr, unsigned *ri, uint64_t *page)
{
	for (unsigned i = 0; i < u->n; i++) {
		uint64_t base = (uintptr_t)u->rg[i].r.host;

		if (addr >= base && addr - base < u->rg[i].r.len) {
			*ri = i;
			*page = (addr - base) / u->rg[i].r.page_size;
			return 0;
		}
	}
	return -ENOENT;
}

static void wake(struct rdm_uffd *u, unsigned ri, uint64_t page)
{
	struct region *g = &u->rg[ri];
	struct uffdio_range wr = {(uintptr_t)g->r.host + page * g->r.page_size, g->r.page_size};

	ioctl(u->fd, UFFDIO_WAKE, &wr);
}

static void on_fault(struct rdm_uffd *u, const struct uffd_msg *m)
{
	unsigned ri;
	uint64_t page;
	bool ask = false, here;

	if (find(u, m->arg.pagefault.address, &ri, &page))
		return; /* not ours: cannot happen for a registered range */
	pthread_mutex_lock(&u->lock);
	u->st.faults++;
	here = test_bit(u->rg[ri].has, page);
	if (!here) {
		if (u->npend < PENDING_MAX)
			u->pend[u->npend++] = (struct pending){ri, page, now_us(),
							       m->arg.pagefault.feat.ptid};
		if (!test_bit(u->rg[ri].requested, page)) {
			set_bit(u->rg[ri].requested, page);
			u->st.requests++;
			ask = true;
		}
	}
	pthread_mutex_unlock(&u->lock);
	/* Placed between the fault and its read: the copy's wake came too early. */
	if (here)
		wake(u, ri, page);
	if (ask)
		u->fn(u->opaque, ri, page);
}

static void *fault_main(void *arg)
{
	struct rdm_uffd *u = arg;
	struct uffd_msg msg[16];

	for (;;) {
		struct pollfd pfd[2] = {{u->fd, POLLIN, 0}, {u->stop[0], POLLIN, 0}};
		ssize_t got;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		got = read(u->fd, msg, sizeof(msg));
		if (got < 0)
			continue; /* EAGAIN: another wake took it */
		for (ssize_t i = 0; i < got / (ssize_t)sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				on_fault(u, &msg[i]);
	}
	return NULL;
}

static int reg_one(struct rdm_uffd *u, struct region *g, char *err, size_t errlen)
{
	struct uffdio_register reg = {{(uintptr_t)g->r.host, g->r.len}, UFFDIO_REGISTER_MODE_MISSING,
				      0};

	if (!g->r.page_size || (uintptr_t)g->r.host % g->r.page_size || !g->r.len ||
	    g->r.len % g->r.page_size) {
		rdm_errtext(err, errlen, "userfaultfd: region %p+%llu not aligned to its %llu-byte pages",
			    g->r.host, (unsigned long long)g->r.len, (unsigned long long)g->r.page_size);
		return -EINVAL;
	}
	if (ioctl(u->fd, UFFDIO_REGISTER, &reg)) {
		int e = errno;

		errf(err, errlen, "registering the memory (anonymous, shmem or hugetlb only)", e);
		return -e;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY))) {
		errf(err, errlen, "this memory has no UFFDIO_COPY", EOPNOTSUPP);
		return -EOPNOTSUPP;
	}
	g->npages = g->r.len / g->r.page_size;
	g->has = calloc(rdm_bitmap_words(g->npages), sizeof(uint64_t));
	g->requested = calloc(rdm_bitmap_words(g->npages), sizeof(uint64_t));
	return g->has && g->requested ? 0 : -ENOMEM;
}

int rdm_uffd_create(const struct rdm_uffd_region *rg, unsigned n, rdm_uffd_fault_fn fn,
		    void *opaque, struct rdm_uffd **out, char *err, size_t errlen)
{
	struct uffdio_api api = {UFFD_API, UFFD_FEATURE_THREAD_ID, 0};
	struct rdm_uffd *u;
	int ret;

	if (!n || !fn)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->stop[0] = u->stop[1] = -1;
	u->fn = fn;
	u->opaque = opaque;
	u->n = n;
	pthread_mutex_init(&u->lock, NULL);
	u->rg = calloc(n, sizeof(*u->rg));
	if (!u->rg) {
		ret = -ENOMEM;
		goto err_u;
	}
	u->fd = open_fd();
	if (u->fd < 0) {
		ret = u->fd;
		errf(err, errlen, "cannot open (kernel without it, or vm.unprivileged_userfaultfd=0 "
				  "for a process without CAP_SYS_PTRACE)", -ret);
		goto err_rg;
	}
	/* Shared memory and hugetlb need their missing-mode features; ask for what exists. */
	if (ioctl(u->fd, UFFDIO_API, &api)) {
		ret = -errno;
		errf(err, errlen, "UFFDIO_API", -ret);
		goto err_fd;
	}
	for (unsigned i = 0; i < n; i++) {
		u->rg[i].r = rg[i];
		ret = reg_one(u, &u->rg[i], err, errlen);
		if (ret)
			goto err_regs;
	}
	if (pipe2(u->stop, O_CLOEXEC)) {
		ret = -errno;
		errf(err, errlen, "pipe", -ret);
		goto err_regs;
	}
	ret = -pthread_create(&u->thread, NULL, fault_main, u);
	if (ret) {
		errf(err, errlen, "starting the fault thread", -ret);
		goto err_pipe;
	}
	*out = u;
	return 0;

err_pipe:
	close(u->stop[0]);
	close(u->stop[1]);
err_regs:
	for (unsigned i = 0; i < n; i++) {
		free(u->rg[i].has);
		free(u->rg[i].requested);
	}
err_fd:
	close(u->fd); /* unregisters every range */
err_rg:
	free(u->rg);
err_u:
	pthread_mutex_destroy(&u->lock);
	free(u);
	return ret;
}

void rdm_uffd_destroy(struct rdm_uffd *u)
{
	if (!u)
		return;
	if (write(u->stop[1], "x", 1) == 1)
		pthread_join(u->thread, NULL);
	close(u->stop[0]);
	close(u->stop[1]);
	/* Closing the fd unregisters the ranges and wakes whoever still waits. */
	close(u->fd);
	for (unsigned i = 0; i < u->n; i++) {
		free(u->rg[i].has);
		free(u->rg[i].requested);
	}
	free(u->rg);
	free(u->zeros);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/*
 * Lock held: pages [page, page + n) were copied; the threads waiting on them
 * stop waiting. They are marked here only when no discard ran since the copy
 * began (epoch): a page marked here but missing would make its next fault
 * wake forever without a request; one here but not marked is only asked for
 * again (and the copy finds it there).
 */
static void arrived(struct rdm_uffd *u, unsigned ri, uint64_t page, uint64_t n, uint64_t epoch)
{
	uint64_t now = now_us();

	for (uint64_t p = page; p < page + n && epoch == u->rg[ri].epoch; p++)
		if (!test_bit(u->rg[ri].has, p)) {
			set_bit(u->rg[ri].has, p);
			u->st.pages_placed++;
		}
	for (unsigned i = 0; i < u->npend;) {
		struct pending *e = &u->pend[i];
		uint64_t dt;
		unsigned t;

		if (e->region != ri || e->page < page || e->page >= page + n) {
			i++;
			continue;
		}
		dt = now - e->t_us;
		u->st.blocktime_us += dt;
		u->hist[bucket(dt)]++;
		u->resolved++;
		if (dt > u->st.latency_max_us)
			u->st.latency_max_us = dt;
		for (t = 0; t < u->st.nthreads && u->st.threads[t].tid != e->tid; t++)
			;
		if (t == u->st.nthreads && t < RDM_UFFD_MAX_THREADS)
			u->st.threads[u->st.nthreads++].tid = e->tid;
		if (t < u->st.nthreads)
			u->st.threads[t].blocktime_us += dt;
		*e = u->pend[--u->npend];
	}
}

static int check(struct rdm_uffd *u, unsigned ri, uint64_t page, uint64_t n)
{
	if (ri >= u->n || page > u->rg[ri].npages || n > u->rg[ri].npages - page)
		return -EINVAL;
	return 0;
}

/* One UFFDIO_COPY or ZEROPAGE of [page, page + n); pages already here are skipped. */
static int copy_range(struct rdm_uffd *u, unsigned ri, uint64_t page, uint64_t n, const void *src,
		      bool zero)
{
	struct region *g = &u->rg[ri];
	uint64_t ps = g->r.page_size, done = 0, len = n * ps;

	while (done < len) {
		uint64_t dst = (uintptr_t)g->r.host + page * ps + done;
		int64_t got;
		int rc;

		if (zero) {
			struct uffdio_zeropage z = {{dst, len - done}, 0, 0};

			rc = ioctl(u->fd, UFFDIO_ZEROPAGE, &z);
			got = z.zeropage;
		} else {
			struct uffdio_copy c = {dst, (uintptr_t)src + done, len - done, 0, 0};

			rc = ioctl(u->fd, UFFDIO_COPY, &c);
			got = c.copy;
		}
		if (!rc) {
			done = len;
		} else if (got > 0) {
			done += (uint64_t)got; /* partial: go on from there */
		} else if (got == -EEXIST) {
			done += ps; /* that page came first by another way */
		} else if (got != -EAGAIN) {
			return got < 0 ? (int)got : -errno;
		}
	}
	return 0;
}

static uint64_t epoch_of(struct rdm_uffd *u, unsigned ri)
{
	uint64_t e;

	pthread_mutex_lock(&u->lock);
	e = u->rg[ri].epoch;
	pthread_mutex_unlock(&u->lock);
	return e;
}

int rdm_uffd_place(struct rdm_uffd *u, unsigned region, uint64_t page, uint64_t n,
		   const void *src)
{
	uint64_t epoch;
	int ret = check(u, region, page, n);

	if (ret)
		return ret;
	epoch = epoch_of(u, region);
	ret = copy_range(u, region, page, n, src, false);
	if (ret)
		return ret;
	pthread_mutex_lock(&u->lock);
	arrived(u, region, page, n, epoch);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

int rdm_uffd_place_zero(struct rdm_uffd *u, unsigned region, uint64_t page, uint64_t n)
{
	uint64_t ps, epoch;
	int ret = check(u, region, page, n);

	if (ret)
		return ret;
	epoch = epoch_of(u, region);
	ps = u->rg[region].r.page_size;
	if (ps == (uint64_t)sysconf(_SC_PAGESIZE)) {
		ret = copy_range(u, region, page, n, NULL, true);
	} else {
		/* hugetlb has no ZEROPAGE: copy a page of zeros. */
		pthread_mutex_lock(&u->lock);
		if (!u->zeros)
			u->zeros = calloc(1, ps);
		pthread_mutex_unlock(&u->lock);
		if (!u->zeros)
			return -ENOMEM;
		for (uint64_t p = page; p < page + n && !ret; p++)
			ret = copy_range(u, region, p, 1, u->zeros, false);
	}
	if (ret)
		return ret;
	pthread_mutex_lock(&u->lock);
	arrived(u, region, page, n, epoch);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

int rdm_uffd_discard(struct rdm_uffd *u, unsigned region, uint64_t page, uint64_t n)
{
	struct region *g;
	void *at;
	size_t len;
	int ret = check(u, region, page, n);

	if (ret)
		return ret;
	g = &u->rg[region];
	at = (char *)g->r.host + page * g->r.page_size;
	len = n * g->r.page_size;
	/* Shared memory keeps its pages in the page cache: only REMOVE makes them missing. */
	if (madvise(at, len, MADV_REMOVE) && madvise(at, len, MADV_DONTNEED))
		return -errno;
	pthread_mutex_lock(&u->lock);
	g->epoch++;
	for (uint64_t p = page; p < page + n; p++) {
		clear_bit(g->has, p);
		clear_bit(g->requested, p);
	}
	pthread_mutex_unlock(&u->lock);
	return 0;
}

int rdm_uffd_has(struct rdm_uffd *u, unsigned region, uint64_t page)
{
	int ret = check(u, region, page, 1);

	if (ret)
		return ret;
	pthread_mutex_lock(&u->lock);
	ret = test_bit(u->rg[region].has, page);
	pthread_mutex_unlock(&u->lock);
	return ret;
}

int rdm_uffd_received(struct rdm_uffd *u, unsigned region, uint64_t *map, uint64_t nwords)
{
	if (region >= u->n || nwords < rdm_bitmap_words(u->rg[region].npages))
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	memcpy(map, u->rg[region].has, rdm_bitmap_words(u->rg[region].npages) * sizeof(*map));
	pthread_mutex_unlock(&u->lock);
	return 0;
}

int rdm_uffd_reask(struct rdm_uffd *u)
{
	int asked = 0;

	for (unsigned ri = 0; ri < u->n; ri++) {
		struct region *g = &u->rg[ri];

		for (uint64_t w = 0; w < rdm_bitmap_words(g->npages); w++) {
			pthread_mutex_lock(&u->lock);
			uint64_t bits = g->requested[w] & ~g->has[w];
			pthread_mutex_unlock(&u->lock);
			/* Outside the lock: the callback may place pages (a read) before it returns. */
			for (; bits; bits &= bits - 1) {
				u->fn(u->opaque, ri, w * 64 + (uint64_t)__builtin_ctzll(bits));
				asked++;
			}
		}
	}
	return asked;
}

static uint64_t percentile(const struct rdm_uffd *u, unsigned pct)
{
	uint64_t want = (u->resolved * pct + 99) / 100, seen = 0;

	for (unsigned b = 0; b < HIST_N && want; b++) {
		seen += u->hist[b];
		if (seen >= want)
			return bucket_floor(b);
	}
	return 0;
}

void rdm_uffd_get_stats(struct rdm_uffd *u, struct rdm_uffd_stats *st)
{
	pthread_mutex_lock(&u->lock);
	*st = u->st;
	st->latency_p50_us = percentile(u, 50);
	st->latency_p99_us = percentile(u, 99);
	pthread_mutex_unlock(&u->lock);
}
