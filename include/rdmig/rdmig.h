/* SPDX-License-Identifier: MIT */
/*
 * rdmig: live migration of guest RAM and device state over RDMA (and tcp).
 *
 * A VMM creates a session (source or destination), adds its RAM blocks, sets
 * callbacks, capabilities and parameters, then calls rdmig_migrate() or
 * rdmig_incoming(). Both return at once; the migration runs on a thread of the
 * session. rdmig_wait() waits for a terminal state, rdmig_query() reads stats
 * at any time, rdmig_cancel() stops it.
 *
 * Every function returns 0 or a negative errno; rdmig_last_error() says why.
 *
 * Threads: every function may be called from any thread at any time, also
 * from inside the session's callbacks (except rdmig_session_destroy(); and
 * rdmig_wait() there returns -EDEADLK, since it would wait for itself).
 *
 * Re-migrate, like QEMU's migrate after a cancel (there is no reset call):
 * once a run ends cancelled or failed, rdmig_migrate()/rdmig_incoming() on
 * the same session start a fresh one. Blocks, callbacks, capabilities,
 * parameters, secret, uuid and TLS stay; stats and the error start over. They
 * return -EBUSY while a run starts or goes on, in commit-unknown (resolve it
 * first: the VM may run over there), and after completed (the VM moved: a
 * session's completed migration is its last). Man pages: rdmig(7), one per
 * function in section 3.
 */
#ifndef RDMIG_RDMIG_H
#define RDMIG_RDMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RDMIG_VERSION_MAJOR 0
#define RDMIG_VERSION_MINOR 2

typedef struct rdmig_session rdmig_session;
typedef struct rdmig_writer rdmig_writer;
typedef struct rdmig_reader rdmig_reader;

enum rdmig_role {
	RDMIG_ROLE_SOURCE,
	RDMIG_ROLE_DEST,
};

/* States, with the meanings of QEMU's MigrationStatus. */
#define RDMIG_STATUS_LIST(X)                                                    \
	X(NONE, "none")                     /* nothing started */               \
	X(SETUP, "setup")                   /* connecting, negotiating, pinning */ \
	X(ACTIVE, "active")                 /* precopy iterations */            \
	X(PRE_SWITCHOVER, "pre-switchover") /* paused before switchover */      \
	X(DEVICE, "device")                 /* VM stopped, final pass and state */ \
	X(POSTCOPY_ACTIVE, "postcopy-active") /* VM runs at the destination, pages follow */ \
	X(POSTCOPY_PAUSED, "postcopy-paused") /* link lost in postcopy: rdmig_postcopy_recover() */ \
	X(COMPLETED, "completed")           /* destination confirmed */         \
	X(FAILED, "failed")                 /* see rdmig_last_error() */        \
	X(CANCELLING, "cancelling")         /* cancel requested */              \
	X(CANCELLED, "cancelled")           /* cancelled; source VM running */ \
	X(COMMIT_UNKNOWN, "commit-unknown") /* VM stopped here, outcome unknown: rdmig_resolve() */ \
	X(POSTCOPY_RECOVER, "postcopy-recover") /* reconnecting after postcopy-paused */

enum rdmig_status {
#define RDMIG_X_ENUM(name, str) RDMIG_STATUS_##name,
	RDMIG_STATUS_LIST(RDMIG_X_ENUM)
#undef RDMIG_X_ENUM
};

/* Capabilities: booleans, checked together when set (like migrate_caps_check). */
#define RDMIG_CAP_LIST(X)                                                   \
	X(AUTO_CONVERGE, "auto-converge")                                   \
	X(RDMA_PIN_ALL, "rdma-pin-all")                                     \
	X(ZERO_PAGE_DETECTION, "zero-page-detection")                       \
	X(RETURN_PATH, "return-path")                                       \
	X(POSTCOPY_RAM, "postcopy-ram")                                     \
	X(PAUSE_BEFORE_SWITCHOVER, "pause-before-switchover")               \
	X(EVENTS, "events")                                                 \
	X(VALIDATE_UUID, "validate-uuid") /* destination: the source VM's uuid must match */ \
	X(RELEASE_RAM, "release-ram") /* source, postcopy: free pages the destination has */ \
	X(PREFAULT, "prefault") /* destination: populate all RAM before the pages come */

