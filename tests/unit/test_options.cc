// SPDX-License-Identifier: MIT
// Capabilities and parameters: defaults, ranges, combination rules, names.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/options.h"

namespace {

struct ParamInfo {
	enum rdmig_param id;
	const char *name;
	uint64_t def, lo, hi;
};

const std::vector<ParamInfo> kParams = {
#define X(n, s, d, l, h) {RDMIG_PARAM_##n, s, d, l, h},
	RDMIG_PARAM_LIST(X)
#undef X
};

struct CapInfo {
	enum rdmig_cap id;
	const char *name;
};

const std::vector<CapInfo> kCaps = {
#define X(n, s) {RDMIG_CAP_##n, s},
	RDMIG_CAP_LIST(X)
#undef X
};

struct rdm_options Defaults()
{
	struct rdm_options o;
	memset(&o, 0xa5, sizeof(o)); // init must not rely on a zeroed struct
	rdm_options_init(&o, RDMIG_ROLE_SOURCE);
	return o;
}

bool Same(const struct rdm_options &a, const struct rdm_options &b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

// Options where every parameter may take any value of its own range alone:
// the cross rule max-cpu-throttle >= cpu-throttle-initial holds for all of them.
struct rdm_options Permissive()
{
	struct rdm_options o = Defaults();
	o.params[RDMIG_PARAM_CPU_THROTTLE_INITIAL] = 1;
	o.params[RDMIG_PARAM_MAX_CPU_THROTTLE] = 99;
	o.caps[RDMIG_CAP_POSTCOPY_RAM] = true; /* what postcopy-after needs */
	return o;
}

TEST(Options, DefaultCaps)
{
	for (auto role : {RDMIG_ROLE_SOURCE, RDMIG_ROLE_DEST}) {
		struct rdm_options o;
		rdm_options_init(&o, role);
		for (const auto &c : kCaps) {
			bool want = c.id == RDMIG_CAP_ZERO_PAGE_DETECTION ||
				    c.id == RDMIG_CAP_RETURN_PATH || c.id == RDMIG_CAP_EVENTS;
			EXPECT_EQ(o.caps[c.id], want) << c.name << " role " << role;
		}
	}
}

TEST(Options, DefaultParams)
{
	for (auto role : {RDMIG_ROLE_SOURCE, RDMIG_ROLE_DEST}) {
		struct rdm_options o;
		rdm_options_init(&o, role);
		for (const auto &p : kParams)
			EXPECT_EQ(o.params[p.id], p.def) << p.name << " role " << role;
	}
	// A few spelled out, so an accidental edit of the list shows here.
	struct rdm_options o = Defaults();
	EXPECT_EQ(o.params[RDMIG_PARAM_DOWNTIME_LIMIT], 300u);
	EXPECT_EQ(o.params[RDMIG_PARAM_MAX_BANDWIDTH], 0u);
	EXPECT_EQ(o.params[RDMIG_PARAM_CHUNK_SIZE], 1u << 20);
}

TEST(Options, DefaultsPassCheck)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << err;
}

TEST(Options, BelowMinRejectedWithName)
{
	for (const auto &p : kParams) {
		if (p.lo == 0)
			continue; // no value below the range
		struct rdm_options o = Permissive(), before = o;
		char err[256] = "";
		EXPECT_EQ(rdm_options_set_param(&o, p.id, p.lo - 1, err, sizeof(err)), -EINVAL)
			<< p.name;
		EXPECT_NE(strstr(err, p.name), nullptr) << p.name << ": " << err;
		EXPECT_TRUE(Same(o, before)) << p.name;
	}
}

TEST(Options, AboveMaxRejectedWithName)
{
	for (const auto &p : kParams) {
		if (p.hi == UINT64_MAX)
			continue; // no value above the range
		struct rdm_options o = Permissive(), before = o;
		char err[256] = "";
		EXPECT_EQ(rdm_options_set_param(&o, p.id, p.hi + 1, err, sizeof(err)), -EINVAL)
			<< p.name;
		EXPECT_NE(strstr(err, p.name), nullptr) << p.name << ": " << err;
		EXPECT_TRUE(Same(o, before)) << p.name;
	}
}

TEST(Options, WrappedBelowZeroRejected)
{
	// min 0, max < UINT64_MAX: the "-1" a tool might pass wraps and must fail.
	struct rdm_options o = Defaults();
	char err[256] = "";
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_DOWNTIME_LIMIT, UINT64_MAX, err,
					sizeof(err)),
		  -EINVAL);
	EXPECT_NE(strstr(err, "downtime-limit"), nullptr) << err;
}

TEST(Options, RangeEndsAccepted)
{
	for (const auto &p : kParams) {
		for (uint64_t v : {p.lo, p.hi}) {
			struct rdm_options o = Permissive();
			char err[256] = "";
			EXPECT_EQ(rdm_options_set_param(&o, p.id, v, err, sizeof(err)), 0)
				<< p.name << "=" << v << ": " << err;
			EXPECT_EQ(o.params[p.id], v) << p.name;
			EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << err;
		}
	}
}

