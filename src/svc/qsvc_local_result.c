/*
 * qsvc_local_result: the local backend's job results (issue 17): ack with
 * a result, nack with an error text, GET .../result with its long poll,
 * and the listing of a queue's jobs by state.
 *
 * A result wait is a struct qwait whose engine waiter stays idle: it is
 * linked by node in a bucket of svc->rbuckets (by job id), and answered
 * from the engine's events as they are journaled (on_engine_event calls
 * qsvc_local_result_event): ACK (the kept result, or an empty one), DEAD
 * (the reason, and the nack's text if kept), DROP and DELETE (gone). The
 * answer is copied into the wait (the engine moves on) and delivered once
 * the event's record is as durable as [journal] fsync promises, from the
 * loop, like every kept call. Its wait= deadline and a client leaving
 * use the same paths as the other waits (qsvc_local.c).
 */
#include "svc/qsvc_local.h"

#include "net/server.h"
#include "svc/result_waits.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* Id index positions a job listing reads per loop turn (about 1 ms; see
 * docs/QUEUES.md "Seeing jobs"); an engine holding fewer jobs is listed at once. */
#define LIST_SLICE 16384

static struct qsvc_local *local_of(struct qsvc *base) {
    return (struct qsvc_local *)base;
}

/* ---- ack and nack -------------------------------------------------------------------- */

int qsvc_local_ack_result(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                          uint64_t id, uint32_t attempt, const struct qsvc_outcome *o) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = qsvc_local_open(svc, call, name, len, 1, &q);
    call->res.id = id;
    if (st != QSVC_OK)
        return st;
    st = queue_ack_result(q, id, attempt, o->ctype, o->ctype_len, o->body, o->len);
    if (st == QUEUE_ERR_TOOBIG)
        call->res.limit = queue_settings_of(q)->max_payload;
    return st == QUEUE_OK ? qsvc_local_settle(svc, call, QSVC_OK) : st;
}

int qsvc_local_nack_error(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                          uint64_t id, uint32_t attempt, uint64_t delay_ms,
                          const struct qsvc_outcome *o) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = qsvc_local_open(svc, call, name, len, 1, &q);
    call->res.id = id;
    if (st != QSVC_OK)
        return st;
    svc->nacking = 1;
    st = queue_nack_error(q, id, attempt, delay_ms, o->body, o->len, &call->res.dead);
    svc->nacking = 0;
    return st == QUEUE_OK ? qsvc_local_settle(svc, call, QSVC_OK) : st;
}

/* ---- the outcome ---------------------------------------------------------------------- */

/* A dead job's outcome from its dead letter (reason, and the nack's text if kept). */
static void dead_outcome(const struct queue_job_info *j, struct queue_result_info *out) {
    memset(out, 0, sizeof *out);
    out->id = j->id;
    out->outcome = QUEUE_OUTCOME_DEAD;
    out->reason = j->reason;
    out->attempt = j->attempt;
    out->body = j->error;
    out->len = j->error ? j->error_len : 0;
}

/* Copy an outcome into the wait and deliver it once durable. */
static void wait_answer(struct qwait *qw, const struct queue_result_info *ri, int gone) {
    struct qsvc_local *svc = qwait_svc(qw);
    struct qsvc_call *call = qw->call;
    struct queue_result_info *out = (struct queue_result_info *)(void *)qw->jobs; /* result_wait */
    list_unlink(&qw->node);
    timer_cancel(&svc->srv->wheel, &qw->t);
    memset(out, 0, sizeof *out);
    call->res.result = out;
    call->res.gone = gone;
    if (ri) {
        *out = *ri;
        if (ri->expires)
            out->expires = qsvc_local_wall(svc, ri->expires);
        qw->copy = malloc(ri->ctype_len + ri->len + 1);
        if (!qw->copy) {
            qsvc_complete(call, QSVC_ERR_NOMEM);
            return;
        }
        if (ri->ctype_len)
            memcpy(qw->copy, ri->ctype, ri->ctype_len);
        if (ri->len)
            memcpy(qw->copy + ri->ctype_len, ri->body, ri->len);
        out->ctype = qw->copy;
        out->body = qw->copy + ri->ctype_len;
    }
    qsvc_local_settle_kept(svc, call, QSVC_OK);
}

