/*
 * qsvc_redis: the queue operations of the Redis backend. Each operation is
 * one FCALL of the function library (qsvc_redis.lua) on the queue's hash
 * tag, so it is atomic in Redis and uses Redis's clock. Every call is kept
 * (the answer comes from the network) and finishes from the loop through
 * the ready list. A change's answer leaves once Redis has applied it, and,
 * with [redis] replicas_ack = N, once WAIT says N replicas have it.
 *
 * Blocking waits (reserve, put and join with wait=) are held here, in
 * their queue's watch (qsvc_redis_wait.c), and re-checked when the
 * notification channel says something changed on that queue.
 */
#include "svc/qsvc_redis.h"

#include "core/config.h"
#include "net/server.h"
#include "svc/redis_conn.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rsvc *rsvc_of(struct qsvc *base) {
    return (struct rsvc *)base;
}

static int unavailable(struct rsvc *svc, struct qsvc_call *call) {
    call->res.why = svc->why; /* answered at once: before anything else writes it */
    snprintf(svc->why, sizeof svc->why, "the queue backend (redis) is unavailable: %s",
             svc->lib_ok ? redis_conn_why(svc->rc) : redis_conn_up(svc->rc)
                 ? "the function library is not loaded" : redis_conn_why(svc->rc));
    return QSVC_ERR_UNAVAILABLE;
}

int rsvc_key(const struct rsvc *svc, const char *q, size_t qlen, char *key, size_t size) {
    return snprintf(key, size, "{%s%.*s}", svc->prefix, (int)qlen, q);
}

int rsvc_fcall(struct rsvc *svc, const char *fn, const char *q, size_t qlen, int nargs,
               const char **args, const size_t *lens, redis_reply_fn cb, void *arg) {
    char key[sizeof svc->prefix + QUEUE_NAME_MAX + 6];
    int klen = rsvc_key(svc, q, qlen, key, sizeof key);
    memcpy(key + klen, ":m", 3); /* KEYS[1]: the settings hash, a real key (qsvc_redis.lua) */
    klen += 2;
    const char *small_argv[16];
    size_t small_lens[16];
    int argc = 6 + nargs;
    const char **argv = argc <= 16 ? small_argv : malloc((size_t)argc * sizeof *argv);
    size_t *alen = argc <= 16 ? small_lens : malloc((size_t)argc * sizeof *alen);
    int rc = -1;
    if (argv && alen) {
        argv[0] = "FCALL", alen[0] = 5;
        argv[1] = fn, alen[1] = strlen(fn);
        argv[2] = "1", alen[2] = 1;
        argv[3] = key, alen[3] = (size_t)klen;
        argv[4] = svc->channel, alen[4] = strlen(svc->channel);
        argv[5] = q, alen[5] = qlen;
        for (int i = 0; i < nargs; i++) {
            argv[6 + i] = args[i];
            alen[6 + i] = lens ? lens[i] : strlen(args[i]);
        }
        rc = redis_conn_command(svc->rc, key, (size_t)klen, cb, arg, argc, argv, alen);
    }
    if (argv != small_argv)
        free(argv);
    if (alen != small_lens)
        free(alen);
    return rc;
}

/* ---- a call's life ------------------------------------------------------------------- */

void rop_maybe_free(struct rop *rop) {
    if (!rop->released || rop->inflight > 0 || rop->call)
        return;
    free(rop->copy);
    free(rop->queues);
    free(rop->why);
    free(rop);
}

void rop_why(struct rop *rop, const char *fmt, ...) {
    if (!rop->why && !(rop->why = malloc(QSVC_WHY_MAX))) {
        rop->call->res.why = "the queue backend (redis) failed (and memory ran out)";
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rop->why, QSVC_WHY_MAX, fmt, ap);
    va_end(ap);
    rop->call->res.why = rop->why;
}

void rop_finish(struct rop *rop, int st) {
    struct qsvc_call *call = rop->call;
    rwait_leave(rop);
    if (!call)
        return;
    rop->call = NULL;
    qsvc_complete(call, st);
}

void rsvc_ignore(void *arg, struct redisReply *r, const char *why) {
    (void)arg;
    (void)r;
    (void)why;
}

