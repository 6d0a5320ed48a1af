/*
 * qsvc_redis_result: job results, job listings and dead-letter reasons of
 * the Redis backend (issue 17's results, carried by issue 13; docs/REDIS.md
 * "Results"). The library functions are in qsvc_redis_results.lua: the
 * ack's own FCALL (aw_ack) keeps the result, atomically with the ack;
 * aw_result reads an outcome; aw_jobs lists a state (the dead letters'
 * listing, GET /queues/{q}/dead, is aw_jobs too).
 *
 * A result wait (GET .../result?wait=S on a live job) is held in this node,
 * in a bucket of svc->rwaits by job id, not in a queue's watch: aw_result
 * marks the job as waited for (in Redis, until the wait ends), and when a
 * marked job finishes its function publishes "o ID QUEUE" on the queue
 * channel this node already hears (one subscription per node, none per
 * waiter). Every wait on that job here then checks again (one FCALL each),
 * as a reserve's wait does: a notification landing while a check is in
 * flight makes it check again, a reconnect re-checks every wait, and a
 * deleted queue ("x") answers its waits 410. A wait on a reserved job also
 * checks again when its lease ends (Redis moves an expired lease on only
 * when something touches the queue: that check kills the job after its
 * last attempt, and its notification answers every wait on it). A job that left with nothing
 * kept (an ack without a result, a purge, an immediate shutdown) leaves a
 * short-lived marker saying how, which only a waiter's re-check reads, so
 * a plain later ask still answers 404 as with the local backend. Nothing
 * polls: waits are not in the once-a-second safety re-check of the other
 * waits (a lost notification costs a waiter its wait=, then 204).
 */
#include "svc/qsvc_redis.h"

#include "core/config.h"
#include "net/server.h"
#include "svc/redis_conn.h"
#include "svc/result_waits.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rsvc *rsvc_of(struct qsvc *base) {
    return (struct rsvc *)base;
}

/* ---- ack and nack --------------------------------------------------------------------- */

/* An ack or nack carrying bytes (copied: the reply may come after the caller's body). */
static int finish_op(struct qsvc *base, struct qsvc_call *call, int kind, const char *q,
                     size_t qlen, uint64_t id, uint32_t attempt, uint64_t delay_ms,
                     const struct qsvc_outcome *o) {
    struct rop *rop = rop_new(rsvc_of(base), kind, q, qlen, o->len + o->ctype_len + 1);
    if (!rop)
        return QSVC_ERR_NOMEM;
    if (o->len)
        memcpy(rop->extra, o->body, o->len);
    if (o->ctype_len)
        memcpy(rop->extra + o->len, o->ctype, o->ctype_len);
    rop->payload = rop->extra;
    rop->len = o->len;
    rop->key = rop->extra + o->len;
    rop->key_len = o->ctype_len;
    rop->id = id;
    rop->attempt = attempt;
    rop->arg = delay_ms;
    return rop_start(rop, call);
}

int rsvc_ack_result(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, const struct qsvc_outcome *o) {
    return finish_op(base, call, R_ACK, q, qlen, id, attempt, 0, o);
}

int rsvc_nack_error(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, uint64_t delay_ms, const struct qsvc_outcome *o) {
    struct qsvc_outcome text = {"", 0, o->body, o->len}; /* a nack keeps no content type */
    return finish_op(base, call, R_NACK, q, qlen, id, attempt, delay_ms, &text);
}

/* ---- result waits --------------------------------------------------------------------- */

static void on_wait_timeout(struct timer *t) {
    struct rop *rop = container_of(t, struct rop, wait_t);
    rop_finish(rop, QSVC_ERR_TIMEOUT); /* 204: the job is still live */
}

/* The job's lease ends: the check moves it on (ready again, or dead: then answered). */
static void on_due(struct timer *t) {
    rwait_recheck(container_of(t, struct rop, due_t));
}

