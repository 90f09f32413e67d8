/* SPDX-License-Identifier: MIT */
/*
 * The rdma transport's insides. One rdma_cm connection (an RC queue pair) for
 * control and return-path messages, `channels` more for page data.
 *
 * Control: SEND_WITH_IMM of whole frames into receives the peer posted ahead;
 * the immediate returns credits (receives re-posted), so no READY ping-pong and
 * no waiting for a send completion before the next message. A ring of
 * registered send slots keeps messages in order while credits are short.
 *
 * Data: RDMA WRITEs from the source's registered memory straight into the
 * destination's, chunk k of block b always on data QP (b + k) % channels (so
 * two writes to the same bytes land in order), chained and posted per batch,
 * one in RT_SIGNAL_EVERY (or RT_SIGNAL_BYTES) signaled. A fence is a zero-length
 * WRITE_WITH_IMM(seq) on every data QP: RC places it after that QP's writes,
 * so the destination knows iteration seq is in memory once every QP's fence
 * has arrived — no drain of the send queues.
 *
 * Postcopy (read.c): the source registers its blocks for REMOTE_READ and
 * sends their keys; the destination READs the pages it lacks into registered
 * staging slots (faults on the control QP, the rest on the data QPs, so a
 * fault never queues behind background reads) and hands them to the placer.
 * Memory userfaultfd guards is never written by the NIC.
 *
 * Registration (pin/): pin-all sends every key at set_blocks; on demand the
 * source asks for the keys of the chunks just ahead of its writes, many per
 * message, while it keeps writing to chunks it has keys for, and tells the
 * destination which idle chunks to drop when its budget is spent.
 *
 * Rooms, each calling only the ones listed before it (no two files call
 * each other; the doors open one way):
 *   base.c      first error, clocks, errno dialects (calls nobody)
 *   ctrl.c      control channel: slots, credits, message queues
 *   read.c      postcopy: blocks exposed for READ, staging, reads (-> ctrl)
 *   keys.c      registration across the wire, on its own thread (-> ctrl, read)
 *   data.c      WR chains, fences, completions of data QPs (-> keys)
 *   progress.c  the completion thread (-> ctrl, read, data)
 *   cm.c        rdma_cm: QPs, connecting, the CM thread (-> ctrl)
 *   session.c   one rdm_rdma's allocation and teardown (-> progress, cm, keys, ctrl)
 *   listen.c    the listener, sessions assembled side by side
 *               (-> session, cm, ctrl, data, progress)
 *   rdma.c      the vtable (-> all of the above)
 *
 * Threads: the callers, progress (completions), cm (disconnects) and keys
 * (registration requests and answers: ibv_reg_mr never runs on the
 * completion path, so no completion queue waits for a pin).
 *
 * Locks, in order: r->lock (one per session, not recursive), then the pin's
 * own lock (pin/ calls nothing back). "Lock held" below means r->lock; no
 * verbs registration call is made with it held. rt_fail() takes the lock,
 * rt_fail_locked() expects it.
 */
#ifndef RDMIG_TRANSPORT_RDMA_INT_H
#define RDMIG_TRANSPORT_RDMA_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "control/msg.h"
#include "pin/pin.h"
#include "transport/transport.h"

#define RT_MAX_MSG RDM_TP_MAX_MSG /* largest control frame */
#define RT_CREDITS 32u           /* control receives the peer may fill */
#define RT_RESERVE 8u            /* extra receives for credit-only messages */
#define RT_SLOTS 16u             /* control send slots */
#define RT_SQ_DEPTH 1024u        /* data send queue depth (>= 512) */
#define RT_BATCH 32u             /* WRs chained per ibv_post_send */
#define RT_SIGNAL_EVERY 64u       /* selective signaling: every 64 WRs ... */
#define RT_SIGNAL_BYTES (256u << 10) /* ... or 256 KiB, whichever comes first */
#define RT_INFLIGHT (2u << 20)    /* bytes in flight per data QP: keeps the send time honest */
#define RT_MAX_WR (1u << 20)     /* bytes per WRITE (rxe's max_msg_sz is not to be trusted) */
#define RT_FENCE_RECVS 64u       /* receives posted for fence immediates per data QP */
#define RT_RING 2048u              /* > send queue depth */
#define RT_PREFETCH 32u          /* on demand: chunk keys asked for ahead of the writer */
#define RT_RD_DEPTH 16u          /* READs in flight per QP (clamped to the device's) */
#define RT_STAGE_LEN (2u << 20)  /* a staging slot: the largest page postcopy takes */
#define RT_STAGE_URGENT 2u       /* slots only faults use */
#define RT_STAGE_SLOTS 10u       /* slots in all */

