#include "api/api_timer.h"

#include "api/api_timer_spec.h"
#include "api/auth.h"
#include "api/api_params.h"
#include "core/buf.h"
#include "core/clock.h"
#include "engine/cron.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "svc/tsvc.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 1000 /* GET /timers limit= upper bound */
#define AT_GRACE_MS 1000 /* an at this close to now (clock skew) fires now */

/* OP_METHOD: a method /timers/{id} does not take; 405 once the timer is
 * known to exist (404 first, as a lookup answers). */
enum op { OP_CREATE, OP_GET, OP_LIST, OP_CANCEL, OP_METHOD };

/* One /timers request whose answer the service gives: now or later. */
struct treq {
    struct tsvc_call call;
    struct conn *c;
    int op;                    /* enum op */
    struct tsvc_timer *listed; /* OP_LIST: the page */
};

/* ---- JSON out ------------------------------------------------------------------------- */

static const char *const state_names[] = {"scheduled", "completed", "cancelled", "failed"};
static const char *const kind_names[] = {"after", "at", "every", "cron"};

static int append_time(struct buf *b, int64_t unix_ms) {
    char t[CRON_RFC3339_LEN + 1];
    cron_format_rfc3339(unix_ms, t);
    return buf_appendf(b, "\"%s\"", t);
}

static int timer_json(struct buf *b, const struct tsvc_timer *t) {
    int r = buf_appendf(b, "{\"id\": %" PRIu64 ", \"state\": \"%s\", \"kind\": \"%s\", \"queue\": ",
                        t->id, state_names[t->state], kind_names[t->kind]);
    r |= buf_append_json_str(b, t->queue, t->queue_len);
    r |= buf_appendf(b, ", \"fires\": %u, \"skips\": %u, \"count\": %u", t->fires, t->skips,
                     t->count);
    if (t->kind == TSVC_EVERY)
        r |= buf_appendf(b, ", \"every\": %.3f", (double)t->every_ms / 1000.0);
    if (t->kind == TSVC_CRON) {
        r |= buf_appends(b, ", \"cron\": ");
        r |= buf_append_json_str(b, t->cron, t->cron_len);
    }
    if (t->kind == TSVC_EVERY || t->kind == TSVC_CRON)
        r |= buf_appendf(b, ", \"jitter\": %.3f", t->jitter_ms / 1000.0);
    int scheduled = t->state == TSVC_SCHEDULED;
    r |= buf_appends(b, ", \"next_fire\": ");
    r |= scheduled ? append_time(b, t->next_fire_ms) : buf_appends(b, "null");
    r |= buf_appends(b, ", \"finished\": ");
    r |= !scheduled ? append_time(b, t->finished_ms) : buf_appends(b, "null");
    r |= buf_appendf(b, ", \"on_full\": \"%s\", \"on_missed\": \"%s\", \"retrying\": %s",
                     t->full_policy == TASK_FULL_RETRY ? "retry" : "skip",
                     t->missed_policy == TASK_MISSED_SKIP ? "skip" : "fire_once",
                     t->retrying ? "true" : "false");
    r |= buf_appends(b, ", \"last_error\": ");
    r |= t->last_error ? buf_append_json_str(b, t->last_error, strlen(t->last_error))
                       : buf_appends(b, "null");
    r |= buf_appends(b, "}");
    return r;
}

static int list_json(struct buf *b, const struct treq *r) {
    int e = buf_appends(b, "{\"timers\": [");
    for (size_t i = 0; i < r->call.nlisted; i++) {
        if (i)
            e |= buf_appends(b, ", ");
        e |= timer_json(b, &r->listed[i]);
    }
    e |= buf_appends(b, "], \"next_after\": ");
    e |= r->call.next_after ? buf_appendf(b, "%" PRIu64, r->call.next_after)
                            : buf_appends(b, "null");
    return e | buf_appends(b, "}\n");
}

static int http_status(int st) {
    switch (st) {
    case TSVC_INVALID: return 400;
    case TSVC_NOTFOUND: return 404;
    case TSVC_TOOBIG: return 413;
    case TSVC_NOSPACE: return 507;
    default: return 503; /* no memory, memory limit, too many timers, journal failing, shutting down */
    }
}

/* Answer r from its call's outcome. The body is built in a buffer of its
 * own: another request's completion may run before this one is written. */
