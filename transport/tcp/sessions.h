/* SPDX-License-Identifier: MIT */
/*
 * The tcp listener's session table: sockets whose hellos checked out are
 * grouped by session token until the control socket and every data socket
 * are in, each session with its own deadline, several side by side (so a
 * half-open stranger cannot hold up the real source). listen.c reads the
 * hellos and calls in here; nothing here calls back.
 */
#ifndef RDMIG_TRANSPORT_TCP_SESSIONS_H
#define RDMIG_TRANSPORT_TCP_SESSIONS_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "control/msg.h"
#include "transport/tcp/tcp_int.h"

#define RDM_TCP_MAX_SESSIONS 8
#define RDM_TCP_PEER_LEN 64

/* The session being assembled; sockets of any other token are refused. */
struct rdm_tcp_sess {
	bool active;
	uint64_t token;
	unsigned count, have;
	int ctrl_fd;
	int *data_fd; /* count entries, -1 until that index arrives */
	struct rdm_tls_conn *ctrl_tls, **data_tls; /* with TLS: each fd's session */
	int64_t deadline;
	char peer[RDM_TCP_PEER_LEN];
};

/* Closes its sockets and empties the slot. */
void rdm_tcp_sess_drop(struct rdm_tcp_sess *s);
/* In a table of RDM_TCP_MAX_SESSIONS: the session of token, a free slot, a complete one (or NULL). */
struct rdm_tcp_sess *rdm_tcp_sess_find(struct rdm_tcp_sess *tab, uint64_t token);
struct rdm_tcp_sess *rdm_tcp_sess_free_slot(struct rdm_tcp_sess *tab);
struct rdm_tcp_sess *rdm_tcp_sess_ready(struct rdm_tcp_sess *tab);
/* A new session in slot s for hello c from peer; -ENOMEM. */
int rdm_tcp_sess_start(struct rdm_tcp_sess *s, const struct rdm_channel *c, const char *peer,
		       bool tls, int timeout_ms);
/* Why hello c cannot join s (s NULL: start one), or NULL when it can. */
const char *rdm_tcp_sess_join_check(const struct rdm_tcp_sess *s, const struct rdm_channel *c,
				    char *why, size_t len);
/* Complete session s becomes a destination transport; the ack tells the connector. */
int rdm_tcp_sess_finish(struct rdm_tcp_sess *s, const struct rdm_tp_opts *o, int timeout_ms,
			struct rdm_tcp **out);
/* pollfds of every session socket (owner[k]: the session of pfd[k]); returns the count. */
unsigned rdm_tcp_sess_pollfds(struct rdm_tcp_sess *tab, struct pollfd *pfd,
			      struct rdm_tcp_sess **owner);

#endif
