/* SPDX-License-Identifier: MIT */
/*
 * Error text. Two kinds, kept apart so neither hides the other:
 *  - the session's error (s->err, stats.error_desc): the FIRST cause of a
 *    failure or cancel, set by the migration threads; empty after success;
 *  - a failed API call's own message, kept per calling thread, so a call that
 *    fails reads its own text and never another thread's.
 * rdmig_last_error() returns this thread's last failed call on s if there is
 * one since its last call on s, else the session's error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/errtext.h"
#include "core/session.h"

struct call_err {
	const struct rdmig_session *s; /* the session the failed call was on */
	char text[RDM_ERRLEN];
};

static _Thread_local struct call_err tls_call;
/* What rdmig_last_error() returns: a copy, safe while other threads set errors. */
static _Thread_local char tls_last[RDM_ERRLEN];

void rdm_api_error_reset(const struct rdmig_session *s)
{
	if (tls_call.s == s)
		tls_call.s = NULL;
}

void rdm_set_api_error(struct rdmig_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rdm_verrtext(tls_call.text, sizeof(tls_call.text), fmt, ap);
	va_end(ap);
	tls_call.s = s;
	/* Also news for other threads, unless a failure's cause is recorded. */
	pthread_mutex_lock(&s->lock);
	if (!s->stats.error_desc[0])
		snprintf(s->err, sizeof(s->err), "%s", tls_call.text);
	pthread_mutex_unlock(&s->lock);
}

void rdm_set_error(struct rdmig_session *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	/* The first error is the cause; later ones are consequences. */
	if (!s->stats.error_desc[0]) {
		va_start(ap, fmt);
		rdm_verrtext(s->stats.error_desc, sizeof(s->stats.error_desc), fmt, ap);
		va_end(ap);
		snprintf(s->err, sizeof(s->err), "%s", s->stats.error_desc);
	}
	pthread_mutex_unlock(&s->lock);
}

void rdm_error_context(struct rdmig_session *s, int err, const char *fmt, ...)
{
	char what[RDM_ERRLEN], cause[sizeof(s->stats.error_desc)];
	va_list ap;

	va_start(ap, fmt);
	rdm_verrtext(what, sizeof(what), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->lock);
	snprintf(cause, sizeof(cause), "%s",
		 s->stats.error_desc[0] ? s->stats.error_desc : strerror(err < 0 ? -err : EPROTO));
	rdm_errtext(s->stats.error_desc, sizeof(s->stats.error_desc), "%s: %s", what, cause);
	snprintf(s->err, sizeof(s->err), "%s", s->stats.error_desc);
	pthread_mutex_unlock(&s->lock);
}

const char *rdmig_last_error(rdmig_session *s)
{
	if (!s)
		return "no session";
	if (tls_call.s == s) {
		memcpy(tls_last, tls_call.text, sizeof(tls_last));
		return tls_last;
	}
	if (rdm_api_enter(s, false))
		return "the session is being destroyed";
	pthread_mutex_lock(&s->lock);
	memcpy(tls_last, s->err, sizeof(tls_last));
	pthread_mutex_unlock(&s->lock);
	rdm_api_leave(s, 0);
	return tls_last;
}