static void answer(struct treq *r) {
    struct conn *c = r->c;
    const struct tsvc_call *call = &r->call;
    if (call->status == TSVC_TIMEOUT) {
        reply(c, 204, NULL, NULL, "", 0);
        return;
    }
    if (call->status == TSVC_MEMORY || call->status == TSVC_LIMIT) {
        /* As a put refused by the memory limit: room comes back as jobs
         * are acked and timers finish. */
        reply_error_fields(c, 503, "Retry-After: 1\r\n",
                           call->status == TSVC_MEMORY ? ", \"reason\": \"memory limit\""
                                                       : ", \"reason\": \"max_timers\"",
                           "%s", call->why);
        return;
    }
    if (call->status == TSVC_UNAVAILABLE || call->status == TSVC_NOSPACE ||
        call->status == TSVC_DRAINING) {
        /* As the queues' (issue 16): no Retry-After, waiting does not help. */
        reply_error_fields(c, http_status(call->status), NULL,
                           call->status == TSVC_DRAINING ? ", \"reason\": \"draining\""
                                                         : ", \"reason\": \"storage\"",
                           "%s", call->why);
        return;
    }
    if (call->status != TSVC_OK) {
        reply_error(c, http_status(call->status), "%s", call->why);
        return;
    }
    if (r->op == OP_METHOD) {
        reply_error_hdr(c, 405, "Allow: GET, HEAD, DELETE\r\n", "GET or DELETE a timer");
        return;
    }
    struct buf b = BUF_INIT;
    char extra[80] = "";
    int status = 200, e = 0;
    if (r->op != OP_LIST)
        conn_log_id(c, call->timer.id);
    if (r->op == OP_LIST) {
        e = list_json(&b, r);
    } else {
        if (r->op == OP_CANCEL)
            e |= buf_appendf(&b, "{\"cancelled\": %s, \"timer\": ",
                             call->cancelled ? "true" : "false");
        e |= timer_json(&b, &call->timer);
        e |= buf_appends(&b, r->op == OP_CANCEL ? "}\n" : "\n");
    }
    if (r->op == OP_CREATE) {
        status = 201;
        snprintf(extra, sizeof extra, "Location: /timers/%" PRIu64 "\r\n", call->timer.id);
    }
    if (e) {
        c->keep_alive = 0;
        reply_error(c, 500, "out of memory");
    } else {
        reply(c, status, CT_JSON, extra[0] ? extra : NULL, buf_start(&b), b.len);
    }
    buf_free(&b);
}

static void treq_free(struct treq *r) {
    free(r->listed);
    free(r);
}

/* The client left before the service answered. */
static void treq_cancel(void *arg) {
    struct treq *r = arg;
    tsvc_call_cancel(&r->call);
    treq_free(r);
}

static void on_done(struct tsvc_call *call) {
    struct treq *r = call->arg;
    struct conn *c = r->c;
    answer(r);
    treq_free(r);
    conn_done(c);
}

static struct treq *treq_new(struct conn *c, int op) {
    struct treq *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    tsvc_call_init(&r->call, on_done, r);
    r->c = c;
    r->op = op;
    r->listed = NULL;
    return r;
}

/* After starting r's call: answer now, or when the service completes it. */
static enum handler_result started(struct treq *r, int rc) {
    if (rc == TSVC_PENDING) {
        conn_pending(r->c, treq_cancel, r);
        return HANDLER_PENDING;
    }
    answer(r);
    treq_free(r);
    return HANDLER_DONE;
}

/* ---- POST /timers ------------------------------------------------------------------- */

static enum handler_result do_create(struct conn *c, struct tsvc *svc, const char *body,
                                     size_t len) {
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return reply_fail(c, 400, "the body must be a JSON object: %s", o ? "not an object" : jerr.text);
    }
    struct tsvc_spec spec;
    char err[256];
    int st;
    struct treq *r = NULL;
    enum handler_result hr;
    char *decoded = NULL; /* payload_base64's bytes */
    int64_t now_ms = (int64_t)clock_wall_ms();
    char past[CRON_RFC3339_LEN + 1], now_text[CRON_RFC3339_LEN + 1];
    if (timer_spec_parse(o, &spec, err, sizeof err, &st, &decoded) < 0) {
        hr = reply_fail(c, http_status(st), "%s", err);
    } else if (spec.kind == TSVC_AT && spec.at_ms < now_ms - AT_GRACE_MS) {
        /* A past at is a mistake (a stale example, a wrong zone), as at(1)
         * refuses it; every backend answers the same (issue 16). */
        cron_format_rfc3339(spec.at_ms, past);
        cron_format_rfc3339(now_ms, now_text);
        hr = reply_fail(c, 400, "at: %s is in the past (now %s); use after for a delay", past,
                        now_text);
    } else if (!(r = treq_new(c, OP_CREATE))) {
        hr = reply_fail(c, 503, "out of memory");
    } else {
        hr = started(r, tsvc_create(svc, &r->call, &spec));
    }
    json_decref(o);
    free(decoded); /* the create copied the payload into the timer */
    return hr;
}

