/*
 * probe_dynamic: answers that vary by chance. /unstable (go-httpbin's):
 * 200 or, with probability failure_rate (default 0.5), 500; ?seed=N makes
 * the outcome reproducible.
 */
#include "api/probe_int.h"

#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

PROBE_HANDLER(probe_unstable) {
    (void)ctx, (void)body, (void)body_len;
    size_t n;
    const char *v;
    double rate = 0.5;
    if ((v = http_query_get(req, "failure_rate", &n))) {
        char tmp[32], *end;
        if (n == 0 || n >= sizeof tmp)
            return reply_fail(c, 400, "failure_rate must be a number from 0 to 1");
        memcpy(tmp, v, n);
        tmp[n] = '\0';
        rate = strtod(tmp, &end);
        if (*end || !isfinite(rate) || rate < 0 || rate > 1)
            return reply_fail(c, 400, "failure_rate must be a number from 0 to 1");
    }
    double x;
    if ((v = http_query_get(req, "seed", &n))) {
        int64_t seed = http_parse_uint(v, n, UINT32_MAX);
        if (seed < 0)
            return reply_fail(c, 400, "seed must be a whole number");
        /* One splitmix64 step: the same seed, the same outcome. */
        uint64_t z = (uint64_t)seed + 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x = (double)(z >> 11) / (double)(1ull << 53);
    } else {
        x = (double)random() / ((double)RAND_MAX + 1);
    }
    int status = x < rate ? 500 : 200;
    reply(c, status, CT_TEXT, NULL, "", 0);
    return HANDLER_DONE;
}
