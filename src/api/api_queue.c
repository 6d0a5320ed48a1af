#include "api/api_queue.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "journal/journal.h"
#include "core/log.h"
#include "engine/queue.h"
#include "journal/queue_journal.h"
#include "journal/records.h"
#include "net/server.h"
#include "svc/store.h"
#include "api/auth.h"
#include "api/durable.h"
#include "net/service.h"
#include "core/list.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 100 /* reserve count= upper bound */
#define CT_FRAMES "application/x-awaitd-frames"

struct qreq;

struct qsvc {
    struct server *srv;
    struct queue_engine *eng;
    struct store *store;    /* the journal (store.c), shared with timers */
    struct store *st;       /* = store once started; NULL while replaying */
    struct qj_clock clk;    /* wheel -> wall clock for records */
    struct qreq *waiting;   /* requests in a blocking wait (doubly linked) */
    struct qreq *purging;   /* purges waiting for the reaper (doubly linked) */
    struct event *reap_ev;  /* runs a reaper slice per loop turn while there is work */
    uint64_t replayed;      /* records replayed at start */
};

enum qreq_kind { QR_GET, QR_PUT, QR_JOIN, QR_PURGE };

/* Jobs the reaper handles per loop turn (~0.1 ms of work; see queue.h). */
#define REAP_SLICE 1024

/* A /queues request in a blocking wait (reserve, put or join with wait=). */
struct qreq {
    struct qsvc *svc;
    struct conn *c;
    int kind;
    struct qreq *dnext, *dprev; /* the waiting list */
    int listed;                 /* 2 on the waiting list, 3 on the purging list */
    struct queue_waiter w;
    struct timer wait_t;
    char qname[QUEUE_NAME_MAX + 1];
    struct queue_job_info jobs[]; /* QR_GET: count entries; QR_PUT: payload copy follows */
};

/* ---- helpers --------------------------------------------------------------------- */

static void clock_refresh(struct qsvc *svc) {
    svc->clk.wall_minus_wheel = (int64_t)clock_wall_ms() - (int64_t)svc->srv->wheel.now;
}