enum rdmig_cap {
#define RDMIG_X_ENUM(name, str) RDMIG_CAP_##name,
	RDMIG_CAP_LIST(RDMIG_X_ENUM)
#undef RDMIG_X_ENUM
	RDMIG_CAP__COUNT
};

/* Parameters: X(NAME, "name", default, min, max). Checked when set. */
#define RDMIG_PARAM_LIST(X)                                                            \
	X(DOWNTIME_LIMIT, "downtime-limit", 300, 0, 2000000)      /* ms */               \
	X(MAX_BANDWIDTH, "max-bandwidth", 0, 0, UINT64_MAX)       /* bytes/s, 0 = none */ \
	X(CPU_THROTTLE_INITIAL, "cpu-throttle-initial", 20, 1, 99) /* % */               \
	X(CPU_THROTTLE_INCREMENT, "cpu-throttle-increment", 10, 1, 99) /* % */           \
	X(MAX_CPU_THROTTLE, "max-cpu-throttle", 99, 1, 99)        /* % */                \
	X(CPU_THROTTLE_TAILSLOW, "cpu-throttle-tailslow", 0, 0, 1) /* bool */            \
	X(THROTTLE_TRIGGER_THRESHOLD, "throttle-trigger-threshold", 50, 1, 100) /* % */  \
	X(CHANNELS, "channels", 2, 1, 64)                         /* data queues */      \
	X(CHUNK_SIZE, "chunk-size", 1u << 20, 1u << 20, 1u << 30) /* bytes, power of 2 */ \
	X(PEER_TIMEOUT, "peer-timeout", 10000, 100, 600000)       /* ms of silence */ \
	X(POSTCOPY_AFTER, "postcopy-after", 0, 0, 1000) /* passes without progress, 0 = never */ \
	X(DEVICE_STATE_SIZE, "device-state-size", 0, 0, 1u << 30) /* bytes save_state writes: a hint, 0 = unknown */

enum rdmig_param {
#define RDMIG_X_ENUM(name, str, def, lo, hi) RDMIG_PARAM_##name,
	RDMIG_PARAM_LIST(RDMIG_X_ENUM)
#undef RDMIG_X_ENUM
	RDMIG_PARAM__COUNT
};

/*
 * What QEMU's query-migrate reports, with the same meanings. The caller sets
 * size (RDMIG_STATS_INIT) so the struct can grow: rdmig_query() fills only
 * the first size bytes, and leaves size as it found it or smaller.
 */
