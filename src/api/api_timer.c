#include "api/api_timer.h"

#include "api/api_queue.h"
#include "api/auth.h"
#include "api/durable.h"
#include "net/service.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "engine/cron.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "journal/journal.h"
#include "core/log.h"
#include "engine/queue.h"
#include "net/server.h"
#include "svc/store.h"
#include "engine/task.h"
#include "journal/task_journal.h"
#include "core/list.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 1000   /* GET /timers limit= upper bound */
#define FIRE_TRANSIENT 2 /* fire(): out of memory, skip this tick only */

struct treq;

/* Lateness histogram bounds (us, inclusive): firing time minus the time the
 * tick was armed for. Printed in ms, so le="0.25" is 250 us. */
static const unsigned late_bounds[] = {100,   250,   500,   1000,   2000,  5000,
                                       10000, 20000, 50000, 100000, 1000000};
#define NLATE (sizeof late_bounds / sizeof late_bounds[0])

struct tsvc {
    struct server *srv;
    struct store *store;  /* the journal, shared with queues */
    struct qsvc *queues;  /* where a timer's action puts its payload */
    uint64_t late[NLATE + 1]; /* firings per lateness bucket; the last is over 1 s */
    uint64_t late_sum_us;
    struct task_engine *eng;
    struct store *st;     /* NULL while replaying */
    struct treq *waiting; /* awaits in progress (doubly linked) */
    uint64_t replayed;
};

/* An await (GET /timers/{id}?wait=S) in progress. */
struct treq {
    struct tsvc *svc;
    struct conn *c;
    struct task_waiter w;
    struct timer wait_t;
    struct treq *next, *prev;
};

/*
 * The action blob stored in each task: u8 queue length, queue name, u16
 * cron text length, cron text (for GET; empty for other kinds), payload.
 */
struct action {
    const char *queue;
    size_t queue_len;
    const char *cron;
    size_t cron_len;
    const char *payload;
    size_t len;
};

static int action_parse(const void *blob, size_t n, struct action *a) {
    const unsigned char *p = blob;
    if (n < 3)
        return -1;
    a->queue_len = p[0];
    if (n < 3 + a->queue_len)
        return -1;
    a->queue = (const char *)p + 1;
    a->cron_len = (size_t)p[1 + a->queue_len] | (size_t)p[2 + a->queue_len] << 8;
    size_t off = 3 + a->queue_len;
    if (n < off + a->cron_len)
        return -1;
    a->cron = (const char *)p + off;
    off += a->cron_len;
    a->payload = (const char *)p + off;
    a->len = n - off;
    return 0;
}

/* The offset the engine plans with (it ignores drift under wall_slack_ms):
 * rendering and journaling with the same one keeps "at 12:00" at 12:00. */
static int64_t wall_minus_wheel(const struct tsvc *svc) {
    if (svc->eng) {
        struct task_engine_stats es;
        task_engine_stats(svc->eng, &es);
        return es.wall_minus_wheel;
    }
    return (int64_t)clock_wall_ms() - (int64_t)svc->srv->wheel.now;
}

/* The real clock's offset, to keep the engine's current. */
static int64_t wall_minus_wheel_now(const struct tsvc *svc) {
    return (int64_t)clock_wall_ms() - (int64_t)svc->srv->wheel.now;
}

