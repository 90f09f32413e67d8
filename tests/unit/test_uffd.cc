// SPDX-License-Identifier: MIT
// Postcopy's destination memory (core/uffd): faults become requests, pages
// land with one copy and wake their threads, the first copy wins, discarded
// pages fault again; anonymous, shmem and hugetlb memory; blocktime and
// latency figures.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "core/uffd.h"

namespace {

constexpr uint64_t kSmall = 4096, kHuge = 2u << 20;

// A page that names itself: its region, index and generation in every word.
void Fill(std::vector<uint8_t> &buf, uint64_t ps, unsigned region, uint64_t page, uint64_t gen)
{
	buf.resize(ps);
	uint64_t tag = (uint64_t)region << 56 | gen << 40 | page;
	for (uint64_t i = 0; i < ps; i += 8)
		memcpy(&buf[i], &tag, 8);
}

bool Holds(const uint8_t *p, uint64_t ps, unsigned region, uint64_t page, uint64_t gen)
{
	uint64_t tag = (uint64_t)region << 56 | gen << 40 | page, w;
	for (uint64_t i = 0; i < ps; i += 8) {
		memcpy(&w, p + i, 8);
		if (w != tag)
			return false;
	}
	return true;
}

// The source's side: requests queue here; a server thread answers them.
struct Server {
	std::mutex mu;
	std::condition_variable cv;
	std::deque<std::pair<unsigned, uint64_t>> q;
	std::vector<std::pair<unsigned, uint64_t>> seen;
	bool stop = false;
	rdm_uffd *u = nullptr;
	uint64_t ps = kSmall;
	uint64_t gen = 1;
	std::thread t;

	static void OnFault(void *opaque, unsigned region, uint64_t page)
	{
		auto *s = static_cast<Server *>(opaque);
		std::lock_guard<std::mutex> g(s->mu);
		s->q.emplace_back(region, page);
		s->seen.emplace_back(region, page);
		s->cv.notify_one();
	}

	void Start()
	{
		t = std::thread([this] {
			std::vector<uint8_t> buf;
			std::unique_lock<std::mutex> g(mu);
			for (;;) {
				cv.wait(g, [this] { return stop || !q.empty(); });
				if (stop)
					return;
				auto [r, p] = q.front();
				q.pop_front();
				g.unlock();
				Fill(buf, ps, r, p, gen);
				EXPECT_EQ(0, rdm_uffd_place(u, r, p, 1, buf.data()));
				g.lock();
			}
		});
	}

	void Stop()
	{
		{
			std::lock_guard<std::mutex> g(mu);
			stop = true;
			cv.notify_one();
		}
		if (t.joinable())
			t.join();
	}
};

struct Mapping {
	void *p = MAP_FAILED;
	size_t len = 0;
	~Mapping()
	{
		if (p != MAP_FAILED)
			munmap(p, len);
	}
};

void *MapAnon(Mapping &m, size_t len, int extra = 0)
{
	m.len = len;
	m.p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
	return m.p == MAP_FAILED ? nullptr : m.p;
}

void *MapShmem(Mapping &m, size_t len)
{
	int fd = memfd_create("uffd-test", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)len)) {
		if (fd >= 0)
			close(fd);
		return nullptr;
	}
	m.len = len;
	m.p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return m.p == MAP_FAILED ? nullptr : m.p;
}

