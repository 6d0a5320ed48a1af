/*
 * qsvc_redis_reply: the Redis backend's replies. Each FCALL's answer is an
 * array whose first element is a status (svc/qsvc.h's); the rest is read
 * into the call's result here (payloads copied into the call's own memory:
 * the reply is gone once its callback returns). A change's answer waits
 * for WAIT when [redis] replicas_ack is set; a wait's empty answer goes
 * back to its watch (qsvc_redis_wait.c). A reply for a call given up
 * meanwhile gives back the jobs a reserve got.
 */
#include "svc/qsvc_redis.h"

#include "core/config.h"
#include "net/server.h"
#include "svc/redis_conn.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long long rsvc_ival(const redisReply *r, size_t i) {
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

void rsvc_fields(const redisReply *r, size_t at, void *dst, const struct rsvc_field *f,
                 size_t n) {
    for (size_t k = 0; k < n; k++) {
        long long v = rsvc_ival(r, at + f[k].idx);
        unsigned char *d = (unsigned char *)dst + f[k].off;
        if (f[k].size == 8) {
            uint64_t x = (uint64_t)v;
            memcpy(d, &x, 8);
        } else if (f[k].size == 4) {
            uint32_t x = (uint32_t)v;
            memcpy(d, &x, 4);
        } else if (f[k].size == 2) {
            uint16_t x = (uint16_t)v;
            memcpy(d, &x, 2);
        } else {
            *d = (unsigned char)v;
        }
    }
}

const redisReply *rsvc_sval(const redisReply *r, size_t i) {
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[i];
}

#define QF(member, i) RSVC_FIELD(struct qsvc_queue, member, i)
/* aw_stats' figures, in their order. */
static const struct rsvc_field stats_fields[] = {
    QF(stats.size, 0),           QF(stats.maxsize, 1),          QF(stats.reserved, 2),
    QF(stats.delayed, 3),        QF(stats.dead, 4),             QF(stats.unfinished, 5),
    QF(stats.total_put, 6),      QF(stats.total_acked, 7),      QF(stats.total_redelivered, 8),
    QF(stats.total_dead, 9),     QF(stats.shutdown, 10),        QF(settings.maxsize, 1),
    QF(settings.lease_ms, 11),   QF(settings.max_attempts, 12), QF(settings.max_payload, 13),
    QF(settings.key_window_ms, 14), QF(stats.total_requeued, 15), QF(stats.total_dropped, 16),
    QF(stats.total_dead_purged, 17), QF(settings.result_ttl_ms, 18), QF(stats.results, 19)};

void rsvc_fill_stats(struct rop *rop, const redisReply *r, size_t at, struct qsvc_queue *q,
                       const char *name, size_t len) {
    char copy[QUEUE_NAME_MAX + 1];
    memcpy(copy, name, len); /* name may be q->name */
    memset(q, 0, sizeof *q);
    memcpy(q->name, copy, len);
    q->name[len] = '\0';
    q->name_len = len;
    rsvc_fields(r, at, q, stats_fields, sizeof stats_fields / sizeof stats_fields[0]);
    rwait_counts(rop->svc, q->name, len, &q->stats);
}

/* res.queue of a declare or stats (from r's element at on): the op's own
 * (rop->queues, unused by these), which lives until done() has returned. */
static int rop_queue(struct rop *rop, const redisReply *r, size_t at) {
    if (!rop->queues && !(rop->queues = malloc(sizeof *rop->queues)))
        return QSVC_ERR_NOMEM;
    rsvc_fill_stats(rop, r, at, rop->queues, rop->qname, rop->qlen);
    rop->call->res.queue = rop->queues;
    return QSVC_OK;
}

#define JF(member, i) RSVC_FIELD(struct queue_job_info, member, i)
/* A reserved job: id, priority, attempt, deadline (then its payload). */
static const struct rsvc_field job_fields[] = {JF(id, 0), JF(priority, 1), JF(attempt, 2),
                                               JF(deadline, 3)};
