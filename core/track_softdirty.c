/* SPDX-License-Identifier: MIT */
/*
 * soft-dirty: bit 55 of /proc/self/pagemap says a page was written since the
 * last "4" to /proc/self/clear_refs. A write between the read and the clear
 * would be forgotten, so a snapshot runs with the writers held (the blocks'
 * hold callbacks), and clear_refs acts on the whole process: one session of
 * the process owns soft-dirty at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/cbret.h"
#include "core/bitmap.h"
#include "core/session.h"
#include "core/track.h"

#define PM_SOFT_DIRTY (1ull << 55)
#define SD_PAGE 4096u

struct sdregion {
	unsigned bi;
	uint8_t *addr;
	uint64_t npages;
	uint64_t *snap; /* pages dirty at the last snapshot, not yet collected */
};

struct rdm_softdirty {
	struct rdmig_session *s;
	int pagemap;
	struct sdregion *r;
	unsigned n;
	struct sdregion **by_block;
};

static atomic_bool owned; /* a session of this process tracks with soft-dirty */

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
	off_t off = (off_t)((uintptr_t)addr / SD_PAGE) * 8;
	size_t len = npages * 8, got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)out + got, len - got, off + (off_t)got);

		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

/* Does a write after clear_refs show (CONFIG_MEM_SOFT_DIRTY)? On a private page. */
static int works(int fd)
{
	uint8_t *p = mmap(NULL, 2 * SD_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	uint64_t e[2] = {0, 0};
	int ret;

	if (p == MAP_FAILED)
		return -errno;
	p[0] = p[SD_PAGE] = 1;
	ret = clear_refs();
	if (!ret) {
		p[SD_PAGE] = 2;
		ret = pagemap_read(fd, p, e, 2);
	}
	munmap(p, 2 * SD_PAGE);
	if (ret)
		return ret;
	return !(e[0] & PM_SOFT_DIRTY) && (e[1] & PM_SOFT_DIRTY) ? 0 : -ENOTSUP;
}

int rdm_softdirty_probe(uint32_t page_size, char *why, size_t whylen)
{
	int fd, ret;

	if (page_size != SD_PAGE || sysconf(_SC_PAGESIZE) != SD_PAGE) {
		snprintf(why, whylen, "soft-dirty tracks 4 KiB pages only (block page size %u)",
			 page_size);
		return -EINVAL;
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "soft-dirty: /proc/self/pagemap: %s", strerror(errno));
		return -ENOTSUP;
	}
	/* While another session owns it, its clear would be ours: trust the owner's probe. */
	ret = atomic_load(&owned) ? 0 : works(fd);
	close(fd);
	if (ret)
		snprintf(why, whylen, "soft-dirty tracking does not work on this kernel "
				      "(CONFIG_MEM_SOFT_DIRTY)");
	return ret ? -ENOTSUP : 0;
}

int rdm_softdirty_start(struct rdmig_session *s, struct rdm_softdirty **out, char *why,
			size_t whylen)
{
	struct rdm_softdirty *sd;
	bool no = false;
	int ret = -ENOMEM;

	if (!atomic_compare_exchange_strong(&owned, &no, true)) {
		snprintf(why, whylen, "another migration of this process tracks with soft-dirty "
				      "(clear_refs acts on the whole process)");
		return -EBUSY;
	}
	sd = calloc(1, sizeof(*sd));
	if (!sd) {
		atomic_store(&owned, false);
		return -ENOMEM;
	}
	sd->s = s;
	sd->pagemap = -1;
	sd->r = calloc(s->nblocks, sizeof(*sd->r));
	sd->by_block = calloc(s->nblocks, sizeof(*sd->by_block));
	if (!sd->r || !sd->by_block)
		goto err;
	for (unsigned bi = 0; bi < s->nblocks; bi++) {
		const struct rdm_block *b = &s->blocks[bi];
		struct sdregion *r = &sd->r[sd->n];

		if (b->tracker != RDMIG_TRACK_SOFT_DIRTY)
			continue;
		*r = (struct sdregion){.bi = bi, .addr = b->host, .npages = b->npages};
		r->snap = calloc(rdm_bitmap_words(b->npages), sizeof(uint64_t));
		if (!r->snap)
			goto err;
		sd->by_block[bi] = r;
		sd->n++;
	}
	sd->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (sd->pagemap < 0) {
		ret = -errno;
		snprintf(why, whylen, "soft-dirty: /proc/self/pagemap: %s", strerror(-ret));
		goto err;
	}
	/* The first pass sends everything: the log starts empty from here. */
	ret = clear_refs();
	if (ret) {
		snprintf(why, whylen, "soft-dirty: clear_refs: %s", strerror(-ret));
		goto err;
	}
	*out = sd;
	return 0;
err:
	if (ret == -ENOMEM)
		snprintf(why, whylen, "soft-dirty tracker: out of memory");
	rdm_softdirty_stop(sd);
	return ret;
}

