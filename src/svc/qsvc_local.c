/*
 * qsvc_local: the queue operations of the local backend. Each finds its
 * queue, asks the store whether the journal takes writes (for a change),
 * runs the engine (engine/queue.h), and finishes at once when nothing
 * needs waiting for. Otherwise the call is kept and finishes later: when
 * the journal has made the change durable (store_when_durable), when the
 * engine wakes its waiter (blocking put, reserve, join), when the wait=
 * deadline passes, or when the reaper is done with a purge.
 *
 * A woken waiter is completed through the ready list (qsvc.c), not in the
 * engine's wake(): that wake runs inside whatever operation made room or
 * jobs, often another client's request. A woken getter's jobs are leased
 * to it from the wake on, so their payloads are copied then: by the time
 * the loop delivers them, the engine may have moved on.
 */
#include "svc/qsvc_local.h"

#include "core/config.h"
#include "core/timer.h"
#include "net/server.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The engine's errors pass through the seam unchanged. */
_Static_assert((int)QSVC_ERR_NOMEM == (int)QUEUE_ERR_NOMEM &&
                   (int)QSVC_ERR_FULL == (int)QUEUE_ERR_FULL &&
                   (int)QSVC_ERR_MEMORY == (int)QUEUE_ERR_MEMORY &&
                   (int)QSVC_ERR_EMPTY == (int)QUEUE_ERR_EMPTY &&
                   (int)QSVC_ERR_NOTFOUND == (int)QUEUE_ERR_NOTFOUND &&
                   (int)QSVC_ERR_EXISTS == (int)QUEUE_ERR_EXISTS &&
                   (int)QSVC_ERR_INVALID == (int)QUEUE_ERR_INVALID &&
                   (int)QSVC_ERR_TOOBIG == (int)QUEUE_ERR_TOOBIG &&
                   (int)QSVC_ERR_STATE == (int)QUEUE_ERR_STATE &&
                   (int)QSVC_ERR_SHUTDOWN == (int)QUEUE_ERR_SHUTDOWN &&
                   (int)QSVC_ERR_DELETED == (int)QUEUE_ERR_DELETED,
               "qsvc statuses mirror the engine's");

static struct qsvc_local *local_of(struct qsvc *base) {
    return (struct qsvc_local *)base;
}

/* Before a change: QSVC_OK when the journal takes writes. */
static int local_writable(struct qsvc_local *svc, struct qsvc_call *call) {
    int rc = store_check(svc->store, svc->why, sizeof svc->why);
    if (rc == STORE_OK)
        return QSVC_OK;
    call->res.why = svc->why;
    return rc == STORE_NOSPACE ? QSVC_ERR_NOSPACE : QSVC_ERR_UNAVAILABLE;
}

/*
 * Every operation starts here: the engine reads wheel->now as the time.
 * *q gets the queue (NULL: QSVC_ERR_NOQUEUE); a change (change = 1) also
 * needs a journal that takes writes. QSVC_OK, or the status to return.
 */
static inline int local_open(struct qsvc_local *svc, struct qsvc_call *call,
                             const char *name, size_t len, int change, struct queue **q) {
    server_wheel_catch_up(svc->srv);
    qsvc_local_clock(svc);
    *q = queue_find(svc->eng, name, len);
    if (!*q)
        return QSVC_ERR_NOQUEUE;
    return change ? local_writable(svc, call) : QSVC_OK;
}

static uint64_t local_clamp_wait(struct qsvc_local *svc, uint64_t ms) {
    uint64_t max = svc->srv->cfg->queue_max_wait_ms;
    return ms > max ? max : ms;
}

static void jobs_to_wall(struct qsvc_local *svc, struct queue_job_info *jobs, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        if (jobs[i].deadline)
            jobs[i].deadline = qsvc_local_wall(svc, jobs[i].deadline);
}

static void local_fill_queue(struct qsvc_queue *out, const struct queue *q) {
    const char *name = queue_name(q, &out->name_len);
    memcpy(out->name, name, out->name_len);
    out->name[out->name_len] = '\0';
    queue_stats(q, &out->stats);
    out->settings = *queue_settings_of(q);
}

