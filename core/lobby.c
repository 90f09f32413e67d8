/* SPDX-License-Identifier: MIT */
/*
 * The destination's lobby (lobby.h). Waiting peers are polled without
 * blocking between short accepts, so no single peer's silence delays the
 * others: accept paces the loop at 20 ms while anyone waits, 500 ms (the
 * cancel check's pace) while nobody does.
 */
#include <errno.h>
#include <string.h>

#include "core/lobby.h"

#define LOBBY_BUSY_MS 20
#define LOBBY_IDLE_MS 500

void rdm_lobby_init(struct rdm_lobby *l, struct rdmig_session *s, int timeout_ms)
{
	memset(l, 0, sizeof(*l));
	l->s = s;
	l->timeout_ms = timeout_ms;
}

/* Peer i leaves the lobby (closed by the caller or handed over). */
static struct rdm_tp *take(struct rdm_lobby *l, unsigned i)
{
	struct rdm_tp *tp = l->peer[i].tp;

	memmove(&l->peer[i], &l->peer[i + 1], (l->n - i - 1) * sizeof(l->peer[0]));
	l->n--;
	return tp;
}

static void drop(struct rdm_lobby *l, unsigned i, const char *why)
{
	struct rdm_tp *tp = take(l, i);

	rdm_set_api_error(l->s, "refused a connection: %s", why);
	tp->ops->close(tp);
}

static void admit(struct rdm_lobby *l, struct rdm_tp *tp)
{
	if (l->n == RDM_LOBBY_MAX)
		drop(l, 0, "no hello before the lobby filled up");
	l->peer[l->n].tp = tp;
	l->peer[l->n].deadline_ms = rdm_now_ms() + (uint64_t)l->timeout_ms;
	l->n++;
}

/* The first peer with something to say (or a failure), or -1. */
static int poll_peers(struct rdm_lobby *l, void *buf, size_t cap, size_t *len, int *first)
{
	uint64_t now = rdm_now_ms();

	for (unsigned i = 0; i < l->n;) {
		int ret = rdm_tp_recv(l->peer[i].tp, buf, cap, len, 0);

		if (ret != -ETIMEDOUT) {
			*first = ret;
			return (int)i;
		}
		if (now >= l->peer[i].deadline_ms) {
			drop(l, i, "no hello from the source within the peer timeout");
			continue;
		}
		i++;
	}
	return -1;
}

int rdm_lobby_next(struct rdm_lobby *l, void *buf, size_t cap, size_t *len, int *first)
{
	struct rdmig_session *s = l->s;
	char err[RDM_TP_ERRLEN];
	struct rdm_tp *tp;
	int ret, i;

	for (;;) {
		i = poll_peers(l, buf, cap, len, first);
		if (i >= 0)
			break;
		err[0] = '\0';
		tp = NULL;
		ret = s->ops->accept(s->listener, l->n ? LOBBY_BUSY_MS : LOBBY_IDLE_MS, &tp, err,
				     sizeof(err));
		if (rdm_cancelled(s))
			ret = -ECANCELED;
		if (!ret) {
			admit(l, tp);
			continue;
		}
		if (tp)
			tp->ops->close(tp);
		if (ret != -ETIMEDOUT) {
			if (ret != -ECANCELED)
				rdm_set_error(s, "accept: %s", err[0] ? err : strerror(-ret));
			return ret;
		}
		/* A refused peer (garbage, wrong version) is news, not the end. */
		if (err[0])
			rdm_set_api_error(s, "refused a connection: %s", err);
	}
	tp = take(l, (unsigned)i);
	pthread_mutex_lock(&s->lock);
	s->tp = tp;
	pthread_mutex_unlock(&s->lock);
	/* Cancel may have raced the assignment above. */
	return rdm_cancelled(s) ? -ECANCELED : 0;
}

void rdm_lobby_close(struct rdm_lobby *l)
{
	while (l->n) {
		struct rdm_tp *tp = take(l, 0);

		tp->ops->close(tp);
	}
}
