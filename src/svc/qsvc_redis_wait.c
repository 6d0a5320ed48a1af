/*
 * qsvc_redis_wait: blocking waits of the Redis backend, held in this
 * daemon. A waiting reserve, put or join sits in its queue's watch (one
 * per queue with waiters here) in arrival order. Nothing polls per
 * waiter: the library publishes "KIND N QUEUE" on one channel, which
 * this node's one subscriber connection hears, and the watch re-checks
 * that many waiters (an FCALL each): r N wakes N getters, s N wakes N
 * putters, j wakes the joiners, z (shutdown) and x (deleted) wake all,
 * t N (a delayed job) arms the watch's due timer. A getter that finds
 * nothing learns from Redis when the next delayed job or lease falls due
 * and the watch re-checks then. A wake that lands while a check is in
 * flight makes that waiter check again, so no notification is lost
 * between a check and its answer; a coarse safety timer (RSVC_SAFETY_MS)
 * re-checks the first waiter of each kind, and a reconnect re-checks all.
 * Across nodes the order of waiters is not global: each node serves its
 * own in arrival order.
 */
#include "svc/qsvc_redis.h"

#include "net/server.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct rwatch *watch_find(struct rsvc *svc, const char *q, size_t len) {
    struct list *n, *tmp;
    list_for_each_safe(n, tmp, &svc->watches) {
        struct rwatch *w = container_of(n, struct rwatch, node);
        if (w->len == len && memcmp(w->name, q, len) == 0)
            return w;
    }
    return NULL;
}

static void watch_free_if_empty(struct rwatch *w) {
    if (!list_empty(&w->getters) || !list_empty(&w->putters) || !list_empty(&w->joiners))
        return;
    timer_cancel(&w->svc->srv->wheel, &w->due_t);
    list_unlink(&w->node);
    free(w);
}

void rwait_recheck(struct rop *rop) {
    if (rop->inflight) {
        rop->recheck = 1;
        return;
    }
    rop->rechecked = 1;
    if (rop_send(rop) < 0)
        rop->recheck = 0; /* Redis is down: the reconnect re-checks every wait */
}

/* Wake up to n waiters of list (n SIZE_MAX: all). */
static void wake(struct list *l, size_t n) {
    struct list *it, *tmp;
    list_for_each_safe(it, tmp, l) {
        if (n == 0)
            break;
        rwait_recheck(container_of(it, struct rop, wnode));
        n--;
    }
}

static void on_due(struct timer *t) {
    struct rwatch *w = container_of(t, struct rwatch, due_t);
    wake(&w->getters, 1);
}

static void on_wait_timeout(struct timer *t) {
    struct rop *rop = container_of(t, struct rop, wait_t);
    rop_finish(rop, QSVC_ERR_TIMEOUT);
}

static void on_safety(struct timer *t) {
    struct rsvc *svc = container_of(t, struct rsvc, safety_t);
    struct list *n, *tmp;
    list_for_each_safe(n, tmp, &svc->watches) {
        struct rwatch *w = container_of(n, struct rwatch, node);
        wake(&w->getters, 1);
        wake(&w->putters, 1);
        wake(&w->joiners, 1);
    }
    if (!list_empty(&svc->watches))
        server_timer_in(svc->srv, &svc->safety_t, RSVC_SAFETY_MS);
}

void rwait_init(struct rsvc *svc) {
    timer_init(&svc->safety_t, on_safety);
}

int rwait_join(struct rop *rop) {
    struct rsvc *svc = rop->svc;
    struct rwatch *w = watch_find(svc, rop->qname, rop->qlen);
    if (!w) {
        if (!(w = calloc(1, sizeof *w)))
            return -1;
        w->svc = svc;
        list_init(&w->getters);
        list_init(&w->putters);
        list_init(&w->joiners);
        timer_init(&w->due_t, on_due);
        w->len = rop->qlen;
        memcpy(w->name, rop->qname, rop->qlen);
        list_push(&svc->watches, &w->node);
    }
    rop->watch = w;
    list_push(rop->kind == R_RESERVE                      ? &w->getters
              : rop->kind == R_PUT || rop->kind == R_BATCH ? &w->putters
                                                           : &w->joiners,
              &rop->wnode);
    timer_init(&rop->wait_t, on_wait_timeout);
    server_timer_in(svc->srv, &rop->wait_t, rop->wait_ms);
    if (!timer_pending(&svc->safety_t))
        server_timer_in(svc->srv, &svc->safety_t, RSVC_SAFETY_MS);
    return 0;
}

