#include "http/http_query.h"

#include "http/http_parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *http_query_get(const struct http_request *req, const char *key, size_t *len) {
    const char *s = req->query, *end = s ? s + req->query_len : NULL;
    size_t kl = strlen(key);
    while (s && s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - s) == kl && memcmp(s, key, kl) == 0) {
            *len = eq ? (size_t)(stop - eq - 1) : 0;
            return eq ? eq + 1 : stop;
        }
        s = stop + 1;
    }
    return NULL;
}

const char *http_query_unknown(const struct http_request *req, const char *const *names,
                               size_t *len) {
    const char *s = req->query, *end = s ? s + req->query_len : NULL;
    while (s && s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        size_t kl = (size_t)((eq ? eq : stop) - s);
        int known = stop == s; /* an empty pair */
        for (const char *const *n = names; !known && *n; n++)
            known = strlen(*n) == kl && memcmp(s, *n, kl) == 0;
        if (!known) {
            *len = kl;
            return s;
        }
        s = stop + 1;
    }
    return NULL;
}

int64_t http_parse_seconds_ms(const char *s, size_t n) {
    char tmp[32];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    int dot = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.')
            dot = 1;
        else if (s[i] < '0' || s[i] > '9')
            return -1;
    if (!dot && n <= 9) { /* whole seconds (wait=1): exact without strtod */
        int64_t v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (s[i] - '0');
        return v * 1000;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (*end || !isfinite(v) || v < 0 || v > 1e9)
        return -1;
    return (int64_t)ceil(v * 1000.0);
}

int64_t http_parse_uint(const char *s, size_t n, uint64_t max) {
    if (n == 0 || n > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v <= max ? (int64_t)v : -1;
}
