// SPDX-License-Identifier: MIT
// Migration policy with made-up numbers: bandwidth, downtime, switchover,
// auto-converge, rate limit.
#include <gtest/gtest.h>

#include <vector>

#include "core/policy.h"

namespace {

struct rdm_policy_cfg Cfg()
{
	struct rdm_policy_cfg c = {};
	c.downtime_limit_ms = 300;
	c.max_bandwidth = 0;
	c.auto_converge = true;
	c.throttle_initial = 20;
	c.throttle_increment = 10;
	c.throttle_max = 50;
	c.throttle_tailslow = false;
	c.trigger_threshold = 50;
	return c;
}

struct rdm_policy Make(const struct rdm_policy_cfg &c = Cfg())
{
	struct rdm_policy p;
	rdm_policy_init(&p, &c);
	return p;
}

// A period where the guest dirties twice what went out: over any threshold <= 100%.
unsigned High(struct rdm_policy *p)
{
	return rdm_policy_after_sync(p, 2000, 1, 1000, 100);
}

unsigned Low(struct rdm_policy *p)
{
	return rdm_policy_after_sync(p, 100, 1, 1000, 100);
}

TEST(Policy, InitState)
{
	struct rdm_policy p = Make();
	EXPECT_EQ(p.bandwidth, 0.0);
	EXPECT_EQ(p.throttle, 0u);
	EXPECT_EQ(p.dirty_high_count, 0u);
	EXPECT_EQ(p.dirty_pages_rate, 0u);
	EXPECT_EQ(p.cfg.throttle_max, 50u);
}

TEST(Policy, FirstBandwidthSampleTakenAsIs)
{
	struct rdm_policy p = Make();
	rdm_policy_sent(&p, 1000000, 100);
	EXPECT_DOUBLE_EQ(p.bandwidth, 10000.0); // bytes/ms
}

TEST(Policy, BandwidthSmoothed)
{
	struct rdm_policy p = Make();
	rdm_policy_sent(&p, 1000000, 100); // 10000 B/ms
	rdm_policy_sent(&p, 2000000, 100); // 20000 B/ms
	EXPECT_GT(p.bandwidth, 10000.0);
	EXPECT_LT(p.bandwidth, 20000.0);
	double prev = p.bandwidth;
	for (int i = 0; i < 60; i++) {
		rdm_policy_sent(&p, 2000000, 100);
		EXPECT_GE(p.bandwidth, prev);
		prev = p.bandwidth;
	}
	EXPECT_NEAR(p.bandwidth, 20000.0, 1.0);
}

TEST(Policy, SteadySamplesKeepBandwidth)
{
	struct rdm_policy p = Make();
	for (int i = 0; i < 5; i++)
		rdm_policy_sent(&p, 500, 10);
	EXPECT_DOUBLE_EQ(p.bandwidth, 50.0);
}

TEST(Policy, ZeroLengthPeriodIgnored)
{
	struct rdm_policy p = Make();
	rdm_policy_sent(&p, 12345, 0);
	EXPECT_EQ(p.bandwidth, 0.0);
	rdm_policy_sent(&p, 1000, 10);
	rdm_policy_sent(&p, 999999, 0);
	EXPECT_DOUBLE_EQ(p.bandwidth, 100.0);
}

TEST(Policy, ExpectedDowntimeUnknownBandwidth)
{
	struct rdm_policy p = Make();
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 1), UINT64_MAX);
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 0), 0u);
}

TEST(Policy, ExpectedDowntimeMath)
{
	struct rdm_policy p = Make();
	rdm_policy_sent(&p, 10000, 10); // 1000 B/ms
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 0), 0u);
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 300000), 300u);
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 300001), 301u); // rounded up
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 1), 1u);
}

