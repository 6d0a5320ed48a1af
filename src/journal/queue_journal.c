#include "journal/queue_journal.h"

#include "core/buf.h"
#include "journal/journal.h"
#include "journal/records.h"
#include "core/le.h"

#include <string.h>

/* Wheel time -> wall time; 0 stays 0 (it means "now" / "none"). */
static uint64_t to_wall(uint64_t t, const struct qj_clock *clk) {
    return t ? (uint64_t)((int64_t)t + clk->wall_minus_wheel) : 0;
}

/* A time read from a record may be anything: the subtraction saturates
 * (found by tests/fuzz/fuzz_journal.c: signed overflow on a huge time). */
static uint64_t to_wheel(uint64_t t, const struct qj_clock *clk) {
    if (t == 0)
        return 0;
    int64_t w;
    if (__builtin_sub_overflow((int64_t)t, clk->wall_minus_wheel, &w))
        w = clk->wall_minus_wheel > 0 ? 1 : INT64_MAX;
    return w > 1 ? (uint64_t)w : 1;
}

#define FIXED_SIZE (8 + 8 + 4 + 8 + 1 + 1 + 8 + 8 + 4 + 4 + 8)

int qj_encode(struct buf *out, const struct queue_event *ev, const struct qj_clock *clk) {
    size_t qlen = ev->queue_len > 255 ? 255 : ev->queue_len;
    size_t klen = ev->key ? (ev->key_len > 255 ? 255 : ev->key_len) : 0;
    size_t plen = ev->type == QUEUE_EV_PUT || ev->type == QUEUE_EV_RESULT ? ev->len : 0;
    int ttl = ev->type == QUEUE_EV_CREATE || ev->type == QUEUE_EV_UPDATE;
    size_t n = 1 + qlen + FIXED_SIZE + 1 + klen + 4 + plen + (ttl ? 8 : 0);
    uint8_t type = (uint8_t)(ev->type + REC_QUEUE_FIRST);
    /* Straight into out: once per put and per ack (issue 19). */
    char *rec = journal_encode_begin(out, type, n);
    if (!rec)
        return -1;
    char *p = rec;
    le_put(&p, (uint8_t)qlen, 1);
    le_put_bytes(&p, ev->queue, qlen);
    le_put(&p, to_wall(ev->now, clk), 8);
    le_put(&p, ev->id, 8);
    le_put(&p, (uint32_t)ev->priority, 4);
    le_put(&p, to_wall(ev->visible_at, clk), 8);
    le_put(&p, (uint8_t)ev->immediate, 1);
    le_put(&p, (uint8_t)ev->reason, 1);
    le_put(&p, ev->settings.maxsize, 8);
    le_put(&p, ev->settings.lease_ms, 8);
    le_put(&p, ev->settings.max_attempts, 4);
    le_put(&p, ev->settings.max_payload, 4);
    le_put(&p, ev->settings.key_window_ms, 8);
    le_put(&p, (uint8_t)klen, 1);
    le_put_bytes(&p, ev->key, klen);
    le_put(&p, (uint32_t)plen, 4);
    le_put_bytes(&p, ev->payload, plen);
    if (ttl)
        le_put(&p, ev->settings.result_ttl_ms, 8);
    journal_encode_end(out, type, n);
    return 0;
}

int qj_decode(uint8_t type, const char *payload, size_t len, const struct qj_clock *clk,
              struct queue_event *ev) {
    if (type < REC_QUEUE_FIRST || type > REC_QUEUE_LAST)
        return -1;
    struct le_reader r = le_reader(payload, len);
    memset(ev, 0, sizeof *ev);
    ev->type = type - REC_QUEUE_FIRST;
    ev->queue_len = (size_t)le_get(&r, 1);
    ev->queue = le_get_bytes(&r, ev->queue_len);
    ev->now = to_wheel(le_get(&r, 8), clk);
    ev->id = le_get(&r, 8);
    ev->priority = (int32_t)(uint32_t)le_get(&r, 4);
    ev->visible_at = to_wheel(le_get(&r, 8), clk);
    ev->immediate = (int)le_get(&r, 1);
    ev->reason = (int)le_get(&r, 1);
    ev->settings.maxsize = le_get(&r, 8);
    ev->settings.lease_ms = le_get(&r, 8);
    ev->settings.max_attempts = (uint32_t)le_get(&r, 4);
    ev->settings.max_payload = (uint32_t)le_get(&r, 4);
    ev->settings.key_window_ms = le_get(&r, 8);
    ev->key_len = (size_t)le_get(&r, 1);
    ev->key = ev->key_len ? le_get_bytes(&r, ev->key_len) : NULL;
    ev->len = (size_t)le_get(&r, 4);
    ev->payload = le_get_bytes(&r, ev->len);
    /* CREATE and UPDATE end with the result ttl since results came; before, the default. */
    ev->settings.result_ttl_ms = 300000;
    if ((ev->type == QUEUE_EV_CREATE || ev->type == QUEUE_EV_UPDATE) && !r.bad && r.p != r.end)
        ev->settings.result_ttl_ms = le_get(&r, 8);
    if (r.bad || r.p != r.end)
        return -1;
    return 0;
}
