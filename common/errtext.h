/* SPDX-License-Identifier: MIT */
/*
 * Error text into a caller's buffer, the one way every layer writes it:
 * printf-style, truncated to fit, always terminated, and nothing at all when
 * the caller passed no buffer (NULL or length 0: it wants only the code).
 */
#ifndef RDMIG_COMMON_ERRTEXT_H
#define RDMIG_COMMON_ERRTEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

__attribute__((format(printf, 3, 0))) static inline void
rdm_verrtext(char *buf, size_t len, const char *fmt, va_list ap)
{
	if (buf && len)
		vsnprintf(buf, len, fmt, ap);
}

__attribute__((format(printf, 3, 4))) static inline void
rdm_errtext(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rdm_verrtext(buf, len, fmt, ap);
	va_end(ap);
}

/* The same, returning ret: `return rdm_errret(err, errlen, -EINVAL, "...", ...);`. */
__attribute__((format(printf, 4, 5))) static inline int
rdm_errret(char *buf, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rdm_verrtext(buf, len, fmt, ap);
	va_end(ap);
	return ret;
}

#endif
