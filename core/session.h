/* SPDX-License-Identifier: MIT */
/* The session object shared by the source and destination state machines. */
#ifndef RDMIG_CORE_SESSION_H
#define RDMIG_CORE_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/cbret.h"
#include "control/auth.h"
#include "control/msg.h"
#include "core/options.h"
#include "core/policy.h"
#include "core/postcopy.h"
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
	enum rdmig_tracker tracker; /* source: who keeps the log (AUTO resolved) */
	int (*hold)(void *opaque, bool hold); /* soft-dirty: writers held still */
	void *hold_opaque;
};

struct rdmig_session {
	enum rdmig_role role;
	struct rdmig_callbacks cb;
	void *opaque;
	struct rdm_options opts;

	struct rdm_block *blocks;
	unsigned nblocks;
	/* Source: the library's trackers while a migration runs (core/track.c). */
	struct rdm_uffd *uffd;
	struct rdm_softdirty *softdirty;

	/* lock guards status, stats, err and the flags the waiters look at. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum rdmig_status status;
	struct rdmig_stats stats;
	char err[RDM_ERRLEN];
	bool starting;  /* a migrate()/incoming() is checking and starting (lock) */
	bool started;   /* a migrate()/incoming() was accepted */
	bool joining;   /* one caller is in pthread_join(thread); the others wait */
	bool joined;
	bool destroying; /* destroy() began: new and waiting API calls get -ECANCELED */
	unsigned users;  /* API calls inside the session; destroy() frees once 0 */
	void *(*main)(void *); /* the migration thread's body */
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
	bool complete_acked; /* DONE: the destination runs */
	uint64_t ready_seq;  /* READY: the destination has everything */
	bool refused;        /* the destination sent ERROR: it will not run */
	int rp_error; /* first error seen on the return path, or 0 */

	/* The switchover commit (commit.c), guarded by lock. */
	bool committed; /* source sent GO / destination got it: cancel is refused */
	bool in_commit; /* destination waits for GO: its cancel is told to the source */
	bool resolving; /* rdmig_resolve() is at work */

	uint64_t t_start_ms;
	uint64_t t_stop_ms; /* source VM stopped at; 0 = running */
	struct rdm_policy policy;
	/* The downtime estimate's round trip: one ITER_END timed to its ack, under lock. */
	uint64_t probe_seq; /* 0: none in flight */
	uint64_t probe_us;
	uint64_t last_state_bytes; /* the last save's device state (kept across migrations) */

	/* Postcopy (core/postcopy.h). */
	atomic_bool pc_start;  /* source: rdmig_postcopy_start() was called */
	struct rdm_pc_src pc;  /* source: page requests, under lock */
	bool pc_running;       /* source: GO sent in postcopy: the VM never comes back here */
	struct rdm_pc_dst *pc_kept; /* destination: a lost postcopy's guard (under lock) */
	/* Recovery (core/postcopy_recover.c), under lock. */
	bool pc_paused;  /* the thread waits in postcopy-paused */
	bool pc_recover; /* rdmig_postcopy_recover() asked (s->addr, dest: s->listener set) */
	bool pc_resume;  /* source: the next handshake resumes postcopy (HELLO flag) */

	/* Authentication (core/auth.c), set before a migration only. */
	uint8_t secret[RDM_AUTH_SECRET_MAX];
	size_t secret_len; /* 0: unauthenticated */
	uint8_t uuid[RDM_UUID_LEN];
	bool has_uuid;
};

uint64_t rdm_now_ms(void);
uint64_t rdm_now_us(void);
/* An absolute deadline ms from now for pthread_cond_timedwait on s->cond (monotonic). */
void rdm_deadline_ts(struct timespec *ts, uint64_t ms);

/*
 * Start s->thread running main (under the lock, so no API call sees a
 * half-started session). -EBUSY when it was already started.
 */
int rdm_session_start(struct rdmig_session *s, void *(*main)(void *));
/* The role bodies of rdmig_migrate()/rdmig_incoming() (session.c wraps them). */
int rdm_source_migrate(struct rdmig_session *s, const char *uri);
int rdm_dest_incoming(struct rdmig_session *s, const char *uri);

bool rdm_is_terminal(enum rdmig_status st);

/* Lock held. Joins the migration thread exactly once; other callers wait for that. */
void rdm_join_locked(struct rdmig_session *s);
/*
 * The body of rdmig_cancel() (lifecycle.c), also run by destroy: 0, or
 * -ENOTCONN / -EALREADY / -EBUSY with the API error set.
 */
int rdm_cancel_session(struct rdmig_session *s);
/*
 * migrate()/incoming() take the session for a run (s->starting set): a fresh
 * one, or one whose last run ended cancelled or failed, whose thread is then
 * joined and whose run state is cleared. -EBUSY (API error set) while a run
 * starts or goes on, in commit-unknown (resolve first) and after completed.
 */
int rdm_session_claim(struct rdmig_session *s);

/*
 * Public calls enter the session first (-EINVAL for NULL, -ECANCELED once
 * destroy began) and leave it on the way out (returning ret); destroy frees
 * only when no call is inside. fresh: the call's own error text starts empty
 * (errors.c).
 */