struct rdmig_stats {
	size_t size; /* sizeof(struct rdmig_stats) of the caller's header */
	enum rdmig_status status;
	uint64_t total_time_ms;        /* from migrate() to now or to the end */
	uint64_t setup_time_ms;        /* connect, negotiation, registration */
	uint64_t downtime_ms;          /* VM stopped until destination confirmed */
	uint64_t expected_downtime_ms; /* remaining / bandwidth, while active */
	uint64_t ram_total;            /* bytes of all blocks */
	uint64_t ram_transferred;      /* bytes put on the wire for RAM */
	uint64_t ram_remaining;        /* dirty bytes not yet sent */
	uint64_t ram_duplicate;        /* zero pages (sent as runs) */
	uint64_t ram_normal;           /* pages sent as data */
	uint64_t ram_normal_bytes;     /* bytes of those pages */
	uint64_t dirty_sync_count;     /* dirty-log syncs (iterations) */
	uint64_t dirty_pages_rate;     /* pages dirtied per second, last period */
	double mbps;                   /* throughput of the last period, Mbit/s */
	uint64_t pages_per_second;     /* pages sent per second, last period */
	unsigned cpu_throttle_percentage;
	char error_desc[256];          /* why it failed, when it failed */
	/* Since 0.3 (a caller built before gets the fields above only). */
	uint64_t postcopy_requests;    /* page requests: received (source), sent (destination) */
	uint64_t postcopy_pages_missing; /* destination: pages dropped at the switch, not yet here */
	/* tcp: the source's counts; rdma: the destination's, which reads every page itself */
	uint64_t postcopy_pages_pulled; /* pages sent (rdma: read) because a thread faulted on them */
	uint64_t postcopy_pages_pushed; /* pages sent (rdma: read) in the background */
	/* Destination: QEMU's postcopy-blocktime (summed over the faulting threads) and the
	 * time from a fault to its page's arrival. */
	uint64_t postcopy_blocktime_ms;
	uint64_t postcopy_latency_p50_us, postcopy_latency_p99_us, postcopy_latency_max_us;
	uint64_t ram_released;         /* source, release-ram: bytes freed in postcopy */
	/* Destination, prefault: its RAM populated before the pages came (in setup_time_ms). */
	uint64_t prefault_time_ms, prefault_bytes;
};
/* An initializer with size set: struct rdmig_stats st = RDMIG_STATS_INIT; */
#ifdef __cplusplus
#define RDMIG_STATS_INIT                 \
	[] {                             \
		rdmig_stats s_{};        \
		s_.size = sizeof(s_);    \
		return s_;               \
	}()
#else
#define RDMIG_STATS_INIT { .size = sizeof(struct rdmig_stats) }
#endif

struct rdmig_callbacks {
	size_t size; /* sizeof(struct rdmig_callbacks), for future growth */
	/*
	 * Source: OR the pages of block `block` dirtied since the last call into
	 * bitmap (bit i = page i, npages bits), then forget them. NULL: the VM is
	 * treated as paused, every page is sent once. Not called for a block
	 * whose log the library keeps (rdmig_add_block_opts() with a tracker).
	 */
	int (*dirty_log)(void *opaque, unsigned block, uint64_t *bitmap, uint64_t npages);
	int (*vm_stop)(void *opaque);  /* source at switchover */
	int (*vm_start)(void *opaque); /* source after a failure/cancel; destination at the end */
	void (*set_throttle)(void *opaque, unsigned percent); /* auto-converge */
	int (*save_state)(void *opaque, rdmig_writer *w);     /* source, VM stopped */
	int (*load_state)(void *opaque, rdmig_reader *r);     /* destination */
	void (*event)(void *opaque, enum rdmig_status from, enum rdmig_status to);
};

int rdmig_session_create(enum rdmig_role role, const struct rdmig_callbacks *cb, void *opaque,
			 rdmig_session **out);
/*
 * Cancels and waits if needed, then frees everything. Threads inside other
 * calls on s (rdmig_wait() included) return -ECANCELED and are waited for;
 * no call may start on s after destroy returns. From one of the session's
 * own callbacks it does nothing (it would wait for its own thread).
 */
void rdmig_session_destroy(rdmig_session *s);

/*
 * Blocks must be added before migrate()/incoming(); same list on both sides.
 * host must be aligned to page_size, and no two blocks may overlap (-EINVAL).
 */
int rdmig_add_block(rdmig_session *s, const char *name, void *host, uint64_t length,
		    uint32_t page_size);

