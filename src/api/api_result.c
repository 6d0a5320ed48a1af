/*
 * api_result: job results and job listing over HTTP (api_result.h). It
 * parses, calls the queue seam (qsvc_ack_result, qsvc_nack_error,
 * qsvc_result, qsvc_jobs) and renders; a call the seam keeps (a long poll,
 * an fsync) moves the request state to the heap, as api_queue.c does.
 *
 * Statuses of GET .../result: 200 acked (the result's bytes and content
 * type), 409 dead (JSON: reason, attempt, the nack's text), 410 dropped
 * while waited for (purge, immediate shutdown, queue deleted), 204 the
 * wait passed with the job still live, 404 no such job and no kept result
 * (never existed, acked without a result, or past result_ttl), 501 on a
 * backend without them.
 */
#include "api/api_result.h"

#include "api/api_kept.h"
#include "api/api_params.h"
#include "core/buf.h"
#include "http/http_parse.h"
#include "http/http_query.h"
#include "net/http_reply.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS_DEFAULT 100  /* GET .../jobs page size */
#define JOBS_MAX 1000     /* and its largest limit= */
#define PREVIEW_DEFAULT 256 /* payload bytes shown per job */
#define PREVIEW_MAX 65536

enum { R_ACK, R_NACK, R_RESULT, R_JOBS };

struct rreq {
    struct api_kept k;      /* first: a kept call is its rreq (R_JOBS: k.owned the jobs) */
    int kind;
    int state;              /* R_JOBS: enum queue_job_state */
    uint64_t id;
    size_t preview;         /* R_JOBS: payload bytes shown */
};

static const char *const state_names[] = {"ready", "delayed", "reserved", "dead"};

/* ---- parameters (the common ones: api_params.h) ------------------------------------- */

/* after=K:ID (a page's "next"), or after=ID for dead letters. 1 ok/absent (*set), -1 bad. */
static int param_cursor(const struct http_request *req, struct queue_cursor *cur, int *set) {
    size_t n;
    const char *v = http_query_get(req, "after", &n);
    *set = 0;
    if (!v)
        return 1;
    char tmp[48];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) { /* the ':' may come percent-encoded */
        if (m + 1 >= sizeof tmp)
            return -1;
        if (v[i] == '%' && i + 2 < n && v[i + 1] == '3' && (v[i + 2] == 'A' || v[i + 2] == 'a')) {
            tmp[m++] = ':';
            i += 2;
        } else {
            tmp[m++] = v[i];
        }
    }
    tmp[m] = '\0';
    n = m;
    if (n == 0)
        return -1;
    long long k = 0;
    unsigned long long id;
    int used = 0;
    if (strchr(tmp, ':')) {
        if (sscanf(tmp, "%lld:%llu%n", &k, &id, &used) != 2 || (size_t)used != n)
            return -1;
    } else if (sscanf(tmp, "%llu%n", &id, &used) != 1 || (size_t)used != n) {
        return -1;
    }
    if (!isdigit((unsigned char)tmp[n - 1]))
        return -1;
    cur->k = k;
    cur->id = id;
    *set = 1;
    return 1;
}

/* ---- rendering ----------------------------------------------------------------------- */

static int status_http(int st) {
    switch (st) {
    case QSVC_ERR_NOTFOUND:
    case QSVC_ERR_NOQUEUE: return 404;
    case QSVC_ERR_STATE: return 409;
    case QSVC_ERR_INVALID: return 400;
    case QSVC_ERR_TOOBIG: return 413;
    case QSVC_ERR_SHUTDOWN:
    case QSVC_ERR_DELETED: return 410;
    case QSVC_ERR_NOSPACE: return 507;
    case QSVC_ERR_UNSUPPORTED: return 501;
    default: return 503; /* memory, unavailable, draining */
    }
}