void rop_unreserve_jobs(struct rop *rop) {
    char id[24], att[12];
    for (unsigned i = 0; i < rop->count && rop->jobs; i++) {
        if (!rop->jobs[i].id)
            continue;
        snprintf(id, sizeof id, "%" PRIu64, rop->jobs[i].id);
        snprintf(att, sizeof att, "%u", rop->jobs[i].attempt);
        const char *args[] = {id, att};
        rsvc_fcall(rop->svc, "aw_unreserve", rop->qname, rop->qlen, 2, args, NULL, rsvc_ignore,
                   NULL); /* if this fails too, the lease brings them back */
        rop->jobs[i].id = 0;
    }
}

/* A fresh rop with extra bytes; NULL when out of memory. */
struct rop *rop_new(struct rsvc *svc, int kind, const char *q, size_t qlen, size_t extra) {
    struct rop *rop = calloc(1, sizeof *rop + extra);
    if (!rop)
        return NULL;
    rop->svc = svc;
    rop->kind = kind;
    rop->qlen = qlen;
    memcpy(rop->qname, q, qlen);
    list_init(&rop->wnode);
    return rop;
}

/* Send rop's command, then keep the call: PENDING, or the error (rop freed). */
int rop_start(struct rop *rop, struct qsvc_call *call) {
    rop->svc->ops_total[rop->kind]++;
    if (rop_send(rop) < 0) {
        int st = unavailable(rop->svc, call);
        free(rop);
        return st;
    }
    struct qsvc_call *kept = qsvc_keep(call);
    rop->released = kept == NULL;
    if (!kept)
        return QSVC_ERR_NOMEM; /* the reply finds no call and frees rop (giving jobs back) */
    kept->pend = rop;
    rop->call = kept;
    if (rop->wait_ms && (rop->svc->draining || rwait_join(rop) < 0))
        rop->wait_ms = 0;
    return QSVC_PENDING;
}

static int begin(struct rsvc *svc, struct qsvc_call *call) {
    if (!svc->lib_ok || !redis_conn_up(svc->rc))
        return unavailable(svc, call);
    return QSVC_OK;
}

static uint64_t clamp_wait(struct rsvc *svc, uint64_t ms) {
    uint64_t max = svc->srv->cfg->queue_max_wait_ms;
    return ms > max ? max : ms;
}

