/*
 * tsvc_redis: timers in Redis ([store] backend = redis), svc/tsvc.h's
 * operations as FCALLs of the function library (qsvc_redis.lua, the
 * aw_timer_* functions), and the awaits, woken by "f ID" notifications.
 * The service's life is tsvc_redis_svc.c, firing tsvc_redis_fire.c.
 *
 * Every call is answered later (TSVC_PENDING) from the loop: the replies
 * come from Redis. A call's state (struct trop) hangs off call->pend.
 */
#include "svc/tsvc_redis.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "engine/cron.h"
#include "net/server.h"
#include "svc/qsvc_redis.h"
#include "svc/redis_conn.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- replies ----------------------------------------------------------------------- */

static const char *sval(const redisReply *r, size_t i, size_t *len) {
    const redisReply *e = rsvc_sval(r, i);
    *len = e ? e->len : 0;
    return e ? e->str : "";
}

/* last_error as stored (tsvc_redis_fire.c writes these) -> a static string. */
static const char *error_text(const char *s, size_t n) {
    static const char *const known[] = {"queue full", "queue not found", "queue shut down",
                                        "payload too large", "queue deleted"};
    if (!n)
        return NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == n && memcmp(known[i], s, n) == 0)
            return known[i];
    return "error";
}

/* The timer at element at of r into o; queue and cron copied to text when given. */
void trop_timer_of(const redisReply *r, size_t at, struct tsvc_timer *o, char *text) {
    size_t ql, cl, el;
    const char *q = sval(r, at + 3, &ql), *c = sval(r, at + 4, &cl), *e = sval(r, at + 15, &el);
    if (ql > TSVC_QUEUE_MAX)
        ql = TSVC_QUEUE_MAX;
    if (cl > TSVC_CRON_MAX)
        cl = TSVC_CRON_MAX;
    if (text) {
        memcpy(text, q, ql);
        memcpy(text + ql, c, cl);
        q = text, c = text + ql;
    }
    int kind = (int)rsvc_ival(r, at + 1);
    *o = (struct tsvc_timer){.id = (uint64_t)rsvc_ival(r, at),
                             .kind = kind,
                             .state = (int)rsvc_ival(r, at + 2),
                             .queue = q,
                             .queue_len = ql,
                             .cron = kind == TSVC_CRON ? c : NULL,
                             .cron_len = kind == TSVC_CRON ? cl : 0,
                             .fires = (uint32_t)rsvc_ival(r, at + 5),
                             .skips = (uint32_t)rsvc_ival(r, at + 6),
                             .count = (uint32_t)rsvc_ival(r, at + 7),
                             .every_ms = (uint64_t)rsvc_ival(r, at + 8),
                             .jitter_ms = (uint32_t)rsvc_ival(r, at + 9),
                             .next_fire_ms = rsvc_ival(r, at + 10),
                             .finished_ms = rsvc_ival(r, at + 11),
                             .full_policy = (int)rsvc_ival(r, at + 12),
                             .missed_policy = (int)rsvc_ival(r, at + 13),
                             .retrying = (int)rsvc_ival(r, at + 14),
                             .last_error = error_text(e, el)};
}

/* ---- a call's life ----------------------------------------------------------------- */

void trop_maybe_free(struct trop *op) {
    if (op->call || op->inflight > 0)
        return;
    free(op->items);
    buf_free(&op->strs);
    free(op);
}

void trop_complete(struct trop *op, int status) {
    struct tsvc_call *call = op->call;
    if (!call)
        return;
    struct trsvc *svc = op->svc;
    call->status = status;
    timer_cancel(&svc->srv->wheel, &call->deadline);
    list_unlink(&call->link);
    if (list_empty(&svc->ready))
        event_active(svc->ready_ev, EV_TIMEOUT, 0);
    list_push(&svc->ready, &call->link);
}

void trop_fail(struct trop *op, int status, const char *fmt, ...) {
    if (!op->call)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->call->why, sizeof op->call->why, fmt, ap);
    va_end(ap);
    trop_complete(op, status);
}

void trop_unavailable(struct trop *op, const char *why) {
    trop_fail(op, TSVC_UNAVAILABLE, "the timer backend (redis) is unavailable: %s",
            why ? why : redis_conn_why(op->svc->rc));
}

/* An error reply, or an answer we cannot read: 503 naming it. */
int trop_bad_reply(struct trop *op, const redisReply *r, const char *why) {
    if (!r) {
        trop_unavailable(op, why);
        return 1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        trsvc_lib_gone(op->svc, r);
        trop_fail(op, TSVC_UNAVAILABLE, "the timer backend (redis) refused: %.180s", r->str);
        return 1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        trop_fail(op, TSVC_UNAVAILABLE, "the timer backend (redis) answered something unexpected");
        return 1;
    }
    return 0;
}

