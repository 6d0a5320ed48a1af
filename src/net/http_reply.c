#include "net/http_reply.h"

#include "core/buf.h"
#include "net/conn.h"
#include "http/http_parse.h"
#include "net/server.h"

#include "core/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * Out of memory with part of an answer written: drop the part, so the
 * client never reads a truncated answer as a whole one, and close the
 * connection after what was answered before (conn_fail).
 */
static int reply_failed(struct conn *c, struct buf *o, size_t mark) {
    if (o && o->len > mark)
        o->len = mark;
    conn_fail(c);
    return -1;
}

/*
 * A 5xx answer is worth a log line (issue 16), but a failing backend answers
 * thousands a second: at most LOG_5XX_PER_SEC a second are logged, and the
 * first one logged in a later second says how many were left out before it.
 */
#define LOG_5XX_PER_SEC 10
static _Thread_local const char *log_5xx_msg; /* reply_error's message while it answers, else NULL */
static void log_5xx(struct conn *c, int status, const char *msg) {
    static _Thread_local time_t sec; /* per loop (workers) */
    static _Thread_local unsigned logged;
    static _Thread_local uint64_t suppressed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    if (ts.tv_sec != sec) {
        sec = ts.tv_sec;
        logged = 0;
    }
    if (logged >= LOG_5XX_PER_SEC) {
        suppressed++;
        return;
    }
    logged++;
    char peer[64];
    if (suppressed)
        log_warnx("answered %d to %s%s%s (suppressed %" PRIu64 " earlier 5xx lines: at most %d "
                  "a second)", status, conn_peer_text(c, peer, sizeof peer), msg ? ": " : "",
                  msg ? msg : "", suppressed, LOG_5XX_PER_SEC);
    else
        log_warnx("answered %d to %s%s%s", status, conn_peer_text(c, peer, sizeof peer),
                  msg ? ": " : "", msg ? msg : "");
    suppressed = 0;
}

/* Copy a string literal to p and move p past it (its length is folded). */
#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

