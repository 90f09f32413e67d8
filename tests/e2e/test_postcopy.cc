/* SPDX-License-Identifier: MIT */
/*
 * Postcopy end to end, over RDMIG_TEST_TRANSPORT (tcp: pages pushed and
 * requested; rdma: the destination reads them, RDMIG_TEST_PIN_ALL=1 pinned):
 * a source that dirties faster than max-bandwidth lets precopy run two
 * passes, then switches; the destination's VM runs at once, reading and
 * writing pages that are still on their way. Every page says what it is
 * (block, page, version and a CRC32 of its fill), so a reader there can tell
 * a torn or stale page, and at the end each page is the source's, or the one
 * the destination's VM wrote over it.
 */
#include <gtest/gtest.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/fault.h"
#include "core/uffd.h"
#include "harness.h"
#include "vmnet.h"

namespace {

constexpr uint32_t kPage = 4096;
constexpr uint32_t kMagic = 0x70636f70; /* "pcop" */
constexpr uint64_t kDestWrote = 1ull << 63; /* versions the destination's VM wrote */

struct PageHdr {
	uint32_t magic, block;
	uint64_t page, version;
	uint32_t crc, pad;
};

uint64_t Mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void WritePage(uint8_t *p, unsigned block, uint64_t page, uint64_t version)
{
	uint64_t fill[(kPage - sizeof(PageHdr)) / 8];
	uint64_t x = Mix(((uint64_t)block << 40) ^ (page << 8) ^ Mix(version));

	for (auto &w : fill)
		w = x = Mix(x);
	PageHdr h = {kMagic, block, page, version,
		     (uint32_t)crc32(0, (const Bytef *)fill, sizeof(fill)), 0};
	memcpy(p + sizeof(h), fill, sizeof(fill));
	memcpy(p, &h, sizeof(h));
}

/* Whole and in its place: its own header, or a page of zeros. 0 when it is neither. */
bool PageIsSane(const uint8_t *p, unsigned block, uint64_t page, uint64_t *version)
{
	PageHdr h;

	memcpy(&h, p, sizeof(h));
	if (h.magic != kMagic) {
		*version = 0;
		for (uint32_t i = 0; i < kPage; i++)
			if (p[i])
				return false;
		return true;
	}
	*version = h.version;
	return h.block == block && h.page == page &&
	       h.crc == (uint32_t)crc32(0, p + sizeof(h), kPage - sizeof(h));
}

/* Pages in the test's sense are 4 KiB units, whatever the block's page size. */
struct Block {
	uint8_t *mem = nullptr;
	uint64_t npages = 0;         /* 4 KiB units */
	std::vector<uint64_t> dirty; /* source: the log, a bit per block page, under Vm::mu */
};

/* One side's guest: its blocks and whatever its threads do to them. */
struct Vm {
	std::vector<Block> blocks;
	std::mutex mu;     /* the source's log */
	std::mutex run_mu; /* held by the source's dirtier while it writes */
	std::atomic<bool> stop{false}, parked{false};
	std::atomic<unsigned> starts{0}, stops{0};
	std::atomic<uint32_t> seen{0}; /* a bit per rdmig_status reached */
	std::vector<std::thread> threads;
	/* Destination. */
	std::atomic<uint64_t> reads{0}, bad_reads{0}, load_reads{0};
	std::vector<std::vector<uint64_t>> wrote; /* the last version written there, 0: none */
	std::vector<std::vector<uint8_t>> at_stop; /* source: its blocks when the VM stopped */
	bool dest = false;
	uint32_t ps = kPage; /* the blocks' page size: 4 KiB, or 2 MiB hugetlb */
	bool shared = false; /* shared memory (shmem), not private anonymous */

