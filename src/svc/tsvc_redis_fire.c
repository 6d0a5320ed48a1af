/*
 * tsvc_redis_fire: firing the Redis timers. Nothing polls per timer: the
 * node knows each shard's earliest due time (from its own claims and from
 * "d SHARD HEAD NOW" notifications, which every change that moves a head
 * publishes) and holds one wheel timer, at the earliest of them. When it
 * goes off, the node claims that shard's due timers (aw_timer_claim,
 * atomic in Redis: a due tick is claimed by exactly one node, for a lease
 * of 2 x command_timeout + 1 s), and for each one:
 *   - works out, on Redis's clock (the claim's TIME), whether ticks were
 *     missed (no node was running, Redis was down) and applies on_missed;
 *   - puts the payload with aw_put, the queue's own put function, with
 *     the idempotency key "awaitd-timer:ID:TICK" (TICK the claimed tick);
 *   - settles the tick (aw_timer_settle: fires or skips, last_error, the
 *     next tick and its jitter, retry, completion), accepted only while the
 *     claim is still this node's.
 * A node that loses its connection between claim and settle takes its
 * claims back at once when it reconnects (they are listed by token in
 * B:cl); a node that dies leaves them to expire, and another node claims
 * the same tick and puts it again, which the
 * idempotency key turns into a no-op while the queue's key_window lasts,
 * then settles it. Such a claim taken back is never judged missed, however
 * late: its job may be in the queue, so it is put again (and counted) with
 * its own key before on_missed applies to the ticks after it. The claim and the put are two calls because a queue and
 * a timer shard are in different hash tags (cluster slots).
 */
#include "svc/tsvc_redis.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "engine/cron.h"
#include "engine/task.h"
#include "engine/tick_plan.h"
#include "net/server.h"
#include "svc/qsvc_redis.h"
#include "svc/redis_conn.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* aw_put's statuses (qsvc_redis.lua) */
#define R_OK 0
#define R_FULL (-2)
#define R_TOOBIG (-8)
#define R_STATE (-9)
#define R_SHUTDOWN (-10)
#define R_NOQUEUE (-12)

#define CLAIMED 15 /* elements per claimed timer */
#define TICK_NONE TICK_PLAN_NONE

/* One claimed tick on its way. */
struct tfire {
    struct trsvc *svc;
    uint64_t id;
    unsigned shard;
    int kind, full, missed, has_cron;
    int64_t tick, due, now; /* Redis ms: the tick, when it was due, the claim's TIME */
    int64_t ktick;          /* the claimed tick: the put's key (see put()) */
    uint64_t local_at;      /* clock_now_ms() at the claim's answer */
    uint64_t every;
    struct cron cron;
    struct tick_sched sched; /* every, cron, count: engine/tick_plan.h */
    uint32_t count, jitter, fires, skips, skips_add;
    size_t qlen, plen;
    char *queue, *payload; /* in extra[] */
    char extra[];
};

static int one_shot(int kind) {
    return kind == TSVC_AFTER || kind == TSVC_AT;
}

static uint64_t lease_ms(const struct trsvc *svc) {
    return 2 * svc->srv->cfg->redis_command_timeout_ms + 1000;
}

/* ---- the wake-up --------------------------------------------------------------------- */

static void rearm(struct trsvc *svc) {
    uint64_t at = UINT64_MAX;
    for (unsigned k = 0; k < TRSVC_SHARDS; k++)
        if (!svc->shards[k].claiming && svc->shards[k].at_ms < at)
            at = svc->shards[k].at_ms;
    timer_cancel(&svc->srv->wheel, &svc->wake_t);
    if (at == UINT64_MAX || !svc->lib_ok)
        return;
    uint64_t now = clock_now_ms();
    server_timer_in(svc->srv, &svc->wake_t, at > now ? at - now : 0);
}

static void shard_arm(struct trshard *sh, int64_t head, int64_t now) {
    sh->head = head;
    if (head < 0)
        sh->at_ms = UINT64_MAX;
    else
        sh->at_ms = clock_now_ms() + (uint64_t)(head > now ? head - now : 0) + sh->defer_ms;
}

static void on_claimed(void *arg, redisReply *r, const char *why);

static void claim(struct trsvc *svc, unsigned k, int reclaim) {
    struct trshard *sh = &svc->shards[k];
    if (sh->claiming || svc->draining)
        return;
    char lease[24], max[12];
    snprintf(lease, sizeof lease, "%" PRIu64, lease_ms(svc));
    snprintf(max, sizeof max, "%d", TRSVC_CLAIM_MAX);
    const char *args[] = {svc->token, lease, max, reclaim ? "1" : "0"};
    sh->at_ms = UINT64_MAX;
    if (trsvc_fcall(svc, "aw_timer_claim", k, 4, args, NULL, on_claimed, sh) < 0)
        return; /* down: every shard is claimed again once it is back */
    sh->claiming = 1;
    sh->woke = !reclaim;
    sh->msg_head = -2;
    svc->claims++;
}