TEST(Options, RangeMessageFormat)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	ASSERT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_CPU_THROTTLE_INITIAL, 0, err, sizeof(err)),
		  -EINVAL);
	EXPECT_STREQ(err, "cpu-throttle-initial must be in 1..99, got 0");
}

TEST(Options, ChunkSizePowerOfTwo)
{
	struct rdm_options o = Defaults(), before = o;
	char err[256] = "";
	uint64_t odd = (1u << 20) + (1u << 19); // in range, not a power of two
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_CHUNK_SIZE, odd, err, sizeof(err)),
		  -EINVAL);
	EXPECT_NE(strstr(err, "chunk-size"), nullptr) << err;
	EXPECT_NE(strstr(err, "power of two"), nullptr) << err;
	EXPECT_TRUE(Same(o, before));
	for (uint64_t v = 1u << 20; v <= 1u << 30; v <<= 1) {
		EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_CHUNK_SIZE, v, err, sizeof(err)), 0)
			<< v << ": " << err;
	}
}

TEST(Options, MaxThrottleBelowInitialRejected)
{
	struct rdm_options o = Defaults(); // initial 20, max 99
	char err[256] = "";
	ASSERT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_MAX_CPU_THROTTLE, 19, err, sizeof(err)),
		  -EINVAL);
	EXPECT_NE(strstr(err, "max-cpu-throttle"), nullptr) << err;
	EXPECT_EQ(o.params[RDMIG_PARAM_MAX_CPU_THROTTLE], 99u);
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_MAX_CPU_THROTTLE, 20, err, sizeof(err)), 0)
		<< err;
}

TEST(Options, InitialAboveMaxThrottleRejected)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	ASSERT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_MAX_CPU_THROTTLE, 40, err, sizeof(err)), 0);
	struct rdm_options before = o;
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_CPU_THROTTLE_INITIAL, 41, err, sizeof(err)),
		  -EINVAL);
	EXPECT_NE(strstr(err, "cpu-throttle-initial"), nullptr) << err;
	EXPECT_TRUE(Same(o, before));
}

TEST(Options, UnknownIdsRejected)
{
	struct rdm_options o = Defaults(), before = o;
	char err[256] = "";
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP__COUNT, true, err, sizeof(err)), -EINVAL);
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM__COUNT, 1, err, sizeof(err)), -EINVAL);
	EXPECT_TRUE(Same(o, before));
}

TEST(Options, PostcopyRequiresReturnPath)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	ASSERT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_RETURN_PATH, false, err, sizeof(err)), 0);
	struct rdm_options before = o;
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_POSTCOPY_RAM, true, err, sizeof(err)), -EINVAL);
	EXPECT_STREQ(err, "postcopy-ram requires return-path");
	EXPECT_TRUE(Same(o, before));
}

TEST(Options, ReturnPathOffRejectedUnderPostcopy)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	ASSERT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_POSTCOPY_RAM, true, err, sizeof(err)), 0);
	struct rdm_options before = o;
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_RETURN_PATH, false, err, sizeof(err)), -EINVAL);
	EXPECT_STREQ(err, "postcopy-ram requires return-path");
	EXPECT_TRUE(Same(o, before));
}

TEST(Options, PostcopyAcceptedWithReturnPath)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	ASSERT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_POSTCOPY_RAM, true, err, sizeof(err)), 0);
	EXPECT_TRUE(o.caps[RDMIG_CAP_POSTCOPY_RAM]);
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << err;
}

TEST(Options, PostcopyAfterNeedsPostcopyRam)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	/* Either order is accepted when set; the migration's check refuses the lone parameter. */
	ASSERT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_POSTCOPY_AFTER, 3, err, sizeof(err)), 0);
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), -EINVAL);
	EXPECT_NE(strstr(err, "postcopy-after needs postcopy-ram"), nullptr) << err;
	ASSERT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_POSTCOPY_RAM, true, err, sizeof(err)), 0);
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << err;
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_POSTCOPY_AFTER, 1001, err, sizeof(err)),
		  -EINVAL);
}

// prefault would fill the memory postcopy's destination must keep missing.
TEST(Options, PrefaultAndPostcopyRamExcludeEachOther)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	ASSERT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_PREFAULT, true, err, sizeof(err)), 0);
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << err;
	ASSERT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_POSTCOPY_RAM, true, err, sizeof(err)), 0);
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), -EINVAL);
	EXPECT_NE(strstr(err, "prefault and postcopy-ram"), nullptr) << err;
}

