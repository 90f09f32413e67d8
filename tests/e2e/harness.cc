/* SPDX-License-Identifier: MIT */
#include "harness.h"

#include <gtest/gtest.h>
#include <infiniband/verbs.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

std::string TestTransport()
{
	const char *t = getenv("RDMIG_TEST_TRANSPORT");

	return t && *t ? t : "tcp";
}

std::string TestHost(bool ipv6)
{
	const char *a = getenv(ipv6 ? "RDMIG_RDMA_ADDR6" : "RDMIG_RDMA_ADDR");

	if (TestTransport() == "rdma" && a && *a)
		return ipv6 ? std::string("[") + a + "]" : a;
	return ipv6 ? "[::1]" : "127.0.0.1";
}

guest_cfg DefaultGuest(uint64_t mib, uint64_t dirty_mib_s)
{
	guest_cfg c{};

	c.ram_bytes = mib << 20;
	c.nblocks = 2;
	c.page_size = 4096;
	c.zero_pct = 30;
	c.text_pct = 10;
	c.dirty_rate = dirty_mib_s << 20;
	c.pattern = GUEST_RANDOM;
	c.threads = 1;
	c.seed = 42;
	c.devstate_bytes = 3 << 20; /* several device-state messages */
	return c;
}

static bool read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = static_cast<char *>(buf);

	while (len) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int r = poll(&pfd, 1, timeout_ms);

		if (r <= 0)
			return false;
		ssize_t n = read(fd, p, len);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void write_full(int fd, const void *buf, size_t len)
{
	const char *p = static_cast<const char *>(buf);

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n <= 0)
			_exit(3);
		p += n;
		len -= (size_t)n;
	}
}

static bool from_hex(const char *s, void *p, size_t n);

/* The child's secret, uuid and peer timeout, from the environment Spawn() set. */
static int dest_child_auth(rdmig_session *s)
{
	const char *secret = getenv("RDMIG_TEST_DEST_SECRET");
	const char *uuid = getenv("RDMIG_TEST_DEST_UUID");
	const char *pt = getenv("RDMIG_TEST_DEST_PEER_TIMEOUT");
	uint8_t buf[1024], u[16];

	if (secret && *secret) {
		size_t n = strlen(secret) / 2;
		if (n > sizeof(buf) || !from_hex(secret, buf, n) || rdmig_set_secret(s, buf, n))
			return -1;
	}
	if (uuid && *uuid) {
		if (!from_hex(uuid, u, sizeof(u)) || rdmig_set_vm_uuid(s, u) ||
		    rdmig_set_capability(s, RDMIG_CAP_VALIDATE_UUID, true))
			return -1;
	}
	if (pt && *pt && rdmig_set_parameter(s, RDMIG_PARAM_PEER_TIMEOUT, strtoull(pt, nullptr, 10)))
		return -1;
	return 0;
}

/* Where a child stops watching: the ends, and postcopy-paused (nothing moves by itself there). */
static bool terminal(enum rdmig_status st)
{
	return st == RDMIG_STATUS_COMPLETED || st == RDMIG_STATUS_FAILED ||
	       st == RDMIG_STATUS_CANCELLED || st == RDMIG_STATUS_COMMIT_UNKNOWN ||
	       st == RDMIG_STATUS_POSTCOPY_PAUSED;
}

/* What a child sets up before its session: the fault points and the memlock limit. */
static void child_env(const ChildOpts &o)
{
	if (o.fault[0])
		setenv("RDMIG_FAULT", o.fault, 1);
	if (o.memlock_bytes) {
		struct rlimit rl;

		if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
			rl.rlim_cur = o.memlock_bytes;
			setrlimit(RLIMIT_MEMLOCK, &rl);
		}
	}
}

/*
 * Until the session is terminal (or wait_ms passed): cancel where o says, go
 * on from pre-switchover, and call tick() with the stats each round; a tick
 * that returns true ends the watch early with -EAGAIN.
 */
