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
