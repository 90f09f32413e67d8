/* SPDX-License-Identifier: MIT */
/*
 * The API from several threads at once and from inside callbacks: waiters,
 * destroy under waiters, cancel/query/wait from callbacks, per-call error
 * text, live parameters, bad blocks. Migrations run in this process over tcp
 * loopback (source and destination sessions side by side); each successful
 * one is checked by CRC32 of destination against source memory.
 */
#include <gtest/gtest.h>

#include <atomic>
#include <string.h>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>
#include <zlib.h>

#include "common/cbret.h"
#include "rdmig/rdmig.h"

extern "C" unsigned rdm_session_users(rdmig_session *s);

namespace {

constexpr size_t kPage = 4096;

void *MapZero(size_t len)
{
	void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? nullptr : p;
}

uint32_t Crc(const void *p, size_t len)
{
	return (uint32_t)crc32(0, (const Bytef *)p, (uInt)len);
}

/* Polls a condition that has no callback of its own (how many callers are inside). */
bool Eventually(const std::function<bool()> &pred, int timeout_ms = 30000)
{
	for (int waited = 0; waited < timeout_ms; waited += 5) {
		if (pred())
			return true;
		usleep(5000); // a poll slice
	}
	return pred();
}

bool Mentions(const char *text, const char *what)
{
	return strstr(text, what) != nullptr;
}

/* A source and a destination session in this process, one block each. */
struct Pair {
	size_t len = 8u << 20;
	uint8_t *smem = nullptr, *dmem = nullptr;
	rdmig_session *src = nullptr, *dst = nullptr;

	~Pair()
	{
		rdmig_session_destroy(src);
		rdmig_session_destroy(dst);
		if (smem)
			munmap(smem, len);
		if (dmem)
			munmap(dmem, len);
	}
	/* Listens, connects, and starts migrating under max_bw (0 = unlimited). */
	void Start(uint64_t max_bw, const rdmig_callbacks *cb = nullptr, void *opaque = nullptr,
		   rdmig_session **publish = nullptr)
	{
		smem = (uint8_t *)MapZero(len);
		dmem = (uint8_t *)MapZero(len);
		ASSERT_TRUE(smem && dmem);
		/* Half data, half zero pages: both paths run. */
		for (size_t i = 0; i < len / 2; i++)
			smem[i] = (uint8_t)(i * 2654435761u >> 13);
		ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_DEST, nullptr, nullptr, &dst));
		ASSERT_EQ(0, rdmig_add_block(dst, "ram", dmem, len, kPage));
		ASSERT_EQ(0, rdmig_incoming(dst, "tcp:127.0.0.1:0")) << rdmig_last_error(dst);
		uint16_t port = 0;
		ASSERT_EQ(0, rdmig_incoming_port(dst, &port));
		ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, cb, opaque, &src));
		ASSERT_EQ(0, rdmig_add_block(src, "ram", smem, len, kPage));
		ASSERT_EQ(0, rdmig_set_parameter(src, RDMIG_PARAM_MAX_BANDWIDTH, max_bw));
		if (publish)
			*publish = src; /* the callbacks need it before they first run */
		std::string uri = "tcp:127.0.0.1:" + std::to_string(port);
		ASSERT_EQ(0, rdmig_migrate(src, uri.c_str())) << rdmig_last_error(src);
	}
	bool WaitActive()
	{
		return Eventually([&] {
			rdmig_stats st = RDMIG_STATS_INIT;
			return rdmig_query(src, &st) == 0 && st.status == RDMIG_STATUS_ACTIVE &&
			       st.ram_transferred > 0;
		});
	}
	/* Both ends completed and the memory matches. */
	void ExpectCompleted()
	{
		rdmig_status st;
		ASSERT_EQ(0, rdmig_wait(src, 60000, &st)) << rdmig_last_error(src);
		EXPECT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(src);
		ASSERT_EQ(0, rdmig_wait(dst, 60000, &st)) << rdmig_last_error(dst);
		EXPECT_EQ(RDMIG_STATUS_COMPLETED, st) << rdmig_last_error(dst);
		EXPECT_EQ(Crc(smem, len), Crc(dmem, len)) << "destination memory differs";
	}
};

TEST(Threads, SeveralWaitersAllSeeTheEnd)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(2u << 20));
	std::atomic<int> ok{0};
	std::vector<std::thread> waiters;
	for (int i = 0; i < 4; i++)
		waiters.emplace_back([&] {
			rdmig_status st = RDMIG_STATUS_NONE;
			if (rdmig_wait(p.src, -1, &st) == 0 && st == RDMIG_STATUS_COMPLETED)
				ok++;
		});
	ASSERT_TRUE(Eventually([&] { return rdm_session_users(p.src) >= 4; }));
	/* Lifting the limit lets it finish: all four wake, one joins the thread. */
	ASSERT_EQ(0, rdmig_set_parameter(p.src, RDMIG_PARAM_MAX_BANDWIDTH, 0));
	for (auto &t : waiters)
		t.join();
	EXPECT_EQ(4, ok.load());
	p.ExpectCompleted();
}