/* ---- durability ------------------------------------------------------------------ */

static void on_durable(void *arg, int status, const char *why) {
    struct qsvc_call *call = arg;
    if (status == STORE_OK) {
        qsvc_deliver(call, call->status);
        return;
    }
    /* The change is in memory and its records stay queued: the journal writes them when
     * it recovers (journal_writer.h), unless awaitd stops first. Say so. */
    struct qsvc_local *svc = local_of(call->svc);
    call->res.unknown = 1;
    call->res.why = svc->why; /* done() runs now, before anything else writes it */
    snprintf(svc->why, sizeof svc->why,
             "the journal could not confirm this change (%s); it is kept and written when the "
             "journal recovers, unless awaitd stops first: outcome unknown",
             why);
    qsvc_deliver(call, status == STORE_NOSPACE ? QSVC_ERR_NOSPACE : QSVC_ERR_UNAVAILABLE);
}

/* A kept call's change is made: complete it with outcome once durable. */
static void local_settle_kept(struct qsvc_local *svc, struct qsvc_call *kept, int outcome) {
    kept->status = outcome;
    if (!store_when_durable(svc->store, &kept->wait, on_durable, kept))
        qsvc_complete(kept, outcome);
}

/* res.queue of a call that is kept (declare waiting to be durable, a bulk
 * change waiting for the reaper): a copy of svc->qinfo of its own, which
 * the next answer overwrites. It is the call's pend, an idle wait, so
 * cancel and release are the waits' (issue 19: the result no longer
 * carries a queue inline). NULL: no memory. */
static struct qwait *queue_info_copy(struct qsvc_local *svc) {
    struct qwait *qw = calloc(1, sizeof *qw + sizeof svc->qinfo);
    if (!qw)
        return NULL;
    list_init(&qw->node);
    timer_init(&qw->t, NULL);                          /* never armed */
    queue_waiter_init(&qw->w, QUEUE_WAIT_JOIN, NULL); /* idle: cancel is a no-op */
    memcpy(qw->jobs, &svc->qinfo, sizeof svc->qinfo);
    return qw;
}

/* Keep call, with its own copy of res.queue when with_queue: NULL, no memory. */
static struct qsvc_call *local_keep(struct qsvc_local *svc, struct qsvc_call *call,
                                    int with_queue) {
    struct qwait *qi = NULL;
    if (with_queue && !(qi = queue_info_copy(svc)))
        return NULL;
    struct qsvc_call *kept = qsvc_keep(call);
    if (!kept) {
        free(qi);
        return NULL;
    }
    if (qi) {
        qi->call = kept;
        kept->pend = qi;
        kept->res.queue = (const struct qsvc_queue *)(const void *)qi->jobs;
    }
    return kept;
}

/* The change is made: outcome now if it is durable enough, else keep the call until it is.
 * Inline: with_queue is a constant in each caller (put and ack pay nothing for it). */
static inline int local_settle_with(struct qsvc_local *svc, struct qsvc_call *call, int outcome,
                                    int with_queue) {
    if (!store_when_durable(svc->store, &call->wait, on_durable, call))
        return outcome;
    /* The wait must live where the call will: register it again there. */
    store_wait_cancel(&call->wait);
    struct qsvc_call *kept = local_keep(svc, call, with_queue);
    if (!kept)
        return QSVC_ERR_NOMEM;
    kept->status = outcome;
    store_when_durable(svc->store, &kept->wait, on_durable, kept);
    return QSVC_PENDING;
}

static int local_settle(struct qsvc_local *svc, struct qsvc_call *call, int outcome) {
    return local_settle_with(svc, call, outcome, 0);
}

/* ---- blocking waits ---------------------------------------------------------------- */

