/* SPDX-License-Identifier: MIT */
#include "vmnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

const char *const kRxePort = "/sys/class/infiniband/rxe0/ports/1/state";

std::string ReadLine(const char *path)
{
	std::ifstream f(path);
	std::string s;
	std::getline(f, s);
	return s;
}

std::string NoVmNetReason()
{
	if (!getenv("RDMIG_IN_VM"))
		return "changes the soft-RoCE VM's network: run through tests/vm/rxe-run";
	if (geteuid() != 0)
		return "needs root inside the VM (ip link, rdma link)";
	return "";
}

/* The IPv4-mapped GID of $RDMIG_RDMA_ADDR is in rxe0's table. */
static bool HasGid4()
{
	unsigned a, b, c, d;
	const char *ip = getenv("RDMIG_RDMA_ADDR");
	char want[64], path[96];

	if (!ip || sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4)
		return true; /* nothing to look for */
	snprintf(want, sizeof(want), "0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x", a, b, c, d);
	for (int i = 0; i < 16; i++) {
		snprintf(path, sizeof(path), "/sys/class/infiniband/rxe0/ports/1/gids/%d", i);
		if (ReadLine(path) == want)
			return true;
	}
	return false;
}

bool RxeReady()
{
	for (int i = 0; i < 200; i++) {
		if (ReadLine(kRxePort).find("ACTIVE") != std::string::npos && HasGid4())
			return true;
		usleep(100 * 1000);
	}
	return false;
}

int Sh(const std::string &cmd)
{
	int rc = system(cmd.c_str());
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}
