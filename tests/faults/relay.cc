/* SPDX-License-Identifier: MIT */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static int loopback(uint16_t port, sockaddr_in *sin)
{
	*sin = sockaddr_in{};
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

bool Relay::Start(uint16_t target)
{
	sockaddr_in sin;
	socklen_t len = sizeof(sin);

	target_ = target;
	lfd_ = loopback(0, &sin);
	if (lfd_ < 0 || bind(lfd_, (sockaddr *)&sin, sizeof(sin)) || listen(lfd_, 64) ||
	    getsockname(lfd_, (sockaddr *)&sin, &len) || pipe(wake_))
		return false;
	port = ntohs(sin.sin_port);
	thr_ = std::thread([this] { Run(); });
	return true;
}

void Relay::Stall()
{
	stalled_ = true;
	if (write(wake_[1], "s", 1) != 1)
		return;
}

/* Copy what is readable from `from` to `to`; false when either end closed. */
static bool Pump(int from, int to)
{
	char buf[64 << 10];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n <= 0)
		return false;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = send(to, buf + off, n - off, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

void Relay::Run()
{
	while (!stop_) {
		std::vector<pollfd> p = {{wake_[0], POLLIN, 0}, {lfd_, POLLIN, 0}};
		std::vector<int> fds;
		{
			std::lock_guard<std::mutex> g(lock_);
			fds = fds_;
		}
		if (!stalled_)
			for (int fd : fds)
				p.push_back({fd, POLLIN, 0});
		if (poll(p.data(), p.size(), -1) < 0 && errno != EINTR)
			return;
		if (p[0].revents) {
			char c;
			if (read(wake_[0], &c, 1) < 0)
				return;
			continue;
		}
		if (p[1].revents & POLLIN) {
			int c = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
			sockaddr_in sin;
			int s = loopback(target_, &sin);
			if (c >= 0 && s >= 0 && connect(s, (sockaddr *)&sin, sizeof(sin)) == 0) {
				std::lock_guard<std::mutex> g(lock_);
				fds_.push_back(c);
				fds_.push_back(s);
			} else {
				if (c >= 0)
					close(c);
				if (s >= 0)
					close(s);
			}
		}
		for (size_t i = 2; i < p.size(); i++) {
			if (!p[i].revents || fds[i - 2] < 0)
				continue;
			size_t k = i - 2, peer = k ^ 1;
			if (!Pump(fds[k], fds[peer])) {
				/* One end left: the other end sees it, like a real path. */
				std::lock_guard<std::mutex> g(lock_);
				close(fds_[k]);
				close(fds_[peer]);
				fds_[k] = fds_[peer] = -1;
				fds[k] = fds[peer] = -1;
			}
		}
	}
}

Relay::~Relay()
{
	stop_ = true;
	if (wake_[1] >= 0 && write(wake_[1], "x", 1) != 1) {
	}
	{
		/* Unblock a send() the relay thread may be stuck in. */
		std::lock_guard<std::mutex> g(lock_);
		for (int fd : fds_)
			if (fd >= 0)
				shutdown(fd, SHUT_RDWR);
	}
	if (thr_.joinable())
		thr_.join();
	for (int fd : fds_)
		if (fd >= 0)
			close(fd);
	for (int fd : {lfd_, wake_[0], wake_[1]})
		if (fd >= 0)
			close(fd);
}
