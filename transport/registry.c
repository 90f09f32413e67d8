/* SPDX-License-Identifier: MIT */
/* Scheme -> transport vtable. */
#include <stddef.h>

#include "transport/transport.h"

const struct rdm_tp_ops *rdm_tp_lookup(enum rdm_scheme s)
{
	switch (s) {
	case RDM_SCHEME_TCP:
		return &rdm_tcp_ops;
	case RDM_SCHEME_RDMA:
		return &rdm_rdma_ops;
	}
	return NULL;
}
