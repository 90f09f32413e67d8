/* SPDX-License-Identifier: MIT */
/* What every room of the rdma transport shares: the first error, clocks, errno (see rdma_int.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "transport/rdma/rdma_int.h"

uint64_t rt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rt_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : rt_now_ms() + (uint64_t)timeout_ms;
}

void rt_slice(struct timespec *ts, int ms)
{
	if (ms > 100 || ms < 0)
		ms = 100;
	clock_gettime(CLOCK_MONOTONIC, ts); /* r->cond runs on the monotonic clock */
	ts->tv_nsec += (long)ms * 1000000;
	while (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* rdma-core speaks three dialects; this is where they become -errno. */
int rt_errno(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == -1)
		return errno ? -errno : -EIO;
	return rc > 0 ? -rc : rc;
}

/* Lock held. This call's own text for its thread; the first failure's for everyone else. */
static int vfail(struct rdm_rdma *r, int err, const char *fmt, va_list ap)
{
	rdm_tp_vfail(err, fmt, ap);
	if (!r->error) {
		r->error = err ? err : -EIO;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", rdm_tp_errmsg());
	}
	pthread_cond_broadcast(&r->cond);
	return err;
}

int rt_fail_locked(struct rdm_rdma *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(r, err, fmt, ap);
	va_end(ap);
	return err;
}

int rt_fail(struct rdm_rdma *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&r->lock);
	vfail(r, err, fmt, ap);
	pthread_mutex_unlock(&r->lock);
	va_end(ap);
	return err;
}

/*
 * A call that failed without text of its own returned the sticky error another
 * thread (progress, cm, keys) recorded: give the caller that error's text.
 */
int rt_ret(struct rdm_rdma *r, int ret)
{
	if (!ret || rdm_tp_errmsg()[0])
		return ret;
	pthread_mutex_lock(&r->lock);
	if (r->error)
		rdm_tp_fail(ret, "%s", r->errmsg);
	pthread_mutex_unlock(&r->lock);
	return ret;
}
