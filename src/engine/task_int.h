/*
 * task_int: what the timer-task engine's files share (task.c, task_index.c,
 * task_ops.c, task_replay.c): struct task and the engine, the bits of a
 * task's word, small helpers, and the functions one file calls in another.
 * Not for use outside src/engine/task*.c; task.h is the contract.
 */
#ifndef AWAITD_TASK_INT_H
#define AWAITD_TASK_INT_H

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

static inline void set_last_error(struct task *t, int err) {
    err = err < -128 ? -128 : err > 127 ? 127 : err;
    t->word = (t->word & ~(UINT64_C(0xff) << ERR_SHIFT)) | (uint64_t)(uint8_t)err << ERR_SHIFT;
}

static inline void set_flag(struct task *t, uint64_t flag, int on) {
    t->word = on ? t->word | flag : t->word & ~flag;
}

static inline struct task_engine *engine_of(const struct task *t) {
    return t->link & 1 ? ((const struct task_waiter *)(t->link - 1))->e
                       : (struct task_engine *)t->link;
}

static inline struct task_waiter *first_waiter(const struct task *t) {
    return t->link & 1 ? (struct task_waiter *)(t->link - 1) : NULL;
}

static inline void set_first_waiter(struct task *t, struct task_waiter *w, struct task_engine *e) {
    t->link = w ? (uintptr_t)w | 1 : (uintptr_t)e;
}

static inline int one_shot(int kind) {
    return kind == TASK_ONCE || kind == TASK_AT;
}

static inline size_t sched_size(int kind) {
    return kind == TASK_EVERY  ? sizeof(struct sched_every)
           : kind == TASK_CRON ? sizeof(struct sched_cron)
                               : 0;
}

static inline void mem_charge(struct task_engine *e, size_t n) {
    e->st.mem_used += n;
    mem_budget_charge(e->budget, n);
}

static inline void mem_release(struct task_engine *e, size_t n) {
    e->st.mem_used -= n;
    mem_budget_release(e->budget, n);
}

static inline uint32_t jitter_of(const struct task *t) {
    int k = tkind(t);
    return k == TASK_EVERY ? every(t)->jitter_ms : k == TASK_CRON ? cronsched(t)->jitter_ms : 0;
}

static inline uint32_t add_sat(uint32_t a, uint64_t b) {
    uint64_t s = a + b;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static inline int64_t now_of(const struct task_engine *e) {
    return (int64_t)e->wheel->now;
}

/* Every tick counted: the task's one tick (one-shots) or count. */
static inline int done(const struct task *t) {
    uint64_t limit = one_shot(tkind(t)) ? 1 : t->count;
    return limit && (uint64_t)t->fires + t->skips >= limit;
}

static inline void *e_alloc(struct task_engine *e, size_t n) {
    return e->cfg.alloc ? e->cfg.alloc(e->cfg.alloc_ctx, n) : malloc(n);
}

static inline void e_free(struct task_engine *e, void *p) {
    if (e->cfg.dealloc)
        e->cfg.dealloc(e->cfg.alloc_ctx, p);
    else
        free(p);
}

/* splitmix64: tiny, seedable, and good enough to spread a herd. */
static inline uint64_t rng_next(struct task_engine *e) {
    uint64_t z = (e->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline void emit(struct task_engine *e, const struct task *t, int type, int64_t tick,
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

/* task.c: the life of a task, and every public entry's bracket. */
void tk_op_begin(struct task_engine *e);
void tk_op_end(struct task_engine *e);
void tk_on_timer(struct timer *tm);
void tk_move_state(struct task_engine *e, struct task *t, int state);
void tk_arm(struct task_engine *e, struct task *t, int64_t tick);
void tk_arm_finished(struct task_engine *e, struct task *t);
void tk_finish(struct task_engine *e, struct task *t, int state, int evtype);
void tk_destroy(struct task_engine *e, struct task *t);
int64_t tk_next_tick(const struct task_engine *e, const struct task *t, int64_t tick);
void tk_plan(struct task_engine *e, struct task *t, int64_t tick);

/* task_index.c: the id index. */
size_t tk_lower_bound(const struct task_engine *e, uint64_t id);
int tk_index_insert(struct task_engine *e, struct task *t);
void tk_index_remove(struct task_engine *e, struct task *t);

/* task_ops.c: allocate and fill a task (indexed, not armed). */
struct task *tk_new(struct task_engine *e, const struct task_spec *s, uint64_t id, int64_t tick);

#endif