static enum handler_result fail(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum handler_result fail(struct conn *c, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_error(c, status, "%s", msg);
    return HANDLER_DONE;
}

/* ---- the engine's hooks ------------------------------------------------------------ */

/* The action: put the payload into the queue. */
static int on_fire(void *ctx, struct task *t, int64_t tick) {
    struct tsvc *svc = ctx;
    /* Loop lateness: the wheel's time inside a firing is the millisecond the
     * timer was armed for (jitter, retries and catch-ups included), the real
     * clock says when it actually ran. */
    int64_t late = (int64_t)clock_now_us() - (int64_t)svc->srv->wheel.now * 1000;
    if (late < 0)
        late = 0;
    size_t b = 0;
    while (b < NLATE && (uint64_t)late > late_bounds[b])
        b++;
    svc->late[b]++;
    svc->late_sum_us += (uint64_t)late;
    size_t n;
    const void *blob = task_action(t, &n);
    struct action a;
    struct queue_engine *qe = qsvc_engine(svc->queues);
    if (action_parse(blob, n, &a) < 0 || !qe)
        return QUEUE_ERR_INVALID;
    struct queue *q = queue_find(qe, a.queue, a.queue_len);
    if (!q)
        return QUEUE_ERR_NOTFOUND; /* permanent: the timer fails */
    struct queue_put put = {a.payload, a.len, 0, 0, NULL, 0};
    uint64_t id;
    int st = queue_put(q, &put, &id, NULL);
    if (st == QUEUE_OK)
        return TASK_FIRE_OK;
    if (st == QUEUE_ERR_FULL || st == QUEUE_ERR_MEMORY)
        return TASK_FIRE_FULL;
    if (st == QUEUE_ERR_NOMEM)
        return FIRE_TRANSIENT;
    return st; /* shut down, payload too big for the queue now, ...: permanent */
}

static void on_task_event(void *ctx, const struct task_event *ev) {
    struct tsvc *svc = ctx;
    if (!svc->st)
        return;
    if (tj_encode(store_batch(svc->st), ev, wall_minus_wheel(svc)) < 0) {
        log_error("journal: out of memory encoding a timer record; it is lost");
        return;
    }
    store_added(svc->st);
}

/* ---- JSON ------------------------------------------------------------------------ */

static const char *const state_names[] = {"scheduled", "completed", "cancelled", "failed"};
static const char *const kind_names[] = {"after", "at", "every", "cron"};

static const char *error_text(int e) {
    if (e == 0)
        return NULL;
    if (e == TASK_FIRE_FULL)
        return "queue full";
    if (e == FIRE_TRANSIENT)
        return "out of memory";
    if (e == QUEUE_ERR_NOTFOUND)
        return "queue not found";
    return queue_strerror(e);
}

static int append_time(struct buf *b, const struct tsvc *svc, int64_t wheel_ms) {
    char t[40];
    cron_format_rfc3339(wheel_ms + wall_minus_wheel(svc), t);
    return buf_appendf(b, "\"%s\"", t);
}

static int timer_json(struct buf *b, const struct tsvc *svc, const struct task *t) {
    struct task_info i;
    struct action a;
    task_info(t, &i);
    if (action_parse(i.action, i.action_len, &a) < 0)
        memset(&a, 0, sizeof a);
    int r = buf_appendf(b, "{\"id\": %" PRIu64 ", \"state\": \"%s\", \"kind\": \"%s\", \"queue\": ",
                        i.id, state_names[i.state], kind_names[i.kind]);
    r |= buf_append_json_str(b, a.queue ? a.queue : "", a.queue_len);
    r |= buf_appendf(b, ", \"fires\": %u, \"skips\": %u, \"count\": %u", i.fires, i.skips, i.count);
    if (i.kind == TASK_EVERY)
        r |= buf_appendf(b, ", \"every\": %.3f", (double)i.every_ms / 1000.0);
    if (i.kind == TASK_CRON) {
        r |= buf_appends(b, ", \"cron\": ");
        r |= buf_append_json_str(b, a.cron ? a.cron : "", a.cron_len);
    }
    if (i.kind == TASK_EVERY || i.kind == TASK_CRON)
        r |= buf_appendf(b, ", \"jitter\": %.3f", i.jitter_ms / 1000.0);
    r |= buf_appends(b, ", \"next_fire\": ");
    r |= i.state == TASK_SCHEDULED ? append_time(b, svc, i.fire_at) : buf_appends(b, "null");
    r |= buf_appends(b, ", \"finished\": ");
    r |= i.state != TASK_SCHEDULED ? append_time(b, svc, i.finished) : buf_appends(b, "null");
    r |= buf_appendf(b, ", \"on_full\": \"%s\", \"on_missed\": \"%s\", \"retrying\": %s",
                     i.full_policy == TASK_FULL_RETRY ? "retry" : "skip",
                     i.missed_policy == TASK_MISSED_SKIP ? "skip" : "fire_once",
                     i.retrying ? "true" : "false");
    const char *err = error_text(i.last_error);
    r |= buf_appends(b, ", \"last_error\": ");
    r |= err ? buf_append_json_str(b, err, strlen(err)) : buf_appends(b, "null");
    r |= buf_appends(b, "}");
    return r;
}

/* ---- POST /timers ------------------------------------------------------------------- */

/* A non-negative number of seconds from JSON -> ms; -1 if not one. */
static int64_t json_seconds(json_t *v) {
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!isfinite(d) || d < 0 || d > 1e9)
        return -1;
    return (int64_t)ceil(d * 1000.0);
}

