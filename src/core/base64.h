/*
 * base64: RFC 4648 encoding into a buf, and decoding of the standard and
 * the URL-safe alphabets (pure).
 */
#ifndef AWAITD_BASE64_H
#define AWAITD_BASE64_H

#include "core/buf.h"

#include <stddef.h>

/* Append the padded standard encoding of s[0..n) to b. 0 or -1 (no memory). */
int base64_append(struct buf *b, const void *s, size_t n);

/*
 * Decode s[0..n) into out (room for n * 3 / 4 + 3 bytes); either alphabet
 * ('+' '/' or '-' '_'), padding optional. Returns the decoded length, or -1
 * when s is not base64 (a stray character, a lone trailing character,
 * padding in the middle).
 */
long base64_decode(const char *s, size_t n, unsigned char *out);

#endif