void rwait_leave(struct rop *rop) {
    struct rwatch *w = rop->watch;
    if (rop->rwaiting)
        rsvc_result_leave(rop); /* a result wait: in a bucket, not a watch */
    if (!w)
        return;
    rop->watch = NULL;
    list_unlink(&rop->wnode);
    timer_cancel(&w->svc->srv->wheel, &rop->wait_t);
    watch_free_if_empty(w);
}

/* Re-check a getter of w in ms (unless one is due sooner). */
static void watch_due(struct rwatch *w, uint64_t ms) {
    uint64_t at = w->svc->srv->wheel.now + ms + 1;
    if (!timer_pending(&w->due_t) || w->due_t.expire > at)
        server_timer_in(w->svc->srv, &w->due_t, ms + 1);
}

void rwait_idle(struct rop *rop, int64_t next_due_ms) {
    if (rop->watch && next_due_ms >= 0)
        watch_due(rop->watch, (uint64_t)next_due_ms);
}

/* Waking only sends checks (answers come later), so no watch goes away in here. */
void rwait_message(struct rsvc *svc, const char *msg, size_t len) {
    /* "KIND N QUEUE" */
    if (len < 5 || msg[1] != ' ')
        return;
    rsvc_result_message(svc, msg, len); /* o (a job finished) and x (deleted) */
    const char *p = msg + 2, *end = msg + len;
    uint64_t n = 0;
    while (p < end && *p >= '0' && *p <= '9' && n < UINT32_MAX)
        n = n * 10 + (uint64_t)(*p++ - '0');
    if (p >= end || *p != ' ')
        return;
    p++;
    struct rwatch *w = watch_find(svc, p, (size_t)(end - p));
    if (!w)
        return;
    switch (msg[0]) {
    case 'r': wake(&w->getters, n ? n : 1); break;
    case 's': wake(&w->putters, n ? n : 1); break;
    case 'j': wake(&w->joiners, SIZE_MAX); break;
    case 't': watch_due(w, n); break;
    case 'z':
    case 'x':
        wake(&w->getters, SIZE_MAX);
        wake(&w->putters, SIZE_MAX);
        wake(&w->joiners, SIZE_MAX);
        break;
    }
}

void rwait_wake_all(struct rsvc *svc) {
    struct list *n, *tmp;
    rsvc_result_wake_all(svc);
    list_for_each_safe(n, tmp, &svc->watches) {
        struct rwatch *w = container_of(n, struct rwatch, node);
        wake(&w->getters, SIZE_MAX);
        wake(&w->putters, SIZE_MAX);
        wake(&w->joiners, SIZE_MAX);
    }
}

/* One waiter at a time: finishing the last one of a watch frees it. */
void rwait_end_all(struct rsvc *svc, int st) {
    struct list *n;
    rsvc_result_end_all(svc, st);
    while ((n = list_first(&svc->watches))) {
        struct rwatch *w = container_of(n, struct rwatch, node);
        struct list *l = !list_empty(&w->getters)   ? &w->getters
                         : !list_empty(&w->putters) ? &w->putters
                                                    : &w->joiners;
        rop_finish(container_of(list_first(l), struct rop, wnode), st);
    }
}

void rwait_counts(struct rsvc *svc, const char *q, size_t qlen, struct queue_stats *st) {
    struct rwatch *w = watch_find(svc, q, qlen);
    st->getters = st->putters = st->joiners = 0;
    if (!w)
        return;
    struct list *n, *tmp;
    list_for_each_safe(n, tmp, &w->getters) st->getters++;
    list_for_each_safe(n, tmp, &w->putters) st->putters++;
    list_for_each_safe(n, tmp, &w->joiners) st->joiners++;
}