static enum handler_result do_create(struct conn *c, struct tsvc *svc, const char *body,
                                     size_t len) {
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return fail(c, 400, "the body must be a JSON object: %s", o ? "not an object" : jerr.text);
    }
    struct task_spec spec;
    memset(&spec, 0, sizeof spec);
    const char *queue = NULL, *payload = "", *cron_text = "", *key;
    size_t payload_len = 0;
    int schedules = 0;
    json_t *v;
    char err[256] = "";
    json_object_foreach(o, key, v) {
        if (strcmp(key, "queue") == 0 && json_is_string(v)) {
            queue = json_string_value(v);
        } else if (strcmp(key, "payload") == 0 && json_is_string(v)) {
            payload = json_string_value(v);
            payload_len = json_string_length(v);
        } else if (strcmp(key, "after") == 0 && json_seconds(v) >= 0) {
            spec.kind = TASK_ONCE;
            spec.at = (int64_t)svc->srv->wheel.now + json_seconds(v);
            schedules++;
        } else if (strcmp(key, "at") == 0 && json_is_string(v)) {
            spec.kind = TASK_AT;
            if (cron_parse_rfc3339(json_string_value(v), json_string_length(v), &spec.at) < 0) {
                snprintf(err, sizeof err, "at: expected an RFC 3339 time such as "
                                          "2026-01-31T12:00:00Z");
                break;
            }
            schedules++;
        } else if (strcmp(key, "every") == 0 && json_seconds(v) > 0) {
            spec.kind = TASK_EVERY;
            spec.every_ms = (uint64_t)json_seconds(v);
            schedules++;
        } else if (strcmp(key, "cron") == 0 && json_is_string(v)) {
            spec.kind = TASK_CRON;
            cron_text = json_string_value(v);
            char cerr[200];
            if (cron_parse(&spec.cron, cron_text, strlen(cron_text), cerr, sizeof cerr) < 0) {
                snprintf(err, sizeof err, "cron: %s", cerr);
                break;
            }
            schedules++;
        } else if (strcmp(key, "count") == 0 && json_is_integer(v) && json_integer_value(v) >= 1 &&
                   json_integer_value(v) <= UINT32_MAX) {
            spec.count = (uint32_t)json_integer_value(v);
        } else if (strcmp(key, "jitter") == 0 && json_seconds(v) >= 0 &&
                   json_seconds(v) <= TASK_JITTER_MAX_MS) {
            spec.jitter_ms = (uint32_t)json_seconds(v);
        } else if (strcmp(key, "on_full") == 0 && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "skip") || !strcmp(json_string_value(v), "retry"))) {
            spec.full_policy = strcmp(json_string_value(v), "retry") == 0 ? TASK_FULL_RETRY
                                                                           : TASK_FULL_SKIP;
        } else if (strcmp(key, "on_missed") == 0 && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "skip") ||
                    !strcmp(json_string_value(v), "fire_once"))) {
            spec.missed_policy = strcmp(json_string_value(v), "skip") == 0 ? TASK_MISSED_SKIP
                                                                           : TASK_MISSED_FIRE_ONCE;
        } else {
            static const char *const known[] = {"queue", "payload", "after", "at", "every", "cron",
                                                "count", "jitter", "on_full", "on_missed"};
            int is_known = 0;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                is_known |= strcmp(key, known[k]) == 0;
            static const char *const expect[] = {
                "a queue name", "a string", "a number of seconds >= 0",
                "an RFC 3339 time such as 2026-01-31T12:00:00Z", "a number of seconds > 0",
                "a 5-field crontab(5) expression", "a whole number >= 1",
                "a number of seconds, at most one day", "\"skip\" or \"retry\"",
                "\"fire_once\" or \"skip\""};
            size_t k = 0;
            while (k < sizeof known / sizeof known[0] && strcmp(key, known[k]) != 0)
                k++;
            if (is_known)
                snprintf(err, sizeof err, "%s: expected %s", key, expect[k]);
            else
                snprintf(err, sizeof err, "%.64s: unknown field", key);
            break;
        }
    }
    if (!err[0] && !queue)
        snprintf(err, sizeof err, "queue: required (the queue the timer puts its payload into)");
    if (!err[0] && schedules != 1)
        snprintf(err, sizeof err, "schedule: give exactly one of after, at, every, cron");
    if (!err[0] && (spec.kind == TASK_ONCE || spec.kind == TASK_AT) && (spec.count || spec.jitter_ms))
        snprintf(err, sizeof err, "count and jitter: only for every and cron timers");
    struct queue_engine *qe = qsvc_engine(svc->queues);
    size_t qlen = queue ? strlen(queue) : 0;
    if (!err[0] && (!qe || !queue_find(qe, queue, qlen)))
        snprintf(err, sizeof err, "queue: no queue named '%.64s' (create it first)", queue);
    if (!err[0] && payload_len > queue_settings_of(queue_find(qe, queue, qlen))->max_payload)
        snprintf(err, sizeof err, "payload: %zu bytes is over the queue's max_payload", payload_len);
    if (err[0]) {
        json_decref(o);
        return fail(c, 400, "%s", err);
    }
    /* The action blob: queue, cron text, payload. */
    size_t cl = strlen(cron_text);
    struct buf blob = BUF_INIT;
    unsigned char hdr[2] = {(unsigned char)cl, (unsigned char)(cl >> 8)};
    unsigned char ql = (unsigned char)qlen;
    int r = buf_append(&blob, &ql, 1) | buf_append(&blob, queue, qlen) | buf_append(&blob, hdr, 2) |
            buf_append(&blob, cron_text, cl) | buf_append(&blob, payload, payload_len);
    json_decref(o);
    if (r) {
        buf_free(&blob);
        return fail(c, 503, "out of memory");
    }
    spec.action = buf_start(&blob);
    spec.action_len = blob.len;
    const char *why = task_spec_error(svc->eng, &spec);
    if (why) {
        buf_free(&blob);
        return fail(c, 400, "%s", why);
    }
    if (durable_ready(svc->store, c) < 0) {
        buf_free(&blob);
        return HANDLER_DONE;
    }
    struct task *t;
    int st = task_create(svc->eng, &spec, &t);
    buf_free(&blob);
    if (st != TASK_OK)
        return fail(c, st == TASK_ERR_LIMIT || st == TASK_ERR_NOMEM ? 503 : 400, "%s",
                    task_strerror(st));
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    timer_json(b, svc, t);
    buf_append(b, "\n", 1);
    char extra[80];
    snprintf(extra, sizeof extra, "Location: /timers/%" PRIu64 "\r\n", task_id(t));
    enum handler_result hr = durable_reply(svc->store, c, 201, CT_JSON, extra, buf_start(b), b->len);
    buf_reset(b);
    return hr;
}

