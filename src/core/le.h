/* le: little-endian integers in journal records (writer and bounds-checked reader). */
#ifndef AWAITD_LE_H
#define AWAITD_LE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Write the low `bytes` bytes of v at *p and advance it. */
static inline void le_put(char **p, uint64_t v, int bytes) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(*p, &v, (size_t)bytes); /* one store when bytes is a constant */
    *p += bytes;
#else
    for (int i = 0; i < bytes; i++)
        *(*p)++ = (char)(v >> (8 * i));
#endif
}

static inline void le_put_bytes(char **p, const void *s, size_t n) {
    if (n)
        memcpy(*p, s, n);
    *p += n;
}

/* A reader that turns every overrun into bad = 1 (and zeros), never a crash. */
struct le_reader {
    const unsigned char *p, *end;
    int bad;
};

static inline struct le_reader le_reader(const void *data, size_t len) {
    struct le_reader r = {(const unsigned char *)data, (const unsigned char *)data + len, 0};
    return r;
}

static inline uint64_t le_get(struct le_reader *r, int bytes) {
    if (r->end - r->p < bytes) {
        r->bad = 1;
        r->p = r->end;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    return v;
}

/* n bytes in place, or NULL (bad) when fewer are left. */
static inline const char *le_get_bytes(struct le_reader *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        r->p = r->end;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n;
    return s;
}

#endif
