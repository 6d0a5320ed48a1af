/*
 * probe_bytes: httpbin's byte bodies beyond /bytes/{n} (probe.c):
 * /stream-bytes/{n}?seed=&chunk_size= (random bytes, chunked, one chunk
 * per chunk_size) and /range/{n}?chunk_size=&duration= (the letters
 * a..z repeated, with Range, If-Range, ETag "range{n}", 206 and 416). Both
 * bodies are produced as the socket drains (conn_stream), or, for /range
 * with a duration, chunk by chunk from the timer wheel as /drip is.
 */
#include "api/probe_int.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/timer.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_DEFAULT 10240 /* httpbin's and go-httpbin's chunk_size */

/* ---- /stream-bytes/{n} ------------------------------------------------------ */

/* The generator of /bytes/{n} (probe.c): the same seed gives the same bytes
 * here, so a streamed body can be checked against a whole one. */
static uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

struct sbytes_gen {
    uint64_t seed, left;
    size_t chunk;
    unsigned char word[8];
    unsigned have; /* bytes of word not yet used (its last ones) */
    int http10;    /* no chunked coding: the close ends the body */
};

static void sbytes_fill(struct sbytes_gen *g, char *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!g->have) {
            uint64_t r = xorshift64(&g->seed);
            memcpy(g->word, &r, 8);
            g->have = 8;
        }
        w[i] = (char)g->word[8 - g->have--];
    }
}

static int sbytes_produce(void *arg, struct buf *out, size_t room) {
    struct sbytes_gen *g = arg;
    size_t start = out->len;
    while (g->left > 0) {
        size_t k = g->left < g->chunk ? (size_t)g->left : g->chunk;
        if (k > room)
            k = room; /* a chunk larger than a slice goes in pieces, each a chunk */
        if (out->len > start && out->len - start + k + 32 > room)
            break; /* whole chunks only, within the slice's memory */
        if (buf_reserve(out, k + 32) < 0)
            return -1;
        if (!g->http10)
            out->len += (size_t)snprintf(buf_start(out) + out->len, 24, "%zx\r\n", k);
        sbytes_fill(g, buf_start(out) + out->len, k);
        out->len += k;
        if (!g->http10)
            buf_append(out, "\r\n", 2); /* reserved above */
        g->left -= k;
    }
    if (g->left > 0)
        return 1;
    if (!g->http10 && buf_append(out, "0\r\n\r\n", 5) < 0)
        return -1;
    return 0;
}

/* chunk_size as httpbin reads it (at least 1; default 10 KiB); 0 when bad. */
static size_t chunk_param(const struct http_request *req, uint64_t max) {
    size_t n;
    const char *v = http_query_get(req, "chunk_size", &n);
    if (!v)
        return CHUNK_DEFAULT;
    int64_t k = http_parse_uint(v, n, max ? max : 1);
    return k < 0 ? 0 : k == 0 ? 1 : (size_t)k;
}

PROBE_HANDLER(probe_stream_bytes) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    struct server *s = c->srv;
    int64_t n = http_parse_uint(req->path + 14, req->path_len - 14, s->cfg->max_bytes);
    if (n < 0)
        return reply_fail(c, 400, "n must be a whole number from 0 to %llu (max_bytes)",
                          (unsigned long long)s->cfg->max_bytes);
    size_t chunk = chunk_param(req, s->cfg->max_bytes);
    if (!chunk)
        return reply_fail(c, 400, "chunk_size must be a whole number from 1 to %llu (max_bytes)",
                          (unsigned long long)s->cfg->max_bytes);
    uint64_t seed;
    if (probe_seed(req, &seed) < 0)
        return reply_fail(c, 400, "seed must be a whole number");
    struct sbytes_gen *g = calloc(1, sizeof *g);
    if (!g)
        return probe_oom(p, c);
    g->seed = seed;
    g->left = (uint64_t)n;
    g->chunk = chunk;
    g->http10 = c->http10;
    if (reply_head(c, 200, CT_OCTETS, -1, NULL) < 0) {
        free(g);
        return HANDLER_DONE;
    }
    conn_stream(c, sbytes_produce, free, g);
    return HANDLER_DONE;
}

/* ---- /range/{n} ------------------------------------------------------------------ */

