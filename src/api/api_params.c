#include "api/api_params.h"

#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_param_seconds(const struct http_request *req, const char *key, uint64_t *ms) {
    size_t n;
    const char *v = http_query_get(req, key, &n);
    if (!v)
        return 1;
    int64_t x = http_parse_seconds_ms(v, n);
    if (x < 0)
        return -1;
    *ms = (uint64_t)x;
    return 1;
}

/* The value of key as a C string in tmp: 1, 0 absent, -1 empty or too long. */
static int param_text(const struct http_request *req, const char *key, char *tmp, size_t cap) {
    size_t n;
    const char *v = http_query_get(req, key, &n);
    if (!v)
        return 0;
    if (n == 0 || n >= cap)
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    return 1;
}

int api_param_int(const struct http_request *req, const char *key, int64_t lo, int64_t hi,
                  int64_t *out) {
    char tmp[24], *end;
    int t = param_text(req, key, tmp, sizeof tmp);
    if (t <= 0)
        return t == 0 ? 1 : -1;
    errno = 0;
    long long x = strtoll(tmp, &end, 10);
    if (*end || errno || !(isdigit((unsigned char)tmp[0]) || tmp[0] == '-') || x < lo || x > hi)
        return -1;
    *out = x;
    return 1;
}

int api_param_uint(const struct http_request *req, const char *key, uint64_t hi, uint64_t *out) {
    char tmp[24], *end;
    int t = param_text(req, key, tmp, sizeof tmp);
    if (t <= 0)
        return t == 0 ? 1 : -1;
    errno = 0;
    unsigned long long x = strtoull(tmp, &end, 10);
    if (*end || errno || !isdigit((unsigned char)tmp[0]) || x > hi)
        return -1;
    *out = x;
    return 1;
}

int api_params_known(struct conn *c, const struct http_request *req, const char *const *names) {
    size_t n;
    const char *u = http_query_unknown(req, names, &n);
    if (!u)
        return 0;
    char list[128] = "";
    size_t at = 0;
    for (const char *const *k = names; *k && at < sizeof list; k++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", k == names ? "" : ", ", *k);
    reply_error(c, 400, "unknown parameter '%.*s' (%s%s)", n > 64 ? 64 : (int)n, u,
                names[0] ? "known here: " : "this request takes none", list);
    return -1;
}