/* A woken getter keeps its own copy of the payloads until it is delivered. */
static int wait_hold_jobs(struct qwait *qw) {
    size_t total = 0, off = 0;
    for (unsigned i = 0; i < qw->w.njobs; i++)
        total += qw->jobs[i].len;
    qw->copy = malloc(total ? total : 1);
    if (!qw->copy)
        return QSVC_ERR_NOMEM;
    for (unsigned i = 0; i < qw->w.njobs; i++) {
        memcpy(qw->copy + off, qw->jobs[i].payload, qw->jobs[i].len);
        qw->jobs[i].payload = qw->copy + off;
        off += qw->jobs[i].len;
    }
    jobs_to_wall(qwait_svc(qw), qw->jobs, qw->w.njobs);
    qw->held = 1;
    qw->call->res.jobs = qw->jobs;
    qw->call->res.njobs = qw->w.njobs;
    return QSVC_OK;
}

/* The engine's outcome for a waiter that was linked: in arrival order. */
static void wait_finish(struct qwait *qw, int status) {
    struct qsvc_call *call = qw->call;
    if (status == QUEUE_OK && qw->w.kind == QUEUE_WAIT_GET) {
        status = wait_hold_jobs(qw);
        if (status != QSVC_OK)
            queue_waiter_release(&qw->w); /* back in their place, attempts restored */
    } else if (qw->w.kind == QUEUE_WAIT_PUT && qw->w.batch && qw->w.done) {
        call->res.id = qw->w.id; /* a batch: all of it, or the jobs before a failure */
        call->res.n = qw->w.done;
        local_settle_kept(qwait_svc(qw), call, status);
        return;
    } else if (status == QUEUE_OK && qw->w.kind == QUEUE_WAIT_PUT) {
        call->res.id = qw->w.id;
        call->res.duplicate = qw->w.duplicate;
        local_settle_kept(qwait_svc(qw), call, QSVC_OK); /* its record is in this turn's batch */
        return;
    }
    qsvc_complete(call, status);
}

static void on_wake(struct queue_waiter *w, int status) {
    struct qwait *qw = container_of(w, struct qwait, w);
    list_unlink(&qw->node);
    timer_cancel(&qwait_svc(qw)->srv->wheel, &qw->t);
    wait_finish(qw, status);
}

static void on_wait_timeout(struct timer *t) {
    struct qwait *qw = container_of(t, struct qwait, t);
    queue_waiter_cancel(&qw->w);
    list_unlink(&qw->node);
    qsvc_complete(qw->call, QSVC_ERR_TIMEOUT);
}

/* A waiting batch's own copy of its puts, then of their payloads. */
static size_t batch_copy_size(const struct queue_put *puts, unsigned n) {
    size_t size = n * sizeof *puts;
    for (unsigned i = 0; i < n; i++)
        size += puts[i].len;
    return size;
}

static struct queue_put *batch_copy(void *to, const struct queue_put *puts, unsigned n) {
    struct queue_put *copy = to;
    char *bytes = (char *)(copy + n);
    for (unsigned i = 0; i < n; i++) {
        copy[i] = puts[i];
        copy[i].payload = bytes;
        if (puts[i].len)
            memcpy(bytes, puts[i].payload, puts[i].len);
        bytes += puts[i].len;
    }
    return copy;
}

struct qwait *qsvc_local_qwait_new(const struct queue *q, size_t extra) {
    size_t len;
    const char *name = queue_name(q, &len);
    struct qwait *qw = calloc(1, sizeof *qw + extra + len);
    if (!qw)
        return NULL;
    char *tail = (char *)qw->jobs + extra;
    memcpy(tail, name, len);
    qw->qname = tail;
    qw->qlen = (uint32_t)len;
    return qw;
}

/*
 * Wait on q: kind GET (count, lease_ms), PUT (put, copied here: the engine
 * performs it later; count > 1: a batch of count puts) or JOIN. Once the
 * call is kept, the outcome always comes through done(), even when the
 * engine answers at once.
 */
