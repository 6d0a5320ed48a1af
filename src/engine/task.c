/*
 * The timer-task engine; task.h is the contract.
 *
 * A task is one allocation: struct task, its schedule, its action blob.
 * Its embedded wheel timer does every job in turn: the next firing, a
 * RETRY re-attempt, and once the task has finished, its removal after
 * keep_ms. So one callback (on_timer) drives the whole life, and a task
 * costs no second timer.
 *
 * The id index is one array of words in id order, because ids only grow:
 * creating appends. A word is a task pointer, or for a removed task its
 * id shifted left with the low bit set (a tombstone), so every slot still
 * has an id to search on. Tombstones are squeezed out when they outnumber
 * live tasks. Lookups interpolate on the id, which lands on the answer at
 * once while ids are dense, and fall back to halving otherwise. Unlike a
 * hash table, the same array pages GET /timers in id order, at 8 bytes
 * per task.
 *
 * Every public entry (and on_timer) is bracketed by op_begin/op_end like
 * queue.c: finishing a task moves its waiters to the engine's wake list,
 * and the outermost op_end() runs their wake()s, so wake() never sees a
 * half-done change.
 */
#include "engine/task.h"
#include "core/mem_budget.h"
#include "core/timer.h"

#include <stdlib.h>
#include <string.h>

/* Tagged words (index tombstones, the task's link) need 64-bit pointers. */
_Static_assert(sizeof(uintptr_t) == 8, "task.c needs 64-bit pointers");

struct task {
    struct timer timer; /* firing, retry, or (finished) removal; first, so a cast finds us */
    uintptr_t link;     /* the engine, or (first waiter | 1): saves a pointer per task */
    uint64_t word;      /* id (48 bits) | state | kind | policies | flags | last_error */
    int64_t tick;       /* SCHEDULED: pending (or, HANDLED, last handled) tick; else finish time */
    uint32_t fires;     /* ticks delivered, saturating */
    uint32_t skips;     /* ticks skipped, saturating */
    uint32_t count;     /* limit on fires + skips; 0 = none */
    uint32_t len;       /* action bytes, after the schedule */
};
_Static_assert(sizeof(struct task) == 72, "struct task is counted in task.h");

/* The schedule that follows struct task, by kind. */
struct sched_every {
    uint64_t period_ms;
    uint32_t jitter_ms;
    uint32_t spare;
};
struct sched_cron {
    struct cron cron;
    uint32_t jitter_ms;
    uint32_t spare;
};

/* Bits of task->word above the id. */
#define STATE_SHIFT 48                  /* 2 bits: enum task_state */
#define KIND_SHIFT 50                   /* 2 bits: enum task_kind */
#define F_RETRY (UINT64_C(1) << 52)     /* full policy is RETRY */
#define F_MISS_SKIP (UINT64_C(1) << 53) /* missed policy is SKIP */
#define F_HANDLED (UINT64_C(1) << 54)   /* replay: tick was handled, the pending one follows it */
#define F_RETRYING (UINT64_C(1) << 55)  /* the timer is a retry of tick */
#define ERR_SHIFT 56                    /* 8 bits: last_error as int8 */

#define TICK_NONE INT64_MIN /* no further tick */
#define MISSED_SCAN 100000u /* cron ticks counted one by one when missed */
#define INDEX_MIN 64        /* smallest index capacity */

enum { W_IDLE, W_WAITING, W_WAKING };

struct task_engine {
    struct timer_wheel *wheel;     /* time; owned by the caller */
    struct task_engine_config cfg; /* settings and hooks */
    uintptr_t *slots;              /* the id index: task pointers and tombstones, by id */
    size_t n, cap, live;           /* slots used, allocated, holding tasks */
    uint64_t next_id;              /* id of the next create */
    uint64_t rng;                  /* splitmix64 state for jitter */
    int64_t wall_off;              /* unix ms - wheel ms in use */
    struct task_waiter *wake_head; /* waiters to wake at the outermost op_end */
    struct task_waiter *wake_tail;
    unsigned depth;              /* op nesting */
    int draining;                /* op_end is running wakes */
    struct task_engine_stats st; /* counters (tasks, by state, totals, mem_used) */
    struct mem_budget own;       /* the budget when the config gives none */
    struct mem_budget *budget;   /* what task_cost() is charged to */
};

/* ---- small helpers ------------------------------------------------------ */

/* Fields packed into task->word. */
#define tid(t) ((t)->word & TASK_ID_MAX)
#define tstate(t) ((int)((t)->word >> STATE_SHIFT & 3))
#define tkind(t) ((int)((t)->word >> KIND_SHIFT & 3))
#define last_error(t) ((int)(int8_t)(uint8_t)((t)->word >> ERR_SHIFT))
/* The schedule after struct task (see sched_size). */
#define every(t) ((struct sched_every *)(void *)((t) + 1))
#define cronsched(t) ((struct sched_cron *)(void *)((t) + 1))