static void on_wake(struct timer *t) {
    struct trsvc *svc = container_of(t, struct trsvc, wake_t);
    uint64_t now = clock_now_ms();
    for (unsigned k = 0; k < TRSVC_SHARDS; k++)
        if (svc->shards[k].at_ms <= now)
            claim(svc, k, 0);
    rearm(svc);
}

void tfire_init(struct trsvc *svc) {
    timer_init(&svc->wake_t, on_wake);
    for (unsigned k = 0; k < TRSVC_SHARDS; k++) {
        svc->shards[k] = (struct trshard){.head = -1, .at_ms = UINT64_MAX, .msg_head = -2,
                                          .svc = svc, .idx = k};
    }
}

void tfire_claim_all(struct trsvc *svc) {
    for (unsigned k = 0; k < TRSVC_SHARDS; k++) {
        svc->shards[k].claiming = 0; /* a claim of the lost connection got its NULL answer */
        claim(svc, k, 1);            /* and its ticks in progress were dropped: take them again */
    }
    rearm(svc);
}

void tfire_head(struct trsvc *svc, unsigned k, int64_t head, int64_t now) {
    struct trshard *sh = &svc->shards[k];
    if (sh->claiming) {
        sh->msg_head = head;
        return;
    }
    shard_arm(sh, head, now);
    rearm(svc);
}

void tfire_stop(struct trsvc *svc) {
    timer_cancel(&svc->srv->wheel, &svc->wake_t);
}

/* ---- settling a tick ------------------------------------------------------------------ */

/* The status (element 0, an integer) of an FCALL's array reply; -1 without one. */
static int reply_status(const redisReply *r, long long *st) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return -1;
    *st = r->element[0]->integer;
    return 0;
}

static void on_settled(void *arg, redisReply *r, const char *why) {
    struct tfire *f = arg;
    long long st;
    (void)why;
    if (reply_status(r, &st) == 0 && st == R_STATE) {
        f->svc->lost++; /* the claim ran out and another node took the tick over */
        log_warnx("timer %" PRIu64 ": its claim expired before the tick was settled; another "
                  "node settles it", f->id);
    } else if (r && r->type == REDIS_REPLY_ERROR && !trsvc_lib_gone(f->svc, r)) {
        log_warnx("timer %" PRIu64 ": settle refused by redis: %s", f->id, r->str);
    }
    free(f);
}

/*
 * Report the tick: fired (0/1), skips to add, last_error ("" keeps it), the
 * state after it (SCHEDULED with the next tick and when it fires; due < 0
 * with retry > 0 retries the same tick retry ms from Redis's now).
 */
static void settle(struct tfire *f, int fired, uint32_t skips, const char *err, int state,
                   int64_t next, int64_t due, uint64_t retry) {
    struct trsvc *svc = f->svc;
    char v[7][24];
    snprintf(v[0], sizeof v[0], "%" PRIu64, f->id);
    snprintf(v[1], sizeof v[1], "%d", fired);
    snprintf(v[2], sizeof v[2], "%" PRIu32, skips);
    snprintf(v[3], sizeof v[3], "%d", state);
    snprintf(v[4], sizeof v[4], "%" PRId64, next == TICK_NONE ? 0 : next);
    snprintf(v[5], sizeof v[5], "%" PRId64, due);
    snprintf(v[6], sizeof v[6], "%" PRIu64, retry);
    const char *args[] = {v[0], svc->token, v[1], v[2], err, v[3], v[4], v[5], v[6]};
    if (state == TSVC_FAILED)
        log_warnx("timer %" PRIu64 " failed after %u fires: %s", f->id, f->fires + (fired ? 1 : 0),
                  err[0] ? err : "no reason recorded");
    if (trsvc_fcall(svc, "aw_timer_settle", f->shard, 9, args, NULL, on_settled, f) < 0)
        free(f); /* down: the claim runs out and the tick is handled again */
}

static int64_t jittered(struct tfire *f, int64_t tick) {
    return tick + (f->jitter ? (int64_t)(trsvc_rand(f->svc) % ((uint64_t)f->jitter + 1)) : 0);
}

