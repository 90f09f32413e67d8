/* rdma-smoke: two rdma_cm endpoints in one process (server thread + client)
 * on the RDMA device's address.  The client RDMA WRITEs a 4 MiB pattern into
 * the server's buffer (addr/rkey from the accept's private data), then SENDs
 * its length and CRC32; RC ordering places the SEND after the writes, so the
 * server checks the bytes once the SEND's receive completes.
 *
 * Address: $RDMIG_RDMA_ADDR (set by tests/vm/rxe-run), else the first IPv4
 * address bound to an RDMA device; also $RDMIG_RDMA_ADDR6 when set.
 * Exit: 0 pass, 1 fail, 77 skip (no device / no address), reason printed.
 * Under tests/vm/rxe-run (RDMIG_IN_VM set) rxe0 is promised: a skip is a failure.
 *
 * This file holds the cases and main; smoke_server.c and smoke_client.c the
 * two sides; smoke.c/smoke.h what they share.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smoke.h"

#define EXIT_SKIP 77

/* One case: a listener on addr, a client to it, the bytes checked on both ends. */
static int smoke_one(const struct sockaddr_storage *addr, const char *name)
{
	struct sockaddr_storage dst;
	struct server s = { 0 };
	pthread_t thr;
	int abort_pipe[2];
	uint32_t crc = 0;
	int ret, cret;

	if (pipe2(abort_pipe, O_CLOEXEC))
		return -errno;
	s.abort_rd = abort_pipe[0];
	ret = server_listen(&s, (const struct sockaddr *)addr);
	if (ret)
		goto close_pipe;

	/* Connect to the port the listener got. */
	memset(&dst, 0, sizeof(dst));
	memcpy(&dst, rdma_get_local_addr(s.listen_id),
	       addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					   : sizeof(struct sockaddr_in));
	ret = pthread_create(&thr, NULL, server_thread, &s);
	if (ret) {
		ret = -ret;
		goto close_server;
	}
	cret = client_run((const struct sockaddr *)&dst, &crc);
	if (cret) {
		/* Do not leave the server waiting out its timeouts. */
		if (write(abort_pipe[1], "x", 1) < 0)
			logf_("main", "abort pipe: %s", strerror(errno));
	}
	pthread_join(thr, NULL);
	ret = cret ? cret : s.ret;
	if (!ret && s.crc != crc) {
		logf_("main", "crc32 client 0x%08x != server 0x%08x", crc, s.crc);
		ret = -EBADMSG;
	}
	if (!ret)
		printf("ok: %s port %u: %u MiB RDMA WRITE + SEND verified, crc32 0x%08x\n", name,
		       ntohs(rdma_get_src_port(s.listen_id)), BUF_LEN >> 20, crc);

close_server:
	server_close(&s);
close_pipe:
	close(abort_pipe[0]);
	close(abort_pipe[1]);
	return ret;
}

static int parse_addr(const char *text, struct sockaddr_storage *out)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_family = AF_UNSPEC };
	struct addrinfo *res;

	if (getaddrinfo(text, NULL, &hints, &res))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* First IPv4 address that rdma_cm binds to an RDMA device. */
static int find_rdma_ipv4(struct sockaddr_storage *out, char *name, size_t name_len)
{
	struct rdma_event_channel *ch;
	struct ifaddrs *ifa, *i;
	int ret = -ENOENT;

	if (getifaddrs(&ifa))
		return -errno;
	ch = rdma_create_event_channel();
	if (!ch) {
		ret = -errno;
		goto free_ifa;
	}
	for (i = ifa; i && ret; i = i->ifa_next) {
		struct rdma_cm_id *id;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP))
			continue;
		if (rdma_bind_addr(id, i->ifa_addr) == 0 && id->verbs) {
			memset(out, 0, sizeof(*out));
			memcpy(out, i->ifa_addr, sizeof(struct sockaddr_in));
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, name,
				  (socklen_t)name_len);
			ret = 0;
		}
		rdma_destroy_id(id);
	}
	rdma_destroy_event_channel(ch);
free_ifa:
	freeifaddrs(ifa);
	return ret;
}

/* A missing device is a skip on a plain host, a failure inside the rxe VM. */
static int skip(void)
{
	const char *in_vm = getenv("RDMIG_IN_VM");

	if (in_vm && *in_vm) {
		printf("FAIL: RDMIG_IN_VM is set, so an RDMA device was promised\n");
		return 1;
	}
	return EXIT_SKIP;
}

int main(void)
{
	struct ibv_device **devs;
	struct sockaddr_storage addr;
	char name[INET6_ADDRSTRLEN] = "";
	const char *env4 = getenv("RDMIG_RDMA_ADDR");
	const char *env6 = getenv("RDMIG_RDMA_ADDR6");
	int ndev = 0, ret, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	devs = ibv_get_device_list(&ndev);
	if (!devs || ndev == 0) {
		printf("SKIP: no RDMA device (ibv_get_device_list: %s)\n",
		       devs ? "0 devices" : strerror(errno));
		if (devs)
			ibv_free_device_list(devs);
		return skip();
	}
	printf("devices:");
	for (int i = 0; i < ndev; i++)
		printf(" %s", ibv_get_device_name(devs[i]));
	printf("\n");
	ibv_free_device_list(devs);

	if (env4 && *env4) {
		if (parse_addr(env4, &addr)) {
			printf("FAIL: RDMIG_RDMA_ADDR=%s is not a numeric address\n", env4);
			return 1;
		}
		snprintf(name, sizeof(name), "%s", env4);
	} else {
		ret = find_rdma_ipv4(&addr, name, sizeof(name));
		if (ret) {
			printf("SKIP: no IPv4 address on an RDMA device (%s); set RDMIG_RDMA_ADDR\n",
			       strerror(-ret));
			return skip();
		}
	}
	ret = smoke_one(&addr, name);
	if (ret) {
		printf("FAIL: %s: %s\n", name, strerror(-ret));
		failed = 1;
	}

	if (env6 && *env6) {
		if (parse_addr(env6, &addr)) {
			printf("FAIL: RDMIG_RDMA_ADDR6=%s is not a numeric address\n", env6);
			return 1;
		}
		ret = smoke_one(&addr, env6);
		if (ret) {
			printf("FAIL: %s: %s\n", env6, strerror(-ret));
			failed = 1;
		}
	}
	return failed;
}