/* The byte range of a "Range: bytes=first-last" (or "first-", "-suffix")
 * over n bytes: 1 with *first..*last (last clamped to n-1, RFC 9110
 * 14.1.2), 0 when the whole body is to be sent (no Range, another unit, a
 * list of ranges, or one that does not parse: RFC 9110 lets a server
 * ignore Range), -1 when it cannot be satisfied (416). */
static int range_parse(const char *v, size_t len, uint64_t n, uint64_t *first, uint64_t *last) {
    const char *e = v + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e - v < 6 || memcmp(v, "bytes=", 6) != 0)
        return 0;
    v += 6;
    const char *dash = memchr(v, '-', (size_t)(e - v));
    if (!dash || memchr(v, ',', (size_t)(e - v)))
        return 0;
    int64_t a = dash > v ? http_parse_uint(v, (size_t)(dash - v), UINT64_MAX / 2) : -2;
    int64_t b = e > dash + 1 ? http_parse_uint(dash + 1, (size_t)(e - dash - 1), UINT64_MAX / 2)
                             : -2;
    if (a == -1 || b == -1 || (a == -2 && b == -2))
        return 0;
    if (a == -2) { /* the last b bytes */
        if (b == 0)
            return -1;
        *first = (uint64_t)b >= n ? 0 : n - (uint64_t)b;
        *last = n - 1;
        return 1;
    }
    *first = (uint64_t)a;
    *last = b == -2 || (uint64_t)b >= n ? n - 1 : (uint64_t)b;
    if (*first >= n || (b != -2 && (uint64_t)b < *first))
        return -1;
    return 1;
}

struct range_op {
    struct timer t;
    struct conn *c;
    struct probe *p;
    uint64_t pos, end; /* the next byte, one past the last */
    size_t chunk;
    uint64_t interval_ms;
    int started, status;
    char *extra; /* head lines: ours, then the dispatcher's (CORS) */
};

static void letters(char *w, uint64_t pos, size_t n) {
    for (size_t i = 0; i < n; i++)
        w[i] = (char)('a' + (pos + i) % 26);
}

static int range_produce(void *arg, struct buf *out, size_t room) {
    struct range_op *op = arg;
    size_t k = op->end - op->pos < room ? (size_t)(op->end - op->pos) : room;
    if (buf_reserve(out, k) < 0)
        return -1;
    letters(buf_start(out) + out->len, op->pos, k);
    out->len += k;
    op->pos += k;
    return op->pos < op->end;
}

static void range_free(void *arg) {
    struct range_op *op = arg;
    free(op->extra);
    free(op);
}

static void range_cancel(void *arg) {
    struct range_op *op = arg;
    timer_cancel(&op->c->srv->wheel, &op->t);
    op->p->delays_pending--;
    range_free(op);
}

/* With a duration: one chunk per tick, as httpbin sleeps between chunks. */
static void range_fire(struct timer *t) {
    struct range_op *op = container_of(t, struct range_op, t);
    struct conn *c = op->c;
    if (!op->started) {
        op->started = 1;
        reply_head(c, op->status, CT_OCTETS, (int64_t)(op->end - op->pos), op->extra);
        if (c->head_only)
            op->pos = op->end;
    }
    if (op->pos < op->end) {
        size_t k = op->end - op->pos < op->chunk ? (size_t)(op->end - op->pos) : op->chunk;
        struct buf *o = conn_out(c);
        if (buf_reserve(o, k) == 0) {
            letters(buf_start(o) + o->len, op->pos, k);
            o->len += k;
            c->b->alog.bytes += k;
            op->pos += k;
        } else {
            conn_fail(c);
            op->pos = op->end;
        }
    }
    if (op->pos >= op->end) {
        op->p->delays_pending--;
        range_free(op);
        conn_done(c);
        return;
    }
    server_timer_in(c->srv, &op->t, op->interval_ms); /* before the flush, as /drip */
    conn_flush(c);
}