/* The CHANNEL frame in the connect private data (cm.c, listen.c). */
#define RT_FLAG_PIN_ALL 1u
#define RT_FLAG_PROOF 2u      /* a CHAN_PROOF frame follows the CHANNEL frame */
#define RT_FLAG_CHUNK_SHIFT 8 /* bits 8..15: log2 of the chunk size */
#define RT_HELLO_LEN 28u      /* the CHANNEL frame */

/* wr_id tags on the control QP. */
#define RT_WR_RECV 0x1000000ull
#define RT_WR_SLOT 0x2000000ull
#define RT_WR_CREDIT 0x3000000ull
#define RT_WR_FENCE 0x4000000ull
/* wr_id of a READ, on any QP (data QPs number their WRs below it): the tag | the slot. */
#define RT_WR_READ (1ull << 62)

/* What has been posted on a data QP up to and including one WR. */
struct rt_mark {
	uint64_t gseq;  /* global seq of that WR */
	uint64_t bytes; /* bytes posted on the QP so far */
};

/* A remote chunk's key as the source knows it. */
enum rt_key_state {
	RT_KEY_NONE,  /* no key (never asked, or dropped to stay in budget) */
	RT_KEY_ASKED, /* asked for in an RDMA_REG, no answer yet */
	RT_KEY_VALID, /* addr, len and rkey may be written to */
};

/* A remote chunk as the source sees it. */
struct rt_rkey {
	uint64_t addr, len;
	uint32_t rkey;
	enum rt_key_state state;
	uint64_t last_gseq; /* last WRITE posted into it */
	uint64_t lru;       /* tick of last use */
};

struct rt_qp {
	struct rdma_cm_id *id;
	struct ibv_qp *qp;
	struct ibv_cq *scq, *rcq;
	unsigned index;
	/* source data QP: the batch being built and what is in flight */
	struct ibv_send_wr wr[RT_BATCH];
	struct ibv_sge sge[RT_BATCH];
	unsigned nbatch;
	unsigned since_signal;
	uint64_t unsignaled_bytes;
	uint64_t posted;    /* WRs posted */
	uint64_t completed; /* WRs known complete (a signaled one completes all before it) */
	uint64_t done_gseq; /* global seq of the last completed WR */
	uint64_t last_gseq; /* global seq of the last posted WR */
	struct rt_mark *ring; /* WR n at n % RT_RING: what a completion of n covers */
	uint64_t posted_bytes, completed_bytes, queued_bytes; /* queued: in the batch */
	/* destination data QP */
	uint64_t fence_seq;
};

struct rt_out;

/* A staging slot of the destination's postcopy reads (read.c). */
struct rt_stage {
	bool busy;        /* held by a pull() */
	unsigned pending; /* its READs not completed yet */
};

/* The source's blocks as the destination may read them. */
struct rt_peer_block {
	uint64_t addr, len;
	uint32_t rkey;
};

struct rt_msgq {
	struct rt_msgq *next;
	size_t len;
	uint8_t data[];
};

struct rdm_rdma {
	struct rdm_tp base;
	bool source;
	bool pin_all;
	uint64_t chunk;
	int timeout_ms;
	uint64_t token;
	const uint8_t *secret; /* opts.secret: channel proofs (NULL: none) */
	size_t secret_len;

	struct rdma_event_channel *ech;
	struct ibv_context *verbs;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cch;
	struct rt_qp ctrl;
	struct rt_qp *data;
	unsigned ndata;

