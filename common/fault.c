/* SPDX-License-Identifier: MIT */
/* Fault points named by RDMIG_FAULT (see fault.h); test builds only. */
#include "common/fault.h"

#ifdef RDMIG_FAULT_INJECTION
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define FAULT_MAX 16
#define FAULT_NAME 48

struct fault {
	char name[FAULT_NAME];
	unsigned at, hits;
	bool fired, kill;
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault faults[FAULT_MAX];
static unsigned nfaults;
static bool parsed;

/* Parse RDMIG_FAULT once; malformed entries are ignored (a test sees no fault). */
static void parse(void)
{
	const char *env = getenv("RDMIG_FAULT");
	char buf[512], *save = NULL, *tok;

	parsed = true;
	if (!env || strlen(env) >= sizeof(buf))
		return;
	strcpy(buf, env);
	for (tok = strtok_r(buf, ",", &save); tok && nfaults < FAULT_MAX;
	     tok = strtok_r(NULL, ",", &save)) {
		struct fault *f = &faults[nfaults];
		char *kill = strstr(tok, ":kill"), *at;

		memset(f, 0, sizeof(*f));
		if (kill) {
			*kill = '\0';
			f->kill = true;
		}
		at = strchr(tok, '@');
		if (at) {
			*at++ = '\0';
			f->at = (unsigned)strtoul(at, NULL, 10);
		}
		if (!f->at)
			f->at = 1;
		if (!*tok || strlen(tok) >= FAULT_NAME)
			continue;
		strcpy(f->name, tok);
		nfaults++;
	}
}

void rdm_fault_reset(void)
{
	pthread_mutex_lock(&fault_lock);
	memset(faults, 0, sizeof(faults));
	nfaults = 0;
	parsed = false;
	pthread_mutex_unlock(&fault_lock);
}

bool rdm_fault(const char *point)
{
	bool fire = false;

	pthread_mutex_lock(&fault_lock);
	if (!parsed)
		parse();
	for (unsigned i = 0; i < nfaults; i++) {
		struct fault *f = &faults[i];

		if (f->fired || strcmp(f->name, point))
			continue;
		if (++f->hits == f->at) {
			f->fired = true;
			fire = true;
			if (f->kill)
				raise(SIGKILL);
		}
	}
	pthread_mutex_unlock(&fault_lock);
	return fire;
}
#endif
