/*
 * api_queue: /queues over HTTP (docs/QUEUES.md). It parses the path, the
 * query and the headers, calls the queue seam (svc/qsvc.h), and renders
 * the outcome: statuses, Job-Id and friends, JSON and framed bodies.
 *
 * A request's state is a struct areq on the handler's stack. When the
 * seam keeps the call (a wait, an fsync), areq_keep moves it to the heap,
 * and the answer is rendered later from the loop by areq_done. Bodies are
 * built in memory of the request's own (its stack, or a buffer it frees),
 * never in a buffer another request's completion could reset.
 */
#include "api/api_queue.h"

#include "api/api_queue_batch.h"
#include "api/api_queue_parse.h"
#include "api/api_result.h"
#include "api/auth.h"
#include "api/api_params.h"
#include "core/buf.h"
#include "core/list.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"
#include "net/server.h"
#include "svc/qsvc.h"

#include <event2/event.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A literal's bytes, without its NUL, at p (core/buf.h's text_*). */
#define TEXT(p, lit) text_mem(p, lit, sizeof lit - 1)

#define MAX_COUNT 100 /* reserve count= upper bound */
#define CT_FRAMES "application/x-awaitd-frames"
#define LIST_DEFAULT 1000 /* GET /queues page size */
#define LIST_MAX 10000    /* and its largest limit= */
#define LIST_SLICE 1000   /* queues listed per loop turn */

/* What a request renders once its call finishes. */
enum areq_kind {
    A_STATS,
    A_DECLARE,
    A_DELETE,
    A_PUT,
    A_BATCH,
    A_RESERVE,
    A_JOIN,
    A_PEEK,
    A_TOUCH,
    A_ACK,
    A_NACK,
    A_DEAD,
    A_BULK,
};

/* Kept, its size is a waiting reserve's memory with the backend's wait
 * (issue 19): small fields, and the name as long as it is. */
struct areq {
    struct qsvc_call call; /* first: a kept call is its areq */
    struct conn *c;
    struct areq *kept;     /* on the stack: where areq_keep moved the request */
    uint64_t arg;          /* job id; A_PUT: payload length; A_BULK: the operation */
    const char *qname;     /* the path's queue name, or qcopy once kept */
    void *owned;           /* freed with the request (batch jobs, dead letters) */
    uint8_t kind;          /* enum areq_kind */
    uint8_t framed;        /* A_RESERVE: count= given, > 1 */
    uint8_t flag;          /* A_BULK shutdown: immediate */
    uint8_t qlen;
    char qcopy[];          /* kept: the name (areq_keep allocates qlen bytes) */
};

_Static_assert(QUEUE_NAME_MAX <= UINT8_MAX, "areq.qlen holds a queue name's length");

/* ---- parameters: api_params.h; answers ---------------------------------------------- */