	~Vm()
	{
		Halt();
		for (auto &b : blocks)
			if (b.mem)
				munmap(b.mem, b.npages * kPage);
	}
	bool Map(const std::vector<uint64_t> &pages)
	{
		for (uint64_t n : pages) {
			Block b;
			int huge = ps > kPage ? MAP_HUGETLB : 0;
			void *m = mmap(nullptr, n * kPage, PROT_READ | PROT_WRITE,
				       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | huge,
				       -1, 0);
			if (m == MAP_FAILED)
				return false;
			b.mem = (uint8_t *)m;
			b.npages = n;
			b.dirty.assign((n / (ps / kPage) + 63) / 64, 0);
			blocks.push_back(std::move(b));
			wrote.emplace_back(n, 0);
		}
		return true;
	}
	void Halt()
	{
		stop = true;
		for (auto &t : threads)
			t.join();
		threads.clear();
	}
	/* Source: version 1 everywhere but every fifth page, which stays zero. */
	void Fill()
	{
		for (unsigned b = 0; b < blocks.size(); b++)
			for (uint64_t p = 0; p < blocks[b].npages; p++)
				if (p % 5)
					WritePage(blocks[b].mem + p * kPage, b, p, 1);
	}
	/* Source: about 16 pages a millisecond, each logged after it is written. */
	void Dirty()
	{
		std::vector<std::vector<uint64_t>> ver;
		uint64_t x = 42;

		for (auto &b : blocks)
			ver.emplace_back(b.npages, 1);
		while (!stop) {
			std::unique_lock<std::mutex> run(run_mu);
			for (int i = 0; i < 16 && !parked; i++) {
				x = Mix(x);
				unsigned b = (unsigned)(x % blocks.size());
				uint64_t p = (x >> 8) % blocks[b].npages;
				WritePage(blocks[b].mem + p * kPage, b, p, ++ver[b][p]);
				uint64_t bp = p / (ps / kPage);
				std::lock_guard<std::mutex> l(mu);
				blocks[b].dirty[bp / 64] |= 1ull << (bp % 64);
			}
			run.unlock();
			usleep(1000);
		}
	}
	/*
	 * Destination, once its VM runs: one thread reads pages all over (pages
	 * on their way fault, and must come whole), one writes every fourth
	 * page it picks (after checking what was there) and remembers it.
	 */
	void Read(uint64_t seed)
	{
		uint64_t x = seed, v;
		while (!stop) {
			x = Mix(x);
			unsigned b = (unsigned)(x % blocks.size());
			uint64_t p = (x >> 8) % blocks[b].npages;
			if (p % 4 == 0)
				continue; /* the writer's */
			if (!PageIsSane(blocks[b].mem + p * kPage, b, p, &v))
				bad_reads++;
			reads++;
		}
	}
	void Write()
	{
		uint64_t x = 7, v, n = 0;
		while (!stop) {
			x = Mix(x);
			unsigned b = (unsigned)(x % blocks.size());
			uint64_t p = ((x >> 8) % blocks[b].npages) & ~3ull;
			uint8_t *page = blocks[b].mem + p * kPage;
			if (!PageIsSane(page, b, p, &v))
				bad_reads++;
			WritePage(page, b, p, kDestWrote | ++n);
			wrote[b][p] = kDestWrote | n;
			if (n % 8 == 0)
				usleep(200);
		}
	}
};

int DirtyLog(void *o, unsigned block, uint64_t *bitmap, uint64_t npages)
{
	Vm *vm = (Vm *)o;
	std::lock_guard<std::mutex> l(vm->mu);
	auto &d = vm->blocks[block].dirty;
	for (uint64_t w = 0; w < (npages + 63) / 64; w++) {
		bitmap[w] |= d[w];
		d[w] = 0;
	}
	return 0;
}

int VmStop(void *o)
{
	Vm *vm = (Vm *)o;
	vm->parked = true;
	/* Once the dirtier let go, it writes nothing more. */
	std::lock_guard<std::mutex> run(vm->run_mu);
	vm->stops++;
	/* What the destination must end with (release-ram frees the source's copy). */
	vm->at_stop.clear();
	for (auto &b : vm->blocks)
		vm->at_stop.emplace_back(b.mem, b.mem + b.npages * kPage);
	return 0;
}

int VmStart(void *o)
{
	Vm *vm = (Vm *)o;
	vm->starts++;
	if (vm->dest) {
		vm->threads.emplace_back([vm] { vm->Read(1); });
		vm->threads.emplace_back([vm] { vm->Read(2); });
		vm->threads.emplace_back([vm] { vm->Write(); });
	} else {
		vm->parked = false;
	}
	return 0;
}

/*
 * The destination's device load reads guest RAM too (as a VMM's may): pages
 * dropped at the switch are fetched for it before the VM runs.
 */
int LoadState(void *o, rdmig_reader *)
{
	Vm *vm = (Vm *)o;
	uint64_t v;
	for (unsigned b = 0; b < vm->blocks.size(); b++)
		for (uint64_t p = 1; p < vm->blocks[b].npages; p += 97) {
			if (!PageIsSane(vm->blocks[b].mem + p * kPage, b, p, &v))
				vm->bad_reads++;
			vm->load_reads++;
		}
	return 0;
}

void Event(void *o, rdmig_status, rdmig_status to)
{
	((Vm *)o)->seen |= 1u << to;
}

/* "side: status (error)", for a failure message. */
std::string Says(const char *side, rdmig_session *s)
{
	rdmig_stats st = RDMIG_STATS_INIT;
	rdmig_query(s, &st);
	return std::string(side) + ": " + rdmig_status_name(st.status) + " (" + rdmig_last_error(s) +
	       "), " + std::to_string(st.postcopy_pages_missing) + " pages missing";
}

/* rdma: the destination reads the pages; tcp: the source pushes them and answers requests. */
bool Reads()
{
	return TestTransport() == "rdma";
}

rdmig_session *Session(rdmig_role role, Vm *vm)
{
	rdmig_callbacks cb{};
	rdmig_session *s = nullptr;

	cb.size = sizeof(cb);
	cb.dirty_log = role == RDMIG_ROLE_SOURCE ? DirtyLog : nullptr;
	cb.vm_stop = VmStop;
	cb.vm_start = VmStart;
	cb.load_state = role == RDMIG_ROLE_DEST ? LoadState : nullptr;
	cb.event = Event;
	if (rdmig_session_create(role, &cb, vm, &s))
		return nullptr;
	for (unsigned i = 0; i < vm->blocks.size(); i++) {
		std::string name = "ram" + std::to_string(i);
		if (rdmig_add_block(s, name.c_str(), vm->blocks[i].mem, vm->blocks[i].npages * kPage,
				    vm->ps)) {
			rdmig_session_destroy(s);
			return nullptr;
		}
	}
	EXPECT_EQ(0, rdmig_set_capability(s, RDMIG_CAP_RETURN_PATH, true));
	EXPECT_EQ(0, rdmig_set_capability(s, RDMIG_CAP_POSTCOPY_RAM, true)) << rdmig_last_error(s);
	return s;
}

std::string NoUffd()
{
	char why[256];
	return rdm_uffd_can_open(why, sizeof(why)) ? why : "";
}

/*
 * 24 MiB dirtied at up to 60 MiB/s and sent at 16: precopy alone never ends.
 * Two passes, then the switch.
 */
class Postcopy : public ::testing::Test {
      protected:
	std::vector<uint64_t> pages = {4096, 2048}; /* 4 KiB units per block */
	Vm src, dst;
	rdmig_session *ss = nullptr, *ds = nullptr;
	rdmig_status sfin = RDMIG_STATUS_NONE, dfin = RDMIG_STATUS_NONE;
	rdmig_stats sst = RDMIG_STATS_INIT, dst_st = RDMIG_STATS_INIT;
	bool release = false; /* the source's release-ram */
	/* A sample of ram_released taken while the push still ran: more than none, less than all. */
	uint64_t released_partway = 0;

