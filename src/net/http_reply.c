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

/* The head into o (conn_out(c)); on failure the part written is dropped. */
static int head_into(struct conn *c, struct buf *o, int status, const char *ctype,
                     int64_t content_length, const char *extra) {
    size_t mark = o->len;
    struct server *s = c->srv;
    if (s->draining && c->b->in.len == 0) /* else a pipelined request is answered too (conn_drain) */
        c->keep_alive = 0;
    /* Status line and fixed headers without printf: this is the hot path. */
    if (status < 100 || status > 999)
        status = 500;
    char head[160];
    size_t n = 0;
    const char *reason = http_reason(status), *date = server_date(s);
    size_t rl = strlen(reason), dl = strlen(date);
    if (rl > 64)
        rl = 64;
    memcpy(head, "HTTP/1.1 ", 9);
    head[9] = (char)('0' + status / 100);
    head[10] = (char)('0' + status / 10 % 10);
    head[11] = (char)('0' + status % 10);
    head[12] = ' ';
    n = 13;
    memcpy(head + n, reason, rl);
    n += rl;
    static const char mid[] = "\r\nServer: awaitd\r\nDate: ";
    memcpy(head + n, mid, sizeof mid - 1);
    n += sizeof mid - 1;
    memcpy(head + n, date, dl);
    n += dl;
    memcpy(head + n, "\r\n", 2);
    n += 2;
    int r = buf_append(o, head, n);
    if (ctype) {
        r |= buf_appends(o, "Content-Type: ");
        r |= buf_appends(o, ctype);
        r |= buf_append(o, "\r\n", 2);
    }
    if (status < 200 || status == 204 || status == 304) {
        /* These never carry a body, and 1xx/204 must not send a length. */
    } else if (content_length >= 0) {
        r |= buf_append(o, "Content-Length: ", 16);
        r |= buf_append_u64(o, (unsigned long long)content_length);
        r |= buf_append(o, "\r\n", 2);
    } else if (!c->http10) {
        r |= buf_appends(o, "Transfer-Encoding: chunked\r\n");
    } else {
        c->keep_alive = 0; /* HTTP/1.0 without a length: the close ends the body */
    }
    if (!c->keep_alive)
        r |= buf_append(o, "Connection: close\r\n", 19);
    else if (c->http10)
        r |= buf_appends(o, "Connection: keep-alive\r\n");
    if (extra)
        r |= buf_appends(o, extra);
    if (s->reply_extra_conn == c)
        r |= buf_appends(o, s->reply_extra);
    r |= buf_append(o, "\r\n", 2);
    if (r)
        return reply_failed(c, o, mark);
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