static int local_wait(struct qsvc_local *svc, struct qsvc_call *call, struct queue *q, int kind,
                      unsigned count, uint64_t lease_ms, const struct queue_put *put,
                      uint64_t wait_ms) {
    size_t extra = kind == QUEUE_WAIT_GET                ? count * sizeof(struct queue_job_info)
                   : kind == QUEUE_WAIT_PUT && count > 1 ? batch_copy_size(put, count)
                   : kind == QUEUE_WAIT_PUT              ? put->len + put->key_len
                                                         : 0;
    struct qwait *qw = qsvc_local_qwait_new(q, extra);
    if (!qw)
        return QSVC_ERR_NOMEM;
    struct qsvc_call *kept = qsvc_keep(call);
    if (!kept) {
        free(qw);
        return QSVC_ERR_NOMEM;
    }
    qw->call = kept;
    kept->pend = qw;
    list_init(&qw->node);
    timer_init(&qw->t, on_wait_timeout);
    queue_waiter_init(&qw->w, kind, on_wake);
    int st;
    if (kind == QUEUE_WAIT_GET) {
        qw->w.count = count;
        qw->w.lease_ms = lease_ms;
        qw->w.jobs = qw->jobs;
        st = queue_reserve_wait(q, &qw->w);
    } else if (kind == QUEUE_WAIT_PUT && count > 1) {
        qw->w.batch = count;
        qw->w.puts = batch_copy(qw->jobs, put, count);
        st = queue_put_wait(q, &qw->w);
    } else if (kind == QUEUE_WAIT_PUT) {
        char *copy = (char *)qw->jobs;
        memcpy(copy, put->payload, put->len);
        if (put->key)
            memcpy(copy + put->len, put->key, put->key_len);
        qw->w.put = *put;
        qw->w.put.payload = copy;
        qw->w.put.key = put->key ? copy + put->len : NULL;
        st = queue_put_wait(q, &qw->w);
    } else {
        st = queue_join_wait(q, &qw->w);
    }
    if (st == QUEUE_WAIT) {
        list_push(&svc->waiting, &qw->node);
        server_timer_in(svc->srv, &qw->t, wait_ms);
    } else {
        wait_finish(qw, st);
    }
    return QSVC_PENDING;
}

void qsvc_local_waits_end(struct qsvc_local *svc, int status) {
    struct list *n;
    while ((n = list_first(&svc->waiting))) {
        struct qwait *qw = container_of(n, struct qwait, node);
        queue_waiter_cancel(&qw->w);
        list_unlink(n);
        timer_cancel(&svc->srv->wheel, &qw->t);
        qsvc_complete(qw->call, status);
    }
}

static void local_cancel(struct qsvc *base, struct qsvc_call *call) {
    struct qsvc_local *svc = local_of(base);
    struct qwait *qw = call->pend;
    if (list_linked(&qw->node)) {
        queue_waiter_cancel(&qw->w);
        list_unlink(&qw->node);
    }
    timer_cancel(&svc->srv->wheel, &qw->t);
    if (qw->w.kind == QUEUE_WAIT_GET && qw->held) {
        /* Woken but not delivered: give the jobs back rather than wait for their lease. */
        struct queue *q = queue_find(svc->eng, qw->qname, qw->qlen);
        for (unsigned i = 0; q && i < qw->w.njobs; i++)
            queue_unreserve(q, qw->jobs[i].id, qw->jobs[i].attempt);
    }
}

static void local_release(struct qsvc *base, void *pend) {
    struct qwait *qw = pend;
    timer_cancel(&local_of(base)->srv->wheel, &qw->t);
    free(qw->copy);
    free(qw);
}

/* ---- jobs -------------------------------------------------------------------------- */

static int local_put(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                     const struct queue_put *put, uint64_t wait_ms) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 1, &q);
    if (st != QSVC_OK)
        return st;
    const struct queue_settings *set = queue_settings_of(q);
    if (put->len > set->max_payload) {
        call->res.limit = set->max_payload;
        return QSVC_ERR_TOOBIG;
    }
    /* put_nowait first: only a put that must wait needs its own copy. */
    st = queue_put(q, put, &call->res.id, &call->res.duplicate);
    if (st == QUEUE_ERR_FULL && (wait_ms = local_clamp_wait(svc, wait_ms)) > 0)
        return local_wait(svc, call, q, QUEUE_WAIT_PUT, 0, 0, put, wait_ms);
    if (st != QUEUE_OK) {
        call->res.limit = set->maxsize;
        return st;
    }
    return local_settle(svc, call, QSVC_OK);
}

