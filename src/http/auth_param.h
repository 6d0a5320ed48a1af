/*
 * auth_param: the auth-params of an Authorization header (RFC 9110 11.2),
 * pure. "Digest username=\"u\", nc=00000001, qop=auth" -> the scheme and
 * the (name, value) pairs, a quoted value without its quotes (escapes are
 * kept as sent). Used by /digest-auth.
 */
#ifndef AWAITD_AUTH_PARAM_H
#define AWAITD_AUTH_PARAM_H

#include <stddef.h>

struct http_param {
    const char *name; /* points into the header value */
    size_t name_len;
    const char *value;
    size_t value_len;
};

/*
 * s[0..n) is "scheme param, param, ...". Sets *scheme (its length in
 * *scheme_len) and fills out[0..max); returns the count, or -1 when the
 * value is malformed (no scheme, a param without '=', an unterminated
 * quote, junk between params) or has more than max params.
 */
int http_auth_params(const char *s, size_t n, const char **scheme, size_t *scheme_len,
                     struct http_param *out, size_t max);

/* The value of param name (case-insensitive), or NULL. */
const struct http_param *http_param_find(const struct http_param *p, size_t n, const char *name);

#endif
