/*
 * task: the timer-task engine behind /timers, asyncio's create_task,
 * cancel() and await for background timers. A task fires on a schedule:
 * once (at a wheel time or a wall-clock time), every N ms, or on a
 * crontab(5) expression. It holds an opaque action blob that the caller's
 * fire() hook carries out (awaitd puts a payload into a queue), and it
 * ends completed, cancelled or failed.
 *
 * Pure. No I/O, no logging, no clock, no global state. Time comes only
 * from the timer wheel given to task_engine_new(): the engine reads
 * wheel->now (ms) and arms the 32-byte timer embedded in each task, so
 * tasks fire inside the caller's timer_wheel_advance(). Tests drive the
 * wheel by hand as a fake clock. The same wheel serves /delay, connection
 * deadlines and queue leases.
 *
 * Wall clock. Wall-clock schedules (TASK_AT, TASK_CRON) are converted to
 * wheel time with wall_minus_wheel (unix ms - wheel ms), which the caller
 * keeps current with task_engine_set_wall_offset(), e.g. once per loop
 * iteration with (real time - monotonic time). Small moves are ignored
 * (up to wall_slack_ms), so a slewing clock costs nothing; a larger step
 * (NTP step, suspend) moves the pending tick of every wall-clock task, so
 * "at 12:00" still fires at 12:00 on the new clock. Periodic (TASK_EVERY)
 * and relative one-shot (TASK_ONCE) tasks stay on the monotonic wheel.
 *
 * Who owns what.
 *  - The engine owns its tasks (the action and schedule are copied into
 *    the task's single allocation). The caller owns the wheel, which must
 *    outlive the engine, and every struct task_waiter (embedded in its
 *    per-request state), which must stay in place from a TASK_WAIT return
 *    until its wake() runs or task_waiter_cancel() returns.
 *  - A struct task * stays valid until the task is removed: a finished
 *    task is kept for keep_ms after it finishes (so GET and await still
 *    see it), then removed by the wheel (a REMOVE event). With action_keep
 *    set, a finished task also moves once, at the next advance, into a
 *    smaller chunk without its payload. Look tasks up by id with
 *    task_find() rather than holding pointers across an advance.
 *  - struct task_event data lives only during on_event().
 *
 * Ticks. A tick is a time the schedule says the task should fire (its
 * nominal time, without jitter). Every tick is handled exactly once:
 * fired (fire() delivered it) or skipped (the target was full, a
 * transient error, or the tick was missed). So fires + skips = ticks
 * handled, and `count` bounds that sum: a periodic task with count 3 is
 * completed after its third tick, whatever happened to each, so its life
 * is bounded by its schedule. A one-shot has one tick: delivered, it
 * completes; skipped because of the target, it fails (the action never
 * happened); skipped by the missed policy, it completes (skipping was
 * asked for).
 *
 * fire() results. TASK_FIRE_OK: delivered, fires+1. TASK_FIRE_FULL: the
 * task's full policy applies. SKIP counts the tick as skipped at once.
 * RETRY fires the same tick again, with a backoff, until the next tick
 * would be due (for a one-shot, until once_retry_ms after its tick), and
 * only then skips it; the loop never blocks. A negative result is a
 * permanent error of the caller's (e.g. the target queue was deleted or
 * shut down): the task fails. A result > 1 is a transient error of the
 * caller's (e.g. out of memory): the tick is skipped. Results other than
 * OK are kept as last_error (int8 range, so queue_status codes fit).
 *
 * Missed ticks. A tick already in the past when the engine plans it is
 * missed: after a restart (task_engine_resume) or when a task was held up
 * past its next tick. FIRE_ONCE fires once now for all of them (the
 * latest tick; the rest count as skipped), SKIP skips them all and waits
 * for the next future tick, like cron and systemd's Persistent= timers.
 *
 * Re-entrancy: as in queue.h, wakes are deferred. fire() and wake() may
 * call any function here, including cancelling the firing task from its
 * own fire() (cancellation during firing: the firing's result is still
 * counted, the task ends cancelled), except task_engine_free() and
 * timer_wheel_advance(). on_event() must not call into the engine.
 *
 * Durability. Every change the journal must keep is reported
 * synchronously, as one plain-data struct task_event, before the call
 * returns. task_engine_replay() applies such an event without reporting
 * it; replaying a journal into a fresh engine rebuilds every task with its
 * counters, but arms nothing. Set the wall offset first (cron ticks are
 * computed on the wall clock). task_engine_resume() then arms them: a task
 * whose pending tick passed while the daemon was down goes through its
 * missed policy. RETRY attempts, the jitter drawn and waiters are not
 * durable. Times in events are wheel ms (int64: a journal converting old
 * wall times may produce negative wheel times after a reboot); the
 * journal converts them with wall_minus_wheel, as the queue journal does.
 *
 * Memory per task (x86-64, glibc). One malloc chunk: a 72-byte header,
 * the schedule, then the action blob.
 *   32  timer (next firing or retry; once finished, the removal)
 *    8  engine, or the first waiter (tagged), which knows the engine
 *    8  id (48 bits), state, kind, policies, flags, last_error
 *    8  tick (pending tick; once finished, the finish time)
 *    4  fires          4  skips          4  count          4  action length
 * then the schedule: TASK_ONCE/AT 0; TASK_EVERY 16 (period, jitter);
 * TASK_CRON 32 (struct cron, jitter). malloc adds 8 and rounds up to 16.
 * The id index is an array of 8-byte slots: one per task, plus one per
 * removed task until the next squeeze (they never outnumber the tasks),
 * in an array more than half full. That is 8.4 B per task at 1,000,000
 * tasks, at most 16 B while tasks are only added, 32 B at worst while
 * removals await a squeeze. A periodic task with a 24-byte action takes a
 * 128-byte chunk, 104 bytes beyond the action, plus 8.4 bytes of index:
 * 112.4 bytes. Beyond the action (and the cron), the chunk is 96..111
 * bytes for a periodic task, 80..95 for a one-shot and 88..103 for a cron
 * task, so with the index at 16 B or less every task is within 128 bytes.
 * bench/task_bench.c measures 96.4 (one-shot), 112.4 (periodic) and
 * 104.4 (cron) at 1,000,000 tasks.
 *
 * Costs: create, cancel, fire and await are O(1) (amortized, for the
 * index); task_find and the start of task_list are an interpolation
 * search of the id index (a couple of probes when ids are dense, never
 * more than twice a binary search). A cron tick costs one cron_next().
 */