TEST(Threads, DestroyWhileOthersWaitOnAListener)
{
	void *mem = MapZero(1u << 20);
	ASSERT_NE(nullptr, mem);
	rdmig_session *d;
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_DEST, nullptr, nullptr, &d));
	ASSERT_EQ(0, rdmig_add_block(d, "ram", mem, 1u << 20, kPage));
	ASSERT_EQ(0, rdmig_incoming(d, "tcp:127.0.0.1:0"));
	std::atomic<int> cancelled{0};
	std::vector<std::thread> waiters;
	for (int i = 0; i < 4; i++)
		waiters.emplace_back([&] {
			rdmig_status st;
			if (rdmig_wait(d, -1, &st) == -ECANCELED)
				cancelled++;
		});
	ASSERT_TRUE(Eventually([&] { return rdm_session_users(d) >= 4; }));
	rdmig_session_destroy(d); /* returns only once every waiter has left */
	for (auto &t : waiters)
		t.join();
	EXPECT_EQ(4, cancelled.load());
	munmap(mem, 1u << 20);
}

TEST(Threads, DestroyWhileOthersWaitOnAMigration)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(1u << 20));
	ASSERT_TRUE(p.WaitActive());
	std::atomic<int> cancelled{0};
	std::vector<std::thread> waiters;
	for (int i = 0; i < 3; i++)
		waiters.emplace_back([&] {
			rdmig_status st;
			if (rdmig_wait(p.src, -1, &st) == -ECANCELED)
				cancelled++;
		});
	ASSERT_TRUE(Eventually([&] { return rdm_session_users(p.src) >= 3; }));
	rdmig_session_destroy(p.src);
	p.src = nullptr;
	for (auto &t : waiters)
		t.join();
	EXPECT_EQ(3, cancelled.load());
	/* The destination learns and never completes. */
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(p.dst, 60000, &st));
	EXPECT_NE(RDMIG_STATUS_COMPLETED, st);
}

/* What the callbacks saw when they called back into the API. */
struct Probe {
	rdmig_session *s = nullptr;
	std::atomic<int> calls{0};
	std::atomic<int> wait_ret{1}, cancel_ret{1}, query_ret{1};
	std::atomic<bool> had_error_text{false};
};

int DirtyLogProbe(void *opaque, unsigned, uint64_t *, uint64_t)
{
	Probe *pr = (Probe *)opaque;
	if (pr->calls++ == 0) {
		rdmig_status st;
		rdmig_stats stats = RDMIG_STATS_INIT;
		pr->query_ret = rdmig_query(pr->s, &stats);
		pr->wait_ret = rdmig_wait(pr->s, 1000, &st);
		pr->had_error_text = rdmig_last_error(pr->s) != nullptr;
		pr->cancel_ret = rdmig_cancel(pr->s);
	}
	return 0;
}

TEST(Threads, CancelQueryWaitFromTheDirtyLogCallback)
{
	Probe pr;
	rdmig_callbacks cb{};
	cb.size = sizeof(cb);
	cb.dirty_log = DirtyLogProbe;
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(0, &cb, &pr, &pr.s));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(p.src, 60000, &st)) << rdmig_last_error(p.src);
	ASSERT_GE(pr.calls.load(), 1);
	EXPECT_EQ(0, pr.query_ret.load());
	EXPECT_EQ(-EDEADLK, pr.wait_ret.load()) << "a callback's wait must not hang";
	EXPECT_TRUE(pr.had_error_text.load());
	EXPECT_EQ(0, pr.cancel_ret.load());
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st);
	EXPECT_TRUE(Mentions(rdmig_last_error(p.src), "cancel")) << rdmig_last_error(p.src);
	ASSERT_EQ(0, rdmig_wait(p.dst, 60000, &st));
	EXPECT_NE(RDMIG_STATUS_COMPLETED, st);
}

struct EventProbe {
	rdmig_session *s = nullptr;
	std::atomic<int> wait_ret{1}, cancel_ret{1}, query_ret{1};
	std::atomic<int> terminal_events{0};
};

void EventCb(void *opaque, rdmig_status, rdmig_status to)
{
	EventProbe *pr = (EventProbe *)opaque;
	if (to == RDMIG_STATUS_ACTIVE) {
		rdmig_status st;
		rdmig_stats stats = RDMIG_STATS_INIT;
		pr->query_ret = rdmig_query(pr->s, &stats);
		pr->wait_ret = rdmig_wait(pr->s, -1, &st);
		pr->cancel_ret = rdmig_cancel(pr->s);
	}
	if (to == RDMIG_STATUS_CANCELLED)
		pr->terminal_events++;
}

