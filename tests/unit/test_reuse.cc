/* SPDX-License-Identifier: MIT */
/*
 * One session, several runs: migrate()/incoming() again after a cancel or a
 * failure, and the refusals (-EBUSY) while a run goes on and once one has
 * completed. Sessions run side by side in this process over tcp loopback;
 * each completed run is checked by CRC32 of destination against source.
 */
#include <gtest/gtest.h>

#include <string.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "rdmig/rdmig.h"

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kLen = 4u << 20;

uint32_t Crc(const void *p, size_t len)
{
	return (uint32_t)crc32(0, (const Bytef *)p, (uInt)len);
}

bool Mentions(const char *text, const char *what)
{
	return strstr(text, what) != nullptr;
}

/* One session and its block of memory (the source's half filled with data). */
struct Side {
	rdmig_session *s = nullptr;
	uint8_t *mem = nullptr;

	~Side()
	{
		rdmig_session_destroy(s);
		if (mem)
			munmap(mem, kLen);
	}
	void Create(rdmig_role role)
	{
		void *p = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		ASSERT_NE(MAP_FAILED, p);
		mem = (uint8_t *)p;
		if (role == RDMIG_ROLE_SOURCE)
			for (size_t i = 0; i < kLen / 2; i++)
				mem[i] = (uint8_t)(i * 2654435761u >> 13);
		ASSERT_EQ(0, rdmig_session_create(role, nullptr, nullptr, &s));
		ASSERT_EQ(0, rdmig_add_block(s, "ram", mem, kLen, kPage));
	}
	/* Destination: listen on a fresh port and return the URI to reach it. */
	std::string Listen()
	{
		uint16_t port = 0;
		EXPECT_EQ(0, rdmig_incoming(s, "tcp:127.0.0.1:0")) << rdmig_last_error(s);
		EXPECT_EQ(0, rdmig_incoming_port(s, &port));
		return "tcp:127.0.0.1:" + std::to_string(port);
	}
	rdmig_status Wait()
	{
		rdmig_status st = RDMIG_STATUS_NONE;
		EXPECT_EQ(0, rdmig_wait(s, 60000, &st)) << rdmig_last_error(s);
		return st;
	}
};

bool WaitActive(rdmig_session *s)
{
	for (int i = 0; i < 6000; i++) {
		rdmig_stats st = RDMIG_STATS_INIT;
		if (rdmig_query(s, &st) == 0 && st.status == RDMIG_STATUS_ACTIVE &&
		    st.ram_transferred > 0)
			return true;
		usleep(5000);
	}
	return false;
}

TEST(Reuse, BusyWhileRunningAndAfterCompleted)
{
	Side src, dst;
	ASSERT_NO_FATAL_FAILURE(src.Create(RDMIG_ROLE_SOURCE));
	ASSERT_NO_FATAL_FAILURE(dst.Create(RDMIG_ROLE_DEST));
	std::string uri = dst.Listen();
	EXPECT_EQ(-EBUSY, rdmig_incoming(dst.s, "tcp:127.0.0.1:0")) << "already listening";
	EXPECT_TRUE(Mentions(rdmig_last_error(dst.s), "running")) << rdmig_last_error(dst.s);
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 1u << 20));
	ASSERT_EQ(0, rdmig_migrate(src.s, uri.c_str())) << rdmig_last_error(src.s);
	ASSERT_TRUE(WaitActive(src.s));
	EXPECT_EQ(-EBUSY, rdmig_migrate(src.s, uri.c_str()));
	EXPECT_TRUE(Mentions(rdmig_last_error(src.s), "running")) << rdmig_last_error(src.s);
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 0));
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, src.Wait()) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, dst.Wait()) << rdmig_last_error(dst.s);
	EXPECT_EQ(Crc(src.mem, kLen), Crc(dst.mem, kLen));

	EXPECT_EQ(-EBUSY, rdmig_migrate(src.s, uri.c_str()));
	EXPECT_TRUE(Mentions(rdmig_last_error(src.s), "completed")) << rdmig_last_error(src.s);
	EXPECT_EQ(-EBUSY, rdmig_incoming(dst.s, "tcp:127.0.0.1:0"));
	EXPECT_TRUE(Mentions(rdmig_last_error(dst.s), "completed")) << rdmig_last_error(dst.s);
}

TEST(Reuse, SourceAgainAfterCancel)
{
	Side src, dst1, dst2;
	ASSERT_NO_FATAL_FAILURE(src.Create(RDMIG_ROLE_SOURCE));
	ASSERT_NO_FATAL_FAILURE(dst1.Create(RDMIG_ROLE_DEST));
	ASSERT_NO_FATAL_FAILURE(dst2.Create(RDMIG_ROLE_DEST));
	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 1u << 20));
	ASSERT_EQ(0, rdmig_migrate(src.s, dst1.Listen().c_str())) << rdmig_last_error(src.s);
	ASSERT_TRUE(WaitActive(src.s));
	ASSERT_EQ(0, rdmig_cancel(src.s));
	ASSERT_EQ(RDMIG_STATUS_CANCELLED, src.Wait());
	EXPECT_NE(RDMIG_STATUS_COMPLETED, dst1.Wait());

	ASSERT_EQ(0, rdmig_set_parameter(src.s, RDMIG_PARAM_MAX_BANDWIDTH, 0));
	ASSERT_EQ(0, rdmig_migrate(src.s, dst2.Listen().c_str())) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, src.Wait()) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, dst2.Wait()) << rdmig_last_error(dst2.s);
	EXPECT_EQ(Crc(src.mem, kLen), Crc(dst2.mem, kLen));
	rdmig_stats st = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(src.s, &st));
	EXPECT_EQ(kLen, st.ram_total);
	EXPECT_STREQ("", st.error_desc);
}

TEST(Reuse, SourceAgainAfterAFailure)
{
	Side src, dst;
	ASSERT_NO_FATAL_FAILURE(src.Create(RDMIG_ROLE_SOURCE));
	ASSERT_NO_FATAL_FAILURE(dst.Create(RDMIG_ROLE_DEST));
	/* A port that was listening a moment ago and is closed now. */
	std::string stale;
	{
		Side gone;
		ASSERT_NO_FATAL_FAILURE(gone.Create(RDMIG_ROLE_DEST));
		stale = gone.Listen();
	}
	ASSERT_EQ(0, rdmig_migrate(src.s, stale.c_str())) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_FAILED, src.Wait());
	ASSERT_EQ(0, rdmig_migrate(src.s, dst.Listen().c_str())) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, src.Wait()) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, dst.Wait()) << rdmig_last_error(dst.s);
	EXPECT_EQ(Crc(src.mem, kLen), Crc(dst.mem, kLen));
}

TEST(Reuse, DestinationListensAgainAfterCancel)
{
	Side src, dst;
	ASSERT_NO_FATAL_FAILURE(src.Create(RDMIG_ROLE_SOURCE));
	ASSERT_NO_FATAL_FAILURE(dst.Create(RDMIG_ROLE_DEST));
	dst.Listen();
	ASSERT_EQ(0, rdmig_cancel(dst.s));
	ASSERT_EQ(RDMIG_STATUS_CANCELLED, dst.Wait());

	ASSERT_EQ(0, rdmig_migrate(src.s, dst.Listen().c_str())) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, src.Wait()) << rdmig_last_error(src.s);
	ASSERT_EQ(RDMIG_STATUS_COMPLETED, dst.Wait()) << rdmig_last_error(dst.s);
	EXPECT_EQ(Crc(src.mem, kLen), Crc(dst.mem, kLen));
}

} // namespace
