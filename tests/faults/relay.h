/* SPDX-License-Identifier: MIT */
/*
 * A tcp relay on loopback for the "link down" case over tcp: every connection
 * to its port is forwarded to the target port, until Stall(), when it stops
 * moving bytes both ways without closing anything -- what a dead link looks
 * like to both ends.
 */
#ifndef RDMIG_TESTS_FAULTS_RELAY_H
#define RDMIG_TESTS_FAULTS_RELAY_H

#include <stdint.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

class Relay {
      public:
	~Relay();
	/* Listen on 127.0.0.1:0 and forward to 127.0.0.1:target. */
	bool Start(uint16_t target);
	void Stall();
	uint16_t port = 0;

      private:
	void Run();
	int lfd_ = -1, wake_[2] = {-1, -1};
	uint16_t target_ = 0;
	std::atomic<bool> stalled_{false}, stop_{false};
	std::mutex lock_;
	std::vector<int> fds_; /* pairs: client, server */
	std::thread thr_;
};

#endif