static void reply_buf(struct conn *c, int status, int err, struct buf *b) {
    if (err)
        reply_error(c, 500, "out of memory");
    else
        reply(c, status, CT_JSON, NULL, buf_start(b), b->len);
    buf_free(b);
}

static void render_error(const struct rreq *r, int st) {
    struct conn *c = r->k.c;
    const struct qsvc_result *res = &r->k.call.res;
    int n = (int)r->k.qlen;
    if (api_kept_reply_shared(&r->k, st))
        return;
    switch (st) {
    case QSVC_ERR_UNAVAILABLE:
    case QSVC_ERR_NOSPACE: { /* as api_queue.c: the 503 reasons of issue 16 */
        char fields[96];
        snprintf(fields, sizeof fields, ", \"reason\": \"storage\"");
        if (res->unknown) /* made in memory, not confirmed: name the job */
            snprintf(fields, sizeof fields,
                     ", \"reason\": \"storage\", \"outcome\": \"unknown\", \"id\": %" PRIu64,
                     res->id);
        reply_error_fields(c, status_http(st), NULL, fields, "%s",
                           res->why[0] ? res->why : "journal failure");
        return;
    }
    case QSVC_ERR_UNSUPPORTED:
        reply_error(c, 501, "job results and job listing are not supported by this queue "
                            "backend (docs/QUEUES.md)");
        return;
    case QSVC_ERR_MEMORY:
        reply_error_fields(c, 503, "Retry-After: 1\r\n", ", \"reason\": \"memory limit\"",
                           "job %" PRIu64 ": keeping this result would pass the memory limit "
                           "([queues] mem_limit); the job stays reserved", r->id);
        return;
    case QSVC_ERR_TOOBIG:
        reply_error(c, 413, "job %" PRIu64 ": the result is larger than the queue's max_payload (%"
                            PRIu64 " bytes)", r->id, res->limit);
        return;
    }
    if (r->kind == R_RESULT && st == QSVC_ERR_NOTFOUND) {
        reply_error(c, 404, "no job %" PRIu64 " in queue %.*s and no result kept for it (never "
                            "put, acked without a result, or kept past result_ttl)", r->id, n,
                    r->k.qname);
        return;
    }
    if (r->kind == R_JOBS && st == QSVC_ERR_NOTFOUND) {
        reply_error(c, 400, "after= names no dead letter of queue %.*s", n, r->k.qname);
        return;
    }
    if (r->kind == R_JOBS)
        reply_error(c, status_http(st), "queue %.*s: %s", n, r->k.qname, qsvc_strerror(st));
    else
        reply_error(c, status_http(st), "job %" PRIu64 ": %s", r->id, qsvc_strerror(st));
}

static const char *gone_text(int gone, const char **code) {
    switch (gone) {
    case QSVC_GONE_SHUTDOWN: *code = "shutdown"; return "dropped by an immediate shutdown";
    case QSVC_GONE_DEAD_PURGED: *code = "dead_purged"; return "purged from the dead letters";
    case QSVC_GONE_DELETED: *code = "queue_deleted"; return "its queue was deleted";
    default: *code = "purged"; return "purged";
    }
}

static const char *dead_text(int reason) {
    switch (reason) {
    case QUEUE_DEAD_NACKED: return "nacked on its last attempt";
    case QUEUE_DEAD_LEASE: return "its last lease ran out (max_attempts deliveries, no ack)";
    }
    return "the reason was not recorded";
}