/* Hold rop (its first check is in flight) until the job finishes or wait_ms passes. */
static int wait_join(struct rop *rop, uint64_t wait_ms) {
    struct rsvc *svc = rop->svc;
    if (svc->draining)
        return -1;
    if (!svc->rwaits && !(svc->rwaits = result_waits_new()))
        return -1;
    rop->wait_ms = wait_ms;
    rop->rwaiting = 1;
    list_push(result_waits_bucket(svc->rwaits, rop->id), &rop->rnode);
    timer_init(&rop->wait_t, on_wait_timeout);
    timer_init(&rop->due_t, on_due);
    server_timer_in(svc->srv, &rop->wait_t, wait_ms);
    return 0;
}

void rsvc_result_leave(struct rop *rop) {
    list_unlink(&rop->rnode);
    rop->rwaiting = 0;
    timer_cancel(&rop->svc->srv->wheel, &rop->wait_t);
    timer_cancel(&rop->svc->srv->wheel, &rop->due_t);
}

/* res.result of a result call: in the op's extra bytes (rsvc_result), zeroed. */
static struct queue_result_info *rop_result(struct rop *rop) {
    return (struct queue_result_info *)(void *)rop->extra;
}

static void end_deleted(struct rop *rop) {
    struct qsvc_call *call = rop->call;
    memset(rop_result(rop), 0, sizeof(struct queue_result_info));
    call->res.gone = QSVC_GONE_DELETED;
    rop_finish(rop, QSVC_OK);
}

void rsvc_result_message(struct rsvc *svc, const char *msg, size_t len) {
    if (!svc->rwaits || (msg[0] != 'o' && msg[0] != 'x'))
        return;
    const char *p = msg + 2, *end = msg + len;
    uint64_t id = 0;
    while (p < end && *p >= '0' && *p <= '9')
        id = id * 10 + (uint64_t)(*p++ - '0');
    if (p >= end || *p != ' ')
        return;
    p++;
    size_t qlen = (size_t)(end - p);
    struct list *n, *tmp;
    if (msg[0] == 'o') {
        list_for_each_safe(n, tmp, result_waits_bucket(svc->rwaits, id)) {
            struct rop *rop = container_of(n, struct rop, rnode);
            if (rop->id == id && rop->qlen == qlen && memcmp(rop->qname, p, qlen) == 0)
                rwait_recheck(rop); /* sends only: no wait leaves the bucket here */
        }
        return;
    }
    for (size_t i = 0; i < RESULT_WAITS_BUCKETS; i++)
        list_for_each_safe(n, tmp, &svc->rwaits[i]) {
            struct rop *rop = container_of(n, struct rop, rnode);
            if (rop->qlen == qlen && memcmp(rop->qname, p, qlen) == 0)
                end_deleted(rop);
        }
}

void rsvc_result_wake_all(struct rsvc *svc) {
    struct list *n, *tmp;
    for (size_t i = 0; svc->rwaits && i < RESULT_WAITS_BUCKETS; i++)
        list_for_each_safe(n, tmp, &svc->rwaits[i])
            rwait_recheck(container_of(n, struct rop, rnode));
}

void rsvc_result_end_all(struct rsvc *svc, int st) {
    struct list *n;
    for (size_t i = 0; svc->rwaits && i < RESULT_WAITS_BUCKETS; i++)
        while ((n = list_first(&svc->rwaits[i])))
            rop_finish(container_of(n, struct rop, rnode), st); /* leaves the bucket */
}

int rsvc_result(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
                uint64_t wait_ms) {
    struct rsvc *svc = rsvc_of(base);
    uint64_t max = svc->srv->cfg->queue_max_wait_ms;
    static const struct queue_result_info none;
    call->res.id = id;
    call->res.gone = 0;
    call->res.result = &none;
    struct rop *rop = rop_new(svc, R_RESULT, q, qlen, sizeof(struct queue_result_info));
    if (!rop)
        return QSVC_ERR_NOMEM;
    call->res.result = rop_result(rop); /* the op lives until done() has returned */
    rop->id = id;
    rop->arg = wait_ms > max ? max : wait_ms; /* aw_result marks the job while this lasts */
    list_init(&rop->rnode);
    int st = rop_start(rop, call);
    if (st != QSVC_PENDING)
        call->res.result = &none; /* rop may be gone */
    if (st == QSVC_PENDING && rop->arg && wait_join(rop, rop->arg) < 0)
        rop->arg = 0; /* no wait: a live job answers 204 */
    return st;
}

