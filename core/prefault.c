/* SPDX-License-Identifier: MIT */
/* The destination's memory populated ahead of the pages (see prefault.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "core/prefault.h"
#include "core/session.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Pieces small enough that the threads share the work evenly and see the deadline. */
#define PIECE (32ull << 20)
#define MAX_THREADS 16

struct job {
	struct rdmig_session *s;
	uint64_t deadline_ms;
	uint64_t total; /* pieces over all blocks */
	atomic_uint_fast64_t next, bytes;
	atomic_bool stop; /* deadline passed, or the kernel cannot */
};

/* Piece i of the blocks, laid end to end in PIECE units per block. */
static int piece(struct job *j, uint64_t i)
{
	struct rdmig_session *s = j->s;

	for (unsigned b = 0; b < s->nblocks; b++) {
		uint64_t n = (s->blocks[b].len + PIECE - 1) / PIECE;

		if (i < n) {
			uint64_t off = i * PIECE;
			uint64_t len = s->blocks[b].len - off < PIECE ? s->blocks[b].len - off : PIECE;

			if (madvise(s->blocks[b].host + off, len, MADV_POPULATE_WRITE))
				return -errno;
			atomic_fetch_add(&j->bytes, len);
			return 0;
		}
		i -= n;
	}
	return 0;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	uint64_t i;

	while (!atomic_load(&j->stop) && (i = atomic_fetch_add(&j->next, 1)) < j->total) {
		/* EINVAL: no MADV_POPULATE_WRITE here; others: memory it cannot populate. */
		if (piece(j, i) || rdm_now_ms() >= j->deadline_ms)
			atomic_store(&j->stop, true);
	}
	return NULL;
}

int rdm_prefault(struct rdmig_session *s, unsigned threads, uint64_t budget_ms, uint64_t *done)
{
	pthread_t th[MAX_THREADS];
	struct job j = {.s = s, .deadline_ms = rdm_now_ms() + budget_ms};
	unsigned started = 0;

	for (unsigned b = 0; b < s->nblocks; b++)
		j.total += (s->blocks[b].len + PIECE - 1) / PIECE;
	atomic_init(&j.next, 0);
	atomic_init(&j.bytes, 0);
	atomic_init(&j.stop, false);
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if (threads > j.total)
		threads = (unsigned)j.total;
	for (; started < threads; started++)
		if (pthread_create(&th[started], NULL, worker, &j))
			break;
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	*done = atomic_load(&j.bytes);
	return started || !threads ? 0 : -EAGAIN;
}
