/* SPDX-License-Identifier: MIT */
/* Capabilities and parameters with their checks (QEMU's migrate_caps_check / migrate_params_check). */
#ifndef RDMIG_CORE_OPTIONS_H
#define RDMIG_CORE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdmig/rdmig.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rdm_options {
	bool caps[RDMIG_CAP__COUNT];
	uint64_t params[RDMIG_PARAM__COUNT];
};

/* Defaults: zero-page-detection, return-path and events on; parameters from RDMIG_PARAM_LIST. */
void rdm_options_init(struct rdm_options *o, enum rdmig_role role);

/*
 * Set one capability / parameter if the result passes every check; o is left
 * unchanged otherwise. -EINVAL (unknown id, out of range, not a power of two,
 * incompatible combination) with a message naming the parameter in err.
 */
int rdm_options_set_cap(struct rdm_options *o, enum rdmig_cap cap, bool on, char *err,
			size_t errlen);
int rdm_options_set_param(struct rdm_options *o, enum rdmig_param p, uint64_t v, char *err,
			  size_t errlen);

/* The whole set together (caps check + params check), as migrate() runs it. */
int rdm_options_check(const struct rdm_options *o, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