void trsvc_run_ready(struct trsvc *svc) {
    struct list *n;
    while ((n = list_first(&svc->ready))) {
        struct tsvc_call *call = container_of(n, struct tsvc_call, link);
        struct trop *op = call->pend;
        list_unlink(n);
        call->pend = NULL;
        op->call = NULL;
        call->done(call); /* strings in the result live in op or call: still there */
        trop_maybe_free(op);
    }
    server_timers_sync(svc->srv);
}

void trsvc_on_ready(int fd, short what, void *arg) {
    (void)fd, (void)what;
    trsvc_run_ready(arg);
}

struct trop *trop_new(struct trsvc *svc, struct tsvc_call *call, int kind, size_t extra) {
    call->svc = &svc->base;
    call->status = TSVC_OK;
    call->why[0] = '\0';
    list_init(&call->link);
    struct trop *op = calloc(1, sizeof *op + extra);
    if (!op)
        return NULL;
    op->svc = svc;
    op->call = call;
    op->op = kind;
    call->pend = op;
    return op;
}

int trop_refuse(struct trsvc *svc, struct tsvc_call *call) {
    if (svc->draining) {
        snprintf(call->why, sizeof call->why, "the server is shutting down");
        return call->status = TSVC_DRAINING;
    }
    if (!svc->lib_ok || !redis_conn_up(svc->rc)) {
        snprintf(call->why, sizeof call->why, "the timer backend (redis) is unavailable: %s",
                 redis_conn_up(svc->rc) ? "loading the function library" : redis_conn_why(svc->rc));
        return call->status = TSVC_UNAVAILABLE;
    }
    return TSVC_OK;
}

/* A call that could not start: answered now (done() is not called). */
int trop_started(struct trop *op, int sent) {
    struct tsvc_call *call = op->call;
    if (sent < 0) {
        struct trsvc *svc = op->svc;
        op->call = NULL;
        call->pend = NULL;
        trop_maybe_free(op);
        snprintf(call->why, sizeof call->why, "the timer backend (redis) is unavailable: %s",
                 redis_conn_why(svc->rc));
        return call->status = TSVC_UNAVAILABLE;
    }
    op->inflight++;
    return TSVC_PENDING;
}

/* ---- durability: WAIT for [redis] replicas_ack ---------------------------------------- */

static void on_replicas(void *arg, redisReply *r, const char *why) {
    struct trop *op = arg;
    op->inflight--;
    uint64_t want = op->svc->srv->cfg->redis_replicas_ack;
    if (r && r->type == REDIS_REPLY_INTEGER && (uint64_t)r->integer >= want)
        trop_complete(op, TSVC_OK);
    else
        trop_fail(op, TSVC_UNAVAILABLE,
                "the timer backend (redis) applied the change but %s (replicas_ack = %" PRIu64 ")",
                r && r->type == REDIS_REPLY_INTEGER ? "too few replicas acknowledged it in time"
                                                    : why ? why : "WAIT failed",
                want);
    trop_maybe_free(op);
}

/* A change (create, cancel) is applied: answer now, or once WAIT says replicas_ack
 * replicas have it (as the queues' changes). */
static void applied(struct trop *op) {
    const struct config *cfg = op->svc->srv->cfg;
    uint64_t n = cfg->redis_replicas_ack;
    if (n == 0) {
        trop_complete(op, TSVC_OK);
        return;
    }
    char nb[24], tb[24];
    snprintf(nb, sizeof nb, "%" PRIu64, n);
    snprintf(tb, sizeof tb, "%" PRIu64,
             cfg->redis_command_timeout_ms / 2 ? cfg->redis_command_timeout_ms / 2 : 1);
    /* WAIT goes to the master that took the change: the timer's shard's (a cluster). */
    char key[160];
    int klen = snprintf(key, sizeof key, "{%stimers:%u}", op->svc->prefix,
                        (unsigned)(op->call->timer.id % TRSVC_SHARDS));
    const char *argv[] = {"WAIT", nb, tb};
    if (redis_conn_command(op->svc->rc, key, (size_t)klen, on_replicas, op, 3, argv, NULL) < 0) {
        trop_fail(op, TSVC_UNAVAILABLE, "the timer backend (redis) applied the change but cannot "
                "confirm its replicas: %s", redis_conn_why(op->svc->rc));
        return;
    }
    op->inflight++;
}