TEST(Options, PostcopyWithAutoConvergeAllowed)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_AUTO_CONVERGE, true, err, sizeof(err)), 0);
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_POSTCOPY_RAM, true, err, sizeof(err)), 0)
		<< err;
	// As in QEMU the combination is fine (return-path is what postcopy needs).
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_RETURN_PATH, true, err, sizeof(err)), 0);
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << err;
}

TEST(Options, EveryOtherCapAloneAccepted)
{
	for (const auto &c : kCaps) {
		if (c.id == RDMIG_CAP_POSTCOPY_RAM || c.id == RDMIG_CAP_RELEASE_RAM)
			continue;
		for (bool on : {true, false}) {
			struct rdm_options o = Defaults();
			char err[256] = "";
			EXPECT_EQ(rdm_options_set_cap(&o, c.id, on, err, sizeof(err)), 0)
				<< c.name << " " << on << ": " << err;
			EXPECT_EQ(o.caps[c.id], on) << c.name;
			EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << c.name << ": " << err;
		}
	}
}

// release-ram frees pages only in postcopy: alone it would be a yes that does nothing.
TEST(Options, ReleaseRamNeedsPostcopyInEitherOrder)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_RELEASE_RAM, true, err, sizeof(err)), 0) << err;
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), -EINVAL);
	EXPECT_STREQ(err, "release-ram needs postcopy-ram");
	EXPECT_EQ(rdm_options_set_cap(&o, RDMIG_CAP_POSTCOPY_RAM, true, err, sizeof(err)), 0) << err;
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), 0) << err;
}

TEST(Options, CheckCatchesValuesWrittenDirectly)
{
	struct rdm_options o = Defaults();
	char err[256] = "";
	o.params[RDMIG_PARAM_CHANNELS] = 0;
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), -EINVAL);
	EXPECT_NE(strstr(err, "channels"), nullptr) << err;

	o = Defaults();
	o.caps[RDMIG_CAP_POSTCOPY_RAM] = true;
	o.caps[RDMIG_CAP_RETURN_PATH] = false;
	// The combination error wins over "not supported yet".
	EXPECT_EQ(rdm_options_check(&o, err, sizeof(err)), -EINVAL);
	EXPECT_STREQ(err, "postcopy-ram requires return-path");
}

TEST(Options, NullErrBufferAllowed)
{
	struct rdm_options o = Defaults();
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_CHANNELS, 0, nullptr, 0), -EINVAL);
	char one[1] = {'x'};
	EXPECT_EQ(rdm_options_set_param(&o, RDMIG_PARAM_CHANNELS, 0, one, sizeof(one)), -EINVAL);
	EXPECT_EQ(one[0], '\0'); // truncated, still terminated
}

TEST(Options, CapNamesRoundTrip)
{
	for (const auto &c : kCaps) {
		ASSERT_NE(rdmig_cap_name(c.id), nullptr);
		EXPECT_STREQ(rdmig_cap_name(c.id), c.name);
		enum rdmig_cap back = RDMIG_CAP__COUNT;
		EXPECT_EQ(rdmig_cap_from_name(c.name, &back), 0) << c.name;
		EXPECT_EQ(back, c.id) << c.name;
	}
	EXPECT_EQ(kCaps.size(), (size_t)RDMIG_CAP__COUNT);
}

TEST(Options, ParamNamesRoundTrip)
{
	for (const auto &p : kParams) {
		ASSERT_NE(rdmig_param_name(p.id), nullptr);
		EXPECT_STREQ(rdmig_param_name(p.id), p.name);
		enum rdmig_param back = RDMIG_PARAM__COUNT;
		EXPECT_EQ(rdmig_param_from_name(p.name, &back), 0) << p.name;
		EXPECT_EQ(back, p.id) << p.name;
	}
	EXPECT_EQ(kParams.size(), (size_t)RDMIG_PARAM__COUNT);
}

TEST(Options, UnknownNames)
{
	enum rdmig_cap c = RDMIG_CAP_EVENTS;
	enum rdmig_param p = RDMIG_PARAM_CHANNELS;
	EXPECT_EQ(rdmig_cap_from_name("no-such-cap", &c), -ENOENT);
	EXPECT_EQ(rdmig_cap_from_name("", &c), -ENOENT);
	EXPECT_EQ(rdmig_cap_from_name("downtime-limit", &c), -ENOENT); // a param, not a cap
	EXPECT_EQ(rdmig_param_from_name("no-such-param", &p), -ENOENT);
	EXPECT_EQ(rdmig_param_from_name("Downtime-Limit", &p), -ENOENT); // names are exact
	EXPECT_EQ(c, RDMIG_CAP_EVENTS);
	EXPECT_EQ(p, RDMIG_PARAM_CHANNELS);
	EXPECT_EQ(rdmig_cap_name(RDMIG_CAP__COUNT), nullptr);
	EXPECT_EQ(rdmig_param_name(RDMIG_PARAM__COUNT), nullptr);
}

} // namespace
