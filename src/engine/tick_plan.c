#include "engine/tick_plan.h"

#include "engine/task.h"

static int one_shot(int kind) {
    return kind == TASK_ONCE || kind == TASK_AT;
}

int64_t tick_plan_next(const struct tick_sched *s, int64_t tick) {
    if (s->kind == TASK_EVERY && s->every_ms)
        return tick + (int64_t)s->every_ms;
    if (s->kind == TASK_CRON && s->cron) {
        int64_t n = cron_next(s->cron, tick);
        return n < 0 ? TICK_PLAN_NONE : n;
    }
    return TICK_PLAN_NONE;
}

/* Ticks from c->tick to c->now (k >= 1, within count); *last gets the latest. */
static uint64_t count_due(const struct tick_sched *s, const struct tick_claim *c, int64_t *last) {
    uint64_t done = (uint64_t)c->fires + c->skips;
    uint64_t room = s->count ? (s->count > done ? s->count - done : 1) : UINT64_MAX;
    uint64_t k = 1;
    *last = c->tick;
    if (s->kind == TASK_EVERY && s->every_ms && c->now > c->tick) {
        k = (uint64_t)(c->now - c->tick) / s->every_ms + 1;
        k = k < room ? k : room;
        *last = c->tick + (int64_t)((k - 1) * s->every_ms);
    } else if (s->kind == TASK_CRON) {
        for (int64_t n; k < room && k < TICK_PLAN_SCAN; k++) {
            if ((n = tick_plan_next(s, *last)) == TICK_PLAN_NONE || n > c->now)
                break;
            *last = n;
        }
    }
    return k;
}

void tick_plan_claim(const struct tick_sched *s, const struct tick_claim *c, int64_t grace_ms,
                     struct tick_plan *out) {
    int64_t last;
    uint64_t k = count_due(s, c, &last);
    uint32_t ks = k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
    int missed = !c->retrying && (one_shot(s->kind) ? c->now - c->tick > grace_ms : k > 1);
    *out = (struct tick_plan){.put = 1, .tick = c->tick, .skips = 0, .next = TICK_PLAN_NONE};
    if (!missed)
        return;
    if (c->missed_policy == TASK_MISSED_FIRE_ONCE) {
        out->tick = last;
        out->skips = ks - 1;
        return;
    }
    out->put = 0;
    out->skips = ks;
    uint64_t done = (uint64_t)c->fires + c->skips + k;
    int64_t next = one_shot(s->kind) || (s->count && done >= s->count) ? TICK_PLAN_NONE
                                                                       : tick_plan_next(s, last);
    if (next != TICK_PLAN_NONE && next <= c->now) /* the cron scan stopped short */
        next = tick_plan_next(s, c->now);
    out->next = next;
}

int64_t tick_plan_after(const struct tick_sched *s, int64_t tick, uint64_t handled) {
    if (one_shot(s->kind) || (s->count && handled >= s->count))
        return TICK_PLAN_NONE;
    return tick_plan_next(s, tick);
}

uint64_t tick_plan_retry(const struct tick_sched *s, int64_t tick, int64_t now, uint64_t min_ms,
                         uint64_t max_ms, uint64_t once_ms) {
    int64_t limit = one_shot(s->kind) ? TICK_PLAN_NONE : tick_plan_next(s, tick);
    if (limit == TICK_PLAN_NONE)
        limit = tick + (int64_t)once_ms;
    uint64_t gap = now > tick ? (uint64_t)(now - tick) : 0;
    gap = gap < min_ms ? min_ms : gap;
    gap = gap > max_ms ? max_ms : gap;
    return now + (int64_t)gap < limit ? gap : 0;
}