int rop_send(struct rop *rop) {
    struct rsvc *svc = rop->svc;
    char a[7][24];
    const char *args[8] = {0};
    size_t lens[8] = {0};
    int n = 0, rc;
    if (!redis_conn_up(svc->rc) || !svc->lib_ok)
        return -1;
#define NUM(v) (snprintf(a[n], sizeof a[n], "%" PRId64, (int64_t)(v)), args[n] = a[n], lens[n] = strlen(a[n]), n++)
    switch (rop->kind) {
    case R_PUT:
        args[n] = rop->payload, lens[n] = rop->len, n++;
        NUM(rop->priority);
        NUM(rop->delay_ms);
        args[n] = rop->key ? rop->key : "", lens[n] = rop->key ? rop->key_len : 0, n++;
        rc = rsvc_fcall(svc, "aw_put", rop->qname, rop->qlen, n, args, lens, rop_on_reply, rop);
        break;
    case R_BATCH: {
        size_t total = 3 + rop->bn;
        const char **bargs = malloc(total * sizeof *bargs);
        size_t *blens = malloc(total * sizeof *blens);
        NUM(rop->priority);
        NUM(rop->delay_ms);
        NUM(rop->bn);
        rc = -1;
        if (bargs && blens) {
            for (int i = 0; i < 3; i++)
                bargs[i] = args[i], blens[i] = lens[i];
            for (size_t i = 0; i < rop->bn; i++)
                bargs[3 + i] = rop->bjobs[i].payload ? rop->bjobs[i].payload : "",
                blens[3 + i] = rop->bjobs[i].len;
            rc = rsvc_fcall(svc, "aw_put_batch", rop->qname, rop->qlen, (int)total, bargs, blens,
                            rop_on_reply, rop);
        }
        free(bargs);
        free(blens);
        break;
    }
    case R_RESERVE:
        NUM(rop->count);
        NUM(rop->arg);
        NUM(rop->wait_ms); /* how long a getter may wait: puts wake getters only then */
        rc = rsvc_fcall(svc, "aw_reserve", rop->qname, rop->qlen, n, args, lens, rop_on_reply, rop);
        break;
    case R_JOIN:
    case R_STATS:
        rc = rsvc_fcall(svc, "aw_stats", rop->qname, rop->qlen, 0, args, lens, rop_on_reply, rop);
        break;
    case R_ACK:
    case R_NACK:
    case R_TOUCH:
        NUM(rop->id);
        NUM(rop->attempt);
        if (rop->kind != R_ACK)
            NUM(rop->arg);
        if (rop->kind == R_ACK && rop->payload) /* a result: its content type, then it */
            args[n] = rop->key, lens[n] = rop->key_len, n++;
        if (rop->kind != R_TOUCH && rop->payload) /* ... or a nack's error text */
            args[n] = rop->payload, lens[n] = rop->len, n++;
        rc = rsvc_fcall(svc, rop->kind == R_ACK ? "aw_ack" : rop->kind == R_NACK ? "aw_nack" : "aw_touch",
                        rop->qname, rop->qlen, n, args, lens, rop_on_reply, rop);
        break;
    case R_ACKS: { /* n, then n pairs id, attempt */
        size_t total = 1 + 2 * rop->bn;
        const char **bargs = malloc(total * sizeof *bargs);
        size_t *blens = malloc(total * sizeof *blens);
        char *nums = malloc(total * 24);
        rc = -1;
        if (bargs && blens && nums) {
            for (size_t i = 0; i < total; i++) {
                uint64_t v = i == 0 ? rop->bn : i % 2 ? rop->acks[i / 2].id : rop->acks[i / 2 - 1].attempt;
                bargs[i] = nums + i * 24;
                blens[i] = (size_t)snprintf(nums + i * 24, 24, "%" PRIu64, v);
            }
            rc = rsvc_fcall(svc, "aw_ack_batch", rop->qname, rop->qlen, (int)total, bargs, blens,
                            rop_on_reply, rop);
        }
        free(bargs);
        free(blens);
        free(nums);
        break;
    }
    case R_PEEK:
        NUM(rop->id);
        rc = rsvc_fcall(svc, "aw_peek", rop->qname, rop->qlen, n, args, lens, rop_on_reply, rop);
        break;
    case R_DECLARE: {
        const struct queue_settings *s = &rop->set.s;
        NUM(rop->set.mask);
        NUM(s->maxsize);
        NUM(s->lease_ms);
        NUM(s->max_attempts);
        NUM(s->max_payload);
        NUM(s->key_window_ms);
        NUM(s->result_ttl_ms);
        const char *argv[] = {"SADD", svc->registry, rop->qname};
        size_t alen[] = {4, strlen(svc->registry), rop->qlen};
        redis_conn_command(svc->rc, svc->registry, alen[1], rsvc_ignore, NULL, 3, argv, alen);
        rc = rsvc_fcall(svc, "aw_declare", rop->qname, rop->qlen, n, args, lens, rop_on_reply, rop);
        break;
    }
    case R_DELETE:
        rc = rsvc_fcall(svc, "aw_delete", rop->qname, rop->qlen, 0, args, lens, rop_on_reply, rop);
        break;
    case R_DEAD: /* the dead state's listing */
    case R_RESULT:
    case R_JOBS:
        rc = rsvc_result_send(rop);
        break;
    case R_BULK:
        NUM(rop->op == QSVC_PURGE ? 0 : rop->op == QSVC_SHUTDOWN ? 1 : rop->op == QSVC_DEAD_REQUEUE ? 2 : 3);
        NUM(rop->arg);
        rc = rsvc_fcall(svc, "aw_bulk", rop->qname, rop->qlen, n, args, lens, rop_on_reply, rop);
        break;
    default:
        rc = -1;
    }
#undef NUM
    if (rc == 0)
        rop->inflight++;
    return rc;
}

/* ---- operations ------------------------------------------------------------------------ */

static int redis_put(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                     const struct queue_put *put, uint64_t wait_ms) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    wait_ms = clamp_wait(svc, wait_ms);
    struct rop *rop = rop_new(svc, R_PUT, q, qlen, put->len + put->key_len + 1);
    if (!rop)
        return QSVC_ERR_NOMEM;
    memcpy(rop->extra, put->payload, put->len); /* the reply may come after the caller's body is gone */
    rop->payload = rop->extra;
    rop->len = put->len;
    if (put->key) {
        memcpy(rop->extra + put->len, put->key, put->key_len);
        rop->key = rop->extra + put->len;
        rop->key_len = put->key_len;
    }
    rop->priority = put->priority;
    rop->delay_ms = put->delay_ms;
    rop->wait_ms = wait_ms;
    return rop_start(rop, call);
}

