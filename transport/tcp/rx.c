/* SPDX-License-Identifier: MIT */
/*
 * Destination side of the tcp data channels: one receiver thread per socket
 * places PAGES straight into guest memory (or, in postcopy, through a bounce
 * buffer to the placer) and records FENCE seqs; wait_fence() waits on those.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errtext.h"
#include "transport/tcp/tcp_int.h"

/*
 * The receiver of ch stops with ret. A protocol violation (the peer sent what
 * it must not) fails the whole session; the first one wins, later ones are
 * its echoes.
 */
static int rx_stop(struct rdm_tcp_chan *ch, bool violation, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int rx_stop(struct rdm_tcp_chan *ch, bool violation, int ret, const char *fmt, ...)
{
	struct rdm_tcp *t = ch->t;
	va_list ap;

	if (atomic_load(&t->stopping))
		ret = -ECANCELED;
	pthread_mutex_lock(&t->lock);
	ch->rx_err = ret;
	va_start(ap, fmt);
	rdm_verrtext(ch->rx_errmsg, sizeof(ch->rx_errmsg), fmt, ap);
	va_end(ap);
	if (violation && !t->rx_err) {
		t->rx_err = ret;
		memcpy(t->rx_errmsg, ch->rx_errmsg, sizeof(t->rx_errmsg));
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static int rx_read(struct rdm_tcp_chan *ch, void *buf, size_t len, const char *what)
{
	size_t got = 0;
	int ret = rdm_tcp_io_recv(ch->fd, ch->tls, buf, len, &got, RDM_TCP_NO_DEADLINE);

	if (ret && ret != -ECONNRESET && rdm_tls_rx_why(ch->tls)[0])
		return rx_stop(ch, false, ret, "data channel %u: receiving %s: %s", ch->index, what,
			       rdm_tls_rx_why(ch->tls));
	if (ret == -ECONNRESET)
		return rx_stop(ch, false, ret, "data channel %u: peer closed the connection%s%s",
			       ch->index, got ? " in the middle of " : "", got ? what : "");
	if (ret)
		return rx_stop(ch, false, ret, "data channel %u: receiving %s: %s", ch->index, what,
			       strerror(-ret));
	return 0;
}

static int rx_pages(struct rdm_tcp_chan *ch, uint32_t plen)
{
	struct rdm_tcp *t = ch->t;
	uint8_t prefix[RDM_PAGES_PREFIX];
	rdm_tp_place_fn place;
	void *opaque;
	uint32_t block, len;
	uint64_t off;
	int ret;

	if (plen < RDM_PAGES_PREFIX)
		return rx_stop(ch, true, -EBADMSG, "data channel %u: pages frame too short (%u bytes)",
			       ch->index, plen);
	ret = rx_read(ch, prefix, sizeof(prefix), "a pages frame");
	if (ret)
		return ret;
	rdm_pages_hdr_decode(prefix, &block, &off);
	len = plen - RDM_PAGES_PREFIX;
	/* Checked before a byte lands in guest memory. */
	if (block >= t->nblk || off > t->blk[block].len || len > t->blk[block].len - off)
		return rx_stop(ch, true, -EBADMSG, "pages out of bounds: block %u off %llu len %u",
			       block, (unsigned long long)off, len);
	pthread_mutex_lock(&t->lock);
	place = t->place;
	opaque = t->place_opaque;
	pthread_mutex_unlock(&t->lock);
	if (!place)
		return rx_read(ch, t->blk[block].host + off, len, "a pages frame");
	/* A piece at a time, each handed over before the next is read. */
	while (len) {
		uint32_t piece = len < RDM_TCP_BOUNCE ? len : RDM_TCP_BOUNCE;

		ret = rx_read(ch, ch->bounce, piece, "a pages frame");
		if (ret)
			return ret;
		ret = place(opaque, block, off, piece, ch->bounce);
		if (ret)
			return rx_stop(ch, true, ret, "data channel %u: placing block %u off %llu: %s",
				       ch->index, block, (unsigned long long)off, strerror(-ret));
		off += piece;
		len -= piece;
	}
	return 0;
}

static int rx_fence(struct rdm_tcp_chan *ch, uint32_t plen)
{
	struct rdm_tcp *t = ch->t;
	uint8_t buf[RDM_HDR_LEN + 8];
	struct rdm_msg m;
	int ret;

	if (plen != 8)
		return rx_stop(ch, true, -EBADMSG, "data channel %u: fence frame of %u bytes",
			       ch->index, plen);
	rdm_hdr_encode(buf, RDM_MSG_FENCE, plen);
	ret = rx_read(ch, buf + RDM_HDR_LEN, plen, "a fence frame");
	if (ret)
		return ret;
	ret = rdm_msg_decode(buf, sizeof(buf), &m);
	if (ret)
		return rx_stop(ch, true, ret, "data channel %u: bad fence frame (%s)", ch->index,
			       strerror(-ret));
	pthread_mutex_lock(&t->lock);
	if (m.u.seq.seq > ch->fence_seq)
		ch->fence_seq = m.u.seq.seq;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static void *rx_thread(void *arg)
{
	struct rdm_tcp_chan *ch = arg;
	uint8_t hdr[RDM_HDR_LEN];
	uint16_t type;
	uint32_t plen;
	int ret;

	for (;;) {
		ret = rx_read(ch, hdr, sizeof(hdr), "a frame header");
		if (ret)
			break;
		ret = rdm_hdr_decode(hdr, sizeof(hdr), &type, &plen);
		if (ret) {
			rx_stop(ch, true, ret, "data channel %u: bad frame header (%s)", ch->index,
				strerror(-ret));
			break;
		}
		if (type == RDM_MSG_PAGES)
			ret = rx_pages(ch, plen);
		else if (type == RDM_MSG_FENCE)
			ret = rx_fence(ch, plen);
		else
			ret = rx_stop(ch, true, -EPROTO, "data channel %u: unexpected %s message",
				      ch->index, rdm_msg_name(type));
		if (ret)
			break;
	}
	return NULL;
}

int rdm_tcp_rx_start(struct rdm_tcp *t)
{
	unsigned i;
	int ret;

	for (i = 0; i < t->nchan; i++) {
		ret = -pthread_create(&t->chan[i].thread, NULL, rx_thread, &t->chan[i]);
		if (ret) {
			/* The ones started keep running until close() joins them. */
			rx_stop(&t->chan[i], false, ret, "data channel %u: no receiver thread", i);
			return rdm_tcp_err(t, ret, "set_blocks: starting receiver %u: %s", i,
					   strerror(-ret));
		}
		t->chan[i].thread_started = true;
	}
	return 0;
}

void rdm_tcp_rx_join(struct rdm_tcp *t)
{
	unsigned i;

	for (i = 0; i < t->nchan; i++) {
		if (t->chan[i].thread_started)
			pthread_join(t->chan[i].thread, NULL);
		t->chan[i].thread_started = false;
	}
}

int rdm_tcp_set_placer(struct rdm_tp *tp, rdm_tp_place_fn fn, void *opaque)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;

	if (t->role != RDM_TCP_DEST)
		return rdm_tcp_err(t, -EOPNOTSUPP, "set_placer: pages flow to the accepting side");
	if (!t->blk)
		return rdm_tcp_err(t, -EINVAL, "set_placer: set_blocks() was not called");
	/* Each receiver's buffer is its own; allocated here, freed with the transport. */
	for (unsigned i = 0; fn && i < t->nchan; i++) {
		if (!t->chan[i].bounce)
			t->chan[i].bounce = malloc(RDM_TCP_BOUNCE);
		if (!t->chan[i].bounce)
			return rdm_tcp_err(t, -ENOMEM, "set_placer: no bounce buffer");
	}
	pthread_mutex_lock(&t->lock);
	t->place = fn;
	t->place_opaque = opaque;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* A channel that has not reached seq, preferring one that stopped; NULL when all have. */
static struct rdm_tcp_chan *behind(struct rdm_tcp *t, uint64_t seq)
{
	struct rdm_tcp_chan *first = NULL;

	for (unsigned i = 0; i < t->nchan; i++) {
		struct rdm_tcp_chan *ch = &t->chan[i];

		if (ch->fence_seq >= seq)
			continue;
		if (ch->rx_err)
			return ch;
		if (!first)
			first = ch;
	}
	return first;
}

int rdm_tcp_wait_fence(struct rdm_tp *tp, uint64_t seq, int timeout_ms)
{
	struct rdm_tcp *t = (struct rdm_tcp *)tp;
	struct rdm_tcp_chan *ch;
	char msg[RDM_TP_ERRLEN];
	bool timed_out = false;
	struct timespec ts;
	int ret;

	if (t->role != RDM_TCP_DEST)
		return rdm_tcp_err(t, -EOPNOTSUPP, "wait_fence: pages flow to the accepting side");
	if (!t->blk)
		return rdm_tcp_err(t, -EINVAL, "wait_fence: set_blocks() was not called");
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&t->lock);
	for (;;) {
		if (atomic_load(&t->stopping)) {
			ret = -ECANCELED;
			break;
		}
		if (t->rx_err) {
			ret = t->rx_err;
			memcpy(msg, t->rx_errmsg, sizeof(msg));
			break;
		}
		ch = behind(t, seq);
		if (!ch) {
			ret = 0;
			break;
		}
		if (ch->rx_err) {
			ret = ch->rx_err;
			memcpy(msg, ch->rx_errmsg, sizeof(msg));
			break;
		}
		if (timed_out) {
			ret = -ETIMEDOUT;
			snprintf(msg, sizeof(msg), "wait_fence: fence %llu not reached in %d ms",
				 (unsigned long long)seq, timeout_ms);
			break;
		}
		if (timeout_ms < 0)
			pthread_cond_wait(&t->cond, &t->lock);
		else
			timed_out = pthread_cond_timedwait(&t->cond, &t->lock, &ts) == ETIMEDOUT;
	}
	pthread_mutex_unlock(&t->lock);

	if (ret == -ECANCELED)
		return rdm_tcp_err(t, ret, "wait_fence: transport shut down");
	if (ret)
		return rdm_tcp_err(t, ret, "%s", msg);
	return 0;
}