/* The tick is handled (fired, or skipped for its queue): on to the next one. */
static void handled(struct tfire *f, int fired, uint32_t skips, const char *err) {
    uint64_t done = (uint64_t)f->fires + f->skips + f->skips_add + 1;
    int64_t next = tick_plan_after(&f->sched, f->tick, done);
    if (next == TICK_NONE)
        settle(f, fired, skips, err, TSVC_COMPLETED, 0, 0, 0);
    else
        settle(f, fired, skips, err, TSVC_SCHEDULED, next, jittered(f, next), 0);
}

static void on_put(void *arg, redisReply *r, const char *why) {
    struct tfire *f = arg;
    struct trsvc *svc = f->svc;
    long long st;
    if (reply_status(r, &st) < 0) {
        trsvc_lib_gone(svc, r);
        /* Redis went away or refused: the claim runs out, the tick is tried again (the
         * idempotency key keeps a put that did land from landing twice). */
        log_debug("timer %" PRIu64 ": put not confirmed (%s); its claim will run out", f->id,
                  r && r->type == REDIS_REPLY_ERROR ? r->str : why ? why : "?");
        free(f);
        return;
    }
    uint32_t skips = f->skips_add;
    if (st == R_OK) {
        svc->fires++;
        handled(f, 1, skips, "");
        return;
    }
    if (st == R_FULL) {
        int64_t now = f->now + (int64_t)(clock_now_ms() - f->local_at);
        uint64_t gap = f->full != TASK_FULL_RETRY ? 0
                       : tick_plan_retry(&f->sched, f->tick, now, TRSVC_RETRY_MIN_MS,
                                         TRSVC_RETRY_MAX_MS, TRSVC_ONCE_RETRY_MS);
        if (gap) {
            svc->retries++;
            settle(f, 0, skips, "queue full", TSVC_SCHEDULED, f->tick, -1, gap);
            return;
        }
        svc->skips++;
        if (one_shot(f->kind))
            settle(f, 0, skips + 1, "queue full", TSVC_FAILED, 0, 0, 0);
        else
            handled(f, 0, skips + 1, "queue full");
        return;
    }
    svc->skips++;
    const char *err = st == R_NOQUEUE    ? "queue not found"
                      : st == R_SHUTDOWN ? "queue shut down"
                      : st == R_TOOBIG   ? "payload too large"
                                         : "error";
    settle(f, 0, skips + 1, err, TSVC_FAILED, 0, 0, 0); /* permanent: the timer fails */
}

/*
 * The put is keyed by the claimed tick (the timer's tick in Redis until a settle moves it
 * on), also when fire_once puts a later one for the missed ticks: a claim that is taken
 * back before its settle (aw_timer_claim's retrying 2) puts that claimed tick again, and
 * finds the job if the first put landed, whichever tick that put was for.
 */
static void put(struct tfire *f) {
    struct trsvc *svc = f->svc;
    char key[sizeof svc->prefix + TSVC_QUEUE_MAX + 4], ikey[64];
    int klen = snprintf(key, sizeof key, "{%s%.*s}", svc->prefix, (int)f->qlen, f->queue);
    snprintf(ikey, sizeof ikey, "awaitd-timer:%" PRIu64 ":%" PRId64, f->id, f->ktick);
    const char *argv[] = {"FCALL", "aw_put", "1", key, svc->qchannel, f->queue, f->payload,
                          "0", "0", ikey};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = i == 5 || i == 6 ? 0 : strlen(argv[i]);
    lens[3] = (size_t)klen;
    lens[5] = f->qlen;
    lens[6] = f->plen;
    if (redis_conn_command(svc->rc, key, (size_t)klen, on_put, f, 10, argv, lens) < 0)
        free(f); /* down: the claim runs out */
}

/* A claimed tick: the missed policy (engine/tick_plan.h), then the put. retrying: 1 a retry
 * of a full queue, 2 a claim taken back before its settle; neither is ever missed. */
static void fire(struct tfire *f, int retrying) {
    struct trsvc *svc = f->svc;
    trsvc_late(svc, f->now - f->due);
    struct tick_claim c = {.tick = f->tick, .now = f->now, .fires = f->fires, .skips = f->skips,
                           .missed_policy = f->missed, .retrying = retrying};
    struct tick_plan p;
    tick_plan_claim(&f->sched, &c, TRSVC_ONESHOT_GRACE_MS, &p);
    svc->skips += p.skips;
    f->ktick = f->tick;
    if (p.put) {
        f->skips_add = p.skips; /* fire_once: the missed ticks before p.tick */
        f->tick = p.tick;
        put(f);
    } else if (p.next == TICK_NONE) {
        settle(f, 0, p.skips, "", TSVC_COMPLETED, 0, 0, 0);
    } else {
        settle(f, 0, p.skips, "", TSVC_SCHEDULED, p.next, jittered(f, p.next), 0);
    }
}

