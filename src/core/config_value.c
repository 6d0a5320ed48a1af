/*
 * config_value: the syntax of one value, pure (no I/O, no allocation):
 * whole numbers, sizes (k/m/g suffixes, powers of 1024), durations
 * (ms/s/m/h, a bare number is seconds), listen addresses and Redis nodes,
 * and the units a limit is printed in. Exposed in config.h for reuse and
 * tests (check_config, fuzz_config).
 *
 * - Durations round a sub-millisecond remainder up ("0.0001s" is 1 ms,
 *   never 0, which often means "no wait"); at most 9 decimals, lowercase
 *   units (the caller bounds them: at most 8760h, so "now + timeout"
 *   elsewhere can never wrap).
 * - listen "*:PORT" means 0.0.0.0:PORT; IPv6 needs brackets, no scope ids.
 */
#include "core/config.h"
#include "core/config_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Largest first, ending in a unit of 1, so formatting picks the largest exact one. */
const struct config_unit config_size_units[] = {
    {"g", GIB}, {"m", MIB}, {"k", KIB}, {"", 1}, {0, 0}};
const struct config_unit config_count_units[] = {{"", 1}, {0, 0}};
const struct config_unit config_duration_units[] = {
    {"h", HOUR}, {"m", MINUTE}, {"s", SECOND}, {"ms", 1}, {0, 0}};

/* A limit as a user would write it in messages: "1m" rather than 1048576. */
const char *config_fmt_unit(char *buf, size_t len, uint64_t v, const struct config_unit *u) {
    while (v % u->mult)
        u++;
    snprintf(buf, len, "%llu%s", (ull)(v / u->mult), v ? u->name : "");
    return buf;
}

/* Leading decimal digits of s; *end is the first non-digit. */
int config_parse_digits(const char *s, uint64_t *out, const char **end) {
    if (!is_digit(*s))
        return -1;
    uint64_t v = 0;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *end = s;
    return 0;
}

int config_parse_count(const char *s, uint64_t *out) {
    const char *end;
    return config_parse_digits(s, out, &end) == 0 && *end == '\0' ? 0 : -1;
}

/* ---- values ------------------------------------------------------------- */

int config_parse_size(const char *s, uint64_t *out) {
    uint64_t v;
    const char *end;
    const struct config_unit *u = config_size_units;
    if (!s || config_parse_digits(s, &v, &end) < 0)
        return -1;
    while (u->name && strcasecmp(end, u->name) != 0)
        u++;
    if (!u->name || v > UINT64_MAX / u->mult)
        return -1;
    *out = v * u->mult;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out) {
    uint64_t whole, frac = 0, scale = 1, unit;
    const char *p;
    /* Digits by hand rather than strtod: no NaN, inf, exponents, signs or locale. */
    if (!s || config_parse_digits(s, &whole, &p) < 0)
        return -1;
    if (*p == '.') {
        if (!is_digit(*++p))
            return -1;
        for (; is_digit(*p); p++) {
            if (scale == 1000000000ULL) /* keeps frac * unit far below 2^64 */
                return -1;
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
    }
    const struct config_unit *u = config_duration_units;
    while (u->name && *p && strcmp(p, u->name) != 0)
        u++;
    if (!u->name)
        return -1;
    unit = *p ? u->mult : SECOND; /* a bare number is seconds */
    if (whole > UINT64_MAX / unit)
        return -1;
    uint64_t ms = whole * unit, f = (frac * unit + scale - 1) / scale; /* round up */
    if (ms > UINT64_MAX - f)
        return -1;
    *out = ms + f;
    return 0;
}

int config_parse_listen(const char *s, struct config_listen *out) {
    struct config_listen l = {0};
    char host[64];
    const char *end;
    uint64_t port;

    if (!s || strlen(s) >= sizeof l.text)
        return -1;
    bool v6 = s[0] == '[';
    const char *colon = v6 ? strchr(s, ']') : strchr(s, ':');
    if (v6 && colon)
        colon++;
    if (!colon || *colon != ':' || (!v6 && strchr(colon + 1, ':'))) /* IPv6 needs brackets */
        return -1;
    size_t hl = (size_t)(colon - s) - 2 * v6;
    memcpy(host, s + v6, hl);
    host[hl] = '\0';
    if (config_parse_digits(colon + 1, &port, &end) < 0 || *end || port < 1 || port > 65535)
        return -1;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&l.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l.addr;
    if (v6 && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        l.addrlen = sizeof *a6;
    } else if (!v6 && (strcmp(host, "*") == 0 || inet_pton(AF_INET, host, &a4->sin_addr) == 1)) {
        a4->sin_family = AF_INET; /* "*" leaves sin_addr zero: INADDR_ANY */
        a4->sin_port = htons((uint16_t)port);
        l.addrlen = sizeof *a4;
    } else {
        return -1;
    }
    strcpy(l.text, s);
    *out = l;
    return 0;
}

/* ---- [redis] ------------------------------------------------------------ */

/* "HOST:PORT" or "[V6]:PORT" -> node. 0 ok, -1 bad. */
int config_parse_redis_node(const char *s, struct config_redis_node *out) {
    const char *colon, *host = s;
    size_t hl;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        host = s + 1;
        hl = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1;
        hl = (size_t)(colon - s);
    }
    uint64_t port;
    const char *end;
    if (hl == 0 || hl >= sizeof out->host || config_parse_digits(colon + 1, &port, &end) < 0 ||
        *end || port == 0 || port > 65535)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if (host[i] <= ' ' || host[i] > '~' || host[i] == ',')
            return -1;
    memcpy(out->host, host, hl);
    out->host[hl] = '\0';
    out->port = (int)port;
    return 0;
}