static char *put_mem(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

/* Decimal digits of v at p (at most 20); returns the end. */
static char *put_u64(char *p, uint64_t v) {
    if (v < 1000) { /* most bodies: no loops */
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        return p;
    }
    size_t n = 1;
    for (uint64_t t = v; t >= 10; t /= 10)
        n++;
    char *e = p + n;
    do {
        *--e = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p + n;
}

/*
 * The head's first lines, "HTTP/1.1 200 OK\r\nServer: awaitd\r\nDate: ...\r\n",
 * as last written (per thread, so per worker loop): answers in the same
 * second with the same status reuse them, one fixed-size copy instead of
 * the reason's lookup, two strlen and four copies. They depend on nothing
 * else. At most 13 + 48 + 24 + 40 + 2 bytes (the longest reason is 31,
 * Date 29: both are cut to be safe).
 */
#define HEAD_LINE_MAX 128
struct head_line {
    time_t sec;
    int status;
    size_t len;
    char text[HEAD_LINE_MAX];
};
static _Thread_local struct head_line head_line;

static const struct head_line *head_line_for(struct server *s, int status) {
    const char *date = server_date(s);
    struct head_line *l = &head_line;
    if (l->sec == s->date_sec && l->status == status && l->len)
        return l;
    const char *reason = http_reason(status);
    size_t rl = strlen(reason), dl = strlen(date);
    if (rl > 48)
        rl = 48;
    if (dl > 40)
        dl = 40;
    char *h = l->text;
    PUT_LIT(h, "HTTP/1.1 ");
    *h++ = (char)('0' + status / 100);
    *h++ = (char)('0' + status / 10 % 10);
    *h++ = (char)('0' + status % 10);
    *h++ = ' ';
    h = put_mem(h, reason, rl);
    PUT_LIT(h, "\r\nServer: awaitd\r\nDate: ");
    h = put_mem(h, date, dl);
    PUT_LIT(h, "\r\n");
    l->len = (size_t)(h - l->text);
    l->sec = s->date_sec;
    l->status = status;
    return l;
}

/* The fixed bytes of a head at most after its first lines: Content-Type's
 * name, Content-Length with 20 digits or Transfer-Encoding, Connection, and
 * the line ends (the variable parts are added to it). */
#define HEAD_FIXED_MAX 160

/*
 * The head into o (conn_out(c)), without printf and with one reserve: the
 * lengths of the variable parts are known first, so every line is copied
 * straight into the buffer (this is the hot path). On failure nothing is
 * written.
 */
static int head_into(struct conn *c, struct buf *o, int status, const char *ctype,
                     int64_t content_length, const char *extra) {
    struct server *s = c->srv;
    if (s->draining && c->b->in.len == 0) /* else a pipelined request is answered too (conn_drain) */
        c->keep_alive = 0;
    if (status < 100 || status > 999)
        status = 500;
    const struct head_line *line = head_line_for(s, status);
    const char *more = s->reply_extra_conn == c ? s->reply_extra : NULL;
    size_t cl = ctype ? strlen(ctype) : 0, xl = extra ? strlen(extra) : 0;
    size_t ml = more ? s->reply_extra_len : 0;
    if (buf_reserve(o, HEAD_LINE_MAX + HEAD_FIXED_MAX + cl + xl + ml) < 0)
        return reply_failed(c, NULL, 0);
    char *h = o->data + o->off + o->len, *h0 = h;
    /* All of text[] (a constant size: a few vector moves), then on from its end. */
    memcpy(h, line->text, HEAD_LINE_MAX);
    h += line->len;
    if (ctype) {
        PUT_LIT(h, "Content-Type: ");
        h = put_mem(h, ctype, cl);
        PUT_LIT(h, "\r\n");
    }
    if (status < 200 || status == 204 || status == 304) {
        /* These never carry a body, and 1xx/204 must not send a length. */
    } else if (content_length >= 0) {
        PUT_LIT(h, "Content-Length: ");
        h = put_u64(h, (uint64_t)content_length);
        PUT_LIT(h, "\r\n");
    } else if (!c->http10) {
        PUT_LIT(h, "Transfer-Encoding: chunked\r\n");
    } else {
        c->keep_alive = 0; /* HTTP/1.0 without a length: the close ends the body */
    }
    if (!c->keep_alive)
        PUT_LIT(h, "Connection: close\r\n");
    else if (c->http10)
        PUT_LIT(h, "Connection: keep-alive\r\n");
    if (extra)
        h = put_mem(h, extra, xl);
    if (more)
        h = put_mem(h, more, ml);
    PUT_LIT(h, "\r\n");
    o->len += (size_t)(h - h0);
    if (status >= 100 && status < 600)
        s->metrics.requests[status / 100]++;
    if (status >= 500 && log_level_current >= LOG_LVL_WARN)
        log_5xx(c, status, log_5xx_msg);
    c->b->alog.status = (uint16_t)status; /* for the access log: cheaper than a test */
    c->b->alog.bytes = 0;
    return 0;
}

int reply_head(struct conn *c, int status, const char *ctype, int64_t content_length,
               const char *extra) {
    if (c->failed)
        return -1;
    return head_into(c, conn_out(c), status, ctype, content_length, extra);
}

int reply(struct conn *c, int status, const char *ctype, const char *extra, const void *body,
          size_t len) {
    if (c->failed)
        return -1;
    struct buf *o = conn_out(c);
    size_t mark = o->len;
    if (head_into(c, o, status, ctype, (int64_t)len, extra) < 0)
        return -1;
    if (c->head_only || len == 0 || status < 200 || status == 204 || status == 304)
        return 0;
    if (buf_append(o, body, len) < 0)
        return reply_failed(c, o, mark);
    c->b->alog.bytes = len;
    return 0;
}

static int reply_verror_fields(struct conn *c, int status, const char *extra,
                               const char *fields, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct buf *b = &c->srv->errbuf;
    buf_reset(b);
    int r = buf_appends(b, "{\"error\": ");
    r |= buf_append_json_str(b, msg, strlen(msg));
    r |= buf_appendf(b, ", \"status\": %d%s}\n", status, fields ? fields : "");
    if (r) {
        buf_reset(b);
        return reply_failed(c, NULL, 0);
    }
    if (!extra && status == 503)
        extra = "Retry-After: 1\r\n";
    log_5xx_msg = msg; /* head_into logs a 5xx with it */
    r = reply(c, status, CT_JSON, extra, buf_start(b), b->len);
    log_5xx_msg = NULL;
    buf_reset(b);
    return r;
}

static int reply_verror(struct conn *c, int status, const char *extra, const char *fmt,
                        va_list ap) {
    return reply_verror_fields(c, status, extra, NULL, fmt, ap);
}

int reply_error_fields(struct conn *c, int status, const char *extra, const char *fields,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = reply_verror_fields(c, status, extra ? extra : "", fields, fmt, ap);
    va_end(ap);
    return r;
}

int reply_error(struct conn *c, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = reply_verror(c, status, NULL, fmt, ap);
    va_end(ap);
    return r;
}

int reply_error_hdr(struct conn *c, int status, const char *extra, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = reply_verror(c, status, extra, fmt, ap);
    va_end(ap);
    return r;
}

/* A chunk that cannot be written whole ends the answer early: the close
 * without the last chunk tells the client the body is incomplete. */
int reply_chunk(struct conn *c, const void *data, size_t len) {
    if (c->failed)
        return -1;
    if (len == 0 || c->head_only)
        return 0;
    struct buf *o = conn_out(c);
    size_t mark = o->len;
    int r;
    if (c->http10) {
        r = buf_append(o, data, len);
    } else {
        r = buf_appendf(o, "%zx\r\n", len);
        r |= buf_append(o, data, len);
        r |= buf_append(o, "\r\n", 2);
    }
    if (r)
        return reply_failed(c, o, mark);
    c->b->alog.bytes += len;
    return 0;
}

int reply_chunk_end(struct conn *c) {
    if (c->failed)
        return -1;
    if (c->head_only || c->http10)
        return 0;
    struct buf *o = conn_out(c);
    return buf_append(o, "0\r\n\r\n", 5) < 0 ? reply_failed(c, o, o->len) : 0;
}

int reply_continue(struct conn *c) {
    if (c->failed)
        return -1;
    struct buf *o = conn_out(c);
    return buf_appends(o, "HTTP/1.1 100 Continue\r\n\r\n") < 0 ? reply_failed(c, o, o->len) : 0;
}

enum handler_result reply_fail(struct conn *c, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    reply_verror(c, status, NULL, fmt, ap);
    va_end(ap);
    return HANDLER_DONE;
}

const char *reply_extra_lines(const struct conn *c) {
    return c->srv->reply_extra_conn == c ? c->srv->reply_extra : NULL;
}
