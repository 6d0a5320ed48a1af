#include "journal/task_journal.h"

#include "core/buf.h"
#include "journal/journal.h"
#include "core/le.h"

#include <string.h>

#define BASE_SIZE (8 + 8 + 8 + 4 + 4 + 4)
#define CREATE_SIZE (1 + 8 + 8 + 4 + 4 + 2 + 1 + 1 + 4 + 4 + 1 + 1 + 4)
_Static_assert(BASE_SIZE + CREATE_SIZE == TJ_CREATE_OVERHEAD, "task_journal.h is out of date");

int tj_encode(struct buf *out, const struct task_event *ev, int64_t off) {
    const struct task_spec *sp = ev->type == TASK_EV_CREATE ? ev->spec : NULL;
    if (sp && sp->action_len > TJ_ACTION_MAX)
        return -1;
    size_t n = BASE_SIZE + (sp ? CREATE_SIZE + sp->action_len : 0);
    struct buf tmp = BUF_INIT;
    if (buf_reserve(&tmp, n) < 0)
        return -1;
    char *w = buf_start(&tmp);
    le_put(&w, ev->id, 8);
    le_put(&w, (uint64_t)(ev->now + off), 8);
    le_put(&w, (uint64_t)(ev->tick + off), 8);
    le_put(&w, ev->fires, 4);
    le_put(&w, ev->skips, 4);
    le_put(&w, (uint32_t)ev->last_error, 4);
    if (sp) {
        le_put(&w, (uint64_t)sp->kind, 1);
        le_put(&w, sp->every_ms, 8);
        le_put(&w, sp->cron.minutes, 8);
        le_put(&w, sp->cron.hours, 4);
        le_put(&w, sp->cron.mdays, 4);
        le_put(&w, sp->cron.months, 2);
        le_put(&w, sp->cron.wdays, 1);
        le_put(&w, sp->cron.flags, 1);
        le_put(&w, sp->count, 4);
        le_put(&w, sp->jitter_ms, 4);
        le_put(&w, (uint64_t)sp->full_policy, 1);
        le_put(&w, (uint64_t)sp->missed_policy, 1);
        le_put(&w, sp->action_len, 4);
        if (sp->action_len)
            memcpy(w, sp->action, sp->action_len);
    }
    int r = journal_encode(out, (uint8_t)(TJ_TYPE_BASE + ev->type), buf_start(&tmp), n);
    buf_free(&tmp);
    return r;
}

/* A time read from a record may be anything: the subtraction saturates
 * (found by tests/fuzz/fuzz_journal.c: signed overflow on a huge time). */
static int64_t wall_to_wheel(uint64_t t, int64_t off) {
    int64_t w;
    if (__builtin_sub_overflow((int64_t)t, off, &w))
        w = off > 0 ? INT64_MIN : INT64_MAX;
    return w;
}

int tj_decode(uint8_t type, const char *payload, size_t len, int64_t off, struct task_event *ev,
              struct task_spec *spec) {
    if (type < TJ_TYPE_BASE || type > TJ_TYPE_LAST)
        return -1;
    struct le_reader r = le_reader(payload, len);
    memset(ev, 0, sizeof *ev);
    ev->type = type - TJ_TYPE_BASE;
    ev->id = le_get(&r, 8);
    ev->now = wall_to_wheel(le_get(&r, 8), off);
    ev->tick = wall_to_wheel(le_get(&r, 8), off);
    ev->fires = (uint32_t)le_get(&r, 4);
    ev->skips = (uint32_t)le_get(&r, 4);
    ev->last_error = (int32_t)(uint32_t)le_get(&r, 4);
    if (ev->type == TASK_EV_CREATE) {
        memset(spec, 0, sizeof *spec);
        spec->kind = (int)le_get(&r, 1);
        spec->every_ms = le_get(&r, 8);
        spec->cron.minutes = le_get(&r, 8);
        spec->cron.hours = (uint32_t)le_get(&r, 4);
        spec->cron.mdays = (uint32_t)le_get(&r, 4);
        spec->cron.months = (uint16_t)le_get(&r, 2);
        spec->cron.wdays = (uint8_t)le_get(&r, 1);
        spec->cron.flags = (uint8_t)le_get(&r, 1);
        spec->count = (uint32_t)le_get(&r, 4);
        spec->jitter_ms = (uint32_t)le_get(&r, 4);
        spec->full_policy = (int)le_get(&r, 1);
        spec->missed_policy = (int)le_get(&r, 1);
        spec->action_len = (size_t)le_get(&r, 4);
        if (!r.bad && (size_t)(r.end - r.p) >= spec->action_len) {
            spec->action = r.p;
            r.p += spec->action_len;
        } else {
            r.bad = 1;
        }
        ev->spec = spec;
    }
    return r.bad || r.p != r.end ? -1 : 0;
}