static void render_result(const struct rreq *r) {
    struct conn *c = r->k.c;
    const struct qsvc_result *res = &r->k.call.res;
    const struct queue_result_info *ri = res->result;
    struct buf b = BUF_INIT;
    int err = 0;
    conn_log_id(c, r->id);
    if (res->gone) {
        const char *code, *text = gone_text(res->gone, &code);
        err |= buf_appendf(&b, "{\"error\": \"job %" PRIu64 " was dropped: %s\", \"status\": 410, "
                           "\"id\": %" PRIu64 ", \"state\": \"dropped\", \"reason\": \"%s\"}\n",
                           r->id, text, r->id, code);
        reply_buf(c, 410, err, &b);
        return;
    }
    if (ri->outcome == QUEUE_OUTCOME_DEAD) {
        err |= buf_appendf(&b, "{\"error\": \"job %" PRIu64 " is dead: %s\", \"status\": 409, "
                           "\"id\": %" PRIu64 ", \"state\": \"dead\", \"reason\": \"%s\", "
                           "\"attempt\": %u, \"detail\": ",
                           r->id, dead_text(ri->reason), r->id,
                           queue_dead_reason_name(ri->reason), ri->attempt);
        if (ri->len)
            err |= buf_append_json_str(&b, ri->body, ri->len);
        else
            err |= buf_appends(&b, "null");
        err |= buf_appends(&b, "}\n");
        reply_buf(c, 409, err, &b);
        return;
    }
    char extra[256], ctype[QUEUE_CTYPE_MAX + 1];
    int len = snprintf(extra, sizeof extra, "Job-Id: %" PRIu64 "\r\nJob-Outcome: acked\r\n", r->id);
    if (ri->attempt)
        len += snprintf(extra + len, sizeof extra - (size_t)len, "Job-Attempt: %u\r\n", ri->attempt);
    if (ri->expires)
        snprintf(extra + len, sizeof extra - (size_t)len, "Result-Expires: %.3f\r\n",
                 ri->expires / 1000.0);
    memcpy(ctype, ri->ctype, ri->ctype_len);
    ctype[ri->ctype_len] = '\0';
    reply(c, 200, ri->ctype_len ? ctype : CT_OCTETS, extra, ri->body, ri->len);
}

static int job_json(struct buf *b, const struct queue_job_info *j, size_t preview) {
    int err = buf_appendf(b, "{\"id\": %" PRIu64 ", \"state\": \"%s\", \"priority\": %d, "
                          "\"attempt\": %u, \"len\": %zu",
                          j->id, state_names[j->state & 3], j->priority, j->attempt, j->len);
    if (j->state == QUEUE_JOB_RESERVED)
        err |= buf_appendf(b, ", \"lease_deadline\": %.3f", j->deadline / 1000.0);
    if (j->state == QUEUE_JOB_DELAYED)
        err |= buf_appendf(b, ", \"due\": %.3f", j->deadline / 1000.0);
    if (j->state == QUEUE_JOB_DEAD) {
        err |= buf_appendf(b, ", \"reason\": \"%s\", \"error\": ",
                           queue_dead_reason_name(j->reason));
        if (j->error)
            err |= buf_append_json_str(b, j->error, j->error_len);
        else
            err |= buf_appends(b, "null");
    }
    size_t n = j->len < preview ? j->len : preview;
    err |= buf_appends(b, ", \"payload\": ");
    err |= buf_append_json_str(b, j->payload, n);
    err |= buf_appendf(b, ", \"truncated\": %s}", n < j->len ? "true" : "false");
    return err;
}

static void render_jobs(const struct rreq *r) {
    const struct qsvc_result *res = &r->k.call.res;
    struct buf b = BUF_INIT;
    int err = buf_appends(&b, "{\"queue\": ");
    err |= buf_append_json_str(&b, r->k.qname, r->k.qlen);
    err |= buf_appendf(&b, ", \"state\": \"%s\", \"jobs\": [", state_names[r->state]);
    for (unsigned i = 0; i < res->njobs; i++) {
        err |= buf_appends(&b, i ? ", " : "");
        err |= job_json(&b, &res->jobs[i], r->preview);
    }
    err |= buf_appendf(&b, "], \"more\": %s", res->more ? "true" : "false");
    if (res->more && res->njobs) {
        if (r->state == QUEUE_JOB_DEAD)
            err |= buf_appendf(&b, ", \"next\": \"%" PRIu64 "\"", res->next.id);
        else
            err |= buf_appendf(&b, ", \"next\": \"%" PRId64 ":%" PRIu64 "\"", res->next.k,
                               res->next.id);
    }
    err |= buf_appends(&b, "}\n");
    reply_buf(r->k.c, 200, err, &b);
}