	void SetUp() override
	{
		std::string why = NoUffd();
		if (!why.empty())
			GTEST_SKIP() << "userfaultfd: " << why;
	}
	void TearDown() override
	{
		unsetenv("RDMIG_FAULT");
		rdm_fault_reset();
		/* The destination's first: it lets threads waiting on missing pages go. */
		rdmig_session_destroy(ds);
		rdmig_session_destroy(ss);
		dst.Halt();
		src.Halt();
	}
	std::string base; /* "tcp:HOST:" */
	uint16_t port = 0; /* the destination's first */

	/* after: 0, rdmig_postcopy_start() after two passes; else postcopy-after. */
	void Run(int peer_timeout_ms, unsigned after = 0)
	{
		ASSERT_NO_FATAL_FAILURE(Start(peer_timeout_ms, after));
		ASSERT_NO_FATAL_FAILURE(Collect());
	}
	void Start(int peer_timeout_ms, unsigned after = 0)
	{
		dst.dest = true;
		ASSERT_TRUE(src.Map(pages) && dst.Map(pages));
		ASSERT_EQ(src.ps, dst.ps);
		src.Fill();
		ds = Session(RDMIG_ROLE_DEST, &dst);
		ss = Session(RDMIG_ROLE_SOURCE, &src);
		ASSERT_TRUE(ds && ss);
		ASSERT_EQ(0, rdmig_set_parameter(ss, RDMIG_PARAM_MAX_BANDWIDTH, 16u << 20));
		ASSERT_EQ(0, rdmig_set_parameter(ss, RDMIG_PARAM_DOWNTIME_LIMIT, 1));
		ASSERT_EQ(0, rdmig_set_parameter(ss, RDMIG_PARAM_POSTCOPY_AFTER, after));
		ASSERT_EQ(0, rdmig_set_capability(ss, RDMIG_CAP_RELEASE_RAM, release));
		const char *pin = getenv("RDMIG_TEST_PIN_ALL");
		ASSERT_EQ(0, rdmig_set_capability(ss, RDMIG_CAP_RDMA_PIN_ALL, pin && *pin == '1'));
		for (rdmig_session *s : {ss, ds})
			ASSERT_EQ(0, rdmig_set_parameter(s, RDMIG_PARAM_PEER_TIMEOUT, peer_timeout_ms));
		base = TestTransport() + ":" + TestHost() + ":";
		ASSERT_EQ(0, rdmig_incoming(ds, (base + "0").c_str())) << rdmig_last_error(ds);
		ASSERT_EQ(0, rdmig_incoming_port(ds, &port));
		src.threads.emplace_back([this] { src.Dirty(); });
		std::string uri = base + std::to_string(port);
		ASSERT_EQ(0, rdmig_migrate(ss, uri.c_str())) << rdmig_last_error(ss);
		if (!after) {
			ASSERT_TRUE(WaitFor(ss, 120000, [](const rdmig_stats &st) {
				return st.dirty_sync_count >= 2 || st.status == RDMIG_STATUS_COMPLETED ||
				       st.status == RDMIG_STATUS_FAILED;
			}));
			ASSERT_EQ(0, rdmig_postcopy_start(ss)) << rdmig_last_error(ss);
		}
	}
	/* Both sides to their end (a recovery, if any, already asked for); the checks every run shares. */
	void Collect()
	{
		std::thread watch([this] {
			rdmig_stats st = RDMIG_STATS_INIT;
			while (!rdmig_query(ss, &st) && st.status != RDMIG_STATUS_COMPLETED &&
			       st.status != RDMIG_STATUS_FAILED &&
			       st.status != RDMIG_STATUS_POSTCOPY_PAUSED) {
				/* The END's release also happens in postcopy-active: keep a partial one. */
				if (st.status == RDMIG_STATUS_POSTCOPY_ACTIVE && st.ram_released &&
				    st.ram_released < st.ram_total)
					released_partway = st.ram_released;
				usleep(10 * 1000);
			}
		});
		rdmig_wait(ss, 180000, nullptr);
		watch.join();
		ASSERT_EQ(0, rdmig_wait(ss, 180000, &sfin));
		ASSERT_EQ(0, rdmig_wait(ds, 180000, &dfin))
			<< Says("source", ss) << "; " << Says("destination", ds);
		ASSERT_EQ(0, rdmig_query(ss, &sst));
		ASSERT_EQ(0, rdmig_query(ds, &dst_st));
		EXPECT_TRUE(src.seen & (1u << RDMIG_STATUS_POSTCOPY_ACTIVE)) << "source never postcopy-active";
		EXPECT_TRUE(dst.seen & (1u << RDMIG_STATUS_POSTCOPY_ACTIVE))
			<< "destination never postcopy-active";
		/* Exactly one VM: stopped once here, started once there, never again here. */
		EXPECT_EQ(1u, src.stops.load());
		EXPECT_EQ(0u, src.starts.load()) << "the source VM must never run again";
		EXPECT_EQ(1u, dst.starts.load());
		EXPECT_GT(dst.load_reads.load(), 0u) << "load_state was not called";
		if (!release) {
			EXPECT_EQ(0u, sst.ram_released);
		}
	}

