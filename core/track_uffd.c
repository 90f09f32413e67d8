/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd write-protect: every tracked page is protected; the first write
 * after a collect faults to the handler thread, which logs the page and lifts
 * the protection so the write goes on. A collect takes the log and protects
 * those pages again. Both run under one lock, so a write is never unlogged.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/bitmap.h"
#include "core/session.h"
#include "core/track.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct uregion {
	unsigned bi; /* the session's block */
	uint8_t *addr;
	uint64_t len;
	uint32_t ps;
	_Atomic uint64_t *bits; /* pages written since the last collect */
	bool registered;
};

struct rdm_uffd {
	int fd;
	struct uregion *r;
	unsigned n;
	struct uregion **by_block; /* session block index -> region, NULL: untracked */
	pthread_t handler;
	bool handler_started;
	atomic_bool stop;
	pthread_mutex_t lock; /* (log + unprotect) against (take + protect) */
};

static int uffd_open(int *fd, char *why, size_t whylen)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP};
	int ret;

	*fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0) {
		ret = -errno;
		snprintf(why, whylen, "userfaultfd: %s%s", strerror(-ret),
			 ret == -EPERM ? " (needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)"
				       : "");
		return ret == -EPERM || ret == -ENOSYS ? -ENOTSUP : ret;
	}
	if (ioctl(*fd, UFFDIO_API, &api) || !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		snprintf(why, whylen, "userfaultfd has no write-protect mode on this kernel");
		close(*fd);
		*fd = -1;
		return -ENOTSUP;
	}
	return 0;
}

