/*
 * libFuzzer target for the small header parsers of the probes: the Cookie
 * header (http/cookie.c) and Authorization auth-params (http/auth_param.c,
 * /digest-auth). The first byte picks the parser ('C' cookie, else
 * auth-params); the rest is the header value. Checks: no crash or UB, every
 * pointer inside the value, counts within max, names non-empty and trimmed,
 * a quoted value never includes its quotes, and a smaller max gives a prefix
 * of the same pairs (or -1 for auth-params).
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *            tests/fuzz/fuzz_params.c src/http/cookie.c src/http/auth_param.c
 */
#include "fuzz.h"

#include "http/auth_param.h"
#include "http/cookie.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int inside(const char *p, size_t n, const char *buf, size_t len) {
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

#define MAXP 16

static void fuzz_cookie(const char *s, size_t n) {
    struct http_cookie c[MAXP], d[MAXP];
    size_t k = http_cookie_parse(s, n, c, MAXP);
    CHECK(k <= MAXP);
    for (size_t i = 0; i < k; i++) {
        CHECK(c[i].name_len > 0 && inside(c[i].name, c[i].name_len, s, n));
        CHECK(inside(c[i].value, c[i].value_len, s, n));
        CHECK(c[i].name[0] != ' ' && c[i].name[c[i].name_len - 1] != ' ');
        CHECK(!memchr(c[i].name, ';', c[i].name_len) && !memchr(c[i].value, ';', c[i].value_len));
    }
    if (k > 1) {
        size_t j = http_cookie_parse(s, n, d, k - 1);
        CHECK(j == k - 1);
        for (size_t i = 0; i < j; i++)
            CHECK(d[i].name == c[i].name && d[i].value_len == c[i].value_len);
    }
}

static void fuzz_auth(const char *s, size_t n) {
    struct http_param p[MAXP], q[MAXP];
    const char *scheme;
    size_t slen;
    int k = http_auth_params(s, n, &scheme, &slen, p, MAXP);
    CHECK(k >= -1 && k <= MAXP);
    if (k < 0)
        return;
    CHECK(scheme == s && slen > 0 && slen <= n);
    for (int i = 0; i < k; i++) {
        CHECK(p[i].name_len > 0 && inside(p[i].name, p[i].name_len, s, n));
        CHECK(inside(p[i].value, p[i].value_len, s, n));
        CHECK(!memchr(p[i].name, '=', p[i].name_len));
        CHECK(http_param_find(p, (size_t)k, "") == NULL);
    }
    if (k > 0) {
        int j = http_auth_params(s, n, &scheme, &slen, q, (size_t)k - 1);
        CHECK(j == -1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    char *s = malloc(size - 1 ? size - 1 : 1); /* exact size: ASan sees overreads */
    CHECK(s);
    memcpy(s, data + 1, size - 1);
    if (data[0] == 'C')
        fuzz_cookie(s, size - 1);
    else
        fuzz_auth(s, size - 1);
    free(s);
    return 0;
}
