/*
 * qsvc_local: the local queue backend's state, shared by its two files:
 * qsvc_local.c (the operations and their waits) and qsvc_local_svc.c (the
 * journal glue, replay, snapshot, the reaper, and the service's life).
 * Private to svc/.
 */
#ifndef AWAITD_QSVC_LOCAL_H
#define AWAITD_QSVC_LOCAL_H

#include "core/list.h"
#include "journal/queue_journal.h"
#include "svc/qsvc.h"

#include <stdint.h>

/* Jobs the reaper handles per loop turn (~0.1 ms of work; see queue.h). */
#define QSVC_REAP_SLICE 1024

struct qsvc_local {
    struct qsvc base;          /* first: a struct qsvc * is a struct qsvc_local * */
    struct server *srv;
    struct queue_engine *eng;
    struct store *store;       /* the journal (store.c), shared with timers */
    struct store *st;          /* = store once started; NULL while replaying */
    struct qj_clock clk;       /* wheel -> wall clock for records and results */
    struct list waiting;       /* struct qwait: calls in a blocking wait */
    struct list purging;       /* calls (by node) waiting for the reaper */
    struct event *reap_ev;     /* a reaper slice per loop turn while there is work */
    uint64_t replayed;         /* records replayed at start */
    struct qsvc_queue *listed; /* qsvc_list's answer, kept until the next one */
    size_t listed_cap;
    int nacking;               /* inside queue_nack: a DEAD event's reason is the nack */
};

extern const struct qsvc_ops qsvc_local_ops;

/* Wheel time (ms) <-> unix ms, refreshed once per operation. */
void qsvc_local_clock(struct qsvc_local *svc);
static inline uint64_t qsvc_local_wall(const struct qsvc_local *svc, uint64_t wheel_ms) {
    return (uint64_t)((int64_t)wheel_ms + svc->clk.wall_minus_wheel);
}

/* Run the reaper on a later loop turn. */
void qsvc_local_reap_kick(struct qsvc_local *svc);
/* Complete the bulk calls whose queue has nothing left to reap. */
void qsvc_local_purges_answer(struct qsvc_local *svc);
/* Complete every blocking wait with status (drain). */
void qsvc_local_waits_end(struct qsvc_local *svc, int status);

#endif