static void rreq_render(const struct api_kept *k, int st) {
    const struct rreq *r = (const struct rreq *)k;
    char body[160];
    int len;
    if (r->kind == R_RESULT && st == QSVC_ERR_TIMEOUT) {
        reply(r->k.c, 204, NULL, NULL, "", 0);
    } else if (st != QSVC_OK) {
        render_error(r, st);
    } else if (r->kind == R_RESULT) {
        render_result(r);
    } else if (r->kind == R_JOBS) {
        render_jobs(r);
    } else {
        conn_log_id(r->k.c, r->id);
        if (r->kind == R_ACK)
            len = snprintf(body, sizeof body, "{\"acked\": %" PRIu64 ", \"result\": true}\n", r->id);
        else
            len = snprintf(body, sizeof body, "{\"%s\": %" PRIu64 "}\n",
                           r->k.call.res.dead ? "dead" : "released", r->id);
        reply(r->k.c, 200, CT_JSON, NULL, body, (size_t)len);
    }
}

/* ---- request state ------------------------------------------------------------------- */

static void rreq_init(struct rreq *r, struct conn *c, int kind, const struct api_jobpath *p) {
    memset(r, 0, sizeof *r);
    api_kept_init(&r->k, sizeof *r, c, rreq_render, p->name, p->name_len);
    r->kind = kind;
    r->id = p->id;
}

/* ---- handlers ------------------------------------------------------------------------ */

static int verb_is(const struct api_jobpath *p, const char *lit) {
    return p->verb && p->verb_len == strlen(lit) && memcmp(p->verb, lit, p->verb_len) == 0;
}

static enum handler_result do_finish(struct conn *c, struct qsvc *svc, const struct api_jobpath *p,
                                     const struct http_request *req, const char *body,
                                     size_t len, int ack) {
    uint64_t attempt = 0, delay = 0;
    static const char *const ack_known[] = {"attempt", NULL};
    static const char *const nack_known[] = {"delay", "attempt", NULL};
    if (api_params_known(c, req, ack ? ack_known : nack_known) < 0)
        return HANDLER_DONE;
    if (api_param_uint(req, "attempt", UINT32_MAX, &attempt) < 0)
        return reply_fail(c, 400, "attempt is a whole number (the Job-Attempt of the reserve)");
    struct qsvc_outcome o = {"", 0, body, len};
    struct rreq r;
    rreq_init(&r, c, ack ? R_ACK : R_NACK, p);
    if (ack) {
        const struct http_header *ct =
            http_find_header(req->headers, req->nheaders, "content-type");
        if (ct) {
            if (ct->value_len > QUEUE_CTYPE_MAX)
                return reply_fail(c, 400, "a result's Content-Type is at most %d bytes",
                                  QUEUE_CTYPE_MAX);
            for (size_t i = 0; i < ct->value_len; i++)
                if (ct->value[i] < 0x20 || ct->value[i] > 0x7e)
                    return reply_fail(c, 400, "a result's Content-Type is printable ASCII");
            o.ctype = ct->value;
            o.ctype_len = ct->value_len;
        }
        return api_kept_finish(&r.k, qsvc_ack_result(svc, &r.k.call, p->name, p->name_len,
                                                     p->id, (uint32_t)attempt, &o));
    }
    if (api_param_seconds(req, "delay", &delay) < 0)
        return reply_fail(c, 400, "delay is a non-negative number of seconds");
    if (!len) { /* the error text in a header */
        const struct http_header *h = http_find_header(req->headers, req->nheaders, "job-error");
        o.body = h->value;
        o.len = h->value_len;
    }
    return api_kept_finish(&r.k, qsvc_nack_error(svc, &r.k.call, p->name, p->name_len, p->id,
                                                 (uint32_t)attempt, delay, &o));
}