static int redis_put_batch(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                           const struct qsvc_batch_job *jobs, size_t n, int32_t priority,
                           uint64_t delay_ms, uint64_t wait_ms) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    wait_ms = clamp_wait(svc, wait_ms);
    /* A batch that may wait is sent again later: its own copy of the
     * payloads (the request's body need not outlive the first send). */
    size_t extra = 0;
    for (size_t i = 0; wait_ms && i < n; i++)
        extra += jobs[i].len;
    struct rop *rop = rop_new(svc, R_BATCH, q, qlen, wait_ms ? n * sizeof *jobs + extra : 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->bjobs = jobs;
    if (wait_ms) {
        struct qsvc_batch_job *copy = (struct qsvc_batch_job *)rop->extra;
        char *bytes = (char *)(copy + n);
        for (size_t i = 0; i < n; i++) {
            copy[i].payload = bytes;
            copy[i].len = jobs[i].len;
            if (jobs[i].len)
                memcpy(bytes, jobs[i].payload, jobs[i].len);
            bytes += jobs[i].len;
        }
        rop->bjobs = copy;
    }
    rop->wait_ms = wait_ms;
    rop->bn = n;
    rop->priority = priority;
    rop->delay_ms = delay_ms;
    return rop_start(rop, call);
}

static int redis_reserve(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                         unsigned count, uint64_t lease_ms, uint64_t wait_ms,
                         struct queue_job_info *jobs) {
    struct rsvc *svc = rsvc_of(base);
    (void)jobs; /* the answer always comes later: our own array */
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    if (count == 0)
        return QSVC_ERR_INVALID;
    struct rop *rop = rop_new(svc, R_RESERVE, q, qlen, count * sizeof(struct queue_job_info));
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->jobs = (struct queue_job_info *)(void *)rop->extra;
    rop->count = count;
    rop->arg = lease_ms;
    rop->wait_ms = clamp_wait(svc, wait_ms);
    return rop_start(rop, call);
}

static int redis_join(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                      uint64_t wait_ms) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    struct rop *rop = rop_new(svc, R_JOIN, q, qlen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->wait_ms = clamp_wait(svc, wait_ms);
    return rop_start(rop, call);
}

static int job_op(struct qsvc *base, struct qsvc_call *call, int kind, const char *q, size_t qlen,
                  uint64_t id, uint32_t attempt, uint64_t arg) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    struct rop *rop = rop_new(svc, kind, q, qlen, kind == R_PEEK ? sizeof(struct queue_job_info) : 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    if (kind == R_PEEK)
        rop->jobs = (struct queue_job_info *)(void *)rop->extra;
    rop->id = id;
    rop->attempt = attempt;
    rop->arg = arg;
    return rop_start(rop, call);
}

static int redis_ack(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                     uint64_t id, uint32_t attempt) {
    return job_op(base, call, R_ACK, q, qlen, id, attempt, 0);
}

static int redis_ack_batch(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                           struct qsvc_ack_item *items, size_t n) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    struct rop *rop = rop_new(svc, R_ACKS, q, qlen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->acks = items;
    rop->bn = n;
    return rop_start(rop, call);
}

static int redis_nack(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                      uint64_t id, uint32_t attempt, uint64_t delay_ms) {
    return job_op(base, call, R_NACK, q, qlen, id, attempt, delay_ms);
}

static int redis_touch(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                       uint64_t id, uint32_t attempt, uint64_t lease_ms) {
    return job_op(base, call, R_TOUCH, q, qlen, id, attempt, lease_ms);
}

static int redis_peek(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                      uint64_t id, struct queue_job_info *job) {
    (void)job; /* answered later: our own copy */
    return job_op(base, call, R_PEEK, q, qlen, id, 0, 0);
}