// The stop sends the device state too, then waits for the final fence's ack and GO's.
TEST(Policy, ExpectedDowntimeCountsStateAndAcks)
{
	struct rdm_policy p = Make();
	rdm_policy_sent(&p, 10000, 10); // 1000 B/ms
	rdm_policy_sent(&p, 10000, 10); // a second pass, same rate
	rdm_policy_set_state_bytes(&p, 25000); // counted twice: the control stream is slower
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 0), 50u);
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 250000), 300u);
	EXPECT_TRUE(rdm_policy_should_switch(&p, 250000));
	rdm_policy_ack_sample(&p, 4000); // round trip 4 ms, nothing in flight
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 250000), 308u);
	EXPECT_FALSE(rdm_policy_should_switch(&p, 250000)) << "300 ms of data alone fits, the stop does not";
	rdm_policy_ack_sample(&p, 9000); // 5 ms more in flight: the tail grows, the round trip stays
	EXPECT_EQ(p.rtt_us, 4000u);
	EXPECT_EQ(p.tail_us, 6500u);
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 250000), 311u);
	// A slower latest pass is the rate the final one is expected at.
	rdm_policy_sent(&p, 5000, 10); // 500 B/ms; smoothed 750
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 250000), 611u);
	rdm_policy_sent(&p, 20000, 10); // 2000 B/ms: the smoothed 1375 is the lower now
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 225000), 200u + 11u);
}

// The first pass's rate, over all of RAM, does not decide a switch with pages left.
TEST(Policy, NoSwitchOnTheFirstPassAloneWithPagesLeft)
{
	struct rdm_policy p = Make(); // limit 300 ms
	rdm_policy_sent(&p, 10000, 10);
	EXPECT_FALSE(rdm_policy_should_switch(&p, 1000));
	EXPECT_TRUE(rdm_policy_should_switch(&p, 0)) << "nothing left: nothing to estimate";
	rdm_policy_sent(&p, 10000, 10);
	EXPECT_TRUE(rdm_policy_should_switch(&p, 1000));
	// Nothing but acks: known even before any bandwidth is.
	struct rdm_policy q = Make();
	rdm_policy_ack_sample(&q, 100);
	EXPECT_EQ(rdm_policy_expected_downtime(&q, 0), 1u);
	EXPECT_EQ(rdm_policy_expected_downtime(&q, 1), UINT64_MAX);
}

TEST(Policy, ExpectedDowntimeSaturates)
{
	struct rdm_policy p = Make();
	p.bandwidth = 1e-9; // tiny but known
	EXPECT_EQ(rdm_policy_expected_downtime(&p, UINT64_MAX), UINT64_MAX);
}

TEST(Policy, SwitchAtBoundary)
{
	struct rdm_policy p = Make(); // limit 300 ms
	rdm_policy_sent(&p, 10000, 10); // 1000 B/ms
	rdm_policy_sent(&p, 10000, 10);
	EXPECT_TRUE(rdm_policy_should_switch(&p, 299999));
	EXPECT_TRUE(rdm_policy_should_switch(&p, 300000));
	EXPECT_FALSE(rdm_policy_should_switch(&p, 300001));
}

TEST(Policy, NoSwitchWithoutBandwidthUnlessNothingLeft)
{
	struct rdm_policy p = Make();
	EXPECT_FALSE(rdm_policy_should_switch(&p, 1));
	EXPECT_TRUE(rdm_policy_should_switch(&p, 0));
}

TEST(Policy, ZeroDowntimeLimitNeedsNothingLeft)
{
	struct rdm_policy_cfg c = Cfg();
	c.downtime_limit_ms = 0;
	struct rdm_policy p = Make(c);
	rdm_policy_sent(&p, 10000, 10);
	EXPECT_FALSE(rdm_policy_should_switch(&p, 1));
	EXPECT_TRUE(rdm_policy_should_switch(&p, 0));
}

TEST(Policy, DirtyPagesRate)
{
	struct rdm_policy p = Make();
	rdm_policy_after_sync(&p, 0, 250, 0, 500);
	EXPECT_EQ(p.dirty_pages_rate, 500u); // 250 pages in 0.5 s
	rdm_policy_after_sync(&p, 0, 7, 0, 0);
	EXPECT_EQ(p.dirty_pages_rate, 0u); // no period, no rate
}