/* ---- create ---------------------------------------------------------------------- */

static const char *spec_error(const struct tsvc_spec *s) {
    switch (s->kind) {
    case TSVC_AFTER:
        if (s->after_ms < 0 || s->after_ms > (INT64_C(1) << 50))
            return "after: out of range";
        return NULL;
    case TSVC_AT:
        if (s->at_ms < CRON_MIN_MS || s->at_ms > CRON_MAX_MS)
            return "at: out of range";
        return NULL;
    case TSVC_EVERY:
        if (!s->every_ms)
            return "every: must be positive";
        if (s->every_ms > (UINT64_C(1) << 40))
            return "every: too long";
        if (s->jitter_ms >= s->every_ms)
            return "jitter: must be less than the period";
        break;
    case TSVC_CRON:
        if (cron_next(&s->cron, (int64_t)clock_wall_ms()) < 0)
            return "cron: never matches (no such date)";
        break;
    default:
        return "kind: unknown";
    }
    if (s->jitter_ms > 86400000u)
        return "jitter: longer than a day";
    return NULL;
}

static void on_created(void *arg, redisReply *r, const char *why) {
    struct trop *op = arg;
    op->inflight--;
    if (op->call && !trop_bad_reply(op, r, why)) {
        if (rsvc_ival(r, 0) != 0)
            trop_fail(op, TSVC_UNAVAILABLE, "the timer backend (redis): the node's clock and "
                    "Redis's differ by more than a minute");
        else {
            trop_timer_of(r, 2, &op->call->timer, op->call->text);
            applied(op);
        }
    }
    trop_maybe_free(op);
}

/* The queue checked and Redis's time known: create in the next shard. */
static void create_send(struct trop *op) {
    struct trsvc *svc = op->svc;
    const struct tsvc_spec *s = &op->spec;
    char v[8][24], cands[4 * 24] = "";
    snprintf(v[0], sizeof v[0], "%d", TRSVC_SHARDS);
    snprintf(v[1], sizeof v[1], "%d", s->kind);
    snprintf(v[2], sizeof v[2], "%" PRId64, s->after_ms);
    snprintf(v[3], sizeof v[3], "%" PRId64, s->at_ms);
    snprintf(v[4], sizeof v[4], "%" PRIu64, s->every_ms);
    snprintf(v[5], sizeof v[5], "%" PRIu32, s->count);
    snprintf(v[6], sizeof v[6], "%" PRIu32, s->jitter_ms);
    snprintf(v[7], sizeof v[7], "%" PRIu64,
             s->jitter_ms ? trsvc_rand(svc) % ((uint64_t)s->jitter_ms + 1) : 0);
    if (s->kind == TSVC_CRON) {
        /* The next ticks after Redis's now; the function takes the first still ahead. */
        int64_t t = op->redis_now;
        size_t off = 0;
        for (int i = 0; i < 3 && (t = cron_next(&s->cron, t)) >= 0; i++)
            off += (size_t)snprintf(cands + off, sizeof cands - off, "%s%" PRId64, i ? "," : "", t);
    }
    char full[4], missed[4];
    snprintf(full, sizeof full, "%d", s->full_policy);
    snprintf(missed, sizeof missed, "%d", s->missed_policy);
    const char *args[] = {v[0], v[1], v[2], v[3], v[4], s->cron_text ? s->cron_text : "", cands,
                          v[5], v[6], v[7], full, missed, s->queue, s->payload ? s->payload : ""};
    size_t lens[14];
    for (int i = 0; i < 14; i++)
        lens[i] = strlen(args[i]);
    lens[5] = s->kind == TSVC_CRON ? s->cron_len : 0;
    lens[12] = s->queue_len;
    lens[13] = s->payload_len;
    unsigned shard = svc->next_shard++ % TRSVC_SHARDS;
    if (trsvc_fcall(svc, "aw_timer_create", shard, 14, args, lens, on_created, op) < 0) {
        trop_unavailable(op, NULL);
        return;
    }
    op->inflight++;
}

static void create_step(struct trop *op) {
    if (op->inflight == 0 && op->call && !op->failed)
        create_send(op);
}