static int redis_declare(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                         const struct qsvc_settings *set) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    struct rop *rop = rop_new(svc, R_DECLARE, q, qlen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    /* Unmasked settings of a new queue: the defaults. */
    struct queue_settings d;
    queue_settings_default(&d);
    d.key_window_ms = svc->srv->cfg->queue_key_window_ms;
    rop->set.mask = set->mask;
    rop->set.s.maxsize = set->mask & QSVC_SET_MAXSIZE ? set->s.maxsize : d.maxsize;
    rop->set.s.lease_ms = set->mask & QSVC_SET_LEASE ? set->s.lease_ms : d.lease_ms;
    rop->set.s.max_attempts = set->mask & QSVC_SET_MAX_ATTEMPTS ? set->s.max_attempts : d.max_attempts;
    rop->set.s.max_payload = set->mask & QSVC_SET_MAX_PAYLOAD ? set->s.max_payload : d.max_payload;
    rop->set.s.key_window_ms = set->mask & QSVC_SET_KEY_WINDOW ? set->s.key_window_ms : d.key_window_ms;
    rop->set.s.result_ttl_ms = set->mask & QSVC_SET_RESULT_TTL ? set->s.result_ttl_ms : d.result_ttl_ms;
    if (rop->set.s.lease_ms == 0 || rop->set.s.key_window_ms == 0 || rop->set.s.max_payload == 0 ||
        rop->set.s.max_attempts > QUEUE_MAX_ATTEMPTS_MAX) {
        free(rop);
        return QSVC_ERR_INVALID;
    }
    return rop_start(rop, call);
}

static int simple_op(struct qsvc *base, struct qsvc_call *call, int kind, const char *q,
                     size_t qlen) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    struct rop *rop = rop_new(svc, kind, q, qlen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    return rop_start(rop, call);
}

static int redis_delete(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen) {
    return simple_op(base, call, R_DELETE, q, qlen);
}

static int redis_stats(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen) {
    return simple_op(base, call, R_STATS, q, qlen);
}

static int redis_dead_list(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                           uint64_t after, struct queue_job_info *jobs, size_t max) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    struct rop *rop = rop_new(svc, R_DEAD, q, qlen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->jobs = jobs; /* the caller's: it lasts until done() */
    rop->max = max;
    rop->id = after;
    return rop_start(rop, call);
}

static int redis_bulk(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                      int op, uint64_t arg) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    if (op < QSVC_PURGE || op > QSVC_DEAD_PURGE)
        return QSVC_ERR_INVALID;
    struct rop *rop = rop_new(svc, R_BULK, q, qlen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->op = op;
    rop->arg = arg;
    return rop_start(rop, call);
}

/* ---- list: the registry's names, then each queue's stats ------------------------------- */

struct litem {
    struct rop *rop;
    size_t i;
    int ok;
};

