/*
 * The timer-task engine; task.h is the contract. This file: a task's life
 * (firing, retries, finishing, removal) and the engine; task_index.c the id
 * index, task_ops.c creating, reading, cancelling and awaiting tasks,
 * task_replay.c the journal's replay; task_int.h what they share.
 *
 * A task is one allocation: struct task, its schedule, its action blob.
 * Its embedded wheel timer does every job in turn: the next firing, a
 * RETRY re-attempt, and once the task has finished, its removal after
 * keep_ms. So one callback (on_timer) drives the whole life, and a task
 * costs no second timer.
 *
 * Every public entry (and on_timer) is bracketed by op_begin/op_end like
 * queue.c: finishing a task moves its waiters to the engine's wake list,
 * and the outermost op_end() runs their wake()s, so wake() never sees a
 * half-done change.
 */
#include "engine/task_int.h"

size_t task_cost(int kind, size_t action_len) {
    size_t chunk = (sizeof(struct task) + sched_size(kind) + action_len + 8 + 15) & ~(size_t)15;
    return chunk + TASK_INDEX_COST;
}

/* ---- wakes -------------------------------------------------------------- */

void tk_op_begin(struct task_engine *e) {
    e->depth++;
}

void tk_op_end(struct task_engine *e) {
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
static void tk_wake_waiters(struct task_engine *e, struct task *t, int status) {
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

void tk_move_state(struct task_engine *e, struct task *t, int state) {
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


/* Bytes of a finished task's action worth keeping, if fewer than it has. */
static int trimmable(const struct task_engine *e, const struct task *t, size_t *keep) {
    if (!e->cfg.action_keep || tstate(t) == TASK_SCHEDULED)
        return 0;
    size_t n = t->len;
    const void *a = (const char *)(t + 1) + sched_size(tkind(t));
    *keep = e->cfg.action_keep(e->cfg.fire_ctx, a, n);
    return *keep < n;
}

/* A finished task: trim its action at the next advance (see tk_on_timer), or
 * arm its removal. */
void tk_arm_finished(struct task_engine *e, struct task *t) {
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
    timer_init(&n->timer, tk_on_timer);
    n->link = (uintptr_t)e; /* finished: its waiters were woken */
    n->len = (uint32_t)keep;
    e->slots[tk_lower_bound(e, tid(t))] = (uintptr_t)n;
    mem_release(e, task_cost(tkind(t), t->len) - task_cost(tkind(t), keep));
    e_free(e, t);
    return n;
}

/* Scheduled -> final: disarm, report, wake the waiters, arm the removal. */
void tk_finish(struct task_engine *e, struct task *t, int state, int evtype) {
    timer_cancel(e->wheel, &t->timer);
    tk_move_state(e, t, state);
    set_flag(t, F_RETRYING | F_HANDLED, 0);
    t->tick = now_of(e);
    emit(e, t, evtype, 0, NULL);
    tk_wake_waiters(e, t, state);
    tk_arm_finished(e, t);
}

void tk_destroy(struct task_engine *e, struct task *t) {
    timer_cancel(e->wheel, &t->timer);
    tk_index_remove(e, t);
    e->st.tasks--;
    e->st.by_state[tstate(t)]--;
    mem_release(e, task_cost(tkind(t), t->len));
    e_free(e, t);
}

/* The tick after tick, or TICK_NONE. Cron ticks are computed on the wall clock. */
int64_t tk_next_tick(const struct task_engine *e, const struct task *t, int64_t tick) {
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
void tk_arm(struct task_engine *e, struct task *t, int64_t tick) {
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
            if ((n = tk_next_tick(e, t, *last)) == TICK_NONE || n > now)
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
void tk_plan(struct task_engine *e, struct task *t, int64_t tick) {
    int64_t now = now_of(e);
    if (tick == TICK_NONE || done(t)) {
        tk_finish(e, t, TASK_COMPLETED, TASK_EV_COMPLETE);
        return;
    }
    if (tick > now) {
        tk_arm(e, t, tick);
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
    int64_t next = done(t) ? TICK_NONE : tk_next_tick(e, t, last);
    if (next != TICK_NONE && next <= now) /* the cron scan stopped short */
        next = tk_next_tick(e, t, now);
    if (next == TICK_NONE)
        tk_finish(e, t, TASK_COMPLETED, TASK_EV_COMPLETE);
    else
        tk_arm(e, t, next);
}

/* The pending tick is handled: on to the next one. */
static void advance(struct task_engine *e, struct task *t) {
    set_flag(t, F_RETRYING, 0);
    tk_plan(e, t, done(t) ? TICK_NONE : tk_next_tick(e, t, t->tick));
}

/*
 * RETRY: arm another attempt at tick if one fits before the next tick (a
 * one-shot: before once_retry_ms). The gap is the time since the tick, so
 * gaps double, within [retry_min, retry_max]. Returns 1 if armed.
 */
static int retry(struct task_engine *e, struct task *t, int64_t tick, int64_t now) {
    int64_t limit = one_shot(tkind(t)) ? TICK_NONE : tk_next_tick(e, t, tick);
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
            tk_finish(e, t, TASK_FAILED, TASK_EV_FAIL);
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

void tk_on_timer(struct timer *tm) {
    struct task *t = (struct task *)(void *)tm; /* the timer is the first member */
    struct task_engine *e = engine_of(t);
    tk_op_begin(e);
    size_t keep;
    if (tstate(t) == TASK_SCHEDULED) {
        do_tick(e, t);
    } else if (!removal_due(e, t) && trimmable(e, t, &keep)) {
        arm_removal(e, trim(e, t, keep)); /* finished moments ago: drop the payload */
    } else { /* finished and kept for keep_ms: now it goes */
        e->st.total_removed++;
        emit(e, t, TASK_EV_REMOVE, 0, NULL);
        tk_destroy(e, t);
    }
    tk_op_end(e);
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
    tk_op_begin(e);
    for (size_t i = 0; i < e->n; i++)
        if (!(e->slots[i] & 1))
            tk_wake_waiters(e, (struct task *)e->slots[i], TASK_ERR_DELETED);
    tk_op_end(e);
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
