#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *(*buf_realloc)(void *p, size_t n) = realloc;

int buf_grow(struct buf *b, size_t extra) {
    /* Compact first: consumed bytes at the front are free space. */
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        if (b->cap - b->len >= extra)
            return 0;
    }
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    char *p = buf_realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_appendf(struct buf *b, const char *fmt, ...) {
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return buf_append(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n + 1) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->off + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_append_u64(struct buf *b, unsigned long long v) {
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

char *text_u64(char *p, unsigned long long v) {
    char tmp[24], *t = tmp + sizeof tmp;
    do {
        *--t = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = (size_t)(tmp + sizeof tmp - t);
    memcpy(p, t, n);
    return p + n;
}

char *text_i64(char *p, long long v) {
    if (v >= 0)
        return text_u64(p, (unsigned long long)v);
    *p++ = '-';
    return text_u64(p, 0ULL - (unsigned long long)v);
}

char *text_ms3(char *p, unsigned long long ms) {
    unsigned f = (unsigned)(ms % 1000);
    p = text_u64(p, ms / 1000);
    *p++ = '.';
    *p++ = (char)('0' + f / 100);
    *p++ = (char)('0' + f / 10 % 10);
    *p++ = (char)('0' + f % 10);
    return p;
}

char *text_mem(char *p, const void *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

void buf_consume(struct buf *b, size_t n) {
    if (n >= b->len) {
        b->off = 0;
        b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

void buf_reset(struct buf *b) {
    b->off = 0;
    b->len = 0;
}

void buf_free(struct buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->off = b->cap = 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not valid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Reject overlong forms, surrogates and values past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int buf_append_json_str(struct buf *b, const char *s, size_t n) {
    if (buf_append(b, "\"", 1) < 0 || buf_append_json_chars(b, s, n) < 0)
        return -1;
    return buf_append(b, "\"", 1);
}

/* Any byte of x below 0x20, at or above 0x80, '"' or '\\': the bytes JSON
 * escapes or that need a UTF-8 check. Exact as an "any byte" answer (a
 * borrow only misreports bytes above the first one that matches). */
#define J_ONES 0x0101010101010101ULL
#define J_HAS_ZERO(x) (((x)-J_ONES) & ~(x) & (J_ONES * 0x80))
#define J_SPECIAL(x)                                                                               \
    ((((x)-J_ONES * 0x20) | (x) | J_HAS_ZERO((x) ^ (J_ONES * '"')) |                               \
      J_HAS_ZERO((x) ^ (J_ONES * '\\'))) & (J_ONES * 0x80))

/* 1 for the bytes JSON takes as they are: printable ASCII but '"' and '\\'. */
static const unsigned char json_plain[256] = {
    ['\x20'] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,            /* '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x70 (DEL too) */
};

int buf_append_json_chars(struct buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX (6) or U+FFFD (3 bytes). */
    if (n > SIZE_MAX / 6 || buf_reserve(b, n * 6) < 0)
        return -1;
    char *o = b->data + b->off + b->len;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    for (;;) {
        /* Plain ASCII a word at a time (long values, URLs), then byte by
         * byte through the word that stops it (or a short tail): one
         * table load per byte. */
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            if (J_SPECIAL(x))
                break;
            memcpy(o, &x, 8);
            o += 8;
            p += 8;
        }
        const unsigned char *stop = end - p > 8 ? p + 8 : end;
        while (p < stop && json_plain[*p])
            *o++ = (char)*p++;
        if (p == end)
            break;
        if (p == stop)
            continue;
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            p++;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            }
            p++;
        } else {
            size_t l = utf8_seq_len(p, (size_t)(end - p));
            if (l) {
                memcpy(o, p, l);
                o += l;
                p += l;
            } else {
                memcpy(o, "\xEF\xBF\xBD", 3);
                o += 3;
                p++;
            }
        }
    }
    b->len = (size_t)(o - (b->data + b->off));
    return 0;
}

int utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t l = utf8_seq_len(p, (size_t)(end - p));
        if (!l)
            return 0;
        p += l;
    }
    return 1;
}
