/* SPDX-License-Identifier: MIT */
/* The library's dirty trackers: checks and dispatch (see track.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/session.h"
#include "core/track.h"

const char *rdmig_tracker_name(enum rdmig_tracker t)
{
	switch (t) {
	case RDMIG_TRACK_NONE: return "none";
	case RDMIG_TRACK_AUTO: return "auto";
	case RDMIG_TRACK_UFFD_WP: return "uffd-wp";
	case RDMIG_TRACK_SOFT_DIRTY: return "soft-dirty";
	}
	return "unknown";
}

static int soft_dirty(uint32_t page_size, bool has_hold, char *why, size_t whylen)
{
	if (!has_hold) {
		snprintf(why, whylen, "soft-dirty needs a hold callback: its log is read and "
				      "cleared apart, so the writers must be held still in between");
		return -EINVAL;
	}
	return rdm_softdirty_probe(page_size, why, whylen);
}

int rdm_track_resolve(enum rdmig_tracker want, void *host, uint64_t len, uint32_t page_size,
		      bool has_hold, enum rdmig_tracker *got, char *why, size_t whylen)
{
	char uwhy[RDM_ERRLEN] = "";
	int ret;

	*got = want;
	switch (want) {
	case RDMIG_TRACK_NONE:
		return 0;
	case RDMIG_TRACK_UFFD_WP:
		return rdm_uffd_probe(host, len, why, whylen);
	case RDMIG_TRACK_SOFT_DIRTY:
		return soft_dirty(page_size, has_hold, why, whylen);
	case RDMIG_TRACK_AUTO:
		break;
	default:
		snprintf(why, whylen, "unknown tracker %d", (int)want);
		return -EINVAL;
	}
	ret = rdm_uffd_probe(host, len, uwhy, sizeof(uwhy));
	if (!ret) {
		*got = RDMIG_TRACK_UFFD_WP;
		return 0;
	}
	ret = soft_dirty(page_size, has_hold, why, whylen);
	if (!ret) {
		*got = RDMIG_TRACK_SOFT_DIRTY;
		return 0;
	}
	/* Neither: say why for both. */
	char swhy[RDM_ERRLEN];

	snprintf(swhy, sizeof(swhy), "%s", why);
	snprintf(why, whylen, "no dirty tracker works for this memory: uffd-wp: %s; soft-dirty: %s",
		 uwhy, swhy);
	return -ENOTSUP;
}

int rdm_track_check_transport(const struct rdmig_session *s, bool rdma, bool pin_all,
			      char *why, size_t whylen)
{
	for (unsigned i = 0; rdma && i < s->nblocks; i++) {
		const struct rdm_block *b = &s->blocks[i];

		if (b->tracker == RDMIG_TRACK_SOFT_DIRTY) {
			snprintf(why, whylen,
				 "block %s: soft-dirty tracking cannot be used over rdma "
				 "(clear_refs moves pinned pages away from their registration); "
				 "use uffd-wp with rdma-pin-all",
				 b->name);
			return -ENOTSUP;
		}
		if (b->tracker == RDMIG_TRACK_UFFD_WP && !pin_all) {
			snprintf(why, whylen,
				 "block %s: uffd-wp tracking over rdma needs the rdma-pin-all "
				 "capability (a write-protected page cannot be registered on demand)",
				 b->name);
			return -EINVAL;
		}
	}
	return 0;
}

int rdm_track_arm(struct rdmig_session *s)
{
	char why[RDM_ERRLEN] = "";
	bool uffd = false, sd = false;
	int ret = 0;

	for (unsigned i = 0; i < s->nblocks; i++) {
		uffd |= s->blocks[i].tracker == RDMIG_TRACK_UFFD_WP;
		sd |= s->blocks[i].tracker == RDMIG_TRACK_SOFT_DIRTY;
	}
	if (uffd)
		ret = rdm_uffd_start(s, &s->uffd, why, sizeof(why));
	if (!ret && sd)
		ret = rdm_softdirty_start(s, &s->softdirty, why, sizeof(why));
	if (ret) {
		rdm_set_error(s, "starting the dirty tracker: %s", why);
		rdm_track_disarm(s);
	}
	return ret;
}

int rdm_track_sync(struct rdmig_session *s)
{
	char why[RDM_ERRLEN] = "";
	int ret;

	if (!s->softdirty)
		return 0;
	ret = rdm_softdirty_snapshot(s->softdirty, why, sizeof(why));
	if (ret)
		rdm_set_error(s, "dirty tracker: %s", why);
	return ret;
}

int rdm_track_collect(struct rdmig_session *s, unsigned bi)
{
	struct rdm_block *b = &s->blocks[bi];
	int ret = -EINVAL;

	if (b->tracker == RDMIG_TRACK_UFFD_WP && s->uffd)
		ret = rdm_uffd_collect(s->uffd, bi, b->dirty);
	else if (b->tracker == RDMIG_TRACK_SOFT_DIRTY && s->softdirty)
		ret = rdm_softdirty_collect(s->softdirty, bi, b->dirty);
	if (ret)
		rdm_set_error(s, "dirty tracker (%s) of %s: %s", rdmig_tracker_name(b->tracker),
			      b->name, strerror(-ret));
	return ret;
}

void rdm_track_disarm(struct rdmig_session *s)
{
	rdm_uffd_stop(s->uffd);
	rdm_softdirty_stop(s->softdirty);
	s->uffd = NULL;
	s->softdirty = NULL;
}