PROBE_HANDLER(probe_range) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    struct server *s = c->srv;
    uint64_t max = s->cfg->max_bytes;
    int64_t n = http_parse_uint(req->path + 7, req->path_len - 7, max);
    char head[256];
    int hl = snprintf(head, sizeof head, "ETag: range%lld\r\nAccept-Ranges: bytes\r\n",
                      (long long)(n > 0 ? n : 0));
    if (n <= 0) { /* httpbin: 404, ETag and Accept-Ranges still sent */
        reply_error_hdr(c, 404, head, "number of bytes must be in the range (0, %llu] (max_bytes)",
                        (unsigned long long)max);
        return HANDLER_DONE;
    }
    size_t chunk = chunk_param(req, max);
    if (!chunk)
        return reply_fail(c, 400, "chunk_size must be a whole number from 1 to %llu (max_bytes)",
                          (unsigned long long)max);
    size_t vl;
    const char *v = http_query_get(req, "duration", &vl);
    int64_t duration = v ? http_parse_seconds_ms(v, vl) : 0;
    if (duration < 0)
        return reply_fail(c, 400, "duration must be a non-negative number of seconds");
    if ((uint64_t)duration > s->cfg->max_delay_ms)
        return reply_fail(c, 400, "duration is over the maximum of %.3f s (max_delay)",
                          s->cfg->max_delay_ms / 1000.0);
    uint64_t first = 0, last = (uint64_t)n - 1;
    const struct http_header *rh = probe_header(req, "range");
    int ranged = rh ? range_parse(rh->value, rh->value_len, (uint64_t)n, &first, &last) : 0;
    if (ranged && (rh = probe_header(req, "if-range"))) {
        /* If-Range names the ETag this range belongs to; another one
         * means the whole body. */
        char etag[32];
        int el = snprintf(etag, sizeof etag, "range%lld", (long long)n);
        const char *iv = rh->value;
        size_t il = rh->value_len;
        if (il >= 2 && iv[0] == '"' && iv[il - 1] == '"')
            iv++, il -= 2;
        if (il != (size_t)el || memcmp(iv, etag, il) != 0)
            ranged = 0, first = 0, last = (uint64_t)n - 1;
    }
    if (ranged < 0) {
        snprintf(head + hl, sizeof head - (size_t)hl, "Content-Range: bytes */%lld\r\n",
                 (long long)n);
        reply(c, 416, CT_TEXT, head, "", 0); /* httpbin's (Flask's) type, no body */
        return HANDLER_DONE;
    }
    /* httpbin sends Content-Range on every answer, also the whole body's. */
    snprintf(head + hl, sizeof head - (size_t)hl, "Content-Range: bytes %llu-%llu/%lld\r\n",
             (unsigned long long)first, (unsigned long long)last, (long long)n);
    int status = first == 0 && last == (uint64_t)n - 1 ? 200 : 206;
    struct range_op *op = calloc(1, sizeof *op);
    if (!op)
        return probe_oom(p, c);
    op->c = c;
    op->p = p;
    op->pos = first;
    op->end = last + 1;
    op->status = status;
    if (duration == 0) {
        if (reply_head(c, status, CT_OCTETS, (int64_t)(op->end - op->pos), head) < 0) {
            free(op);
            return HANDLER_DONE;
        }
        conn_stream(c, range_produce, range_free, op);
        return HANDLER_DONE;
    }
    const char *x = reply_extra_lines(c);
    size_t xl = x ? strlen(x) : 0;
    if (!(op->extra = malloc(strlen(head) + xl + 1))) {
        free(op);
        return probe_oom(p, c);
    }
    memcpy(op->extra, head, strlen(head));
    memcpy(op->extra + strlen(head), x ? x : "", xl + 1);
    /* httpbin pauses duration / n per byte, a chunk's worth after each
     * chunk; no tick shorter than 10 ms (larger chunks instead). */
    uint64_t len = op->end - op->pos;
    uint64_t ticks = (len + chunk - 1) / chunk;
    uint64_t per_range = (uint64_t)((double)duration * (double)len / (double)n);
    if (ticks > per_range / 10 + 1) {
        ticks = per_range / 10 + 1;
        chunk = (size_t)((len + ticks - 1) / ticks);
    }
    op->chunk = chunk;
    op->interval_ms = ticks > 1 ? per_range / (ticks - 1) : 0;
    timer_init(&op->t, range_fire);
    server_timer_in(s, &op->t, 0);
    p->delays_pending++;
    conn_pending(c, range_cancel, op);
    return HANDLER_PENDING;
}
