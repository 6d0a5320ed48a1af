/*
 * probe_sse: go-httpbin's /sse?count=&duration=&delay=: count server-sent
 * events ("event: ping", data {"id": i, "timestamp": unix ms}) spread over
 * duration after delay, streamed chunked from the timer wheel as /drip is.
 * A client that leaves cancels the timer. go-httpbin's /jsonl (JSON lines
 * over time) is paced the same way.
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

#define SSE_MAX_COUNT 10000

/* A paced chunked answer (/sse, /jsonl): count lines, the first after a
 * delay, then one per pause (randomized by +-jitter of itself), or batch
 * lines per loop turn without pauses; line() renders and sends one. */
struct paced_op;
typedef int (*paced_line_fn)(struct paced_op *op, struct conn *c);

struct paced_op {
    struct timer t;
    struct conn *c;
    struct probe *p;
    paced_line_fn line;     /* sends line op->sent; < 0: the answer cannot go on */
    const char *ctype;
    uint64_t sent, count, pause_ms;
    double jitter;
    int started, batch;
    char *extra; /* the dispatcher's header lines (CORS), or NULL */
    size_t len;
    char rest[]; /* the line renderer's data (/jsonl: the /get echo after its '{') */
};

static void paced_free(struct paced_op *op) {
    op->p->delays_pending--;
    free(op->extra);
    free(op);
}

static void paced_cancel(void *arg) {
    struct paced_op *op = arg;
    timer_cancel(&op->c->srv->wheel, &op->t);
    paced_free(op);
}

static void paced_fire(struct timer *t) {
    struct paced_op *op = container_of(t, struct paced_op, t);
    struct conn *c = op->c;
    if (!op->started) {
        op->started = 1;
        reply_head(c, 200, op->ctype, -1, op->extra);
        if (c->head_only)
            op->sent = op->count - 1; /* no lines to wait for */
    }
    for (int k = op->batch; k > 0 && op->sent < op->count; k--) {
        if (op->line(op, c) < 0)
            conn_fail(c), op->sent = op->count - 1;
        op->sent++;
    }
    if (op->sent == op->count) {
        reply_chunk_end(c);
        paced_free(op);
        conn_done(c);
        return;
    }
    uint64_t pause = op->pause_ms;
    if (op->jitter > 0 && pause > 0) {
        double f = 1 + op->jitter * (2.0 * (double)random() / (double)RAND_MAX - 1);
        pause = (uint64_t)((double)pause * f + 0.5);
    }
    /* The next line is scheduled before sending, as in /drip: if sending
     * closes the connection, paced_cancel finds the timer pending. */
    server_timer_in(c->srv, &op->t, pause);
    conn_flush(c);
}

/* Start a paced answer on c: rest[len] copied for line(); the first line
 * after delay_ms. */
static enum handler_result paced_start(struct probe *p, struct conn *c, paced_line_fn line,
                                       const char *ctype, uint64_t count, uint64_t pause_ms,
                                       double jitter, int batch, uint64_t delay_ms,
                                       const char *rest, size_t len) {
    struct paced_op *op = calloc(1, sizeof *op + len);
    if (!op)
        return probe_oom(p, c);
    if (len)
        memcpy(op->rest, rest, len);
    op->len = len;
    const char *x = reply_extra_lines(c);
    if (x && !(op->extra = strdup(x))) {
        free(op);
        return probe_oom(p, c);
    }
    op->c = c;
    op->p = p;
    op->line = line;
    op->ctype = ctype;
    op->count = count;
    op->pause_ms = pause_ms;
    op->jitter = jitter;
    op->batch = batch;
    timer_init(&op->t, paced_fire);
    server_timer_in(c->srv, &op->t, delay_ms);
    p->delays_pending++;
    conn_pending(c, paced_cancel, op);
    return HANDLER_PENDING;
}

/* ---- /sse ------------------------------------------------------------------------- */

static int sse_line(struct paced_op *op, struct conn *c) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char ev[128];
    int n = snprintf(ev, sizeof ev, "event: ping\ndata: {\"id\":%llu,\"timestamp\":%lld}\n\n",
                     (unsigned long long)op->sent,
                     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    reply_chunk(c, ev, (size_t)n);
    return 0;
}

/* "1.5" or "1.5s" seconds, or "250ms" -> milliseconds; -1 when neither. */
static int64_t duration_ms(const char *s, size_t n) {
    if (n > 2 && memcmp(s + n - 2, "ms", 2) == 0)
        return http_parse_uint(s, n - 2, 1000000000);
    if (n > 1 && s[n - 1] == 's')
        n--;
    return http_parse_seconds_ms(s, n);
}

