/*
 * tsvc_redis_list: GET /timers with [store] backend = redis: every shard's
 * first page (aw_timer_list), merged by id (tsvc_redis.c has the other
 * operations).
 */
#include "svc/tsvc_redis.h"

#include "core/buf.h"
#include "svc/qsvc_redis.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- list: every shard's first page, merged by id ---------------------------------- */

static int by_id(const void *a, const void *b) {
    uint64_t x = ((const struct tlisted *)a)->t.id, y = ((const struct tlisted *)b)->t.id;
    return x < y ? -1 : x > y;
}

/* Keep the first max items by id, their strings only: a list holds at most 2 x max
 * timers whatever the number of shards. 0, or -1 out of memory. */
static int list_trim(struct trop *op) {
    if (op->n > 1)
        qsort(op->items, op->n, sizeof *op->items, by_id);
    if (op->n > op->max)
        op->n = op->max;
    struct buf kept = BUF_INIT;
    const char *base = buf_start(&op->strs);
    for (size_t i = 0; i < op->n; i++) {
        struct tlisted *it = &op->items[i];
        size_t q = kept.len;
        if (buf_append(&kept, base + it->qoff, it->t.queue_len) ||
            buf_append(&kept, base + it->coff, it->t.cron_len)) {
            buf_free(&kept);
            return -1;
        }
        it->qoff = q;
        it->coff = q + it->t.queue_len;
    }
    buf_free(&op->strs);
    op->strs = kept;
    return 0;
}

static void list_finish(struct trop *op) {
    size_t k = op->n;
    const char *base = buf_start(&op->strs);
    for (size_t i = 0; i < k; i++) {
        op->out[i] = op->items[i].t;
        op->out[i].queue = base + op->items[i].qoff;
        if (op->out[i].cron)
            op->out[i].cron = base + op->items[i].coff;
    }
    op->call->nlisted = k;
    op->call->next_after = k == op->max && k ? op->out[k - 1].id : 0;
    trop_complete(op, TSVC_OK);
}

static void on_listed(void *arg, redisReply *r, const char *why) {
    struct trop *op = arg;
    op->inflight--;
    if (op->call && !op->failed) {
        if (trop_bad_reply(op, r, why)) {
            op->failed = 1;
        } else {
            size_t n = (size_t)rsvc_ival(r, 1);
            for (size_t i = 0; i < n && i < op->max && 2 + (i + 1) * TVIEW <= r->elements; i++) {
                struct tlisted *it = &op->items[op->n];
                trop_timer_of(r, 2 + i * TVIEW, &it->t, NULL);
                it->qoff = op->strs.len;
                it->coff = op->strs.len + it->t.queue_len;
                if (buf_append(&op->strs, it->t.queue, it->t.queue_len) ||
                    buf_append(&op->strs, it->t.cron ? it->t.cron : "", it->t.cron_len)) {
                    op->failed = 1;
                    break;
                }
                op->n++;
            }
            if (op->failed || list_trim(op) < 0) {
                op->failed = 1;
                trop_fail(op, TSVC_NOMEM, "out of memory");
            } else if (op->inflight == 0) {
                list_finish(op);
            }
        }
    }
    trop_maybe_free(op);
}

int trsvc_list(struct tsvc *base, struct tsvc_call *call, uint64_t after,
                      struct tsvc_timer *out, size_t max) {
    struct trsvc *svc = trsvc_of(base);
    call->svc = base;
    if (trop_refuse(svc, call) != TSVC_OK)
        return call->status;
    struct trop *op = trop_new(svc, call, OP_LIST, 0);
    if (op && max && !(op->items = calloc(2 * max, sizeof *op->items))) {
        call->pend = NULL;
        free(op);
        op = NULL;
    }
    if (!op) {
        snprintf(call->why, sizeof call->why, "out of memory");
        return call->status = TSVC_NOMEM;
    }
    op->after = after, op->max = max, op->out = out;
    if (max == 0) {
        call->pend = NULL;
        op->call = NULL;
        trop_maybe_free(op);
        call->nlisted = 0;
        call->next_after = 0;
        return call->status = TSVC_OK;
    }
    char av[24], mv[24];
    snprintf(av, sizeof av, "%" PRIu64, after);
    snprintf(mv, sizeof mv, "%zu", max);
    const char *args[] = {av, mv};
    for (unsigned k = 0; k < TRSVC_SHARDS; k++) {
        if (trsvc_fcall(svc, "aw_timer_list", k, 2, args, NULL, on_listed, op) < 0) {
            if (op->inflight == 0)
                return trop_started(op, -1);
            op->failed = 1;
            trop_unavailable(op, NULL);
            break;
        }
        op->inflight++;
    }
    return TSVC_PENDING;
}