static enum handler_result do_result(struct conn *c, struct qsvc *svc, const struct api_jobpath *p,
                                     const struct http_request *req) {
    if (req->method != HTTP_M_GET)
        return reply_error_hdr(c, 405, "Allow: GET\r\n", "GET a job's result"), HANDLER_DONE;
    uint64_t wait = 0;
    static const char *const known[] = {"wait", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    if (api_param_seconds(req, "wait", &wait) < 0)
        return reply_fail(c, 400, "wait is a non-negative number of seconds");
    struct rreq r;
    rreq_init(&r, c, R_RESULT, p);
    return api_kept_finish(&r.k, qsvc_result(svc, &r.k.call, p->name, p->name_len, p->id, wait));
}

static enum handler_result do_jobs(struct conn *c, struct qsvc *svc, const struct api_jobpath *p,
                                   const struct http_request *req) {
    size_t n;
    static const char *const known[] = {"state", "limit", "after", "preview", NULL};
    if (api_params_known(c, req, known) < 0)
        return HANDLER_DONE;
    const char *sv = http_query_get(req, "state", &n);
    int state = QUEUE_JOB_READY;
    if (sv) {
        for (state = 0; state < 4; state++)
            if (n == strlen(state_names[state]) && memcmp(sv, state_names[state], n) == 0)
                break;
        if (state == 4)
            return reply_fail(c, 400, "state is ready, reserved, delayed or dead");
    }
    uint64_t limit = JOBS_DEFAULT, preview = PREVIEW_DEFAULT;
    if (api_param_uint(req, "limit", JOBS_MAX, &limit) < 0 || limit == 0)
        return reply_fail(c, 400, "limit is a whole number from 1 to %d", JOBS_MAX);
    if (api_param_uint(req, "preview", PREVIEW_MAX, &preview) < 0)
        return reply_fail(c, 400, "preview is a whole number of bytes from 0 to %d", PREVIEW_MAX);
    struct queue_cursor after;
    int has_after;
    if (param_cursor(req, &after, &has_after) < 0)
        return reply_fail(c, 400, "after is the \"next\" of the page before");
    struct rreq r;
    rreq_init(&r, c, R_JOBS, p);
    r.state = state;
    r.preview = (size_t)preview;
    struct queue_job_info *jobs = malloc((size_t)limit * sizeof *jobs);
    if (!jobs)
        return reply_fail(c, 503, "out of memory");
    r.k.owned = jobs;
    return api_kept_finish(&r.k, qsvc_jobs(svc, &r.k.call, p->name, p->name_len, state,
                                           has_after ? &after : NULL, jobs, (size_t)limit,
                                           r.preview));
}

int api_result_take(struct conn *c, struct qsvc *svc, const struct api_jobpath *p,
                    const struct http_request *req, const char *body, size_t body_len,
                    enum handler_result *hr) {
    int m = req->method;
    if (p->bare && (m == HTTP_M_GET || m == HTTP_M_HEAD)) {
        *hr = do_jobs(c, svc, p, req);
        return 1;
    }
    if (!p->id || !p->verb)
        return 0;
    if (verb_is(p, "result")) {
        *hr = do_result(c, svc, p, req);
        return 1;
    }
    if (m != HTTP_M_POST)
        return 0;
    /* Only a body makes a result: HTTP clients add a Content-Type to empty POSTs (aiohttp). */
    if (verb_is(p, "ack") && body_len) {
        *hr = do_finish(c, svc, p, req, body, body_len, 1);
        return 1;
    }
    if (verb_is(p, "nack") &&
        (body_len || http_find_header(req->headers, req->nheaders, "job-error"))) {
        *hr = do_finish(c, svc, p, req, body, body_len, 0);
        return 1;
    }
    return 0;
}