static int local_put_batch(struct qsvc *base, struct qsvc_call *call, const char *name,
                           size_t len, const struct qsvc_batch_job *jobs, size_t n,
                           int32_t priority, uint64_t delay_ms, uint64_t wait_ms) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 1, &q);
    if (st != QSVC_OK)
        return st;
    const struct queue_settings *set = queue_settings_of(q);
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].len > set->max_payload) {
            call->res.index = i;
            call->res.limit = set->max_payload;
            return QSVC_ERR_TOOBIG;
        }
    }
    if ((set->maxsize && n > set->maxsize) || n > UINT_MAX) {
        call->res.index = SIZE_MAX; /* can never fit: put it in parts */
        call->res.limit = set->maxsize;
        return QSVC_ERR_TOOBIG;
    }
    struct queue_put *puts = malloc(n * sizeof *puts);
    if (!puts)
        return QSVC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        puts[i] = (struct queue_put){jobs[i].payload, jobs[i].len, priority, delay_ms, NULL, 0};
    unsigned done = 0;
    st = queue_put_batch(q, puts, (unsigned)n, &call->res.id, &done);
    call->res.n = done;
    if (st == QUEUE_ERR_FULL && (wait_ms = local_clamp_wait(svc, wait_ms)) > 0) {
        st = local_wait(svc, call, q, QUEUE_WAIT_PUT, (unsigned)n, 0, puts, wait_ms);
        free(puts); /* the wait has its own copy */
        return st;
    }
    free(puts);
    if (st == QUEUE_ERR_FULL) {
        struct queue_stats qs;
        queue_stats(q, &qs);
        uint64_t queued = qs.size + qs.delayed;
        call->res.limit = queued >= qs.maxsize || qs.putters ? 0 : qs.maxsize - queued;
        return QSVC_ERR_FULL;
    }
    if (st != QUEUE_OK && done == 0)
        return st;
    /* Jobs before a failure are in the queue: the outcome waits for them too. */
    return local_settle(svc, call, st);
}

static int local_reserve(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                         unsigned count, uint64_t lease_ms, uint64_t wait_ms,
                         struct queue_job_info *jobs) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK)
        return st;
    /* get_nowait first: waiting getters mean nothing is ready, so this cannot jump the line. */
    unsigned n = 0;
    st = queue_reserve(q, count, lease_ms, jobs, &n);
    if (st == QUEUE_OK) {
        jobs_to_wall(svc, jobs, n);
        call->res.jobs = jobs;
        call->res.njobs = n;
        return QSVC_OK;
    }
    if (st != QUEUE_ERR_EMPTY || (wait_ms = local_clamp_wait(svc, wait_ms)) == 0)
        return st;
    return local_wait(svc, call, q, QUEUE_WAIT_GET, count, lease_ms, NULL, wait_ms);
}

static int local_join(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                      uint64_t wait_ms) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK)
        return st;
    struct queue_stats qs;
    queue_stats(q, &qs);
    if (qs.unfinished == 0)
        return QSVC_OK;
    if ((wait_ms = local_clamp_wait(svc, wait_ms)) == 0)
        return QSVC_ERR_TIMEOUT;
    return local_wait(svc, call, q, QUEUE_WAIT_JOIN, 0, 0, NULL, wait_ms);
}

static int local_ack(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                     uint64_t id, uint32_t attempt) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 1, &q);
    if (st == QSVC_OK)
        st = queue_ack(q, id, attempt);
    call->res.id = id;
    return st == QSVC_OK ? local_settle(svc, call, QSVC_OK) : st;
}

/* Each job acked or refused on its own; one durability wait for those acked. */
static int local_ack_batch(struct qsvc *base, struct qsvc_call *call, const char *name,
                           size_t len, struct qsvc_ack_item *items, size_t n) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 1, &q);
    if (st != QSVC_OK)
        return st;
    call->res.n = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].status = queue_ack(q, items[i].id, items[i].attempt);
        if (items[i].status == QSVC_OK)
            call->res.n++;
    }
    return call->res.n ? local_settle(svc, call, QSVC_OK) : QSVC_OK;
}

