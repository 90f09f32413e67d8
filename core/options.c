/* SPDX-License-Identifier: MIT */
/*
 * Capabilities and parameters: defaults, ranges and combination rules, all
 * taken from the X-macro lists of rdmig.h so a new entry needs no code here.
 * The checks follow QEMU's migrate_caps_check / migrate_params_check.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/errtext.h"
#include "core/options.h"

static const char *const cap_names[RDMIG_CAP__COUNT] = {
#define X(name, str) [RDMIG_CAP_##name] = str,
	RDMIG_CAP_LIST(X)
#undef X
};

struct param_desc {
	const char *name;
	uint64_t def, lo, hi;
};

static const struct param_desc param_descs[RDMIG_PARAM__COUNT] = {
#define X(name, str, d, l, h) [RDMIG_PARAM_##name] = { str, d, l, h },
	RDMIG_PARAM_LIST(X)
#undef X
};

/* Caps on by default: the cheap, safe ones QEMU users almost always want. */
static bool cap_default(enum rdmig_cap cap)
{
	return cap == RDMIG_CAP_ZERO_PAGE_DETECTION || cap == RDMIG_CAP_RETURN_PATH ||
	       cap == RDMIG_CAP_EVENTS;
}

const char *rdmig_cap_name(enum rdmig_cap cap)
{
	/* Unsigned compare: also rejects negative values cast to the enum. */
	if ((unsigned)cap >= RDMIG_CAP__COUNT)
		return NULL;
	return cap_names[cap];
}

const char *rdmig_param_name(enum rdmig_param p)
{
	if ((unsigned)p >= RDMIG_PARAM__COUNT)
		return NULL;
	return param_descs[p].name;
}

int rdmig_cap_from_name(const char *name, enum rdmig_cap *cap)
{
	if (!name || !cap)
		return -EINVAL;
	for (unsigned i = 0; i < RDMIG_CAP__COUNT; i++) {
		if (strcmp(name, cap_names[i]) == 0) {
			*cap = (enum rdmig_cap)i;
			return 0;
		}
	}
	return -ENOENT;
}

int rdmig_param_from_name(const char *name, enum rdmig_param *p)
{
	if (!name || !p)
		return -EINVAL;
	for (unsigned i = 0; i < RDMIG_PARAM__COUNT; i++) {
		if (strcmp(name, param_descs[i].name) == 0) {
			*p = (enum rdmig_param)i;
			return 0;
		}
	}
	return -ENOENT;
}

void rdm_options_init(struct rdm_options *o, enum rdmig_role role)
{
	/* Both roles share the defaults; the role is kept for role-specific ones later. */
	(void)role;
	for (unsigned i = 0; i < RDMIG_CAP__COUNT; i++)
		o->caps[i] = cap_default((enum rdmig_cap)i);
	for (unsigned i = 0; i < RDMIG_PARAM__COUNT; i++)
		o->params[i] = param_descs[i].def;
}

/* Combination rules between capabilities; only what set_cap may reject. */
static int caps_check(const bool *caps, char *err, size_t errlen)
{
	/* Page requests and the switchover handshake of postcopy ride on the return path. */
	if (caps[RDMIG_CAP_POSTCOPY_RAM] && !caps[RDMIG_CAP_RETURN_PATH])
		return rdm_errret(err, errlen, -EINVAL, "postcopy-ram requires return-path");
	/*
	 * postcopy-ram with auto-converge is allowed, as in QEMU: throttling
	 * helps precopy converge before postcopy starts. pause-before-switchover
	 * and rdma-pin-all combine with anything.
	 */
	return 0;
}

static int param_check_one(const uint64_t *params, unsigned i, char *err, size_t errlen)
{
	const struct param_desc *d = &param_descs[i];
	uint64_t v = params[i];

	if (v < d->lo || v > d->hi)
		return rdm_errret(err, errlen, -EINVAL, "%s must be in %" PRIu64 "..%" PRIu64 ", got %" PRIu64,
				  d->name, d->lo, d->hi, v);
	/* Chunks are registered and addressed with shifts and masks. */
	if (i == RDMIG_PARAM_CHUNK_SIZE && (v & (v - 1)) != 0)
		return rdm_errret(err, errlen, -EINVAL, "%s must be a power of two, got %" PRIu64, d->name, v);
	return 0;
}

