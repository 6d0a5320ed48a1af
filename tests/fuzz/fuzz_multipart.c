/*
 * libFuzzer target for multipart. Input: a Content-Type line, '\n', then
 * the body (the seeds in tests/fuzz/corpus/multipart are written so).
 * Beyond "no crash, no UB", it checks:
 *  - every pointer lies inside the body, and no part's data holds the
 *    delimiter (CRLF "--" boundary);
 *  - the count never passes the limits, and a tighter max_parts only
 *    turns success into -2, never into another answer;
 *  - round trip: the parts written back as a canonical body parse to the
 *    same names, filenames, types and bytes.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *            tests/fuzz/fuzz_multipart.c src/http/multipart.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fuzz.h"

#include "http/multipart.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 32
static struct multipart_part parts[MAXP], again[MAXP];

static int inside(const char *p, size_t n, const char *buf, size_t len) {
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static int same(const char *a, size_t an, const char *b, size_t bn) {
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void put(char **w, const char *s, size_t n) {
    memcpy(*w, s, n);
    *w += n;
}

static void roundtrip(const char *b, size_t blen, int n) {
    size_t cap = 64;
    for (int i = 0; i < n; i++)
        cap += 128 + blen + parts[i].name_len + parts[i].filename_len + parts[i].ctype_len +
               parts[i].data_len;
    char *out = malloc(cap), *w = out;
    CHECK(out);
    for (int i = 0; i < n; i++) {
        const struct multipart_part *p = &parts[i];
        put(&w, "--", 2);
        put(&w, b, blen);
        put(&w, "\r\nContent-Disposition: form-data; name=\"", 40);
        put(&w, p->name, p->name_len);
        put(&w, "\"", 1);
        if (p->filename) {
            put(&w, "; filename=\"", 12);
            put(&w, p->filename, p->filename_len);
            put(&w, "\"", 1);
        }
        if (p->ctype) {
            put(&w, "\r\nContent-Type: ", 16);
            put(&w, p->ctype, p->ctype_len);
        }
        put(&w, "\r\n\r\n", 4);
        put(&w, p->data, p->data_len);
        put(&w, "\r\n", 2);
    }
    put(&w, "--", 2);
    put(&w, b, blen);
    put(&w, "--\r\n", 4);
    size_t len = (size_t)(w - out);
    CHECK(len <= cap);
    /* A name or filename ending in a backslash would escape our quote. */
    for (int i = 0; i < n; i++)
        if ((parts[i].name_len && parts[i].name[parts[i].name_len - 1] == '\\') ||
            (parts[i].filename_len && parts[i].filename[parts[i].filename_len - 1] == '\\')) {
            free(out);
            return;
        }
    struct multipart_limits lim = {MAXP, 1 << 20};
    const char *why = NULL;
    int m = multipart_parse(out, len, b, blen, &lim, again, MAXP, &why);
    if (m != n)
        fprintf(stderr, "round trip: %d parts, then %d (%s)\n", n, m, why ? why : "");
    CHECK(m == n);
    for (int i = 0; i < n; i++) {
        CHECK(same(parts[i].name, parts[i].name_len, again[i].name, again[i].name_len));
        CHECK(!parts[i].filename == !again[i].filename);
        CHECK(!parts[i].filename || same(parts[i].filename, parts[i].filename_len,
                                          again[i].filename, again[i].filename_len));
        CHECK(!parts[i].ctype == !again[i].ctype);
        CHECK(!parts[i].ctype ||
              same(parts[i].ctype, parts[i].ctype_len, again[i].ctype, again[i].ctype_len));
        CHECK(same(parts[i].data, parts[i].data_len, again[i].data, again[i].data_len));
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t ctlen = (size_t)(nl - data), len = size - ctlen - 1;
    /* Exact-size copies, so ASan catches any read past either end. */
    char *ct = malloc(ctlen ? ctlen : 1), *body = malloc(len ? len : 1);
    CHECK(ct && body);
    memcpy(ct, data, ctlen);
    memcpy(body, nl + 1, len);

    const char *b = NULL;
    int blen = multipart_boundary(ct, ctlen, &b);
    CHECK(blen == -1 || (blen >= 1 && blen <= MULTIPART_MAX_BOUNDARY && inside(b, (size_t)blen, ct, ctlen)));
    if (blen < 0) {
        free(ct);
        free(body);
        return 0;
    }
    char delim[4 + MULTIPART_MAX_BOUNDARY];
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, b, (size_t)blen);

    struct multipart_limits lim = {MAXP, 4096};
    const char *why = NULL;
    int n = multipart_parse(body, len, b, (size_t)blen, &lim, parts, MAXP, &why);
    CHECK(n >= -2 && n <= MAXP);
    if (n < 0) {
        CHECK(why && *why);
    } else {
        for (int i = 0; i < n; i++) {
            const struct multipart_part *p = &parts[i];
            CHECK(p->name && inside(p->name, p->name_len, body, len));
            CHECK(!p->filename || inside(p->filename, p->filename_len, body, len));
            CHECK(!p->ctype || inside(p->ctype, p->ctype_len, body, len));
            CHECK(inside(p->data, p->data_len, body, len));
            CHECK(!memmem(p->data, p->data_len, delim, 4 + (size_t)blen));
            CHECK(!p->ctype || !memchr(p->ctype, '\n', p->ctype_len));
        }
        /* One part fewer allowed: the same body is now "too many" or fine. */
        if (n > 0) {
            struct multipart_limits tight = {(size_t)n - 1, 4096};
            struct multipart_part tmp[MAXP];
            int t = multipart_parse(body, len, b, (size_t)blen, &tight, tmp, MAXP, &why);
            CHECK(t == -2); /* max_parts counts the unnamed parts too */
        }
        roundtrip(b, (size_t)blen, n);
    }
    free(ct);
    free(body);
    return 0;
}