/* ---- listings ------------------------------------------------------------------------- */

int rsvc_jobs(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen, int state,
              const struct queue_cursor *after, struct queue_job_info *jobs, size_t max,
              size_t preview) {
    struct rop *rop = rop_new(rsvc_of(base), R_JOBS, q, qlen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->state = state;
    rop->has_after = after != NULL;
    rop->after_k = after ? after->k : 0;
    rop->id = after ? after->id : 0;
    rop->jobs = jobs; /* the caller's: it lasts until done() */
    rop->max = max;
    rop->preview = preview;
    return rop_start(rop, call);
}

int rsvc_result_send(struct rop *rop) {
    char a[6][24];
    const char *args[6];
    int n = 0;
#define NUM(v) (snprintf(a[n], sizeof a[n], "%" PRId64, (int64_t)(v)), args[n] = a[n], n++)
    if (rop->kind == R_RESULT) {
        NUM(rop->id);
        NUM(rop->arg); /* > 0: this node holds a wait for it */
        NUM(rop->rechecked);
        return rsvc_fcall(rop->svc, "aw_result", rop->qname, rop->qlen, n, args, NULL,
                          rop_on_reply, rop);
    }
    int dead = rop->kind == R_DEAD; /* GET /queues/{q}/dead: after is a dead job's id, or 0 */
    NUM(dead ? QUEUE_JOB_DEAD : rop->state);
    NUM(dead ? rop->id != 0 : rop->has_after);
    NUM(dead ? 0 : rop->after_k);
    NUM(rop->id);
    NUM(rop->max);
    NUM(dead ? 0 : rop->preview);
#undef NUM
    return rsvc_fcall(rop->svc, "aw_jobs", rop->qname, rop->qlen, n, args, NULL, rop_on_reply,
                      rop);
}

/* ---- replies -------------------------------------------------------------------------- */

/* Element i of r as bytes: NULL (nil, or not there) or the string. */
static const redisReply *bytes_at(const redisReply *r, size_t i) {
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING ? e : NULL;
}

/* {0, outcome, reason, attempt, expires, ctype, body} or {0, 0, how}. */
static int take_outcome(struct rop *rop, const redisReply *r) {
    struct qsvc_result *res = &rop->call->res;
    struct queue_result_info *ri = rop_result(rop);
    memset(ri, 0, sizeof *ri);
    ri->id = rop->id;
    int outcome = (int)rsvc_ival(r, 1);
    if (outcome == 0) { /* a waited-for job that left with nothing kept: how */
        const redisReply *how = bytes_at(r, 2);
        char c = how && how->len ? how->str[0] : 'p';
        if (c == 'a') { /* an ack without a result: 200, empty */
            ri->outcome = QUEUE_OUTCOME_ACKED;
            ri->ctype = ri->body = "";
        } else {
            res->gone = c == 's' ? QSVC_GONE_SHUTDOWN : c == 'P' ? QSVC_GONE_DEAD_PURGED
                                                                 : QSVC_GONE_PURGED;
        }
        return QSVC_OK;
    }
    const redisReply *ct = bytes_at(r, 5), *body = bytes_at(r, 6);
    size_t ctlen = ct ? ct->len : 0, blen = body ? body->len : 0;
    if (ctlen > QUEUE_CTYPE_MAX)
        ctlen = QUEUE_CTYPE_MAX;
    free(rop->copy);
    if (!(rop->copy = malloc(ctlen + blen + 1)))
        return QSVC_ERR_NOMEM;
    if (ctlen)
        memcpy(rop->copy, ct->str, ctlen);
    if (blen)
        memcpy(rop->copy + ctlen, body->str, blen);
    ri->outcome = outcome;
    ri->reason = (int)rsvc_ival(r, 2);
    ri->attempt = (uint32_t)rsvc_ival(r, 3);
    ri->expires = (uint64_t)rsvc_ival(r, 4); /* Redis's clock: unix ms */
    ri->ctype = rop->copy;
    ri->ctype_len = ctlen;
    ri->body = body || outcome == QUEUE_OUTCOME_ACKED ? rop->copy + ctlen : NULL; /* dead: text */
    ri->len = blen;
    return QSVC_OK;
}

/* {0, more, n, (id, priority, attempt, deadline, len, preview, reason, error) * n}. */
static int take_listing(struct rop *rop, const redisReply *r) {
    struct qsvc_result *res = &rop->call->res;
    size_t n = (size_t)rsvc_ival(r, 2), total = 0;
    if (n > rop->max || r->elements < 3 + n * 8)
        return QSVC_ERR_INVALID;
    for (size_t k = 0; k < n; k++) {
        const redisReply *p = bytes_at(r, 3 + k * 8 + 5), *e = bytes_at(r, 3 + k * 8 + 7);
        total += (p ? p->len : 0) + (e ? e->len : 0);
    }
    free(rop->copy);
    if (!(rop->copy = malloc(total + 1)))
        return QSVC_ERR_NOMEM;
    size_t off = 0;
    for (size_t k = 0; k < n; k++) {
        size_t at = 3 + k * 8;
        struct queue_job_info *j = &rop->jobs[k];
        const redisReply *p = bytes_at(r, at + 5), *e = bytes_at(r, at + 7);
        memset(j, 0, sizeof *j);
        j->id = (uint64_t)rsvc_ival(r, at);
        j->priority = (int32_t)rsvc_ival(r, at + 1);
        j->attempt = (uint32_t)rsvc_ival(r, at + 2);
        j->deadline = (uint64_t)rsvc_ival(r, at + 3);
        j->len = (size_t)rsvc_ival(r, at + 4);
        j->state = rop->kind == R_DEAD ? QUEUE_JOB_DEAD : rop->state;
        j->payload = rop->copy + off;
        if (p) {
            memcpy(rop->copy + off, p->str, p->len);
            off += p->len;
        }
        if (j->state == QUEUE_JOB_DEAD) {
            j->reason = (int)rsvc_ival(r, at + 6);
            if (e) {
                memcpy(rop->copy + off, e->str, e->len);
                j->error = rop->copy + off;
                j->error_len = e->len;
                off += e->len;
            }
        }
    }
    res->jobs = rop->jobs;
    res->njobs = (unsigned)n;
    res->more = rsvc_ival(r, 1) != 0;
    if (n) {
        const struct queue_job_info *last = &rop->jobs[n - 1];
        res->next.id = last->id;
        res->next.k = last->state == QUEUE_JOB_READY     ? last->priority
                      : last->state == QUEUE_JOB_DELAYED ? (int64_t)last->deadline
                                                         : 0;
    }
    return QSVC_OK;
}

void rsvc_result_reply(struct rop *rop, const redisReply *r, int st) {
    if (!r) {
        rop_finish(rop, st); /* unavailable: res.why says why */
        return;
    }
    if (rop->kind != R_RESULT) {
        rop_finish(rop, st == QSVC_OK ? take_listing(rop, r) : st);
        return;
    }
    switch (st) {
    case QSVC_ERR_TIMEOUT: /* live */
        if (!rop->rwaiting) {
            rop_finish(rop, QSVC_ERR_TIMEOUT);
        } else if (rop->recheck) { /* woken while this check was in flight */
            rop->recheck = 0;
            rwait_recheck(rop);
        } else if (rsvc_ival(r, 1) >= 0) { /* reserved: a lease that runs out may kill it */
            server_timer_in(rop->svc->srv, &rop->due_t, (uint64_t)rsvc_ival(r, 1) + 1);
        }
        return; /* else: held until its notification or wait= */
    case QSVC_OK: rop_finish(rop, take_outcome(rop, r)); return;
    case QSVC_ERR_NOQUEUE:
        if (rop->rechecked) { /* the queue went while we waited: its "x" was missed */
            end_deleted(rop);
            return;
        }
        break;
    }
    rop_finish(rop, st);
}