static const redisReply *sval(const redisReply *r, size_t i) {
    static const redisReply empty = {.type = REDIS_REPLY_STRING, .str = (char *)"", .len = 0};
    const redisReply *e = rsvc_sval(r, i);
    return e ? e : &empty;
}

#define FF(member, i) RSVC_FIELD(struct tfire, member, i)
/* aw_timer_claim's timer: its figures (4 is the cron text, 12 retrying, 13
 * and 14 queue and payload). */
static const struct rsvc_field claim_fields[] = {
    FF(id, 0),      FF(kind, 1),   FF(tick, 2),   FF(every, 3),  FF(count, 5),  FF(jitter, 6),
    FF(full, 7),    FF(missed, 8), FF(fires, 9),  FF(skips, 10), FF(due, 11)};

/* One claimed timer at element at; now is the claim's Redis time. */
static void start_fire(struct trsvc *svc, unsigned shard, const redisReply *r, size_t at,
                       int64_t now) {
    const redisReply *q = sval(r, at + 13), *p = sval(r, at + 14), *c = sval(r, at + 4);
    struct tfire *f = calloc(1, sizeof *f + q->len + p->len + 2);
    if (!f)
        return; /* the claim runs out and the tick is tried again */
    f->svc = svc;
    f->shard = shard;
    rsvc_fields(r, at, f, claim_fields, sizeof claim_fields / sizeof claim_fields[0]);
    int retrying = (int)rsvc_ival(r, at + 12);
    f->now = now;
    f->local_at = clock_now_ms();
    f->queue = f->extra;
    f->qlen = q->len;
    memcpy(f->queue, q->str, q->len);
    f->payload = f->extra + q->len + 1;
    f->plen = p->len;
    memcpy(f->payload, p->str, p->len);
    if (f->kind == TSVC_CRON) {
        char err[128];
        f->has_cron = cron_parse(&f->cron, c->str, c->len, err, sizeof err) == 0;
        if (!f->has_cron) {
            settle(f, 0, 1, "error", TSVC_FAILED, 0, 0, 0);
            return;
        }
    }
    if (f->kind == TSVC_EVERY && f->every == 0) {
        settle(f, 0, 1, "error", TSVC_FAILED, 0, 0, 0);
        return;
    }
    f->sched = (struct tick_sched){.kind = f->kind, .every_ms = f->every,
                                   .cron = f->has_cron ? &f->cron : NULL, .count = f->count};
    svc->claimed++;
    fire(f, retrying);
}

static void on_claimed(void *arg, redisReply *r, const char *why) {
    struct trshard *sh = arg;
    struct trsvc *svc = sh->svc;
    sh->claiming = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4) {
        if (r && r->type == REDIS_REPLY_ERROR && !trsvc_lib_gone(svc, r)) {
            log_warnx("timers: claim on shard %u refused by redis: %s", sh->idx, r->str);
            shard_arm(sh, 1000, 0); /* try again in a second */
        } else {
            (void)why; /* down: claimed again once it is back */
            sh->at_ms = UINT64_MAX;
        }
        rearm(svc);
        return;
    }
    int64_t now = rsvc_ival(r, 1), head = rsvc_ival(r, 2);
    size_t n = (size_t)rsvc_ival(r, 3);
    /* Every node learns the same heads and wakes at the same ms: one claim takes the ticks,
     * the others take nothing. A node whose claim took nothing waits TRSVC_LOSER_DEFER_MS
     * past the heads of this shard from now on, and so hears the winner's claim announce
     * the next head before it would claim; a claim that takes ticks (the winner gone, or a
     * tick no node claimed first) clears it. About one claim per tick with N nodes instead
     * of N; a tick is at most that much later only when the winner has gone (against the
     * claim lease of seconds for a dead claimer's ticks). The claims of a (re)connect, made
     * whether or not anything is due, do not count as a race lost. */
    if (n)
        sh->defer_ms = 0;
    else if (sh->woke)
        sh->defer_ms = TRSVC_LOSER_DEFER_MS;
    for (size_t i = 0; i < n && 4 + (i + 1) * CLAIMED <= r->elements; i++)
        start_fire(svc, sh->idx, r, 4 + i * CLAIMED, now);
    if (n >= TRSVC_CLAIM_MAX)
        head = now; /* more may be due: claim again at once */
    if (sh->msg_head >= 0 && (head < 0 || sh->msg_head < head))
        head = sh->msg_head;
    sh->msg_head = -2;
    shard_arm(sh, head, now);
    rearm(svc);
}