	/* Every page: the destination's own write, or byte for byte the source's. */
	void ExpectEveryPage()
	{
		/* A failed postcopy leaves its threads waiting on missing pages until destroyed. */
		if (dfin != RDMIG_STATUS_COMPLETED) {
			rdmig_session_destroy(ds);
			ds = nullptr;
		}
		/* The destination's VM ran on the pages it had for a while more. */
		usleep(200 * 1000);
		dst.Halt();
		src.Halt();
		EXPECT_EQ(RDMIG_STATUS_COMPLETED, sfin) << rdmig_last_error(ss);
		EXPECT_EQ(RDMIG_STATUS_COMPLETED, dfin) << dst_st.error_desc;
		EXPECT_EQ(0u, dst_st.postcopy_pages_missing);
		EXPECT_EQ(0u, dst.bad_reads.load()) << "the destination read torn or misplaced pages";
		uint64_t own = 0, differ = 0;
		ASSERT_EQ(pages.size(), src.at_stop.size());
		for (unsigned b = 0; b < pages.size(); b++)
			for (uint64_t p = 0; p < pages[b]; p++) {
				const uint8_t *d = dst.blocks[b].mem + p * kPage;
				const uint8_t *o = src.at_stop[b].data() + p * kPage;
				uint64_t v;
				if (dst.wrote[b][p]) {
					own++;
					if (!PageIsSane(d, b, p, &v) || v != dst.wrote[b][p])
						differ++;
				} else if (crc32(0, d, kPage) != crc32(0, o, kPage) ||
					   memcmp(d, o, kPage)) {
					differ++;
				}
			}
		EXPECT_GT(own, 0u);
		EXPECT_EQ(0u, differ) << "pages neither the source's nor the destination's write";
	}
};

TEST_F(Postcopy, DestinationRunsWhilePagesArriveAndEndsWithEveryPage)
{
	ASSERT_NO_FATAL_FAILURE(Run(10000));
	ExpectEveryPage();
	printf("postcopy: %llu page requests at the source, %llu sent; downtime %llu ms; the "
	       "destination read %llu pages while they arrived\n",
	       (unsigned long long)sst.postcopy_requests, (unsigned long long)dst_st.postcopy_requests,
	       (unsigned long long)sst.downtime_ms, (unsigned long long)dst.reads.load());
	EXPECT_GT(dst_st.postcopy_requests, 0u) << "no page was ever faulted for";
	if (!Reads()) {
		EXPECT_GT(sst.postcopy_requests, 0u);
	}
}

/*
 * 2 MiB hugetlb blocks (6 MiB a side, scripts/check reserves the pages): a
 * fault pulls a whole 2 MiB page, and the background push sends whole ones.
 */
TEST_F(Postcopy, HugetlbBlocks)
{
	pages = {1024, 512};
	src.ps = dst.ps = 2u << 20;
	void *probe = mmap(nullptr, 12u << 20, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	if (probe == MAP_FAILED)
		GTEST_SKIP() << "no six free 2 MiB hugetlb pages a side (vm.nr_hugepages; "
				"scripts/check reserves them)";
	munmap(probe, 12u << 20);
	ASSERT_NO_FATAL_FAILURE(Run(10000));
	ExpectEveryPage();
	const rdmig_stats &by = Reads() ? dst_st : sst; /* whoever moved the pages counted them */
	printf("postcopy, 2 MiB pages: %llu requests, %llu pulled, %llu pushed\n",
	       (unsigned long long)dst_st.postcopy_requests,
	       (unsigned long long)by.postcopy_pages_pulled,
	       (unsigned long long)by.postcopy_pages_pushed);
	EXPECT_GT(dst_st.postcopy_requests, 0u);
	EXPECT_GT(by.postcopy_pages_pulled + by.postcopy_pages_pushed, 0u);
}

/* Shared memory (a VMM's memfd or shm RAM): discards must punch the page cache. */
TEST_F(Postcopy, SharedMemoryBlocks)
{
	src.shared = dst.shared = true;
	ASSERT_NO_FATAL_FAILURE(Run(10000));
	ExpectEveryPage();
	EXPECT_GT(dst_st.postcopy_requests, 0u);
}

/*
 * release-ram: the source gives back its pages as the destination
 * acknowledges them, so at the end none of its RAM is resident, and the
 * destination still ends with every page (checked against a copy the source
 * took when its VM stopped).
 */
TEST_F(Postcopy, ReleaseRamFreesTheSourcesPagesAsTheyArrive)
{
	release = true;
	ASSERT_NO_FATAL_FAILURE(Run(10000));
	ExpectEveryPage();
	uint64_t total = 0, resident = 0;
	for (unsigned b = 0; b < pages.size(); b++) {
		std::vector<unsigned char> vec(pages[b]);
		total += pages[b];
		ASSERT_EQ(0, mincore(src.blocks[b].mem, pages[b] * kPage, vec.data()));
		for (unsigned char c : vec)
			resident += c & 1;
	}
	printf("release-ram: %llu bytes released, %llu of %llu source pages still resident\n",
	       (unsigned long long)sst.ram_released, (unsigned long long)resident,
	       (unsigned long long)total);
	EXPECT_EQ(total * kPage, sst.ram_released);
	printf("release-ram: %llu bytes released while the push went on\n",
	       (unsigned long long)released_partway);
	EXPECT_GT(released_partway, 0u) << "nothing was released before the end";
	EXPECT_LE(resident, total / 50) << "release-ram left the source's RAM in place";
}

/* release-ram only means something in postcopy, and only at a source. */
TEST_F(Postcopy, ReleaseRamRefusedWithoutPostcopyOrAtADestination)
{
	ASSERT_TRUE(src.Map({64}));
	rdmig_callbacks cb{};
	cb.size = sizeof(cb);
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, &src, &ss));
	ASSERT_EQ(0, rdmig_add_block(ss, "ram0", src.blocks[0].mem, 64 * kPage, kPage));
	ASSERT_EQ(0, rdmig_set_capability(ss, RDMIG_CAP_RELEASE_RAM, true));
	EXPECT_EQ(-EINVAL, rdmig_migrate(ss, "tcp:127.0.0.1:9"));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(ss), "release-ram needs postcopy-ram"))
		<< rdmig_last_error(ss);
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_DEST, &cb, &src, &ds));
	ASSERT_EQ(0, rdmig_add_block(ds, "ram0", src.blocks[0].mem, 64 * kPage, kPage));
	ASSERT_EQ(0, rdmig_set_capability(ds, RDMIG_CAP_RETURN_PATH, true));
	ASSERT_EQ(0, rdmig_set_capability(ds, RDMIG_CAP_POSTCOPY_RAM, true));
	ASSERT_EQ(0, rdmig_set_capability(ds, RDMIG_CAP_RELEASE_RAM, true));
	EXPECT_EQ(-EINVAL, rdmig_incoming(ds, "tcp:127.0.0.1:0"));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(ds), "source capability")) << rdmig_last_error(ds);
}

