// SPDX-License-Identifier: MIT
/*
 * fuzz_parse.c - libFuzzer target for the request framing code.
 *
 * It compiles step07's server.c itself (its main() renamed), so the parser
 * fuzzed is the parser served; `make test` checks that every step carries
 * the same framing code, byte for byte, so this covers them all.
 *
 * For every input it checks what the servers rely on:
 *  - parse_request() never reads outside the bytes it is given (the input
 *    is copied into a buffer of exactly its size, and AddressSanitizer
 *    watches the edges);
 *  - a verdict never depends on how the bytes were split into reads: a
 *    shorter prefix of a complete head is "incomplete", never "bad" or
 *    "complete"; once "bad", longer input stays "bad";
 *  - "complete" reports a head length within the input and the limit;
 *    "too large" only once MAX_HEADER_BYTES bytes are there.
 *
 *	make fuzz			(60 s; FUZZ_SECONDS=10 make fuzz)
 */
#define main server_main
#include "../step07_send_zc/server.c"
#undef main

#include <assert.h>

static enum parse_status parse_copy(const uint8_t *data, size_t len,
				    struct request *req)
{
	enum parse_status status;
	char *buf = malloc(len ? len : 1);

	assert(buf);
	memcpy(buf, data, len);
	status = parse_request(buf, len, req);
	free(buf);
	return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct request req, part;
	enum parse_status whole, p;
	size_t n, step;

	whole = parse_copy(data, size, &req);
	if (whole == PARSE_COMPLETE) {
		assert(req.head_len >= 4 && req.head_len <= size);
		assert(req.head_len <= MAX_HEADER_BYTES);
		assert(memcmp(data + req.head_len - 4, "\r\n\r\n", 4) == 0);
	}
	if (whole == PARSE_TOO_LARGE)
		assert(size >= MAX_HEADER_BYTES);

	/* Every prefix for small inputs, a sample of them for large ones. */
	step = size <= 1024 ? 1 : size / 256;
	for (n = 0; n < size; n += step) {
		p = parse_copy(data, n, &part);
		if (whole == PARSE_COMPLETE) {
			if (n < req.head_len)
				assert(p == PARSE_INCOMPLETE);
			else
				assert(p == PARSE_COMPLETE &&
				       memcmp(&part, &req, sizeof(req)) == 0);
		}
		if (p == PARSE_BAD)
			assert(whole == PARSE_BAD);
		if (p == PARSE_COMPLETE)
			assert(whole == PARSE_COMPLETE);
	}
	return 0;
}
