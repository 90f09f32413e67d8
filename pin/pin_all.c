/* SPDX-License-Identifier: MIT */
/*
 * Pin-all: the memlock/budget check before anything is pinned, then every
 * region cut into pieces (multiples of chunk_size) that a few threads register
 * in parallel; ibv_reg_mr of large ranges is page-walk bound, so it scales
 * with threads. The first failure stops the others and undoes everything.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pin/pin_int.h"

struct pin_piece_ref {
	unsigned r;
	uint64_t i;
};

struct pin_all_job {
	struct rdm_pin *p;
	const struct pin_piece_ref *refs;
	size_t n;
	atomic_size_t next;
	atomic_bool failed;   /* the others stop taking pieces */
	pthread_mutex_t lock; /* the first error only */
	int ret;
	char err[256];
};

static void *pin_all_worker(void *arg)
{
	struct pin_all_job *j = arg;
	struct rdm_pin *p = j->p;
	char err[256];

	while (!atomic_load(&j->failed)) {
		size_t k = atomic_fetch_add(&j->next, 1);
		const struct pin_piece_ref *ref;
		const struct rdm_pin_reg *g;
		uint64_t off;
		int ret;

		if (k >= j->n)
			break;
		ref = &j->refs[k];
		g = &p->regs[ref->r];
		off = ref->i * p->piece;
		/* Each piece has its own slot: no lock needed to store the MR. */
		ret = rdm_pin_reg(p, ref->r, off, g->len - off < p->piece ? g->len - off : p->piece,
				  &p->regs[ref->r].pieces[ref->i], err, sizeof(err));
		if (ret) {
			pthread_mutex_lock(&j->lock);
			if (!j->ret) {
				j->ret = ret;
				snprintf(j->err, sizeof(j->err), "%s", err);
			}
			pthread_mutex_unlock(&j->lock);
			atomic_store(&j->failed, true);
		}
	}
	return NULL;
}

void rdm_pin_all_release(struct rdm_pin *p)
{
	for (unsigned r = 0; r < p->n; r++) {
		struct rdm_pin_reg *g = &p->regs[r];

		for (uint64_t i = 0; g->pieces && i < g->nslots; i++) {
			if (!g->pieces[i])
				continue;
			/* Nothing better to do with a failure: the PD's owner reclaims it. */
			(void)rdm_pin_dereg(g->pieces[i]);
			g->pieces[i] = NULL;
		}
	}
	p->st.registered_bytes = 0;
}

/*
 * Piece size: spread the total over about four pieces per thread (so a big
 * region next to small ones still keeps every thread busy), never below one
 * chunk, always a multiple of chunk_size, at most the device's max_mr_size.
 */
static uint64_t pin_all_piece_size(const struct rdm_pin *p, uint64_t total)
{
	uint64_t chunk = p->o.chunk_size;
	uint64_t q = 4ull * p->o.threads;
	uint64_t want = total / q + (total % q != 0);
	uint64_t piece;

	piece = want > UINT64_MAX - chunk ? UINT64_MAX / chunk * chunk
					  : (want + chunk - 1) / chunk * chunk;
	if (piece < chunk)
		piece = chunk;
	if (p->max_mr_size >= chunk && piece > p->max_mr_size)
		piece = p->max_mr_size / chunk * chunk;
	return piece;
}

int rdm_pin_all_register(struct rdm_pin *p, uint64_t total, char *err, size_t errlen)
{
	struct pin_all_job j = { .p = p };
	struct pin_piece_ref *refs;
	pthread_t tid[RDM_PIN_THREADS_MAX];
	unsigned nthreads, started = 0;
	size_t npieces = 0, k = 0;
	int64_t t0;
	int ret;

	/* Check the budget before anything is pinned. */
	if (!p->odp && total > p->budget) {
		if (p->o.budget)
			rdm_errtext(err, errlen,
				    "pin-all needs %" PRIu64 " bytes but the registration budget is %"
				    PRIu64 " (raise the budget or use on-demand registration)",
				    total, p->budget);
		else
			rdm_errtext(err, errlen,
				    "pin-all needs %" PRIu64 " bytes but the memlock limit is %" PRIu64
				    " (raise ulimit -l or use on-demand registration)",
				    total, p->budget);
		return -ENOMEM;
	}

	p->piece = pin_all_piece_size(p, total);
	for (unsigned r = 0; r < p->n; r++) {
		struct rdm_pin_reg *g = &p->regs[r];

		g->nslots = (g->len - 1) / p->piece + 1;
		g->pieces = calloc(g->nslots, sizeof(*g->pieces));
		if (!g->pieces) {
			rdm_errtext(err, errlen, "pin-all: out of memory for %" PRIu64 " pieces",
				    g->nslots);
			return -ENOMEM; /* the caller frees the piece arrays */
		}
		npieces += g->nslots;
	}
	refs = calloc(npieces ? npieces : 1, sizeof(*refs));
	if (!refs) {
		rdm_errtext(err, errlen, "pin-all: out of memory for %zu pieces", npieces);
		return -ENOMEM;
	}
	for (unsigned r = 0; r < p->n; r++)
		for (uint64_t i = 0; i < p->regs[r].nslots; i++)
			refs[k++] = (struct pin_piece_ref){ .r = r, .i = i };
	j.refs = refs;
	j.n = npieces;
	atomic_init(&j.next, 0);
	atomic_init(&j.failed, false);
	ret = -pthread_mutex_init(&j.lock, NULL);
	if (ret) {
		rdm_errtext(err, errlen, "pin-all: pthread_mutex_init: %s", strerror(-ret));
		goto free_refs;
	}

	nthreads = p->o.threads < npieces ? p->o.threads : (unsigned)npieces;
	t0 = rdm_pin_now_us();
	/* The calling thread is a worker too: a failed pthread_create only slows us. */
	for (unsigned t = 1; t < nthreads; t++) {
		if (pthread_create(&tid[started], NULL, pin_all_worker, &j))
			break;
		started++;
	}
	pin_all_worker(&j);
	for (unsigned t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	p->st.reg_time_us = (uint64_t)(rdm_pin_now_us() - t0);

	ret = j.ret;
	if (ret) {
		rdm_errtext(err, errlen, "pin-all: %s", j.err);
		rdm_pin_all_release(p);
		goto destroy_lock;
	}
	p->st.registrations = npieces;
	rdm_pin_account_add(p, total);

destroy_lock:
	pthread_mutex_destroy(&j.lock);
free_refs:
	free(refs);
	return ret;
}
