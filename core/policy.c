/* SPDX-License-Identifier: MIT */
/*
 * Migration policy, pure arithmetic: the source session feeds it what it
 * measured and acts on the answers. The auto-converge rules are those of
 * QEMU's migration_trigger_throttle / mig_throttle_guest_down.
 */
#include <string.h>

#include "core/policy.h"

/* 128-bit intermediates keep byte*ms products exact for any uint64_t input. */
__extension__ typedef unsigned __int128 u128;

/* Weight of the newest sample: reacts within a few periods, ignores one odd period. */
#define BW_NEW_WEIGHT 0.5

void rdm_policy_init(struct rdm_policy *p, const struct rdm_policy_cfg *cfg)
{
	memset(p, 0, sizeof(*p));
	p->cfg = *cfg;
}

/* Plain fields read with atomics: C and C++ (the tests) share this header. */
void rdm_policy_set_live(struct rdm_policy *p, uint64_t downtime_limit_ms, uint64_t max_bandwidth)
{
	__atomic_store_n(&p->cfg.downtime_limit_ms, downtime_limit_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&p->cfg.max_bandwidth, max_bandwidth, __ATOMIC_RELAXED);
}

uint64_t rdm_policy_downtime_limit(const struct rdm_policy *p)
{
	return __atomic_load_n(&p->cfg.downtime_limit_ms, __ATOMIC_RELAXED);
}

uint64_t rdm_policy_max_bandwidth(const struct rdm_policy *p)
{
	return __atomic_load_n(&p->cfg.max_bandwidth, __ATOMIC_RELAXED);
}

double rdm_policy_rate(const struct rdm_policy *p)
{
	uint64_t bw = rdm_policy_max_bandwidth(p);
	double limit = (double)bw / 1000.0;

	double rate = p->bandwidth;

	/* The latest pass is the most like the final one: never assume faster than it went. */
	if (p->last_rate > 0 && p->last_rate < rate)
		rate = p->last_rate;
	/* A short pass inside the limiter's burst looks faster than the limit lets the final one go. */
	if (bw && rate > limit)
		return limit;
	return rate;
}

uint64_t rdm_rate_piece(uint64_t bw, uint64_t min_piece)
{
	uint64_t burst = (uint64_t)((u128)bw * RDM_RATE_BURST_MS / 1000);

	return burst > min_piece ? burst : min_piece;
}

uint64_t rdm_rate_take(struct rdm_rate *r, uint64_t bw, uint64_t len, uint64_t now_us)
{
	double burst = (double)bw * RDM_RATE_BURST_MS / 1000.0, need;

	if (!bw) {
		r->last_us = 0;
		return 0;
	}
	/* Starts empty: no burst at the start or after the limit is switched on. */
	if (!r->last_us || now_us < r->last_us) {
		r->tokens = 0;
		r->last_us = now_us;
	}
	r->tokens += (double)bw * (double)(now_us - r->last_us) / 1e6;
	r->last_us = now_us;
	if (r->tokens > burst)
		r->tokens = burst;
	/* A piece larger than the burst (one huge page at a tiny limit) goes into debt. */
	need = (double)len < burst ? (double)len : burst;
	if (r->tokens >= need) {
		r->tokens -= (double)len;
		return 0;
	}
	return (uint64_t)((need - r->tokens) * 1e6 / (double)bw) + 1;
}

void rdm_policy_sent(struct rdm_policy *p, uint64_t bytes, uint64_t elapsed_ms)
{
	double sample;

	/* A zero-length period says nothing about the rate. */
	if (!elapsed_ms)
		return;
	sample = (double)bytes / (double)elapsed_ms;
	p->last_rate = sample;
	p->passes++;
	if (p->bandwidth <= 0)
		p->bandwidth = sample; /* first sample as is: no history to smooth with */
	else
		p->bandwidth = BW_NEW_WEIGHT * sample + (1 - BW_NEW_WEIGHT) * p->bandwidth;
}

void rdm_policy_set_state_bytes(struct rdm_policy *p, uint64_t bytes)
{
	__atomic_store_n(&p->state_bytes, bytes, __ATOMIC_RELAXED);
}

void rdm_policy_ack_sample(struct rdm_policy *p, uint64_t us)
{
	uint64_t rtt = __atomic_load_n(&p->rtt_us, __ATOMIC_RELAXED);
	uint64_t tail = __atomic_load_n(&p->tail_us, __ATOMIC_RELAXED);

	if (!us)
		return;
	if (!rtt || us < rtt)
		__atomic_store_n(&p->rtt_us, us, __ATOMIC_RELAXED);
	tail = tail ? (uint64_t)(BW_NEW_WEIGHT * (double)us + (1 - BW_NEW_WEIGHT) * (double)tail) : us;
	__atomic_store_n(&p->tail_us, tail, __ATOMIC_RELAXED);
}

