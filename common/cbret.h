/* SPDX-License-Identifier: MIT */
/*
 * A VMM callback's return as -errno: 0 stays 0, a negative errno stays, and
 * anything else (a positive value, a number past the errno range) is -EIO.
 * Every callback result in core/ goes through this one rule.
 */
#ifndef RDMIG_COMMON_CBRET_H
#define RDMIG_COMMON_CBRET_H

#include <errno.h>

static inline int rdm_cb_ret(int ret)
{
	return ret == 0 ? 0 : (ret < 0 && ret >= -4095) ? ret : -EIO;
}

#endif
