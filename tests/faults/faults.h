/* SPDX-License-Identifier: MIT */
/*
 * The fault suite: each case runs a migration with a workload dirtying the
 * source, injects one fault, and checks both sides: (a) a clear error on each
 * side that failed, (b) the VM runs on exactly one side, (c) that side has all
 * the memory (CRC32 per block), (d) each side is terminal within the peer
 * timeout plus a margin, (e) sessions and guests are freed (ASan-clean).
 * The same binary runs over tcp on the host (suite 'faults') and over rdma in
 * the soft-RoCE VM (suite 'faults-rdma'), by RDMIG_TEST_TRANSPORT.
 */
#ifndef RDMIG_TESTS_FAULTS_H
#define RDMIG_TESTS_FAULTS_H

#include <initializer_list>
#include <string>

#include "harness.h"

/* Short, so cases end fast; assertions never ask for less than it plus the margin. */
constexpr int kPeerMs = 2000;

/* Room on top of the peer timeout: a loaded 2-core host, rdma under TCG. */
int MarginMs();
/* The latest a side may become terminal after a fault. */
inline int DeadlineMs()
{
	return kPeerMs + MarginMs();
}

/* A guest small enough for rxe under emulation, dirtying while it migrates. */
guest_cfg FaultGuest(uint64_t mib = 32, uint64_t dirty_mib_s = 16);

/* Options for a source that is slow enough to be caught mid-iteration. */
ChildOpts SlowSource(uint64_t max_bw = 8 << 20);

/* Sets o's parameters on an in-process source session; false on a refusal. */
bool ConfigureSource(rdmig_session *s, const ChildOpts &o);

/* The workload dirtied pages (so the migration runs under load). */
bool Dirtying(guest *g);

/* The source is ACTIVE with more than bytes of RAM sent. */
bool WaitSent(rdmig_session *s, uint64_t bytes, int timeout_ms = 60000);
bool WaitStatus(rdmig_session *s, rdmig_status want, int timeout_ms = 60000);

/* err contains one of the words (case-insensitive). */
bool Names(const std::string &err, std::initializer_list<const char *> words);
std::string Quote(const std::string &err);

/* The in-process source runs its VM: never stopped, or resumed, and still dirtying. */
void ExpectSourceRuns(Source &src);
/* A source child's report says its VM runs. */
void ExpectSourceChildRan(const PeerResult &r);
/* The destination never started its VM. */
void ExpectDestNeverRan(const PeerResult &r);
/* The destination ran once with every block equal to the stopped source's. */
void ExpectDestHasAll(const PeerResult &r, guest *src);

bool IsRdma();
/* Skips the calling test unless the build fires fault points. */
#define SKIP_WITHOUT_FAULTS()                                                        \
	do {                                                                         \
		if (!FaultInjectionBuilt())                                          \
			GTEST_SKIP() << "built without -Dfault_injection=true";      \
	} while (0)
bool FaultInjectionBuilt();

#endif