#ifndef AWAITD_TASK_H
#define AWAITD_TASK_H

#include "engine/cron.h"

#include <stddef.h>
#include <stdint.h>

struct timer_wheel;
struct mem_budget;  /* core/mem_budget.h */
struct task_engine; /* opaque: tasks, the id index, the jitter generator */
struct task;        /* opaque: one timer task (layout above) */

/* Return codes. Every failing call leaves the engine as it was. */
enum task_status {
    TASK_OK = 0,            /* done */
    TASK_WAIT = 1,          /* the waiter is linked; its wake() reports the outcome */
    TASK_ERR_NOMEM = -1,    /* an allocation failed */
    TASK_ERR_INVALID = -2,  /* bad spec or argument (task_spec_error says which field) */
    TASK_ERR_TOOBIG = -3,   /* action longer than max_action */
    TASK_ERR_LIMIT = -4,    /* the engine holds max_tasks scheduled tasks */
    TASK_ERR_NOTFOUND = -5, /* no task with that id */
    TASK_ERR_EXISTS = -6,   /* replay: the id exists already */
    TASK_ERR_DELETED = -7,  /* wake only: the engine was freed while waiting */
    TASK_ERR_MEMORY = -8,   /* the memory budget would be exceeded (task_cost) */
};

/* A short lowercase text for a status, for error bodies. */
const char *task_strerror(int status);

enum task_kind {
    TASK_ONCE,  /* one tick at a wheel time (`after`: now + seconds) */
    TASK_AT,    /* one tick at a wall-clock time (`at`: RFC 3339) */
    TASK_EVERY, /* a tick every every_ms (`every`) */
    TASK_CRON,  /* a tick at each minute a crontab(5) expression matches (`cron`), UTC */
};

enum task_state {
    TASK_SCHEDULED, /* waiting for its next tick, firing, or retrying */
    TASK_COMPLETED, /* every tick handled (count reached, or the one-shot done) */
    TASK_CANCELLED, /* task_cancel() while scheduled */
    TASK_FAILED,    /* fire() reported a permanent error, or a one-shot's tick was not delivered */
};

enum task_full_policy {
    TASK_FULL_SKIP,  /* a full target skips the tick (counted in skips) */
    TASK_FULL_RETRY, /* retry the tick with backoff until the next tick, then skip it */
};