static int child_watch(rdmig_session *s, const ChildOpts &o, int wait_ms, PeerResult *r,
		       const std::function<bool(const rdmig_stats &)> &tick)
{
	struct timespec ts = {0, 2 * 1000000};
	bool continued = false;

	r->cancel_ret = 1;
	for (int waited = 0; waited < wait_ms; waited += 2) {
		rdmig_stats st = RDMIG_STATS_INIT;

		rdmig_query(s, &st);
		if (tick && tick(st))
			return -EAGAIN;
		if (terminal(st.status))
			return 0;
		if (o.cancel_in >= 0 && r->cancel_ret == 1 && (int)st.status == o.cancel_in &&
		    st.dirty_sync_count >= o.cancel_after_syncs)
			r->cancel_ret = rdmig_cancel(s);
		if (o.pause_before_switchover && !continued && o.cancel_in != RDMIG_STATUS_PRE_SWITCHOVER &&
		    st.status == RDMIG_STATUS_PRE_SWITCHOVER)
			continued = rdmig_continue(s) == 0;
		nanosleep(&ts, nullptr);
	}
	return -ETIMEDOUT;
}

/* The report both children send: status, error, memory, VM counters. */
static void child_report(rdmig_session *s, guest *g, enum rdmig_status st, PeerResult *r)
{
	snprintf(r->error, sizeof(r->error), "%s", rdmig_last_error(s));
	rdmig_stats stats = RDMIG_STATS_INIT;
	rdmig_query(s, &stats);
	r->status = st;
	r->nblocks = guest_nblocks(g);
	r->pages_missing = stats.postcopy_pages_missing;
	/* A page that never arrived would hold the sum until the session is gone. */
	for (unsigned i = 0; !r->pages_missing && i < r->nblocks && i < HARNESS_MAX_BLOCKS; i++)
		r->crc[i] = guest_block_crc(g, i);
	r->devcrc = guest_devstate_crc(g);
	struct guest_counters c;
	guest_counters(g, &c);
	r->starts = c.starts;
	r->stops = c.stops;
	r->running = c.running;
	r->ram_transferred = stats.ram_transferred;
}

/* The destination's TLS from DestProcess::tls (passed in the environment). */
static int dest_tls(rdmig_session *s)
{
	const char *spec = getenv("RDMIG_TEST_DEST_TLS");
	rdmig_tls_opts o{};
	std::string f[5];
	std::string key;
	unsigned n = 0;

	if (!spec || !*spec)
		return 0;
	for (const char *p = spec; *p && n < 5; p++) {
		if (*p == ':')
			n++;
		else
			f[n] += *p;
	}
	o.size = sizeof(o);
	if (!strncmp(spec, "psk:", 4)) {
		o.creds = RDMIG_TLS_PSK;
		o.psk_identity = f[1].c_str();
		for (size_t i = 0; i + 1 < f[2].size(); i += 2)
			key += (char)strtoul(f[2].substr(i, 2).c_str(), nullptr, 16);
		o.psk_key = key.data();
		o.psk_key_len = key.size();
	} else {
		o.creds = RDMIG_TLS_X509;
		o.ca_file = f[1].empty() ? nullptr : f[1].c_str();
		o.cert_file = f[2].c_str();
		o.key_file = f[3].c_str();
		o.verify_peer = f[4] == "1";
	}
	return rdmig_set_tls(s, &o);
}

