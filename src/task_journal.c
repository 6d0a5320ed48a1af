#include "task_journal.h"

#include "buf.h"
#include "journal.h"

#include <string.h>

struct writer {
    char *p;
};

static void w_n(struct writer *w, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        *w->p++ = (char)(v >> (8 * i));
}

struct reader {
    const unsigned char *p, *end;
    int bad;
};

static uint64_t r_n(struct reader *r, int bytes) {
    if (r->end - r->p < bytes) {
        r->bad = 1;
        r->p = r->end;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    return v;
}

#define BASE_SIZE (8 + 8 + 8 + 4 + 4 + 4)
#define CREATE_SIZE (1 + 8 + 8 + 4 + 4 + 2 + 1 + 1 + 4 + 4 + 1 + 1 + 4)

int tj_encode(struct buf *out, const struct task_event *ev, int64_t off) {
    const struct task_spec *sp = ev->type == TASK_EV_CREATE ? ev->spec : NULL;
    size_t n = BASE_SIZE + (sp ? CREATE_SIZE + sp->action_len : 0);
    struct buf tmp = BUF_INIT;
    if (buf_reserve(&tmp, n) < 0)
        return -1;
    struct writer w = {buf_start(&tmp)};
    w_n(&w, ev->id, 8);
    w_n(&w, (uint64_t)(ev->now + off), 8);
    w_n(&w, (uint64_t)(ev->tick + off), 8);
    w_n(&w, ev->fires, 4);
    w_n(&w, ev->skips, 4);
    w_n(&w, (uint32_t)ev->last_error, 4);
    if (sp) {
        w_n(&w, (uint64_t)sp->kind, 1);
        w_n(&w, sp->every_ms, 8);
        w_n(&w, sp->cron.minutes, 8);
        w_n(&w, sp->cron.hours, 4);
        w_n(&w, sp->cron.mdays, 4);
        w_n(&w, sp->cron.months, 2);
        w_n(&w, sp->cron.wdays, 1);
        w_n(&w, sp->cron.flags, 1);
        w_n(&w, sp->count, 4);
        w_n(&w, sp->jitter_ms, 4);
        w_n(&w, (uint64_t)sp->full_policy, 1);
        w_n(&w, (uint64_t)sp->missed_policy, 1);
        w_n(&w, sp->action_len, 4);
        if (sp->action_len)
            memcpy(w.p, sp->action, sp->action_len);
    }
    int r = journal_encode(out, (uint8_t)(TJ_TYPE_BASE + ev->type), buf_start(&tmp), n);
    buf_free(&tmp);
    return r;
}

int tj_decode(uint8_t type, const char *payload, size_t len, int64_t off, struct task_event *ev,
              struct task_spec *spec) {
    if (type < TJ_TYPE_BASE || type > TJ_TYPE_LAST)
        return -1;
    struct reader r = {(const unsigned char *)payload, (const unsigned char *)payload + len, 0};
    memset(ev, 0, sizeof *ev);
    ev->type = type - TJ_TYPE_BASE;
    ev->id = r_n(&r, 8);
    ev->now = (int64_t)r_n(&r, 8) - off;
    ev->tick = (int64_t)r_n(&r, 8) - off;
    ev->fires = (uint32_t)r_n(&r, 4);
    ev->skips = (uint32_t)r_n(&r, 4);
    ev->last_error = (int32_t)(uint32_t)r_n(&r, 4);
    if (ev->type == TASK_EV_CREATE) {
        memset(spec, 0, sizeof *spec);
        spec->kind = (int)r_n(&r, 1);
        spec->every_ms = r_n(&r, 8);
        spec->cron.minutes = r_n(&r, 8);
        spec->cron.hours = (uint32_t)r_n(&r, 4);
        spec->cron.mdays = (uint32_t)r_n(&r, 4);
        spec->cron.months = (uint16_t)r_n(&r, 2);
        spec->cron.wdays = (uint8_t)r_n(&r, 1);
        spec->cron.flags = (uint8_t)r_n(&r, 1);
        spec->count = (uint32_t)r_n(&r, 4);
        spec->jitter_ms = (uint32_t)r_n(&r, 4);
        spec->full_policy = (int)r_n(&r, 1);
        spec->missed_policy = (int)r_n(&r, 1);
        spec->action_len = (size_t)r_n(&r, 4);
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