/* The hold callbacks of the tracked blocks, each (fn, opaque) once; release in reverse. */
static bool hold_seen(const struct rdm_softdirty *sd, unsigned upto)
{
	const struct rdm_block *b = &sd->s->blocks[sd->r[upto].bi];

	for (unsigned i = 0; i < upto; i++) {
		const struct rdm_block *o = &sd->s->blocks[sd->r[i].bi];

		if (o->hold == b->hold && o->hold_opaque == b->hold_opaque)
			return true;
	}
	return false;
}

static void release(struct rdm_softdirty *sd, unsigned held)
{
	while (held--) {
		const struct rdm_block *b = &sd->s->blocks[sd->r[held].bi];

		if (!hold_seen(sd, held))
			b->hold(b->hold_opaque, false);
	}
}

static int read_region(struct rdm_softdirty *sd, struct sdregion *r)
{
	uint64_t buf[512];
	int ret;

	for (uint64_t p = 0; p < r->npages; p += 512) {
		uint64_t m = r->npages - p < 512 ? r->npages - p : 512;

		ret = pagemap_read(sd->pagemap, r->addr + p * SD_PAGE, buf, m);
		if (ret)
			return ret;
		for (uint64_t j = 0; j < m; j++)
			if (buf[j] & PM_SOFT_DIRTY)
				r->snap[(p + j) / 64] |= 1ull << ((p + j) % 64);
	}
	return 0;
}

int rdm_softdirty_snapshot(struct rdm_softdirty *sd, char *why, size_t whylen)
{
	unsigned held;
	int ret = 0;

	for (held = 0; held < sd->n; held++) {
		const struct rdm_block *b = &sd->s->blocks[sd->r[held].bi];

		if (hold_seen(sd, held))
			continue;
		ret = rdm_cb_ret(b->hold(b->hold_opaque, true));
		if (ret) {
			snprintf(why, whylen, "hold callback of %s failed: %s", b->name,
				 strerror(-ret));
			break;
		}
	}
	for (unsigned i = 0; !ret && i < sd->n; i++) {
		ret = read_region(sd, &sd->r[i]);
		if (ret)
			snprintf(why, whylen, "soft-dirty: reading pagemap: %s", strerror(-ret));
	}
	if (!ret) {
		ret = clear_refs();
		if (ret)
			snprintf(why, whylen, "soft-dirty: clear_refs: %s", strerror(-ret));
	}
	release(sd, held);
	return ret;
}

int rdm_softdirty_collect(struct rdm_softdirty *sd, unsigned bi, uint64_t *bitmap)
{
	struct sdregion *r = sd->by_block[bi];

	if (!r)
		return -EINVAL;
	for (uint64_t w = 0; w < rdm_bitmap_words(r->npages); w++) {
		bitmap[w] |= r->snap[w];
		r->snap[w] = 0;
	}
	return 0;
}

void rdm_softdirty_stop(struct rdm_softdirty *sd)
{
	if (!sd)
		return;
	if (sd->pagemap >= 0)
		close(sd->pagemap);
	for (unsigned i = 0; sd->r && i < sd->n; i++)
		free(sd->r[i].snap);
	free(sd->r);
	free(sd->by_block);
	free(sd);
	atomic_store(&owned, false);
}