static void set_last_error(struct task *t, int err) {
    err = err < -128 ? -128 : err > 127 ? 127 : err;
    t->word = (t->word & ~(UINT64_C(0xff) << ERR_SHIFT)) | (uint64_t)(uint8_t)err << ERR_SHIFT;
}

static void set_flag(struct task *t, uint64_t flag, int on) {
    t->word = on ? t->word | flag : t->word & ~flag;
}

static struct task_engine *engine_of(const struct task *t) {
    return t->link & 1 ? ((const struct task_waiter *)(t->link - 1))->e
                       : (struct task_engine *)t->link;
}

static struct task_waiter *first_waiter(const struct task *t) {
    return t->link & 1 ? (struct task_waiter *)(t->link - 1) : NULL;
}

static void set_first_waiter(struct task *t, struct task_waiter *w, struct task_engine *e) {
    t->link = w ? (uintptr_t)w | 1 : (uintptr_t)e;
}

static int one_shot(int kind) {
    return kind == TASK_ONCE || kind == TASK_AT;
}

static size_t sched_size(int kind) {
    return kind == TASK_EVERY  ? sizeof(struct sched_every)
           : kind == TASK_CRON ? sizeof(struct sched_cron)
                               : 0;
}

size_t task_cost(int kind, size_t action_len) {
    size_t chunk = (sizeof(struct task) + sched_size(kind) + action_len + 8 + 15) & ~(size_t)15;
    return chunk + TASK_INDEX_COST;
}

static void mem_charge(struct task_engine *e, size_t n) {
    e->st.mem_used += n;
    mem_budget_charge(e->budget, n);
}

static void mem_release(struct task_engine *e, size_t n) {
    e->st.mem_used -= n;
    mem_budget_release(e->budget, n);
}

static uint32_t jitter_of(const struct task *t) {
    int k = tkind(t);
    return k == TASK_EVERY ? every(t)->jitter_ms : k == TASK_CRON ? cronsched(t)->jitter_ms : 0;
}