static void on_queue_stats(void *arg, redisReply *r, const char *why) {
    struct trop *op = arg;
    op->inflight--;
    if (op->call && !op->failed) {
        if (trop_bad_reply(op, r, why)) {
            op->failed = 1;
        } else if (rsvc_ival(r, 0) != 0) {
            op->failed = 1;
            trop_fail(op, TSVC_INVALID, "queue: no queue named '%.*s' (create it first)",
                    (int)op->spec.queue_len, op->spec.queue);
        } else if ((uint64_t)op->spec.payload_len > (uint64_t)rsvc_ival(r, 14)) {
            op->failed = 1;
            trop_fail(op, TSVC_TOOBIG, "payload: %zu bytes is over the queue's max_payload of %lld",
                    op->spec.payload_len, rsvc_ival(r, 14));
        }
        create_step(op);
    }
    trop_maybe_free(op);
}

static void on_time(void *arg, redisReply *r, const char *why) {
    struct trop *op = arg;
    op->inflight--;
    if (op->call && !op->failed) {
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
            op->failed = 1;
            trop_unavailable(op, why ? why : "TIME answered something unexpected");
        } else {
            op->redis_now = rsvc_ival(r, 0) * 1000 + rsvc_ival(r, 1) / 1000;
            create_step(op);
        }
    }
    trop_maybe_free(op);
}

static int redis_create(struct tsvc *base, struct tsvc_call *call, const struct tsvc_spec *s) {
    struct trsvc *svc = trsvc_of(base);
    call->svc = base;
    int st;
    const char *why = tsvc_spec_error(s, &st);
    if (!why && (why = spec_error(s)))
        st = TSVC_INVALID;
    if (why) {
        snprintf(call->why, sizeof call->why, "%s", why);
        return call->status = st;
    }
    if (trop_refuse(svc, call) != TSVC_OK)
        return call->status;
    size_t cl = s->kind == TSVC_CRON ? s->cron_len : 0;
    struct trop *op = trop_new(svc, call, OP_CREATE, s->queue_len + cl + s->payload_len + 3);
    if (!op) {
        snprintf(call->why, sizeof call->why, "out of memory");
        return call->status = TSVC_NOMEM;
    }
    op->spec = *s;
    char *p = op->extra;
    memcpy(p, s->queue, s->queue_len), op->spec.queue = p, p += s->queue_len + 1;
    if (cl)
        memcpy(p, s->cron_text, cl);
    op->spec.cron_text = p, op->spec.cron_len = cl, p += cl + 1;
    if (s->payload_len)
        memcpy(p, s->payload, s->payload_len);
    op->spec.payload = p;
    const char *args[] = {"FCALL", "aw_stats", "1", NULL, svc->qchannel, s->queue};
    char key[sizeof svc->prefix + TSVC_QUEUE_MAX + 4];
    int klen = snprintf(key, sizeof key, "{%s%.*s}", svc->prefix, (int)s->queue_len, s->queue);
    args[3] = key;
    size_t lens[] = {5, 8, 1, (size_t)klen, strlen(svc->qchannel), s->queue_len};
    if (trop_started(op, redis_conn_command(svc->rc, key, (size_t)klen, on_queue_stats, op, 6, args,
                                       lens)) != TSVC_PENDING)
        return call->status;
    const char *targv[] = {"TIME"};
    if (redis_conn_command(svc->rc, NULL, 0, on_time, op, 1, targv, NULL) < 0) {
        op->failed = 1;
        trop_unavailable(op, NULL); /* the stats reply (NULL) follows; done() runs from the loop */
    } else {
        op->inflight++;
    }
    return TSVC_PENDING;
}

/* ---- get, await, cancel ------------------------------------------------------------- */

static int fin_seen_since(const struct trsvc *svc, uint64_t id, uint64_t since) {
    uint64_t n = svc->fin_seq - since;
    if (n > TRSVC_FIN_RING)
        return 1; /* too many to tell: check again */
    for (uint64_t k = 0; k < n; k++)
        if (svc->fin_ring[(svc->fin_seq - 1 - k) % TRSVC_FIN_RING] == id)
            return 1;
    return 0;
}

static void on_got(void *arg, redisReply *r, const char *why);

static int get_send(struct trop *op) {
    char idv[24];
    snprintf(idv, sizeof idv, "%" PRIu64, op->id);
    const char *args[] = {idv};
    op->fin_seq = op->svc->fin_seq;
    if (trsvc_fcall(op->svc, "aw_timer_get", (unsigned)(op->id % TRSVC_SHARDS), 1, args, NULL,
                    on_got, op) < 0)
        return -1;
    return 0;
}

static void on_deadline(struct timer *t) {
    struct tsvc_call *call = container_of(t, struct tsvc_call, deadline);
    struct trop *op = call->pend;
    if (op)
        trop_complete(op, TSVC_TIMEOUT);
}

