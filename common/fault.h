/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for tests. Built only with -Dfault_injection=true (test
 * builds); otherwise rdm_fault() is a constant false and costs nothing.
 *
 * RDMIG_FAULT="point[@n][:kill][,...]" in the environment names the points
 * that fire: each fires once, on its n-th hit (1 by default); with ":kill" the
 * process dies there instead (SIGKILL: a host lost at that position). Points are short
 * names fixed at the call site ("src-before-go", "dst-drop-mr", ...); the code
 * at the point decides what firing means (drop a message and cut the link,
 * stall, fail a call), and says so in a comment there.
 */
#ifndef RDMIG_COMMON_FAULT_H
#define RDMIG_COMMON_FAULT_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef RDMIG_FAULT_INJECTION
bool rdm_fault(const char *point);
/* Tests: forget what fired and read RDMIG_FAULT again. */
void rdm_fault_reset(void);
#else
static inline bool rdm_fault(const char *point)
{
	(void)point;
	return false;
}
static inline void rdm_fault_reset(void)
{
}
#endif

#ifdef __cplusplus
}
#endif

#endif