/* The child: a destination VMM in miniature. */
static void dest_child(int fd, const guest_cfg &cfg, const std::string &uri, int wait_ms,
		       const ChildOpts &o)
{
	PeerResult r{};
	rdmig_callbacks cb;
	rdmig_session *s;
	guest *g;
	uint16_t port = 0;

	child_env(o);
	if (guest_create(&cfg, true, &g))
		_exit(2);
	guest_callbacks(g, &cb);
	if (rdmig_session_create(RDMIG_ROLE_DEST, &cb, g, &s) || guest_add_blocks(g, s))
		_exit(2);
	/* RDMIG_TEST_PEER_TIMEOUT: ms; RDMIG_TEST_RESOLVE: run|stop after commit-unknown. */
	const char *pt = getenv("RDMIG_TEST_PEER_TIMEOUT");
	const char *resolve = getenv("RDMIG_TEST_RESOLVE");
	if (pt && *pt && rdmig_set_parameter(s, RDMIG_PARAM_PEER_TIMEOUT, strtoull(pt, nullptr, 10)))
		_exit(2);
	if (dest_child_auth(s))
		_exit(2);
	if (o.peer_timeout_ms && rdmig_set_parameter(s, RDMIG_PARAM_PEER_TIMEOUT, o.peer_timeout_ms))
		_exit(2);
	if (o.postcopy_after_syncs && rdmig_set_capability(s, RDMIG_CAP_POSTCOPY_RAM, true))
		_exit(2);
	if (dest_tls(s)) {
		fprintf(stderr, "dest: TLS: %s\n", rdmig_last_error(s));
		_exit(2);
	}
	if (rdmig_incoming(s, uri.c_str()) || rdmig_incoming_port(s, &port)) {
		fprintf(stderr, "dest: incoming %s: %s\n", uri.c_str(), rdmig_last_error(s));
		_exit(2);
	}
	write_full(fd, &port, sizeof(port));
	enum rdmig_status st = RDMIG_STATUS_NONE;
	/*
	 * Watch until the end instead of one long wait: the text a timed-out wait
	 * leaves would hide the destination's news (the connections it refused).
	 */
	std::string news;
	struct timespec heard{}; /* when the news first said o.report_on_news */
	bool has_heard = false;
	int wret = child_watch(s, o, wait_ms, &r, [&](const rdmig_stats &) {
		if (*rdmig_last_error(s))
			news = rdmig_last_error(s);
		if (!o.report_on_news[0] || news.find(o.report_on_news) == std::string::npos)
			return false;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!has_heard)
			heard = now, has_heard = true;
		/* A second more: whatever else the refusal sets off shows in the report. */
		return now.tv_sec - heard.tv_sec > 1;
	});
	r.cancel_ret = o.cancel_in >= 0 ? r.cancel_ret : 1;
	int now = rdmig_wait(s, 0, &st); /* the status, even when still running */
	if (!wret)
		wret = now;
	char why[sizeof(r.error)];
	snprintf(why, sizeof(why), "%s", rdmig_last_error(s)); /* before any resolve */
	r.first_status = st;
	if (!wret && st == RDMIG_STATUS_COMMIT_UNKNOWN && resolve && *resolve) {
		if (rdmig_resolve(s, !strcmp(resolve, "run")) == 0)
			rdmig_wait(s, 0, &st);
	}
	child_report(s, g, st, &r);
	snprintf(r.error, sizeof(r.error), "%s", why);
	if (wret == -EAGAIN)
		snprintf(r.error, sizeof(r.error), "destination still %s a second after: %s",
			 rdmig_status_name(st), news.c_str());
	else if (wret)
		snprintf(r.error, sizeof(r.error), "destination still %s after %d ms: %s",
			 rdmig_status_name(st), wait_ms, news.c_str());
	write_full(fd, &r, sizeof(r));
	rdmig_session_destroy(s);
	guest_destroy(g);
	_exit(0);
}

/* The other child: a source VMM with a dirtying guest, for faults on the source side. */
static void source_child(int fd, const guest_cfg &cfg, const std::string &uri, int wait_ms,
			 const ChildOpts &o)
{
	PeerResult r{};
	rdmig_callbacks cb;
	rdmig_session *s;
	guest *g;
	bool progressed = false;

	child_env(o);
	if (guest_create(&cfg, false, &g))
		_exit(2);
	guest_callbacks(g, &cb);
	if (rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, g, &s) || guest_add_blocks(g, s))
		_exit(2);
	if ((o.peer_timeout_ms &&
	     rdmig_set_parameter(s, RDMIG_PARAM_PEER_TIMEOUT, o.peer_timeout_ms)) ||
	    (o.channels && rdmig_set_parameter(s, RDMIG_PARAM_CHANNELS, o.channels)) ||
	    (o.downtime_ms && rdmig_set_parameter(s, RDMIG_PARAM_DOWNTIME_LIMIT, o.downtime_ms)) ||
	    rdmig_set_parameter(s, RDMIG_PARAM_MAX_BANDWIDTH, o.max_bw) ||
	    rdmig_set_capability(s, RDMIG_CAP_RDMA_PIN_ALL, o.pin_all) ||
	    rdmig_set_capability(s, RDMIG_CAP_PAUSE_BEFORE_SWITCHOVER, o.pause_before_switchover) ||
	    (o.postcopy_after_syncs && rdmig_set_capability(s, RDMIG_CAP_POSTCOPY_RAM, true)))
		_exit(2);
	if (guest_start_workload(g))
		_exit(2);
	if (rdmig_migrate(s, uri.c_str())) {
		fprintf(stderr, "source: migrate %s: %s\n", uri.c_str(), rdmig_last_error(s));
		_exit(2);
	}
	bool switched = false;
	int wret = child_watch(s, o, wait_ms, &r, [&](const rdmig_stats &st) {
		if (o.postcopy_after_syncs && !switched && st.status == RDMIG_STATUS_ACTIVE &&
		    st.dirty_sync_count >= o.postcopy_after_syncs)
			switched = rdmig_postcopy_start(s) == 0;
		bool far = o.postcopy_after_syncs ? st.status == RDMIG_STATUS_POSTCOPY_ACTIVE
						  : st.ram_transferred >= o.progress_bytes;
		if ((o.progress_bytes || o.postcopy_after_syncs) && !progressed &&
		    (far || terminal(st.status))) {
			write_full(fd, "P", 1);
			progressed = true;
		}
		return false;
	});
	enum rdmig_status st = RDMIG_STATUS_NONE;
	if (!wret)
		wret = rdmig_wait(s, 1000, &st);
	child_report(s, g, st, &r);
	if (wret)
		snprintf(r.error, sizeof(r.error), "source still %s after %d ms",
			 rdmig_status_name(st), wait_ms);
	write_full(fd, &r, sizeof(r));
	guest_stop_workload(g);
	rdmig_session_destroy(s);
	guest_destroy(g);
	_exit(0);
}