static int do_register(int fd, void *addr, uint64_t len)
{
	struct uffdio_register reg = {.range = {(uintptr_t)addr, len},
				      .mode = UFFDIO_REGISTER_MODE_WP};

	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

static void do_unregister(int fd, void *addr, uint64_t len)
{
	struct uffdio_range rr = {(uintptr_t)addr, len};

	ioctl(fd, UFFDIO_UNREGISTER, &rr);
}

int rdm_uffd_probe(void *host, uint64_t len, char *why, size_t whylen)
{
	int fd, ret;

	ret = uffd_open(&fd, why, whylen);
	if (ret)
		return ret;
	ret = do_register(fd, host, len);
	if (ret) {
		snprintf(why, whylen, "userfaultfd cannot write-protect this memory: %s",
			 strerror(-ret));
		ret = -ENOTSUP;
	} else {
		do_unregister(fd, host, len);
	}
	close(fd);
	return ret;
}

static int protect(int fd, void *addr, uint64_t len, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = {(uintptr_t)addr, len},
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

static void log_fault(struct rdm_uffd *u, uintptr_t a)
{
	for (unsigned i = 0; i < u->n; i++) {
		struct uregion *r = &u->r[i];
		uint64_t pg;

		if (a < (uintptr_t)r->addr || a >= (uintptr_t)r->addr + r->len)
			continue;
		pg = (a - (uintptr_t)r->addr) / r->ps;
		pthread_mutex_lock(&u->lock);
		atomic_fetch_or(&r->bits[pg / 64], 1ull << (pg % 64));
		protect(u->fd, r->addr + pg * r->ps, r->ps, false); /* wakes the writer */
		pthread_mutex_unlock(&u->lock);
		return;
	}
}

static void *handler_main(void *arg)
{
	struct rdm_uffd *u = arg;
	struct uffd_msg msg;

	while (!atomic_load(&u->stop)) {
		struct pollfd pfd = {u->fd, POLLIN, 0};

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(u->fd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT &&
		    (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			log_fault(u, (uintptr_t)msg.arg.pagefault.address);
	}
	return NULL;
}

/*
 * Protection needs present pages. MADV_POPULATE_WRITE faults them in without
 * touching a byte; where it is missing, an atomic add of 0 does, and cannot
 * lose a write of the VMM's that races it.
 */
static void populate(struct uregion *r)
{
	if (!madvise(r->addr, r->len, MADV_POPULATE_WRITE))
		return;
	for (uint64_t off = 0; off < r->len; off += 4096)
		__atomic_fetch_add(r->addr + off, 0, __ATOMIC_RELAXED);
}

static int arm_region(struct rdm_uffd *u, struct uregion *r, char *why, size_t whylen)
{
	int ret;

	populate(r);
	ret = do_register(u->fd, r->addr, r->len);
	if (ret) {
		snprintf(why, whylen, "UFFDIO_REGISTER (write-protect): %s", strerror(-ret));
		return ret;
	}
	r->registered = true;
	ret = protect(u->fd, r->addr, r->len, true);
	if (ret)
		snprintf(why, whylen, "UFFDIO_WRITEPROTECT: %s", strerror(-ret));
	return ret;
}

int rdm_uffd_start(struct rdmig_session *s, struct rdm_uffd **out, char *why, size_t whylen)
{
	struct rdm_uffd *u;
	int ret = -ENOMEM;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->fd = -1;
	pthread_mutex_init(&u->lock, NULL);
	u->r = calloc(s->nblocks, sizeof(*u->r));
	u->by_block = calloc(s->nblocks, sizeof(*u->by_block));
	if (!u->r || !u->by_block)
		goto err;
	for (unsigned bi = 0; bi < s->nblocks; bi++) {
		const struct rdm_block *b = &s->blocks[bi];
		struct uregion *r = &u->r[u->n];

		if (b->tracker != RDMIG_TRACK_UFFD_WP)
			continue;
		*r = (struct uregion){.bi = bi, .addr = b->host, .len = b->len, .ps = b->page_size};
		r->bits = calloc(rdm_bitmap_words(b->npages), sizeof(uint64_t));
		if (!r->bits)
			goto err;
		u->by_block[bi] = r;
		u->n++;
	}
	ret = uffd_open(&u->fd, why, whylen);
	for (unsigned i = 0; !ret && i < u->n; i++)
		ret = arm_region(u, &u->r[i], why, whylen);
	if (ret)
		goto err;
	ret = -pthread_create(&u->handler, NULL, handler_main, u);
	if (ret) {
		snprintf(why, whylen, "cannot start the userfaultfd thread");
		goto err;
	}
	u->handler_started = true;
	*out = u;
	return 0;
err:
	if (ret == -ENOMEM)
		snprintf(why, whylen, "userfaultfd tracker: out of memory");
	rdm_uffd_stop(u);
	return ret;
}

int rdm_uffd_collect(struct rdm_uffd *u, unsigned bi, uint64_t *bitmap)
{
	struct uregion *r = u->by_block[bi];
	uint64_t words;
	int ret = 0;

	if (!r)
		return -EINVAL;
	words = rdm_bitmap_words(r->len / r->ps);
	pthread_mutex_lock(&u->lock);
	for (uint64_t w = 0; w < words; w++) {
		uint64_t v = atomic_exchange(&r->bits[w], 0);

		bitmap[w] |= v;
		/* Taken, then protected again in runs: the next write faults anew. */
		while (v && !ret) {
			unsigned b0 = (unsigned)__builtin_ctzll(v);
			uint64_t first = w * 64 + b0, end = first + 1;

			v &= v - 1;
			while (v && (unsigned)__builtin_ctzll(v) == end - w * 64) {
				v &= v - 1;
				end++;
			}
			ret = protect(u->fd, r->addr + first * r->ps, (end - first) * r->ps, true);
		}
	}
	pthread_mutex_unlock(&u->lock);
	return ret;
}

void rdm_uffd_stop(struct rdm_uffd *u)
{
	if (!u)
		return;
	atomic_store(&u->stop, true);
	if (u->handler_started)
		pthread_join(u->handler, NULL);
	/* Unprotect before closing: writers blocked in a fault are woken, none left behind. */
	for (unsigned i = 0; i < u->n; i++) {
		if (u->r[i].registered) {
			protect(u->fd, u->r[i].addr, u->r[i].len, false);
			do_unregister(u->fd, u->r[i].addr, u->r[i].len);
		}
		free((void *)u->r[i].bits);
	}
	if (u->fd >= 0)
		close(u->fd);
	free(u->r);
	free(u->by_block);
	pthread_mutex_destroy(&u->lock);
	free(u);
}
