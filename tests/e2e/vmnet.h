/* SPDX-License-Identifier: MIT */
/*
 * The soft-RoCE VM's network, for the cases that change it (tests/vm/rxe-run):
 * dummy0 carries rxe0; taking dummy0 down is a pulled cable.
 */
#ifndef RDMIG_TESTS_E2E_VMNET_H
#define RDMIG_TESTS_E2E_VMNET_H

#include <string>

/* rxe0's port state file. */
extern const char *const kRxePort;

/* The first line of a file ("" when it cannot be read). */
std::string ReadLine(const char *path);
/* Why the VM's network cannot be changed from here ("" when it can). */
std::string NoVmNetReason();
/* rxe0 is ACTIVE with the IPv4 GID again (what rdma_cm needs), within 20 s. */
bool RxeReady();
/* A shell command's exit status (-1 when it did not exit). */
int Sh(const std::string &cmd);

#endif