static std::string to_hex(const void *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	const uint8_t *b = static_cast<const uint8_t *>(p);
	std::string s;

	for (size_t i = 0; i < n; i++) {
		s += d[b[i] >> 4];
		s += d[b[i] & 15];
	}
	return s;
}

static bool from_hex(const char *s, void *p, size_t n)
{
	uint8_t *b = static_cast<uint8_t *>(p);

	if (strlen(s) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return false;
		b[i] = (uint8_t)v;
	}
	return true;
}

/*
 * The destination is a fresh program (this one, re-executed): verbs state
 * inherited across fork() is not usable in the child.
 */
bool DestProcess::Spawn(const guest_cfg &cfg, const std::string &host, int wait_ms)
{
	return Spawn(cfg, host, ChildOpts{}, wait_ms);
}

bool DestProcess::Spawn(const guest_cfg &cfg, const std::string &host, const ChildOpts &o,
			int wait_ms)
{
	int p[2];

	if (pipe(p))
		return false;
	host_ = host;
	std::string uri = TestTransport() + ":" + host + ":0";
	std::string fd = std::to_string(p[1]), hex = to_hex(&cfg, sizeof(cfg));
	std::string wait = std::to_string(wait_ms), ohex = to_hex(&o, sizeof(o));
	fflush(nullptr);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		close(p[0]);
		setenv("RDMIG_TEST_DEST_SECRET", to_hex(secret.data(), secret.size()).c_str(), 1);
		setenv("RDMIG_TEST_DEST_UUID",
		       validate_uuid ? to_hex(uuid.data(), uuid.size()).c_str() : "", 1);
		setenv("RDMIG_TEST_DEST_PEER_TIMEOUT",
		       peer_timeout_ms > 0 ? std::to_string(peer_timeout_ms).c_str() : "", 1);
		if (tls.empty())
			unsetenv("RDMIG_TEST_DEST_TLS");
		else
			setenv("RDMIG_TEST_DEST_TLS", tls.c_str(), 1);
		execl("/proc/self/exe", "e2e-dest", "--dest-child", fd.c_str(), hex.c_str(),
		      uri.c_str(), wait.c_str(), ohex.c_str(), (char *)nullptr);
		_exit(127);
	}
	close(p[1]);
	fd_ = p[0];
	return read_full(fd_, &port, sizeof(port), 30000);
}

ChildProcess::~ChildProcess()
{
	Kill();
}

bool ChildProcess::ReadResult(PeerResult *r, int timeout_ms)
{
	bool ok = read_full(fd_, r, sizeof(*r), timeout_ms);

	if (ok && pid > 0) {
		waitpid(pid, nullptr, 0);
		pid = -1;
	}
	return ok;
}

bool DestProcess::Result(PeerResult *r, int timeout_ms)
{
	return ReadResult(r, timeout_ms);
}

int ChildProcess::Signal(int sig)
{
	if (pid <= 0)
		return -ESRCH;
	return kill(pid, sig) ? -errno : 0;
}