/* postcopy-after: precopy gets nowhere, and the source switches by itself. */
TEST_F(Postcopy, SwitchesByItselfWhenPrecopyGetsNowhere)
{
	ASSERT_NO_FATAL_FAILURE(Run(10000, 2));
	ExpectEveryPage();
	printf("postcopy-after 2: switched after %llu passes\n",
	       (unsigned long long)sst.dirty_sync_count);
	EXPECT_GE(sst.dirty_sync_count, 3u) << "a best pass, then two without progress";
}

/*
 * The link dies a few pieces into the push (rdma: while the destination
 * reads): neither side loses the VM. Both pause, the destination's VM goes on
 * running (its threads wait on pages still missing), cancel is refused on
 * both sides, a recovery towards nobody fails back to postcopy-paused, and
 * the real one goes on with what the destination lacks: every page ends as
 * the source's at the stop or the destination's own write.
 */
TEST_F(Postcopy, LinkCutThenRecoveredEndsWithEveryPage)
{
#ifndef RDMIG_FAULT_INJECTION
	GTEST_SKIP() << "needs a build with -Dfault_injection=true (scripts/build does that)";
#endif
	setenv("RDMIG_FAULT", "src-postcopy-cut@4", 1);
	rdm_fault_reset();
	/* 40 MiB in one block: its received map (1.25 KiB) is more than a small control frame. */
	pages = {10240, 1024};
	ASSERT_NO_FATAL_FAILURE(Start(2000));
	rdmig_status st = RDMIG_STATUS_NONE;
	ASSERT_EQ(0, rdmig_wait(ss, 60000, &st)) << rdmig_last_error(ss);
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, st) << rdmig_last_error(ss);
	ASSERT_EQ(0, rdmig_wait(ds, 60000, &st)) << rdmig_last_error(ds);
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, st) << rdmig_last_error(ds);
	std::string se = rdmig_last_error(ss), de = rdmig_last_error(ds);
	printf("source: %s\ndestination: %s\n", se.c_str(), de.c_str());
	EXPECT_NE(std::string::npos, se.find("postcopy paused (the VM runs at the destination")) << se;
	EXPECT_NE(std::string::npos, se.find("src-postcopy-cut")) << se;
	EXPECT_NE(std::string::npos, de.find("postcopy paused: source lost")) << de;
	ASSERT_EQ(0, rdmig_query(ds, &dst_st));
	EXPECT_GT(dst_st.postcopy_pages_missing, 0u) << "the cut came after every page was in";
	uint64_t missing = dst_st.postcopy_pages_missing;
	EXPECT_EQ(0u, src.starts.load()) << "the source VM must never run again";

	/* Paused: cancel is refused, and so is a recovery in the wrong shape. */
	EXPECT_EQ(-EBUSY, rdmig_cancel(ss));
	EXPECT_EQ(-EBUSY, rdmig_cancel(ds));
	std::string other = (TestTransport() == "tcp" ? "rdma:" : "tcp:") + TestHost() + ":1";
	EXPECT_EQ(-EINVAL, rdmig_postcopy_recover(ss, other.c_str()));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(ss), "runs over")) << rdmig_last_error(ss);
	EXPECT_EQ(-EINVAL, rdmig_postcopy_recover(ds, "tcp:nowhere"));

	/* Towards the old port, where nobody listens now: back to paused, saying why. */
	ASSERT_EQ(0, rdmig_postcopy_recover(ss, (base + std::to_string(port)).c_str()))
		<< rdmig_last_error(ss);
	ASSERT_EQ(0, rdmig_wait(ss, 60000, &st));
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, st);
	EXPECT_NE(nullptr, strstr(rdmig_last_error(ss), "connect")) << rdmig_last_error(ss);

	/* The real one. */
	ASSERT_EQ(0, rdmig_postcopy_recover(ds, (base + "0").c_str())) << rdmig_last_error(ds);
	uint16_t again = 0;
	ASSERT_EQ(0, rdmig_incoming_port(ds, &again));
	ASSERT_EQ(0, rdmig_postcopy_recover(ss, (base + std::to_string(again)).c_str()))
		<< rdmig_last_error(ss);
	ASSERT_NO_FATAL_FAILURE(Collect());
	ExpectEveryPage();
	for (Vm *vm : {&src, &dst})
		EXPECT_TRUE(vm->seen & (1u << RDMIG_STATUS_POSTCOPY_RECOVER)) << "never postcopy-recover";
	const rdmig_stats &by = Reads() ? dst_st : sst;
	printf("recovered: %llu pages were missing at the pause; %llu pulled, %llu pushed in all\n",
	       (unsigned long long)missing, (unsigned long long)by.postcopy_pages_pulled,
	       (unsigned long long)by.postcopy_pages_pushed);
}

