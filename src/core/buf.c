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

/* Any byte of x below 0x20, at or above 0x80, '"' or '\\': the bytes JSON
 * escapes or that need a UTF-8 check. While every byte is below 0x80, a
 * subtraction sets a byte's top bit only for a byte below what is taken
 * away (or a borrow from such a byte), so the answer is exact; a byte at
 * or above 0x80 is caught by x itself. */
#define J_SPECIAL_W(x, ones)                                                                       \
    (((x) | ((x) - (ones) * 0x20) | (((x) ^ ((ones) * '"')) - (ones)) |                             \
      (((x) ^ ((ones) * '\\')) - (ones))) & ((ones) * 0x80))
#define J_ONES64 UINT64_C(0x0101010101010101)
#define J_ONES32 UINT32_C(0x01010101)

/* 1 for the bytes JSON takes as they are: printable ASCII but '"' and '\\'. */
static const unsigned char json_plain[256] = {
    ['\x20'] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,            /* '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x70 (DEL too) */
};

/*
 * s[0..n) escaped for JSON at o, which has room for n * 6 bytes; returns
 * the end. Plain ASCII goes a word at a time (eight bytes; four for short
 * strings), and a tail shorter than a word is tested as the string's last
 * whole word, overlapping bytes already copied: when that word is plain,
 * its first bytes were copied as they are, so writing them again changes
 * nothing. The general case, for json_chars_at below.
 */
static __attribute__((noinline)) char *json_chars_any(char *o, const unsigned char *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *start = p, *end = p + n;
    for (;;) {
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            if (J_SPECIAL_W(x, J_ONES64))
                break;
            memcpy(o, &x, 8);
            o += 8;
            p += 8;
        }
        size_t left = (size_t)(end - p);
        if (left < 8 && end - start >= 8) {
            uint64_t x;
            memcpy(&x, end - 8, 8);
            if (!J_SPECIAL_W(x, J_ONES64)) {
                memcpy(o + left - 8, &x, 8);
                return o + left;
            }
        } else if (left < 8 && left >= 4) {
            uint32_t x, y;
            memcpy(&x, p, 4);
            memcpy(&y, end - 4, 4);
            if (!J_SPECIAL_W(x, J_ONES32) && !J_SPECIAL_W(y, J_ONES32)) {
                memcpy(o, &x, 4);
                memcpy(o + left - 4, &y, 4);
                return o + left;
            }
        }
        /* Byte by byte through the word that stopped the loop (or the tail). */
        const unsigned char *stop = left > 8 ? p + 8 : end;
        while (p < stop && json_plain[*p])
            *o++ = (char)*p++;
        if (p == end)
            return o;
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
}

/*
 * The same for strings of 4 bytes or more that need no escaping at all
 * (most of what an echo holds): only the word tests, in a function small
 * enough to inline without the general loop's register saves; anything
 * else, or a special byte found, goes to json_chars_any from the start
 * (what the word tests copied is plain, so copying it again is the same).
 */
static inline __attribute__((always_inline)) char *json_chars_at(char *o, const unsigned char *p,
                                                                  size_t n) {
    if (n >= 8) {
        size_t i = 0;
        uint64_t x;
        for (; n - i >= 8; i += 8) {
            memcpy(&x, p + i, 8);
            if (J_SPECIAL_W(x, J_ONES64))
                return json_chars_any(o, p, n);
            memcpy(o + i, &x, 8);
        }
        if (i < n) {
            memcpy(&x, p + n - 8, 8);
            if (J_SPECIAL_W(x, J_ONES64))
                return json_chars_any(o, p, n);
            memcpy(o + n - 8, &x, 8);
        }
        return o + n;
    }
    if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        if (J_SPECIAL_W(x, J_ONES32) || J_SPECIAL_W(y, J_ONES32))
            return json_chars_any(o, p, n);
        memcpy(o, &x, 4);
        memcpy(o + n - 4, &y, 4);
        return o + n;
    }
    return json_chars_any(o, p, n);
}

int buf_append_json_chars(struct buf *b, const char *s, size_t n) {
    /* Worst case every byte becomes \u00XX (6) or U+FFFD (3 bytes). */
    if (n > SIZE_MAX / 6 || buf_reserve(b, n * 6) < 0)
        return -1;
    char *o = b->data + b->off + b->len;
    b->len += (size_t)(json_chars_at(o, (const unsigned char *)s, n) - o);
    return 0;
}

int buf_append_json_str(struct buf *b, const char *s, size_t n) {
    if (n > SIZE_MAX / 6 - 2 || buf_reserve(b, n * 6 + 2) < 0)
        return -1;
    char *o = b->data + b->off + b->len, *e;
    *o = '"';
    e = json_chars_at(o + 1, (const unsigned char *)s, n);
    *e++ = '"';
    b->len += (size_t)(e - o);
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
