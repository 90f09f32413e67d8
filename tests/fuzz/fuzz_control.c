/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the control decoders (rdm_hdr_decode, rdm_msg_decode
 * and the accessors). Beyond "no crash, no overread" (ASan, UBSan) it checks:
 *  - only the documented error codes come back, and both decoders agree on
 *    the header;
 *  - an accepted frame is canonical: read back through the accessors and
 *    encoded again, it gives the very same bytes, and rdm_msg_size() its length.
 * Any violation aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/msg.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_control: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                     \
		}                                                                    \
	} while (0)

static struct rdm_block_desc descs[RDM_MAX_BLOCKS];

static int known_error(int rc)
{
	return rc == -EAGAIN || rc == -EPROTO || rc == -EBADMSG || rc == -EMSGSIZE;
}

/* Arrays read back through the accessors become encode input again. */
static void check_reencode(const struct rdm_msg *d, const uint8_t *data, size_t size)
{
	struct rdm_msg m = *d;
	struct rdm_zero_run *runs = NULL;
	uint64_t *words = NULL;
	struct rdm_rdma_key *keys = NULL;
	struct rdm_rdma_chunk *chunks = NULL;
	uint8_t *out;
	size_t out_len = 0;

	if (m.type == RDM_MSG_BLOCKS) {
		CHECK(m.u.blocks.count <= RDM_MAX_BLOCKS);
		for (uint32_t i = 0; i < m.u.blocks.count; i++)
			rdm_blocks_get(&d->u.blocks, i, &descs[i]);
		m.u.blocks.desc = descs;
	} else if (m.type == RDM_MSG_ZERO_RUNS) {
		/* The decoder proved count * 12 fits the frame: this cannot be huge. */
		CHECK((uint64_t)m.u.zero.count * 12 <= size);
		runs = calloc(m.u.zero.count + 1, sizeof(*runs));
		CHECK(runs);
		for (uint32_t i = 0; i < m.u.zero.count; i++)
			rdm_zero_runs_get(&d->u.zero, i, &runs[i]);
		m.u.zero.runs = runs;
	} else if (m.type == RDM_MSG_RP_RECV_BITMAP) {
		uint64_t nw = m.u.bitmap.nbits / 64 + (m.u.bitmap.nbits % 64 != 0);

		CHECK(nw * 8 <= size);
		words = calloc(nw + 1, sizeof(*words));
		CHECK(words);
		for (uint64_t i = 0; i < nw; i++)
			words[i] = rdm_recv_bitmap_word(&d->u.bitmap, i);
		m.u.bitmap.words = words;
	} else if (m.type == RDM_MSG_RDMA_KEYS) {
		CHECK(m.u.keys.count <= RDM_RDMA_KEYS_MAX);
		keys = calloc(m.u.keys.count + 1, sizeof(*keys));
		CHECK(keys);
		for (uint32_t i = 0; i < m.u.keys.count; i++)
			rdm_rdma_keys_get(&d->u.keys, i, &keys[i]);
		m.u.keys.keys = keys;
	} else if (m.type == RDM_MSG_RDMA_REG) {
		uint64_t n = (uint64_t)m.u.reg.nreg + m.u.reg.ndrop;

		CHECK(n <= RDM_RDMA_KEYS_MAX);
		chunks = calloc(n + 1, sizeof(*chunks));
		CHECK(chunks);
		for (uint32_t i = 0; i < n; i++)
			rdm_rdma_reg_get(&d->u.reg, i, &chunks[i]);
		m.u.reg.chunks = chunks;
	}

	CHECK(rdm_msg_size(&m) == size);
	out = malloc(size);
	CHECK(out);
	CHECK(rdm_msg_encode(&m, out, size - 1, &out_len) == -ENOSPC);
	CHECK(rdm_msg_encode(&m, out, size, &out_len) == 0);
	CHECK(out_len == size);
	CHECK(memcmp(out, data, size) == 0);
	free(out);
	free(words);
	free(runs);
	free(keys);
	free(chunks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rdm_msg m;
	uint16_t type = 0;
	uint32_t plen = 0;
	int hrc, rc;

	hrc = rdm_hdr_decode(data, size, &type, &plen);
	CHECK(hrc == 0 || hrc == -EAGAIN || hrc == -EPROTO || hrc == -EMSGSIZE);
	if (hrc == 0)
		CHECK(rdm_msg_name(type) && plen <= RDM_MAX_PAYLOAD);

	rc = rdm_msg_decode(data, size, &m);
	CHECK(rc == 0 || known_error(rc));
	if (hrc)
		CHECK(rc == hrc); /* a bad header is refused the same way by both */
	if (rc)
		return 0;
	CHECK(size == RDM_HDR_LEN + (size_t)plen && (uint16_t)m.type == type);
	check_reencode(&m, data, size);
	return 0;
}