/*
 * Giving up a paused postcopy: destroying the sessions ends the source
 * failed (the VM is at the destination, never back here).
 */
TEST_F(Postcopy, LinkCutThenGivenUpLeavesTheVmAtTheDestinationOnly)
{
#ifndef RDMIG_FAULT_INJECTION
	GTEST_SKIP() << "needs a build with -Dfault_injection=true (scripts/build does that)";
#endif
	setenv("RDMIG_FAULT", "src-postcopy-cut@4", 1);
	rdm_fault_reset();
	uint64_t t0 = (uint64_t)time(nullptr);
	ASSERT_NO_FATAL_FAILURE(Start(2000));
	rdmig_status st = RDMIG_STATUS_NONE;
	ASSERT_EQ(0, rdmig_wait(ss, 60000, &st));
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, st) << rdmig_last_error(ss);
	ASSERT_EQ(0, rdmig_wait(ds, 60000, &st));
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, st) << rdmig_last_error(ds);
	rdmig_session_destroy(ds);
	ds = nullptr;
	rdmig_session_destroy(ss);
	ss = nullptr;
	EXPECT_LE((uint64_t)time(nullptr) - t0, 60u);
	EXPECT_TRUE(src.seen & (1u << RDMIG_STATUS_FAILED)) << "the source did not end failed";
	EXPECT_TRUE(dst.seen & (1u << RDMIG_STATUS_FAILED)) << "the destination did not end failed";
	EXPECT_EQ(1u, src.stops.load());
	EXPECT_EQ(0u, src.starts.load()) << "the source VM must never run again";
	EXPECT_EQ(1u, dst.starts.load());
}