TEST(Policy, DirtyPagesRateWithoutAutoConverge)
{
	struct rdm_policy_cfg c = Cfg();
	c.auto_converge = false;
	struct rdm_policy p = Make(c);
	rdm_policy_after_sync(&p, 0, 1000, 0, 1000);
	EXPECT_EQ(p.dirty_pages_rate, 1000u);
}

TEST(Policy, NoThrottleWithoutAutoConverge)
{
	struct rdm_policy_cfg c = Cfg();
	c.auto_converge = false;
	struct rdm_policy p = Make(c);
	for (int i = 0; i < 10; i++)
		EXPECT_EQ(High(&p), 0u);
	EXPECT_EQ(p.throttle, 0u);
}

TEST(Policy, ThrottleSequenceTwoHighPeriodsPerStep)
{
	struct rdm_policy p = Make(); // initial 20, +10, max 50
	const std::vector<unsigned> want = {0, 20, 20, 30, 30, 40, 40, 50, 50, 50, 50, 50};
	for (size_t i = 0; i < want.size(); i++) {
		EXPECT_EQ(High(&p), want[i]) << "high period " << i + 1;
		EXPECT_EQ(p.throttle, want[i]);
	}
}

TEST(Policy, ThrottleCountResetAfterRaise)
{
	struct rdm_policy p = Make();
	High(&p);
	EXPECT_EQ(p.dirty_high_count, 1u);
	EXPECT_EQ(High(&p), 20u);
	EXPECT_EQ(p.dirty_high_count, 0u);
}

TEST(Policy, LowPeriodResetsCount)
{
	struct rdm_policy p = Make();
	EXPECT_EQ(High(&p), 0u);
	EXPECT_EQ(Low(&p), 0u);
	EXPECT_EQ(p.dirty_high_count, 0u);
	EXPECT_EQ(High(&p), 0u); // the count starts again
	EXPECT_EQ(High(&p), 20u);
	EXPECT_EQ(High(&p), 20u);
	EXPECT_EQ(Low(&p), 20u); // a low period keeps the throttle
	EXPECT_EQ(High(&p), 20u);
	EXPECT_EQ(High(&p), 30u);
}

TEST(Policy, ThresholdBoundaryIsNotHigh)
{
	struct rdm_policy p = Make(); // threshold 50%
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(rdm_policy_after_sync(&p, 500, 1, 1000, 100), 0u); // exactly 50%
	EXPECT_EQ(rdm_policy_after_sync(&p, 501, 1, 1000, 100), 0u);
	EXPECT_EQ(rdm_policy_after_sync(&p, 501, 1, 1000, 100), 20u);
}

TEST(Policy, NothingSentCountsAsHigh)
{
	struct rdm_policy p = Make();
	rdm_policy_after_sync(&p, 1, 1, 0, 100);
	EXPECT_EQ(rdm_policy_after_sync(&p, 1, 1, 0, 100), 20u);
	rdm_policy_after_sync(&p, 0, 0, 0, 100); // nothing dirtied: low
	EXPECT_EQ(p.dirty_high_count, 0u);
}

TEST(Policy, InitialCappedByMax)
{
	struct rdm_policy_cfg c = Cfg();
	c.throttle_initial = 60; // bad config reaching the policy anyway
	struct rdm_policy p = Make(c);
	High(&p);
	EXPECT_EQ(High(&p), 50u);
}

TEST(Policy, TailslowSmallStepNearThreshold)
{
	struct rdm_policy_cfg c = Cfg();
	c.throttle_tailslow = true;
	struct rdm_policy p = Make(c);
	High(&p);
	ASSERT_EQ(High(&p), 20u); // the first step is the initial value either way
	// Dirty 520 vs threshold 500: cpu 80% -> ideal 80*500/520 = 76, step 4.
	rdm_policy_after_sync(&p, 520, 1, 1000, 100);
	EXPECT_EQ(rdm_policy_after_sync(&p, 520, 1, 1000, 100), 24u);
}