/* A 405 with the Allow header a client needs to correct itself (issue 16). */
static enum handler_result fail_method(struct conn *c, const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum handler_result fail_method(struct conn *c, const char *allow, const char *fmt, ...) {
    char msg[200], hdr[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
    reply_error_hdr(c, 405, hdr, "%s", msg);
    return HANDLER_DONE;
}

/* ---- rendering --------------------------------------------------------------------- */

static int stats_json(struct buf *b, const struct qsvc_queue *q) {
    const struct queue_stats *st = &q->stats;
    const struct queue_settings *set = &q->settings;
    int r = buf_appends(b, "{\"name\": ");
    r |= buf_append_json_str(b, q->name, q->name_len);
    r |= buf_appendf(b,
                     ", \"size\": %" PRIu64 ", \"maxsize\": %" PRIu64 ", \"reserved\": %" PRIu64
                     ", \"delayed\": %" PRIu64 ", \"dead\": %" PRIu64 ", \"unfinished\": %" PRIu64
                     ", \"putters\": %" PRIu64 ", \"getters\": %" PRIu64 ", \"joiners\": %" PRIu64
                     ", \"total_put\": %" PRIu64 ", \"total_acked\": %" PRIu64
                     ", \"total_redelivered\": %" PRIu64 ", \"total_dead\": %" PRIu64
                     ", \"shutdown\": %s, \"lease\": %.3f, \"max_attempts\": %u"
                     ", \"max_payload\": %u, \"key_window\": %.3f",
                     st->size, st->maxsize, st->reserved, st->delayed, st->dead, st->unfinished,
                     st->putters, st->getters, st->joiners, st->total_put, st->total_acked,
                     st->total_redelivered, st->total_dead,
                     st->shutdown == 2 ? "\"immediate\"" : st->shutdown ? "true" : "false",
                     set->lease_ms / 1000.0, set->max_attempts, set->max_payload,
                     set->key_window_ms / 1000.0);
    r |= buf_appendf(b, ", \"result_ttl\": %.3f, \"results\": %" PRIu64 "}",
                     set->result_ttl_ms / 1000.0, st->results);
    return r;
}

/* Send b (built by the caller, freed here) as JSON, or a 500 if building it ran out of memory. */
static void reply_buf(struct conn *c, int status, int build_err, struct buf *b) {
    if (build_err)
        reply_error(c, 500, "out of memory");
    else
        reply(c, status, CT_JSON, NULL, buf_start(b), b->len);
    buf_free(b);
}

static int status_http(int st) {
    switch (st) {
    case QSVC_ERR_NOTFOUND:
    case QSVC_ERR_NOQUEUE: return 404;
    case QSVC_ERR_EXISTS:
    case QSVC_ERR_STATE: return 409;
    case QSVC_ERR_INVALID: return 400;
    case QSVC_ERR_TOOBIG: return 413;
    case QSVC_ERR_SHUTDOWN:
    case QSVC_ERR_DELETED: return 410;
    case QSVC_ERR_NOSPACE: return 507;
    case QSVC_ERR_NOMEM:
    case QSVC_ERR_FULL:
    case QSVC_ERR_MEMORY:
    case QSVC_ERR_UNAVAILABLE:
    case QSVC_ERR_DRAINING: return 503;
    default: return 500;
    }
}

/*
 * Why a 503 (or 507) was answered, as the JSON error's "reason" (issue 16):
 * "queue full" and "memory limit" pass as jobs are taken (Retry-After: 1),
 * "storage" is the journal or Redis failing (no Retry-After: it needs the
 * operator, not a client retrying every second), "draining" the daemon
 * stopping (retry elsewhere), "out of memory" malloc failing.
 */
#define REASON_FULL ", \"reason\": \"queue full\""
#define REASON_STORAGE ", \"reason\": \"storage\""
#define RETRY_1 "Retry-After: 1\r\n"

static const char *reason_of(int st) {
    switch (st) {
    case QSVC_ERR_TIMEOUT:
    case QSVC_ERR_FULL: return REASON_FULL;
    case QSVC_ERR_MEMORY: return ", \"reason\": \"memory limit\"";
    case QSVC_ERR_UNAVAILABLE:
    case QSVC_ERR_NOSPACE: return REASON_STORAGE;
    case QSVC_ERR_DRAINING: return ", \"reason\": \"draining\"";
    case QSVC_ERR_NOMEM: return ", \"reason\": \"out of memory\"";
    }
    return NULL;
}

/* The errors every operation can end with. */
static void render_error(const struct areq *r, int st) {
    struct conn *c = r->c;
    const struct qsvc_result *res = &r->call.res;
    int n = (int)r->qlen;
    switch (st) {
    case QSVC_ERR_NOQUEUE: reply_error(c, 404, "no such queue: %.*s", n, r->qname); return;
    case QSVC_ERR_UNAVAILABLE:
    case QSVC_ERR_NOSPACE:
        if (res->unknown) { /* made in memory, not confirmed: name the job, say it (finding 3) */
            char fields[96];
            snprintf(fields, sizeof fields,
                     REASON_STORAGE ", \"outcome\": \"unknown\", \"id\": %" PRIu64, res->id);
            reply_error_fields(c, status_http(st), NULL, fields, "%s",
                               res->why[0] ? res->why : "journal failure");
            return;
        }
        reply_error_fields(c, status_http(st), NULL, REASON_STORAGE, "%s", res->why);
        return;
    case QSVC_ERR_DRAINING:
    case QSVC_ERR_NOMEM:
        reply_error_fields(c, 503, st == QSVC_ERR_NOMEM ? RETRY_1 : NULL, reason_of(st), "%s",
                           qsvc_strerror(st));
        return;
    case QSVC_ERR_MEMORY:
        reply_error_fields(c, 503, RETRY_1, reason_of(st), "queue %.*s: %s", n, r->qname,
                           qsvc_strerror(st));
        return;
    }
    switch (r->kind) {
    case A_PEEK:
    case A_TOUCH:
    case A_ACK:
    case A_NACK:
        if (st == QSVC_ERR_NOTFOUND && r->kind == A_PEEK)
            reply_error(c, 404, "no job %" PRIu64 " in queue %.*s", r->arg, n, r->qname);
        else
            reply_error(c, status_http(st), "job %" PRIu64 ": %s", r->arg, qsvc_strerror(st));
        return;
    }
    reply_error(c, status_http(st), "queue %.*s: %s", n, r->qname, qsvc_strerror(st));
}

static void render_jobs(const struct areq *r, const struct queue_job_info *jobs, unsigned n) {
    struct conn *c = r->c;
    char extra[256];
    if (!r->framed) {
        const struct queue_job_info *j = &jobs[0];
        conn_log_id(c, j->id);
        /* By hand, not snprintf: this runs once per reserve (about 4% of a
         * put-reserve-ack cycle's CPU went to formatting these lines). */
        char *p = TEXT(extra, "Job-Id: ");
        p = text_u64(p, j->id);
        p = TEXT(p, "\r\nJob-Attempt: ");
        p = text_u64(p, j->attempt);
        p = TEXT(p, "\r\nJob-Priority: ");
        p = text_i64(p, j->priority);
        p = TEXT(p, "\r\nLease-Deadline: ");
        p = text_ms3(p, j->deadline);
        p = text_mem(p, "\r\n", sizeof "\r\n"); /* with the NUL */
        reply(c, 200, CT_OCTETS, extra, j->payload, j->len);
        return;
    }
    struct buf b = BUF_INIT;
    int err = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct queue_job_info *j = &jobs[i];
        err |= buf_appendf(&b, "%" PRIu64 " %u %d %.3f %zu\n", j->id, j->attempt, j->priority,
                           j->deadline / 1000.0, j->len);
        err |= buf_append(&b, j->payload, j->len);
        err |= buf_append(&b, "\n", 1);
    }
    snprintf(extra, sizeof extra, "Job-Count: %u\r\n", n);
    if (err)
        reply_error(c, 500, "out of memory"); /* the jobs stay leased and come back when it ends */
    else
        reply(c, 200, CT_FRAMES, extra, buf_start(&b), b.len);
    buf_free(&b);
}

static void render_put(const struct areq *r, int st) {
    struct conn *c = r->c;
    const struct qsvc_result *res = &r->call.res;
    int n = (int)r->qlen;
    if (st == QSVC_ERR_TIMEOUT) {
        reply_error_fields(c, 503, RETRY_1, REASON_FULL, "queue %.*s is full", n, r->qname);
    } else if (st == QSVC_ERR_FULL) {
        reply_error_fields(c, 503, RETRY_1, REASON_FULL, "queue %.*s is full (maxsize %" PRIu64 ")",
                           n, r->qname, res->limit);
    } else if (st == QSVC_ERR_TOOBIG) {
        reply_error(c, 413, "payload of %" PRIu64 " bytes is over the queue's max_payload of %" PRIu64,
                    r->arg, res->limit);
    } else if (st != QSVC_OK) {
        render_error(r, st);
    } else {
        char body[96], extra[192];
        conn_log_id(c, res->id);
        /* By hand, not snprintf (once per put); a name is at most
         * QUEUE_NAME_MAX bytes, so extra has room. */
        char *p = TEXT(body, "{\"id\": ");
        p = text_u64(p, res->id);
        if (res->duplicate)
            p = TEXT(p, ", \"duplicate\": true");
        p = TEXT(p, "}\n");
        size_t len = (size_t)(p - body);
        p = TEXT(extra, "Location: /queues/");
        p = text_mem(p, r->qname, (size_t)n);
        p = TEXT(p, "/jobs/");
        p = text_u64(p, res->id);
        p = TEXT(p, "\r\nJob-Id: ");
        p = text_u64(p, res->id);
        p = text_mem(p, "\r\n", sizeof "\r\n"); /* with the NUL */
        reply(c, res->duplicate ? 200 : 201, CT_JSON, extra, body, len);
    }
}

static void render_batch(const struct areq *r, int st) {
    const struct qsvc_result *res = &r->call.res;
    const struct qsvc_batch_job *jobs = r->owned;
    if (st == QSVC_ERR_TOOBIG && res->index == SIZE_MAX) {
        reply_error(r->c, 413, "a batch of %" PRIu64 " jobs can never fit queue %.*s (maxsize %"
                    PRIu64 "): put it in parts", r->arg, (int)r->qlen, r->qname, res->limit);
        return;
    }
    if (st == QSVC_ERR_TOOBIG) {
        reply_error(r->c, 413, "batch frame %zu: payload of %zu bytes is over the queue's "
                    "max_payload of %" PRIu64, res->index, jobs[res->index].len, res->limit);
        return;
    }
    if (st == QSVC_ERR_FULL) {
        reply_error_fields(r->c, 503, RETRY_1, REASON_FULL,
                           "queue %.*s is full: room for %" PRIu64 " jobs, the batch has %" PRIu64,
                           (int)r->qlen, r->qname, res->limit, r->arg);
        return;
    }
    if (st == QSVC_ERR_TIMEOUT) {
        reply_error_fields(r->c, 503, RETRY_1, REASON_FULL,
                           "queue %.*s is full: no room for the batch's %" PRIu64
                           " jobs within wait", (int)r->qlen, r->qname, r->arg);
        return;
    }
    if (st < QSVC_ERR_DELETED) {
        render_error(r, st); /* refused before any put */
        return;
    }
    struct buf b = BUF_INIT;
    int err = buf_appends(&b, "{\"ids\": [");
    for (uint64_t i = 0; i < res->n; i++) /* consecutive ids */
        err |= buf_appendf(&b, "%s%" PRIu64, i ? ", " : "", res->id + i);
    if (st != QSVC_OK) /* jobs before the failure are in the queue: say which */
        err |= buf_appendf(&b, "], \"error\": \"%s\", \"status\": %d%s}\n", qsvc_strerror(st),
                           status_http(st), reason_of(st) ? reason_of(st) : "");
    else
        err |= buf_appends(&b, "]}\n");
    reply_buf(r->c, st == QSVC_OK ? 201 : status_http(st), err, &b);
}

static void render_dead(const struct areq *r) {
    const struct qsvc_result *res = &r->call.res;
    struct buf b = BUF_INIT;
    int err = buf_appends(&b, "{\"dead\": [");
    for (unsigned i = 0; i < res->njobs; i++) {
        const struct queue_job_info *j = &res->jobs[i];
        err |= buf_appendf(&b, "%s{\"id\": %" PRIu64 ", \"priority\": %d, \"attempt\": %u, "
                           "\"len\": %zu", i ? ", " : "", j->id, j->priority, j->attempt, j->len);
        err |= buf_appendf(&b, ", \"reason\": \"%s\", \"error\": ", queue_dead_reason_name(j->reason));
        err |= j->error ? buf_append_json_str(&b, j->error, j->error_len) : buf_appends(&b, "null");
        err |= buf_appends(&b, "}");
    }
    err |= buf_appends(&b, "]}\n");
    reply_buf(r->c, 200, err, &b);
}

static const char *state_name(int state) {
    static const char *const names[] = {"ready", "delayed", "reserved", "dead"};
    return state >= 0 && state < 4 ? names[state] : "unknown";
}

/* Small fixed answers. */
static void render_small(const struct areq *r) {
    const struct qsvc_result *res = &r->call.res;
    if (r->kind == A_TOUCH || r->kind == A_ACK || r->kind == A_NACK)
        conn_log_id(r->c, r->arg);
    char body[160];
    int len = 0;
    switch (r->kind) {
    case A_JOIN: len = snprintf(body, sizeof body, "{\"unfinished\": 0}\n"); break;
    case A_TOUCH:
        len = snprintf(body, sizeof body, "{\"lease_deadline\": %.3f}\n", res->deadline_ms / 1000.0);
        break;
    case A_ACK: /* by hand: once per job */
        len = (int)(TEXT(text_u64(TEXT(body, "{\"acked\": "), r->arg), "}\n") - body);
        break;
    case A_NACK:
        len = snprintf(body, sizeof body, "{\"%s\": %" PRIu64 "}\n", res->dead ? "dead" : "released",
                       r->arg);
        break;
    case A_BULK:
        if (r->arg == QSVC_SHUTDOWN)
            len = snprintf(body, sizeof body, "{\"shutdown\": %s}\n",
                           r->flag ? "\"immediate\"" : "true");
        else
            len = snprintf(body, sizeof body, "{\"%s\": %" PRIu64 "}\n",
                           r->arg == QSVC_DEAD_REQUEUE ? "requeued" : "purged", res->n);
        break;
    }
    reply(r->c, 200, CT_JSON, NULL, body, (size_t)len);
}

/* The answer for outcome st of r's call. */
static void areq_render(const struct areq *r, int st) {
    struct conn *c = r->c;
    const struct qsvc_result *res = &r->call.res;
    struct buf b = BUF_INIT;
    int err = 0;
    if (r->kind == A_PUT) {
        render_put(r, st);
    } else if (r->kind == A_BATCH) {
        render_batch(r, st);
    } else if ((r->kind == A_RESERVE && (st == QSVC_ERR_EMPTY || st == QSVC_ERR_TIMEOUT)) ||
               (r->kind == A_JOIN && st == QSVC_ERR_TIMEOUT)) {
        reply(c, 204, NULL, NULL, "", 0);
    } else if (st != QSVC_OK) {
        render_error(r, st);
    } else if (r->kind == A_STATS || r->kind == A_DECLARE) {
        err |= stats_json(&b, res->queue) | buf_append(&b, "\n", 1);
        reply_buf(c, r->kind == A_DECLARE && res->created ? 201 : 200, err, &b);
    } else if (r->kind == A_DELETE) {
        err |= buf_appends(&b, "{\"deleted\": ");
        err |= buf_append_json_str(&b, r->qname, r->qlen) | buf_appends(&b, "}\n");
        reply_buf(c, 200, err, &b);
    } else if (r->kind == A_RESERVE) {
        render_jobs(r, res->jobs, res->njobs);
    } else if (r->kind == A_DEAD) {
        render_dead(r);
    } else if (r->kind == A_PEEK) {
        const struct queue_job_info *j = res->jobs;
        char extra[200];
        conn_log_id(c, j->id);
        snprintf(extra, sizeof extra,
                 "Job-Id: %" PRIu64 "\r\nJob-State: %s\r\nJob-Attempt: %u\r\nJob-Priority: %d\r\n",
                 j->id, state_name(j->state), j->attempt, j->priority);
        reply(c, 200, CT_OCTETS, extra, j->payload, j->len);
    } else {
        render_small(r);
    }
}

/* ---- request state ------------------------------------------------------------------ */

static void areq_free(struct areq *r) {
    free(r->owned);
    free(r);
}

/* The call finished later, from the loop: answer and let the connection go on. */
static void areq_done(struct qsvc_call *call, int st) {
    struct areq *r = (struct areq *)call;
    struct conn *c = r->c;
    areq_render(r, st);
    areq_free(r);
    conn_done(c);
}

/* The client left while its call was pending. */
static void areq_cancel(void *arg) {
    struct areq *r = arg;
    qsvc_cancel(&r->call);
    areq_free(r);
}

static struct qsvc_call *areq_keep(struct qsvc_call *call) {
    struct areq *r = (struct areq *)call;
    struct areq *k = malloc(sizeof *k + r->qlen);
    if (!k)
        return NULL;
    *k = *r;
    if (r->qlen) /* GET /queues has no name (NULL): kept by a remote backend */
        memcpy(k->qcopy, r->qname, r->qlen);
    k->qname = k->qcopy;
    r->kept = k;
    return &k->call;
}

static void areq_init(struct areq *r, struct conn *c, int kind, const char *qname, size_t qlen) {
    r->call.done = areq_done;
    r->call.keep = areq_keep;
    r->c = c;
    r->kept = NULL;
    r->kind = (uint8_t)kind;
    r->framed = 0;
    r->qname = qname;
    r->qlen = (uint8_t)qlen;
    r->owned = NULL;
    r->call.res.unknown = 0;
}

/* Answer now, or say the answer comes later. */
static enum handler_result areq_finish(struct areq *r, int st) {
    if (st == QSVC_PENDING) {
        conn_pending(r->c, areq_cancel, r->kept);
        return HANDLER_PENDING;
    }
    areq_render(r, st);
    free(r->owned);
    return HANDLER_DONE;
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

/* Batch put body: frames "<len>\n<payload>\n", checked whole before anything is put. */
static enum handler_result do_put_batch(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                        int32_t prio, uint64_t delay_ms, uint64_t wait_ms,
                                        const char *body, size_t len) {
    size_t count = 0;
    char err[96];
    if (queue_batch_parse(body, len, NULL, &count, err, sizeof err) < 0)
        return reply_fail(c, 400, "%s", err);
    struct qsvc_batch_job *jobs = malloc(count * sizeof *jobs);
    if (!jobs)
        return reply_fail(c, 503, "out of memory");
    queue_batch_parse(body, len, jobs, &count, err, sizeof err);
    struct areq r;
    areq_init(&r, c, A_BATCH, p->name, p->name_len);
    r.owned = jobs;
    r.arg = count;
    return areq_finish(&r, qsvc_put_batch(svc, &r.call, p->name, p->name_len, jobs, count, prio,
                                          delay_ms, wait_ms));
}

static enum handler_result do_put(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                  const struct http_request *req, const char *body, size_t len) {
    static const char *const known[] = {"wait", "delay", "priority", "batch", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    uint64_t wait_ms = 0, delay_ms = 0;
    int64_t prio = 0, batch = 0;
    if (api_param_seconds(req, "wait", &wait_ms) < 0 || api_param_seconds(req, "delay", &delay_ms) < 0)
        return reply_fail(c, 400, "wait and delay are non-negative numbers of seconds");
    if (api_param_int(req, "priority", INT32_MIN, INT32_MAX, &prio) < 0)
        return reply_fail(c, 400, "priority is a whole number (lower first)");
    if (api_param_int(req, "batch", 0, 1, &batch) < 0)
        return reply_fail(c, 400, "batch is 0 or 1");
    if (batch)
        return do_put_batch(c, svc, p, (int32_t)prio, delay_ms, wait_ms, body, len);
    const struct http_header *kh = http_find_header(req->headers, req->nheaders, "idempotency-key");
    if (kh && (kh->value_len == 0 || kh->value_len > QUEUE_KEY_MAX))
        return reply_fail(c, 400, "Idempotency-Key must be 1 to %d bytes", QUEUE_KEY_MAX);
    struct queue_put put = {body, len, (int32_t)prio, delay_ms, kh ? kh->value : NULL,
                            kh ? kh->value_len : 0};
    struct areq r;
    areq_init(&r, c, A_PUT, p->name, p->name_len);
    r.arg = len;
    return areq_finish(&r, qsvc_put(svc, &r.call, p->name, p->name_len, &put, wait_ms));
}

static enum handler_result do_reserve(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                      const struct http_request *req) {
    static const char *const known[] = {"wait", "lease", "count", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    uint64_t wait_ms = 0, lease_ms = 0;
    int64_t count = 1;
    if (api_param_seconds(req, "wait", &wait_ms) < 0 || api_param_seconds(req, "lease", &lease_ms) < 0)
        return reply_fail(c, 400, "wait and lease are non-negative numbers of seconds");
    if (api_param_int(req, "count", 1, MAX_COUNT, &count) < 0)
        return reply_fail(c, 400, "count is a whole number from 1 to %d", MAX_COUNT);
    size_t cl;
    struct queue_job_info jobs[MAX_COUNT];
    struct areq r;
    areq_init(&r, c, A_RESERVE, p->name, p->name_len);
    r.framed = http_query_get(req, "count", &cl) != NULL && count > 1;
    return areq_finish(&r, qsvc_reserve(svc, &r.call, p->name, p->name_len, (unsigned)count,
                                        lease_ms, wait_ms, jobs));
}

static enum handler_result do_join(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                   const struct http_request *req) {
    static const char *const known[] = {"wait", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    uint64_t wait_ms = 0;
    if (api_param_seconds(req, "wait", &wait_ms) < 0)
        return reply_fail(c, 400, "wait is a non-negative number of seconds");
    struct areq r;
    areq_init(&r, c, A_JOIN, p->name, p->name_len);
    return areq_finish(&r, qsvc_join(svc, &r.call, p->name, p->name_len, wait_ms));
}

static enum handler_result do_job(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                  const struct http_request *req) {
    int64_t attempt = 0;
    uint64_t ms = 0;
    if (api_param_int(req, "attempt", 0, UINT32_MAX, &attempt) < 0)
        return reply_fail(c, 400, "attempt is a whole number (the Job-Attempt of the reserve)");
    struct areq r;
    areq_init(&r, c, A_PEEK, p->name, p->name_len);
    r.arg = p->id;
    if (!p->verb) {
        if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD)
            return fail_method(c, "GET, HEAD", "GET a job to peek at it");
        static const char *const none[] = {NULL};
        if (api_params_known(c, req, none) < 0)
            return HANDLER_DONE;
        struct queue_job_info j;
        return areq_finish(&r, qsvc_peek(svc, &r.call, p->name, p->name_len, p->id, &j));
    }
    if (req->method != HTTP_M_POST)
        return fail_method(c, "POST", "POST to %.*s a job", (int)p->verb_len, p->verb);
    static const char *const touch_known[] = {"lease", "attempt", NULL};
    static const char *const ack_known[] = {"attempt", NULL};
    static const char *const nack_known[] = {"delay", "attempt", NULL};
    const char *const *known = seg_is(p->verb, p->verb_len, "touch") ? touch_known
                               : seg_is(p->verb, p->verb_len, "nack") ? nack_known
                                                                      : ack_known;
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    if (seg_is(p->verb, p->verb_len, "touch")) {
        if (api_param_seconds(req, "lease", &ms) < 0)
            return reply_fail(c, 400, "lease is a non-negative number of seconds");
        r.kind = A_TOUCH;
        return areq_finish(&r, qsvc_touch(svc, &r.call, p->name, p->name_len, p->id,
                                          (uint32_t)attempt, ms));
    }
    if (seg_is(p->verb, p->verb_len, "ack")) {
        r.kind = A_ACK;
        return areq_finish(&r, qsvc_ack(svc, &r.call, p->name, p->name_len, p->id,
                                        (uint32_t)attempt));
    }
    if (seg_is(p->verb, p->verb_len, "nack")) {
        if (api_param_seconds(req, "delay", &ms) < 0)
            return reply_fail(c, 400, "delay is a non-negative number of seconds");
        r.kind = A_NACK;
        return areq_finish(&r, qsvc_nack(svc, &r.call, p->name, p->name_len, p->id,
                                         (uint32_t)attempt, ms));
    }
    return reply_fail(c, 404, "no such job action: %.*s (ack, nack, touch, result)", (int)p->verb_len, p->verb);
}

static enum handler_result do_dead(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                   const struct http_request *req) {
    if (req->method != HTTP_M_GET)
        return fail_method(c, "GET", "GET the dead letters");
    static const char *const known[] = {"after", "limit", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    int64_t after = 0, limit = 100;
    if (api_param_int(req, "after", 0, INT64_MAX, &after) < 0 ||
        api_param_int(req, "limit", 1, 1000, &limit) < 0)
        return reply_fail(c, 400, "after is a job id, limit 1 to 1000");
    struct queue_job_info *jobs = malloc((size_t)limit * sizeof *jobs);
    if (!jobs)
        return reply_fail(c, 503, "out of memory");
    struct areq r;
    areq_init(&r, c, A_DEAD, p->name, p->name_len);
    r.owned = jobs;
    return areq_finish(&r, qsvc_dead_list(svc, &r.call, p->name, p->name_len, (uint64_t)after,
                                          jobs, (size_t)limit));
}

static enum handler_result do_admin(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                    const struct http_request *req) {
    if (seg_is(p->op, p->op_len, "dead"))
        return do_dead(c, svc, p, req);
    if (req->method != HTTP_M_POST)
        return fail_method(c, "POST", "POST to %.*s", (int)p->op_len, p->op);
    static const char *const purge_known[] = {NULL};
    static const char *const shutdown_known[] = {"immediate", NULL};
    static const char *const dead_known[] = {"id", NULL};
    if (api_params_known(c, req, seg_is(p->op, p->op_len, "purge")      ? purge_known
                             : seg_is(p->op, p->op_len, "shutdown") ? shutdown_known
                                                                    : dead_known) < 0)
        return HANDLER_DONE;
    int64_t id = 0, flag = 0;
    if (api_param_int(req, "id", 0, INT64_MAX, &id) < 0 || api_param_int(req, "immediate", 0, 1, &flag) < 0)
        return reply_fail(c, 400, "id is a job id, immediate 0 or 1");
    struct areq r;
    areq_init(&r, c, A_BULK, p->name, p->name_len);
    r.flag = (uint8_t)flag; /* 0 or 1 */
    if (seg_is(p->op, p->op_len, "purge"))
        r.arg = QSVC_PURGE;
    else if (seg_is(p->op, p->op_len, "shutdown"))
        r.arg = QSVC_SHUTDOWN;
    else if (seg_is(p->op, p->op_len, "dead/requeue"))
        r.arg = QSVC_DEAD_REQUEUE;
    else if (seg_is(p->op, p->op_len, "dead/purge"))
        r.arg = QSVC_DEAD_PURGE;
    else
        return reply_fail(c, 404, "no such queue endpoint: %.*s", (int)p->op_len, p->op);
    return areq_finish(&r, qsvc_bulk(svc, &r.call, p->name, p->name_len, (int)r.arg,
                                     r.arg == QSVC_SHUTDOWN ? (uint64_t)flag : (uint64_t)id));
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
    if (!queue_name_valid(p->name, p->name_len))
        return reply_error(c, 400, "queue names are 1 to %d of A-Z a-z 0-9 _ . -, not \".\" or \"..\"", QUEUE_NAME_MAX),
               -1;
    if (!slash || slash + 1 == end)
        return 0;
    p->op = slash + 1;
    p->op_len = (size_t)(end - p->op);
    if (p->op_len > 5 && memcmp(p->op, "jobs/", 5) == 0) {
        const char *d = p->op + 5, *e = d;
        uint64_t id = 0; /* 19 digits at most (refused below past that): no overflow */
        while (e < end && isdigit((unsigned char)*e))
            id = id * 10 + (uint64_t)(*e++ - '0');
        if (e == d || e - d > 19 || (e < end && *e != '/'))
            return reply_error(c, 400, "job ids are whole numbers"), -1;
        p->id = id; /* not strtoull: about 180 instructions per ack */
        if (e < end && e + 1 < end) {
            p->verb = e + 1;
            p->verb_len = (size_t)(end - p->verb);
        }
        p->op_len = 4;
    }
    return 0;
}

/*
 * GET /queues?limit=N&cursor=NAME: a page of queues in name order. A page
 * of more than LIST_SLICE queues is built LIST_SLICE per loop turn (a
 * zero-timeout event between slices, so other clients are served in
 * between), each slice listed after the last name of the one before: the
 * page is the pages of LIST_SLICE it is made of, with the same guarantees.
 * A backend may answer a slice later (Redis): the slice's call lives in
 * the page, and the page goes on from its done().
 */
struct lpage {
    struct conn *c;
    struct qsvc *svc;
    struct event *ev;
    struct qsvc_call call;         /* the slice being listed */
    int waiting;                   /* call is kept by the backend */
    struct buf b;                  /* the answer so far */
    size_t left;                   /* queues the page may still take */
    size_t n;                      /* queues in it so far */
    char last[QUEUE_NAME_MAX + 1]; /* the last of them */
    size_t last_len;
};

#define LPAGE_WAIT 2 /* lpage_slice: the backend answers later */

static void lpage_free(struct lpage *lp) {
    if (lp->waiting)
        qsvc_cancel(&lp->call);
    if (lp->ev)
        event_free(lp->ev);
    buf_free(&lp->b);
    free(lp);
}

static struct qsvc_call *lpage_keep(struct qsvc_call *call) {
    return call; /* it lives in the page, on the heap, already */
}

/* Add a listed slice to lp->b. 1 when the page is complete, 0 when more
 * slices follow, or a qsvc error (< 0). */
static int lpage_take(struct lpage *lp, const struct qsvc_result *res) {
    int err = 0;
    for (size_t i = 0; i < res->nqueues; i++)
        err |= (lp->n++ ? buf_appends(&lp->b, ", ") : 0) | stats_json(&lp->b, &res->queues[i]);
    if (err)
        return QSVC_ERR_NOMEM;
    if (res->nqueues) {
        const struct qsvc_queue *q = &res->queues[res->nqueues - 1];
        memcpy(lp->last, q->name, q->name_len);
        lp->last_len = q->name_len;
    }
    lp->left -= res->nqueues;
    if (res->more && lp->left)
        return 0;
    err |= buf_appends(&lp->b, "], \"next_cursor\": ");
    err |= res->more && lp->n ? buf_append_json_str(&lp->b, lp->last, lp->last_len)
                              : buf_appends(&lp->b, "null");
    err |= buf_appends(&lp->b, "}\n");
    return err ? QSVC_ERR_NOMEM : 1;
}

static void lpage_on_list(struct qsvc_call *call, int status);

/* List the next slice: lpage_take's answer, or LPAGE_WAIT. */
static int lpage_slice(struct lpage *lp) {
    memset(&lp->call, 0, sizeof lp->call);
    lp->call.keep = lpage_keep;
    lp->call.done = lpage_on_list;
    size_t max = lp->left < LIST_SLICE ? lp->left : LIST_SLICE;
    int st = qsvc_list(lp->svc, &lp->call, lp->last, lp->last_len, max);
    if (st == QSVC_PENDING) {
        lp->waiting = 1;
        return LPAGE_WAIT;
    }
    if (st != QSVC_OK)
        return st < 0 ? st : QSVC_ERR_UNAVAILABLE;
    return lpage_take(lp, &lp->call.res);
}

static void lpage_reply(struct lpage *lp, int st) {
    if (st == 1)
        reply(lp->c, 200, CT_JSON, NULL, buf_start(&lp->b), lp->b.len);
    else if (st == QSVC_ERR_NOMEM)
        reply_error_fields(lp->c, 503, RETRY_1, reason_of(st), "out of memory");
    else
        reply_error_fields(lp->c, 503, NULL, reason_of(st) ? reason_of(st) : REASON_STORAGE, "%s",
                           qsvc_strerror(st));
}

static void lpage_next(evutil_socket_t fd, short what, void *arg);

/* After a slice: schedule the next (0), wait for the backend, or answer. */
static int lpage_go_on(struct lpage *lp, int st) {
    static const struct timeval now = {0, 0};
    if (st == LPAGE_WAIT)
        return 0;
    if (st == 0) {
        if (!lp->ev)
            lp->ev = evtimer_new(lp->c->srv->base, lpage_next, lp);
        if (lp->ev && evtimer_add(lp->ev, &now) == 0)
            return 0;
        st = QSVC_ERR_NOMEM;
    }
    lpage_reply(lp, st);
    return 1;
}

static void lpage_finish(struct lpage *lp, int st) {
    if (lpage_go_on(lp, st)) {
        struct conn *c = lp->c;
        lpage_free(lp);
        conn_done(c);
    }
}

static void lpage_next(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct lpage *lp = arg;
    lpage_finish(lp, lpage_slice(lp));
}

static void lpage_on_list(struct qsvc_call *call, int status) {
    struct lpage *lp = container_of(call, struct lpage, call);
    lp->waiting = 0;
    int st = status == QSVC_OK ? lpage_take(lp, &call->res)
                               : status < 0 ? status : QSVC_ERR_UNAVAILABLE;
    lpage_finish(lp, st);
}

/* The client left while its page was being built. */
static void lpage_cancel(void *arg) {
    lpage_free(arg);
}

static enum handler_result do_list(struct conn *c, struct qsvc *svc,
                                   const struct http_request *req) {
    static const char *const known[] = {"limit", "cursor", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    int64_t limit = LIST_DEFAULT;
    if (api_param_int(req, "limit", 1, LIST_MAX, &limit) < 0)
        return reply_fail(c, 400, "limit: a whole number from 1 to %d", LIST_MAX);
    size_t clen = 0;
    const char *cursor = http_query_get(req, "cursor", &clen);
    if (cursor && clen && !queue_name_valid(cursor, clen))
        return reply_fail(c, 400, "cursor: the next_cursor of the previous page (a queue name)");
    struct lpage *lp = calloc(1, sizeof *lp);
    if (!lp)
        return reply_fail(c, 503, "out of memory");
    *lp = (struct lpage){.c = c, .svc = svc, .b = BUF_INIT, .left = (size_t)limit};
    if (cursor) {
        memcpy(lp->last, cursor, clen);
        lp->last_len = clen;
    }
    int st = buf_appends(&lp->b, "{\"queues\": [") ? QSVC_ERR_NOMEM : lpage_slice(lp);
    if (!lpage_go_on(lp, st)) {
        conn_pending(c, lpage_cancel, lp);
        return HANDLER_PENDING;
    }
    lpage_free(lp);
    return HANDLER_DONE;
}

/* /queues/{q} itself: stats, declare, delete. */
static enum handler_result do_queue(struct conn *c, struct qsvc *svc, const struct qpath *p,
                                    const struct http_request *req, const char *body,
                                    size_t len) {
    int m = req->method;
    struct areq r;
    static const char *const none[] = {NULL};
    if (api_params_known(c, req, none) < 0)
        return HANDLER_DONE;
    if (m == HTTP_M_PUT) {
        struct qsvc_settings set;
        char ebuf[200];
        const char *err = queue_settings_parse(body, len, &set, ebuf, sizeof ebuf);
        if (err)
            return reply_fail(c, 400, "%s", err);
        areq_init(&r, c, A_DECLARE, p->name, p->name_len);
        return areq_finish(&r, qsvc_declare(svc, &r.call, p->name, p->name_len, &set));
    }
    if (m == HTTP_M_DELETE) {
        areq_init(&r, c, A_DELETE, p->name, p->name_len);
        return areq_finish(&r, qsvc_delete(svc, &r.call, p->name, p->name_len));
    }
    areq_init(&r, c, A_STATS, p->name, p->name_len);
    if (m != HTTP_M_GET && m != HTTP_M_HEAD) {
        /* 404 before 405 for a queue that does not exist, as for every other path. */
        int st = qsvc_stats(svc, &r.call, p->name, p->name_len);
        if (st != QSVC_OK)
            return areq_finish(&r, st);
        return fail_method(c, "GET, HEAD, PUT, DELETE", "GET, PUT or DELETE a queue");
    }
    return areq_finish(&r, qsvc_stats(svc, &r.call, p->name, p->name_len));
}

enum handler_result api_queues(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len) {
    struct qsvc *svc = ctx;
    if (!api_authorized(c, req))
        return HANDLER_DONE;
    struct qpath p;
    if (parse_path(c, req, &p) < 0)
        return HANDLER_DONE;
    int m = req->method;
    if (!p.name) {
        if (m != HTTP_M_GET && m != HTTP_M_HEAD)
            return fail_method(c, "GET, HEAD", "GET /queues lists the queues");
        return do_list(c, svc, req);
    }
    if (!p.op)
        return do_queue(c, svc, &p, req, body, body_len);
    struct api_jobpath jp = {p.name, p.name_len, p.id, p.verb, p.verb_len,
                             p.op + 4 == req->path + req->path_len};
    enum handler_result hr; /* results and job listing (issue 17): api_result.c */
    if (seg_is(p.op, p.op_len, "jobs") && api_result_take(c, svc, &jp, req, body, body_len, &hr))
        return hr;
    if (seg_is(p.op, p.op_len, "jobs") && p.id == 0 && p.op + 4 == req->path + req->path_len) {
        if (m != HTTP_M_POST)
            return fail_method(c, "GET, HEAD, POST", "POST a job to put it, GET to list jobs");
        return do_put(c, svc, &p, req, body, body_len);
    }
    if (seg_is(p.op, p.op_len, "jobs"))
        return do_job(c, svc, &p, req);
    if (seg_is(p.op, p.op_len, "reserve")) {
        if (m != HTTP_M_POST)
            return fail_method(c, "POST", "POST to reserve");
        return do_reserve(c, svc, &p, req);
    }
    if (seg_is(p.op, p.op_len, "acks")) /* batch ack: api_queue_batch.c */
        return api_queue_acks(c, svc, p.name, p.name_len, req, body, body_len);
    if (seg_is(p.op, p.op_len, "join")) {
        if (m != HTTP_M_GET)
            return fail_method(c, "GET", "GET join");
        return do_join(c, svc, &p, req);
    }
    return do_admin(c, svc, &p, req);
}
