/* SPDX-License-Identifier: MIT */
/*
 * The destination's first touch, off the receive path: before it accepts the
 * block list, a destination that will not run postcopy (whose memory must
 * stay missing for userfaultfd) populates its blocks for writing
 * (MADV_POPULATE_WRITE, contents unchanged) in parallel threads, so the
 * receivers copy into memory that is already there. Bounded in time: what is
 * not done by the deadline is left to the receivers.
 */
#ifndef RDMIG_CORE_PREFAULT_H
#define RDMIG_CORE_PREFAULT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rdmig_session;

/*
 * Populates s's blocks with up to threads threads for at most budget_ms.
 * *done gets the bytes populated. 0, or -errno when no thread could start
 * (a kernel without MADV_POPULATE_WRITE is not an error: nothing is done).
 */
int rdm_prefault(struct rdmig_session *s, unsigned threads, uint64_t budget_ms, uint64_t *done);

#ifdef __cplusplus
}
#endif

#endif
