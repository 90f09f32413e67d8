/* SPDX-License-Identifier: MIT */
/*
 * Transport error text, one buffer per thread: several threads use one
 * transport at once (the migration thread, the return path, receivers), so a
 * shared buffer let a failure carry text another thread wrote.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/errtext.h"
#include "transport/transport.h"

static _Thread_local char tls_err[RDM_TP_ERRLEN];

int rdm_tp_vfail(int ret, const char *fmt, va_list ap)
{
	rdm_verrtext(tls_err, sizeof(tls_err), fmt, ap);
	return ret;
}

int rdm_tp_fail(int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rdm_tp_vfail(ret, fmt, ap);
	va_end(ap);
	return ret;
}

void rdm_tp_err_clear(void)
{
	tls_err[0] = '\0';
}

const char *rdm_tp_errmsg(void)
{
	return tls_err;
}

const char *rdm_tp_why(int ret)
{
	return tls_err[0] ? tls_err : strerror(ret < 0 ? -ret : ret);
}