/* ev answers qw (same queue, and the job or the whole queue). */
static void wait_event(struct qsvc_local *svc, struct qwait *qw, const struct queue_event *ev) {
    struct queue *q = queue_find(svc->eng, ev->queue, ev->queue_len);
    struct queue_result_info ri;
    struct queue_job_info j;
    switch (ev->type) {
    case QUEUE_EV_ACK:
        /* A result is emitted before its ACK: it is in the engine now, or there is none. */
        if (!q || queue_result_get(q, qw->rid, &ri) != QUEUE_OK ||
            ri.outcome != QUEUE_OUTCOME_ACKED) {
            memset(&ri, 0, sizeof ri);
            ri.id = qw->rid;
            ri.outcome = QUEUE_OUTCOME_ACKED;
        }
        wait_answer(qw, &ri, 0);
        return;
    case QUEUE_EV_DEAD:
        if (q && queue_result_get(q, qw->rid, &ri) == QUEUE_OK &&
            ri.outcome == QUEUE_OUTCOME_DEAD) {
            wait_answer(qw, &ri, 0);
            return;
        }
        memset(&j, 0, sizeof j);
        j.id = qw->rid;
        if (q)
            queue_peek(q, qw->rid, &j); /* still in place: its attempt count */
        j.reason = ev->reason;
        j.error = NULL;
        dead_outcome(&j, &ri);
        wait_answer(qw, &ri, 0);
        return;
    case QUEUE_EV_DROP:
        wait_answer(qw, NULL,
                    ev->reason == QUEUE_DROP_SHUTDOWN    ? QSVC_GONE_SHUTDOWN
                    : ev->reason == QUEUE_DROP_DEADPURGE ? QSVC_GONE_DEAD_PURGED
                                                         : QSVC_GONE_PURGED);
        return;
    case QUEUE_EV_DELETE: wait_answer(qw, NULL, QSVC_GONE_DELETED); return;
    }
}

static int same_queue(const struct qwait *qw, const struct queue_event *ev) {
    return qw->qlen == ev->queue_len && memcmp(qw->qname, ev->queue, qw->qlen) == 0;
}

void qsvc_local_result_event(struct qsvc_local *svc, const struct queue_event *ev) {
    if (!svc->rbuckets)
        return;
    struct list *n, *tmp;
    switch (ev->type) {
    case QUEUE_EV_ACK:
    case QUEUE_EV_DEAD:
    case QUEUE_EV_DROP: {
        struct list *b = result_waits_bucket(svc->rbuckets, ev->id);
        list_for_each_safe(n, tmp, b) {
            struct qwait *qw = container_of(n, struct qwait, node);
            if (qw->rid == ev->id && same_queue(qw, ev))
                wait_event(svc, qw, ev);
        }
        return;
    }
    case QUEUE_EV_DELETE:
        for (size_t i = 0; i < RESULT_WAITS_BUCKETS; i++)
            list_for_each_safe(n, tmp, &svc->rbuckets[i]) {
                struct qwait *qw = container_of(n, struct qwait, node);
                if (same_queue(qw, ev))
                    wait_event(svc, qw, ev);
            }
        return;
    }
}

static void listings_end(struct qsvc_local *svc, int status);

void qsvc_local_results_end(struct qsvc_local *svc, int status) {
    listings_end(svc, status);
    if (!svc->rbuckets)
        return;
    for (size_t i = 0; status && i < RESULT_WAITS_BUCKETS; i++) {
        struct list *n;
        while ((n = list_first(&svc->rbuckets[i]))) {
            struct qwait *qw = container_of(n, struct qwait, node);
            list_unlink(n);
            timer_cancel(&svc->srv->wheel, &qw->t);
            qsvc_complete(qw->call, status);
        }
    }
    if (!status) {
        free(svc->rbuckets);
        svc->rbuckets = NULL;
    }
}

static void listings_end(struct qsvc_local *svc, int status) {
    struct list *n;
    while (status && (n = list_first(&svc->listing))) {
        list_unlink(n);
        qsvc_complete(container_of(n, struct qwait, node)->call, status);
    }
    if (!status && svc->list_ev) {
        event_free(svc->list_ev);
        svc->list_ev = NULL;
    }
}

/* Wait for job id of q: the call is kept and answered from the events. */
static int result_wait(struct qsvc_local *svc, struct qsvc_call *call, struct queue *q,
                       uint64_t id, uint64_t wait_ms) {
    if (!svc->rbuckets && !(svc->rbuckets = result_waits_new()))
        return QSVC_ERR_NOMEM;
    struct qwait *qw = qsvc_local_qwait_new(q, sizeof(struct queue_result_info)); /* the answer */
    if (!qw)
        return QSVC_ERR_NOMEM;
    struct qsvc_call *kept = qsvc_keep(call);
    if (!kept) {
        free(qw);
        return QSVC_ERR_NOMEM;
    }
    qw->call = kept;
    qw->rid = id;
    kept->pend = qw;
    queue_waiter_init(&qw->w, QUEUE_WAIT_JOIN, NULL); /* idle: cancel is a no-op */
    timer_init(&qw->t, qsvc_local_wait_timeout);
    list_push(result_waits_bucket(svc->rbuckets, id), &qw->node);
    server_timer_in(svc->srv, &qw->t, wait_ms);
    return QSVC_PENDING;
}

