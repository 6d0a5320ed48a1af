/*
 * libFuzzer target for http_parse. Beyond "no crash, no UB", it checks the
 * properties the daemon relies on:
 *  - a complete head is self-contained: its own bytes parse to the same
 *    length, one byte fewer is incomplete;
 *  - any prefix of the input gives either HTTP_INCOMPLETE or the same
 *    result as the whole (early errors are final, nothing is guessed);
 *  - every pointer the parser returns lies inside the head;
 *  - the chunked decoder gives the same bytes, status and leftover however
 *    the input is split across calls, and never produces more than it read.
 * Every input is parsed under generous and under tight limits, so that all
 * limit paths are reachable. The first input byte only steers choices (a
 * prefix length, split sizes); the whole input is parsed, so seeds are plain
 * HTTP messages.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *            tests/fuzz/fuzz_http_parse.c src/http_parse.c
 */
#include "fuzz.h"

#include "http/http_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generous limits, and tight ones so that every limit path is reachable. */
static const struct http_limits limits[] = {
    {8192, 100, 4096, 1 << 20},
    {96, 4, 24, 64},
};

static struct http_request req, req2;
static struct http_response res, res2;

/* [p, p+n) lies inside [buf, buf+len). */
static int inside(const char *p, size_t n, const char *buf, size_t len) {
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check_error(int rc, const char *why) {
    CHECK(rc < 0 && rc >= HTTP_ERR_TE);
    if (rc != HTTP_INCOMPLETE)
        CHECK(why != NULL && why[0] != '\0');
    int status = http_err_status(rc);
    CHECK(status >= 400 && status <= 505 && strcmp(http_reason(status), "Unknown") != 0);
}

static void check_headers(const struct http_header *h, size_t n, const char *buf, size_t len) {
    for (size_t i = 0; i < n; i++) {
        CHECK(h[i].name_len > 0 && inside(h[i].name, h[i].name_len, buf, len));
        CHECK(inside(h[i].value, h[i].value_len, buf, len));
        CHECK(memchr(h[i].name, ':', h[i].name_len) == NULL);
        CHECK(memchr(h[i].value, '\r', h[i].value_len) == NULL);
        CHECK(memchr(h[i].value, '\n', h[i].value_len) == NULL);
        if (h[i].value_len) {
            char first = h[i].value[0], last = h[i].value[h[i].value_len - 1];
            CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
    }
}

static int fuzz_request(const char *buf, size_t len, const struct http_limits *lim, size_t cut) {
    const char *why = NULL;
    int rc = http_parse_request(buf, len, lim, &req, &why);
    CHECK(rc != 0);
    if (rc < 0) {
        check_error(rc, why);
    } else {
        size_t n = (size_t)rc;
        CHECK(n <= len && n <= lim->max_header_bytes);
        CHECK(req.method != HTTP_M_OTHER);
        CHECK(req.minor_version == 0 || req.minor_version == 1);
        CHECK(req.content_length >= -1);
        CHECK(req.content_length < 0 || (uint64_t)req.content_length <= lim->max_body);
        CHECK(!(req.chunked && req.content_length >= 0));
        CHECK(!(req.chunked && req.minor_version == 0));
        CHECK(req.nheaders <= lim->max_headers && req.nheaders <= HTTP_MAX_HEADERS);
        CHECK(req.target_len > 0 && req.target_len <= lim->max_uri);
        CHECK(inside(req.target, req.target_len, buf, n));
        CHECK(inside(req.method_str, req.method_len, buf, n));
        CHECK(inside(req.path, req.path_len, buf, n) || (req.path_len == 1 && req.path[0] == '/'));
        CHECK(req.query == NULL || inside(req.query, req.query_len, buf, n));
        CHECK(req.minor_version == 0 || req.host != NULL);
        CHECK(req.host == NULL || inside(req.host, req.host_len, buf, n));
        const struct http_header *host = http_find_header(req.headers, req.nheaders, "HOST");
        CHECK(host ? host->value == req.host && host->value_len == req.host_len : req.host == NULL);
        check_headers(req.headers, req.nheaders, buf, n);
        CHECK(http_parse_request(buf, n, lim, &req2, NULL) == rc);
        CHECK(http_parse_request(buf, n - 1, lim, &req2, NULL) == HTTP_INCOMPLETE);
    }
    int rk = http_parse_request(buf, cut, lim, &req2, NULL);
    CHECK(rk == HTTP_INCOMPLETE || rk == rc);
    return rc;
}

static void fuzz_response(const char *buf, size_t len, const struct http_limits *lim, size_t cut) {
    const char *why = NULL;
    int rc = http_parse_response(buf, len, lim, &res, &why);
    CHECK(rc != 0);
    if (rc < 0) {
        check_error(rc, why);
    } else {
        size_t n = (size_t)rc;
        CHECK(n <= len && n <= lim->max_header_bytes);
        CHECK(res.status >= 100 && res.status <= 599);
        CHECK(res.minor_version == 0 || res.minor_version == 1);
        CHECK(res.content_length >= -1);
        CHECK(!(res.chunked && res.content_length >= 0));
        CHECK(res.nheaders <= lim->max_headers);
        CHECK(inside(res.reason, res.reason_len, buf, n));
        check_headers(res.headers, res.nheaders, buf, n);
        CHECK(http_parse_response(buf, n, lim, &res2, NULL) == rc);
        CHECK(http_parse_response(buf, n - 1, lim, &res2, NULL) == HTTP_INCOMPLETE);
    }
    int rk = http_parse_response(buf, cut, lim, &res2, NULL);
    CHECK(rk == HTTP_INCOMPLETE || rk == rc);
}

/*
 * Decode once whole, then again in pieces whose sizes come from a tiny
 * PRNG seeded by the steering byte; both runs must agree exactly.
 */
static void fuzz_chunked(const char *raw, size_t len, uint64_t max_body, uint32_t seed) {
    char *whole = malloc(len ? len : 1);
    char *out = malloc(len ? len : 1);
    char *piece = malloc(len ? len : 1);
    CHECK(whole && out && piece);

    struct http_chunked d;
    http_chunked_init(&d);
    memcpy(whole, raw, len);
    size_t wlen = len;
    const char *why = NULL;
    ssize_t rc = http_chunked_decode(&d, whole, &wlen, max_body, &why);
    CHECK(wlen <= len && d.total == wlen && d.total <= max_body);
    if (rc >= 0) {
        /* The leftover is exactly the unread tail of the input. */
        CHECK(wlen + (size_t)rc <= len);
        CHECK(memcmp(whole + wlen, raw + len - (size_t)rc, (size_t)rc) == 0);
    } else {
        check_error((int)rc, why);
        if (rc != HTTP_INCOMPLETE) { /* errors are sticky */
            size_t again = 0;
            CHECK(http_chunked_decode(&d, piece, &again, max_body, NULL) == HTTP_ERR_BAD);
        }
    }

    http_chunked_init(&d);
    size_t off = 0, olen = 0;
    ssize_t prc = HTTP_INCOMPLETE;
    uint32_t x = seed * 2654435761u + 1;
    while (off < len && prc == HTTP_INCOMPLETE) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        /* Mostly tiny pieces, sometimes a big one. */
        size_t n = x & 0x80 ? 1 + (x >> 8) % 64 : 1 + (x >> 8) % 4;
        if (n > len - off)
            n = len - off;
        memcpy(piece, raw + off, n);
        off += n;
        size_t plen = n;
        prc = http_chunked_decode(&d, piece, &plen, max_body, &why);
        CHECK(plen <= n);
        memcpy(out + olen, piece, plen);
        olen += plen;
        if (prc >= 0) {
            CHECK(plen + (size_t)prc <= n);
            CHECK(memcmp(piece + plen, raw + off - (size_t)prc, (size_t)prc) == 0);
            prc += (ssize_t)(len - off); /* bytes not fed count as leftover too */
        }
    }
    CHECK(prc == rc);
    CHECK(olen == wlen && memcmp(out, whole, olen) == 0);
    free(whole);
    free(out);
    free(piece);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    /* An exact-size copy, so ASan catches any read past the end. */
    char *buf = malloc(size);
    CHECK(buf);
    memcpy(buf, data, size);
    uint8_t steer = data[0];
    size_t cut = size * steer / 256; /* a prefix length < size */

    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        const struct http_limits *lim = &limits[i];
        int rc = fuzz_request(buf, size, lim, cut);
        fuzz_response(buf, size, lim, cut);
        fuzz_chunked(buf, size, lim->max_body, steer + (uint32_t)i);
        /* A chunked request: decode its body as the daemon would. */
        if (rc > 0 && req.chunked)
            fuzz_chunked(buf + rc, size - (size_t)rc, lim->max_body, steer + (uint32_t)size);
    }
    free(buf);
    return 0;
}