/* ceil(x) as a count of ms, or UINT64_MAX when it does not fit. */
static uint64_t ceil_ms(double ms)
{
	uint64_t q;

	/* 2^64 as a double; anything at or past it does not fit. */
	if (ms >= 18446744073709551616.0)
		return UINT64_MAX;
	/* Round up: the decision must not be optimistic by a fraction of a ms. */
	q = (uint64_t)ms;
	return (double)q < ms && q < UINT64_MAX ? q + 1 : q;
}

uint64_t rdm_policy_expected_downtime(const struct rdm_policy *p, uint64_t remaining_bytes)
{
	uint64_t state = __atomic_load_n(&p->state_bytes, __ATOMIC_RELAXED);
	uint64_t rtt = __atomic_load_n(&p->rtt_us, __ATOMIC_RELAXED);
	uint64_t tail = __atomic_load_n(&p->tail_us, __ATOMIC_RELAXED);
	double bw = rdm_policy_rate(p);
	double bytes = (double)remaining_bytes + (double)state * RDM_POLICY_STATE_COST;
	uint64_t data, acks;

	if (!bytes && !rtt && !tail)
		return 0;
	if (bytes && bw <= 0)
		return UINT64_MAX;
	data = bytes ? ceil_ms(bytes / bw) : 0;
	acks = ceil_ms((double)(tail + rtt) / 1000.0);
	return data > UINT64_MAX - acks ? UINT64_MAX : data + acks;
}

bool rdm_policy_should_switch(const struct rdm_policy *p, uint64_t remaining_bytes)
{
	uint64_t expected = rdm_policy_expected_downtime(p, remaining_bytes);

	if (remaining_bytes && p->passes < 2)
		return false;
	return expected != UINT64_MAX && expected <= rdm_policy_downtime_limit(p);
}

static unsigned min_u(unsigned a, unsigned b)
{
	return a < b ? a : b;
}

/* One throttle step (QEMU mig_throttle_guest_down). */
static void throttle_down(struct rdm_policy *p, uint64_t dirty_bytes, uint64_t threshold_bytes)
{
	const struct rdm_policy_cfg *c = &p->cfg;
	unsigned inc;

	if (!p->throttle) {
		p->throttle = min_u(c->throttle_initial, c->throttle_max);
		return;
	}
	inc = c->throttle_increment;
	if (c->throttle_tailslow) {
		/*
		 * The guest CPU share that would bring dirtying down to the
		 * threshold: cpu_now * threshold / dirty. Step only that far, so
		 * the last steps near convergence are small. dirty > threshold
		 * here, so ideal < now and the step is at least 1.
		 */
		unsigned cpu_now = 100 - p->throttle;
		unsigned cpu_ideal =
			(unsigned)((double)cpu_now * ((double)threshold_bytes / (double)dirty_bytes));

		inc = min_u(cpu_now - cpu_ideal, inc);
	}
	p->throttle = min_u(p->throttle + inc, c->throttle_max);
}

bool rdm_policy_postcopy_due(struct rdm_policy *p, uint64_t expected_downtime_ms)
{
	if (!p->cfg.postcopy_after)
		return false;
	if (!p->best_downtime || expected_downtime_ms < p->best_downtime) {
		p->best_downtime = expected_downtime_ms ? expected_downtime_ms : 1;
		p->stalls = 0;
		return false;
	}
	return ++p->stalls >= p->cfg.postcopy_after;
}

unsigned rdm_policy_after_sync(struct rdm_policy *p, uint64_t dirty_bytes, uint64_t dirty_pages,
			       uint64_t sent_bytes, uint64_t period_ms)
{
	uint64_t threshold_bytes;

	if (period_ms)
		p->dirty_pages_rate = (uint64_t)((u128)dirty_pages * 1000 / period_ms);
	else
		p->dirty_pages_rate = 0;

	if (!p->cfg.auto_converge)
		return p->throttle;

	threshold_bytes = (uint64_t)((u128)sent_bytes * p->cfg.trigger_threshold / 100);
	if (dirty_bytes <= threshold_bytes) {
		/* The guest kept up this period: only consecutive high periods count. */
		p->dirty_high_count = 0;
		return p->throttle;
	}
	if (++p->dirty_high_count >= 2) {
		p->dirty_high_count = 0;
		throttle_down(p, dirty_bytes, threshold_bytes);
	}
	return p->throttle;
}

uint64_t rdm_policy_rate_delay_ms(const struct rdm_policy *p, uint64_t bytes_in_window,
				  uint64_t window_ms)
{
	uint64_t bw = rdm_policy_max_bandwidth(p);
	u128 need_ms;

	if (!bw)
		return 0;
	/* Within budget: bytes <= bw * window / 1000, compared without division. */
	if ((u128)bytes_in_window * 1000 <= (u128)bw * window_ms)
		return 0;
	/* The window must last bytes / bw seconds; sleep the rest, rounded up. */
	need_ms = ((u128)bytes_in_window * 1000 + bw - 1) / bw;
	need_ms -= window_ms;
	return need_ms > UINT64_MAX ? UINT64_MAX : (uint64_t)need_ms;
}
