/*
 * tick_plan: what a claimed tick of a timer kept outside this process (the
 * Redis timer backend, svc/tsvc_redis_fire.c) does, decided on the store's
 * clock. The rules are the task engine's (engine/task.h: "Ticks", "fire()
 * results", "Missed ticks"); this module holds them for a timer that is
 * not a struct task: plain numbers in, plain numbers out.
 *
 * Pure. No I/O, no clock, no allocation: times are whatever ms the caller
 * uses (Redis's unix ms for the Redis backend).
 */
#ifndef AWAITD_TICK_PLAN_H
#define AWAITD_TICK_PLAN_H

#include "engine/cron.h"

#include <stdint.h>

#define TICK_PLAN_NONE INT64_MIN /* no tick left: the timer completes */
#define TICK_PLAN_SCAN 100000    /* cron ticks counted as missed at most */

/* A timer's schedule: kind is an enum task_kind (ONCE, AT, EVERY, CRON). */
struct tick_sched {
    int kind;
    uint64_t every_ms;       /* EVERY: the period (> 0) */
    const struct cron *cron; /* CRON: the schedule */
    uint32_t count;          /* periodic: complete after this many ticks; 0 = never */
};

/* The tick after tick, or TICK_PLAN_NONE (one-shots; a cron that never matches again). */
int64_t tick_plan_next(const struct tick_sched *s, int64_t tick);

/* A claimed tick: what the store says about it. */
struct tick_claim {
    int64_t tick;        /* the pending tick (nominal, without jitter) */
    int64_t now;         /* the claim's time */
    uint32_t fires, skips; /* ticks handled so far */
    int missed_policy;   /* enum task_missed_policy */
    int retrying;        /* never missed: a retry of a full queue (on_full = retry), or a
                          * claim taken back before its outcome was stored (its put may
                          * have landed: it is put again with its key, not missed) */
};

/* What to do with it. */
struct tick_plan {
    int put;        /* 1: put the payload for tick; 0: skip every missed tick */
    int64_t tick;   /* put: the tick to put (the latest missed one with fire_once) */
    uint32_t skips; /* ticks to count as skipped now (missed ones) */
    int64_t next;   /* put = 0: the next tick, or TICK_PLAN_NONE (completed) */
};

/*
 * Plan a claimed tick. It was missed when the next tick is also due
 * (periodic) or, for a one-shot, when it is claimed more than grace_ms
 * late. Missed with FIRE_ONCE: put the latest due tick, the ones before it
 * skipped; with SKIP: skip them all and go on with the next future tick.
 * Otherwise: put the tick.
 */
void tick_plan_claim(const struct tick_sched *s, const struct tick_claim *c, int64_t grace_ms,
                     struct tick_plan *out);

/* The tick was handled (delivered, or skipped for its queue); handled is the number
 * of ticks handled in all, this one included. The next tick or TICK_PLAN_NONE. */
int64_t tick_plan_after(const struct tick_sched *s, int64_t tick, uint64_t handled);

/*
 * on_full = retry, the queue was full at now: ms to wait before trying
 * tick again (the time since the tick, within [min_ms, max_ms], so waits
 * double), or 0 when no try fits before the next tick (a one-shot:
 * before tick + once_ms) and the tick is skipped.
 */
uint64_t tick_plan_retry(const struct tick_sched *s, int64_t tick, int64_t now, uint64_t min_ms,
                         uint64_t max_ms, uint64_t once_ms);

#endif