static int local_nack(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                      uint64_t id, uint32_t attempt, uint64_t delay_ms) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 1, &q);
    if (st == QSVC_OK) {
        svc->nacking = 1;
        st = queue_nack(q, id, attempt, delay_ms);
        svc->nacking = 0;
    }
    if (st != QSVC_OK)
        return st;
    struct queue_job_info j;
    call->res.id = id;
    call->res.dead = queue_peek(q, id, &j) == QUEUE_OK && j.state == QUEUE_JOB_DEAD;
    return local_settle(svc, call, QSVC_OK);
}

/* Leases are not journaled: nothing to wait for. */
static int local_touch(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                       uint64_t id, uint32_t attempt, uint64_t lease_ms) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK)
        return st;
    uint64_t deadline = 0;
    st = queue_touch(q, id, attempt, lease_ms, &deadline);
    call->res.id = id;
    call->res.deadline_ms = qsvc_local_wall(svc, deadline);
    return st;
}

static int local_peek(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                      uint64_t id, struct queue_job_info *job) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK)
        return st;
    st = queue_peek(q, id, job);
    if (st != QUEUE_OK)
        return st;
    jobs_to_wall(svc, job, 1);
    call->res.jobs = job;
    call->res.njobs = 1;
    return QSVC_OK;
}

/* ---- queues ------------------------------------------------------------------------ */

static int local_declare(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                         const struct qsvc_settings *set) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK && st != QSVC_ERR_NOQUEUE)
        return st;
    struct queue_settings s;
    if (q) {
        s = *queue_settings_of(q);
    } else {
        queue_settings_default(&s);
        s.key_window_ms = svc->srv->cfg->queue_key_window_ms;
    }
    if (set->mask & QSVC_SET_MAXSIZE)
        s.maxsize = set->s.maxsize;
    if (set->mask & QSVC_SET_LEASE)
        s.lease_ms = set->s.lease_ms;
    if (set->mask & QSVC_SET_MAX_ATTEMPTS)
        s.max_attempts = set->s.max_attempts;
    if (set->mask & QSVC_SET_MAX_PAYLOAD)
        s.max_payload = set->s.max_payload;
    if (set->mask & QSVC_SET_KEY_WINDOW)
        s.key_window_ms = set->s.key_window_ms;
    if (set->mask & QSVC_SET_RESULT_TTL)
        s.result_ttl_ms = set->s.result_ttl_ms;
    st = local_writable(svc, call);
    if (st != QSVC_OK)
        return st;
    call->res.created = q == NULL;
    st = q ? queue_update(q, &s) : queue_create(svc->eng, name, len, &s, &q);
    if (st != QUEUE_OK)
        return st;
    local_fill_queue(&svc->qinfo, q);
    call->res.queue = &svc->qinfo;
    return local_settle_with(svc, call, QSVC_OK, 1);
}

static int local_delete(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 1, &q);
    if (st != QSVC_OK)
        return st;
    queue_delete(q);
    qsvc_local_reap_kick(svc); /* the DELETE record covers the jobs: no need to wait for it */
    return local_settle(svc, call, QSVC_OK);
}

static int local_stats(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK)
        return st;
    local_fill_queue(&svc->qinfo, q);
    call->res.queue = &svc->qinfo;
    return QSVC_OK;
}

static int local_list(struct qsvc *base, struct qsvc_call *call, const char *after, size_t alen,
                      size_t max) {
    struct qsvc_local *svc = local_of(base);
    server_wheel_catch_up(svc->srv);
    size_t nq = queue_count(svc->eng), first = queue_after(svc->eng, after, alen);
    size_t n = nq - first < max ? nq - first : max;
    if (n > svc->listed_cap) {
        struct qsvc_queue *a = realloc(svc->listed, n * sizeof *a);
        if (!a)
            return QSVC_ERR_NOMEM;
        svc->listed = a;
        svc->listed_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        local_fill_queue(&svc->listed[i], queue_at(svc->eng, first + i));
    call->res.queues = svc->listed;
    call->res.nqueues = n;
    call->res.more = first + n < nq;
    return QSVC_OK;
}

static int local_dead_list(struct qsvc *base, struct qsvc_call *call, const char *name,
                           size_t len, uint64_t after, struct queue_job_info *jobs, size_t max) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 0, &q);
    if (st != QSVC_OK)
        return st;
    size_t got = 0;
    st = queue_dead_list(q, after, jobs, max, &got);
    call->res.jobs = jobs;
    call->res.njobs = (unsigned)got;
    return st;
}

