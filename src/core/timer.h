/*
 * timer: a hierarchical timing wheel (pure: no clock, no I/O). The caller
 * owns time: it passes "now" in milliseconds to timer_wheel_advance() and
 * asks timer_wheel_next() when to call it again. One wheel serves every
 * deadline in the daemon: /delay answers, connection deadlines, queue
 * leases and delays, and user timers. Insert and cancel are O(1) and
 * allocate nothing; a timer is a 32-byte node embedded in its owner.
 *
 * Layout: 6 levels, 1 ms per level-0 slot, each level 64x coarser; each
 * level holds two laps of 64 slots (this lap and the next), so a timer
 * never waits at a level whose whole lap it could fit in below (2^36 ms,
 * about 795 days, per top-level lap; beyond two of them timers are parked
 * and looked at once per lap). Moving timers down a level is spread over
 * the slot before theirs, a bounded slice per advance(), so no single
 * advance() re-places a whole slot (timer.c explains).
 */
#ifndef AWAITD_TIMER_H
#define AWAITD_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct timer;
typedef void (*timer_cb)(struct timer *t);

struct timer {
    struct timer *next, *prev; /* slot list links; prev == NULL when not pending */
    uint64_t expire;           /* absolute ms */
    timer_cb cb;               /* called once when due; owner finds itself via container_of */
};

#define TIMER_LEVELS 6
#define TIMER_SLOTS 64 /* per lap; each level has two laps */
#define TIMER_DRAIN_BUDGET 1024 /* timers moved down per advance() outside deadlines */

struct timer_wheel {
    uint64_t now;                       /* last time passed to advance (ms) */
    size_t count;                       /* pending timers */
    unsigned pend;                      /* bit L: level L's next slot may hold timers to move down */
    int in_due_round;                   /* advance() is running the due list */
    size_t drain_budget;                /* TIMER_DRAIN_BUDGET; tests may lower it */
    uint64_t sync_min; /* the earliest expiry added since the owner last cleared this (to
                          UINT64_MAX), 0 after an advance: the owner's alarm (server_timers_sync)
                          needs a new look at timer_wheel_next only when this is below it */
    uint64_t occupied[TIMER_LEVELS][2]; /* bit i of word k: slot 64k+i is non-empty */
    struct timer due;                   /* expiry <= now when added: fire on next advance */
    struct timer deferred;              /* made due while due timers ran: next advance call */
    struct timer parked;                /* beyond the next top-level lap */
    struct timer slots[TIMER_LEVELS][2 * TIMER_SLOTS]; /* list heads (sentinels) */
};

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms);

/* Initialise a timer node before first use. */
void timer_init(struct timer *t, timer_cb cb);

/*
 * Schedule t to fire at expire_ms (absolute). If t is already pending it is
 * moved. An expiry at or before w->now fires on the next advance.
 */
void timer_add(struct timer_wheel *w, struct timer *t, uint64_t expire_ms);

/* Unschedule t; a no-op when t is not pending. */
void timer_cancel(struct timer_wheel *w, struct timer *t);

static inline int timer_pending(const struct timer *t) {
    return t->prev != NULL;
}

/*
 * The earliest time at which advance() may have work: the exact expiry of
 * the next timer within the current or next 64 ms, else the start of the
 * slot before the next occupied higher-level slot (where its timers start
 * moving down). w->now when something is due, or while timers of the next
 * slot are being moved down (one slice per advance() call). Never later
 * than the true next expiry. UINT64_MAX when no timer is pending.
 */
uint64_t timer_wheel_next(const struct timer_wheel *w);

/*
 * Move the wheel to now_ms, firing every timer whose expiry is <= now_ms,
 * in expiry order (ties in insertion order). Callbacks may add and cancel
 * any timer, including the one firing (re-adding it schedules it again).
 * Time never goes backwards: a smaller now_ms than w->now is ignored.
 * Then moves up to TIMER_DRAIN_BUDGET timers of upcoming slots down a
 * level. Returns the number of callbacks run.
 */
size_t timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms);

#endif
