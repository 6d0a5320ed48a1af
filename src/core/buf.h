/*
 * buf: a growable byte buffer. Allocation failure is reported, never
 * ignored: every append returns 0 or -1 (ENOMEM), and a failed append
 * leaves the buffer as it was.
 */
#ifndef AWAITD_BUF_H
#define AWAITD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len; /* bytes in use, from data[off] */
    size_t off; /* bytes consumed from the front, not yet compacted */
    size_t cap; /* bytes allocated */
};

#define BUF_INIT {NULL, 0, 0, 0}

static inline char *buf_start(const struct buf *b) {
    return b->data + b->off;
}

/* The slow path of buf_reserve: compact, then grow. */
int buf_grow(struct buf *b, size_t extra);

/* Make room for at least extra more bytes after the data. Inline: the
 * room is almost always there, and every append of a reply asks. */
static inline int buf_reserve(struct buf *b, size_t extra) {
    if (b->cap - b->off - b->len >= extra)
        return 0;
    return buf_grow(b, extra);
}

/* How buffers grow: realloc, swapped by tests to make growth fail
 * (beanstalkd's falloc seam). */
extern void *(*buf_realloc)(void *p, size_t n);
static inline int buf_append(struct buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        __builtin_memcpy(b->data + b->off + b->len, p, n);
    b->len += n;
    return 0;
}
/* Inline: a literal's length is folded at compile time. */
static inline int buf_appends(struct buf *b, const char *s) {
    return buf_append(b, s, __builtin_strlen(s));
}
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_append_u64(struct buf *b, unsigned long long v);

/* Text into a caller's array, without printf (the queue's answers run
 * these once per job): each writes at p and returns the end, no NUL. */
char *text_u64(char *p, unsigned long long v);   /* at most 20 bytes */
char *text_i64(char *p, long long v);            /* at most 20 bytes */
char *text_ms3(char *p, unsigned long long ms);  /* ms as seconds, "%.3f": at most 21 */
char *text_mem(char *p, const void *s, size_t n);
/* Drop n bytes from the front (O(1); compacted on the next reserve). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Release the memory; the buffer is BUF_INIT again. */
void buf_free(struct buf *b);

/* Append s[0..n) as a quoted JSON string, escaping as RFC 8259 requires;
 * bytes that are not valid UTF-8 become U+FFFD. */
int buf_append_json_str(struct buf *b, const char *s, size_t n);
/* The same without the quotes, to build one JSON string from several pieces. */
int buf_append_json_chars(struct buf *b, const char *s, size_t n);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int utf8_valid(const char *s, size_t n);

#endif