enum task_missed_policy {
    TASK_MISSED_FIRE_ONCE, /* ticks missed (daemon down, loop held up) fire once, now */
    TASK_MISSED_SKIP,      /* they are skipped; the next future tick fires */
};

/* What fire() returns; other values are the caller's error codes (see above). */
enum task_fire_result {
    TASK_FIRE_OK = 0,   /* delivered */
    TASK_FIRE_FULL = 1, /* the target is full: the full policy applies */
};

#define TASK_ID_MAX ((UINT64_C(1) << 48) - 1)  /* ids fit 48 bits (and JSON's 2^53) */
#define TASK_PERIOD_MAX_MS (UINT64_C(1) << 40) /* longest every_ms, about 35 years */
#define TASK_JITTER_MAX_MS 86400000u           /* longest jitter: one day */

/* What to create. Unused fields must be 0. */
struct task_spec {
    int kind;           /* enum task_kind */
    int64_t at;         /* ONCE: wheel ms of the tick; AT: unix ms of the tick;
                           EVERY: wheel ms of the first tick, 0 = now + every_ms; CRON: unused */
    uint64_t every_ms;  /* EVERY: the period, 1..TASK_PERIOD_MAX_MS */
    struct cron cron;   /* CRON: the schedule (copied) */
    uint32_t count;     /* EVERY, CRON: complete after this many ticks; 0 = never */
    uint32_t jitter_ms; /* EVERY, CRON: fire each tick 0..jitter_ms late, at random
                           (< every_ms, <= TASK_JITTER_MAX_MS); spreads a herd */
    int full_policy;    /* enum task_full_policy */
    int missed_policy;  /* enum task_missed_policy */
    const void *action; /* the caller's blob (queue name + payload), copied */
    size_t action_len;  /* its length, <= max_action */
};

/* A snapshot of a task, for GET. */
struct task_info {
    uint64_t id;             /* never reused */
    int kind;                /* enum task_kind */
    int state;               /* enum task_state */
    uint32_t fires;          /* ticks delivered (saturates at 2^32-1, like skips) */
    uint32_t skips;          /* ticks skipped: full, transient errors, missed */
    uint32_t count;          /* the limit on fires + skips, 0 = none */
    int last_error;          /* the last fire() result other than OK; 0 = none yet */
    int retrying;            /* 1 while a full target is being retried (RETRY) */
    int64_t tick;            /* SCHEDULED: nominal time of the next tick (wheel ms) */
    int64_t fire_at;         /* SCHEDULED: when it will actually fire (jitter, retry), wheel ms */
    int64_t finished;        /* final states: when it finished (wheel ms) */
    uint64_t every_ms;       /* EVERY: the period */
    uint32_t jitter_ms;      /* EVERY, CRON: the jitter */
    const struct cron *cron; /* CRON: the schedule (engine memory), else NULL */
    int full_policy;         /* enum task_full_policy */
    int missed_policy;       /* enum task_missed_policy */
    const void *action;      /* the action blob (engine memory, valid as the task) */
    size_t action_len;       /* its length */
};

/* ---- events (durability) ------------------------------------------------ */

enum task_event_type {
    TASK_EV_CREATE, /* created: id, tick (the first), spec (everything else) */
    TASK_EV_FIRE,   /* a tick was handled (fired or skipped): id, tick, fires, skips, last_error */
    TASK_EV_CANCEL, /* cancelled: id, now, fires, skips, last_error */
    TASK_EV_COMPLETE, /* completed: id, now, fires, skips, last_error */
    TASK_EV_FAIL,     /* failed: id, now, fires, skips, last_error */
    TASK_EV_REMOVE,   /* a finished task was removed after keep_ms: id */
};

/* One journaled change. Plain data: pointers are valid during on_event only. */
struct task_event {
    int type;                     /* enum task_event_type */
    uint64_t id;                  /* the task */
    int64_t now;                  /* wheel ms of the change */
    int64_t tick;                 /* CREATE: first tick; FIRE: the tick handled (wheel ms) */
    uint32_t fires;               /* counters after the change */
    uint32_t skips;               /* (FIRE and the final events) */
    int last_error;               /* likewise */
    const struct task_spec *spec; /* CREATE: kind, schedule, policies, action (at unused) */
};

typedef void (*task_event_fn)(void *ctx, const struct task_event *ev);

