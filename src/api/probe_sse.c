/*
 * probe_sse: go-httpbin's /sse?count=&duration=&delay=: count server-sent
 * events ("event: ping", data {"id": i, "timestamp": unix ms}) spread over
 * duration after delay, streamed chunked from the timer wheel as /drip is.
 * A client that leaves cancels the timer.
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

struct sse_op {
    struct timer t;
    struct conn *c;
    struct probe *p;
    uint64_t sent, count, interval_ms;
    int started;
    char *extra; /* the dispatcher's header lines (CORS), or NULL */
};

static void sse_free(struct sse_op *op) {
    op->p->delays_pending--;
    free(op->extra);
    free(op);
}

static void sse_cancel(void *arg) {
    struct sse_op *op = arg;
    timer_cancel(&op->c->srv->wheel, &op->t);
    sse_free(op);
}

static void sse_fire(struct timer *t) {
    struct sse_op *op = container_of(t, struct sse_op, t);
    struct conn *c = op->c;
    if (!op->started) {
        op->started = 1;
        reply_head(c, 200, "text/event-stream", -1, op->extra);
        if (c->head_only)
            op->sent = op->count - 1; /* no events to wait for */
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char ev[128];
    int n = snprintf(ev, sizeof ev, "event: ping\ndata: {\"id\":%llu,\"timestamp\":%lld}\n\n",
                     (unsigned long long)op->sent,
                     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    reply_chunk(c, ev, (size_t)n);
    if (++op->sent == op->count) {
        reply_chunk_end(c);
        sse_free(op);
        conn_done(c);
        return;
    }
    /* The next event is scheduled before sending, as in /drip: if sending
     * closes the connection, sse_cancel finds the timer pending. */
    server_timer_in(c->srv, &op->t, op->interval_ms);
    conn_flush(c);
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
    struct sse_op *op = calloc(1, sizeof *op);
    if (!op)
        return probe_oom(p, c);
    const char *x = reply_extra_lines(c);
    if (x && !(op->extra = strdup(x))) {
        free(op);
        return probe_oom(p, c);
    }
    op->c = c;
    op->p = p;
    op->count = (uint64_t)count;
    op->interval_ms = (uint64_t)duration / (uint64_t)count;
    timer_init(&op->t, sse_fire);
    server_timer_in(s, &op->t, (uint64_t)delay);
    p->delays_pending++;
    conn_pending(c, sse_cancel, op);
    return HANDLER_PENDING;
}