void ChildProcess::Kill()
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, nullptr, 0);
		pid = -1;
	}
	if (fd_ >= 0) {
		close(fd_);
		fd_ = -1;
	}
}

std::string DestProcess::Uri() const
{
	return TestTransport() + ":" + host_ + ":" + std::to_string(port);
}

bool SourceProcess::Spawn(const guest_cfg &cfg, const std::string &uri, const ChildOpts &o,
			  int wait_ms)
{
	int p[2];

	if (pipe(p))
		return false;
	std::string fd = std::to_string(p[1]), hex = to_hex(&cfg, sizeof(cfg));
	std::string wait = std::to_string(wait_ms), ohex = to_hex(&o, sizeof(o));
	want_progress_ = o.progress_bytes > 0 || o.postcopy_after_syncs > 0;
	fflush(nullptr);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		close(p[0]);
		execl("/proc/self/exe", "e2e-source", "--source-child", fd.c_str(), hex.c_str(),
		      uri.c_str(), wait.c_str(), ohex.c_str(), (char *)nullptr);
		_exit(127);
	}
	close(p[1]);
	fd_ = p[0];
	return true;
}

bool SourceProcess::WaitProgress(int timeout_ms)
{
	char c;

	if (!want_progress_ || progress_)
		return progress_;
	progress_ = read_full(fd_, &c, 1, timeout_ms) && c == 'P';
	return progress_;
}

bool SourceProcess::Result(PeerResult *r, int timeout_ms)
{
	if (want_progress_ && !progress_ && !WaitProgress(timeout_ms))
		return false;
	return ReadResult(r, timeout_ms);
}

Source::~Source()
{
	if (s)
		rdmig_session_destroy(s);
	if (g)
		guest_destroy(g);
}

bool Source::Create(const guest_cfg &cfg)
{
	rdmig_callbacks cb;

	if (guest_create(&cfg, false, &g))
		return false;
	guest_callbacks(g, &cb);
	if (rdmig_session_create(RDMIG_ROLE_SOURCE, &cb, g, &s))
		return false;
	return guest_add_blocks(g, s) == 0;
}

bool WaitFor(rdmig_session *s, int timeout_ms, const std::function<bool(const rdmig_stats &)> &pred)
{
	struct timespec ts = {0, 10 * 1000000};

	for (int waited = 0; waited < timeout_ms; waited += 10) {
		rdmig_stats st = RDMIG_STATS_INIT;

		rdmig_query(s, &st);
		if (pred(st))
			return true;
		nanosleep(&ts, nullptr);
	}
	return false;
}

std::string NoTransportReason()
{
	if (TestTransport() != "rdma")
		return "";
	int n = 0;
	ibv_device **l = ibv_get_device_list(&n);
	if (l)
		ibv_free_device_list(l);
	if (n > 0)
		return "";
	/* Inside the soft-RoCE VM a missing device is a failure, not a skip. */
	if (getenv("RDMIG_IN_VM"))
		return "";
	return "no RDMA device (run it through tests/vm/rxe-run)";
}

void TransportTest::SetUp()
{
	std::string why = NoTransportReason();
	if (!why.empty())
		GTEST_SKIP() << why;
}

int main(int argc, char **argv)
{
	if ((argc == 6 || argc == 7) &&
	    (!strcmp(argv[1], "--dest-child") || !strcmp(argv[1], "--source-child"))) {
		guest_cfg cfg;
		ChildOpts o;

		if (!from_hex(argv[3], &cfg, sizeof(cfg)) ||
		    (argc == 7 && !from_hex(argv[6], &o, sizeof(o))))
			return 2;
		if (!strcmp(argv[1], "--dest-child"))
			dest_child(atoi(argv[2]), cfg, argv[4], atoi(argv[5]), o);
		source_child(atoi(argv[2]), cfg, argv[4], atoi(argv[5]), o);
	}
	::testing::InitGoogleTest(&argc, argv);
	int ret = RUN_ALL_TESTS();
	const ::testing::UnitTest *u = ::testing::UnitTest::GetInstance();

	/* Everything skipped is not a pass: meson must see 77. */
	if (ret == 0 && u->test_to_run_count() > 0 &&
	    u->skipped_test_count() == u->test_to_run_count()) {
		fprintf(stderr, "every test skipped: %s\n", NoTransportReason().c_str());
		return 77;
	}
	return ret;
}
