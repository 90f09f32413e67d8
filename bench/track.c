/* SPDX-License-Identifier: MIT */
/* Kernel dirty tracking for the synthetic guest (see track.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "track.h"

#define PM_SOFT_DIRTY (1ull << 55)

struct tregion {
	uint8_t *addr;
	uint64_t len, npages;
	uint32_t ps;
	uint64_t *snap;        /* soft-dirty: pages dirty at the last snapshot */
	_Atomic uint64_t *bits; /* uffd-wp: pages written since the last collect */
};

struct track {
	enum track_kind kind;
	struct tregion *r;
	unsigned n;
	int fd; /* pagemap or userfaultfd */
	pthread_t handler;
	bool handler_started;
	atomic_bool stop;
	bool armed;
	pthread_mutex_t lock; /* uffd-wp: (log + unprotect) vs (collect + protect) */
};

static const char *const names[] = {"coop", "soft-dirty", "uffd-wp"};

const char *track_name(enum track_kind k)
{
	return (unsigned)k < 3 ? names[k] : "unknown";
}

int track_from_name(const char *s, enum track_kind *k)
{
	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(s, names[i])) {
			*k = (enum track_kind)i;
			return 0;
		}
	return -ENOENT;
}

static int clear_refs(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, "4", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

static int pagemap_read(int fd, const void *addr, uint64_t *out, uint64_t npages)
{
	off_t off = (off_t)((uintptr_t)addr / 4096) * 8;
	size_t len = npages * 8, got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)out + got, len - got, off + (off_t)got);

		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

/* Does this kernel report a write after clear_refs? (CONFIG_MEM_SOFT_DIRTY) */
static int soft_dirty_works(int fd)
{
	uint8_t *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e[2] = {0, 0};
	int ret;

	if (p == MAP_FAILED)
		return -errno;
	p[0] = p[4096] = 1;
	ret = clear_refs();
	if (!ret) {
		p[4096] = 2;
		ret = pagemap_read(fd, p, e, 2);
	}
	munmap(p, 8192);
	if (ret)
		return ret;
	return !(e[0] & PM_SOFT_DIRTY) && (e[1] & PM_SOFT_DIRTY) ? 0 : -ENOTSUP;
}

static int protect(struct track *t, void *addr, uint64_t len, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = {(uintptr_t)addr, len},
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(t->fd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

/* Log the page and let the write through; the writer is woken by the unprotect. */
static void *handler_main(void *arg)
{
	struct track *t = arg;
	struct uffd_msg msg;

	while (!atomic_load(&t->stop)) {
		struct pollfd pfd = {t->fd, POLLIN, 0};

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(t->fd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			continue;
		uintptr_t a = (uintptr_t)msg.arg.pagefault.address;
		for (unsigned i = 0; i < t->n; i++) {
			struct tregion *r = &t->r[i];
			uint64_t pg;

			if (a < (uintptr_t)r->addr || a >= (uintptr_t)r->addr + r->len)
				continue;
			pg = (a - (uintptr_t)r->addr) / r->ps;
			pthread_mutex_lock(&t->lock);
			atomic_fetch_or(&r->bits[pg / 64], 1ull << (pg % 64));
			protect(t, r->addr + pg * r->ps, r->ps, false);
			pthread_mutex_unlock(&t->lock);
			break;
		}
	}
	return NULL;
}

static int uffd_open(struct track *t, char *err, size_t errlen)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP};
	int ret;

	t->fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (t->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "userfaultfd: %s", strerror(-ret));
		return ret;
	}
	if (ioctl(t->fd, UFFDIO_API, &api) || !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		snprintf(err, errlen, "userfaultfd has no write-protect mode on this kernel");
		return -ENOTSUP;
	}
	return 0;
}

static int uffd_arm(struct track *t, char *err, size_t errlen)
{
	int ret;

	for (unsigned i = 0; i < t->n; i++) {
		struct tregion *r = &t->r[i];
		struct uffdio_register reg = {.range = {(uintptr_t)r->addr, r->len},
					      .mode = UFFDIO_REGISTER_MODE_WP};

		/* Protection needs present pages: touch every one (zeros stay zeros). */
		for (uint64_t p = 0; p < r->npages; p++)
			((volatile uint8_t *)r->addr)[p * r->ps] = r->addr[p * r->ps];
		if (ioctl(t->fd, UFFDIO_REGISTER, &reg)) {
			ret = -errno;
			snprintf(err, errlen, "UFFDIO_REGISTER (write-protect): %s", strerror(-ret));
			return ret;
		}
		ret = protect(t, r->addr, r->len, true);
		if (ret) {
			snprintf(err, errlen, "UFFDIO_WRITEPROTECT: %s", strerror(-ret));
			return ret;
		}
	}
	ret = -pthread_create(&t->handler, NULL, handler_main, t);
	t->handler_started = ret == 0;
	return ret;
}