TEST_F(Postcopy, StartRefusedWithoutTheCapability)
{
	ASSERT_TRUE(src.Map({64}));
	rdmig_callbacks cb{};
	cb.size = sizeof(cb);
	ASSERT_EQ(0, rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, &src, &ss));
	ASSERT_EQ(0, rdmig_add_block(ss, "ram0", src.blocks[0].mem, 64 * kPage, kPage));
	EXPECT_EQ(-EINVAL, rdmig_postcopy_start(ss));
	EXPECT_NE(nullptr, strstr(rdmig_last_error(ss), "postcopy-ram")) << rdmig_last_error(ss);
}

uint64_t NowMs()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The VM's own link goes down mid-postcopy, then comes back (rdma, inside the
 * soft-RoCE VM: dummy0 under rxe0, a pulled cable). No fault point: whatever
 * the verbs stack makes of it, both sides pause, and a recovery over a new
 * connection (tried three times, as an operator would) ends with every page.
 *
 * Disabled: in the test VM's kernel (Debian 6.1, rdma_rxe) both sides do
 * pause (the source 0.7-1.1 s after the link went, on "local QP operation
 * error"; the destination once it is back, its close of the dead connection
 * waits in rdma_destroy_id while the port is down), but after this flap no
 * rdma_cm connection establishes any more, from any process: rping from a
 * fresh process times out and rxe0's sent_pkts counter stays still, while
 * ib_write_bw (its own tcp exchange, no CM) runs at full rate. A flap without
 * these connections (an rping pair, even one closed while the port is down)
 * leaves rping working. So every recovery ends back in postcopy-paused with
 * "waiting for RDMA_CM_EVENT_ESTABLISHED: Connection timed out", which is the
 * library doing the right thing on a link that cannot connect. By hand:
 *   GTEST_FILTER=Postcopy.DISABLED_LinkDownThenUpRecoversEveryPage tests/vm/rxe-run \
 *     env RDMIG_TEST_TRANSPORT=rdma build/tests/e2e/e2e_migrate --gtest_also_run_disabled_tests
 * Runs last in the binary: it changes the VM's network.
 */