/*
 * Carry out the action of t for the tick at `tick` (nominal, wheel ms;
 * the wheel's now is the actual time). Returns TASK_FIRE_OK,
 * TASK_FIRE_FULL, a negative permanent error or a transient error > 1.
 * The action is task_action(t).
 */
typedef int (*task_fire_fn)(void *ctx, struct task *t, int64_t tick);

/* ---- engine ------------------------------------------------------------- */

#define TASK_KEEP_FOREVER UINT64_MAX /* keep_ms: never remove finished tasks */

struct task_engine_config {
    task_fire_fn fire;        /* required: carries out an action */
    void *fire_ctx;           /* first argument of fire */
    task_event_fn on_event;   /* durability hook, or NULL */
    void *event_ctx;          /* first argument of on_event */
    size_t max_action;        /* largest action blob accepted, bytes */
    size_t max_tasks;         /* most scheduled tasks (finished ones are bounded by memory
                                 only); 0 = no limit */
    size_t mem_limit;         /* bytes task_cost() may charge in all; 0 = none; ignored
                                 with a budget */
    struct mem_budget *budget; /* a budget shared with others (the queues), which rules,
                                  or NULL for the engine's own; it must outlive the engine */
    /* Once a task finished, how many leading bytes of its action are worth
     * keeping (for GET); the rest (a payload) is freed at the next advance.
     * Called with fire_ctx; NULL keeps the whole action. */
    size_t (*action_keep)(void *ctx, const void *action, size_t len);
    uint64_t keep_ms;         /* how long a finished task stays visible */
    uint64_t retry_min_ms;    /* RETRY: first and smallest backoff */
    uint64_t retry_max_ms;    /* RETRY: largest backoff */
    uint64_t once_retry_ms;   /* RETRY: how long a one-shot retries its tick */
    uint64_t wall_slack_ms;   /* offset moves up to this are ignored */
    int64_t wall_minus_wheel; /* initial unix ms - wheel ms */
    uint64_t seed;            /* seeds the jitter generator (tests fix it) */
    void *(*alloc)(void *ctx, size_t n); /* malloc replacement (fault injection), or NULL */
    void (*dealloc)(void *ctx, void *p); /* its free; set both or neither */
    void *alloc_ctx;                     /* first argument of alloc and dealloc */
};

/* Defaults: max_action 64 KiB, max_tasks 0, keep 1 h, retry 10 ms..1 s,
 * one-shot retry 60 s, wall slack 1 s, offset 0, seed 1; no hooks. */
void task_engine_config_default(struct task_engine_config *cfg);

struct task_engine_stats {
    size_t tasks;             /* tasks held, finished ones included */
    size_t mem_used;          /* bytes charged (task_cost of each task) */
    size_t by_state[4];       /* indexed by enum task_state */
    size_t waiters;           /* waiters linked */
    uint64_t total_created;   /* tasks created (replay included) */
    uint64_t total_fires;     /* ticks delivered since start (not durable) */
    uint64_t total_skips;     /* ticks skipped since start */
    uint64_t total_retries;   /* RETRY re-attempts since start */
    uint64_t total_removed;   /* finished tasks removed */
    uint64_t next_id;         /* id the next create gets */
    int64_t wall_minus_wheel; /* the offset in use */
};

/* A new engine on wheel; NULL when out of memory or cfg->fire is NULL. */
struct task_engine *task_engine_new(struct timer_wheel *wheel,
                                    const struct task_engine_config *cfg);

/* Wake every waiter with TASK_ERR_DELETED (their wake() must not call the
 * engine), cancel every timer, free every task and the engine. NULL is a
 * no-op. */
void task_engine_free(struct task_engine *e);

void task_engine_stats(const struct task_engine *e, struct task_engine_stats *st);

/* Change max_tasks and the own budget's mem_limit (config reload); tasks
 * held are kept. */
void task_engine_set_limits(struct task_engine *e, size_t max_tasks, size_t mem_limit);

/*
 * What a task is charged against the memory limit: its chunk (72-byte
 * header, the schedule, the action, malloc's 8 bytes, rounded up to 16)
 * plus TASK_INDEX_COST for its share of the id index (at most 16 B while
 * tasks are only added, see "Memory per task"). A finished task's action
 * is cut to what action_keep() says at the next advance, and the charge
 * with it: cancelling a timer gives its payload's memory back.
 */
#define TASK_INDEX_COST 16
size_t task_cost(int kind, size_t action_len);

