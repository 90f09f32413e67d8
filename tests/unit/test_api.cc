/* SPDX-License-Identifier: MIT */
/* The public API's checks, through rdmig.h alone: bad input is a clear error. */
#include <gtest/gtest.h>
#include <stddef.h>

#include <string.h>
#include <sys/mman.h>

#include "rdmig/rdmig.h"

namespace {

class Api : public ::testing::Test {
      protected:
	void SetUp() override
	{
		mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, mem);
		ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, nullptr, nullptr, &src));
		ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_DEST, nullptr, nullptr, &dst));
	}
	void TearDown() override
	{
		rdmig_session_destroy(src);
		rdmig_session_destroy(dst);
		munmap(mem, len);
	}
	bool ErrorMentions(rdmig_session *s, const char *what)
	{
		return strstr(rdmig_last_error(s), what) != nullptr;
	}
	size_t len = 1 << 20;
	void *mem = nullptr;
	rdmig_session *src = nullptr, *dst = nullptr;
};

TEST_F(Api, CreateRejectsBadArguments)
{
	rdmig_session *s;
	EXPECT_EQ(-EINVAL, rdmig_session_create((rdmig_role)7, nullptr, nullptr, &s));
	EXPECT_EQ(-EINVAL, rdmig_session_create(RDMIG_ROLE_SOURCE, nullptr, nullptr, nullptr));
	rdmig_callbacks big{};
	big.size = sizeof(big) + 8; /* built against a newer header */
	EXPECT_EQ(-EINVAL, rdmig_session_create(RDMIG_ROLE_SOURCE, &big, nullptr, &s));
}

TEST_F(Api, AddBlockChecksEveryField)
{
	EXPECT_EQ(-EINVAL, rdmig_add_block(src, "", mem, len, 4096));
	EXPECT_EQ(-EINVAL, rdmig_add_block(src, "ram", nullptr, len, 4096));
	EXPECT_EQ(-EINVAL, rdmig_add_block(src, "ram", mem, len, 3000));
	EXPECT_EQ(-EINVAL, rdmig_add_block(src, "ram", mem, 0, 4096));
	EXPECT_EQ(-EINVAL, rdmig_add_block(src, "ram", mem, 4096 + 100, 4096));
	std::string longname(300, 'x');
	EXPECT_EQ(-EINVAL, rdmig_add_block(src, longname.c_str(), mem, len, 4096));
	EXPECT_EQ(0, rdmig_add_block(src, "ram", mem, len, 4096));
	EXPECT_EQ(-EEXIST, rdmig_add_block(src, "ram", mem, len, 4096));
	EXPECT_TRUE(ErrorMentions(src, "twice"));
}

TEST_F(Api, BadUrisAreClearErrors)
{
	ASSERT_EQ(0, rdmig_add_block(src, "ram", mem, len, 4096));
	const char *bad[] = {"", "tcp", "tcp:", "tcp:127.0.0.1", "tcp:127.0.0.1:", "tcp::4444",
			     "udp:127.0.0.1:4444", "tcp:127.0.0.1:99999", "tcp:127.0.0.1:44x",
			     "tcp:::1:4444", "tcp:[::1:4444", "rdma:300.1.1.1:4444",
			     "tcp:example.com:4444"};
	for (const char *uri : bad) {
		EXPECT_EQ(-EINVAL, rdmig_migrate(src, uri)) << uri;
		EXPECT_TRUE(ErrorMentions(src, "URI")) << uri << ": " << rdmig_last_error(src);
	}
	rdmig_stats st = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(src, &st));
	EXPECT_EQ(RDMIG_STATUS_NONE, st.status) << "a refused migrate must not start anything";
}

/* The stats carry their size: unset is refused, a newer caller's larger struct gets this layout. */
TEST_F(Api, QueryNeedsTheStatsSize)
{
	rdmig_stats st{};
	EXPECT_EQ(-EINVAL, rdmig_query(src, &st));
	EXPECT_TRUE(ErrorMentions(src, "RDMIG_STATS_INIT")) << rdmig_last_error(src);
	/* The 0.1/0.2 layout ends where the postcopy counters begin: less is refused. */
	const size_t old_size = offsetof(rdmig_stats, postcopy_requests);
	st.size = old_size - 1;
	EXPECT_EQ(-EINVAL, rdmig_query(src, &st));
	memset(&st, 0xa5, sizeof(st));
	st.size = old_size;
	ASSERT_EQ(0, rdmig_query(src, &st)) << "a caller built against 0.2";
	EXPECT_EQ(old_size, st.size);
	EXPECT_EQ(RDMIG_STATUS_NONE, st.status);
	EXPECT_EQ(0xa5a5a5a5a5a5a5a5ull, st.postcopy_requests) << "past its layout nothing is written";
	struct {
		rdmig_stats st;
		uint8_t future[64];
	} big;
	memset(&big, 0xa5, sizeof(big));
	big.st.size = sizeof(big);
	ASSERT_EQ(0, rdmig_query(src, &big.st));
	EXPECT_EQ(sizeof(rdmig_stats), big.st.size) << "size says how much was filled";
	EXPECT_EQ(RDMIG_STATUS_NONE, big.st.status);
	for (uint8_t b : big.future)
		ASSERT_EQ(0xa5, b) << "nothing past this layout is written";
}

