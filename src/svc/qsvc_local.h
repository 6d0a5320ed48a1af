/*
 * qsvc_local: the local queue backend's state, shared by its two files:
 * qsvc_local.c (the operations and their waits) and qsvc_local_svc.c (the
 * journal glue, replay, snapshot, the reaper, and the service's life).
 * Private to svc/.
 */
#ifndef AWAITD_QSVC_LOCAL_H
#define AWAITD_QSVC_LOCAL_H

#include "core/list.h"
#include "core/timer.h"
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
    uint64_t clk_at;           /* the wheel's time when clk was read */
    struct list waiting;       /* struct qwait: calls in a blocking wait */
    struct list purging;       /* calls (by node) waiting for the reaper */
    struct event *reap_ev;     /* a reaper slice per loop turn while there is work */
    uint64_t replayed;         /* records replayed at start */
    struct qsvc_queue qinfo;   /* res.queue of a synchronous answer, until the next one */
    struct queue_result_info rinfo; /* res.result of a synchronous answer, likewise */
    char why[QSVC_WHY_MAX];    /* res.why: until the next answer (a kept call's is given
                                * to its done() at once, on_durable) */
    struct qsvc_queue *listed; /* qsvc_list's answer, kept until the next one */
    size_t listed_cap;
    int nacking;               /* inside queue_nack: a DEAD event's reason is the nack */
    struct list *rbuckets;     /* result waits by job id (struct qwait by node), or NULL */
    struct list listing;       /* job listings done in slices (struct qwait by node) */
    struct event *list_ev;     /* a slice per loop turn while there are listings */
};

extern const struct qsvc_ops qsvc_local_ops;

/* A call in a blocking wait (reserve, put or join with wait=), or waiting
 * for a job's result (qsvc_local_result.c: w idle, node in a result bucket).
 * Its size is a waiting reserve's memory, with the kept call (issue 19):
 * the queue's name is in the allocation's tail, as long as it is. */
struct qwait {
    struct qsvc_call *call;       /* kept; its svc is the backend (qwait_svc) */
    struct list node;             /* svc->waiting while the engine holds w */
    struct queue_waiter w;
    struct timer t;               /* the wait= deadline */
    char *copy;                   /* a woken getter's payloads; a result's bytes */
    const char *qname;            /* the queue's name, in the tail (qsvc_local_qwait_new) */
    uint32_t qlen;
    union {
        int held;                 /* GET: its woken jobs are leased to it, not yet delivered */
        uint64_t rid;             /* result waits (w idle, of kind JOIN): the job */
    };
    struct queue_job_info jobs[]; /* GET: count entries; PUT: the payload and key copies;
                                   * then the name */
};

/* A zeroed qwait for q with extra bytes at jobs and the name set; NULL: no memory. */
struct qwait *qsvc_local_qwait_new(const struct queue *q, size_t extra);

/* The backend a wait is in (while its call is kept, not yet delivered). */
static inline struct qsvc_local *qwait_svc(const struct qwait *qw) {
    return (struct qsvc_local *)qw->call->svc;
}

/* qsvc_local.c, shared with qsvc_local_result.c */
int qsvc_local_open(struct qsvc_local *svc, struct qsvc_call *call, const char *name, size_t len,
                    int change, struct queue **q);
int qsvc_local_settle(struct qsvc_local *svc, struct qsvc_call *call, int outcome);
void qsvc_local_settle_kept(struct qsvc_local *svc, struct qsvc_call *kept, int outcome);
uint64_t qsvc_local_clamp_wait(struct qsvc_local *svc, uint64_t ms);
void qsvc_local_jobs_to_wall(struct qsvc_local *svc, struct queue_job_info *jobs, unsigned n);
void qsvc_local_wait_timeout(struct timer *t);

/* qsvc_local_result.c: results, their waits, job listing */
int qsvc_local_ack_result(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                          uint64_t id, uint32_t attempt, const struct qsvc_outcome *o);
int qsvc_local_nack_error(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                          uint64_t id, uint32_t attempt, uint64_t delay_ms,
                          const struct qsvc_outcome *o);
int qsvc_local_result(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                      uint64_t id, uint64_t wait_ms);
int qsvc_local_jobs(struct qsvc *base, struct qsvc_call *call, const char *name, size_t len,
                    int state, const struct queue_cursor *after, struct queue_job_info *jobs,
                    size_t max, size_t preview);
/* An engine event that may answer result waits (ACK, DEAD, DROP, DELETE). */
void qsvc_local_result_event(struct qsvc_local *svc, const struct queue_event *ev);
/* Answer every result wait with status (drain); free the buckets (close: status 0). */
void qsvc_local_results_end(struct qsvc_local *svc, int status);

/* Wheel time (ms) <-> unix ms, refreshed by each operation when the wheel's
 * millisecond has moved since the last read. */
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
