/*
 * task_replay: the timer-task engine rebuilt from the journal's events,
 * then resumed (each task armed for its next tick or its removal).
 */
#include "engine/task_int.h"

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
        struct task *t = tk_new(e, s, ev->id, ev->tick);
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
        tk_move_state(e, t,
                   ev->type == TASK_EV_CANCEL     ? TASK_CANCELLED
                   : ev->type == TASK_EV_COMPLETE ? TASK_COMPLETED
                                                  : TASK_FAILED);
        set_flag(t, F_RETRYING | F_HANDLED, 0);
        t->tick = ev->now;
        break;
    case TASK_EV_REMOVE:
        e->st.total_removed++;
        tk_destroy(e, t);
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
    tk_op_begin(e);
    /* Resuming creates and removes nothing, so the index stays put. */
    for (size_t i = 0; i < e->n; i++) {
        if (e->slots[i] & 1)
            continue;
        struct task *t = (struct task *)e->slots[i];
        if (timer_pending(&t->timer))
            continue;
        if (tstate(t) != TASK_SCHEDULED) {
            tk_arm_finished(e, t);
            continue;
        }
        int64_t tick = t->tick;
        if (t->word & F_HANDLED) {
            set_flag(t, F_HANDLED, 0);
            tick = done(t) ? TICK_NONE : tk_next_tick(e, t, tick);
        }
        tk_plan(e, t, tick);
        armed += tstate(t) == TASK_SCHEDULED;
    }
    tk_op_end(e);
    return armed;
}