int qsvc_local_result(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                      uint64_t id, uint64_t wait_ms) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = qsvc_local_open(svc, call, name, len, 0, &q);
    struct queue_result_info *out = &svc->rinfo; /* an answer now: until the next one */
    call->res.id = id;
    call->res.gone = 0;
    memset(out, 0, sizeof *out);
    call->res.result = out;
    if (st != QSVC_OK)
        return st;
    struct queue_job_info j;
    if (queue_peek(q, id, &j) == QUEUE_OK) {
        if (j.state == QUEUE_JOB_DEAD) {
            dead_outcome(&j, out);
            return QSVC_OK;
        }
        if ((wait_ms = qsvc_local_clamp_wait(svc, wait_ms)) == 0)
            return QSVC_ERR_TIMEOUT;
        return result_wait(svc, call, q, id, wait_ms);
    }
    if (queue_result_get(q, id, out) != QUEUE_OK)
        return QSVC_ERR_NOTFOUND;
    out->expires = qsvc_local_wall(svc, out->expires);
    return QSVC_OK;
}

/* ---- listing -------------------------------------------------------------------------- */

/*
 * A listing of ready, delayed or reserved jobs reads the whole id index
 * (queue_jobs_scan_*). Past LIST_SLICE jobs it is done a slice per loop
 * turn: the call is kept as an idle qwait on svc->listing (so cancel and
 * release are the other waits'), one listing steps per turn in turn, and
 * the last step fills the caller's jobs[] and delivers at once, from the
 * loop, while the payloads it points at are the engine's current ones.
 */
static void list_kick(struct qsvc_local *svc) {
    static const struct timeval now = {0, 0};
    if (!evtimer_pending(svc->list_ev, NULL))
        evtimer_add(svc->list_ev, &now);
}

static void on_list(evutil_socket_t fd, short what, void *arg) {
    struct qsvc_local *svc = arg;
    (void)fd;
    (void)what;
    struct list *n = list_first(&svc->listing);
    if (!n)
        return;
    list_unlink(n);
    struct qwait *qw = container_of(n, struct qwait, node);
    struct queue_jobs_scan *sc = (struct queue_jobs_scan *)(void *)qw->jobs;
    struct qsvc_call *call = qw->call;
    struct queue *q = queue_find(svc->eng, qw->qname, qw->qlen);
    if (!q) {
        qsvc_deliver(call, QSVC_ERR_NOQUEUE);
    } else if (!queue_jobs_scan_step(q, sc, LIST_SLICE)) {
        list_push(&svc->listing, n); /* the next turn steps the next listing */
    } else {
        size_t got = 0;
        qsvc_local_clock(svc);
        queue_jobs_scan_finish(q, sc, call->res.jobs, &got, &call->res.more, &call->res.next);
        qsvc_local_jobs_to_wall(svc, call->res.jobs, (unsigned)got);
        call->res.njobs = (unsigned)got;
        qsvc_deliver(call, QSVC_OK); /* the loop's own stack: done() renders now */
    }
    if (!list_empty(&svc->listing))
        list_kick(svc);
}

static int list_in_slices(struct qsvc_local *svc, struct qsvc_call *call, struct queue *q,
                          int state, const struct queue_cursor *after,
                          struct queue_job_info *jobs, size_t max) {
    if (!svc->list_ev && !(svc->list_ev = evtimer_new(svc->srv->base, on_list, svc)))
        return QSVC_ERR_NOMEM;
    struct qwait *qw = qsvc_local_qwait_new(q, sizeof(struct queue_jobs_scan));
    struct queue_cursor *cand = malloc(max * sizeof *cand);
    if (!qw || !cand) {
        free(qw);
        free(cand);
        return QSVC_ERR_NOMEM;
    }
    call->res.jobs = jobs; /* the caller's: it lasts until done() */
    struct qsvc_call *kept = qsvc_keep(call);
    if (!kept) {
        free(qw);
        free(cand);
        return QSVC_ERR_NOMEM;
    }
    qw->call = kept;
    qw->copy = (char *)cand; /* freed with the wait (local_release) */
    kept->pend = qw;
    queue_waiter_init(&qw->w, QUEUE_WAIT_JOIN, NULL); /* idle: cancel is a no-op */
    timer_init(&qw->t, qsvc_local_wait_timeout);       /* never armed */
    queue_jobs_scan_init((struct queue_jobs_scan *)(void *)qw->jobs, state, after, cand, max);
    list_push(&svc->listing, &qw->node);
    list_kick(svc);
    return QSVC_PENDING;
}

int qsvc_local_jobs(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                    int state, const struct queue_cursor *after, struct queue_job_info *jobs,
                    size_t max, size_t preview) {
    struct qsvc_local *svc = local_of(base);
    (void)preview; /* the payloads are in memory: the caller cuts them */
    struct queue *q;
    int st = qsvc_local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK)
        return st;
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    if (state != QUEUE_JOB_DEAD && state >= 0 && state < QUEUE_JOB_DEAD && max &&
        es.jobs > LIST_SLICE / 2)
        return list_in_slices(svc, call, q, state, after, jobs, max);
    size_t n = 0;
    st = queue_jobs_list(q, state, after, jobs, max, &n, &call->res.more, &call->res.next);
    qsvc_local_jobs_to_wall(svc, jobs, (unsigned)n);
    call->res.jobs = jobs;
    call->res.njobs = (unsigned)n;
    return st;
}