TEST_F(Api, MigrateNeedsBlocksAndTheRightRole)
{
	EXPECT_EQ(-EINVAL, rdmig_migrate(src, "tcp:127.0.0.1:4444"));
	EXPECT_TRUE(ErrorMentions(src, "no RAM blocks"));
	ASSERT_EQ(0, rdmig_add_block(dst, "ram", mem, len, 4096));
	EXPECT_EQ(-EINVAL, rdmig_migrate(dst, "tcp:127.0.0.1:4444"));
	EXPECT_EQ(-EINVAL, rdmig_incoming(src, "tcp:127.0.0.1:0"));
}

TEST_F(Api, ParametersAreCheckedWhenSet)
{
	uint64_t v;
	EXPECT_EQ(-EINVAL, rdmig_set_parameter(src, RDMIG_PARAM_CPU_THROTTLE_INITIAL, 0));
	EXPECT_TRUE(ErrorMentions(src, "cpu-throttle-initial"));
	EXPECT_EQ(-EINVAL, rdmig_set_parameter(src, RDMIG_PARAM_CHUNK_SIZE, (1 << 20) + 4096));
	EXPECT_TRUE(ErrorMentions(src, "chunk-size"));
	EXPECT_EQ(-EINVAL, rdmig_set_parameter(src, RDMIG_PARAM_CHANNELS, 0));
	ASSERT_EQ(0, rdmig_get_parameter(src, RDMIG_PARAM_CHANNELS, &v));
	EXPECT_EQ(2u, v) << "a refused value must leave the old one";
	EXPECT_EQ(0, rdmig_set_parameter(src, RDMIG_PARAM_DOWNTIME_LIMIT, 50));
	ASSERT_EQ(0, rdmig_get_parameter(src, RDMIG_PARAM_DOWNTIME_LIMIT, &v));
	EXPECT_EQ(50u, v);
	EXPECT_EQ(-EINVAL, rdmig_set_parameter(src, (rdmig_param)999, 1));
}

TEST_F(Api, PostcopyIsCheckedAndReleaseRamRefusedOverRdma)
{
	ASSERT_EQ(0, rdmig_add_block(src, "ram", mem, len, 4096));
	ASSERT_EQ(0, rdmig_set_capability(src, RDMIG_CAP_RETURN_PATH, false));
	EXPECT_EQ(-EINVAL, rdmig_set_capability(src, RDMIG_CAP_POSTCOPY_RAM, true));
	EXPECT_TRUE(ErrorMentions(src, "return-path"));
	ASSERT_EQ(0, rdmig_set_capability(src, RDMIG_CAP_RETURN_PATH, true));
	ASSERT_EQ(0, rdmig_set_capability(src, RDMIG_CAP_POSTCOPY_RAM, true));
	/* Over rdma the destination reads the source's RAM, registered until the end. */
	ASSERT_EQ(0, rdmig_set_capability(src, RDMIG_CAP_RELEASE_RAM, true));
	EXPECT_EQ(-ENOTSUP, rdmig_migrate(src, "rdma:127.0.0.1:4444"));
	EXPECT_TRUE(ErrorMentions(src, "release-ram is not available over rdma"));
	ASSERT_EQ(0, rdmig_set_capability(src, RDMIG_CAP_RELEASE_RAM, false));
	/* Not started: postcopy can be asked for only while a migration runs. */
	EXPECT_EQ(-EINVAL, rdmig_postcopy_start(src));
	EXPECT_TRUE(ErrorMentions(src, "postcopy"));
	EXPECT_EQ(-EINVAL, rdmig_postcopy_start(dst));
	EXPECT_TRUE(ErrorMentions(dst, "source"));
}

TEST_F(Api, NamesRoundTrip)
{
	for (int c = 0; c < RDMIG_CAP__COUNT; c++) {
		rdmig_cap back;
		ASSERT_NE(nullptr, rdmig_cap_name((rdmig_cap)c));
		ASSERT_EQ(0, rdmig_cap_from_name(rdmig_cap_name((rdmig_cap)c), &back));
		EXPECT_EQ(c, back);
	}
	rdmig_param p;
	EXPECT_EQ(0, rdmig_param_from_name("max-bandwidth", &p));
	EXPECT_EQ(RDMIG_PARAM_MAX_BANDWIDTH, p);
	EXPECT_EQ(-ENOENT, rdmig_param_from_name("no-such-thing", &p));
	EXPECT_STREQ("pre-switchover", rdmig_status_name(RDMIG_STATUS_PRE_SWITCHOVER));
	EXPECT_STREQ("cancelled", rdmig_status_name(RDMIG_STATUS_CANCELLED));
}

TEST_F(Api, WaitAndCancelBeforeStartAreErrors)
{
	rdmig_status st;
	EXPECT_EQ(-ENOTCONN, rdmig_wait(src, 0, &st));
	EXPECT_EQ(-ENOTCONN, rdmig_cancel(src));
	EXPECT_EQ(-EINVAL, rdmig_continue(src));
}

TEST_F(Api, IncomingCancelEndsTheListener)
{
	ASSERT_EQ(0, rdmig_add_block(dst, "ram", mem, len, 4096));
	ASSERT_EQ(0, rdmig_incoming(dst, "tcp:127.0.0.1:0"));
	uint16_t port = 0;
	ASSERT_EQ(0, rdmig_incoming_port(dst, &port));
	EXPECT_NE(0, port);
	EXPECT_EQ(-EBUSY, rdmig_add_block(dst, "late", mem, len, 4096));
	ASSERT_EQ(0, rdmig_cancel(dst));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(dst, 10000, &st));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st);
}

} // namespace