/*
 * Who keeps a source block's dirty log. NONE: the VMM, through the dirty_log
 * callback. The others: the library itself, for plain process memory the
 * VMM's own threads write (no KVM dirty log):
 *  - UFFD_WP: userfaultfd write-protect; the first write to a page after a
 *    sync faults once to a thread of the library, which logs it. Needs a
 *    kernel with userfaultfd write-protect for this memory, and the privilege
 *    to open a userfaultfd (or vm.unprivileged_userfaultfd=1).
 *  - SOFT_DIRTY: /proc/self/pagemap soft-dirty bits, cleared per sync through
 *    /proc/self/clear_refs. Clearing is not atomic with reading, so every sync
 *    runs with the writers held still by the block's hold callback (required),
 *    and clear_refs works on the whole process: one migration at a time per
 *    process may use it. 4 KiB pages only.
 *  - AUTO: UFFD_WP when this kernel can write-protect the block, else
 *    SOFT_DIRTY (which then needs hold); -ENOTSUP when neither works.
 * Over rdma, UFFD_WP needs the rdma-pin-all capability (a write-protected
 * page cannot be registered on demand) and SOFT_DIRTY is refused (clear_refs
 * moves a pinned page away from its registration): rdmig_migrate() says so.
 * A destination ignores the tracker (the library alone writes its memory).
 */
enum rdmig_tracker {
	RDMIG_TRACK_NONE = 0,
	RDMIG_TRACK_AUTO = 1,
	RDMIG_TRACK_UFFD_WP = 2,
	RDMIG_TRACK_SOFT_DIRTY = 3,
};

struct rdmig_block_opts {
	size_t size; /* sizeof(struct rdmig_block_opts) of the caller's header */
	const char *name;
	void *host;
	uint64_t length;
	uint32_t page_size;
	enum rdmig_tracker tracker;
	/*
	 * SOFT_DIRTY: hold(hold_opaque, true) stops every thread writing this
	 * memory until hold(hold_opaque, false); both return 0 or -errno. Called
	 * around each sync, also while the VM is stopped: false must restore what
	 * was before true. Unused by the other trackers.
	 */
	int (*hold)(void *hold_opaque, bool hold);
	void *hold_opaque;
};
/* An initializer with size set: struct rdmig_block_opts o = RDMIG_BLOCK_OPTS_INIT; */
#ifdef __cplusplus
#define RDMIG_BLOCK_OPTS_INIT                 \
	[] {                                  \
		rdmig_block_opts o_{};        \
		o_.size = sizeof(o_);         \
		return o_;                    \
	}()
#else
#define RDMIG_BLOCK_OPTS_INIT { .size = sizeof(struct rdmig_block_opts) }
#endif

/*
 * rdmig_add_block() with options. -EINVAL for an unset or unknown size,
 * unknown bytes past this layout that are not zero, or an unknown tracker;
 * -ENOTSUP (source) when this kernel cannot keep the chosen tracker's log for
 * this memory. The tracker starts once the migration's setup is done and
 * stops when it ends.
 */
int rdmig_add_block_opts(rdmig_session *s, const struct rdmig_block_opts *o);
/* The tracker a source block got (AUTO resolved), by name; -ENOENT if unknown. */
int rdmig_block_tracker(const rdmig_session *s, const char *name, enum rdmig_tracker *t);
const char *rdmig_tracker_name(enum rdmig_tracker t);

int rdmig_set_capability(rdmig_session *s, enum rdmig_cap cap, bool on);
int rdmig_get_capability(const rdmig_session *s, enum rdmig_cap cap, bool *on);
/*
 * During a migration only downtime-limit and max-bandwidth change (applied
 * from the next period / the next write, like QEMU's migrate-set-parameters);
 * any other parameter, and any capability, is -EBUSY.
 */
int rdmig_set_parameter(rdmig_session *s, enum rdmig_param p, uint64_t value);
int rdmig_get_parameter(const rdmig_session *s, enum rdmig_param p, uint64_t *value);
/* By name ("downtime-limit"), for tools; -ENOENT for an unknown name. */
int rdmig_cap_from_name(const char *name, enum rdmig_cap *cap);
int rdmig_param_from_name(const char *name, enum rdmig_param *p);
const char *rdmig_cap_name(enum rdmig_cap cap);
const char *rdmig_param_name(enum rdmig_param p);