// Readers touch every page in a scattered order while the server answers;
// every page read holds what the server sent for it.
void FaultAndVerify(void *host, uint64_t len, uint64_t ps, unsigned nthreads)
{
	Server s;
	s.ps = ps;
	rdm_uffd_region rg{host, len, ps};
	char err[256] = "";
	ASSERT_EQ(0, rdm_uffd_create(&rg, 1, Server::OnFault, &s, &s.u, err, sizeof(err))) << err;
	s.Start();
	uint64_t npages = len / ps;
	std::atomic<uint64_t> bad{0};
	std::vector<std::thread> readers;
	for (unsigned t = 0; t < nthreads; t++)
		readers.emplace_back([&, t] {
			for (uint64_t i = 0; i < npages; i++) {
				uint64_t p = (i * 7 + t * 3) % npages;
				if (!Holds((const uint8_t *)host + p * ps, ps, 0, p, 1))
					bad++;
			}
		});
	for (auto &r : readers)
		r.join();
	s.Stop();
	EXPECT_EQ(0u, bad.load());
	rdm_uffd_stats st;
	rdm_uffd_get_stats(s.u, &st);
	EXPECT_EQ(npages, st.pages_placed);
	EXPECT_EQ(npages, st.requests) << "one request per missing page, however many threads wait";
	EXPECT_EQ(s.seen.size(), st.requests);
	EXPECT_GE(st.faults, st.requests);
	EXPECT_GT(st.blocktime_us, 0u);
	EXPECT_GE(st.nthreads, 1u);
	EXPECT_LE(st.nthreads, nthreads);
	EXPECT_LE(st.latency_p50_us, st.latency_p99_us);
	EXPECT_LE(st.latency_p99_us, st.latency_max_us);
	uint64_t sum = 0;
	for (unsigned i = 0; i < st.nthreads; i++)
		sum += st.threads[i].blocktime_us;
	EXPECT_EQ(st.blocktime_us, sum);
	printf("%llu pages of %llu B, %u threads: %llu faults, %llu requests, blocktime %llu us, "
	       "latency p50 %llu us p99 %llu us\n",
	       (unsigned long long)npages, (unsigned long long)ps, nthreads,
	       (unsigned long long)st.faults, (unsigned long long)st.requests,
	       (unsigned long long)st.blocktime_us, (unsigned long long)st.latency_p50_us,
	       (unsigned long long)st.latency_p99_us);
	rdm_uffd_destroy(s.u);
}

TEST(Uffd, AnonymousPagesFaultInFromTheServer)
{
	Mapping m;
	void *host = MapAnon(m, 256 * kSmall);
	ASSERT_NE(nullptr, host);
	FaultAndVerify(host, 256 * kSmall, kSmall, 4);
}

TEST(Uffd, ShmemPagesFaultInFromTheServer)
{
	Mapping m;
	void *host = MapShmem(m, 128 * kSmall);
	ASSERT_NE(nullptr, host) << strerror(errno);
	FaultAndVerify(host, 128 * kSmall, kSmall, 2);
}

TEST(Uffd, HugetlbPagesFaultInFromTheServer)
{
	Mapping m;
	void *host = MapAnon(m, 4 * kHuge, MAP_HUGETLB);
	if (!host)
		GTEST_SKIP() << "no 2 MiB hugetlb pages free (vm.nr_hugepages; scripts/check reserves "
				"them): " << strerror(errno);
	FaultAndVerify(host, 4 * kHuge, kHuge, 2);
}