static uint32_t add_sat(uint32_t a, uint64_t b) {
    uint64_t s = a + b;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static int64_t now_of(const struct task_engine *e) {
    return (int64_t)e->wheel->now;
}

/* Every tick counted: the task's one tick (one-shots) or count. */
static int done(const struct task *t) {
    uint64_t limit = one_shot(tkind(t)) ? 1 : t->count;
    return limit && (uint64_t)t->fires + t->skips >= limit;
}

static void *e_alloc(struct task_engine *e, size_t n) {
    return e->cfg.alloc ? e->cfg.alloc(e->cfg.alloc_ctx, n) : malloc(n);
}

static void e_free(struct task_engine *e, void *p) {
    if (e->cfg.dealloc)
        e->cfg.dealloc(e->cfg.alloc_ctx, p);
    else
        free(p);
}

/* splitmix64: tiny, seedable, and good enough to spread a herd. */
static uint64_t rng_next(struct task_engine *e) {
    uint64_t z = (e->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void emit(struct task_engine *e, const struct task *t, int type, int64_t tick,
                 const struct task_spec *spec) {
    if (!e->cfg.on_event)
        return;
    struct task_event ev = {.type = type,
                            .id = tid(t),
                            .now = now_of(e),
                            .tick = tick,
                            .fires = t->fires,
                            .skips = t->skips,
                            .last_error = last_error(t),
                            .spec = spec};
    e->cfg.on_event(e->cfg.event_ctx, &ev);
}

/* ---- id index ----------------------------------------------------------- */

static uint64_t slot_id(uintptr_t v) {
    return v & 1 ? v >> 1 : tid((const struct task *)v);
}

/* First slot whose id is >= id (e->n if none). */
static size_t lower_bound(const struct task_engine *e, uint64_t id) {
    const uintptr_t *v = e->slots;
    size_t lo = 0, hi = e->n; /* the answer is in [lo, hi] */
    while (hi - lo > 4) {
        size_t width = hi - lo;
        uint64_t a = slot_id(v[lo]), b = slot_id(v[hi - 1]);
        if (id <= a)
            return lo;
        if (id > b)
            return hi;
        /* Ids are strictly increasing, so b - a >= hi - 1 - lo > 0. */
        size_t p = lo + (size_t)((double)(id - a) / (double)(b - a) * (double)(hi - 1 - lo));
        if (p >= hi)
            p = hi - 1;
        if (slot_id(v[p]) >= id) {
            if (p == lo || slot_id(v[p - 1]) < id)
                return p;
            hi = p - 1;
        } else {
            if (p + 1 == hi || slot_id(v[p + 1]) >= id)
                return p + 1;
            lo = p + 2;
        }
        if (hi - lo > width / 2) { /* a poor guess: halve, so we stay O(log n) */
            size_t m = lo + (hi - lo) / 2;
            if (slot_id(v[m]) < id)
                lo = m + 1;
            else
                hi = m;
        }
    }
    while (lo < hi && slot_id(v[lo]) < id)
        lo++;
    return lo;
}

/* Resize the index to cap slots, squeezing out tombstones; -1 on NOMEM. */
static int index_rebuild(struct task_engine *e, size_t cap) {
    uintptr_t *v = e->slots;
    if (cap != e->cap) {
        v = e_alloc(e, cap * sizeof *v);
        if (!v)
            return -1;
    }
    size_t j = 0;
    for (size_t i = 0; i < e->n; i++)
        if (!(e->slots[i] & 1))
            v[j++] = e->slots[i];
    if (v != e->slots) {
        e_free(e, e->slots);
        e->slots = v;
        e->cap = cap;
    }
    e->n = j;
    return 0;
}

/* Insert t at its place by id (the end, except in an out-of-order replay). */
static int index_insert(struct task_engine *e, struct task *t) {
    if (e->n == e->cap) { /* full: squeeze out tombstones if they are many, else grow */
        size_t cap = !e->cap ? INDEX_MIN : e->n - e->live >= e->n / 4 ? e->cap : e->cap * 2;
        if (cap > SIZE_MAX / 16 || index_rebuild(e, cap) < 0)
            return -1;
    }
    uint64_t id = tid(t);
    size_t pos = (e->n && slot_id(e->slots[e->n - 1]) < id) ? e->n : lower_bound(e, id);
    if (pos < e->n && slot_id(e->slots[pos]) == id) {
        e->slots[pos] = (uintptr_t)t; /* reuse the tombstone of the same id */
    } else {
        memmove(e->slots + pos + 1, e->slots + pos, (e->n - pos) * sizeof *e->slots);
        e->slots[pos] = (uintptr_t)t;
        e->n++;
    }
    e->live++;
    return 0;
}

static void index_remove(struct task_engine *e, struct task *t) {
    size_t pos = lower_bound(e, tid(t));
    e->slots[pos] = (uintptr_t)tid(t) << 1 | 1;
    e->live--;
    size_t dead = e->n - e->live;
    if (dead > e->live && dead > INDEX_MIN) {
        /* Squeeze, and shrink to a fill above 1/2, so that memory follows
         * the tasks held down as well as up. */
        size_t cap = INDEX_MIN;
        while (cap < e->live && cap < e->cap)
            cap *= 2;
        if (index_rebuild(e, cap) < 0) /* cannot shrink: squeeze in place */
            index_rebuild(e, e->cap);
    }
}

/* ---- wakes -------------------------------------------------------------- */

static void op_begin(struct task_engine *e) {
    e->depth++;
}

static void op_end(struct task_engine *e) {
    if (--e->depth || e->draining)
        return;
    e->draining = 1;
    struct task_waiter *w;
    while ((w = e->wake_head) != NULL) {
        e->wake_head = w->next;
        if (w->next)
            w->next->prev = NULL;
        else
            e->wake_tail = NULL;
        w->next = w->prev = NULL;
        w->state = W_IDLE;
        w->wake(w, w->status); /* may free or reuse w: not touched after */
    }
    e->draining = 0;
}

static void wake_later(struct task_engine *e, struct task_waiter *w, int status) {
    w->status = status;
    w->state = W_WAKING;
    w->next = NULL;
    w->prev = e->wake_tail;
    if (e->wake_tail)
        e->wake_tail->next = w;
    else
        e->wake_head = w;
    e->wake_tail = w;
}

/* Move every waiter of t to the wake list, oldest first (the list is newest first). */
static void wake_waiters(struct task_engine *e, struct task *t, int status) {
    struct task_waiter *w = first_waiter(t), *tail = NULL;
    for (; w; w = w->next) {
        tail = w;
        e->st.waiters--;
    }
    set_first_waiter(t, NULL, e);
    while (tail) {
        struct task_waiter *prev = tail->prev;
        wake_later(e, tail, status);
        tail = prev;
    }
}

/* ---- life --------------------------------------------------------------- */

static void move_state(struct task_engine *e, struct task *t, int state) {
    e->st.by_state[tstate(t)]--;
    e->st.by_state[state]++;
    t->word = (t->word & ~(UINT64_C(3) << STATE_SHIFT)) | (uint64_t)state << STATE_SHIFT;
}

static void arm_removal(struct task_engine *e, struct task *t) {
    if (e->cfg.keep_ms == TASK_KEEP_FOREVER)
        return;
    int64_t at = t->tick < 0 ? 0 : t->tick;
    uint64_t keep = e->cfg.keep_ms;
    timer_add(e->wheel, &t->timer, keep > UINT64_MAX - (uint64_t)at ? UINT64_MAX : at + keep);
}

static void on_timer(struct timer *tm);

/* Bytes of a finished task's action worth keeping, if fewer than it has. */
static int trimmable(const struct task_engine *e, const struct task *t, size_t *keep) {
    if (!e->cfg.action_keep || tstate(t) == TASK_SCHEDULED)
        return 0;
    size_t n = t->len;
    const void *a = (const char *)(t + 1) + sched_size(tkind(t));
    *keep = e->cfg.action_keep(e->cfg.fire_ctx, a, n);
    return *keep < n;
}

/* A finished task: trim its action at the next advance (see on_timer), or
 * arm its removal. */
static void arm_finished(struct task_engine *e, struct task *t) {
    size_t keep;
    if (trimmable(e, t, &keep))
        timer_add(e->wheel, &t->timer, e->wheel->now);
    else
        arm_removal(e, t);
}

/*
 * Move a finished task into a chunk without the action's tail (its
 * payload), giving the memory back. Called from the task's own timer, so
 * no caller holds the old pointer: it is not on the wheel, has no
 * waiters, and the index slot is the only reference. On NOMEM the task
 * stays whole (and charged). Returns the task, moved or not.
 */
static struct task *trim(struct task_engine *e, struct task *t, size_t keep) {
    size_t ss = sched_size(tkind(t));
    struct task *n = e_alloc(e, sizeof *t + ss + keep);
    if (!n)
        return t;
    memcpy(n, t, sizeof *t + ss + keep);
    timer_init(&n->timer, on_timer);
    n->link = (uintptr_t)e; /* finished: its waiters were woken */
    n->len = (uint32_t)keep;
    e->slots[lower_bound(e, tid(t))] = (uintptr_t)n;
    mem_release(e, task_cost(tkind(t), t->len) - task_cost(tkind(t), keep));
    e_free(e, t);
    return n;
}

/* Scheduled -> final: disarm, report, wake the waiters, arm the removal. */
static void finish(struct task_engine *e, struct task *t, int state, int evtype) {
    timer_cancel(e->wheel, &t->timer);
    move_state(e, t, state);
    set_flag(t, F_RETRYING | F_HANDLED, 0);
    t->tick = now_of(e);
    emit(e, t, evtype, 0, NULL);
    wake_waiters(e, t, state);
    arm_finished(e, t);
}

static void destroy(struct task_engine *e, struct task *t) {
    timer_cancel(e->wheel, &t->timer);
    index_remove(e, t);
    e->st.tasks--;
    e->st.by_state[tstate(t)]--;
    mem_release(e, task_cost(tkind(t), t->len));
    e_free(e, t);
}

/* The tick after tick, or TICK_NONE. Cron ticks are computed on the wall clock. */
static int64_t next_tick(const struct task_engine *e, const struct task *t, int64_t tick) {
    switch (tkind(t)) {
    case TASK_EVERY:
        return tick + (int64_t)every(t)->period_ms;
    case TASK_CRON: {
        int64_t w = cron_next(&cronsched(t)->cron, tick + e->wall_off);
        return w < 0 ? TICK_NONE : w - e->wall_off;
    }
    }
    return TICK_NONE;
}

/* Arm the firing of tick, late by a random 0..jitter. */
static void arm(struct task_engine *e, struct task *t, int64_t tick) {
    uint32_t j = jitter_of(t);
    int64_t at = tick + (j ? (int64_t)(rng_next(e) % ((uint64_t)j + 1)) : 0);
    t->tick = tick;
    set_flag(t, F_RETRYING, 0);
    timer_add(e->wheel, &t->timer, at < 0 ? 0 : (uint64_t)at);
}

/* Ticks from first to now (k >= 1 of them, within count); *last gets the latest. */
static uint64_t count_missed(const struct task_engine *e, const struct task *t, int64_t first,
                             int64_t now, int64_t *last) {
    uint64_t handled = (uint64_t)t->fires + t->skips;
    uint64_t limit = one_shot(tkind(t)) ? 1 : t->count;
    uint64_t room = limit ? (limit > handled ? limit - handled : 1) : UINT64_MAX;
    uint64_t k = 1;
    *last = first;
    if (tkind(t) == TASK_EVERY) {
        uint64_t period = every(t)->period_ms;
        k = (uint64_t)(now - first) / period + 1;
        k = k < room ? k : room;
        *last = first + (int64_t)((k - 1) * period);
    } else if (tkind(t) == TASK_CRON) {
        for (int64_t n; k < room && k < MISSED_SCAN; k++) {
            if ((n = next_tick(e, t, *last)) == TICK_NONE || n > now)
                break;
            *last = n;
        }
    }
    return k;
}

/*
 * Plan tick, the first one not yet handled: arm it if it is ahead,
 * otherwise apply the missed policy. Completes the task when no tick is
 * left.
 */
static void plan(struct task_engine *e, struct task *t, int64_t tick) {
    int64_t now = now_of(e);
    if (tick == TICK_NONE || done(t)) {
        finish(e, t, TASK_COMPLETED, TASK_EV_COMPLETE);
        return;
    }
    if (tick > now) {
        arm(e, t, tick);
        return;
    }
    int64_t last;
    uint64_t k = count_missed(e, t, tick, now, &last);
    if (!(t->word & F_MISS_SKIP)) {
        /* FIRE_ONCE: the latest missed tick fires now; its FIRE event will
         * carry these skips (a crash before then recounts the same ones). */
        t->skips = add_sat(t->skips, k - 1);
        e->st.total_skips += k - 1;
        t->tick = last;
        set_flag(t, F_RETRYING, 0);
        timer_add(e->wheel, &t->timer, (uint64_t)now);
        return;
    }
    t->skips = add_sat(t->skips, k);
    e->st.total_skips += k;
    emit(e, t, TASK_EV_FIRE, last, NULL);
    int64_t next = done(t) ? TICK_NONE : next_tick(e, t, last);
    if (next != TICK_NONE && next <= now) /* the cron scan stopped short */
        next = next_tick(e, t, now);
    if (next == TICK_NONE)
        finish(e, t, TASK_COMPLETED, TASK_EV_COMPLETE);
    else
        arm(e, t, next);
}

/* The pending tick is handled: on to the next one. */
static void advance(struct task_engine *e, struct task *t) {
    set_flag(t, F_RETRYING, 0);
    plan(e, t, done(t) ? TICK_NONE : next_tick(e, t, t->tick));
}

/*
 * RETRY: arm another attempt at tick if one fits before the next tick (a
 * one-shot: before once_retry_ms). The gap is the time since the tick, so
 * gaps double, within [retry_min, retry_max]. Returns 1 if armed.
 */
static int retry(struct task_engine *e, struct task *t, int64_t tick, int64_t now) {
    int64_t limit = one_shot(tkind(t)) ? TICK_NONE : next_tick(e, t, tick);
    if (limit == TICK_NONE)
        limit = tick + (int64_t)e->cfg.once_retry_ms;
    uint64_t gap = now > tick ? (uint64_t)(now - tick) : 0;
    gap = gap < e->cfg.retry_min_ms ? e->cfg.retry_min_ms : gap;
    gap = gap > e->cfg.retry_max_ms ? e->cfg.retry_max_ms : gap;
    if (now + (int64_t)gap >= limit)
        return 0;
    set_flag(t, F_RETRYING, 1);
    e->st.total_retries++;
    timer_add(e->wheel, &t->timer, (uint64_t)(now + (int64_t)gap));
    return 1;
}

/* Tick t: call fire() and act on its result. If fire() cancelled t, what
 * the firing did still counts, but nothing follows. */
static void do_tick(struct task_engine *e, struct task *t) {
    int r = e->cfg.fire(e->cfg.fire_ctx, t, t->tick);
    int64_t now = now_of(e), tick = t->tick;
    int live = tstate(t) == TASK_SCHEDULED;
    if (r == TASK_FIRE_OK) {
        t->fires = add_sat(t->fires, 1);
        e->st.total_fires++;
    } else {
        set_last_error(t, r);
        if (live && r == TASK_FIRE_FULL && (t->word & F_RETRY) && retry(e, t, tick, now))
            return;
        t->skips = add_sat(t->skips, 1);
        e->st.total_skips++;
        if (live && (r < 0 || one_shot(tkind(t)))) { /* permanent, or the only chance */
            finish(e, t, TASK_FAILED, TASK_EV_FAIL);
            return;
        }
    }
    emit(e, t, TASK_EV_FIRE, tick, NULL);
    if (live)
        advance(e, t);
}

/* Has a finished task been kept keep_ms? (arm_removal's time has come) */
static int removal_due(const struct task_engine *e, const struct task *t) {
    if (e->cfg.keep_ms == TASK_KEEP_FOREVER)
        return 0;
    uint64_t at = t->tick < 0 ? 0 : (uint64_t)t->tick, keep = e->cfg.keep_ms;
    return e->wheel->now >= (keep > UINT64_MAX - at ? UINT64_MAX : at + keep);
}

static void on_timer(struct timer *tm) {
    struct task *t = (struct task *)(void *)tm; /* the timer is the first member */
    struct task_engine *e = engine_of(t);
    op_begin(e);
    size_t keep;
    if (tstate(t) == TASK_SCHEDULED) {
        do_tick(e, t);
    } else if (!removal_due(e, t) && trimmable(e, t, &keep)) {
        arm_removal(e, trim(e, t, keep)); /* finished moments ago: drop the payload */
    } else { /* finished and kept for keep_ms: now it goes */
        e->st.total_removed++;
        emit(e, t, TASK_EV_REMOVE, 0, NULL);
        destroy(e, t);
    }
    op_end(e);
}

/* ---- engine ------------------------------------------------------------- */

const char *task_strerror(int status) {
    switch (status) {
    case TASK_OK: return "ok";
    case TASK_WAIT: return "waiting";
    case TASK_ERR_NOMEM: return "out of memory";
    case TASK_ERR_INVALID: return "invalid argument";
    case TASK_ERR_TOOBIG: return "action too large";
    case TASK_ERR_LIMIT: return "too many timers";
    case TASK_ERR_NOTFOUND: return "not found";
    case TASK_ERR_EXISTS: return "already exists";
    case TASK_ERR_DELETED: return "timer engine shut down";
    case TASK_ERR_MEMORY: return "memory limit reached";
    }
    return "unknown error";
}

void task_engine_config_default(struct task_engine_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->max_action = 64 * 1024;
    cfg->keep_ms = 3600000;
    cfg->retry_min_ms = 10;
    cfg->retry_max_ms = 1000;
    cfg->once_retry_ms = 60000;
    cfg->wall_slack_ms = 1000;
    cfg->seed = 1;
}

struct task_engine *task_engine_new(struct timer_wheel *wheel,
                                    const struct task_engine_config *cfg) {
    if (!cfg || !cfg->fire || !cfg->alloc != !cfg->dealloc)
        return NULL;
    struct task_engine *e = cfg->alloc ? cfg->alloc(cfg->alloc_ctx, sizeof *e) : malloc(sizeof *e);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->wheel = wheel;
    e->cfg = *cfg;
    e->own.limit = cfg->mem_limit;
    e->budget = cfg->budget ? cfg->budget : &e->own;
    if (!e->cfg.retry_min_ms)
        e->cfg.retry_min_ms = 1; /* a zero backoff would spin within one ms */
    if (e->cfg.retry_max_ms < e->cfg.retry_min_ms)
        e->cfg.retry_max_ms = e->cfg.retry_min_ms;
    e->next_id = 1;
    e->rng = cfg->seed;
    e->wall_off = cfg->wall_minus_wheel;
    return e;
}

void task_engine_free(struct task_engine *e) {
    if (!e)
        return;
    op_begin(e);
    for (size_t i = 0; i < e->n; i++)
        if (!(e->slots[i] & 1))
            wake_waiters(e, (struct task *)e->slots[i], TASK_ERR_DELETED);
    op_end(e);
    for (size_t i = 0; i < e->n; i++)
        if (!(e->slots[i] & 1)) {
            struct task *t = (struct task *)e->slots[i];
            timer_cancel(e->wheel, &t->timer);
            mem_release(e, task_cost(tkind(t), t->len));
            e_free(e, t);
        }
    e_free(e, e->slots);
    e_free(e, e);
}

void task_engine_stats(const struct task_engine *e, struct task_engine_stats *st) {
    *st = e->st;
    st->next_id = e->next_id;
    st->wall_minus_wheel = e->wall_off;
}

void task_engine_set_limits(struct task_engine *e, size_t max_tasks, size_t mem_limit) {
    e->cfg.max_tasks = max_tasks;
    e->cfg.mem_limit = mem_limit;
    e->own.limit = mem_limit;
}

void task_engine_set_wall_offset(struct task_engine *e, int64_t off) {
    int64_t delta = off - e->wall_off;
    if ((uint64_t)(delta < 0 ? -delta : delta) <= e->cfg.wall_slack_ms)
        return;
    e->wall_off = off;
    /* The same wall instant is now delta earlier on the wheel. */
    for (size_t i = 0; i < e->n; i++) {
        struct task *t = (struct task *)e->slots[i];
        if ((e->slots[i] & 1) || tstate(t) != TASK_SCHEDULED ||
            (tkind(t) != TASK_AT && tkind(t) != TASK_CRON))
            continue;
        t->tick -= delta;
        if (timer_pending(&t->timer)) {
            int64_t at = (int64_t)t->timer.expire - delta;
            timer_add(e->wheel, &t->timer, at < 0 ? 0 : (uint64_t)at);
        }
    }
}

int task_engine_set_next_id(struct task_engine *e, uint64_t id) {
    if (id < e->next_id || id > TASK_ID_MAX)
        return TASK_ERR_INVALID;
    e->next_id = id;
    return TASK_OK;
}

/* ---- tasks -------------------------------------------------------------- */

const char *task_spec_error(const struct task_engine *e, const struct task_spec *s) {
    if (s->action_len > e->cfg.max_action)
        return "action: larger than the limit";
    if (s->action_len && !s->action)
        return "action: missing";
    if (s->full_policy != TASK_FULL_SKIP && s->full_policy != TASK_FULL_RETRY)
        return "on_full: must be skip or retry";
    if (s->missed_policy != TASK_MISSED_FIRE_ONCE && s->missed_policy != TASK_MISSED_SKIP)
        return "on_missed: must be fire_once or skip";
    switch (s->kind) {
    case TASK_ONCE:
    case TASK_AT:
        if (s->kind == TASK_AT && (s->at < CRON_MIN_MS || s->at > CRON_MAX_MS))
            return "at: out of range";
        if (s->kind == TASK_ONCE && (s->at < -(INT64_C(1) << 62) || s->at > INT64_C(1) << 62))
            return "after: out of range";
        if (s->count)
            return "count: only for periodic timers";
        if (s->jitter_ms)
            return "jitter: only for periodic timers";
        return NULL;
    case TASK_EVERY:
        if (!s->every_ms)
            return "every: must be positive";
        if (s->every_ms > TASK_PERIOD_MAX_MS)
            return "every: too long";
        if (s->at < 0 || s->at > INT64_C(1) << 62)
            return "every: first tick out of range";
        if (s->jitter_ms >= s->every_ms)
            return "jitter: must be less than the period";
        break;
    case TASK_CRON:
        if (cron_next(&s->cron, now_of(e) + e->wall_off) < 0)
            return "cron: never matches (no such date)";
        break;
    default:
        return "kind: unknown";
    }
    if (s->jitter_ms > TASK_JITTER_MAX_MS)
        return "jitter: longer than a day";
    return NULL;
}

/* Allocate and fill a task (not indexed, not armed). */
static struct task *task_new(struct task_engine *e, const struct task_spec *s, uint64_t id,
                             int64_t tick) {
    size_t ss = sched_size(s->kind);
    struct task *t = e_alloc(e, sizeof *t + ss + s->action_len);
    if (!t)
        return NULL;
    timer_init(&t->timer, on_timer);
    t->link = (uintptr_t)e;
    t->word = id | (uint64_t)TASK_SCHEDULED << STATE_SHIFT | (uint64_t)s->kind << KIND_SHIFT |
              (s->full_policy == TASK_FULL_RETRY ? F_RETRY : 0) |
              (s->missed_policy == TASK_MISSED_SKIP ? F_MISS_SKIP : 0);
    t->tick = tick;
    t->fires = t->skips = 0;
    t->count = s->count;
    t->len = (uint32_t)s->action_len;
    if (s->kind == TASK_EVERY)
        *every(t) = (struct sched_every){s->every_ms, s->jitter_ms, 0};
    else if (s->kind == TASK_CRON)
        *cronsched(t) = (struct sched_cron){s->cron, s->jitter_ms, 0};
    if (s->action_len)
        memcpy((char *)(t + 1) + ss, s->action, s->action_len);
    if (index_insert(e, t) < 0) {
        e_free(e, t);
        return NULL;
    }
    e->st.tasks++;
    e->st.by_state[TASK_SCHEDULED]++;
    e->st.total_created++;
    mem_charge(e, task_cost(s->kind, s->action_len));
    return t;
}

int task_create(struct task_engine *e, const struct task_spec *s, struct task **out) {
    if (s->action_len > e->cfg.max_action)
        return TASK_ERR_TOOBIG;
    if (task_spec_error(e, s))
        return TASK_ERR_INVALID;
    if ((e->cfg.max_tasks && e->st.by_state[TASK_SCHEDULED] >= e->cfg.max_tasks) ||
        e->next_id > TASK_ID_MAX)
        return TASK_ERR_LIMIT;
    if (!mem_budget_fits(e->budget, task_cost(s->kind, s->action_len)))
        return TASK_ERR_MEMORY;
    int64_t now = now_of(e), tick = s->at;
    if (s->kind == TASK_AT)
        tick = s->at - e->wall_off < now ? now : s->at - e->wall_off; /* past: now, said so */
    else if (s->kind == TASK_EVERY && !s->at)
        tick = now + (int64_t)s->every_ms;
    else if (s->kind == TASK_CRON)
        tick = cron_next(&s->cron, now + e->wall_off) - e->wall_off;
    struct task *t = task_new(e, s, e->next_id, tick);
    if (!t)
        return TASK_ERR_NOMEM;
    e->next_id++;
    emit(e, t, TASK_EV_CREATE, tick, s);
    arm(e, t, tick); /* a tick already past fires on the next advance */
    if (out)
        *out = t;
    return TASK_OK;
}

struct task *task_find(const struct task_engine *e, uint64_t id) {
    size_t pos = lower_bound(e, id);
    if (pos == e->n || (e->slots[pos] & 1) || slot_id(e->slots[pos]) != id)
        return NULL;
    return (struct task *)e->slots[pos];
}

size_t task_list(const struct task_engine *e, uint64_t after, struct task **out, size_t max) {
    size_t n = 0;
    if (after >= TASK_ID_MAX)
        return 0;
    for (size_t i = lower_bound(e, after + 1); i < e->n && n < max; i++)
        if (!(e->slots[i] & 1))
            out[n++] = (struct task *)e->slots[i];
    return n;
}

uint64_t task_id(const struct task *t) {
    return tid(t);
}

int task_state(const struct task *t) {
    return tstate(t);
}

const void *task_action(const struct task *t, size_t *len) {
    *len = t->len;
    return (const char *)(t + 1) + sched_size(tkind(t));
}

void task_info(const struct task *t, struct task_info *o) {
    memset(o, 0, sizeof *o);
    o->id = tid(t);
    o->kind = tkind(t);
    o->state = tstate(t);
    o->fires = t->fires;
    o->skips = t->skips;
    o->count = t->count;
    o->last_error = last_error(t);
    o->retrying = !!(t->word & F_RETRYING);
    if (o->state == TASK_SCHEDULED) {
        o->tick = t->tick;
        o->fire_at = timer_pending(&t->timer) ? (int64_t)t->timer.expire : t->tick;
    } else {
        o->finished = t->tick;
    }
    if (o->kind == TASK_EVERY)
        o->every_ms = every(t)->period_ms;
    if (o->kind == TASK_CRON)
        o->cron = &cronsched(t)->cron;
    o->jitter_ms = jitter_of(t);
    o->full_policy = t->word & F_RETRY ? TASK_FULL_RETRY : TASK_FULL_SKIP;
    o->missed_policy = t->word & F_MISS_SKIP ? TASK_MISSED_SKIP : TASK_MISSED_FIRE_ONCE;
    o->action = task_action(t, &o->action_len);
}

int task_cancel(struct task *t) {
    if (tstate(t) != TASK_SCHEDULED)
        return 0;
    struct task_engine *e = engine_of(t);
    op_begin(e);
    finish(e, t, TASK_CANCELLED, TASK_EV_CANCEL);
    op_end(e);
    return 1;
}

/* ---- awaiting ----------------------------------------------------------- */

void task_waiter_init(struct task_waiter *w, task_wake_fn wake, void *arg) {
    memset(w, 0, sizeof *w);
    w->wake = wake;
    w->arg = arg;
}

int task_await(struct task *t, struct task_waiter *w) {
    if (w->state != W_IDLE || !w->wake)
        return TASK_ERR_INVALID;
    struct task_engine *e = engine_of(t);
    w->task = t;
    w->id = tid(t);
    w->e = e;
    if (tstate(t) != TASK_SCHEDULED) {
        w->status = tstate(t);
        return TASK_OK;
    }
    /* Newest first: O(1) without a tail pointer; wakes run oldest first. */
    w->prev = NULL;
    w->next = first_waiter(t);
    if (w->next)
        w->next->prev = w;
    set_first_waiter(t, w, e);
    w->state = W_WAITING;
    e->st.waiters++;
    return TASK_WAIT;
}

void task_waiter_cancel(struct task_waiter *w) {
    struct task_engine *e = w->e;
    if (w->state == W_WAITING) {
        if (w->prev)
            w->prev->next = w->next;
        else
            set_first_waiter(w->task, w->next, e);
        if (w->next)
            w->next->prev = w->prev;
        e->st.waiters--;
    } else if (w->state == W_WAKING) {
        if (w->prev)
            w->prev->next = w->next;
        else
            e->wake_head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            e->wake_tail = w->prev;
    }
    w->next = w->prev = NULL;
    w->state = W_IDLE;
}

/* ---- replay and resume -------------------------------------------------- */

int task_engine_replay(struct task_engine *e, const struct task_event *ev) {
    if (ev->type == TASK_EV_CREATE) {
        if (!ev->spec || !ev->id || ev->id > TASK_ID_MAX)
            return TASK_ERR_INVALID;
        const struct task_spec *s = ev->spec;
        /* The schedule was valid when recorded; re-check only what keeps us safe. */
        if (s->kind < TASK_ONCE || s->kind > TASK_CRON || s->action_len > UINT32_MAX ||
            (s->kind == TASK_EVERY && (!s->every_ms || s->every_ms > TASK_PERIOD_MAX_MS)) ||
            (s->action_len && !s->action))
            return TASK_ERR_INVALID;
        if (task_find(e, ev->id))
            return TASK_ERR_EXISTS;
        struct task *t = task_new(e, s, ev->id, ev->tick);
        if (!t)
            return TASK_ERR_NOMEM;
        /* A snapshot's CREATE carries the counters so far (a live CREATE has 0). */
        t->fires = ev->fires;
        t->skips = ev->skips;
        set_last_error(t, ev->last_error);
        if (ev->id >= e->next_id)
            e->next_id = ev->id + 1;
        return TASK_OK;
    }
    struct task *t = task_find(e, ev->id);
    if (!t)
        return TASK_ERR_NOTFOUND;
    switch (ev->type) {
    case TASK_EV_FIRE:
        if (tstate(t) == TASK_SCHEDULED) {
            t->tick = ev->tick;
            set_flag(t, F_HANDLED, 1);
        }
        break;
    case TASK_EV_CANCEL:
    case TASK_EV_COMPLETE:
    case TASK_EV_FAIL:
        timer_cancel(e->wheel, &t->timer);
        move_state(e, t,
                   ev->type == TASK_EV_CANCEL     ? TASK_CANCELLED
                   : ev->type == TASK_EV_COMPLETE ? TASK_COMPLETED
                                                  : TASK_FAILED);
        set_flag(t, F_RETRYING | F_HANDLED, 0);
        t->tick = ev->now;
        break;
    case TASK_EV_REMOVE:
        e->st.total_removed++;
        destroy(e, t);
        return TASK_OK;
    default:
        return TASK_ERR_INVALID;
    }
    t->fires = ev->fires;
    t->skips = ev->skips;
    set_last_error(t, ev->last_error);
    return TASK_OK;
}

size_t task_engine_resume(struct task_engine *e) {
    size_t armed = 0;
    op_begin(e);
    /* Resuming creates and removes nothing, so the index stays put. */
    for (size_t i = 0; i < e->n; i++) {
        if (e->slots[i] & 1)
            continue;
        struct task *t = (struct task *)e->slots[i];
        if (timer_pending(&t->timer))
            continue;
        if (tstate(t) != TASK_SCHEDULED) {
            arm_finished(e, t);
            continue;
        }
        int64_t tick = t->tick;
        if (t->word & F_HANDLED) {
            set_flag(t, F_HANDLED, 0);
            tick = done(t) ? TICK_NONE : next_tick(e, t, tick);
        }
        plan(e, t, tick);
        armed += tstate(t) == TASK_SCHEDULED;
    }
    op_end(e);
    return armed;
}