/* A bulk change is answered when its queue's removed jobs are reaped and durable,
 * so a restart after the answer never brings them back. */
static int local_bulk(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                      int op, uint64_t arg) {
    struct qsvc_local *svc = local_of(base);
    struct queue *q;
    int st = local_open(svc, call, name, len, 1, &q);
    if (st != QSVC_OK)
        return st;
    call->res.n = 0;
    switch (op) {
    case QSVC_PURGE: st = queue_purge(q, &call->res.n); break;
    case QSVC_SHUTDOWN: st = queue_shutdown(q, arg != 0); break;
    case QSVC_DEAD_REQUEUE: st = queue_dead_requeue(q, arg, &call->res.n); break;
    case QSVC_DEAD_PURGE: st = queue_dead_purge(q, arg, &call->res.n); break;
    default: st = QUEUE_ERR_INVALID;
    }
    if (st != QUEUE_OK)
        return st;
    local_fill_queue(&svc->qinfo, q);
    call->res.queue = &svc->qinfo;
    if (!svc->qinfo.stats.reaping)
        return local_settle_with(svc, call, QSVC_OK, 1);
    qsvc_local_reap_kick(svc);
    struct qsvc_call *kept = local_keep(svc, call, 1);
    if (!kept)
        return QSVC_ERR_NOMEM;
    list_push(&svc->purging, &kept->node);
    return QSVC_PENDING;
}

void qsvc_local_purges_answer(struct qsvc_local *svc) {
    struct list *n, *tmp;
    list_for_each_safe(n, tmp, &svc->purging) {
        struct qsvc_call *call = container_of(n, struct qsvc_call, node);
        struct queue *q = queue_find(svc->eng, call->res.queue->name, call->res.queue->name_len);
        struct queue_stats qs;
        if (q) {
            queue_stats(q, &qs);
            if (qs.reaping)
                continue;
        }
        list_unlink(n);
        local_settle_kept(svc, call, QSVC_OK);
    }
}

const struct qsvc_ops qsvc_local_ops = {
    .put = local_put,
    .put_batch = local_put_batch,
    .reserve = local_reserve,
    .join = local_join,
    .ack = local_ack,
    .nack = local_nack,
    .touch = local_touch,
    .peek = local_peek,
    .declare = local_declare,
    .delete = local_delete,
    .stats = local_stats,
    .list = local_list,
    .dead_list = local_dead_list,
    .bulk = local_bulk,
    .cancel = local_cancel,
    .release = local_release,
    .ack_result = qsvc_local_ack_result,
    .nack_error = qsvc_local_nack_error,
    .result = qsvc_local_result,
    .jobs = qsvc_local_jobs,
    .ack_batch = local_ack_batch,
};

/* ---- for qsvc_local_result.c --------------------------------------------------------- */

int qsvc_local_open(struct qsvc_local *svc, struct qsvc_call *call, const char *name, size_t len,
                    int change, struct queue **q) {
    return local_open(svc, call, name, len, change, q);
}

int qsvc_local_settle(struct qsvc_local *svc, struct qsvc_call *call, int outcome) {
    return local_settle(svc, call, outcome);
}

void qsvc_local_settle_kept(struct qsvc_local *svc, struct qsvc_call *kept, int outcome) {
    local_settle_kept(svc, kept, outcome);
}

uint64_t qsvc_local_clamp_wait(struct qsvc_local *svc, uint64_t ms) {
    return local_clamp_wait(svc, ms);
}

void qsvc_local_jobs_to_wall(struct qsvc_local *svc, struct queue_job_info *jobs, unsigned n) {
    jobs_to_wall(svc, jobs, n);
}

void qsvc_local_wait_timeout(struct timer *t) {
    on_wait_timeout(t);
}