int rdm_api_enter(struct rdmig_session *s, bool fresh);
/* rdm_api_enter(s, true) for a call only a source may make ("<what> is for a source session"). */
int rdm_api_enter_source(struct rdmig_session *s, const char *what);
int rdm_api_leave(struct rdmig_session *s, int ret);
/* true on the session's migration thread, i.e. inside one of its callbacks. */
bool rdm_on_session_thread(const struct rdmig_session *s);
/* API calls inside s right now (tests wait for their waiters with it). */
unsigned rdm_session_users(struct rdmig_session *s);
/*
 * A setter's way in (config.c): 0 with s->lock held, the setup free to
 * change; or -EBUSY, unlocked, with busy_why as the API error, while a
 * migration starts or runs (an ended one, commit-unknown included, is over).
 */
int rdm_setup_lock(struct rdmig_session *s, const char *busy_why);
/* Forget this thread's failed-call text for s (a new call begins). */
void rdm_api_error_reset(const struct rdmig_session *s);

/* Move to a new state under the lock and tell the event callback. */
void rdm_set_status(struct rdmig_session *s, enum rdmig_status st);
enum rdmig_status rdm_get_status(struct rdmig_session *s);
/* Record the first error (printf-style) into s->err and stats.error_desc. */
void rdm_set_error(struct rdmig_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * What the failure means here, put before its first cause ("<what>: <cause>";
 * strerror(-err) when none was recorded): a cause alone can hide where the VM
 * runs now.
 */
void rdm_error_context(struct rdmig_session *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * A failed API call's message: this thread reads it back from
 * rdmig_last_error(); other threads see it too unless a failure's cause is set.
 */
void rdm_set_api_error(struct rdmig_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Wait on s->cond (lock held) for at most ms; callers re-check their predicate. */
void rdm_cond_slice(struct rdmig_session *s, int ms);

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

/* Forget s->tp under the lock (a cancel may be about to shut it down), then close it; none: nothing. */
void rdm_session_drop_tp(struct rdmig_session *s);

/* Hand the agreed block list to the transport (registration happens there). */
int rdm_session_set_blocks(struct rdmig_session *s);

/*
 * The authenticated part of the handshake (core/auth.c). Order on the wire:
 *   S: HELLO [AUTH_NONCE]  D: HELLO [AUTH_NONCE]  S: BLOCKS AUTH_PROOF
 *   D: [AUTH_PROOF] BLOCKS_ACK     ([..] only when both hold a secret)
 * The destination registers memory (and hands out rkeys) only after it has
 * checked the source's proof; the source starts only after it has checked
 * the destination's. Functions return 0 or -errno; "why" gets the reason for
 * a refusal, meant for both sides' logs.
 */
struct rdm_auth_state {
	bool on; /* both sides hold a secret */
	struct rdm_auth_bind bind;
};
/*
 * Send / receive without recording anything in the session's error: before a
 * peer is authenticated its failures are news about a stranger, not the
 * session's cause (recv: transport or decode error as -errno).
 */
/* Encode m and send it on s->tp, with no error text; wipe: clear the frame after. */
int rdm_encode_send(struct rdmig_session *s, const struct rdm_msg *m, bool wipe);
int rdm_quiet_send(struct rdmig_session *s, const struct rdm_msg *m);
int rdm_quiet_recv(struct rdmig_session *s, void *buf, size_t cap, struct rdm_msg *m,
		   int timeout_ms);
/* Fresh state for the session's transport (its token is bound into the proofs). */
void rdm_auth_init(const struct rdmig_session *s, struct rdm_auth_state *a);
/* Features this side announces in HELLO. */
uint64_t rdm_auth_features(const struct rdmig_session *s);
/* Either side, right after its HELLO: its nonce, when it holds a secret. */
int rdm_auth_send_nonce(struct rdmig_session *s, struct rdm_auth_state *a, bool source);
/* The peer's HELLO features against our secret: -EACCES when one side lacks it. */
int rdm_auth_match(const struct rdmig_session *s, struct rdm_auth_state *a, uint64_t peer_feat,
		   bool source, char *why, size_t len);
/* The peer's AUTH_NONCE when a->on (an ERROR from the peer comes back as its code). */
int rdm_auth_recv_nonce(struct rdmig_session *s, struct rdm_auth_state *a, bool source,
			int timeout_ms, char *why, size_t len);
/* The BLOCKS frame as sent / received, bound into both proofs. */
int rdm_auth_digest_blocks(struct rdm_auth_state *a, const void *frame, size_t len);
/* Source: AUTH_PROOF (mac when a->on, VM uuid when set). */
int rdm_auth_send_source_proof(struct rdmig_session *s, struct rdm_auth_state *a);
/* Destination: the source's proof and, with validate-uuid, its uuid. */
int rdm_auth_check_source_proof(struct rdmig_session *s, struct rdm_auth_state *a,
				const struct rdm_auth_proof *p, char *why, size_t len);
int rdm_auth_send_dest_proof(struct rdmig_session *s, struct rdm_auth_state *a);
/* Source: the destination's proof. */
int rdm_auth_check_dest_proof(struct rdmig_session *s, struct rdm_auth_state *a,
			      const struct rdm_auth_proof *p, char *why, size_t len);

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
