/*
 * api_kept: the request state of an HTTP request that calls into the queue
 * seam and may be kept (svc/qsvc.h: keep(), done(), qsvc_cancel()). A
 * handler's request state begins with a struct api_kept, lives on the
 * handler's stack, and only moves to the heap when the seam keeps the call
 * (a long poll, a journal fsync, a remote backend), so an answer given at
 * once allocates nothing:
 *
 *   struct myreq { struct api_kept k; ...the handler's own fields... };
 *   struct myreq r;
 *   api_kept_init(&r.k, sizeof r, c, myreq_render, q, qlen);
 *   return api_kept_finish(&r.k, qsvc_something(svc, &r.k.call, q, qlen, ...));
 *
 * Once kept, the call ends one of two ways, exactly once: done() answers
 * with render(), frees the request and lets the connection go on
 * (conn_done); or the client leaves first and the request is cancelled
 * (qsvc_cancel) and freed without an answer. Either way `owned` is freed
 * with it.
 */
#ifndef AWAITD_API_KEPT_H
#define AWAITD_API_KEPT_H

#include "engine/queue.h" /* QUEUE_NAME_MAX */
#include "net/conn.h"
#include "svc/qsvc.h"

#include <stddef.h>

struct api_kept;

/* Answers the request: st is the call's outcome (QSVC_OK or QSVC_ERR_*), k->call.res its result. */
typedef void (*api_kept_render_fn)(const struct api_kept *k, int st);

struct api_kept {
    struct qsvc_call call;     /* first: a kept call is its api_kept */
    struct conn *c;            /* the request's connection */
    api_kept_render_fn render; /* the answer, now or once the call is done */
    size_t size;               /* of the whole request state this begins */
    void *kept;                /* on the stack: where keep() moved the request, or NULL */
    void *owned;               /* freed with the request (NULL: nothing) */
    const char *qname;         /* the path's queue name (NULL if none), or qcopy once kept */
    size_t qlen;               /* its length */
    char qcopy[QUEUE_NAME_MAX + 1];
};

/* Sets the call's done and keep and the fields above; leaves the rest of the request as it is. */
void api_kept_init(struct api_kept *k, size_t size, struct conn *c, api_kept_render_fn render,
                   const char *qname, size_t qlen);

/* After the seam's call returned st: answer now (render, free owned), or, if it
 * kept the call (QSVC_PENDING), tell the connection the answer comes later. */
enum handler_result api_kept_finish(struct api_kept *k, int st);

/* The answers every kept call's failures share: 404 no such queue, 503 draining, 503 out of
 * memory (issue 16's reasons). 1 when st was one of them and is answered, else 0. */
int api_kept_reply_shared(const struct api_kept *k, int st);

#endif
