/* SPDX-License-Identifier: MIT */
/* The session object shared by the source and destination state machines. */
#ifndef RDMIG_CORE_SESSION_H
#define RDMIG_CORE_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "control/msg.h"
#include "core/options.h"
#include "core/policy.h"
#include "rdmig/rdmig.h"
#include "transport/transport.h"

#define RDM_ERRLEN 256
/* Control frames are small except device state chunks, which fill the largest. */
#define RDM_CTRL_BUF RDM_TP_MAX_MSG
#define RDM_DEVSTATE_CHUNK (RDM_TP_MAX_MSG - 64)

struct rdm_block {
	char name[RDM_NAME_MAX + 1];
	uint8_t *host;
	uint64_t len;
	uint32_t page_size;
	uint64_t npages;
	uint64_t *dirty; /* source: pages still to send */
};

struct rdmig_session {
	enum rdmig_role role;
	struct rdmig_callbacks cb;
	void *opaque;
	struct rdm_options opts;

	struct rdm_block *blocks;
	unsigned nblocks;

	/* lock guards status, stats, err and the flags the waiters look at. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum rdmig_status status;
	struct rdmig_stats stats;
	char err[RDM_ERRLEN];
	bool started;   /* a migrate()/incoming() was accepted */
	bool joined;
	pthread_t thread;
	pthread_t rp_thread;
	bool rp_running;

	atomic_bool cancel;
	atomic_bool go_on; /* rdmig_continue() */

	struct rdm_addr addr;
	const struct rdm_tp_ops *ops;
	struct rdm_tp_listener *listener;
	struct rdm_tp *tp;
	uint16_t port;
	struct rdm_tls *tls; /* rdmig_set_tls(): tcp credentials, NULL: plaintext */

	/* Source: return-path state, guarded by lock. */
	uint64_t acked_seq;
	bool complete_acked;
	int rp_error; /* first error seen on the return path, or 0 */

	uint64_t t_start_ms;
	uint64_t t_stop_ms; /* source VM stopped at; 0 = running */
	struct rdm_policy policy;
};

uint64_t rdm_now_ms(void);

/* Move to a new state under the lock and tell the event callback. */
void rdm_set_status(struct rdmig_session *s, enum rdmig_status st);
enum rdmig_status rdm_get_status(struct rdmig_session *s);
/* Record the first error (printf-style) into s->err and stats.error_desc. */
void rdm_set_error(struct rdmig_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Message for the API's last error; replaces what was there (used by setters). */
void rdm_set_api_error(struct rdmig_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

bool rdm_cancelled(struct rdmig_session *s);
/* -ECANCELED after cancel, the return path's error if it failed, else 0. */
int rdm_check_abort(struct rdmig_session *s);

/* Encode and send m; -errno with the reason recorded. */
int rdm_send_msg(struct rdmig_session *s, const struct rdm_msg *m);
/* Receive and decode one message into m (pointing into buf). */
int rdm_recv_msg(struct rdmig_session *s, void *buf, size_t cap, struct rdm_msg *m,
		 int timeout_ms);
int rdm_send_error(struct rdmig_session *s, int code, const char *text);

/*
 * The checks migrate() and incoming() share: role, a fresh session, blocks,
 * options, the URI and its transport. 0, or -errno with the API error set.
 */
int rdm_session_begin(struct rdmig_session *s, enum rdmig_role want, const char *uri);
/* Transport options from the session's parameters. */
void rdm_session_tp_opts(const struct rdmig_session *s, struct rdm_tp_opts *o);

/* Hand the agreed block list to the transport (registration happens there). */
int rdm_session_set_blocks(struct rdmig_session *s);

/* Thread bodies. */
void *rdm_source_main(void *arg);
void *rdm_dest_main(void *arg);

/* Device state streams (devstate.c). */
int rdm_devstate_save(struct rdmig_session *s, uint64_t *bytes);
struct rdm_devbuf {
	uint8_t *data;
	uint64_t len, cap;
	bool ended;
};
int rdm_devstate_append(struct rdm_devbuf *d, const struct rdm_devstate *m, char *err,
			size_t errlen);
int rdm_devstate_end(struct rdm_devbuf *d, const struct rdm_devstate_end *m, char *err,
		     size_t errlen);
int rdm_devstate_load(struct rdmig_session *s, const struct rdm_devbuf *d);
void rdm_devbuf_free(struct rdm_devbuf *d);

#endif
