/* SPDX-License-Identifier: MIT */
/*
 * Postcopy recovery (QEMU's postcopy-paused / migrate-recover). A link lost
 * in postcopy-active loses neither side's VM: both threads park here in
 * postcopy-paused until rdmig_postcopy_recover() gives them a new address
 * (or the session is destroyed). Then:
 *
 *   source                                     destination
 *                                              listens on the new uri
 *   connect, HELLO (resume flag), the     -->  the same authenticated handshake;
 *   authenticated handshake, blocks            a HELLO without the flag is a stranger
 *                                         <--  RP_RECV_BITMAP per block (pieces):
 *                                              the pages it has
 *   dirty = the pages it lacks            <--  RP_RESUME_ACK (pieces sent)
 *   postcopy-active again: the push (tcp) or the keys for reads (rdma),
 *   then POSTCOPY_END as before; requests lost with the link are asked again.
 *
 * The source's memory still holds the VM as it was at the stop, so whatever
 * the destination lacks can come again; what it has is never sent twice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bitmap.h"
#include "core/postcopy.h"
#include "core/ram.h"
#include "core/session.h"
#include "core/source.h"

/* Undo a claim that came to nothing. */
static int unclaim(struct rdmig_session *s, int ret)
{
	pthread_mutex_lock(&s->lock);
	s->pc_recover = false;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Destination: the new listener, before the call returns (its port is the VMM's to pass on). */
static int listen_anew(struct rdmig_session *s, const struct rdm_addr *a, const char *uri,
		       struct rdm_tp_listener **l, uint16_t *port)
{
	char err[RDM_TP_ERRLEN] = "";
	struct rdm_tp_opts to;
	int ret;

	rdm_session_tp_opts(s, &to);
	ret = s->ops->listen(a, &to, l, err, sizeof(err));
	if (ret) {
		rdm_set_api_error(s, "postcopy-recover: listen on '%s': %s", uri,
				  err[0] ? err : strerror(-ret));
		return ret;
	}
	ret = s->ops->listener_port(*l, port);
	if (ret) {
		s->ops->listener_close(*l);
		rdm_set_api_error(s, "postcopy-recover: listen on '%s': cannot read the bound port",
				  uri);
	}
	return ret;
}

int rdmig_postcopy_recover(rdmig_session *s, const char *uri)
{
	struct rdm_tp_listener *l = NULL;
	char err[RDM_TP_ERRLEN] = "";
	enum rdmig_status st;
	struct rdm_addr a;
	uint16_t port = 0;
	bool ok;
	int ret;

	ret = rdm_api_enter(s, true);
	if (ret)
		return ret;
	if (!uri) {
		rdm_set_api_error(s, "postcopy-recover: no uri");
		return rdm_api_leave(s, -EINVAL);
	}
	pthread_mutex_lock(&s->lock);
	st = s->status;
	ok = st == RDMIG_STATUS_POSTCOPY_PAUSED && s->pc_paused && !s->pc_recover;
	if (ok)
		s->pc_recover = true; /* ours: a second caller is refused until this one is done */
	pthread_mutex_unlock(&s->lock);
	if (!ok) {
		rdm_set_api_error(s, "postcopy-recover is only valid in postcopy-paused, not %s",
				  rdmig_status_name(st));
		return rdm_api_leave(s, -EINVAL);
	}
	ret = rdm_addr_parse(uri, &a, err, sizeof(err));
	if (ret) {
		rdm_set_api_error(s, "postcopy-recover: %s", err);
		return rdm_api_leave(s, unclaim(s, ret));
	}
	if (a.scheme != s->addr.scheme) {
		rdm_set_api_error(s, "postcopy-recover: the migration runs over %s, not over '%s'",
				  s->ops->name, uri);
		return rdm_api_leave(s, unclaim(s, -EINVAL));
	}
	if (s->role == RDMIG_ROLE_DEST) {
		ret = listen_anew(s, &a, uri, &l, &port);
		if (ret)
			return rdm_api_leave(s, unclaim(s, ret));
	}
	/* Before the thread moves: it may be back in postcopy-active before we return. */
	rdm_set_status(s, RDMIG_STATUS_POSTCOPY_RECOVER);
	pthread_mutex_lock(&s->lock);
	s->addr = a;
	if (l) {
		s->listener = l;
		s->port = port;
	}
	s->pc_paused = false;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rdm_api_leave(s, 0);
}

int rdm_pc_pause_wait(struct rdmig_session *s)
{
	bool go;

	pthread_mutex_lock(&s->lock);
	s->pc_paused = true;
	s->pc_recover = false;
	pthread_mutex_unlock(&s->lock);
	rdm_set_status(s, RDMIG_STATUS_POSTCOPY_PAUSED);
	pthread_mutex_lock(&s->lock);
	while (s->pc_paused && !s->destroying && !atomic_load(&s->cancel))
		pthread_cond_wait(&s->cond, &s->lock);
	go = !s->pc_paused && !s->destroying && !atomic_load(&s->cancel);
	s->pc_paused = false;
	s->pc_recover = false;
	/* A new attempt: its failure, if any, is the cause to report. */
	if (go) {
		s->err[0] = '\0';
		s->stats.error_desc[0] = '\0';
	}
	pthread_mutex_unlock(&s->lock);
	return go ? 0 : -ECANCELED;
}

void rdm_pc_abandon(struct rdmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->status == RDMIG_STATUS_POSTCOPY_PAUSED || s->status == RDMIG_STATUS_POSTCOPY_RECOVER) {
		atomic_store(&s->cancel, true);
		if (s->listener && s->ops->listener_shutdown)
			s->ops->listener_shutdown(s->listener);
		if (s->tp)
			s->tp->ops->shutdown(s->tp);
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
}

/* One piece of a block's received map: the pages it lacks become dirty here. */
static int take_piece(struct rdmig_session *s, const struct rdm_recv_bitmap *bm, uint64_t *at)
{
	struct rdm_block *b;
	uint64_t w0;

	if (bm->block >= s->nblocks) {
		rdm_set_error(s, "postcopy resume: received map of block %u of %u", bm->block,
			      s->nblocks);
		return -EBADMSG;
	}
	b = &s->blocks[bm->block];
	if (at[bm->block] % 64 || bm->nbits > b->npages - at[bm->block]) {
		rdm_set_error(s, "postcopy resume: received map of %s past its %llu pages or out "
				 "of order", b->name, (unsigned long long)b->npages);
		return -EBADMSG;
	}
	w0 = at[bm->block] / 64;
	for (uint64_t i = 0; i < rdm_bitmap_words(bm->nbits); i++)
		b->dirty[w0 + i] = ~rdm_recv_bitmap_word(bm, i);
	at[bm->block] += bm->nbits;
	/* Bits past the block are never pages: the last word's tail stays clear. */
	if (at[bm->block] == b->npages && b->npages % 64)
		b->dirty[b->npages / 64] &= (1ull << (b->npages % 64)) - 1;
	return 0;
}

/* Source: the destination's received maps, then its RESUME_ACK. */
static int recv_received(struct rdmig_session *s, struct rdm_ram *ram)
{
	int timeout = (int)s->opts.params[RDMIG_PARAM_PEER_TIMEOUT];
	uint64_t *at, pieces = 0;
	struct rdm_msg m;
	uint8_t *buf;
	int ret = -ENOMEM;

	at = calloc(s->nblocks, sizeof(*at));
	buf = malloc(RDM_CTRL_BUF);
	if (!at || !buf)
		goto out;
	for (;;) {
		ret = rdm_recv_msg(s, buf, RDM_CTRL_BUF, &m, timeout);
		if (ret)
			goto out;
		if (m.type == RDM_MSG_RP_RESUME_ACK)
			break;
		if (m.type == RDM_MSG_ERROR) {
			rdm_set_error(s, "destination refused the resume: %s", m.u.error.text);
			ret = m.u.error.code < 0 ? m.u.error.code : -EPROTO;
			goto out;
		}
		if (m.type != RDM_MSG_RP_RECV_BITMAP) {
			rdm_set_error(s, "postcopy resume: expected rp-recv-bitmap, got %s",
				      rdm_msg_name(m.type));
			ret = -EPROTO;
			goto out;
		}
		ret = take_piece(s, &m.u.bitmap, at);
		if (ret)
			goto out;
		pieces++;
	}
	ret = 0;
	for (unsigned i = 0; i < s->nblocks && !ret; i++)
		if (at[i] != s->blocks[i].npages)
			ret = -EBADMSG;
	if (ret || m.u.u32.value != pieces) {
		rdm_set_error(s, "postcopy resume: resume-ack after %llu map pieces (it says %u) "
				 "that do not cover every block", (unsigned long long)pieces,
			      m.u.u32.value);
		ret = -EBADMSG;
		goto out;
	}
	ram->remaining = 0;
	for (unsigned i = 0; i < s->nblocks; i++)
		ram->remaining += rdm_bitmap_count(s->blocks[i].dirty, s->blocks[i].npages) *
				  s->blocks[i].page_size;
out:
	free(buf);
	free(at);
	return ret;
}

int rdm_pc_src_resume(struct rdmig_session *s, struct rdm_ram *ram)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	s->pc_resume = true;
	s->rp_error = 0;
	pthread_mutex_unlock(&s->lock);
	ret = rdm_src_connect(s);
	if (!ret)
		ret = recv_received(s, ram);
	if (!ret)
		ret = rdm_src_start_rp(s);
	pthread_mutex_lock(&s->lock);
	s->pc_resume = false;
	pthread_mutex_unlock(&s->lock);
	return ret;
}
