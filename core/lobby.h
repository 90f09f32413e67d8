/* SPDX-License-Identifier: MIT */
/*
 * The destination's lobby: connected peers (a transport handshake done, so
 * a channel proof where a secret is set, but no hello yet) wait side by side
 * until one of them speaks, each with its own deadline (the peer timeout).
 * A stranger that connects and then stays silent thus holds nothing: the real
 * source speaks first and is served, whoever else is still waiting. When the
 * lobby is full the oldest peer makes room; a peer past its deadline is
 * dropped with news. Used by the destination thread only.
 */
#ifndef RDMIG_CORE_LOBBY_H
#define RDMIG_CORE_LOBBY_H

#include <stddef.h>
#include <stdint.h>

#include "core/session.h"

#define RDM_LOBBY_MAX 8 /* peers waiting at once, like the listener's sessions */

struct rdm_lobby {
	struct rdmig_session *s;
	int timeout_ms; /* each peer's time to speak: the peer timeout, >= 100 ms */
	unsigned n;
	struct {
		struct rdm_tp *tp;
		uint64_t deadline_ms;
	} peer[RDM_LOBBY_MAX]; /* oldest first */
};

void rdm_lobby_init(struct rdm_lobby *l, struct rdmig_session *s, int timeout_ms);

/*
 * Accepts and waits until a peer's first message (or its failure) is in:
 * that peer becomes s->tp, buf holds the message (*len bytes) and *first is
 * what its recv returned (0, or -errno for the caller to judge). Returns 0,
 * -ECANCELED, or a failed accept (recorded).
 */
int rdm_lobby_next(struct rdm_lobby *l, void *buf, size_t cap, size_t *len, int *first);

/* Closes every peer still waiting. */
void rdm_lobby_close(struct rdm_lobby *l);

#endif