static int cmp_queue(const void *a, const void *b) {
    const struct qsvc_queue *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static void list_done(struct rop *rop) {
    struct litem *items = (struct litem *)(void *)rop->copy;
    size_t k = 0;
    for (size_t i = 0; i < rop->nnames; i++)
        if (items[i].ok)
            rop->queues[k++] = rop->queues[i];
    rop->call->res.queues = rop->queues;
    rop->call->res.nqueues = k;
    rop->call->res.more = (int)rop->arg;
    rop_finish(rop, QSVC_OK);
}

static void on_list_stats(void *arg, struct redisReply *r, const char *why) {
    struct litem *it = arg;
    struct rop *rop = it->rop;
    rop->inflight--;
    if (rop->call) {
        if (!r) {
            rop_why(rop, "the queue backend (redis) failed: %s", why);
            rop_finish(rop, QSVC_ERR_UNAVAILABLE);
        } else if (r->type == REDIS_REPLY_ARRAY && rsvc_ival(r, 0) == QSVC_OK) {
            struct qsvc_queue *q = &rop->queues[it->i];
            rsvc_fill_stats(rop, r, 1, q, q->name, q->name_len);
            it->ok = 1;
        }
        if (rop->call && rop->inflight == 0)
            list_done(rop);
    }
    rop_maybe_free(rop);
}

static void on_list_names(void *arg, struct redisReply *r, const char *why) {
    struct rop *rop = arg;
    rop->inflight--;
    if (!rop->call) {
        rop_maybe_free(rop);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rop_why(rop, "the queue backend (redis) failed: %s", r ? "unexpected reply" : why);
        rop_finish(rop, QSVC_ERR_UNAVAILABLE);
        rop_maybe_free(rop);
        return;
    }
    size_t n = r->elements;
    rop->queues = calloc(n ? n : 1, sizeof *rop->queues);
    rop->copy = calloc(n ? n : 1, sizeof(struct litem));
    if (!rop->queues || !rop->copy) {
        rop_finish(rop, QSVC_ERR_NOMEM);
        rop_maybe_free(rop);
        return;
    }
    /* The page: valid names sorting after the cursor (rop->qname), in name
     * order, at most rop->max of them (as the local backend's walk). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || !queue_name_valid(e->str, e->len))
            continue;
        memcpy(rop->queues[k].name, e->str, e->len);
        rop->queues[k++].name_len = e->len;
    }
    qsort(rop->queues, k, sizeof *rop->queues, cmp_queue);
    size_t first = 0;
    if (rop->qlen)
        while (first < k && strcmp(rop->queues[first].name, rop->qname) <= 0)
            first++;
    size_t m = k - first < rop->max ? k - first : rop->max;
    memmove(rop->queues, rop->queues + first, m * sizeof *rop->queues);
    rop->arg = first + m < k; /* more follow */
    struct litem *items = (struct litem *)(void *)rop->copy;
    rop->nnames = m;
    for (size_t i = 0; i < m; i++) {
        items[i].rop = rop;
        items[i].i = i;
        if (rsvc_fcall(rop->svc, "aw_stats", rop->queues[i].name, rop->queues[i].name_len, 0,
                       NULL, NULL, on_list_stats, &items[i]) == 0)
            rop->inflight++;
    }
    if (rop->inflight == 0)
        list_done(rop);
    rop_maybe_free(rop);
}

static int redis_list(struct qsvc *base, struct qsvc_call *call, const char *after, size_t alen,
                      size_t max) {
    struct rsvc *svc = rsvc_of(base);
    int st = begin(svc, call);
    if (st != QSVC_OK)
        return st;
    if (alen > QUEUE_NAME_MAX) /* no queue name is longer: the API refuses such a cursor */
        alen = QUEUE_NAME_MAX;
    struct rop *rop = rop_new(svc, R_LIST, after, alen, 0);
    if (!rop)
        return QSVC_ERR_NOMEM;
    rop->max = max;
    const char *argv[] = {"SMEMBERS", svc->registry};
    if (redis_conn_command(svc->rc, svc->registry, strlen(svc->registry), on_list_names, rop, 2,
                           argv, NULL) < 0) {
        free(rop);
        return unavailable(svc, call);
    }
    rop->inflight++;
    svc->ops_total[R_LIST]++;
    struct qsvc_call *kept = qsvc_keep(call);
    if (!kept) {
        rop->released = 1;
        return QSVC_ERR_NOMEM;
    }
    kept->pend = rop;
    rop->call = kept;
    return QSVC_PENDING;
}

/* ---- cancel and release ---------------------------------------------------------------- */

static void redis_cancel(struct qsvc *base, struct qsvc_call *call) {
    struct rop *rop = call->pend;
    (void)base;
    rwait_leave(rop);
    rop->call = NULL;
    if (rop->held) {
        rop->held = 0;
        rop_unreserve_jobs(rop); /* woken but not delivered: give the jobs back now */
    }
}

static void redis_release(struct qsvc *base, void *pend) {
    struct rop *rop = pend;
    (void)base;
    rop->released = 1;
    rop->call = NULL;
    rwait_leave(rop);
    rop_maybe_free(rop);
}

const struct qsvc_ops qsvc_redis_ops = {
    .put = redis_put,
    .put_batch = redis_put_batch,
    .reserve = redis_reserve,
    .join = redis_join,
    .ack = redis_ack,
    .nack = redis_nack,
    .touch = redis_touch,
    .peek = redis_peek,
    .declare = redis_declare,
    .delete = redis_delete,
    .stats = redis_stats,
    .list = redis_list,
    .dead_list = redis_dead_list,
    .bulk = redis_bulk,
    .cancel = redis_cancel,
    .release = redis_release,
    .ack_batch = redis_ack_batch,
    .ack_result = rsvc_ack_result,
    .nack_error = rsvc_nack_error,
    .result = rsvc_result,
    .jobs = rsvc_jobs,
};
