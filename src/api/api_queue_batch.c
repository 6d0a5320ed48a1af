/*
 * api_queue_batch: the batch ack over HTTP (api_queue_batch.h). The body is
 * one line per job, "<id>" or "<id> <attempt>"; each job is acked or
 * refused on its own (qsvc_ack_batch), and the answer says which:
 *
 *   200 {"acked": K, "results": [{"id": 7, "status": 200},
 *                                {"id": 8, "status": 409, "error": "..."}]}
 *
 * in the order of the body, each status the one a plain ack of that job
 * would have had (200, 404 no such job, 409 not reserved or a stale
 * attempt). Not all or nothing: the acks of one reserve are independent
 * (one job's lease running out must not hold back the others' task_done,
 * nor make the consumer resend the ones that took). The request as a whole
 * fails only where every plain ack would have: 404 no such queue, 503
 * storage (for Redis: maybe applied, as any 503 of a change), 400 a bad
 * body (nothing acked).
 */
#include "api/api_queue_batch.h"

#include "api/api_kept.h"
#include "api/api_params.h"
#include "api/api_queue_parse.h"
#include "core/buf.h"
#include "http/http_parse.h"
#include "net/http_reply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct breq {
    struct api_kept k;           /* first: a kept call is its breq */
    struct qsvc_ack_item *items; /* k.owned */
    size_t n;
};

static int item_http(int st) {
    switch (st) {
    case QSVC_OK: return 200;
    case QSVC_ERR_NOTFOUND: return 404;
    case QSVC_ERR_STATE: return 409;
    default: return 500;
    }
}

static void render_ok(const struct breq *r) {
    struct buf b = BUF_INIT;
    int err = buf_appendf(&b, "{\"acked\": %" PRIu64 ", \"results\": [", r->k.call.res.n);
    for (size_t i = 0; i < r->n; i++) {
        const struct qsvc_ack_item *it = &r->items[i];
        err |= buf_appendf(&b, "%s{\"id\": %" PRIu64 ", \"status\": %d", i ? ", " : "", it->id,
                           item_http(it->status));
        if (it->status != QSVC_OK)
            err |= buf_appendf(&b, ", \"error\": \"job %" PRIu64 ": %s\"", it->id,
                               qsvc_strerror(it->status));
        err |= buf_appends(&b, "}");
    }
    err |= buf_appends(&b, "]}\n");
    if (err)
        reply_error(r->k.c, 500, "out of memory");
    else
        reply(r->k.c, 200, CT_JSON, NULL, buf_start(&b), b.len);
    buf_free(&b);
}

static void render(const struct api_kept *k, int st) {
    const struct breq *r = (const struct breq *)k;
    struct conn *c = k->c;
    const struct qsvc_result *res = &k->call.res;
    int n = (int)k->qlen;
    if (api_kept_reply_shared(k, st))
        return;
    switch (st) {
    case QSVC_OK: render_ok(r); return;
    case QSVC_ERR_UNAVAILABLE:
    case QSVC_ERR_NOSPACE:
        reply_error_fields(c, st == QSVC_ERR_NOSPACE ? 507 : 503, NULL,
                           res->unknown ? ", \"reason\": \"storage\", \"outcome\": \"unknown\""
                                        : ", \"reason\": \"storage\"",
                           "%s", res->why[0] ? res->why : qsvc_strerror(st));
        return;
    case QSVC_ERR_UNSUPPORTED:
        reply_error(c, 501, "batch acks are not supported by this queue backend");
        return;
    }
    reply_error(c, st == QSVC_ERR_SHUTDOWN || st == QSVC_ERR_DELETED ? 410 : 500, "queue %.*s: %s",
                n, k->qname, qsvc_strerror(st));
}

enum handler_result api_queue_acks(struct conn *c, struct qsvc *svc, const char *q, size_t qlen,
                                   const struct http_request *req, const char *body,
                                   size_t body_len) {
    if (req->method != HTTP_M_POST) {
        reply_error_hdr(c, 405, "Allow: POST\r\n", "POST the ids to ack, one per line");
        return HANDLER_DONE;
    }
    static const char *const none[] = {NULL};
    if (api_params_known(c, req, none) < 0)
        return HANDLER_DONE;
    char err[128];
    size_t n = 0;
    if (queue_acks_parse(body, body_len, NULL, &n, QUEUE_ACKS_MAX, err, sizeof err) < 0)
        return reply_fail(c, 400, "%s", err);
    struct breq r;
    memset(&r, 0, sizeof r);
    r.items = malloc(n * sizeof *r.items);
    if (!r.items)
        return reply_fail(c, 503, "out of memory");
    queue_acks_parse(body, body_len, r.items, &n, QUEUE_ACKS_MAX, err, sizeof err);
    api_kept_init(&r.k, sizeof r, c, render, q, qlen);
    r.k.owned = r.items;
    r.n = n;
    return api_kept_finish(&r.k, qsvc_ack_batch(svc, &r.k.call, q, qlen, r.items, n));
}