int track_create(enum track_kind kind, const struct track_region *rg, unsigned n,
		 struct track **out, char *err, size_t errlen)
{
	struct track *t;
	int ret = -ENOMEM;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->kind = kind;
	t->fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	t->r = calloc(n, sizeof(*t->r));
	if (!t->r)
		goto err;
	t->n = n;
	for (unsigned i = 0; i < n; i++) {
		struct tregion *r = &t->r[i];

		r->addr = rg[i].addr;
		r->len = rg[i].len;
		r->ps = rg[i].page_size;
		r->npages = r->len / r->ps;
		r->snap = calloc((r->npages + 63) / 64, 8);
		r->bits = calloc((r->npages + 63) / 64, 8);
		if (!r->snap || !r->bits)
			goto err;
	}
	switch (kind) {
	case TRACK_SOFT_DIRTY:
		for (unsigned i = 0; i < n; i++)
			if (t->r[i].ps != 4096) {
				snprintf(err, errlen, "soft-dirty tracks 4 KiB pages only");
				ret = -EINVAL;
				goto err;
			}
		t->fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		ret = t->fd < 0 ? -errno : soft_dirty_works(t->fd);
		if (ret) {
			snprintf(err, errlen, "soft-dirty tracking does not work on this kernel "
					      "(CONFIG_MEM_SOFT_DIRTY)");
			goto err;
		}
		break;
	case TRACK_UFFD_WP:
		ret = uffd_open(t, err, errlen);
		break;
	default:
		ret = -EINVAL;
	}
	if (ret)
		goto err;
	*out = t;
	return 0;
err:
	track_destroy(t);
	return ret;
}

int track_arm(struct track *t, char *err, size_t errlen)
{
	int ret = 0;

	if (t->armed)
		return 0;
	if (t->kind == TRACK_SOFT_DIRTY)
		ret = clear_refs();
	else if (t->kind == TRACK_UFFD_WP)
		ret = uffd_arm(t, err, errlen);
	t->armed = ret == 0;
	return ret;
}

void track_destroy(struct track *t)
{
	if (!t)
		return;
	atomic_store(&t->stop, true);
	if (t->handler_started)
		pthread_join(t->handler, NULL);
	if (t->kind == TRACK_UFFD_WP && t->armed)
		for (unsigned i = 0; i < t->n; i++) {
			struct uffdio_range rr = {(uintptr_t)t->r[i].addr, t->r[i].len};

			protect(t, t->r[i].addr, t->r[i].len, false);
			ioctl(t->fd, UFFDIO_UNREGISTER, &rr);
		}
	if (t->fd >= 0)
		close(t->fd);
	for (unsigned i = 0; t->r && i < t->n; i++) {
		free(t->r[i].snap);
		free((void *)t->r[i].bits);
	}
	free(t->r);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int track_needs_pause(const struct track *t)
{
	return t->kind == TRACK_SOFT_DIRTY;
}

int track_snapshot(struct track *t)
{
	uint64_t buf[512];
	int ret;

	if (t->kind != TRACK_SOFT_DIRTY)
		return 0;
	for (unsigned i = 0; i < t->n; i++) {
		struct tregion *r = &t->r[i];

		memset(r->snap, 0, (r->npages + 63) / 64 * 8);
		for (uint64_t p = 0; p < r->npages; p += 512) {
			uint64_t m = r->npages - p < 512 ? r->npages - p : 512;

			ret = pagemap_read(t->fd, r->addr + p * r->ps, buf, m);
			if (ret)
				return ret;
			for (uint64_t j = 0; j < m; j++)
				if (buf[j] & PM_SOFT_DIRTY)
					r->snap[(p + j) / 64] |= 1ull << ((p + j) % 64);
		}
	}
	return clear_refs();
}

int track_collect(struct track *t, unsigned i, uint64_t *bitmap, uint64_t npages)
{
	struct tregion *r;

	if (i >= t->n || npages != t->r[i].npages)
		return -EINVAL;
	r = &t->r[i];
	if (t->kind == TRACK_SOFT_DIRTY) {
		for (uint64_t w = 0; w < (npages + 63) / 64; w++)
			bitmap[w] |= r->snap[w];
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	for (uint64_t w = 0; w < (npages + 63) / 64; w++) {
		uint64_t v = atomic_exchange(&r->bits[w], 0);

		bitmap[w] |= v;
		/* Taken, then re-armed: a later write faults and is logged again. */
		while (v) {
			unsigned b = (unsigned)__builtin_ctzll(v);
			uint64_t first = w * 64 + b, end = first + 1;

			v &= v - 1;
			while (v && (unsigned)__builtin_ctzll(v) == end - w * 64) {
				v &= v - 1;
				end++;
			}
			protect(t, r->addr + first * r->ps, (end - first) * r->ps, true);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}
