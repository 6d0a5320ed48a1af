/*
 * redis_slot: see redis_slot.h.
 */
#include "svc/redis_slot.h"

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <string.h>

static uint16_t crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned redis_key_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (REDIS_SLOTS - 1);
    }
    return crc16(key, len) & (REDIS_SLOTS - 1);
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK 3999 [::1]:6381" (also a bare "::1:6381"). */
int redis_parse_redirect(const char *err, size_t len, struct redis_redirect *out) {
    const char *p = err, *end = err + len;
    if (len > 6 && memcmp(p, "MOVED ", 6) == 0)
        out->ask = 0, p += 6;
    else if (len > 4 && memcmp(p, "ASK ", 4) == 0)
        out->ask = 1, p += 4;
    else
        return -1;
    unsigned slot = 0;
    const char *d = p;
    while (p < end && *p >= '0' && *p <= '9' && slot < REDIS_SLOTS)
        slot = slot * 10 + (unsigned)(*p++ - '0');
    if (p == d || p >= end || *p != ' ' || slot >= REDIS_SLOTS)
        return -1;
    p++;
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q; /* the last one: IPv6 addresses have colons too */
    if (!colon || colon == p || colon + 1 >= end)
        return -1;
    const char *h = p, *he = colon;
    if (*h == '[' && he[-1] == ']')
        h++, he--;
    if (he <= h || (size_t)(he - h) >= sizeof out->host)
        return -1;
    long port = 0;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9' || port > 65535)
            return -1;
        port = port * 10 + (*q - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    memcpy(out->host, h, (size_t)(he - h));
    out->host[he - h] = '\0';
    out->port = (int)port;
    out->slot = slot;
    return 0;
}

/* [first, last, [host, port, id, ...], replicas...] for each range. */
int redis_parse_slots(const struct redisReply *r,
                      int (*fn)(void *arg, const struct redis_slot_range *range), void *arg) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        long long a = e->element[0]->integer, b = e->element[1]->integer;
        const redisReply *m = e->element[2];
        if (a < 0 || b >= REDIS_SLOTS || a > b || m->type != REDIS_REPLY_ARRAY ||
            m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER || m->element[1]->integer < 1 ||
            m->element[1]->integer > 65535)
            return -1;
        const char *host = m->element[0]->str;
        struct redis_slot_range range = {(unsigned)a, (unsigned)b,
                                         !host[0] || strcmp(host, "?") == 0 ? NULL : host,
                                         (int)m->element[1]->integer};
        if (fn(arg, &range) < 0)
            return -1;
    }
    return 0;
}