TEST(Threads, CancelFromTheEventCallback)
{
	EventProbe pr;
	rdmig_callbacks cb{};
	cb.size = sizeof(cb);
	cb.event = EventCb;
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(0, &cb, &pr, &pr.s));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(p.src, 60000, &st)) << rdmig_last_error(p.src);
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st);
	EXPECT_EQ(0, pr.query_ret.load());
	EXPECT_EQ(-EDEADLK, pr.wait_ret.load());
	EXPECT_EQ(0, pr.cancel_ret.load());
	EXPECT_EQ(1, pr.terminal_events.load());
	EXPECT_TRUE(Mentions(rdmig_last_error(p.src), "cancel")) << rdmig_last_error(p.src);
}

TEST(Threads, LastErrorBelongsToTheCallThatFailed)
{
	rdmig_session *s;
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, nullptr, nullptr, &s));
	rdmig_status st;
	EXPECT_EQ(-ENOTCONN, rdmig_wait(s, 0, &st));
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "no migration")) << rdmig_last_error(s);
	EXPECT_EQ(-EINVAL, rdmig_set_parameter(s, RDMIG_PARAM_CHANNELS, 1000));
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "channels")) << rdmig_last_error(s);
	EXPECT_EQ(-ENOTCONN, rdmig_cancel(s));
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "cancel")) << rdmig_last_error(s);
	uint16_t port;
	EXPECT_EQ(-EINVAL, rdmig_incoming_port(s, &port));
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "destination")) << rdmig_last_error(s);

	/* Another thread's failure is its own; ours is untouched. */
	std::string theirs;
	std::thread other([&] {
		EXPECT_EQ(-EINVAL, rdmig_set_parameter(s, RDMIG_PARAM_CHUNK_SIZE, 3));
		theirs = rdmig_last_error(s);
	});
	other.join();
	EXPECT_TRUE(Mentions(theirs.c_str(), "chunk-size")) << theirs;
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "destination")) << rdmig_last_error(s);

	/* A later failure replaces an earlier one of the same thread. */
	EXPECT_EQ(-EINVAL, rdmig_migrate(s, "tcp:127.0.0.1:1"));
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "no RAM blocks")) << rdmig_last_error(s);
	rdmig_session_destroy(s);
}

TEST(Threads, LastErrorEmptyAfterSuccess)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(0));
	/* An earlier failed call on this thread must not linger past the end. */
	EXPECT_EQ(-EBUSY, rdmig_set_parameter(p.src, RDMIG_PARAM_CHANNELS, 3));
	p.ExpectCompleted();
	EXPECT_STREQ("", rdmig_last_error(p.src));
	EXPECT_STREQ("", rdmig_last_error(p.dst));
	rdmig_stats st = RDMIG_STATS_INIT;
	ASSERT_EQ(0, rdmig_query(p.src, &st));
	EXPECT_STREQ("", st.error_desc);
	/* So does a thread that never failed a call. */
	std::string other;
	std::thread t([&] { other = rdmig_last_error(p.src); });
	t.join();
	EXPECT_EQ("", other);
}

TEST(Threads, LastErrorAfterCancelSaysCancelled)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(1u << 20));
	ASSERT_TRUE(p.WaitActive());
	ASSERT_EQ(0, rdmig_cancel(p.src));
	rdmig_status st;
	ASSERT_EQ(0, rdmig_wait(p.src, 60000, &st));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st);
	const char *e = rdmig_last_error(p.src);
	EXPECT_TRUE(Mentions(e, "cancel")) << e;
	EXPECT_FALSE(Mentions(e, "peer closed")) << e;
	ASSERT_EQ(0, rdmig_wait(p.dst, 60000, &st));
	EXPECT_EQ(RDMIG_STATUS_CANCELLED, st) << rdmig_last_error(p.dst);
}

