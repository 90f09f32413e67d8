/* SPDX-License-Identifier: MIT */
/* Tracker names for the bench (see track.h); the trackers live in the library. */
#include <errno.h>
#include <string.h>

#include "track.h"

static const char *const names[] = {"coop", "soft-dirty", "uffd-wp"};

const char *track_name(enum track_kind k)
{
	return (unsigned)k < 3 ? names[k] : "unknown";
}

int track_from_name(const char *s, enum track_kind *k)
{
	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(s, names[i])) {
			*k = (enum track_kind)i;
			return 0;
		}
	return -ENOENT;
}

enum rdmig_tracker track_to_rdmig(enum track_kind k)
{
	switch (k) {
	case TRACK_SOFT_DIRTY: return RDMIG_TRACK_SOFT_DIRTY;
	case TRACK_UFFD_WP: return RDMIG_TRACK_UFFD_WP;
	default: return RDMIG_TRACK_NONE;
	}
}