/* ---- GET, await, DELETE ----------------------------------------------------------------- */

static void treq_unlink(struct treq *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        r->svc->waiting = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

static void treq_free(struct treq *r) {
    timer_cancel(&r->svc->srv->wheel, &r->wait_t);
    treq_unlink(r);
    free(r);
}

static void treq_cancel(void *arg) {
    struct treq *r = arg;
    task_waiter_cancel(&r->w);
    treq_free(r);
}

static void reply_timer(struct conn *c, struct tsvc *svc, const struct task *t, int status) {
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    timer_json(b, svc, t);
    buf_append(b, "\n", 1);
    reply(c, status, CT_JSON, NULL, buf_start(b), b->len);
    buf_reset(b);
}

static void on_await_wake(struct task_waiter *w, int status) {
    struct treq *r = w->arg;
    struct conn *c = r->c;
    struct tsvc *svc = r->svc;
    if (status == TASK_ERR_DELETED)
        reply_error(c, 503, "the server is shutting down");
    else
        reply_timer(c, svc, w->task, 200);
    treq_free(r);
    conn_done(c);
}

static void on_await_timeout(struct timer *t) {
    struct treq *r = container_of(t, struct treq, wait_t);
    struct conn *c = r->c;
    task_waiter_cancel(&r->w);
    treq_free(r);
    reply(c, 204, NULL, NULL, "", 0);
    conn_done(c);
}

static enum handler_result do_get(struct conn *c, struct tsvc *svc, struct task *t,
                                  const struct http_request *req) {
    size_t n;
    const char *v = http_query_get(req, "wait", &n);
    int64_t wait_ms = 0;
    if (v && (wait_ms = http_parse_seconds_ms(v, n)) < 0)
        return fail(c, 400, "wait: a non-negative number of seconds");
    if (wait_ms == 0 || task_state(t) != TASK_SCHEDULED) {
        reply_timer(c, svc, t, 200);
        return HANDLER_DONE;
    }
    if ((uint64_t)wait_ms > svc->srv->cfg->queue_max_wait_ms)
        wait_ms = (int64_t)svc->srv->cfg->queue_max_wait_ms;
    struct treq *r = calloc(1, sizeof *r);
    if (!r)
        return fail(c, 503, "out of memory");
    r->svc = svc;
    r->c = c;
    task_waiter_init(&r->w, on_await_wake, r);
    if (task_await(t, &r->w) != TASK_WAIT) {
        free(r);
        reply_timer(c, svc, t, 200);
        return HANDLER_DONE;
    }
    r->next = svc->waiting;
    if (svc->waiting)
        svc->waiting->prev = r;
    svc->waiting = r;
    timer_init(&r->wait_t, on_await_timeout);
    server_timer_in(svc->srv, &r->wait_t, (uint64_t)wait_ms);
    conn_pending(c, treq_cancel, r);
    return HANDLER_PENDING;
}

static enum handler_result do_delete(struct conn *c, struct tsvc *svc, struct task *t) {
    if (durable_ready(svc->store, c) < 0)
        return HANDLER_DONE;
    int was = task_cancel(t); /* asyncio's cancel(): False when already finished */
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    buf_appendf(b, "{\"cancelled\": %s, \"timer\": ", was ? "true" : "false");
    timer_json(b, svc, t);
    buf_appends(b, "}\n");
    enum handler_result hr = durable_reply(svc->store, c, 200, CT_JSON, NULL, buf_start(b), b->len);
    buf_reset(b);
    return hr;
}

static enum handler_result do_list(struct conn *c, struct tsvc *svc,
                                   const struct http_request *req) {
    size_t n;
    const char *v;
    int64_t after = 0, limit = 100;
    if ((v = http_query_get(req, "after", &n)) && (after = http_parse_uint(v, n, TASK_ID_MAX)) < 0)
        return fail(c, 400, "after: a timer id");
    if ((v = http_query_get(req, "limit", &n)) &&
        ((limit = http_parse_uint(v, n, LIST_MAX)) < 1))
        return fail(c, 400, "limit: a whole number from 1 to %d", LIST_MAX);
    struct task **ts = malloc((size_t)limit * sizeof *ts);
    if (!ts)
        return fail(c, 503, "out of memory");
    size_t got = task_list(svc->eng, (uint64_t)after, ts, (size_t)limit);
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    buf_appends(b, "{\"timers\": [");
    for (size_t i = 0; i < got; i++) {
        if (i)
            buf_appends(b, ", ");
        timer_json(b, svc, ts[i]);
    }
    buf_appends(b, "], \"next_after\": ");
    if (got == (size_t)limit)
        buf_appendf(b, "%" PRIu64, task_id(ts[got - 1]));
    else
        buf_appends(b, "null");
    buf_appends(b, "}\n");
    free(ts);
    reply(c, 200, CT_JSON, NULL, buf_start(b), b->len);
    buf_reset(b);
    return HANDLER_DONE;
}

enum handler_result api_timers(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len) {
    struct server *s = c->srv;
    struct tsvc *svc = ctx;
    if (!api_authorized(c, req))
        return HANDLER_DONE;
    server_wheel_catch_up(s);
    task_engine_set_wall_offset(svc->eng, wall_minus_wheel_now(svc));
    const char *p = req->path + 7, *end = req->path + req->path_len; /* after "/timers" */
    int m = req->method;
    if (p >= end || (p + 1 == end && *p == '/')) {
        if (m == HTTP_M_POST)
            return do_create(c, svc, body, body_len);
        if (m == HTTP_M_GET || m == HTTP_M_HEAD)
            return do_list(c, svc, req);
        return fail(c, 405, "POST /timers creates a timer, GET lists them");
    }
    if (*p != '/')
        return fail(c, 404, "no such endpoint: %.*s", (int)req->path_len, req->path);
    int64_t id = http_parse_uint(p + 1, (size_t)(end - p - 1), TASK_ID_MAX);
    if (id < 1)
        return fail(c, 400, "timer ids are whole numbers");
    struct task *t = task_find(svc->eng, (uint64_t)id);
    if (!t)
        return fail(c, 404, "no timer %" PRId64, id);
    if (m == HTTP_M_GET || m == HTTP_M_HEAD)
        return do_get(c, svc, t, req);
    if (m == HTTP_M_DELETE)
        return do_delete(c, svc, t);
    return fail(c, 405, "GET or DELETE a timer");
}

/* ---- the store's client ------------------------------------------------------------------ */

static int replay_record(void *arg, uint8_t type, const char *payload, size_t len, uint64_t off) {
    struct tsvc *svc = arg;
    uint64_t id;
    if (type == TJ_TYPE_NEXT_ID && store_decode_u64(payload, len, &id) == 0) {
        task_engine_set_next_id(svc->eng, id);
        svc->replayed++;
        return 1;
    }
    if (type < TJ_TYPE_BASE || type > TJ_TYPE_LAST)
        return 0;
    struct task_event ev;
    struct task_spec spec;
    if (tj_decode(type, payload, len, wall_minus_wheel(svc), &ev, &spec) < 0) {
        log_error("journal: timer record at offset %" PRIu64 " is malformed", off);
        return -1;
    }
    int st = task_engine_replay(svc->eng, &ev);
    if (st != TASK_OK && st != TASK_ERR_NOTFOUND && st != TASK_ERR_EXISTS) {
        log_error("journal: timer record at offset %" PRIu64 " cannot be applied: %s", off,
                  task_strerror(st));
        return -1;
    }
    svc->replayed++;
    return 1;
}

/* Every task as CREATE (with its counters and pending tick) + its final event. */
static int snapshot(void *arg, struct buf *out) {
    struct tsvc *svc = arg;
    int64_t off = wall_minus_wheel(svc);
    uint64_t after = 0;
    struct task *ts[256];
    size_t got;
    while ((got = task_list(svc->eng, after, ts, 256)) > 0) {
        for (size_t k = 0; k < got; k++) {
            struct task_info i;
            task_info(ts[k], &i);
            struct task_spec spec = {.kind = i.kind,
                                     .every_ms = i.every_ms,
                                     .count = i.count,
                                     .jitter_ms = i.jitter_ms,
                                     .full_policy = i.full_policy,
                                     .missed_policy = i.missed_policy,
                                     .action = i.action,
                                     .action_len = i.action_len};
            if (i.cron)
                spec.cron = *i.cron;
            struct task_event ev = {.type = TASK_EV_CREATE,
                                    .id = i.id,
                                    .now = (int64_t)svc->srv->wheel.now,
                                    .tick = i.state == TASK_SCHEDULED ? i.tick : i.finished,
                                    .fires = i.fires,
                                    .skips = i.skips,
                                    .last_error = i.last_error,
                                    .spec = &spec};
            if (tj_encode(out, &ev, off) < 0)
                return -1;
            if (i.state != TASK_SCHEDULED) {
                ev.type = i.state == TASK_CANCELLED   ? TASK_EV_CANCEL
                          : i.state == TASK_COMPLETED ? TASK_EV_COMPLETE
                                                      : TASK_EV_FAIL;
                ev.now = i.finished;
                ev.spec = NULL;
                if (tj_encode(out, &ev, off) < 0)
                    return -1;
            }
            after = i.id;
        }
        if (got < 256)
            break;
    }
    struct task_engine_stats es;
    task_engine_stats(svc->eng, &es);
    return store_encode_u64(out, TJ_TYPE_NEXT_ID, es.next_id);
}

static uint64_t live_bytes(void *arg) {
    struct tsvc *svc = arg;
    struct task_engine_stats es;
    task_engine_stats(svc->eng, &es);
    return (uint64_t)es.tasks * 160; /* about a record per task */
}

struct tsvc *tsvc_new(struct server *s, struct store *store, struct qsvc *queues) {
    struct tsvc *svc = calloc(1, sizeof *svc);
    if (!svc)
        return NULL;
    svc->srv = s;
    svc->store = store;
    svc->queues = queues;
    struct task_engine_config cfg;
    task_engine_config_default(&cfg);
    cfg.fire = on_fire;
    cfg.fire_ctx = svc;
    cfg.on_event = on_task_event;
    cfg.event_ctx = svc;
    cfg.max_action = 3 + 255 + 65535 + 64 * 1024 * 1024;
    cfg.wall_minus_wheel = wall_minus_wheel_now(svc);
    cfg.seed = clock_wall_ms() ^ (uint64_t)(uintptr_t)svc;
    svc->eng = task_engine_new(&s->wheel, &cfg);
    struct store_client client = {replay_record, snapshot, live_bytes, svc};
    if (!svc->eng || store_add_client(store, &client) < 0) {
        log_error("out of memory creating the timer engine");
        task_engine_free(svc->eng);
        free(svc);
        return NULL;
    }
    return svc;
}

static int tsvc_start(void *ctx) {
    struct tsvc *svc = ctx;
    svc->st = svc->store;
    task_engine_set_wall_offset(svc->eng, wall_minus_wheel_now(svc));
    size_t armed = task_engine_resume(svc->eng);
    struct task_engine_stats es;
    task_engine_stats(svc->eng, &es);
    log_info("timers: %zu after replay, %zu scheduled", es.tasks, armed);
    return 0;
}

static void tsvc_drain(void *ctx) {
    struct tsvc *svc = ctx;
    while (svc->waiting) {
        struct treq *r = svc->waiting;
        struct conn *c = r->c;
        task_waiter_cancel(&r->w);
        treq_free(r);
        reply_error(c, 503, "the server is shutting down");
        conn_done(c);
    }
}

static void tsvc_close(void *ctx) {
    struct tsvc *svc = ctx;
    svc->st = NULL;
    task_engine_free(svc->eng);
    free(svc);
}

static int tsvc_metrics(void *ctx, struct buf *o) {
    struct tsvc *svc = ctx;
    struct task_engine_stats es;
    task_engine_stats(svc->eng, &es);
    int r = buf_appends(o, "# TYPE awaitd_timers gauge\n");
    for (int i = 0; i < 4; i++)
        r |= buf_appendf(o, "awaitd_timers{state=\"%s\"} %zu\n", state_names[i], es.by_state[i]);
    /* Prometheus histogram of firing lateness, in ms (le is inclusive, as ours). */
    r |= buf_appends(o, "# HELP awaitd_timer_lateness_ms Firing time minus the scheduled time.\n"
                        "# TYPE awaitd_timer_lateness_ms histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < NLATE; i++) {
        cum += svc->late[i];
        r |= buf_appendf(o, "awaitd_timer_lateness_ms_bucket{le=\"%g\"} %" PRIu64 "\n",
                         late_bounds[i] / 1000.0, cum);
    }
    cum += svc->late[NLATE];
    r |= buf_appendf(o,
                     "awaitd_timer_lateness_ms_bucket{le=\"+Inf\"} %" PRIu64
                     "\nawaitd_timer_lateness_ms_sum %.3f\nawaitd_timer_lateness_ms_count %" PRIu64
                     "\n",
                     cum, (double)svc->late_sum_us / 1000.0, cum);
    r |= buf_appendf(o,
                     "# TYPE awaitd_timer_fires_total counter\nawaitd_timer_fires_total %" PRIu64
                     "\n# TYPE awaitd_timer_skips_total counter\nawaitd_timer_skips_total %" PRIu64
                     "\n",
                     es.total_fires, es.total_skips);
    return r ? -1 : 0;
}

const struct service_ops tsvc_service = {
    .name = "timers",
    .start = tsvc_start,
    .drain = tsvc_drain,
    .close = tsvc_close,
    .metrics = tsvc_metrics,
};
