/* SPDX-License-Identifier: MIT */
/*
 * Internal to control/: the payload layouts behind the message table in msg.c.
 * Each layout has three parts that share one set of rules: size() validates
 * what the caller wants to send (-EINVAL) and says how long its payload is,
 * enc() writes it (only after size() said yes), dec() validates what the peer
 * sent (-EBADMSG). dec() is called with plen >= min, and == min when fixed.
 */
#ifndef RDMIG_CONTROL_CODEC_H
#define RDMIG_CONTROL_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "control/msg.h"

struct rdm_layout {
	uint32_t min; /* fixed part of the payload */
	bool fixed;   /* the payload is exactly min bytes */
	int (*size)(const struct rdm_msg *m, uint64_t *plen);
	void (*enc)(const struct rdm_msg *m, uint8_t *p);
	int (*dec)(const uint8_t *p, uint32_t plen, struct rdm_msg *m);
};

/* Defines rdm_layout_NAME from NAME_size, NAME_enc, NAME_dec. */
#define RDM_LAYOUT(name, min_, fixed_)                                                    \
	const struct rdm_layout rdm_layout_##name = {                                     \
		.min = min_, .fixed = fixed_, .size = name##_size, .enc = name##_enc,     \
		.dec = name##_dec,                                                        \
	}

/* msg_fixed.c: payloads of one size. */
extern const struct rdm_layout rdm_layout_empty, rdm_layout_hello, rdm_layout_seq,
	rdm_layout_u32, rdm_layout_dev_end, rdm_layout_channel, rdm_layout_req;
/* msg_var.c: payloads with counts, strings or bytes. */
extern const struct rdm_layout rdm_layout_blocks, rdm_layout_zero, rdm_layout_dev,
	rdm_layout_error, rdm_layout_pages, rdm_layout_bitmap;
/* msg_rdma.c: the rdma transport's registration messages. */
extern const struct rdm_layout rdm_layout_rdma_keys, rdm_layout_rdma_reg, rdm_layout_rdma_ready;
/* msg_auth.c: nonces and proofs. */
extern const struct rdm_layout rdm_layout_nonce, rdm_layout_proof, rdm_layout_chan_proof;

/* [first, first + n) must be representable: receivers compute the end. */
static inline bool rdm_range_ok(uint64_t first, uint64_t n)
{
	return first <= UINT64_MAX - n;
}

#endif