/*
 * Authentication: a per-migration secret (16..1024 bytes), handed to both sides
 * out of band, as libvirt would. With a secret the two sides prove to each
 * other that they hold it (HMAC-SHA256 challenge-response over both nonces,
 * the block list and the session token) before the destination registers
 * memory, hands out an rkey or takes a byte of RAM, and every data channel
 * proves it belongs to that session. A side with a secret refuses a peer
 * without one; with no secret on either side the migration runs
 * unauthenticated. Set before migrate()/incoming() (-EBUSY during one); the
 * bytes are copied, and wiped when the session is destroyed.
 */
int rdmig_set_secret(rdmig_session *s, const void *secret, size_t len);
/*
 * The VM's uuid. A source sends it inside the (authenticated) handshake; a
 * destination with the validate-uuid capability refuses a different one, like
 * QEMU's validate-uuid.
 */
int rdmig_set_vm_uuid(rdmig_session *s, const uint8_t uuid[16]);

/*
 * "tcp:HOST:PORT" or "rdma:HOST:PORT"; HOST an IPv4 literal, [IPv6] or localhost.
 * Again after a cancelled or failed run (see the top of this file), else -EBUSY.
 */
int rdmig_migrate(rdmig_session *s, const char *uri);
int rdmig_incoming(rdmig_session *s, const char *uri);
/* Destination: the port actually bound (useful with port 0), once listening. */
int rdmig_incoming_port(rdmig_session *s, uint16_t *port);
/* Source with pause-before-switchover: leave PRE_SWITCHOVER. */
int rdmig_continue(rdmig_session *s);
/*
 * Source with capability postcopy-ram (on both sides), in
 * setup or active: switch to postcopy (QEMU's migrate-start-postcopy) after
 * the pass under way. The VM stops, the pages still dirty are dropped at the
 * destination, the device state and the commit follow, and the VM starts
 * there at once (postcopy-active on both sides); the source then pushes the
 * remaining pages, and a page the destination's VM touches before it came is
 * fetched ahead of them. From "go" on the VM never runs at the source again:
 * a failure after it leaves the VM at the destination, missing what had not
 * arrived. A lost link in postcopy-active pauses both sides (POSTCOPY_PAUSED,
 * see rdmig_postcopy_recover()). The destination's load_state callback may touch
 * guest RAM: a page not there yet is fetched like any fault. -EINVAL
 * without the capability, on a destination, or in any other state.
 */
int rdmig_postcopy_start(rdmig_session *s);
/*
 * Postcopy recovery (QEMU's migrate-recover / migrate --resume). When the
 * link dies in postcopy-active, neither side loses the VM: both go to
 * POSTCOPY_PAUSED (rdmig_wait() returns there; the error says why). The
 * destination's VM goes on running, and its threads that touch a page still
 * missing wait; the source keeps every page the destination lacks.
 * rdmig_postcopy_recover() on the destination listens on uri (a new port:
 * rdmig_incoming_port() reads it, port 0 allowed) and on the source connects
 * there, both in POSTCOPY_RECOVER meanwhile. The new connection authenticates
 * again (the same secret, block list and transport); the destination sends
 * what it received, and the source goes on with the pages it still lacks
 * (POSTCOPY_ACTIVE, then COMPLETED as usual). A failed attempt goes back to
 * POSTCOPY_PAUSED with the reason, to be tried again. The uri's scheme must be
 * the migration's. -EINVAL in any other state or without postcopy running;
 * rdmig_cancel() is refused (-EBUSY) while paused: the VM runs at the
 * destination. To give up, destroy the session (the source then ends FAILED;
 * the destination's threads waiting on missing pages are let go, reading zeros).
 */
int rdmig_postcopy_recover(rdmig_session *s, const char *uri);
/*
 * A source normally stops within a pass and tells the destination; one that
 * has not ended within half a second (stalled in a send to a frozen peer) has
 * its transport shut down, so this returns within about that long.
 */
