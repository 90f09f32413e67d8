/* SPDX-License-Identifier: MIT */
/*
 * "tcp:HOST:PORT" / "rdma:HOST:PORT" -> struct rdm_addr.
 *
 * HOST is an IPv4 literal, a bracketed IPv6 literal (with an optional zone,
 * "[fe80::1%eth0]") or "localhost" (127.0.0.1). No name resolution: a
 * migration must not hang on DNS, and the address it uses must be the one the
 * operator wrote. PORT is 0..65535 in decimal; 0 asks a listener for any port.
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/errtext.h"
#include "transport/transport.h"

/* Longer than any valid URI ("rdma:[" + 45 + "%" + IFNAMSIZ + "]:65535"), with room. */
#define RDM_URI_MAX 300u

/* Decimal 0..65535, digits only: no sign, no spaces, no hex. */
static int parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = 0;

	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 5)
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[n] - '0');
	}
	if (n == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int parse_ipv6(const char *host, struct rdm_addr *a, const char *shown, char *err,
		      size_t errlen)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	char lit[INET6_ADDRSTRLEN];
	const char *zone = strchr(host, '%');
	size_t litlen = zone ? (size_t)(zone - host) : strlen(host);

	if (litlen == 0 || litlen >= sizeof(lit))
		return rdm_errret(err, errlen, -EINVAL, "'%s': '%.64s' is not an IPv6 address", shown, host);
	memcpy(lit, host, litlen);
	lit[litlen] = '\0';
	if (inet_pton(AF_INET6, lit, &sin6->sin6_addr) != 1)
		return rdm_errret(err, errlen, -EINVAL, "'%s': '%s' is not an IPv6 address", shown, lit);
	if (zone) {
		const char *z = zone + 1;
		char *end;
		unsigned long idx;

		if (!*z)
			return rdm_errret(err, errlen, -EINVAL, "'%s': empty IPv6 zone after '%%'", shown);
		idx = strtoul(z, &end, 10);
		if (*end || z[0] < '0' || z[0] > '9') {
			idx = if_nametoindex(z);
			if (idx == 0)
				return rdm_errret(err, errlen, -EINVAL, "'%s': unknown network interface '%.32s'",
						  shown, z);
		}
		if (idx == 0 || idx > UINT32_MAX)
			return rdm_errret(err, errlen, -EINVAL, "'%s': bad IPv6 zone index '%.32s'", shown, z);
		sin6->sin6_scope_id = (uint32_t)idx;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(a->port);
	a->sslen = sizeof(*sin6);
	return 0;
}

static int parse_ipv4(const char *host, struct rdm_addr *a, const char *shown, char *err,
		      size_t errlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

	if (strcasecmp(host, "localhost") == 0) {
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		const char *colon = strchr(host, ':');

		if (colon) {
			struct in_addr tmp;
			char first[INET_ADDRSTRLEN];
			size_t n = (size_t)(colon - host);

			/* "1.2.3.4:80:x" is junk after a port, not an IPv6 address. */
			if (n < sizeof(first)) {
				memcpy(first, host, n);
				first[n] = '\0';
				if (inet_pton(AF_INET, first, &tmp) == 1 ||
				    strcasecmp(first, "localhost") == 0)
					return rdm_errret(err, errlen, -EINVAL,
							  "'%s': trailing characters after HOST:PORT",
							  shown);
			}
			return rdm_errret(err, errlen, -EINVAL,
					  "'%s': IPv6 address '%.64s' must be in brackets, as [%.64s]", shown,
					  host, host);
		}
		return rdm_errret(err, errlen, -EINVAL,
				  "'%s': host '%.64s' is not an IPv4 address, a bracketed IPv6 address "
				  "or localhost (names are not resolved)",
				  shown, host);
	}
	sin->sin_family = AF_INET;
	sin->sin_port = htons(a->port);
	a->sslen = sizeof(*sin);
	return 0;
}

int rdm_addr_parse(const char *uri, struct rdm_addr *a, char *err, size_t errlen)
{
	struct rdm_addr out;
	char shown[80]; /* the URI as quoted in messages: the problem must fit in err */
	const char *rest, *hs, *he, *ps;
	size_t len, hlen;
	bool v6;
	int ret;

	if (!uri || !a)
		return rdm_errret(err, errlen, -EINVAL, "no address given");
	len = strnlen(uri, RDM_URI_MAX + 1);
	if (len == 0)
		return rdm_errret(err, errlen, -EINVAL,
				  "empty address (expected tcp:HOST:PORT or rdma:HOST:PORT)");
	if (len > RDM_URI_MAX)
		return rdm_errret(err, errlen, -EINVAL, "address too long (more than %u characters)",
				  RDM_URI_MAX);

	snprintf(shown, sizeof(shown), "%.64s%s", uri, len > 64 ? "..." : "");
	memset(&out, 0, sizeof(out));
	if (strncmp(uri, "tcp:", 4) == 0) {
		out.scheme = RDM_SCHEME_TCP;
		rest = uri + 4;
	} else if (strncmp(uri, "rdma:", 5) == 0) {
		out.scheme = RDM_SCHEME_RDMA;
		rest = uri + 5;
	} else {
		const char *colon = strchr(uri, ':');

		if (!colon)
			return rdm_errret(err, errlen, -EINVAL,
					  "'%s': missing scheme (expected tcp:HOST:PORT or "
					  "rdma:HOST:PORT)",
					  shown);
		return rdm_errret(err, errlen, -EINVAL, "'%s': unknown scheme '%.*s' (expected tcp or rdma)",
				  shown, (int)(colon - uri < 16 ? colon - uri : 16), uri);
	}

	if (!*rest)
		return rdm_errret(err, errlen, -EINVAL, "'%s': missing HOST:PORT after the scheme", shown);
	v6 = rest[0] == '[';
	if (v6) {
		hs = rest + 1;
		he = strchr(hs, ']');
		if (!he)
			return rdm_errret(err, errlen, -EINVAL, "'%s': missing ']' after IPv6 address", shown);
		if (he[1] != ':')
			return rdm_errret(err, errlen, -EINVAL, "'%s': expected ':PORT' after ']', got '%.16s'", shown,
					  he + 1);
		ps = he + 2;
	} else {
		hs = rest;
		he = strrchr(rest, ':');
		if (!he)
			return rdm_errret(err, errlen, -EINVAL, "'%s': missing ':PORT'", shown);
		ps = he + 1;
	}
	hlen = (size_t)(he - hs);
	if (hlen == 0)
		return rdm_errret(err, errlen, -EINVAL, "'%s': empty host", shown);
	if (hlen >= sizeof(out.host))
		return rdm_errret(err, errlen, -EINVAL, "'%s': host too long", shown);
	memcpy(out.host, hs, hlen);
	out.host[hlen] = '\0';

	if (!*ps)
		return rdm_errret(err, errlen, -EINVAL, "'%s': empty port", shown);
	if (parse_port(ps, &out.port))
		return rdm_errret(err, errlen, -EINVAL, "'%s': bad port '%.16s' (expected 0..65535 in decimal)",
				  shown, ps);

	if (v6)
		ret = parse_ipv6(out.host, &out, shown, err, errlen);
	else
		ret = parse_ipv4(out.host, &out, shown, err, errlen);
	if (ret)
		return ret;
	*a = out;
	return 0;
}