	/* lock guards everything below that two threads touch. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int error;     /* first failure; every later call returns it */
	char errmsg[RDM_TP_ERRLEN]; /* its text, for calls on other threads that return it */
	bool stopping; /* close() in progress */
	bool hangup;   /* the peer disconnected (CM thread -> progress thread) */
	pthread_t progress, cmthread;
	bool progress_started, cm_started;

	/* control receive side */
	uint8_t *rbuf;
	struct ibv_mr *rmr;
	unsigned to_return; /* receives re-posted since we last returned credits */
	struct rt_msgq *qhead, **qtail; /* messages for the caller (recv) */
	struct rt_msgq *khead, **ktail; /* registration messages for the keys thread */
	unsigned kqlen;

	/* control send side: a ring of slots, filled -> posted -> completed */
	uint8_t *sbuf;
	struct ibv_mr *smr;
	uint32_t slot_len[RT_SLOTS];
	unsigned fill, post, done; /* monotonic counters, slot = counter % RT_SLOTS */
	unsigned credits;
	unsigned credit_msgs_out;  /* credit-only sends not yet completed */
	struct rt_out *outq;       /* internal messages waiting for a slot */

	/* blocks and registrations */
	struct rdm_tp_block *blocks;
	unsigned nblocks;
	struct rdm_pin *pin;
	bool ready;           /* source: keys and budget received; destination: asked for them */
	uint64_t peer_budget; /* destination's registration budget */
	uint64_t remote_bytes;
	struct rt_rkey **remote; /* source: [block][chunk] */
	uint64_t *nchunks;         /* chunks per block */
	uint64_t tick;
	uint64_t gseq;             /* global WRITE sequence */
	unsigned asks_out;         /* REG_REQ messages without an answer */
	pthread_t keys;            /* the keys thread (keys.c) */
	bool keys_started;

	/* postcopy reads (read.c) */
	struct ibv_mr **read_mr;       /* source: [block], REMOTE_READ, from expose() to close */
	struct rt_peer_block *peer;    /* destination: [block], once the source's keys came */
	rdm_tp_place_fn place;         /* destination: where read pages go */
	void *place_opaque;
	uint8_t *stage;                /* destination: RT_STAGE_SLOTS x RT_STAGE_LEN */
	struct ibv_mr *stage_mr;
	struct rt_stage slot[RT_STAGE_SLOTS];
	unsigned read_rr;              /* the data QP the next background read goes on */
};

#define to_rdma(t) ((struct rdm_rdma *)(t))

