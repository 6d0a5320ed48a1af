/*
 * task_ops: the timer-task engine's tasks: checking a spec, creating,
 * reading, cancelling and awaiting one (task.c has their life).
 */
#include "engine/task_int.h"

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
struct task *tk_new(struct task_engine *e, const struct task_spec *s, uint64_t id,
                             int64_t tick) {
    size_t ss = sched_size(s->kind);
    struct task *t = e_alloc(e, sizeof *t + ss + s->action_len);
    if (!t)
        return NULL;
    timer_init(&t->timer, tk_on_timer);
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
    if (tk_index_insert(e, t) < 0) {
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
    struct task *t = tk_new(e, s, e->next_id, tick);
    if (!t)
        return TASK_ERR_NOMEM;
    e->next_id++;
    emit(e, t, TASK_EV_CREATE, tick, s);
    tk_arm(e, t, tick); /* a tick already past fires on the next advance */
    if (out)
        *out = t;
    return TASK_OK;
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
    tk_op_begin(e);
    tk_finish(e, t, TASK_CANCELLED, TASK_EV_CANCEL);
    tk_op_end(e);
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
