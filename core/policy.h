/* SPDX-License-Identifier: MIT */
/*
 * Migration policy without I/O: bandwidth estimation, expected downtime, the
 * switchover decision, the bandwidth limit, and auto-converge (the logic of
 * QEMU's migration_update_counters / mig_throttle_guest_down), so each piece is
 * testable with made-up numbers.
 */
#ifndef RDMIG_CORE_POLICY_H
#define RDMIG_CORE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rdm_policy_cfg {
	uint64_t downtime_limit_ms;
	uint64_t max_bandwidth;        /* bytes/s, 0 = unlimited */
	bool auto_converge;
	unsigned throttle_initial;     /* % */
	unsigned throttle_increment;   /* % */
	unsigned throttle_max;         /* % */
	bool throttle_tailslow;
	unsigned trigger_threshold;    /* % */
};

struct rdm_policy {
	struct rdm_policy_cfg cfg;
	double bandwidth;          /* bytes/ms, smoothed; 0 until measured */
	unsigned throttle;         /* current %, 0 = none */
	unsigned dirty_high_count; /* consecutive periods dirtying too fast */
	uint64_t dirty_pages_rate; /* pages/s in the last period */
};

void rdm_policy_init(struct rdm_policy *p, const struct rdm_policy_cfg *cfg);

/* Account one period: bytes sent in elapsed_ms. Updates the bandwidth estimate. */
void rdm_policy_sent(struct rdm_policy *p, uint64_t bytes, uint64_t elapsed_ms);

/* remaining / bandwidth in ms; UINT64_MAX while no bandwidth is known. */
uint64_t rdm_policy_expected_downtime(const struct rdm_policy *p, uint64_t remaining_bytes);

/* true when remaining bytes can be sent within the downtime limit. */
bool rdm_policy_should_switch(const struct rdm_policy *p, uint64_t remaining_bytes);

/*
 * After a dirty sync: dirty_bytes dirtied and sent_bytes sent in the period of
 * period_ms. Returns the new throttle % (unchanged when auto-converge is off or
 * the guest keeps up): first cfg.throttle_initial, then + increment (or, with
 * tailslow, a step sized by how far dirtying outruns sending), capped at max.
 * A throttle is raised after the second consecutive period in which dirty_bytes
 * exceeds trigger_threshold % of sent_bytes, like QEMU.
 */
unsigned rdm_policy_after_sync(struct rdm_policy *p, uint64_t dirty_bytes, uint64_t dirty_pages,
			       uint64_t sent_bytes, uint64_t period_ms);

/*
 * Bandwidth limit: given bytes already sent in the current window that began
 * window_ms ago, how many ms to sleep before sending more (0 = go on).
 */
uint64_t rdm_policy_rate_delay_ms(const struct rdm_policy *p, uint64_t bytes_in_window,
				  uint64_t window_ms);

#ifdef __cplusplus
}
#endif

#endif
