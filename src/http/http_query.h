/*
 * http_query: the query string and the small values in it (pure). Shared by
 * every handler so that "wait=1.5" means the same everywhere.
 */
#ifndef AWAITD_HTTP_QUERY_H
#define AWAITD_HTTP_QUERY_H

#include <stddef.h>
#include <stdint.h>

struct http_request;

/* The raw value of the first parameter named key (not decoded), *len its
 * length; "" for a bare "key"; NULL when absent. */
const char *http_query_get(const struct http_request *req, const char *key, size_t *len);

/* The first parameter of the query whose name is none of names (a
 * NULL-terminated list), *len its name's length; NULL when all are known.
 * A handler refuses it (issue 16: "?dealy=5" must not queue an undelayed
 * job). Empty pairs ("a=1&&b=2", a trailing "&") are not parameters. */
const char *http_query_unknown(const struct http_request *req, const char *const *names,
                               size_t *len);

/* A non-negative decimal number of seconds ("1", "0.25") -> milliseconds,
 * rounded up; -1 when it is not one (or over 10^9 s). */
int64_t http_parse_seconds_ms(const char *s, size_t n);

/* A whole number 0..max -> its value; -1 when it is not one. */
int64_t http_parse_uint(const char *s, size_t n, uint64_t max);

#endif
