/*
 * fuzz_sigv4.c - libFuzzer target for SigV4 canonicalisation.
 *
 * The input is split at NUL bytes into method, path, query and header
 * name/value pairs; the signer must never crash, read out of bounds or leak,
 * whatever it is given (paths with bad escapes, dot segments, empty query
 * pairs, odd header whitespace), in header mode and presign mode, with and
 * without path normalisation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	const char *fields[20];
	size_t n = 0, start = 0;
	struct sigv4_header headers[8];
	size_t n_headers = 0;
	struct sigv4_out out;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (size_t i = 0; i <= size && n < 20; i++) {
		if (i == size || copy[i] == '\0') {
			copy[i] = '\0';
			fields[n++] = copy + start;
			start = i + 1;
		}
	}
	while (n < 3)
		fields[n++] = "";
	headers[n_headers++] = (struct sigv4_header){ "host", "example.com" };
	for (size_t i = 3; i + 1 < n && n_headers < 8; i += 2)
		headers[n_headers++] = (struct sigv4_header){ fields[i], fields[i + 1] };
	for (int normalize = 0; normalize < 2; normalize++) {
		struct sigv4_params p = { "AKID", "SECRET", size & 1 ? "TOKEN" : NULL, "us-east-1", "s3",
					  1440938160, normalize, 0 };
		struct sigv4_request r = { fields[0], fields[1][0] == '/' ? fields[1] : "/", fields[2],
					   headers, n_headers, SIGV4_UNSIGNED_PAYLOAD };
		if (sigv4_sign_headers(&p, &r, &out) == 0)
			sigv4_out_release(&out);
		if (sigv4_presign(&p, &r, 60, &out) == 0)
			sigv4_out_release(&out);
	}
	{
		struct buf b = BUF_INIT;
		sigv4_uri_encode(&b, (const char *)data, size, (int)(size & 1));
		buf_release(&b);
	}
	free(copy);
	return 0;
}