/* Wheel time -> unix seconds with milliseconds, for headers and JSON. */
static double wall_seconds(struct qsvc *svc, uint64_t wheel_t) {
    return (double)((int64_t)wheel_t + svc->clk.wall_minus_wheel) / 1000.0;
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

static int engine_status_http(int st) {
    switch (st) {
    case QUEUE_ERR_NOMEM: return 503;
    case QUEUE_ERR_FULL: return 503;
    case QUEUE_ERR_MEMORY: return 503;
    case QUEUE_ERR_NOTFOUND: return 404;
    case QUEUE_ERR_EXISTS: return 409;
    case QUEUE_ERR_INVALID: return 400;
    case QUEUE_ERR_TOOBIG: return 413;
    case QUEUE_ERR_STATE: return 409;
    case QUEUE_ERR_SHUTDOWN: return 410;
    case QUEUE_ERR_DELETED: return 410;
    default: return 500;
    }
}

/* Seconds (fractions allowed) -> ms. 1 ok (or absent: *ms untouched), -1 bad. */
static int param_seconds(const struct http_request *req, const char *key, uint64_t *ms) {
    size_t n;
    const char *v = http_query_get(req, key, &n);
    if (!v)
        return 1;
    int64_t x = http_parse_seconds_ms(v, n);
    if (x < 0)
        return -1;
    *ms = (uint64_t)x;
    return 1;
}

/* A whole number (optionally negative when allow_neg) -> *out. 1 ok/absent, -1 bad. */
static int param_int(const struct http_request *req, const char *key, int64_t lo, int64_t hi,
                     int64_t *out) {
    size_t n;
    const char *v = http_query_get(req, key, &n);
    if (!v)
        return 1;
    char tmp[24];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long long x = strtoll(tmp, &end, 10);
    if (*end || errno || !(isdigit((unsigned char)tmp[0]) || tmp[0] == '-') || x < lo || x > hi)
        return -1;
    *out = x;
    return 1;
}

static int name_valid(const char *s, size_t n) {
    if (n == 0 || n > QUEUE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return 0;
    return 1;
}

/* ---- journal glue --------------------------------------------------------------- */

static void on_engine_event(void *ctx, const struct queue_event *ev) {
    struct qsvc *svc = ctx;
    if (!svc->st)
        return; /* replaying */
    if (qj_encode(store_batch(svc->st), ev, &svc->clk) < 0) {
        log_error("journal: out of memory encoding a record; it is lost");
        return;
    }
    store_added(svc->st);
}

static void qreq_free(struct qreq *r) {
    timer_cancel(&r->svc->srv->wheel, &r->wait_t);
    free(r);
}

static void qreq_unlink(struct qreq *r) {
    struct qsvc *svc = r->svc;
    if (r->listed >= 2) {
        if (r->dprev)
            r->dprev->dnext = r->dnext;
        else if (r->listed == 2)
            svc->waiting = r->dnext;
        else
            svc->purging = r->dnext;
        if (r->dnext)
            r->dnext->dprev = r->dprev;
    }
    r->listed = 0;
    r->dnext = r->dprev = NULL;
}

/* The client left: drop the wait (O(1)). */
static void qreq_cancel(void *arg) {
    struct qreq *r = arg;
    if (r->listed == 2)
        queue_waiter_cancel(&r->w);
    qreq_unlink(r);
    qreq_free(r);
}

static struct qreq *qreq_new(struct qsvc *svc, struct conn *c, size_t extra_bytes) {
    struct qreq *r = calloc(1, sizeof *r + extra_bytes);
    if (!r)
        return NULL;
    r->svc = svc;
    r->c = c;
    timer_init(&r->wait_t, NULL);
    return r;
}

/* Answer now, or once this turn's records are durable (fsync always/batch). */
static enum handler_result answer_durable(struct conn *c, struct qsvc *svc, int status,
                                          const char *extra, const struct buf *body) {
    return durable_reply(svc->store, c, status, CT_JSON, extra, buf_start(body), body->len);
}

#define journal_ready(c, svc) durable_ready((svc)->store, (c))

/* ---- waits ------------------------------------------------------------------------ */

static void qreq_link(struct qreq *r, struct qreq **head, int which) {
    r->listed = which;
    r->dprev = NULL;
    r->dnext = *head;
    if (*head)
        (*head)->dprev = r;
    *head = r;
}

static void waiting_link(struct qreq *r) {
    qreq_link(r, &r->svc->waiting, 2);
}

/* ---- the reaper --------------------------------------------------------------------- */

/*
 * Purge, immediate shutdown, dead-letter purge and delete return at once;
 * the engine's reaper emits the DROP records and frees the jobs a slice
 * per loop turn (a zero timeout: one slice, then the loop polls again).
 * A purge is answered when its queue's grave is empty and the records are
 * durable, so a 200 means a restart will not bring the jobs back.
 */
static void reap_kick(struct qsvc *svc) {
    static const struct timeval now = {0, 0};
    if (svc->reap_ev && !evtimer_pending(svc->reap_ev, NULL))
        evtimer_add(svc->reap_ev, &now);
}

/* Answer the purges whose queue has nothing left to reap. */
static void purges_answer(struct qsvc *svc) {
    struct qreq *r = svc->purging, *next;
    for (; r; r = next) {
        next = r->dnext;
        struct queue *q = queue_find(svc->eng, r->qname, strlen(r->qname));
        struct queue_stats st;
        if (q) {
            queue_stats(q, &st);
            if (st.reaping)
                continue;
        }
        struct conn *c = r->c;
        qreq_unlink(r);
        const char *body = (const char *)r->jobs;
        enum handler_result hr = durable_reply(svc->store, c, 200, CT_JSON, NULL, body, strlen(body));
        qreq_free(r);
        if (hr == HANDLER_DONE)
            conn_done(c);
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg) {
    struct qsvc *svc = arg;
    (void)fd;
    (void)what;
    size_t left = queue_engine_reap(svc->eng, REAP_SLICE);
    if (svc->purging)
        purges_answer(svc);
    if (left)
        reap_kick(svc);
}

/* Answer the bulk operation's body now, or once the reaper is done with q. */
static enum handler_result answer_reaped(struct conn *c, struct qsvc *svc, struct queue *q,
                                         const struct buf *body) {
    struct queue_stats st;
    queue_stats(q, &st);
    if (!st.reaping)
        return durable_reply(svc->store, c, 200, CT_JSON, NULL, buf_start(body), body->len);
    reap_kick(svc);
    struct qreq *r = qreq_new(svc, c, body->len + 1);
    if (!r) {
        c->keep_alive = 0;
        return fail(c, 500, "out of memory");
    }
    r->kind = QR_PURGE;
    size_t nl;
    const char *name = queue_name(q, &nl);
    memcpy(r->qname, name, nl);
    memcpy(r->jobs, buf_start(body), body->len);
    ((char *)r->jobs)[body->len] = '\0';
    qreq_link(r, &svc->purging, 3);
    conn_pending(c, qreq_cancel, r);
    return HANDLER_PENDING;
}

static void render_jobs(struct conn *c, struct qsvc *svc, const struct queue_job_info *jobs,
                        unsigned n, int framed) {
    char extra[256];
    if (!framed) {
        const struct queue_job_info *j = &jobs[0];
        snprintf(extra, sizeof extra,
                 "Job-Id: %" PRIu64 "\r\nJob-Attempt: %u\r\nJob-Priority: %d\r\n"
                 "Lease-Deadline: %.3f\r\n",
                 j->id, j->attempt, j->priority, wall_seconds(svc, j->deadline));
        reply(c, 200, CT_OCTETS, extra, j->payload, j->len);
        return;
    }
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    int r = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct queue_job_info *j = &jobs[i];
        r |= buf_appendf(b, "%" PRIu64 " %u %d %.3f %zu\n", j->id, j->attempt, j->priority,
                         wall_seconds(svc, j->deadline), j->len);
        r |= buf_append(b, j->payload, j->len);
        r |= buf_append(b, "\n", 1);
    }
    snprintf(extra, sizeof extra, "Job-Count: %u\r\n", n);
    if (r) {
        buf_reset(b);
        /* The jobs stay leased and come back when the lease ends. */
        reply_error(c, 500, "out of memory");
        return;
    }
    reply(c, 200, CT_FRAMES, extra, buf_start(b), b->len);
    buf_reset(b);
}

static int wake_error_status(int status) {
    return status == QUEUE_ERR_SHUTDOWN || status == QUEUE_ERR_DELETED ? 410
                                                                       : engine_status_http(status);
}

static void on_wake(struct queue_waiter *w, int status) {
    struct qreq *r = w->arg;
    struct qsvc *svc = r->svc;
    struct conn *c = r->c;
    qreq_unlink(r);
    timer_cancel(&svc->srv->wheel, &r->wait_t);
    if (status != QUEUE_OK) {
        reply_error(c, wake_error_status(status), "queue %s: %s", r->qname,
                    queue_strerror(status));
    } else if (r->kind == QR_GET) {
        render_jobs(c, svc, w->jobs, w->njobs, w->count > 1);
    } else if (r->kind == QR_JOIN) {
        reply(c, 200, CT_JSON, NULL, "{\"unfinished\": 0}\n", 18);
    } else { /* QR_PUT: done by the engine in arrival order */
        char body[96], extra[192];
        int n = snprintf(body, sizeof body, "{\"id\": %" PRIu64 "%s}\n", w->id,
                         w->duplicate ? ", \"duplicate\": true" : "");
        snprintf(extra, sizeof extra,
                 "Location: /queues/%s/jobs/%" PRIu64 "\r\nJob-Id: %" PRIu64 "\r\n", r->qname,
                 w->id, w->id);
        int code = w->duplicate ? 200 : 201;
        qreq_free(r); /* w is gone from here */
        /* The put's record is in this turn's batch: the 201 may have to wait for it. */
        if (durable_reply(svc->store, c, code, CT_JSON, extra, body, (size_t)n) ==
            HANDLER_PENDING)
            return;
        conn_done(c);
        return;
    }
    qreq_free(r);
    conn_done(c);
}

static void on_wait_timeout(struct timer *t) {
    struct qreq *r = container_of(t, struct qreq, wait_t);
    struct conn *c = r->c;
    queue_waiter_cancel(&r->w);
    qreq_unlink(r);
    if (r->kind == QR_PUT)
        reply_error_hdr(c, 503, "Retry-After: 1\r\n", "queue %s is full", r->qname);
    else
        reply(c, 204, NULL, NULL, "", 0);
    qreq_free(r);
    conn_done(c);
}

/* Start a blocking wait already set up in r->w. */
static enum handler_result wait_begin(struct conn *c, struct qreq *r, uint64_t wait_ms) {
    timer_init(&r->wait_t, on_wait_timeout);
    server_timer_in(r->svc->srv, &r->wait_t, wait_ms);
    waiting_link(r);
    conn_pending(c, qreq_cancel, r);
    return HANDLER_PENDING;
}

static uint64_t clamp_wait(struct qsvc *svc, uint64_t ms) {
    uint64_t max = svc->srv->cfg->queue_max_wait_ms;
    return ms > max ? max : ms;
}

/* ---- JSON ------------------------------------------------------------------------- */

static int stats_json(struct buf *b, const struct queue *q) {
    struct queue_stats st;
    size_t nl;
    const char *name = queue_name(q, &nl);
    const struct queue_settings *set = queue_settings_of(q);
    queue_stats(q, &st);
    int r = buf_appends(b, "{\"name\": ");
    r |= buf_append_json_str(b, name, nl);
    r |= buf_appendf(b,
                     ", \"size\": %" PRIu64 ", \"maxsize\": %" PRIu64 ", \"reserved\": %" PRIu64
                     ", \"delayed\": %" PRIu64 ", \"dead\": %" PRIu64 ", \"unfinished\": %" PRIu64
                     ", \"putters\": %" PRIu64 ", \"getters\": %" PRIu64 ", \"joiners\": %" PRIu64
                     ", \"total_put\": %" PRIu64 ", \"total_acked\": %" PRIu64
                     ", \"total_redelivered\": %" PRIu64 ", \"total_dead\": %" PRIu64
                     ", \"shutdown\": %s, \"lease\": %.3f, \"max_attempts\": %u"
                     ", \"max_payload\": %u, \"key_window\": %.3f}",
                     st.size, st.maxsize, st.reserved, st.delayed, st.dead, st.unfinished,
                     st.putters, st.getters, st.joiners, st.total_put, st.total_acked,
                     st.total_redelivered, st.total_dead,
                     st.shutdown == 2 ? "\"immediate\"" : st.shutdown ? "true" : "false",
                     set->lease_ms / 1000.0, set->max_attempts, set->max_payload,
                     set->key_window_ms / 1000.0);
    return r;
}

/* Settings from a PUT /queues/{q} JSON body over the current ones. NULL or an error text. */
static const char *settings_from_json(const char *body, size_t len, struct queue_settings *s) {
    if (len == 0)
        return NULL;
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return "the body must be a JSON object of settings";
    }
    const char *key;
    json_t *v;
    const char *err = NULL;
    json_object_foreach(o, key, v) {
        if (!json_is_number(v) || json_number_value(v) < 0) {
            err = "settings must be non-negative numbers";
            break;
        }
        double d = json_number_value(v);
        if (strcmp(key, "maxsize") == 0 && d <= 1e12)
            s->maxsize = (uint64_t)d;
        else if (strcmp(key, "lease") == 0 && d > 0 && d <= 1e9)
            s->lease_ms = (uint64_t)ceil(d * 1000);
        else if (strcmp(key, "max_attempts") == 0 && d <= QUEUE_MAX_ATTEMPTS_MAX)
            s->max_attempts = (uint32_t)d;
        else if (strcmp(key, "max_payload") == 0 && d >= 1 && d <= 64.0 * 1024 * 1024)
            s->max_payload = (uint32_t)d;
        else if (strcmp(key, "key_window") == 0 && d > 0 && d <= 1e9)
            s->key_window_ms = (uint64_t)ceil(d * 1000);
        else {
            err = "unknown setting or value out of range (maxsize, lease, max_attempts, "
                  "max_payload, key_window)";
            break;
        }
    }
    json_decref(o);
    return err;
}

/* ---- handlers ---------------------------------------------------------------------- */

struct qpath {
    const char *name; /* queue name, or NULL for /queues */
    size_t name_len;
    const char *op;   /* what follows "/queues/{q}/", or NULL */
    size_t op_len;
    uint64_t id;      /* jobs/{id}[/verb] */
    const char *verb; /* ack, nack, touch, or NULL */
    size_t verb_len;
};

static int seg_is(const char *s, size_t n, const char *lit) {
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static struct queue *find_queue(struct conn *c, struct qsvc *svc, const struct qpath *p) {
    struct queue *q = queue_find(svc->eng, p->name, p->name_len);
    if (!q)
        reply_error(c, 404, "no such queue: %.*s", (int)p->name_len, p->name);
    return q;
}

static enum handler_result do_list(struct conn *c, struct qsvc *svc) {
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    int r = buf_appends(b, "{\"queues\": [");
    for (size_t i = 0; i < queue_count(svc->eng); i++) {
        if (i)
            r |= buf_appends(b, ", ");
        r |= stats_json(b, queue_at(svc->eng, i));
    }
    r |= buf_appends(b, "]}\n");
    if (r)
        return fail(c, 500, "out of memory");
    reply(c, 200, CT_JSON, NULL, buf_start(b), b->len);
    buf_reset(b);
    return HANDLER_DONE;
}

static enum handler_result do_create(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                     const char *body, size_t len) {
    struct queue *q = queue_find(svc->eng, p->name, p->name_len);
    struct queue_settings s;
    if (q)
        s = *queue_settings_of(q);
    else {
        queue_settings_default(&s);
        s.key_window_ms = svc->srv->cfg->queue_key_window_ms;
    }
    const char *err = settings_from_json(body, len, &s);
    if (err)
        return fail(c, 400, "%s", err);
    if (journal_ready(c, svc) < 0)
        return HANDLER_DONE;
    int created = q == NULL;
    int st = q ? queue_update(q, &s) : queue_create(svc->eng, p->name, p->name_len, &s, &q);
    if (st != QUEUE_OK)
        return fail(c, engine_status_http(st), "queue %.*s: %s", (int)p->name_len, p->name,
                    queue_strerror(st));
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    stats_json(b, q);
    buf_append(b, "\n", 1);
    enum handler_result hr = answer_durable(c, svc, created ? 201 : 200, NULL, b);
    buf_reset(b);
    return hr;
}

static enum handler_result do_delete(struct conn *c, struct qsvc *svc, struct queue *q,
                                     const struct qpath *p) {
    if (journal_ready(c, svc) < 0)
        return HANDLER_DONE;
    queue_delete(q);
    reap_kick(svc); /* the DELETE record covers the jobs: no need to wait for the reaper */
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    buf_appends(b, "{\"deleted\": ");
    buf_append_json_str(b, p->name, p->name_len);
    buf_appends(b, "}\n");
    enum handler_result hr = answer_durable(c, svc, 200, NULL, b);
    buf_reset(b);
    return hr;
}

/* Batch put body: frames "<len>\n<payload>\n". Checks framing and room first. */
static enum handler_result do_put_batch(struct conn *c, struct qsvc *svc, struct queue *q,
                                        const struct qpath *p, const struct queue_put *base,
                                        const char *body, size_t len) {
    struct queue_stats st;
    queue_stats(q, &st);
    size_t count = 0;
    for (size_t off = 0; off < len; count++) {
        const char *nl = memchr(body + off, '\n', len - off);
        char *end;
        if (!nl || nl == body + off || !isdigit((unsigned char)body[off]))
            return fail(c, 400, "batch frame %zu: expected \"<length>\\n<payload>\\n\"", count);
        unsigned long long n = strtoull(body + off, &end, 10);
        if (end != nl || n > len || (size_t)(nl + 1 - body) + n + 1 > len || nl[1 + n] != '\n')
            return fail(c, 400, "batch frame %zu: bad length or missing newline after it", count);
        if (n > queue_settings_of(q)->max_payload)
            return fail(c, 413, "batch frame %zu: payload of %llu bytes is over the queue's "
                        "max_payload of %u", count, n, queue_settings_of(q)->max_payload);
        off = (size_t)(nl + 1 - body) + (size_t)n + 1;
    }
    if (count == 0)
        return fail(c, 400, "empty batch");
    if (st.maxsize && st.size + st.delayed + count > st.maxsize)
        return fail(c, 503, "queue %.*s has room for %" PRIu64 " jobs, the batch has %zu",
                    (int)p->name_len, p->name,
                    st.size + st.delayed >= st.maxsize ? 0 : st.maxsize - st.size - st.delayed,
                    count);
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    buf_appends(b, "{\"ids\": [");
    int err = QUEUE_OK;
    size_t done = 0;
    for (size_t off = 0; off < len && err == QUEUE_OK; done++) {
        const char *nl = memchr(body + off, '\n', len - off);
        size_t n = (size_t)strtoull(body + off, NULL, 10);
        struct queue_put put = *base;
        put.payload = nl + 1;
        put.len = n;
        put.key = NULL;
        put.key_len = 0;
        uint64_t id;
        err = queue_put(q, &put, &id, NULL);
        if (err == QUEUE_OK)
            buf_appendf(b, "%s%" PRIu64, done ? ", " : "", id);
        off = (size_t)(nl + 1 - body) + n + 1;
    }
    if (err != QUEUE_OK) {
        /* Jobs before the failure are in the queue: say which. */
        buf_appendf(b, "], \"error\": \"%s\", \"status\": %d}\n", queue_strerror(err),
                    engine_status_http(err));
        enum handler_result hr = answer_durable(c, svc, engine_status_http(err), NULL, b);
        buf_reset(b);
        return hr;
    }
    buf_appends(b, "]}\n");
    enum handler_result hr = answer_durable(c, svc, 201, NULL, b);
    buf_reset(b);
    return hr;
}

static enum handler_result do_put(struct conn *c, struct qsvc *svc, struct queue *q,
                                  const struct qpath *p, const struct http_request *req,
                                  const char *body, size_t len) {
    uint64_t wait_ms = 0, delay_ms = 0;
    int64_t prio = 0, batch = 0;
    if (param_seconds(req, "wait", &wait_ms) < 0 || param_seconds(req, "delay", &delay_ms) < 0)
        return fail(c, 400, "wait and delay are non-negative numbers of seconds");
    if (param_int(req, "priority", INT32_MIN, INT32_MAX, &prio) < 0)
        return fail(c, 400, "priority is a whole number (lower first)");
    if (param_int(req, "batch", 0, 1, &batch) < 0)
        return fail(c, 400, "batch is 0 or 1");
    const struct http_header *kh = http_find_header(req->headers, req->nheaders, "idempotency-key");
    if (kh && (kh->value_len == 0 || kh->value_len > QUEUE_KEY_MAX))
        return fail(c, 400, "Idempotency-Key must be 1 to %d bytes", QUEUE_KEY_MAX);
    if (journal_ready(c, svc) < 0)
        return HANDLER_DONE;
    struct queue_put put = {body, len, (int32_t)prio, delay_ms, kh ? kh->value : NULL,
                            kh ? kh->value_len : 0};
    if (batch)
        return do_put_batch(c, svc, q, p, &put, body, len);
    if (len > queue_settings_of(q)->max_payload)
        return fail(c, 413, "payload of %zu bytes is over the queue's max_payload of %u", len,
                    queue_settings_of(q)->max_payload);
    wait_ms = clamp_wait(svc, wait_ms);
    uint64_t id = 0;
    int dup = 0;
    /* put_nowait first: a blocking put only needs its own copy when it must wait. */
    int st = queue_put(q, &put, &id, &dup);
    if (st == QUEUE_ERR_FULL && wait_ms > 0) {
        /* The engine performs a waiting put itself, later: it needs its own copy. */
        struct qreq *r = qreq_new(svc, c, len + put.key_len);
        if (!r)
            return fail(c, 503, "out of memory");
        char *copy = (char *)r->jobs;
        memcpy(copy, body, len);
        if (put.key)
            memcpy(copy + len, put.key, put.key_len);
        r->kind = QR_PUT;
        snprintf(r->qname, sizeof r->qname, "%.*s", (int)p->name_len, p->name);
        queue_waiter_init(&r->w, QUEUE_WAIT_PUT, on_wake, r);
        r->w.put = put;
        r->w.put.payload = copy;
        r->w.put.key = put.key ? copy + len : NULL;
        st = queue_put_wait(q, &r->w);
        if (st == QUEUE_WAIT)
            return wait_begin(c, r, wait_ms);
        id = r->w.id;
        dup = r->w.duplicate;
        qreq_free(r);
    }
    if (st == QUEUE_ERR_FULL)
        return fail(c, 503, "queue %.*s is full (maxsize %" PRIu64 ")", (int)p->name_len, p->name,
                    queue_settings_of(q)->maxsize);
    if (st != QUEUE_OK)
        return fail(c, engine_status_http(st), "queue %.*s: %s", (int)p->name_len, p->name,
                    queue_strerror(st));
    char extra[160];
    snprintf(extra, sizeof extra, "Location: /queues/%.*s/jobs/%" PRIu64 "\r\nJob-Id: %" PRIu64 "\r\n",
             (int)p->name_len, p->name, id, id);
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    buf_appendf(b, "{\"id\": %" PRIu64 "%s}\n", id, dup ? ", \"duplicate\": true" : "");
    enum handler_result hr = answer_durable(c, svc, dup ? 200 : 201, extra, b);
    buf_reset(b);
    return hr;
}

static enum handler_result do_reserve(struct conn *c, struct qsvc *svc, struct queue *q,
                                      const struct qpath *p, const struct http_request *req) {
    uint64_t wait_ms = 0, lease_ms = 0;
    int64_t count = 1;
    if (param_seconds(req, "wait", &wait_ms) < 0 || param_seconds(req, "lease", &lease_ms) < 0)
        return fail(c, 400, "wait and lease are non-negative numbers of seconds");
    if (param_int(req, "count", 1, MAX_COUNT, &count) < 0)
        return fail(c, 400, "count is a whole number from 1 to %d", MAX_COUNT);
    size_t cl;
    int framed = http_query_get(req, "count", &cl) != NULL && count > 1;
    wait_ms = clamp_wait(svc, wait_ms);
    /* get_nowait first: only a reserve that must wait needs its own state.
     * (Waiting getters mean nothing is ready, so this cannot jump the line.) */
    struct queue_job_info jobs[MAX_COUNT];
    unsigned n = 0;
    int st = queue_reserve(q, (unsigned)count, lease_ms, jobs, &n);
    if (st == QUEUE_OK) {
        render_jobs(c, svc, jobs, n, framed);
        return HANDLER_DONE;
    }
    if (st != QUEUE_ERR_EMPTY)
        return fail(c, wake_error_status(st), "queue %.*s: %s", (int)p->name_len, p->name,
                    queue_strerror(st));
    if (wait_ms == 0) {
        reply(c, 204, NULL, NULL, "", 0);
        return HANDLER_DONE;
    }
    struct qreq *r = qreq_new(svc, c, (size_t)count * sizeof(struct queue_job_info));
    if (!r)
        return fail(c, 503, "out of memory");
    r->kind = QR_GET;
    snprintf(r->qname, sizeof r->qname, "%.*s", (int)p->name_len, p->name);
    queue_waiter_init(&r->w, QUEUE_WAIT_GET, on_wake, r);
    r->w.count = (unsigned)count;
    r->w.lease_ms = lease_ms;
    r->w.jobs = r->jobs;
    st = queue_reserve_wait(q, &r->w);
    if (st == QUEUE_WAIT)
        return wait_begin(c, r, wait_ms);
    if (st == QUEUE_OK)
        render_jobs(c, svc, r->w.jobs, r->w.njobs, framed);
    else
        reply_error(c, wake_error_status(st), "queue %.*s: %s", (int)p->name_len, p->name,
                    queue_strerror(st));
    qreq_free(r);
    return HANDLER_DONE;
}

static enum handler_result do_join(struct conn *c, struct qsvc *svc, struct queue *q,
                                   const struct qpath *p, const struct http_request *req) {
    uint64_t wait_ms = 0;
    if (param_seconds(req, "wait", &wait_ms) < 0)
        return fail(c, 400, "wait is a non-negative number of seconds");
    struct qreq *r = qreq_new(svc, c, 0);
    if (!r)
        return fail(c, 503, "out of memory");
    r->kind = QR_JOIN;
    snprintf(r->qname, sizeof r->qname, "%.*s", (int)p->name_len, p->name);
    queue_waiter_init(&r->w, QUEUE_WAIT_JOIN, on_wake, r);
    int st = queue_join_wait(q, &r->w);
    if (st == QUEUE_WAIT) {
        wait_ms = clamp_wait(svc, wait_ms);
        if (wait_ms > 0)
            return wait_begin(c, r, wait_ms);
        queue_waiter_cancel(&r->w);
        reply(c, 204, NULL, NULL, "", 0);
    } else if (st == QUEUE_OK) {
        reply(c, 200, CT_JSON, NULL, "{\"unfinished\": 0}\n", 18);
    } else {
        reply_error(c, wake_error_status(st), "queue %.*s: %s", (int)p->name_len, p->name,
                    queue_strerror(st));
    }
    qreq_free(r);
    return HANDLER_DONE;
}

static const char *state_name(int state) {
    static const char *const names[] = {"ready", "delayed", "reserved", "dead"};
    return state >= 0 && state < 4 ? names[state] : "unknown";
}

static enum handler_result do_job(struct conn *c, struct qsvc *svc, struct queue *q,
                                  const struct qpath *p, const struct http_request *req) {
    int64_t attempt = 0;
    uint64_t ms = 0;
    if (param_int(req, "attempt", 0, UINT32_MAX, &attempt) < 0)
        return fail(c, 400, "attempt is a whole number (the Job-Attempt of the reserve)");
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    int st;
    if (!p->verb) {
        if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD)
            return fail(c, 405, "GET a job to peek at it");
        struct queue_job_info j;
        st = queue_peek(q, p->id, &j);
        if (st != QUEUE_OK)
            return fail(c, 404, "no job %" PRIu64 " in queue %.*s", p->id, (int)p->name_len,
                        p->name);
        char extra[200];
        snprintf(extra, sizeof extra,
                 "Job-Id: %" PRIu64 "\r\nJob-State: %s\r\nJob-Attempt: %u\r\nJob-Priority: %d\r\n",
                 j.id, state_name(j.state), j.attempt, j.priority);
        reply(c, 200, CT_OCTETS, extra, j.payload, j.len);
        return HANDLER_DONE;
    }
    if (req->method != HTTP_M_POST)
        return fail(c, 405, "POST to %.*s a job", (int)p->verb_len, p->verb);
    if (seg_is(p->verb, p->verb_len, "touch")) {
        uint64_t deadline;
        if (param_seconds(req, "lease", &ms) < 0)
            return fail(c, 400, "lease is a non-negative number of seconds");
        st = queue_touch(q, p->id, (uint32_t)attempt, ms, &deadline);
        if (st != QUEUE_OK)
            return fail(c, engine_status_http(st), "job %" PRIu64 ": %s", p->id, queue_strerror(st));
        buf_appendf(b, "{\"lease_deadline\": %.3f}\n", wall_seconds(svc, deadline));
        reply(c, 200, CT_JSON, NULL, buf_start(b), b->len);
        buf_reset(b);
        return HANDLER_DONE;
    }
    if (journal_ready(c, svc) < 0)
        return HANDLER_DONE;
    if (seg_is(p->verb, p->verb_len, "ack")) {
        st = queue_ack(q, p->id, (uint32_t)attempt);
        if (st == QUEUE_OK)
            buf_appendf(b, "{\"acked\": %" PRIu64 "}\n", p->id);
    } else if (seg_is(p->verb, p->verb_len, "nack")) {
        if (param_seconds(req, "delay", &ms) < 0)
            return fail(c, 400, "delay is a non-negative number of seconds");
        st = queue_nack(q, p->id, (uint32_t)attempt, ms);
        struct queue_job_info j;
        if (st == QUEUE_OK)
            buf_appendf(b, "{\"%s\": %" PRIu64 "}\n",
                        queue_peek(q, p->id, &j) == QUEUE_OK && j.state == QUEUE_JOB_DEAD ? "dead"
                                                                                          : "released",
                        p->id);
    } else {
        return fail(c, 404, "no such job action: %.*s (ack, nack, touch)", (int)p->verb_len, p->verb);
    }
    if (st != QUEUE_OK)
        return fail(c, engine_status_http(st), "job %" PRIu64 ": %s", p->id, queue_strerror(st));
    enum handler_result hr = answer_durable(c, svc, 200, NULL, b);
    buf_reset(b);
    return hr;
}

static enum handler_result do_admin(struct conn *c, struct qsvc *svc, struct queue *q,
                                    const struct qpath *p, const struct http_request *req) {
    struct buf *b = &svc->srv->scratch;
    buf_reset(b);
    uint64_t n = 0;
    int64_t id = 0, flag = 0;
    int st;
    if (seg_is(p->op, p->op_len, "dead")) {
        if (req->method != HTTP_M_GET)
            return fail(c, 405, "GET the dead letters");
        int64_t after = 0, limit = 100;
        if (param_int(req, "after", 0, INT64_MAX, &after) < 0 ||
            param_int(req, "limit", 1, 1000, &limit) < 0)
            return fail(c, 400, "after is a job id, limit 1 to 1000");
        struct queue_job_info *jobs = malloc((size_t)limit * sizeof *jobs);
        size_t got = 0;
        if (!jobs)
            return fail(c, 503, "out of memory");
        st = queue_dead_list(q, (uint64_t)after, jobs, (size_t)limit, &got);
        if (st != QUEUE_OK) {
            free(jobs);
            return fail(c, engine_status_http(st), "%s", queue_strerror(st));
        }
        buf_appends(b, "{\"dead\": [");
        for (size_t i = 0; i < got; i++)
            buf_appendf(b, "%s{\"id\": %" PRIu64 ", \"priority\": %d, \"attempt\": %u, \"len\": %zu}",
                        i ? ", " : "", jobs[i].id, jobs[i].priority, jobs[i].attempt, jobs[i].len);
        buf_appends(b, "]}\n");
        free(jobs);
        reply(c, 200, CT_JSON, NULL, buf_start(b), b->len);
        buf_reset(b);
        return HANDLER_DONE;
    }
    if (req->method != HTTP_M_POST)
        return fail(c, 405, "POST to %.*s", (int)p->op_len, p->op);
    if (param_int(req, "id", 0, INT64_MAX, &id) < 0 || param_int(req, "immediate", 0, 1, &flag) < 0)
        return fail(c, 400, "id is a job id, immediate 0 or 1");
    if (journal_ready(c, svc) < 0)
        return HANDLER_DONE;
    if (seg_is(p->op, p->op_len, "purge")) {
        st = queue_purge(q, &n);
        buf_appendf(b, "{\"purged\": %" PRIu64 "}\n", n);
    } else if (seg_is(p->op, p->op_len, "shutdown")) {
        st = queue_shutdown(q, (int)flag);
        buf_appendf(b, "{\"shutdown\": %s}\n", flag ? "\"immediate\"" : "true");
    } else if (seg_is(p->op, p->op_len, "dead/requeue")) {
        st = queue_dead_requeue(q, (uint64_t)id, &n);
        buf_appendf(b, "{\"requeued\": %" PRIu64 "}\n", n);
    } else if (seg_is(p->op, p->op_len, "dead/purge")) {
        st = queue_dead_purge(q, (uint64_t)id, &n);
        buf_appendf(b, "{\"purged\": %" PRIu64 "}\n", n);
    } else {
        return fail(c, 404, "no such queue endpoint: %.*s", (int)p->op_len, p->op);
    }
    if (st != QUEUE_OK) {
        buf_reset(b);
        return fail(c, engine_status_http(st), "queue %.*s: %s", (int)p->name_len, p->name,
                    queue_strerror(st));
    }
    enum handler_result hr = answer_reaped(c, svc, q, b);
    buf_reset(b);
    return hr;
}

/* "/queues[/{q}[/op...]]" -> parts. 0 ok, -1 answered. */
static int parse_path(struct conn *c, const struct http_request *req, struct qpath *p) {
    memset(p, 0, sizeof *p);
    const char *s = req->path + 7, *end = req->path + req->path_len; /* after "/queues" */
    if (s >= end || (s + 1 == end && *s == '/'))
        return 0;
    if (*s != '/')
        return reply_error(c, 404, "no such endpoint: %.*s", (int)req->path_len, req->path), -1;
    s++;
    const char *slash = memchr(s, '/', (size_t)(end - s));
    p->name = s;
    p->name_len = (size_t)((slash ? slash : end) - s);
    if (!name_valid(p->name, p->name_len))
        return reply_error(c, 400, "queue names are 1 to %d of A-Z a-z 0-9 _ . -", QUEUE_NAME_MAX),
               -1;
    if (!slash || slash + 1 == end)
        return 0;
    p->op = slash + 1;
    p->op_len = (size_t)(end - p->op);
    if (p->op_len > 5 && memcmp(p->op, "jobs/", 5) == 0) {
        const char *d = p->op + 5, *e = d;
        while (e < end && isdigit((unsigned char)*e))
            e++;
        if (e == d || e - d > 19 || (e < end && *e != '/'))
            return reply_error(c, 400, "job ids are whole numbers"), -1;
        p->id = strtoull(d, NULL, 10);
        if (e < end && e + 1 < end) {
            p->verb = e + 1;
            p->verb_len = (size_t)(end - p->verb);
        }
        p->op_len = 4;
    }
    return 0;
}

enum handler_result api_queues(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len) {
    struct server *s = c->srv;
    struct qsvc *svc = ctx;
    if (!api_authorized(c, req))
        return HANDLER_DONE;
    server_wheel_catch_up(s);
    clock_refresh(svc);
    struct qpath p;
    if (parse_path(c, req, &p) < 0)
        return HANDLER_DONE;
    int m = req->method;
    if (!p.name) {
        if (m != HTTP_M_GET && m != HTTP_M_HEAD)
            return fail(c, 405, "GET /queues lists the queues");
        return do_list(c, svc);
    }
    if (!p.op) {
        if (m == HTTP_M_PUT)
            return do_create(c, svc, &p, body, body_len);
        struct queue *q = find_queue(c, svc, &p);
        if (!q)
            return HANDLER_DONE;
        if (m == HTTP_M_DELETE)
            return do_delete(c, svc, q, &p);
        if (m != HTTP_M_GET && m != HTTP_M_HEAD)
            return fail(c, 405, "GET, PUT or DELETE a queue");
        struct buf *b = &s->scratch;
        buf_reset(b);
        stats_json(b, q);
        buf_append(b, "\n", 1);
        reply(c, 200, CT_JSON, NULL, buf_start(b), b->len);
        buf_reset(b);
        return HANDLER_DONE;
    }
    struct queue *q = find_queue(c, svc, &p);
    if (!q)
        return HANDLER_DONE;
    if (seg_is(p.op, p.op_len, "jobs") && p.id == 0 && p.op + 4 == req->path + req->path_len) {
        if (m != HTTP_M_POST)
            return fail(c, 405, "POST a job to put it");
        return do_put(c, svc, q, &p, req, body, body_len);
    }
    if (seg_is(p.op, p.op_len, "jobs"))
        return do_job(c, svc, q, &p, req);
    if (seg_is(p.op, p.op_len, "reserve")) {
        if (m != HTTP_M_POST)
            return fail(c, 405, "POST to reserve");
        return do_reserve(c, svc, q, &p, req);
    }
    if (seg_is(p.op, p.op_len, "join")) {
        if (m != HTTP_M_GET)
            return fail(c, 405, "GET join");
        return do_join(c, svc, q, &p, req);
    }
    return do_admin(c, svc, q, &p, req);
}

/* ---- the store's client: replay and snapshot ------------------------------------------ */

struct snap_ctx {
    struct qsvc *svc;
    struct buf *out;
    int err;
};

static void snap_event(void *arg, const struct queue_event *ev) {
    struct snap_ctx *sc = arg;
    if (qj_encode(sc->out, ev, &sc->svc->clk) < 0)
        sc->err = 1;
}

/* The live state as records, on the loop thread (compaction). */
static int snapshot(void *arg, struct buf *out) {
    struct qsvc *svc = arg;
    struct snap_ctx sc = {svc, out, 0};
    clock_refresh(svc);
    queue_engine_snapshot(svc->eng, snap_event, &sc);
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    if (sc.err || store_encode_u64(out, REC_QUEUE_NEXT_ID, es.next_id) < 0)
        return -1;
    return 0;
}

static uint64_t live_bytes(void *arg) {
    struct qsvc *svc = arg;
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    return es.mem_used;
}

static int replay_record(void *arg, uint8_t type, const char *payload, size_t len, uint64_t off) {
    struct qsvc *svc = arg;
    struct queue_event ev;
    uint64_t id;
    if (type == REC_QUEUE_NEXT_ID && store_decode_u64(payload, len, &id) == 0) {
        queue_engine_set_next_id(svc->eng, id); /* a lower one is refused: fine */
        svc->replayed++;
        return 1;
    }
    if (type < REC_QUEUE_FIRST || type > REC_QUEUE_LAST)
        return 0; /* not a queue record */
    if (qj_decode(type, payload, len, &svc->clk, &ev) < 0) {
        log_error("journal: queue record at offset %" PRIu64 " is malformed", off);
        return -1;
    }
    int st = queue_engine_replay(svc->eng, &ev);
    if (st != QUEUE_OK && st != QUEUE_ERR_NOTFOUND && st != QUEUE_ERR_EXISTS) {
        log_error("journal: record at offset %" PRIu64 " cannot be applied: %s", off,
                  queue_strerror(st));
        return -1;
    }
    svc->replayed++;
    return 1;
}

/* Create the queues the config declares; existing ones take its settings. */
static void declare_queues(struct qsvc *svc, const struct config *cfg) {
    for (size_t i = 0; i < cfg->nqueues; i++) {
        const struct config_queue *cq = &cfg->queues[i];
        struct queue_settings s;
        queue_settings_default(&s);
        s.maxsize = cq->maxsize;
        s.lease_ms = cq->lease_ms;
        s.max_attempts = (uint32_t)cq->max_attempts;
        s.max_payload = (uint32_t)cq->max_payload;
        s.key_window_ms = cfg->queue_key_window_ms;
        struct queue *q = queue_find(svc->eng, cq->name, strlen(cq->name));
        int st = q ? queue_update(q, &s) : queue_create(svc->eng, cq->name, strlen(cq->name), &s, NULL);
        if (st != QUEUE_OK)
            log_error("queue %s from the config: %s", cq->name, queue_strerror(st));
    }
}

struct qsvc *qsvc_new(struct server *s, struct store *store) {
    struct qsvc *svc = calloc(1, sizeof *svc);
    if (!svc)
        return NULL;
    svc->srv = s;
    svc->store = store;
    clock_refresh(svc);
    struct queue_engine_config ec = {0};
    ec.mem_limit = s->cfg->queue_mem_limit;
    ec.on_event = on_engine_event;
    ec.event_ctx = svc;
    if (getrandom(&ec.hash_seed, sizeof ec.hash_seed, GRND_NONBLOCK) != sizeof ec.hash_seed)
        ec.hash_seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    svc->eng = queue_engine_new(&s->wheel, &ec);
    struct store_client client = {replay_record, snapshot, live_bytes, svc};
    if (!svc->eng || store_add_client(store, &client) < 0) {
        log_error("out of memory creating the queue engine");
        queue_engine_free(svc->eng);
        free(svc);
        return NULL;
    }
    return svc;
}

static int qsvc_start(void *ctx) {
    struct qsvc *svc = ctx;
    struct server *s = svc->srv;
    svc->st = svc->store;
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    log_info("queues: %zu queues, %zu jobs after replay", es.queues, es.jobs);
    declare_queues(svc, s->cfg);
    svc->reap_ev = evtimer_new(s->base, on_reap, svc);
    if (!svc->reap_ev)
        log_warnx("out of memory for the queue reaper: purges free their jobs at shutdown");
    return 0;
}

struct queue_engine *qsvc_engine(struct qsvc *svc) {
    return svc->eng;
}

static void qsvc_drain(void *ctx) {
    struct qsvc *svc = ctx;
    while (svc->waiting) {
        struct qreq *r = svc->waiting;
        struct conn *c = r->c;
        queue_waiter_cancel(&r->w);
        qreq_unlink(r);
        reply_error(c, 503, "the server is shutting down");
        qreq_free(r);
        conn_done(c);
    }
    /* Finish the reaper's work now, so its records reach the journal
     * before it closes and pending purges get their answer. */
    queue_engine_reap(svc->eng, SIZE_MAX);
    purges_answer(svc);
}

static void qsvc_reload(void *ctx) {
    struct qsvc *svc = ctx;
    struct server *s = svc->srv;
    server_wheel_catch_up(s);
    clock_refresh(svc);
    queue_engine_set_mem_limit(svc->eng, s->cfg->queue_mem_limit);
    declare_queues(svc, s->cfg);
}

static void qsvc_close(void *ctx) {
    struct qsvc *svc = ctx;
    svc->st = NULL; /* engine events from here on (freeing) are not journaled */
    if (svc->reap_ev)
        event_free(svc->reap_ev);
    queue_engine_free(svc->eng);
    free(svc);
}

static int qsvc_metrics(void *ctx, struct buf *o) {
    struct qsvc *svc = ctx;
    static const char *const names[] = {"size", "reserved", "delayed", "dead", "unfinished",
                                        "getters", "putters"};
    int r = 0;
    for (size_t k = 0; k < 7; k++) {
        r |= buf_appendf(o, "# TYPE awaitd_queue_%s gauge\n", names[k]);
        for (size_t i = 0; i < queue_count(svc->eng); i++) {
            struct queue *q = queue_at(svc->eng, i);
            struct queue_stats st;
            size_t nl;
            const char *name = queue_name(q, &nl);
            queue_stats(q, &st);
            uint64_t v[] = {st.size, st.reserved, st.delayed, st.dead, st.unfinished, st.getters,
                            st.putters};
            r |= buf_appendf(o, "awaitd_queue_%s{queue=\"%.*s\"} %" PRIu64 "\n", names[k], (int)nl,
                             name, v[k]);
        }
    }
    static const char *const totals[] = {"put", "acked", "redelivered", "dead"};
    for (size_t k = 0; k < 4; k++) {
        r |= buf_appendf(o, "# TYPE awaitd_queue_%s_total counter\n", totals[k]);
        for (size_t i = 0; i < queue_count(svc->eng); i++) {
            struct queue *q = queue_at(svc->eng, i);
            struct queue_stats st;
            size_t nl;
            const char *name = queue_name(q, &nl);
            queue_stats(q, &st);
            uint64_t v[] = {st.total_put, st.total_acked, st.total_redelivered, st.total_dead};
            r |= buf_appendf(o, "awaitd_queue_%s_total{queue=\"%.*s\"} %" PRIu64 "\n", totals[k],
                             (int)nl, name, v[k]);
        }
    }
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    r |= buf_appendf(o, "# TYPE awaitd_queue_reaping gauge\nawaitd_queue_reaping %" PRIu64 "\n",
                     es.reaping);
    return r ? -1 : 0;
}

const struct service_ops qsvc_service = {
    .name = "queues",
    .start = qsvc_start,
    .reload = qsvc_reload,
    .drain = qsvc_drain,
    .close = qsvc_close,
    .metrics = qsvc_metrics,
};