TEST(Policy, TailslowDiffersFromFixedStep)
{
	struct rdm_policy_cfg c = Cfg();
	struct rdm_policy fixed = Make(c);
	c.throttle_tailslow = true;
	struct rdm_policy slow = Make(c);
	for (int i = 0; i < 4; i++) {
		rdm_policy_after_sync(&fixed, 520, 1, 1000, 100);
		rdm_policy_after_sync(&slow, 520, 1, 1000, 100);
	}
	EXPECT_EQ(fixed.throttle, 30u);
	EXPECT_EQ(slow.throttle, 24u);
}

TEST(Policy, TailslowStepCappedByIncrement)
{
	struct rdm_policy_cfg c = Cfg();
	c.throttle_tailslow = true;
	struct rdm_policy p = Make(c);
	// Dirty 10x the threshold: ideal cpu 8%, but the step stays at the increment.
	for (int i = 0; i < 4; i++)
		rdm_policy_after_sync(&p, 5000, 1, 1000, 100);
	EXPECT_EQ(p.throttle, 30u);
}

TEST(Policy, RateDelayUnlimited)
{
	struct rdm_policy p = Make();
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, UINT64_MAX, 0), 0u);
}

TEST(Policy, RateDelayWithinBudget)
{
	struct rdm_policy_cfg c = Cfg();
	c.max_bandwidth = 1000000; // 1000 B/ms
	struct rdm_policy p = Make(c);
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, 0, 0), 0u);
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, 50000, 100), 0u);
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, 100000, 100), 0u); // exactly at budget
}

TEST(Policy, RateDelayMath)
{
	struct rdm_policy_cfg c = Cfg();
	c.max_bandwidth = 1000000; // 1000 B/ms
	struct rdm_policy p = Make(c);
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, 150000, 100), 50u);
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, 100001, 100), 1u); // rounded up, never 0
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, 5000, 0), 5u);
}

TEST(Policy, RateDelayHugeNumbers)
{
	struct rdm_policy_cfg c = Cfg();
	c.max_bandwidth = UINT64_MAX;
	struct rdm_policy p = Make(c);
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, UINT64_MAX, 1000), 0u); // no overflow
	c.max_bandwidth = 1;
	p = Make(c);
	EXPECT_EQ(rdm_policy_rate_delay_ms(&p, UINT64_MAX, 0), UINT64_MAX); // saturates
}

} // namespace

// The token bucket: simulated time, a sender that always wants more.
struct Sent {
	uint64_t total = 0, max_in_100ms = 0;
};

Sent RunBucket(uint64_t bw, uint64_t piece, uint64_t seconds)
{
	struct rdm_rate r = {};
	std::vector<std::pair<uint64_t, uint64_t>> log; // (time us, bytes)
	uint64_t now = 1000000, end = now + seconds * 1000000;
	Sent s;
	while (now < end) {
		uint64_t wait = rdm_rate_take(&r, bw, piece, now);
		if (wait) {
			now += wait;
			continue;
		}
		log.push_back({now, piece});
		s.total += piece;
	}
	// Largest amount sent within any 100 ms window.
	size_t lo = 0;
	uint64_t in = 0;
	for (size_t hi = 0; hi < log.size(); hi++) {
		in += log[hi].second;
		while (log[hi].first - log[lo].first >= 100000)
			in -= log[lo++].second;
		s.max_in_100ms = std::max(s.max_in_100ms, in);
	}
	return s;
}

TEST(Policy, RateBucketAverageFollowsTheLimit)
{
	const uint64_t bw = 5u << 20;
	Sent s = RunBucket(bw, 64 << 10, 10);
	EXPECT_GE(s.total, bw * 10 - (1u << 20));
	EXPECT_LE(s.total, bw * 10 + bw / 10 + (64 << 10));
}

TEST(Policy, RateBucketBurstsAtMostATenthOfASecond)
{
	const uint64_t bw = 5u << 20;
	const uint64_t piece = rdm_rate_piece(bw, 4096);
	EXPECT_LE(piece, bw / 10);
	Sent s = RunBucket(bw, piece, 5);
	// 100 ms of refill plus at most one burst already in the bucket.
	EXPECT_LE(s.max_in_100ms, bw / 10 + piece);
	Sent small = RunBucket(bw, 4096, 5);
	EXPECT_LE(small.max_in_100ms, bw / 10 + bw / 10 + 4096);
}

