/* SPDX-License-Identifier: MIT */
/*
 * Device state: the source's save callback writes a byte stream that goes out
 * as large DEVSTATE messages, back to back with no per-chunk ack; the
 * destination gathers it, checks length and CRC32, then hands it to load.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/session.h"

#define RDM_DEVSTATE_MAX (1ull << 30)

struct rdmig_writer {
	struct rdmig_session *s;
	uint8_t *buf;
	size_t len;
	uint64_t off;
	uLong crc;
	int err;
};

struct rdmig_reader {
	const uint8_t *data;
	uint64_t len, pos;
};

static int flush(struct rdmig_writer *w)
{
	struct rdm_msg m = {.type = RDM_MSG_DEVSTATE};

	if (!w->len)
		return 0;
	m.u.dev.offset = w->off;
	m.u.dev.len = (uint32_t)w->len;
	m.u.dev.data = w->buf;
	w->err = rdm_send_msg(w->s, &m);
	w->off += w->len;
	w->len = 0;
	return w->err;
}

int rdmig_write(rdmig_writer *w, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!w || (!buf && len))
		return -EINVAL;
	if (w->err)
		return w->err;
	if (w->off + w->len + len > RDM_DEVSTATE_MAX)
		return -EFBIG;
	w->crc = crc32(w->crc, p, (uInt)len);
	while (len) {
		size_t n = RDM_DEVSTATE_CHUNK - w->len;

		if (n > len)
			n = len;
		memcpy(w->buf + w->len, p, n);
		w->len += n;
		p += n;
		len -= n;
		if (w->len == RDM_DEVSTATE_CHUNK && flush(w))
			return w->err;
	}
	return 0;
}

int rdm_devstate_save(struct rdmig_session *s, uint64_t *bytes)
{
	struct rdmig_writer w = {.s = s, .crc = crc32(0, NULL, 0)};
	struct rdm_msg m = {.type = RDM_MSG_DEVSTATE_END};
	int ret = 0;

	w.buf = malloc(RDM_DEVSTATE_CHUNK);
	if (!w.buf)
		return -ENOMEM;
	if (s->cb.save_state) {
		ret = rdm_cb_ret(s->cb.save_state(s->opaque, &w));
		if (ret && !w.err)
			rdm_set_error(s, "save_state callback failed: %s", strerror(-ret));
	}
	if (!ret)
		ret = flush(&w);
	free(w.buf);
	if (ret)
		return ret;
	m.u.dev_end.total = w.off;
	m.u.dev_end.crc = (uint32_t)w.crc;
	*bytes = w.off;
	return rdm_send_msg(s, &m);
}

int rdm_devstate_append(struct rdm_devbuf *d, const struct rdm_devstate *m, char *err,
			size_t errlen)
{
	if (d->ended || m->offset != d->len) {
		snprintf(err, errlen, "device state chunk at %llu, expected %llu%s",
			 (unsigned long long)m->offset, (unsigned long long)d->len,
			 d->ended ? " (after its end)" : "");
		return -EBADMSG;
	}
	if (d->len + m->len > RDM_DEVSTATE_MAX) {
		snprintf(err, errlen, "device state over %llu bytes", RDM_DEVSTATE_MAX);
		return -EFBIG;
	}
	if (d->len + m->len > d->cap) {
		uint64_t cap = d->cap ? d->cap : (1u << 20);
		uint8_t *nd;

		while (cap < d->len + m->len)
			cap *= 2;
		nd = realloc(d->data, cap);
		if (!nd) {
			snprintf(err, errlen, "no memory for %llu bytes of device state",
				 (unsigned long long)cap);
			return -ENOMEM;
		}
		d->data = nd;
		d->cap = cap;
	}
	if (m->len)
		memcpy(d->data + d->len, m->data, m->len);
	d->len += m->len;
	return 0;
}

int rdm_devstate_end(struct rdm_devbuf *d, const struct rdm_devstate_end *m, char *err,
		     size_t errlen)
{
	uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), d->data, (uInt)d->len);

	if (d->ended || m->total != d->len || m->crc != crc) {
		snprintf(err, errlen,
			 "device state damaged: %llu bytes (crc %08x), source sent %llu (crc %08x)",
			 (unsigned long long)d->len, crc, (unsigned long long)m->total, m->crc);
		return -EBADMSG;
	}
	d->ended = true;
	return 0;
}

int rdm_devstate_load(struct rdmig_session *s, const struct rdm_devbuf *d)
{
	struct rdmig_reader r = {.data = d->data, .len = d->len};
	int ret;

	if (!s->cb.load_state)
		return 0;
	ret = rdm_cb_ret(s->cb.load_state(s->opaque, &r));
	if (ret)
		rdm_set_error(s, "load_state callback failed: %s", strerror(-ret));
	return ret;
}

ssize_t rdmig_read(rdmig_reader *r, void *buf, size_t len)
{
	uint64_t n;

	if (!r || (!buf && len))
		return -EINVAL;
	n = r->len - r->pos;
	if (n > len)
		n = len;
	if (n)
		memcpy(buf, r->data + r->pos, n);
	r->pos += n;
	return (ssize_t)n;
}

void rdm_devbuf_free(struct rdm_devbuf *d)
{
	free(d->data);
	memset(d, 0, sizeof(*d));
}