/* Ranges of every parameter, then the rules between them. */
static int params_check(const uint64_t *params, char *err, size_t errlen)
{
	int ret;

	for (unsigned i = 0; i < RDMIG_PARAM__COUNT; i++) {
		ret = param_check_one(params, i, err, errlen);
		if (ret)
			return ret;
	}
	/* The first throttle step must not already exceed the ceiling (QEMU rule). */
	if (params[RDMIG_PARAM_MAX_CPU_THROTTLE] < params[RDMIG_PARAM_CPU_THROTTLE_INITIAL])
		return rdm_errret(err, errlen, -EINVAL,
				  "max-cpu-throttle must be >= cpu-throttle-initial (%" PRIu64
				  "), got %" PRIu64,
				  params[RDMIG_PARAM_CPU_THROTTLE_INITIAL],
				  params[RDMIG_PARAM_MAX_CPU_THROTTLE]);
	return 0;
}

int rdm_options_set_cap(struct rdm_options *o, enum rdmig_cap cap, bool on, char *err,
			size_t errlen)
{
	bool caps[RDMIG_CAP__COUNT];
	int ret;

	if ((unsigned)cap >= RDMIG_CAP__COUNT)
		return rdm_errret(err, errlen, -EINVAL, "unknown capability %u", (unsigned)cap);
	/* Check a copy so a rejected change leaves o as it was. */
	memcpy(caps, o->caps, sizeof(caps));
	caps[cap] = on;
	ret = caps_check(caps, err, errlen);
	if (ret)
		return ret;
	o->caps[cap] = on;
	return 0;
}

int rdm_options_set_param(struct rdm_options *o, enum rdmig_param p, uint64_t v, char *err,
			  size_t errlen)
{
	uint64_t params[RDMIG_PARAM__COUNT];
	int ret;

	if ((unsigned)p >= RDMIG_PARAM__COUNT)
		return rdm_errret(err, errlen, -EINVAL, "unknown parameter %u", (unsigned)p);
	memcpy(params, o->params, sizeof(params));
	params[p] = v;
	/* The new value first, so its own range error is the one reported. */
	ret = param_check_one(params, p, err, errlen);
	if (ret)
		return ret;
	ret = params_check(params, err, errlen);
	if (ret)
		return ret;
	o->params[p] = v;
	return 0;
}

int rdm_options_check(const struct rdm_options *o, char *err, size_t errlen)
{
	int ret;

	ret = caps_check(o->caps, err, errlen);
	if (ret)
		return ret;
	ret = params_check(o->params, err, errlen);
	if (ret)
		return ret;
	/* Set in either order; a switch that could never happen must not look accepted. */
	if (o->params[RDMIG_PARAM_POSTCOPY_AFTER] && !o->caps[RDMIG_CAP_POSTCOPY_RAM])
		return rdm_errret(err, errlen, -EINVAL, "postcopy-after needs postcopy-ram");
	/* QEMU's release-ram frees pages only in postcopy; here it says so. */
	if (o->caps[RDMIG_CAP_RELEASE_RAM] && !o->caps[RDMIG_CAP_POSTCOPY_RAM])
		return rdm_errret(err, errlen, -EINVAL, "release-ram needs postcopy-ram");
	/* Postcopy's destination memory must stay missing: userfaultfd places it. */
	if (o->caps[RDMIG_CAP_PREFAULT] && o->caps[RDMIG_CAP_POSTCOPY_RAM])
		return rdm_errret(err, errlen, -EINVAL, "prefault and postcopy-ram exclude each "
							"other (postcopy's memory must stay missing)");
	/* postcopy-ram's transport and memory are checked with the URI (core/postcopy_dst.c). */
	return 0;
}