PROBE_HANDLER(probe_sse) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    struct server *s = c->srv;
    size_t n;
    const char *v;
    int64_t count = 10, duration = 5000, delay = 0;
    if ((v = http_query_get(req, "count", &n)) &&
        (count = http_parse_uint(v, n, SSE_MAX_COUNT)) < 1)
        return reply_fail(c, 400, "count must be a whole number from 1 to %d", SSE_MAX_COUNT);
    if ((v = http_query_get(req, "duration", &n)) && (duration = duration_ms(v, n)) < 0)
        return reply_fail(c, 400, "duration must be seconds (1.5, 1.5s) or milliseconds (250ms)");
    if ((v = http_query_get(req, "delay", &n)) && (delay = duration_ms(v, n)) < 0)
        return reply_fail(c, 400, "delay must be seconds (1.5, 1.5s) or milliseconds (250ms)");
    if ((uint64_t)(duration + delay) > s->cfg->max_delay_ms)
        return reply_fail(c, 400, "duration + delay is over the maximum of %.3f s (max_delay)",
                          s->cfg->max_delay_ms / 1000.0);
    return paced_start(p, c, sse_line, "text/event-stream", (uint64_t)count,
                       (uint64_t)duration / (uint64_t)count, 0, 1, (uint64_t)delay, NULL, 0);
}

/* ---- /jsonl (go-httpbin) ---------------------------------------------------------- */

/* go-httpbin's /jsonl?count=&duration=&delay=&jitter=: count JSON lines
 * ({"id": i, then the /get echo's fields}), the first after delay, the
 * last at duration after it (the pauses between lines randomized by
 * +-jitter of themselves), chunked from the timer wheel; count is clamped
 * to 1..max_stream as go-httpbin clamps it. */
#define CT_JSONL "application/x-ndjson; charset=utf-8"

static int jsonl_line(struct paced_op *op, struct conn *c) {
    char id[48];
    int idl = snprintf(id, sizeof id, "{\"id\": %llu, ", (unsigned long long)op->sent);
    struct buf line = BUF_INIT;
    int r = buf_append(&line, id, (size_t)idl) | buf_append(&line, op->rest, op->len);
    if (!r && reply_chunk(c, buf_start(&line), line.len) < 0)
        r = -1;
    buf_free(&line);
    return r ? -1 : 0;
}

PROBE_HANDLER(probe_jsonl) {
    struct probe *p = ctx;
    struct server *s = c->srv;
    size_t n;
    const char *v;
    int64_t count = 10, duration = 0, delay = 0;
    double jitter = 0;
    if ((v = http_query_get(req, "count", &n))) {
        /* A whole number, negative ones and 0 clamped to 1, large ones
         * to max_stream (go-httpbin's strconv.Atoi, then the clamp). */
        size_t neg = n > 0 && v[0] == '-', i = neg;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++;
        if (i == neg || i < n)
            return reply_fail(c, 400, "count must be a whole number");
        count = neg ? 1 : n > 18 ? INT64_MAX : http_parse_uint(v, n, INT64_MAX);
        if (count < 1)
            count = 1;
        if ((uint64_t)count > s->cfg->max_stream)
            count = (int64_t)s->cfg->max_stream;
    }
    if ((v = http_query_get(req, "duration", &n)) && (duration = duration_ms(v, n)) < 0)
        return reply_fail(c, 400, "duration must be seconds (1.5, 1.5s) or milliseconds (250ms)");
    if ((v = http_query_get(req, "delay", &n)) && (delay = duration_ms(v, n)) < 0)
        return reply_fail(c, 400, "delay must be seconds (1.5, 1.5s) or milliseconds (250ms)");
    if ((v = http_query_get(req, "jitter", &n))) {
        char tmp[32], *end;
        if (n == 0 || n >= sizeof tmp)
            return reply_fail(c, 400, "jitter must be a number from 0 to 1");
        memcpy(tmp, v, n);
        tmp[n] = 0;
        jitter = strtod(tmp, &end);
        if (*end || !(jitter >= 0 && jitter <= 1))
            return reply_fail(c, 400, "jitter must be a number from 0 to 1");
    }
    if ((uint64_t)(duration + delay) > s->cfg->max_delay_ms)
        return reply_fail(c, 400, "duration + delay is over the maximum of %.3f s (max_delay)",
                          s->cfg->max_delay_ms / 1000.0);
    if (count < 1)
        count = 1; /* max_stream = 0 */
    struct buf *b = &p->body;
    if (probe_render_echo(c, req, body, body_len, 0, b) < 0)
        return probe_oom(p, c);
    /* go-httpbin: no pause after the last line, so duration / (count - 1),
     * rounded up. Without pauses, 64 lines per loop turn. */
    uint64_t pause = count > 1 ? ((uint64_t)duration + (uint64_t)count - 2) / (uint64_t)(count - 1)
                               : 0;
    enum handler_result hr = paced_start(p, c, jsonl_line, CT_JSONL, (uint64_t)count, pause,
                                         jitter, pause ? 1 : 64, (uint64_t)delay,
                                         buf_start(b) + 1, b->len - 1);
    buf_reset(b);
    return hr;
}
