/*
 * cookie: the pairs of a Cookie request header (RFC 6265 5.4), pure.
 * "a=1; b=\"two\"" -> (a, 1), (b, two): names and values trimmed, a value's
 * surrounding double quotes dropped, pieces without '=' or with an empty
 * name skipped (as browsers and werkzeug do). Nothing is decoded.
 */
#ifndef AWAITD_COOKIE_H
#define AWAITD_COOKIE_H

#include <stddef.h>

struct http_cookie {
    const char *name; /* points into the header value */
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Fill out[0..max) from s[0..n); returns the count (extra pairs ignored). */
size_t http_cookie_parse(const char *s, size_t n, struct http_cookie *out, size_t max);

#endif