static void on_got(void *arg, redisReply *r, const char *why) {
    struct trop *op = arg;
    struct trsvc *svc = op->svc;
    op->inflight--;
    if (op->call && !trop_bad_reply(op, r, why)) {
        struct tsvc_call *call = op->call;
        if (rsvc_ival(r, 0) != 0) {
            trop_fail(op, TSVC_NOTFOUND, "no timer %" PRIu64, op->id);
        } else {
            trop_timer_of(r, 2, &call->timer, call->text);
            if (call->timer.state != TSVC_SCHEDULED || op->wait_ms == 0) {
                trop_complete(op, TSVC_OK);
            } else if (fin_seen_since(svc, op->id, op->fin_seq) && get_send(op) == 0) {
                op->inflight++; /* it finished while we asked: ask again */
            } else {
                if (!list_linked(&call->link))
                    list_push(&svc->awaits, &call->link);
                if (!timer_pending(&call->deadline))
                    server_timer_in(svc->srv, &call->deadline, op->wait_ms);
            }
        }
    }
    trop_maybe_free(op);
}

static int redis_get(struct tsvc *base, struct tsvc_call *call, uint64_t id, uint64_t wait_ms) {
    struct trsvc *svc = trsvc_of(base);
    call->svc = base;
    if (trop_refuse(svc, call) != TSVC_OK)
        return call->status;
    struct trop *op = trop_new(svc, call, OP_GET, 0);
    if (!op) {
        snprintf(call->why, sizeof call->why, "out of memory");
        return call->status = TSVC_NOMEM;
    }
    timer_init(&call->deadline, on_deadline);
    op->id = id;
    op->wait_ms = wait_ms > svc->srv->cfg->queue_max_wait_ms ? svc->srv->cfg->queue_max_wait_ms
                                                              : wait_ms;
    return trop_started(op, get_send(op));
}

/* A "f ID" notification: its awaits ask for the final state. */
void trsvc_awaits_finished(struct trsvc *svc, uint64_t id, int all) {
    struct list *n, *tmp;
    list_for_each_safe(n, tmp, &svc->awaits) {
        struct tsvc_call *call = container_of(n, struct tsvc_call, link);
        struct trop *op = call->pend;
        if (!all && op->id != id)
            continue;
        if (get_send(op) == 0) { /* down: it stays, and is asked again when Redis is back */
            list_unlink(&call->link);
            op->inflight++;
        }
    }
}

static void on_cancelled(void *arg, redisReply *r, const char *why) {
    struct trop *op = arg;
    op->inflight--;
    if (op->call && !trop_bad_reply(op, r, why)) {
        if (rsvc_ival(r, 0) != 0) {
            trop_fail(op, TSVC_NOTFOUND, "no timer %" PRIu64, op->id);
        } else {
            op->call->cancelled = (int)rsvc_ival(r, 1);
            trop_timer_of(r, 2, &op->call->timer, op->call->text);
            applied(op);
        }
    }
    trop_maybe_free(op);
}

static int redis_cancel(struct tsvc *base, struct tsvc_call *call, uint64_t id) {
    struct trsvc *svc = trsvc_of(base);
    call->svc = base;
    if (trop_refuse(svc, call) != TSVC_OK)
        return call->status;
    struct trop *op = trop_new(svc, call, OP_CANCEL, 0);
    if (!op) {
        snprintf(call->why, sizeof call->why, "out of memory");
        return call->status = TSVC_NOMEM;
    }
    op->id = id;
    char idv[24];
    snprintf(idv, sizeof idv, "%" PRIu64, id);
    const char *args[] = {idv};
    return trop_started(op, trsvc_fcall(svc, "aw_timer_cancel", (unsigned)(id % TRSVC_SHARDS), 1, args,
                                   NULL, on_cancelled, op));
}

static void redis_call_cancel(struct tsvc_call *call) {
    struct trop *op = call->pend;
    if (!op)
        return;
    struct trsvc *svc = op->svc;
    timer_cancel(&svc->srv->wheel, &call->deadline);
    list_unlink(&call->link);
    call->pend = NULL;
    op->call = NULL;
    trop_maybe_free(op);
}

const struct tsvc_ops trsvc_ops = {
    .create = redis_create,
    .get = redis_get,
    .list = trsvc_list,
    .cancel = redis_cancel,
    .call_cancel = redis_call_cancel,
};

void trsvc_end_awaits(struct trsvc *svc) {
    struct list *n;
    while ((n = list_first(&svc->awaits))) {
        struct tsvc_call *call = container_of(n, struct tsvc_call, link);
        snprintf(call->why, sizeof call->why, "the server is shutting down");
        trop_complete(call->pend, TSVC_DRAINING);
    }
}
