/*
 * libFuzzer target for query strings (http/http_query.c): the input is a
 * request target's query. It is parsed as part of a real request line
 * (http_parse_request), and also handed to http_query_get raw, with keys
 * taken from the input itself and the keys the handlers use. Beyond "no
 * crash, no UB":
 *  - a value returned lies inside the query and never contains '&';
 *  - http_parse_uint and http_parse_seconds_ms accept exactly what they
 *    promise: digits only (and one kind of '.'), results in range, and a
 *    whole number of seconds gives 1000 times its value in ms.
 */
#include "fuzz.h"

#include "http/http_parse.h"
#include "http/http_query.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const keys[] = {"wait", "delay", "lease", "count", "priority", "batch",
                                   "attempt", "after", "limit", "id", "immediate", "", "a"};

static void check_value(const char *v, size_t n) {
    int64_t u = http_parse_uint(v, n, UINT64_MAX >> 1);
    int64_t ms = http_parse_seconds_ms(v, n);
    int digits = n > 0, dots = 0;
    for (size_t i = 0; i < n; i++) {
        digits &= v[i] >= '0' && v[i] <= '9';
        dots += v[i] == '.';
    }
    if (u >= 0)
        CHECK(digits && n <= 19);
    if (ms >= 0)
        CHECK(ms <= INT64_C(1000000000000) && dots <= 1);
    if (u >= 0 && u <= 1000000000)
        CHECK(ms == u * 1000);
    /* A bound is a bound. */
    int64_t small = http_parse_uint(v, n, 100);
    CHECK(small == -1 || (small == u && small <= 100));
}

static void query_all(const struct http_request *req, const char *key) {
    size_t n = 12345;
    const char *v = http_query_get(req, key, &n);
    if (!v)
        return;
    CHECK(v >= req->query && v + n <= req->query + req->query_len);
    CHECK(memchr(v, '&', n) == NULL);
    check_value(v, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Raw: the whole input is the query (an exact-size copy for ASan). */
    char *q = malloc(size ? size : 1);
    CHECK(q);
    memcpy(q, data, size);
    struct http_request req;
    memset(&req, 0, sizeof req);
    req.query = size ? q : NULL;
    req.query_len = size;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        query_all(&req, keys[i]);
    /* Keys from the input: its first parameter's name, NUL-terminated. */
    char key[64];
    size_t kl = 0;
    while (kl < size && q[kl] != '=' && q[kl] != '&')
        kl++;
    if (kl < sizeof key) {
        memcpy(key, q, kl);
        key[kl] = '\0';
        if (strlen(key) == kl)
            query_all(&req, key);
    }
    check_value(q, size);
    free(q);

    /* In a request: "GET /x?<input> HTTP/1.1", as the daemon sees it. */
    static const char pre[] = "GET /x?", post[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t len = sizeof pre - 1 + size + sizeof post - 1;
    char *buf = malloc(len);
    CHECK(buf);
    memcpy(buf, pre, sizeof pre - 1);
    memcpy(buf + sizeof pre - 1, data, size);
    memcpy(buf + sizeof pre - 1 + size, post, sizeof post - 1);
    static const struct http_limits lim = {8192, 100, 4096, 1 << 20};
    if (http_parse_request(buf, len, &lim, &req, NULL) > 0) {
        CHECK(req.query == NULL || (req.query >= buf && req.query + req.query_len <= buf + len));
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            query_all(&req, keys[i]);
    }
    free(buf);
    return 0;
}