/* aw_peek's job: id, priority, attempt, state, deadline (then its payload). */
static const struct rsvc_field peek_fields[] = {JF(id, 0), JF(priority, 1), JF(attempt, 2),
                                                JF(state, 3), JF(deadline, 4)};
/* What aw_unreserve needs of a reserved job. */
static const struct rsvc_field unreserve_fields[] = {JF(id, 0), JF(attempt, 2)};
#define NF(a) (sizeof(a) / sizeof(a)[0])

/* Jobs (id, priority, attempt, deadline, payload) * n from r at i, into rop->jobs. */
static int take_jobs(struct rop *rop, const redisReply *r, size_t at, unsigned n, int state) {
    size_t total = 0;
    for (unsigned k = 0; k < n; k++) {
        const redisReply *p = rsvc_sval(r, at + k * 5 + 4);
        if (!p)
            return -1;
        total += p->len;
    }
    free(rop->copy);
    rop->copy = malloc(total ? total : 1);
    if (!rop->copy)
        return -1;
    size_t off = 0;
    for (unsigned k = 0; k < n; k++) {
        struct queue_job_info *j = &rop->jobs[k];
        const redisReply *p = r->element[at + k * 5 + 4];
        rsvc_fields(r, at + k * 5, j, job_fields, NF(job_fields));
        j->state = state;
        memcpy(rop->copy + off, p->str, p->len);
        j->payload = rop->copy + off;
        j->len = p->len;
        off += p->len;
    }
    return 0;
}

/* A reserve's jobs that cannot be handed over (n from element 1): back to Redis. */
static void give_back(struct rop *rop, const redisReply *r) {
    unsigned n = (unsigned)rsvc_ival(r, 1);
    for (unsigned k = 0; k < n && k < rop->count; k++)
        rsvc_fields(r, 2 + k * 5, &rop->jobs[k], unreserve_fields, NF(unreserve_fields));
    rop_unreserve_jobs(rop);
}

/* A change is applied: answer st now, or after WAIT for the replicas. */
static void on_wait_reply(void *arg, struct redisReply *r, const char *why);

static void settle(struct rop *rop, int st) {
    const struct config *cfg = rop->svc->srv->cfg;
    uint64_t n = cfg->redis_replicas_ack;
    if (st != QSVC_OK || n == 0) {
        rop_finish(rop, st);
        return;
    }
    char nb[24], tb[24];
    snprintf(nb, sizeof nb, "%" PRIu64, n);
    /* Half of command_timeout: WAIT answers (with too few) before the connection's own
     * deadline would close it. The connection is pipelined: while WAIT blocks, the
     * commands behind it wait too. */
    snprintf(tb, sizeof tb, "%" PRIu64, cfg->redis_command_timeout_ms / 2 ? cfg->redis_command_timeout_ms / 2 : 1);
    const char *argv[] = {"WAIT", nb, tb};
    char key[sizeof rop->svc->prefix + QUEUE_NAME_MAX + 4];
    int klen = rsvc_key(rop->svc, rop->qname, rop->qlen, key, sizeof key);
    rop->ok_status = st;
    /* Routed by the queue's key: WAIT counts the replicas of the master that took the change. */
    if (redis_conn_command(rop->svc->rc, key, (size_t)klen, on_wait_reply, rop, 3, argv, NULL) < 0) {
        rop_why(rop, "the queue backend (redis) applied the change but cannot confirm its "
                "replicas: %s", redis_conn_why(rop->svc->rc));
        rop_finish(rop, QSVC_ERR_UNAVAILABLE);
        return;
    }
    rop->inflight++;
}