TEST(Threads, AddBlockRefusesMisalignedAndOverlappingMemory)
{
	size_t len = 1u << 22;
	uint8_t *mem = (uint8_t *)MapZero(len);
	ASSERT_NE(nullptr, mem);
	rdmig_session *s;
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, nullptr, nullptr, &s));
	EXPECT_EQ(-EINVAL, rdmig_add_block(s, "odd", mem + 512, 4 * kPage, kPage));
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "aligned")) << rdmig_last_error(s);
	/* mmap gives 4 KiB alignment, not necessarily 2 MiB. */
	if ((uintptr_t)mem % (2u << 20)) {
		EXPECT_EQ(-EINVAL, rdmig_add_block(s, "huge", mem, 2u << 20, 2u << 20));
	}
	EXPECT_EQ(-EINVAL, rdmig_add_block(s, "huge2", mem + kPage, 2u << 20, 2u << 20));

	ASSERT_EQ(0, rdmig_add_block(s, "a", mem, 64 * kPage, kPage));
	EXPECT_EQ(-EINVAL, rdmig_add_block(s, "b", mem + 32 * kPage, 64 * kPage, kPage));
	EXPECT_TRUE(Mentions(rdmig_last_error(s), "overlaps block a")) << rdmig_last_error(s);
	EXPECT_EQ(-EINVAL, rdmig_add_block(s, "c", mem + 63 * kPage, kPage, kPage));
	/* A block that contains another overlaps it too. */
	EXPECT_EQ(-EINVAL, rdmig_add_block(s, "d", mem, len, kPage));
	/* Adjacent is fine. */
	EXPECT_EQ(0, rdmig_add_block(s, "e", mem + 64 * kPage, 64 * kPage, kPage));
	rdmig_session_destroy(s);
	munmap(mem, len);
}

TEST(Threads, OnlyLiveParametersChangeDuringAMigration)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(1u << 20));
	ASSERT_TRUE(p.WaitActive());
	EXPECT_EQ(-EBUSY, rdmig_set_parameter(p.src, RDMIG_PARAM_CHANNELS, 4));
	EXPECT_TRUE(Mentions(rdmig_last_error(p.src), "channels cannot change during a migration"))
		<< rdmig_last_error(p.src);
	EXPECT_EQ(-EBUSY, rdmig_set_parameter(p.src, RDMIG_PARAM_PEER_TIMEOUT, 5000));
	EXPECT_EQ(-EBUSY, rdmig_set_capability(p.src, RDMIG_CAP_AUTO_CONVERGE, true));
	uint64_t v = 0;
	ASSERT_EQ(0, rdmig_get_parameter(p.src, RDMIG_PARAM_CHANNELS, &v));
	EXPECT_EQ(2u, v) << "a refused change leaves the value";
	/* Out-of-range live values are still checked. */
	EXPECT_EQ(-EINVAL, rdmig_set_parameter(p.src, RDMIG_PARAM_DOWNTIME_LIMIT, 5000000));
	EXPECT_EQ(0, rdmig_set_parameter(p.src, RDMIG_PARAM_DOWNTIME_LIMIT, 1000));
	ASSERT_EQ(0, rdmig_get_parameter(p.src, RDMIG_PARAM_DOWNTIME_LIMIT, &v));
	EXPECT_EQ(1000u, v);
	/* 8 MiB at 1 MiB/s would take 8 s; unlimited it ends now. */
	EXPECT_EQ(0, rdmig_set_parameter(p.src, RDMIG_PARAM_MAX_BANDWIDTH, 0));
	p.ExpectCompleted();
}

TEST(Threads, ConcurrentCallsDuringAMigration)
{
	Pair p;
	ASSERT_NO_FATAL_FAILURE(p.Start(2u << 20));
	std::atomic<bool> stop{false};
	std::atomic<int> bad{0};
	std::vector<std::thread> ts;
	for (int i = 0; i < 4; i++)
		ts.emplace_back([&, i] {
			while (!stop) {
				rdmig_stats st = RDMIG_STATS_INIT;
				uint64_t v;
				if (rdmig_query(p.src, &st) || !rdmig_last_error(p.src) ||
				    rdmig_get_parameter(p.src, RDMIG_PARAM_MAX_BANDWIDTH, &v))
					bad++;
				if (i == 0 && rdmig_set_parameter(p.src, RDMIG_PARAM_MAX_BANDWIDTH,
								  (2u + (v & 1)) << 20))
					bad++;
				rdmig_query(p.dst, &st);
				usleep(1000); // the load's pace: a round a millisecond
			}
		});
	ASSERT_TRUE(p.WaitActive());
	stop = true;
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(0, bad.load());
	ASSERT_EQ(0, rdmig_set_parameter(p.src, RDMIG_PARAM_MAX_BANDWIDTH, 0));
	p.ExpectCompleted();
}

} // namespace

/* Every callback result maps the same way: 0, a negative errno, or -EIO for anything else. */
TEST(Callbacks, ReturnsBecomeErrno)
{
	EXPECT_EQ(0, rdm_cb_ret(0));
	EXPECT_EQ(-ENOSPC, rdm_cb_ret(-ENOSPC));
	EXPECT_EQ(-EIO, rdm_cb_ret(1));
	EXPECT_EQ(-EIO, rdm_cb_ret(ENOSPC));
	EXPECT_EQ(-EIO, rdm_cb_ret(-100000));
}
