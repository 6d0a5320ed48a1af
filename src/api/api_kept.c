/*
 * api_kept: a request state that the queue seam may keep (api_kept.h).
 * keep() copies the whole request (k->size bytes) to the heap and points
 * its queue name at its own copy, since the path it came from is gone by
 * the time the call finishes.
 */
#include "api/api_kept.h"

#include "net/http_reply.h"

#include <stdlib.h>
#include <string.h>

/* The call finished later, from the loop: answer and let the connection go on. */
static void kept_done(struct qsvc_call *call, int st) {
    struct api_kept *k = (struct api_kept *)call;
    struct conn *c = k->c;
    k->render(k, st);
    free(k->owned);
    free(k);
    conn_done(c);
}

/* The client left while its call was pending. */
static void kept_cancel(void *arg) {
    struct api_kept *k = arg;
    qsvc_cancel(&k->call);
    free(k->owned);
    free(k);
}

static struct qsvc_call *kept_keep(struct qsvc_call *call) {
    struct api_kept *r = (struct api_kept *)call;
    struct api_kept *k = malloc(r->size);
    if (!k)
        return NULL;
    memcpy(k, r, r->size);
    if (r->qlen) /* no queue name (NULL, 0): nothing to copy */
        memcpy(k->qcopy, r->qname, r->qlen);
    k->qname = k->qcopy;
    r->kept = k;
    return &k->call;
}

void api_kept_init(struct api_kept *k, size_t size, struct conn *c, api_kept_render_fn render,
                   const char *qname, size_t qlen) {
    k->call.done = kept_done;
    k->call.keep = kept_keep;
    k->c = c;
    k->render = render;
    k->size = size;
    k->kept = NULL;
    k->owned = NULL;
    k->qname = qname;
    k->qlen = qlen;
}

enum handler_result api_kept_finish(struct api_kept *k, int st) {
    if (st == QSVC_PENDING) {
        conn_pending(k->c, kept_cancel, k->kept);
        return HANDLER_PENDING;
    }
    k->render(k, st);
    free(k->owned);
    return HANDLER_DONE;
}

int api_kept_reply_shared(const struct api_kept *k, int st) {
    switch (st) {
    case QSVC_ERR_NOQUEUE:
        reply_error(k->c, 404, "no such queue: %.*s", (int)k->qlen, k->qname);
        return 1;
    case QSVC_ERR_DRAINING:
        reply_error_fields(k->c, 503, NULL, ", \"reason\": \"draining\"", "%s",
                           qsvc_strerror(st));
        return 1;
    case QSVC_ERR_NOMEM:
        reply_error_fields(k->c, 503, "Retry-After: 1\r\n", ", \"reason\": \"out of memory\"",
                           "%s", qsvc_strerror(st));
        return 1;
    }
    return 0;
}