/* base.c */
/* Record the first error (and why) for every later call; wakes every waiter. Returns err. */
int rt_fail(struct rdm_rdma *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, lock held. */
int rt_fail_locked(struct rdm_rdma *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A call that failed without text of its own gets the first error's text. Lock not held. */
int rt_ret(struct rdm_rdma *r, int ret);
/* -errno from a verbs call that returned rc (positive errno, or -1 with errno). */
int rt_errno(int rc);
uint64_t rt_now_ms(void);
/* The rt_now_ms() deadline for a timeout; < 0 waits without limit (UINT64_MAX). */
uint64_t rt_deadline(int timeout_ms);
/* Deadline helper for pthread_cond_timedwait (ms from now, clamped to 100 ms slices). */
void rt_slice(struct timespec *ts, int ms);

/* ctrl.c */
int rt_ctrl_init(struct rdm_rdma *r);
void rt_ctrl_fini(struct rdm_rdma *r);
int rt_ctrl_send(struct rdm_rdma *r, const void *msg, size_t len);
/* Lock held: queue an internal message (never blocks). */
int rt_ctrl_send_msg(struct rdm_rdma *r, const struct rdm_msg *m);
int rt_ctrl_recv(struct rdm_rdma *r, void *buf, size_t cap, size_t *len, int timeout_ms);
/* Lock held: the oldest registration message, or NULL; the caller frees it. */
struct rt_msgq *rt_ctrl_take_internal(struct rdm_rdma *r);
/* Wait up to ms for the messages handed to send() to leave. Lock not held. */
void rt_ctrl_flush(struct rdm_rdma *r, int ms);
/* Progress-thread side (lock held): completions of the control QP. */
int rt_ctrl_on_recv(struct rdm_rdma *r, const struct ibv_wc *wc);
int rt_ctrl_on_send(struct rdm_rdma *r, const struct ibv_wc *wc);

/* read.c */
int rt_expose(struct rdm_tp *t);
int rt_set_placer(struct rdm_tp *t, rdm_tp_place_fn fn, void *opaque);
int rt_pull(struct rdm_tp *t, const struct rdm_tp_span *v, unsigned n, bool urgent,
	    int timeout_ms);
/* Destination, keys thread, lock held: the source's keys for reads (RDMA_KEYS). */
int rt_read_on_keys(struct rdm_rdma *r, const struct rdm_rdma_keys *ks);
/* Progress-thread side (lock held): a READ's completion. */
int rt_read_on_send(struct rdm_rdma *r, const struct ibv_wc *wc);
/* After the QPs are gone: the read registrations and staging. */
void rt_read_fini(struct rdm_rdma *r);

/* keys.c */
/* set_blocks: registers (pin-all), starts the keys thread, source waits for RDMA_READY. */
int rt_keys_setup(struct rdm_rdma *r);
/* Joins the keys thread (r->stopping set first). */
void rt_keys_stop(struct rdm_rdma *r);
/*
 * Source, lock held: the key for [off, ...) of block b in *out (0), or
 * -EAGAIN when it is asked for and not here yet (the caller flushes its
 * writes and waits on r->cond); asks ahead. idle: the WRITE sequence below
 * which every WRITE has completed (chunks up to it may be dropped).
 */
int rt_keys_lookup(struct rdm_rdma *r, unsigned b, uint64_t off, uint64_t idle,
		   struct rt_rkey **out);

/* data.c */
int rt_write(struct rdm_tp *t, unsigned block, uint64_t off, uint64_t len);
int rt_fence(struct rdm_tp *t, uint64_t seq);
int rt_wait_fence(struct rdm_tp *t, uint64_t seq, int timeout_ms);
/* Destination, at setup: the receives fences land in. */
int rt_data_post_fence_recvs(struct rt_qp *q);
/* Progress-thread side (lock held). */
int rt_data_on_send(struct rdm_rdma *r, struct rt_qp *q, const struct ibv_wc *wc);
int rt_data_on_recv(struct rdm_rdma *r, struct rt_qp *q, const struct ibv_wc *wc);

/* progress.c */
int rt_progress_start(struct rdm_rdma *r);
void rt_progress_stop(struct rdm_rdma *r);

/* cm.c */
int rt_set_nonblock(int fd);
/* Next CM event within timeout_ms: 0 and *ev, or -ETIMEDOUT. */
int rt_next_event(struct rdma_event_channel *ech, int timeout_ms, struct rdma_cm_event **ev);
int rt_connect_all(struct rdm_rdma *r, const struct rdm_addr *a, char *err, size_t errlen);
int rt_setup_qp(struct rdm_rdma *r, struct rt_qp *q, struct rdma_cm_id *id, bool data);
void rt_destroy_qp(struct rt_qp *q);
/* The READ depths to connect with: RT_RD_DEPTH, or less where the device takes less. */
void rt_rd_depth(struct rdm_rdma *r, uint8_t *initiator, uint8_t *responder);
int rt_start_cm_thread(struct rdm_rdma *r);

/* session.c */
struct rdm_rdma *rt_alloc(const struct rdm_tp_opts *o, bool source, unsigned ndata);
void rt_free(struct rdm_rdma *r);

/* listen.c */
int rt_listen(const struct rdm_addr *a, const struct rdm_tp_opts *o, struct rdm_tp_listener **out,
	      char *err, size_t errlen);
int rt_listener_port(struct rdm_tp_listener *l, uint16_t *port);
int rt_accept(struct rdm_tp_listener *l, int timeout_ms, struct rdm_tp **out, char *err,
	      size_t errlen);
void rt_listener_shutdown(struct rdm_tp_listener *l);
void rt_listener_close(struct rdm_tp_listener *l);

#endif