TEST_F(Postcopy, DISABLED_LinkDownThenUpRecoversEveryPage)
{
	if (TestTransport() != "rdma")
		GTEST_SKIP() << "the link under rxe0 is the rdma form; tcp has LinkCutThenRecoveredEndsWithEveryPage";
	std::string why = NoVmNetReason();
	if (!why.empty())
		GTEST_SKIP() << why;
	ASSERT_NO_FATAL_FAILURE(Start(2000));
	ASSERT_TRUE(WaitFor(ss, 60000, [](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_POSTCOPY_ACTIVE || st.status == RDMIG_STATUS_COMPLETED ||
		       st.status == RDMIG_STATUS_FAILED;
	}));
	/* Slow the push to a trickle: pages must still be missing when the link goes. */
	ASSERT_EQ(0, rdmig_set_parameter(ss, RDMIG_PARAM_MAX_BANDWIDTH, 1u << 20));
	ASSERT_TRUE(WaitFor(ds, 60000, [](const rdmig_stats &st) {
		return st.status == RDMIG_STATUS_POSTCOPY_ACTIVE || st.status == RDMIG_STATUS_COMPLETED ||
		       st.status == RDMIG_STATUS_FAILED;
	}));
	ASSERT_EQ(0, rdmig_query(ds, &dst_st));
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_ACTIVE, dst_st.status) << "the destination is done before the link went";
	usleep(200 * 1000); /* faults and reads under way */

	uint64_t t0 = NowMs();
	ASSERT_EQ(0, Sh("ip link set dummy0 down"));
	rdmig_status st = RDMIG_STATUS_NONE;
	bool src_paused = rdmig_wait(ss, 60000, &st) == 0;
	uint64_t t_src = NowMs() - t0;
	std::string down = Says("source", ss) + "; " + Says("destination", ds);
	EXPECT_EQ(0, Sh("ip link set dummy0 up"));
	EXPECT_TRUE(RxeReady()) << "rxe0 did not come back: " << ReadLine(kRxePort);
	uint64_t t_up = NowMs() - t0;
	ASSERT_TRUE(src_paused) << "source not paused 60 s after the link went down: " << down;
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, st) << rdmig_last_error(ss);
	ASSERT_EQ(0, rdmig_wait(ds, 60000, &st)) << "destination not paused 60 s after the link came back";
	ASSERT_EQ(RDMIG_STATUS_POSTCOPY_PAUSED, st) << rdmig_last_error(ds);
	uint64_t t_dst = NowMs() - t0;
	std::string se = rdmig_last_error(ss), de = rdmig_last_error(ds);
	printf("link down: source paused after %llu ms, link up at %llu ms, destination paused at %llu ms\n"
	       "source: %s\ndestination: %s\n",
	       (unsigned long long)t_src, (unsigned long long)t_up, (unsigned long long)t_dst, se.c_str(),
	       de.c_str());
	EXPECT_NE(std::string::npos, se.find("postcopy paused")) << se;
	EXPECT_NE(std::string::npos, de.find("postcopy paused")) << de;
	ASSERT_EQ(0, rdmig_query(ds, &dst_st));
	uint64_t missing = dst_st.postcopy_pages_missing;
	EXPECT_GT(missing, 0u) << "every page was in before the link went down";
	EXPECT_EQ(0u, src.starts.load()) << "the source VM must never run again";
	EXPECT_EQ(-EBUSY, rdmig_cancel(ss));
	EXPECT_EQ(-EBUSY, rdmig_cancel(ds));

	/* A new connection, authenticated again, on the link that came back. */
	ASSERT_EQ(0, rdmig_set_parameter(ss, RDMIG_PARAM_MAX_BANDWIDTH, 16u << 20));
	ASSERT_EQ(0, rdmig_postcopy_recover(ds, (base + "0").c_str())) << rdmig_last_error(ds);
	uint16_t again = 0;
	ASSERT_EQ(0, rdmig_incoming_port(ds, &again));
	for (int i = 0; i < 3; i++) {
		uint64_t t1 = NowMs();
		ASSERT_EQ(0, rdmig_postcopy_recover(ss, (base + std::to_string(again)).c_str()))
			<< rdmig_last_error(ss);
		WaitFor(ss, 60000, [](const rdmig_stats &st) {
			return st.status != RDMIG_STATUS_POSTCOPY_RECOVER;
		});
		printf("recover %d at %llu ms: %s; %s\n", i, (unsigned long long)(t1 - t0),
		       Says("source", ss).c_str(), Says("destination", ds).c_str());
		rdmig_stats q = RDMIG_STATS_INIT;
		rdmig_query(ss, &q);
		if (q.status != RDMIG_STATUS_POSTCOPY_PAUSED)
			break;
		sleep(2);
	}
	rdmig_stats q = RDMIG_STATS_INIT;
	rdmig_query(ss, &q);
	ASSERT_NE(RDMIG_STATUS_POSTCOPY_PAUSED, q.status) << "no recovery got through: " << Says("source", ss);
	ASSERT_NO_FATAL_FAILURE(Collect());
	ExpectEveryPage();
	for (Vm *vm : {&src, &dst})
		EXPECT_TRUE(vm->seen & (1u << RDMIG_STATUS_POSTCOPY_RECOVER)) << "never postcopy-recover";
	printf("recovered: %llu pages were missing at the pause; %llu pulled, %llu pushed in all\n",
	       (unsigned long long)missing, (unsigned long long)dst_st.postcopy_pages_pulled,
	       (unsigned long long)sst.postcopy_pages_pushed);
}

} // namespace