int rdmig_cancel(rdmig_session *s);
/*
 * The switchover commit. Once the source has handed over its final state it
 * never resumes by itself, and the destination runs only after the source's
 * "go". When the link dies in between, neither side can know what the other
 * did: both stop in COMMIT_UNKNOWN with the VM stopped, and the VMM (which can
 * ask both hosts) decides with rdmig_resolve(): run_here starts the VM on this
 * side (vm_start; status FAILED on a source, COMPLETED on a destination), and
 * !run_here leaves it stopped for good (COMPLETED on a source, FAILED on a
 * destination). -EINVAL in any other state. rdmig_cancel() is refused with
 * -EBUSY once the source has sent "go" or the destination has started.
 */
int rdmig_resolve(rdmig_session *s, bool run_here);
/*
 * Waits for COMPLETED, FAILED, CANCELLED or COMMIT_UNKNOWN, and also returns
 * in POSTCOPY_PAUSED (the VMM's move: rdmig_postcopy_recover(), then wait
 * again); -ETIMEDOUT after timeout_ms (<0: forever).
 */
int rdmig_wait(rdmig_session *s, int timeout_ms, enum rdmig_status *final);

/* Copies the stats; -EINVAL when st->size is unset (smaller than this first layout). */
int rdmig_query(rdmig_session *s, struct rdmig_stats *st);
/*
 * Why this thread's last call on s failed; if it did not fail, the first cause
 * of the migration's failure (empty after a success; "migration cancelled"
 * after a cancel). A copy for the calling thread, valid until its next
 * rdmig_last_error() call.
 */
const char *rdmig_last_error(rdmig_session *s);
const char *rdmig_status_name(enum rdmig_status st);

/*
 * TLS on every tcp socket of the session (control and data channels), like
 * QEMU's tls-creds-x509 / tls-creds-psk: the handshake runs right after each
 * connect/accept, before anything of the migration is exchanged, and all RAM,
 * device state and control messages then go through it. Both sides must set
 * the same kind; a side without TLS is refused by a side with it.
 *
 * x509: the destination needs cert_file + key_file (PEM) and, with
 * verify_peer, ca_file to check the source's certificate, which the source
 * then must present (cert_file + key_file). The source always checks the
 * destination's certificate against ca_file, and its name against hostname
 * when that is set (a DNS name or an IP literal).
 * PSK: the same identity and key (16..512 bytes) on both sides.
 *
 * rdma URIs are refused while TLS is set (-ENOTSUP): the NIC writes guest
 * memory directly and the RDMA data path cannot be encrypted.
 */
enum rdmig_tls_creds {
	RDMIG_TLS_X509 = 1,
	RDMIG_TLS_PSK = 2,
};

struct rdmig_tls_opts {
	size_t size; /* sizeof(struct rdmig_tls_opts) */
	enum rdmig_tls_creds creds;
	const char *ca_file;   /* x509: trusted CA certificates */
	const char *cert_file; /* x509: this side's certificate chain */
	const char *key_file;  /* x509: its private key */
	const char *hostname;  /* x509, source: the name the destination's certificate must carry */
	bool verify_peer;      /* x509, destination: require a client certificate */
	const char *psk_identity; /* PSK */
	const void *psk_key;      /* PSK: raw key bytes */
	size_t psk_key_len;
	const char *priority;  /* GnuTLS priority string; NULL: GnuTLS's "NORMAL" (+PSK) */
};

/*
 * Loads and checks the credentials now (a missing or bad file is an error
 * here); the strings and key are copied. NULL turns TLS off. -EBUSY during a
 * migration.
 */
int rdmig_set_tls(rdmig_session *s, const struct rdmig_tls_opts *o);

/* Device state streams, valid inside save_state/load_state only. */
int rdmig_write(rdmig_writer *w, const void *buf, size_t len);
/* Reads up to len bytes; returns the count, 0 at the end of the stream, or -errno. */
ssize_t rdmig_read(rdmig_reader *r, void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