TEST(Policy, RateBucketStartsEmptyAndOffIsFree)
{
	struct rdm_rate r = {};
	EXPECT_EQ(rdm_rate_take(&r, 0, 1u << 30, 5), 0u);
	// First request at a limit: nothing saved up yet.
	EXPECT_GT(rdm_rate_take(&r, 1000000, 100000, 1000000), 0u);
	// 100 ms later the bucket holds 100 KB.
	EXPECT_EQ(rdm_rate_take(&r, 1000000, 100000, 1100000), 0u);
}

TEST(Policy, RateBucketPieceLargerThanBurstGoesIntoDebt)
{
	struct rdm_rate r = {};
	// 1 KB/s, 2 MiB pages: the burst is 100 bytes, a page still goes when it is full.
	uint64_t now = 1000000, t0 = now;
	int pages = 0;
	while (pages < 2) {
		uint64_t w = rdm_rate_take(&r, 1000, 2u << 20, now);
		if (w)
			now += w;
		else
			pages++;
	}
	// The second page waited for the first one's debt: ~2 MiB / 1 KB/s.
	EXPECT_GE(now - t0, (uint64_t)(2u << 20) * 1000);
}

TEST(Policy, DowntimeEstimateNeverUsesMoreThanTheLimit)
{
	struct rdm_policy_cfg c = Cfg();
	c.max_bandwidth = 5u << 20; // 5 MiB/s = 5242.88 B/ms
	struct rdm_policy p = Make(c);
	// A small pass finished inside the burst: 100x the limit.
	rdm_policy_sent(&p, 5u << 20, 10);
	EXPECT_NEAR(rdm_policy_rate(&p), 5242.88, 0.01);
	// 1 MiB left at 5 MiB/s is 200 ms, not 2 ms.
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 1u << 20), 200u);
	// Lifted live: the measured rate counts again.
	rdm_policy_set_live(&p, c.downtime_limit_ms, 0);
	EXPECT_EQ(rdm_policy_expected_downtime(&p, 1u << 20), 2u);
}

TEST(Policy, LiveDowntimeLimitDecidesTheNextSwitch)
{
	struct rdm_policy p = Make();
	rdm_policy_sent(&p, 1000, 1); // 1000 B/ms
	rdm_policy_sent(&p, 1000, 1);
	EXPECT_FALSE(rdm_policy_should_switch(&p, 10000000)); // 10 s > default limit
	rdm_policy_set_live(&p, 20000, 0);
	EXPECT_TRUE(rdm_policy_should_switch(&p, 10000000));
	EXPECT_EQ(rdm_policy_downtime_limit(&p), 20000u);
}

TEST(Policy, PostcopyNeverWithoutPostcopyAfter)
{
	auto p = Make();
	for (int i = 0; i < 100; i++)
		EXPECT_FALSE(rdm_policy_postcopy_due(&p, 5000));
}

TEST(Policy, PostcopyDueAfterPassesWithoutProgress)
{
	auto c = Cfg();
	c.postcopy_after = 3;
	auto p = Make(c);
	/* Falling: progress every pass. */
	for (uint64_t d : {9000, 8000, 7000, 6000})
		EXPECT_FALSE(rdm_policy_postcopy_due(&p, d)) << d;
	/* Not below 6000 three times in a row: due on the third. */
	EXPECT_FALSE(rdm_policy_postcopy_due(&p, 6500));
	EXPECT_FALSE(rdm_policy_postcopy_due(&p, 6000));
	/* A new best starts the count again. */
	EXPECT_FALSE(rdm_policy_postcopy_due(&p, 5000));
	EXPECT_FALSE(rdm_policy_postcopy_due(&p, 7000));
	EXPECT_FALSE(rdm_policy_postcopy_due(&p, 5000));
	EXPECT_TRUE(rdm_policy_postcopy_due(&p, UINT64_MAX)) << "no bandwidth known is no progress";
}
