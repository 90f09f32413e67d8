/* SPDX-License-Identifier: MIT */
/* The tcp listener's session table (sessions.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/tcp/sessions.h"

void rdm_tcp_sess_drop(struct rdm_tcp_sess *s)
{
	rdm_tls_conn_free(s->ctrl_tls);
	for (unsigned i = 0; s->data_tls && i < s->count; i++)
		rdm_tls_conn_free(s->data_tls[i]);
	free(s->data_tls);
	if (s->ctrl_fd >= 0)
		close(s->ctrl_fd);
	for (unsigned i = 0; s->data_fd && i < s->count; i++)
		if (s->data_fd[i] >= 0)
			close(s->data_fd[i]);
	free(s->data_fd);
	memset(s, 0, sizeof(*s));
	s->ctrl_fd = -1;
}

struct rdm_tcp_sess *rdm_tcp_sess_find(struct rdm_tcp_sess *tab, uint64_t token)
{
	for (unsigned i = 0; i < RDM_TCP_MAX_SESSIONS; i++)
		if (tab[i].active && tab[i].token == token)
			return &tab[i];
	return NULL;
}

struct rdm_tcp_sess *rdm_tcp_sess_free_slot(struct rdm_tcp_sess *tab)
{
	for (unsigned i = 0; i < RDM_TCP_MAX_SESSIONS; i++)
		if (!tab[i].active)
			return &tab[i];
	return NULL;
}

int rdm_tcp_sess_start(struct rdm_tcp_sess *s, const struct rdm_channel *c, const char *peer,
		       bool tls, int timeout_ms)
{
	s->data_fd = malloc(c->count * sizeof(*s->data_fd));
	if (!s->data_fd)
		return -ENOMEM;
	if (tls) {
		s->data_tls = calloc(c->count, sizeof(*s->data_tls));
		if (!s->data_tls) {
			free(s->data_fd);
			s->data_fd = NULL;
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < c->count; i++)
		s->data_fd[i] = -1;
	s->active = true;
	s->token = c->token;
	s->count = c->count;
	s->have = 0;
	s->ctrl_fd = -1;
	s->deadline = rdm_tcp_now_ms() + timeout_ms;
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	return 0;
}

/*
 * Why hello c cannot join session s (NULL: c starts a new one), or NULL when
 * it can.
 */
const char *rdm_tcp_sess_join_check(const struct rdm_tcp_sess *s, const struct rdm_channel *c,
				    char *why, size_t len)
{
	bool ctrl = c->flags & RDM_TCP_CHAN_CONTROL;

	if (c->version != RDM_WIRE_VERSION)
		snprintf(why, len, "wire version %u, this side speaks %u", c->version,
			 RDM_WIRE_VERSION);
	else if (c->flags & ~(RDM_TCP_CHAN_CONTROL | RDM_TCP_CHAN_PROOF))
		snprintf(why, len, "unknown channel flags 0x%x", c->flags);
	else if (c->token == 0 || c->count > RDM_TCP_MAX_CHANNELS || (ctrl && c->index != 0))
		snprintf(why, len, "bad channel hello (token %016llx, index %u, count %u)",
			 (unsigned long long)c->token, c->index, c->count);
	else if (!s)
		return NULL;
	else if (c->count != s->count)
		snprintf(why, len, "channel count %u differs from the session's %u", c->count,
			 s->count);
	else if (ctrl ? s->ctrl_fd >= 0 : s->data_fd[c->index] >= 0)
		snprintf(why, len, "duplicate %s channel %u in session %016llx",
			 ctrl ? "control" : "data", c->index, (unsigned long long)c->token);
	else
		return NULL;
	return why;
}

/* The assembled session becomes a destination rdm_tp; the ack tells the connector. */
int rdm_tcp_sess_finish(struct rdm_tcp_sess *s, const struct rdm_tp_opts *o, int timeout_ms,
			struct rdm_tcp **out)
{
	uint8_t ack[RDM_TCP_HELLO_LEN];
	struct iovec iov = { ack, sizeof(ack) };
	struct rdm_tcp *t;
	int ret;

	ret = rdm_tcp_new(RDM_TCP_DEST, o, s->count, s->token, &t);
	if (ret)
		return ret;
	ret = rdm_tcp_hello_encode(ack, 0, s->count, RDM_TCP_CHAN_CONTROL | RDM_TCP_CHAN_ACK,
				   s->token);
	if (!ret)
		ret = rdm_tcp_io_send(s->ctrl_fd, s->ctrl_tls, &iov, 1, timeout_ms);
	if (ret)
		goto err_free_tp;
	t->ctrl_fd = s->ctrl_fd;
	t->ctrl_tls = s->ctrl_tls;
	for (unsigned i = 0; i < s->count; i++) {
		t->chan[i].fd = s->data_fd[i];
		t->chan[i].tls = s->data_tls ? s->data_tls[i] : NULL;
	}
	free(s->data_fd);
	free(s->data_tls);
	memset(s, 0, sizeof(*s));
	s->ctrl_fd = -1;
	*out = t;
	return 0;

err_free_tp:
	rdm_tcp_free(t);
	return ret;
}

static bool sess_complete(const struct rdm_tcp_sess *s)
{
	return s->active && s->ctrl_fd >= 0 && s->have == s->count;
}

/*
 * Session sockets stay silent until the ack: any event means the peer gave up.
 * owner[k] is the session of pfd[k].
 */
unsigned rdm_tcp_sess_pollfds(struct rdm_tcp_sess *tab, struct pollfd *pfd,
			      struct rdm_tcp_sess **owner)
{
	unsigned n = 0;

	for (unsigned k = 0; k < RDM_TCP_MAX_SESSIONS; k++) {
		struct rdm_tcp_sess *s = &tab[k];

		if (!s->active)
			continue;
		if (s->ctrl_fd >= 0) {
			owner[n] = s;
			pfd[n++] = (struct pollfd){ .fd = s->ctrl_fd, .events = POLLIN | POLLRDHUP };
		}
		for (unsigned i = 0; i < s->count; i++) {
			if (s->data_fd[i] < 0)
				continue;
			owner[n] = s;
			pfd[n++] = (struct pollfd){ .fd = s->data_fd[i],
						    .events = POLLIN | POLLRDHUP };
		}
	}
	return n;
}

struct rdm_tcp_sess *rdm_tcp_sess_ready(struct rdm_tcp_sess *tab)
{
	for (unsigned i = 0; i < RDM_TCP_MAX_SESSIONS; i++)
		if (sess_complete(&tab[i]))
			return &tab[i];
	return NULL;
}