TEST(Uffd, FirstCopyWinsAndZeroPagesLand)
{
	Mapping m;
	uint8_t *host = (uint8_t *)MapAnon(m, 8 * kSmall);
	ASSERT_NE(nullptr, host);
	Server s;
	rdm_uffd_region rg{host, 8 * kSmall, kSmall};
	char err[256] = "";
	ASSERT_EQ(0, rdm_uffd_create(&rg, 1, Server::OnFault, &s, &s.u, err, sizeof(err))) << err;
	std::vector<uint8_t> a, b;
	Fill(a, kSmall, 0, 2, 1);
	Fill(b, kSmall, 0, 2, 2);
	EXPECT_EQ(0, rdm_uffd_has(s.u, 0, 2));
	ASSERT_EQ(0, rdm_uffd_place(s.u, 0, 2, 1, a.data()));
	ASSERT_EQ(0, rdm_uffd_place(s.u, 0, 2, 1, b.data())) << "a page already here is no error";
	EXPECT_TRUE(Holds(host + 2 * kSmall, kSmall, 0, 2, 1)) << "the first copy wins";
	// Two pages in one copy, one of them already here: the other still lands.
	std::vector<uint8_t> two(2 * kSmall), p3;
	Fill(p3, kSmall, 0, 3, 1);
	memcpy(two.data(), b.data(), kSmall);
	memcpy(two.data() + kSmall, p3.data(), kSmall);
	ASSERT_EQ(0, rdm_uffd_place(s.u, 0, 2, 2, two.data()));
	EXPECT_TRUE(Holds(host + 3 * kSmall, kSmall, 0, 3, 1));
	ASSERT_EQ(0, rdm_uffd_place_zero(s.u, 0, 5, 2));
	for (uint64_t i = 5 * kSmall; i < 7 * kSmall; i++)
		ASSERT_EQ(0, host[i]);
	uint64_t map[1] = {0};
	ASSERT_EQ(0, rdm_uffd_received(s.u, 0, map, 1));
	EXPECT_EQ((1ull << 2) | (1ull << 3) | (1ull << 5) | (1ull << 6), map[0]);
	EXPECT_EQ(-EINVAL, rdm_uffd_place(s.u, 0, 7, 2, two.data())) << "past the region";
	EXPECT_EQ(-EINVAL, rdm_uffd_place(s.u, 1, 0, 1, two.data())) << "no such region";
	rdm_uffd_stats st;
	rdm_uffd_get_stats(s.u, &st);
	EXPECT_EQ(0u, st.faults) << "nothing touched a missing page";
	EXPECT_EQ(4u, st.pages_placed);
	rdm_uffd_destroy(s.u);
}

TEST(Uffd, DiscardedPagesFaultAgain)
{
	for (bool shared : {false, true}) {
		SCOPED_TRACE(shared ? "shmem" : "anonymous");
		Mapping m;
		uint8_t *host = (uint8_t *)(shared ? MapShmem(m, 16 * kSmall) : MapAnon(m, 16 * kSmall));
		ASSERT_NE(nullptr, host);
		Server s;
		rdm_uffd_region rg{host, 16 * kSmall, kSmall};
		char err[256] = "";
		ASSERT_EQ(0, rdm_uffd_create(&rg, 1, Server::OnFault, &s, &s.u, err, sizeof(err)))
			<< err;
		s.Start();
		EXPECT_TRUE(Holds(host + 4 * kSmall, kSmall, 0, 4, 1)); // generation 1 faults in
		{
			std::lock_guard<std::mutex> g(s.mu);
			s.gen = 2; // the page changed on the source since
		}
		ASSERT_EQ(0, rdm_uffd_discard(s.u, 0, 4, 1));
		EXPECT_EQ(0, rdm_uffd_has(s.u, 0, 4));
		EXPECT_TRUE(Holds(host + 4 * kSmall, kSmall, 0, 4, 2)) << "a discarded page faulted "
									  "in again, fresh";
		s.Stop();
		rdm_uffd_stats st;
		rdm_uffd_get_stats(s.u, &st);
		EXPECT_EQ(2u, st.requests);
		rdm_uffd_destroy(s.u);
	}
}

TEST(Uffd, RefusesWhatItCannotGuard)
{
	Mapping m;
	uint8_t *host = (uint8_t *)MapAnon(m, 4 * kSmall);
	ASSERT_NE(nullptr, host);
	Server s;
	char err[256] = "";
	rdm_uffd_region odd{host + 8, 2 * kSmall, kSmall};
	EXPECT_EQ(-EINVAL, rdm_uffd_create(&odd, 1, Server::OnFault, &s, &s.u, err, sizeof(err)));
	EXPECT_NE(nullptr, strstr(err, "not aligned")) << err;
	rdm_uffd_region ok{host, 4 * kSmall, kSmall};
	EXPECT_EQ(-EINVAL, rdm_uffd_create(&ok, 1, nullptr, &s, &s.u, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, rdm_uffd_create(&ok, 0, Server::OnFault, &s, &s.u, err, sizeof(err)));
}

} // namespace