/* ---- GET, await, DELETE, list ------------------------------------------------------------ */

static enum handler_result do_get(struct conn *c, struct tsvc *svc, uint64_t id,
                                  const struct http_request *req) {
    static const char *const known[] = {"wait", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    size_t n;
    const char *v = http_query_get(req, "wait", &n);
    int64_t wait_ms = 0;
    if (v && (wait_ms = http_parse_seconds_ms(v, n)) < 0)
        return reply_fail(c, 400, "wait: a non-negative number of seconds");
    struct treq *r = treq_new(c, OP_GET);
    if (!r)
        return reply_fail(c, 503, "out of memory");
    return started(r, tsvc_get(svc, &r->call, id, (uint64_t)wait_ms));
}

static enum handler_result do_delete(struct conn *c, struct tsvc *svc, uint64_t id) {
    struct treq *r = treq_new(c, OP_CANCEL);
    if (!r)
        return reply_fail(c, 503, "out of memory");
    return started(r, tsvc_cancel(svc, &r->call, id));
}

static enum handler_result do_other(struct conn *c, struct tsvc *svc, uint64_t id) {
    struct treq *r = treq_new(c, OP_METHOD);
    if (!r)
        return reply_fail(c, 503, "out of memory");
    return started(r, tsvc_get(svc, &r->call, id, 0));
}

static enum handler_result do_list(struct conn *c, struct tsvc *svc,
                                   const struct http_request *req) {
    static const char *const known[] = {"after", "limit", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    size_t n;
    const char *v;
    int64_t after = 0, limit = 100;
    if ((v = http_query_get(req, "after", &n)) && (after = http_parse_uint(v, n, TASK_ID_MAX)) < 0)
        return reply_fail(c, 400, "after: a timer id");
    if ((v = http_query_get(req, "limit", &n)) &&
        ((limit = http_parse_uint(v, n, LIST_MAX)) < 1))
        return reply_fail(c, 400, "limit: a whole number from 1 to %d", LIST_MAX);
    struct treq *r = treq_new(c, OP_LIST);
    if (r && !(r->listed = malloc((size_t)limit * sizeof *r->listed))) {
        free(r);
        r = NULL;
    }
    if (!r)
        return reply_fail(c, 503, "out of memory");
    return started(r, tsvc_list(svc, &r->call, (uint64_t)after, r->listed, (size_t)limit));
}

enum handler_result api_timers(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len) {
    struct tsvc *svc = ctx;
    static const char *const none[] = {NULL};
    if (!api_authorized(c, req))
        return HANDLER_DONE;
    const char *p = req->path + 7, *end = req->path + req->path_len; /* after "/timers" */
    int m = req->method;
    if (p >= end || (p + 1 == end && *p == '/')) {
        if (m == HTTP_M_POST)
            return api_params_known(c, req, none) < 0 ? HANDLER_DONE
                                                  : do_create(c, svc, body, body_len);
        if (m == HTTP_M_GET || m == HTTP_M_HEAD)
            return do_list(c, svc, req);
        reply_error_hdr(c, 405, "Allow: GET, HEAD, POST\r\n",
                        "POST /timers creates a timer, GET lists them");
        return HANDLER_DONE;
    }
    if (*p != '/')
        return reply_fail(c, 404, "no such endpoint: %.*s", (int)req->path_len, req->path);
    int64_t id = http_parse_uint(p + 1, (size_t)(end - p - 1), TASK_ID_MAX);
    if (id < 1)
        return reply_fail(c, 400, "timer ids are whole numbers");
    if (m == HTTP_M_GET || m == HTTP_M_HEAD)
        return do_get(c, svc, (uint64_t)id, req);
    if (m == HTTP_M_DELETE)
        return api_params_known(c, req, none) < 0 ? HANDLER_DONE : do_delete(c, svc, (uint64_t)id);
    return do_other(c, svc, (uint64_t)id);
}