/* Set unix ms - wheel ms. A move beyond wall_slack_ms from the offset in
 * use re-plans every scheduled AT and CRON task (O(tasks)): their pending
 * tick keeps its wall-clock time. */
void task_engine_set_wall_offset(struct task_engine *e, int64_t wall_minus_wheel);

/* Make the next create use id (a snapshot restoring the counter); below
 * the current next id, or above TASK_ID_MAX, is TASK_ERR_INVALID. */
int task_engine_set_next_id(struct task_engine *e, uint64_t id);

/*
 * Apply a recorded event without reporting it; before serving and before
 * task_engine_resume(). CREATE takes the event's id (bumping the id
 * counter past it), its fires, skips and last_error (a compaction snapshot
 * writes them there; a live CREATE has zeros) and ignores max_tasks. FIRE, CANCEL, COMPLETE and FAIL
 * set the state and counters. Errors: INVALID, EXISTS, NOTFOUND, NOMEM.
 */
int task_engine_replay(struct task_engine *e, const struct task_event *ev);

/*
 * After replay: arm every scheduled task from its pending tick, applying
 * its missed policy to ticks already past (reported as events: FIRE for
 * skipped ticks, COMPLETE when that reaches count), and arm the removal of
 * finished tasks. Returns how many scheduled tasks it armed.
 */
size_t task_engine_resume(struct task_engine *e);

/* ---- tasks -------------------------------------------------------------- */

/* NULL if spec is valid for e, else a message naming the field, e.g.
 * "jitter: must be less than the period". */
const char *task_spec_error(const struct task_engine *e, const struct task_spec *spec);

/* Create and arm a task; *out (may be NULL) gets it. Errors: INVALID,
 * TOOBIG, LIMIT (max_tasks scheduled), MEMORY (the budget), NOMEM. Emits
 * CREATE. */
int task_create(struct task_engine *e, const struct task_spec *spec, struct task **out);

/* The task with this id, or NULL (never created, or removed). */
struct task *task_find(const struct task_engine *e, uint64_t id);

/* Up to max tasks with ids above after, in id order, into out; returns
 * how many. Paging: pass the last id returned as the next after. */
size_t task_list(const struct task_engine *e, uint64_t after, struct task **out, size_t max);

uint64_t task_id(const struct task *t);
int task_state(const struct task *t); /* enum task_state */
void task_info(const struct task *t, struct task_info *out);

/* The action blob; *len gets its length. */
const void *task_action(const struct task *t, size_t *len);

/*
 * asyncio's cancel(): 1 if the task was scheduled (it is cancelled now:
 * its timer is disarmed, its waiters are woken, CANCEL is emitted), 0 if
 * it had already finished (nothing changes). O(1).
 */
int task_cancel(struct task *t);

/* ---- awaiting ----------------------------------------------------------- */

struct task_waiter;

/*
 * Called once per TASK_WAIT, after the waiter is unlinked, with the final
 * state (enum task_state) or TASK_ERR_DELETED. w->task is still valid
 * during wake() except on TASK_ERR_DELETED. The waiter is idle again, so
 * it may be reused or freed.
 */
typedef void (*task_wake_fn)(struct task_waiter *w, int status);

/* Embedded in the caller's per-request state; see "Who owns what". */
struct task_waiter {
    /* set by the caller (task_waiter_init) */
    task_wake_fn wake; /* outcome callback */
    void *arg;         /* the caller's context */
    /* results, set by the engine */
    struct task *task; /* the task awaited */
    uint64_t id;       /* its id */
    int status;        /* the outcome: final state, or TASK_ERR_DELETED */
    /* engine-private */
    struct task_waiter *next, *prev; /* the task's waiters, then the engine's wake list */
    struct task_engine *e;           /* the engine (the task may link to us instead) */
    int state;                       /* idle, waiting, waking */
};

/* Zero w and set its callback and context. */
void task_waiter_init(struct task_waiter *w, task_wake_fn wake, void *arg);

/*
 * await t. TASK_OK: t has already finished, w->status is its state, no
 * wake() follows. TASK_WAIT: linked; wake() runs when t finishes. Errors:
 * INVALID (w is not idle). The caller arms its own timeout (?wait=S) and
 * calls task_waiter_cancel() when it passes.
 */
int task_await(struct task *t, struct task_waiter *w);

/* Stop waiting: O(1), wake() will not be called. No-op on an idle waiter. */
void task_waiter_cancel(struct task_waiter *w);

#endif