static void on_wait_reply(void *arg, struct redisReply *r, const char *why) {
    struct rop *rop = arg;
    rop->inflight--;
    if (rop->call) {
        uint64_t want = rop->svc->srv->cfg->redis_replicas_ack;
        if (r && r->type == REDIS_REPLY_INTEGER && (uint64_t)r->integer >= want) {
            rop_finish(rop, rop->ok_status);
        } else {
            rop_why(rop, "the queue backend (redis) applied the change but %s (replicas_ack = %" PRIu64
                    ")", r && r->type == REDIS_REPLY_INTEGER ? "too few replicas acknowledged it in time"
                                                              : why ? why : "WAIT failed", want);
            rop_finish(rop, QSVC_ERR_UNAVAILABLE);
        }
    }
    rop_maybe_free(rop);
}

/* A wait's check came back with nothing (or full, or unfinished jobs). */
static void wait_more(struct rop *rop, int now_st, int64_t next_due) {
    if (!rop->wait_ms || !rop->watch) {
        rop_finish(rop, now_st);
        return;
    }
    if (rop->recheck) {
        rop->recheck = 0;
        rop->rechecked = 1;
        if (rop_send(rop) == 0)
            return;
    }
    rwait_idle(rop, next_due);
}

void rop_on_reply(void *arg, struct redisReply *r, const char *why) {
    struct rop *rop = arg;
    rop->inflight--;
    struct qsvc_call *call = rop->call;
    int st = QSVC_OK;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "Function not found") &&
            rop->svc->lib_ok) {
            /* The library went (FUNCTION FLUSH, a Redis restarted empty): reconnecting
             * loads it again. */
            rop->svc->lib_ok = 0;
            redis_conn_fail(rop->svc->rc, "the awaitd function library is missing; reloading it");
        }
        if (call)
            rop_why(rop, "the queue backend (redis) failed: %.120s",
                     !r ? why : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        st = QSVC_ERR_UNAVAILABLE;
    } else {
        st = (int)rsvc_ival(r, 0);
    }
    if (!call) {
        /* Given up (client left, timed out, drained): jobs it got go back. */
        if (rop->kind == R_RESERVE && st == QSVC_OK)
            give_back(rop, r);
        rop_maybe_free(rop);
        return;
    }
    if (rop->kind == R_RESULT || rop->kind == R_JOBS || rop->kind == R_DEAD) {
        rsvc_result_reply(rop, st == QSVC_ERR_UNAVAILABLE ? NULL : r, st);
        rop_maybe_free(rop);
        return;
    }
    struct qsvc_result *res = &call->res;
    if (st == QSVC_ERR_NOQUEUE && rop->rechecked)
        st = QSVC_ERR_DELETED;
    if (st == QSVC_ERR_UNAVAILABLE || st == QSVC_ERR_NOQUEUE || st == QSVC_ERR_DELETED) {
        rop_finish(rop, st);
        rop_maybe_free(rop);
        return;
    }
    switch (rop->kind) {
    case R_PUT:
        if (st == QSVC_OK) {
            res->id = (uint64_t)rsvc_ival(r, 1);
            res->duplicate = (int)rsvc_ival(r, 2);
            settle(rop, QSVC_OK);
        } else if (st == QSVC_ERR_FULL) {
            res->limit = (uint64_t)rsvc_ival(r, 1);
            wait_more(rop, st, -1);
        } else {
            res->limit = (uint64_t)rsvc_ival(r, 1);
            rop_finish(rop, st);
        }
        break;
    case R_BATCH:
        res->n = 0;
        if (st == QSVC_OK) {
            res->id = (uint64_t)rsvc_ival(r, 1); /* consecutive: last - n + 1 .. last */
            for (size_t i = 0; i < rop->bn && i + 1 < r->elements; i++)
                res->n++;
            settle(rop, QSVC_OK);
        } else if (st == QSVC_ERR_FULL) {
            res->limit = (uint64_t)rsvc_ival(r, 1);
            wait_more(rop, st, -1);
        } else {
            res->limit = (uint64_t)rsvc_ival(r, 1);
            res->index = (size_t)rsvc_ival(r, 2);
            rop_finish(rop, st);
        }
        break;
    case R_RESERVE:
        if (st == QSVC_OK) {
            unsigned n = (unsigned)rsvc_ival(r, 1);
            if (n > rop->count || take_jobs(rop, r, 2, n, QUEUE_JOB_RESERVED) < 0) {
                give_back(rop, r);
                rop_finish(rop, QSVC_ERR_NOMEM);
                break;
            }
            res->jobs = rop->jobs;
            res->njobs = n;
            rop->held = 1;
            rop_finish(rop, QSVC_OK);
        } else if (st == QSVC_ERR_EMPTY) {
            wait_more(rop, st, (int64_t)rsvc_ival(r, 1));
        } else {
            rop_finish(rop, st);
        }
        break;
    case R_JOIN:
        if (st == QSVC_OK && rsvc_ival(r, 6) == 0)
            rop_finish(rop, QSVC_OK);
        else if (st == QSVC_OK)
            wait_more(rop, QSVC_ERR_TIMEOUT, -1);
        else
            rop_finish(rop, st);
        break;
    case R_ACK:
        res->id = rop->id;
        res->limit = (uint64_t)rsvc_ival(r, 1); /* TOOBIG: max_payload */
        settle(rop, st);
        break;
    case R_ACKS: /* {0, acked, status * n} */
        if (st == QSVC_OK) {
            res->n = (uint64_t)rsvc_ival(r, 1);
            for (size_t i = 0; i < rop->bn; i++)
                rop->acks[i].status = i + 2 < r->elements ? (int)rsvc_ival(r, 2 + i) : QSVC_ERR_NOTFOUND;
        }
        settle(rop, st);
        break;
    case R_NACK:
        res->id = rop->id;
        res->dead = (int)rsvc_ival(r, 1);
        settle(rop, st);
        break;
    case R_TOUCH:
        res->id = rop->id;
        res->deadline_ms = (uint64_t)rsvc_ival(r, 1);
        rop_finish(rop, st);
        break;
    case R_PEEK:
        if (st == QSVC_OK) {
            /* {0, id, priority, attempt, state, deadline, payload}: reorder for take_jobs. */
            const redisReply *p = rsvc_sval(r, 6);
            if (!p || !(rop->copy = malloc(p->len ? p->len : 1))) {
                rop_finish(rop, QSVC_ERR_NOMEM);
                break;
            }
            struct queue_job_info *j = rop->jobs;
            rsvc_fields(r, 1, j, peek_fields, NF(peek_fields));
            memcpy(rop->copy, p->str, p->len);
            j->payload = rop->copy;
            j->len = p->len;
            res->jobs = j;
            res->njobs = 1;
        }
        rop_finish(rop, st);
        break;
    case R_DECLARE:
        if (st == QSVC_OK) {
            res->created = (int)rsvc_ival(r, 1);
            st = rop_queue(rop, r, 2);
        }
        settle(rop, st);
        break;
    case R_DELETE:
        if (st == QSVC_OK) {
            const char *argv[] = {"SREM", rop->svc->registry, rop->qname};
            size_t lens[] = {4, strlen(rop->svc->registry), rop->qlen};
            redis_conn_command(rop->svc->rc, rop->svc->registry, lens[1], rsvc_ignore, NULL, 3,
                               argv, lens);
        }
        settle(rop, st);
        break;
    case R_STATS:
        if (st == QSVC_OK)
            st = rop_queue(rop, r, 1);
        rop_finish(rop, st);
        break;
    case R_BULK:
        if (st == QSVC_OK)
            res->n = (uint64_t)rsvc_ival(r, 1);
        settle(rop, st);
        break;
    default:
        rop_finish(rop, QSVC_ERR_INVALID);
    }
    rop_maybe_free(rop);
}

