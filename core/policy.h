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
	unsigned postcopy_after;       /* passes without progress before postcopy; 0 = never */
};

struct rdm_policy {
	struct rdm_policy_cfg cfg;
	double bandwidth;          /* bytes/ms, smoothed; 0 until measured */
	unsigned throttle;         /* current %, 0 = none */
	unsigned dirty_high_count; /* consecutive periods dirtying too fast */
	uint64_t dirty_pages_rate; /* pages/s in the last period */
	uint64_t best_downtime;    /* the lowest expected downtime after a pass; 0 = none yet */
	unsigned stalls;           /* passes since it last fell */
	/*
	 * What the stop costs besides the RAM left, learned as it goes (atomic:
	 * the return path samples the round trip while the sender decides).
	 */
	uint64_t state_bytes; /* device state to send: the VMM's hint or the last save */
	uint64_t rtt_us;      /* the shortest pass-end ack seen: the link's round trip; 0 = none */
	uint64_t tail_us;     /* pass-end acks, smoothed: what is still in flight, plus a trip */
	double last_rate;     /* bytes/ms of the latest pass alone; 0 = none */
	unsigned passes;      /* rate samples so far */
};

/*
 * Device state goes over the control stream (SEND/RECV messages over rdma,
 * the control socket over tcp), slower than page writes: 1 MiB of it took
 * 1.8x (tcp) to 2.5x (rxe) its time at the data rate at the stop
 * (bench/downtime.sh). The estimate counts each of its bytes this many times.
 */
#define RDM_POLICY_STATE_COST 2

void rdm_policy_init(struct rdm_policy *p, const struct rdm_policy_cfg *cfg);

/*
 * Live parameters: downtime-limit and max-bandwidth change while the source
 * runs (rdmig_set_parameter from any thread). Written and read atomically;
 * the switchover decision and the limiter read them every time.
 */
void rdm_policy_set_live(struct rdm_policy *p, uint64_t downtime_limit_ms, uint64_t max_bandwidth);
uint64_t rdm_policy_downtime_limit(const struct rdm_policy *p);
uint64_t rdm_policy_max_bandwidth(const struct rdm_policy *p);

/* The rate the downtime estimate uses: measured, and never above max-bandwidth (bytes/ms). */
double rdm_policy_rate(const struct rdm_policy *p);

/*
 * max-bandwidth as a token bucket: bytes refill at bw per second and at most
 * RDM_RATE_BURST_MS worth accumulate, so the rate over any ~100 ms follows the
 * limit (a window that resets each second let a whole second's budget go in
 * one burst). Callers split writes into pieces of at most rdm_rate_piece().
 */
#define RDM_RATE_BURST_MS 100
struct rdm_rate {
	double tokens;    /* bytes that may go now; negative: debt of an oversized piece */
	uint64_t last_us; /* last refill; 0 = not started */
};
/* Largest piece worth sending at once under bw: the burst, at least min_piece. */
uint64_t rdm_rate_piece(uint64_t bw, uint64_t min_piece);
/*
 * len more bytes at now_us under bw (bytes/s, 0 = none): 0 when they may go now
 * (the bucket is charged), else the microseconds to wait before asking again.
 */
uint64_t rdm_rate_take(struct rdm_rate *r, uint64_t bw, uint64_t len, uint64_t now_us);

/* Account one period: bytes sent in elapsed_ms. Updates the bandwidth estimate. */
void rdm_policy_sent(struct rdm_policy *p, uint64_t bytes, uint64_t elapsed_ms);

/* Device state the stop will send (bytes). */
void rdm_policy_set_state_bytes(struct rdm_policy *p, uint64_t bytes);
/*
 * One pass end timed from its ITER_END to the ack (us): the shortest is the
 * link's round trip, the smoothed one also holds what the transport still had
 * in flight when the pass returned, which the stop's last pass waits for too.
 */
void rdm_policy_ack_sample(struct rdm_policy *p, uint64_t us);

/*
 * The downtime a stop now would take, in ms: (remaining + device state) over
 * the rate (the smoothed bandwidth, or the latest pass's when that is lower:
 * the last passes are small like the final one), then the final fence's ack
 * (the smoothed pass-end ack) and GO's (one round trip); UINT64_MAX while no
 * bandwidth is known. 0 only when nothing at all is left to do.
 */
uint64_t rdm_policy_expected_downtime(const struct rdm_policy *p, uint64_t remaining_bytes);

/*
 * true when remaining bytes can be sent within the downtime limit. Not after
 * the first pass alone while anything is left: its rate, over all of RAM,
 * says little about a short pass like the final one (the second pass's does).
 */
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
 * After a pass, with the downtime it leaves expected: true once postcopy_after
 * passes in a row failed to bring it below the best one so far (precopy is
 * not converging: switch to postcopy). Never with postcopy_after 0.
 */
bool rdm_policy_postcopy_due(struct rdm_policy *p, uint64_t expected_downtime_ms);

/*
 * Bandwidth limit over a window: given bytes already sent in a window that
 * began window_ms ago, how many ms to sleep before sending more (0 = go on).
 * (The sender uses rdm_rate_take(); this stays for whole-window checks.)
 */
uint64_t rdm_policy_rate_delay_ms(const struct rdm_policy *p, uint64_t bytes_in_window,
				  uint64_t window_ms);

#ifdef __cplusplus
}
#endif

#endif
