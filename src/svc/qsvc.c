/*
 * qsvc: the seam's public face. Each operation passes through to the
 * backend; what is common to every backend lives here: the ready list that
 * hands completions to their callers from the loop, never from inside the
 * request that caused them.
 */
#include "svc/qsvc.h"

#include <event2/event.h>
#include <string.h>

const char *qsvc_strerror(int status) {
    switch (status) {
    case QSVC_ERR_NOQUEUE: return "no such queue";
    case QSVC_ERR_TIMEOUT: return "the wait passed";
    case QSVC_ERR_UNAVAILABLE: return "the queue store is unavailable";
    case QSVC_ERR_NOSPACE: return "the queue store's disk is full";
    case QSVC_ERR_DRAINING: return "the server is shutting down";
    case QSVC_ERR_UNSUPPORTED: return "not supported by this queue backend";
    default: return queue_strerror(status);
    }
}

/* Every completion of this turn so far, oldest first. A done() may make
 * more calls ready (its connection answers a pipelined request): they go
 * at the tail and are delivered in this same pass, still from the loop. */
static void on_ready(evutil_socket_t fd, short what, void *arg) {
    struct qsvc *svc = arg;
    struct list *n;
    (void)fd;
    (void)what;
    while ((n = list_first(&svc->ready))) {
        struct qsvc_call *call = container_of(n, struct qsvc_call, node);
        list_unlink(n);
        qsvc_deliver(call, call->status);
    }
}

int qsvc_init(struct qsvc *svc, const struct qsvc_ops *ops, struct event_base *base) {
    svc->ops = ops;
    list_init(&svc->ready);
    svc->ready_ev = event_new(base, -1, 0, on_ready, svc);
    return svc->ready_ev ? 0 : -1;
}

void qsvc_fini(struct qsvc *svc) {
    if (svc->ready_ev)
        event_free(svc->ready_ev);
    svc->ready_ev = NULL;
}

void qsvc_complete(struct qsvc_call *call, int status) {
    struct qsvc *svc = call->svc;
    call->status = status;
    list_unlink(&call->node);
    if (list_empty(&svc->ready))
        event_active(svc->ready_ev, EV_TIMEOUT, 0);
    list_push(&svc->ready, &call->node);
}

void qsvc_deliver(struct qsvc_call *call, int status) {
    struct qsvc *svc = call->svc;
    void *pend = call->pend;
    call->pend = NULL;
    call->done(call, status); /* the caller may free call here */
    if (pend)
        svc->ops->release(svc, pend);
}

struct qsvc_call *qsvc_keep(struct qsvc_call *call) {
    struct qsvc_call *kept = call->keep(call);
    if (!kept)
        return NULL;
    /* The copy's list nodes point at the old place: make them its own. */
    list_init(&kept->node);
    list_init(&kept->wait.node);
    return kept;
}

void qsvc_cancel(struct qsvc_call *call) {
    list_unlink(&call->node);
    store_wait_cancel(&call->wait);
    if (call->pend) {
        void *pend = call->pend;
        call->svc->ops->cancel(call->svc, call);
        call->pend = NULL;
        call->svc->ops->release(call->svc, pend);
    }
}

/* A fresh call: nothing linked, nothing held. */
static struct qsvc_call *call_start(struct qsvc *svc, struct qsvc_call *call) {
    call->svc = svc;
    call->res.why = "";
    call->pend = NULL;
    list_init(&call->node);
    list_init(&call->wait.node);
    return call;
}

int qsvc_put(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
             const struct queue_put *put, uint64_t wait_ms) {
    return svc->ops->put(svc, call_start(svc, call), q, qlen, put, wait_ms);
}

int qsvc_put_batch(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                   const struct qsvc_batch_job *jobs, size_t n, int32_t priority,
                   uint64_t delay_ms, uint64_t wait_ms) {
    return svc->ops->put_batch(svc, call_start(svc, call), q, qlen, jobs, n, priority, delay_ms,
                               wait_ms);
}

int qsvc_reserve(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                 unsigned count, uint64_t lease_ms, uint64_t wait_ms,
                 struct queue_job_info *jobs) {
    return svc->ops->reserve(svc, call_start(svc, call), q, qlen, count, lease_ms, wait_ms, jobs);
}

int qsvc_join(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
              uint64_t wait_ms) {
    return svc->ops->join(svc, call_start(svc, call), q, qlen, wait_ms);
}

int qsvc_ack(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
             uint32_t attempt) {
    return svc->ops->ack(svc, call_start(svc, call), q, qlen, id, attempt);
}

int qsvc_nack(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
              uint32_t attempt, uint64_t delay_ms) {
    return svc->ops->nack(svc, call_start(svc, call), q, qlen, id, attempt, delay_ms);
}

int qsvc_touch(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
               uint32_t attempt, uint64_t lease_ms) {
    return svc->ops->touch(svc, call_start(svc, call), q, qlen, id, attempt, lease_ms);
}

int qsvc_peek(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
              struct queue_job_info *job) {
    return svc->ops->peek(svc, call_start(svc, call), q, qlen, id, job);
}

int qsvc_declare(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                 const struct qsvc_settings *set) {
    return svc->ops->declare(svc, call_start(svc, call), q, qlen, set);
}

int qsvc_delete(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen) {
    return svc->ops->delete(svc, call_start(svc, call), q, qlen);
}

int qsvc_stats(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen) {
    return svc->ops->stats(svc, call_start(svc, call), q, qlen);
}

int qsvc_list(struct qsvc *svc, struct qsvc_call *call, const char *after, size_t alen,
              size_t max) {
    return svc->ops->list(svc, call_start(svc, call), after, alen, max);
}

int qsvc_dead_list(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                   uint64_t after, struct queue_job_info *jobs, size_t max) {
    return svc->ops->dead_list(svc, call_start(svc, call), q, qlen, after, jobs, max);
}

int qsvc_bulk(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, int op,
              uint64_t arg) {
    return svc->ops->bulk(svc, call_start(svc, call), q, qlen, op, arg);
}

int qsvc_ack_result(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, const struct qsvc_outcome *o) {
    if (!svc->ops->ack_result)
        return QSVC_ERR_UNSUPPORTED;
    return svc->ops->ack_result(svc, call_start(svc, call), q, qlen, id, attempt, o);
}

int qsvc_nack_error(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, uint64_t delay_ms, const struct qsvc_outcome *o) {
    if (!svc->ops->nack_error)
        return QSVC_ERR_UNSUPPORTED;
    return svc->ops->nack_error(svc, call_start(svc, call), q, qlen, id, attempt, delay_ms, o);
}

int qsvc_result(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
                uint64_t wait_ms) {
    if (!svc->ops->result)
        return QSVC_ERR_UNSUPPORTED;
    return svc->ops->result(svc, call_start(svc, call), q, qlen, id, wait_ms);
}

int qsvc_jobs(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, int state,
              const struct queue_cursor *after, struct queue_job_info *jobs, size_t max,
              size_t preview) {
    if (!svc->ops->jobs)
        return QSVC_ERR_UNSUPPORTED;
    return svc->ops->jobs(svc, call_start(svc, call), q, qlen, state, after, jobs, max, preview);
}

int qsvc_ack_batch(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                   struct qsvc_ack_item *items, size_t n) {
    if (!svc->ops->ack_batch)
        return QSVC_ERR_UNSUPPORTED;
    return svc->ops->ack_batch(svc, call_start(svc, call), q, qlen, items, n);
}
