/* SPDX-License-Identifier: MIT */
/* Socket helpers of the tcp transport: every syscall result becomes 0/-errno here. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/tcp/tcp_int.h"

int rdm_tcp_sys(long r)
{
	if (r < 0)
		return errno ? -errno : -EIO;
	return r > INT_MAX ? INT_MAX : (int)r;
}

int64_t rdm_tcp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rdm_tcp_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? RDM_TCP_NO_DEADLINE : rdm_tcp_now_ms() + timeout_ms;
}

int rdm_tcp_poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline == RDM_TCP_NO_DEADLINE)
		return -1;
	left = deadline - rdm_tcp_now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int rdm_tcp_eff_timeout(int timeout_ms)
{
	return timeout_ms > 0 ? timeout_ms : RDM_TCP_DEFAULT_TIMEOUT_MS;
}

int rdm_tcp_socket(int family)
{
	return rdm_tcp_sys(socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
}

/* Non-blocking connect bounded by deadline; the socket is left blocking. */
int rdm_tcp_connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int flags, ret, soerr = 0;
	socklen_t sl = sizeof(soerr);

	flags = rdm_tcp_sys(fcntl(fd, F_GETFL));
	if (flags < 0)
		return flags;
	ret = rdm_tcp_sys(fcntl(fd, F_SETFL, flags | O_NONBLOCK));
	if (ret < 0)
		return ret;
	ret = rdm_tcp_sys(connect(fd, sa, len));
	if (ret == -EINPROGRESS) {
		do
			ret = rdm_tcp_sys(poll(&pfd, 1, rdm_tcp_poll_ms(deadline)));
		while (ret == -EINTR);
		if (ret == 0)
			return -ETIMEDOUT;
		if (ret > 0) {
			ret = rdm_tcp_sys(getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl));
			if (ret == 0 && soerr)
				ret = -soerr;
		}
	}
	if (ret < 0)
		return ret;
	return rdm_tcp_sys(fcntl(fd, F_SETFL, flags & ~O_NONBLOCK));
}

static int setopt(int fd, int level, int name, int val)
{
	return rdm_tcp_sys(setsockopt(fd, level, name, &val, sizeof(val)));
}

/*
 * A dead peer (host gone, cable pulled) must surface within about timeout_ms:
 * keepalive probes for an idle socket, TCP_USER_TIMEOUT for unacked data.
 */
int rdm_tcp_set_keepalive(int fd, int timeout_ms)
{
	int secs = timeout_ms / 1000 > 0 ? timeout_ms / 1000 : 1;
	int idle = secs / 2 > 0 ? secs / 2 : 1;
	int cnt = 3;
	int intvl = (secs - idle) / cnt > 0 ? (secs - idle) / cnt : 1;
	int ret;

	ret = setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (!ret)
		ret = setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle);
	if (!ret)
		ret = setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl);
	if (!ret)
		ret = setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, cnt);
	if (!ret)
		ret = setopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, timeout_ms);
	return ret;
}

int rdm_tcp_set_nodelay(int fd)
{
	return setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

static long sysctl_long(const char *path)
{
	char buf[32];
	long v = -1;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		v = strtol(buf, NULL, 10);
	}
	close(fd);
	return v;
}

/*
 * Big socket buffers keep a few chunks in flight per data socket. A fixed
 * SO_*BUF turns kernel autotuning off, and an unprivileged one is clamped to
 * net.core.[rw]mem_max (often 208 KiB, far below what autotuning reaches), so
 * ask only when the request is honoured in full; otherwise leave autotuning.
 * Best effort: a failure here costs speed, not correctness.
 */
void rdm_tcp_set_bufsize(int fd)
{
	static const struct {
		int force, plain;
		const char *max;
	} b[] = {
		{ SO_SNDBUFFORCE, SO_SNDBUF, "/proc/sys/net/core/wmem_max" },
		{ SO_RCVBUFFORCE, SO_RCVBUF, "/proc/sys/net/core/rmem_max" },
	};

	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		if (setopt(fd, SOL_SOCKET, b[i].force, RDM_TCP_DATA_SOCKBUF) == 0)
			continue;
		if (sysctl_long(b[i].max) >= RDM_TCP_DATA_SOCKBUF)
			(void)setopt(fd, SOL_SOCKET, b[i].plain, RDM_TCP_DATA_SOCKBUF);
	}
}

void rdm_tcp_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
			port = ntohs(s->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
			port = ntohs(s->sin6_port);
			snprintf(buf, len, "[%s]:%u", host, port);
			return;
		}
	}
	snprintf(buf, len, "%s:%u", host, port);
}

static void iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
	while (n && *iovcnt) {
		if (n >= (*iov)->iov_len) {
			n -= (*iov)->iov_len;
			(*iov)++;
			(*iovcnt)--;
		} else {
			(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
			(*iov)->iov_len -= n;
			n = 0;
		}
	}
	/* Skip empty tails so the loop below ends. */
	while (*iovcnt && (*iov)->iov_len == 0) {
		(*iov)++;
		(*iovcnt)--;
	}
}

int rdm_tcp_send_all(int fd, struct iovec *iov, int iovcnt, int stall_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int ret;

	iov_advance(&iov, &iovcnt, 0);
	while (iovcnt) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		/* Straight from the caller's memory: no copy in user space. */
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			iov_advance(&iov, &iovcnt, (size_t)n);
			continue;
		}
		ret = rdm_tcp_sys(n);
		if (ret == -EINTR)
			continue;
		if (ret != -EAGAIN)
			return ret;
		do
			ret = rdm_tcp_sys(poll(&pfd, 1, stall_ms));
		while (ret == -EINTR);
		if (ret == 0)
			return -ETIMEDOUT;
		if (ret < 0)
			return ret;
	}
	return 0;
}

int rdm_tcp_recv_all(int fd, void *buf, size_t len, size_t *got, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t *p = buf;
	bool block = deadline == RDM_TCP_NO_DEADLINE;
	int ret;

	while (*got < len) {
		ssize_t n = recv(fd, p + *got, len - *got, block ? MSG_WAITALL : MSG_DONTWAIT);

		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		ret = rdm_tcp_sys(n);
		if (ret == -EINTR)
			continue;
		if (ret != -EAGAIN)
			return ret;
		do
			ret = rdm_tcp_sys(poll(&pfd, 1, rdm_tcp_poll_ms(deadline)));
		while (ret == -EINTR);
		if (ret == 0)
			return -ETIMEDOUT;
		if (ret < 0)
			return ret;
	}
	return 0;
}

int rdm_tcp_hello_encode(uint8_t *buf, unsigned index, unsigned count, uint16_t flags,
			 uint64_t token)
{
	struct rdm_msg m = { .type = RDM_MSG_CHANNEL };
	size_t len;
	int ret;

	m.u.channel.magic = RDM_WIRE_MAGIC;
	m.u.channel.version = RDM_WIRE_VERSION;
	m.u.channel.index = (uint16_t)index;
	m.u.channel.count = (uint16_t)count;
	m.u.channel.flags = flags;
	m.u.channel.token = token;
	ret = rdm_msg_encode(&m, buf, RDM_TCP_HELLO_LEN, &len);
	if (ret == 0 && len != RDM_TCP_HELLO_LEN)
		ret = -EPROTO;
	return ret;
}
