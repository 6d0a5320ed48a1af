/*
 * qsvc: the queue service seam. Every queue operation of /queues (and of
 * anything else that wants a queue) goes through these functions; what is
 * behind them is a backend: today the local one (qsvc_local.c: the engine
 * of engine/queue.h, journaled through svc/store.h), later others (Redis).
 * It speaks no HTTP: results are plain data and a status, and the caller
 * decides what its client sees.
 *
 * A call. The caller fills a struct qsvc_call (done, keep; usually on its
 * stack, inside its own request state) and calls an operation:
 *   QSVC_OK, QSVC_ERR_*  finished now, call->res filled; no done() follows.
 *   QSVC_PENDING         the call was moved by keep() and finishes later:
 *                        done() runs once, from the event loop, unless
 *                        qsvc_cancel() comes first.
 * keep() is how a call that cannot finish now (a blocking wait, a journal
 * fsync, a remote backend) leaves the caller's stack: it returns the call
 * copied into memory that lasts until done() or qsvc_cancel() (the
 * caller's request state, allocated only then), or NULL when out of
 * memory. So the fast path (put, reserve, ack answered at once) allocates
 * nothing, and a caller learns which call to cancel from keep().
 *
 * Completion means durable: a change is reported done only once it is as
 * durable as [journal] fsync promises.
 *
 * Never inside another request: a pending call is completed from the
 * loop (a ready list drained by a zero-timeout event, or the journal's
 * completion), never inside the operation of another caller that made it
 * ready (a put waking a waiting reserve), so the completing caller's stack
 * and buffers are its own.
 *
 * Pointers in a result (payloads, the queue list) live until done()
 * returns, or after a synchronous return until the next call into qsvc.
 */
#ifndef AWAITD_QSVC_H
#define AWAITD_QSVC_H

#include "core/list.h"
#include "engine/queue.h" /* plain data only: queue_settings, queue_stats, queue_job_info, queue_put */
#include "svc/store.h"

#include <stddef.h>
#include <stdint.h>

struct server;
struct event;
struct event_base;
struct qsvc;
struct qsvc_call;
struct service_ops;

/* Outcomes. The engine's errors keep their meaning and their values. */
enum qsvc_status {
    QSVC_PENDING = 1,            /* kept: done() reports the outcome later */
    QSVC_OK = 0,
    QSVC_ERR_NOMEM = -1,         /* out of memory */
    QSVC_ERR_FULL = -2,          /* the queue is at maxsize (res.limit: maxsize, or room for a batch) */
    QSVC_ERR_MEMORY = -3,        /* the memory limit would be exceeded */
    QSVC_ERR_EMPTY = -4,         /* reserve without wait: nothing ready */
    QSVC_ERR_NOTFOUND = -5,      /* no such job (or dead letter) */
    QSVC_ERR_EXISTS = -6,
    QSVC_ERR_INVALID = -7,       /* bad argument */
    QSVC_ERR_TOOBIG = -8,        /* payload over max_payload (res.limit; batch: res.index) */
    QSVC_ERR_STATE = -9,         /* job not reserved, or a stale attempt */
    QSVC_ERR_SHUTDOWN = -10,     /* the queue is shut down */
    QSVC_ERR_DELETED = -11,      /* the queue was deleted while the call waited */
    QSVC_ERR_NOQUEUE = -12,      /* no such queue */
    QSVC_ERR_TIMEOUT = -13,      /* the wait passed (put: still full; reserve: nothing; join) */
    QSVC_ERR_UNAVAILABLE = -14,  /* the backend cannot take changes now (res.why) */
    QSVC_ERR_NOSPACE = -15,      /* the backend's disk is full (res.why) */
    QSVC_ERR_DRAINING = -16,     /* the daemon is shutting down */
    QSVC_ERR_UNSUPPORTED = -17,  /* the backend does not have this operation (yet) */
};

/* A short lowercase text for a status, for error bodies. */
const char *qsvc_strerror(int status);

/* A queue's name, figures and settings. */
struct qsvc_queue {
    char name[QUEUE_NAME_MAX + 1];
    size_t name_len;
    struct queue_stats stats;
    struct queue_settings settings;
};

/*
 * What an operation reports. Only the fields its operation names are set.
 *
 * A kept call carries its result for as long as it waits, and a long-poll
 * reserve needs little of it (issue 19, memory per waiting call): what is
 * large is the backend's, pointed at (the queue's figures, a result, the
 * error text), and the members used by one kind of operation each (queue:
 * declare, stats, bulk; result: result; next: jobs) share a union.
 */
struct qsvc_result {
    uint64_t id;                 /* put: the job (the first one's on a key repeat) */
    uint64_t n;                  /* bulk: jobs affected; put_batch: jobs put */
    uint64_t deadline_ms;        /* touch: the lease's end, unix ms */
    uint64_t limit;              /* FULL: maxsize (batch: room); TOOBIG: max_payload */
    size_t index;                /* put_batch TOOBIG: the job refused */
    struct queue_job_info *jobs; /* reserve, peek, dead_list; deadlines in unix ms */
    const struct qsvc_queue *queues; /* list */
    size_t nqueues;
    unsigned njobs;
    int duplicate;               /* put: an idempotency-key repeat */
    int dead;                    /* nack: the job went to the dead letters */
    int created;                 /* declare: the queue is new */
    int more;                    /* list: queues after this page remain */
    int unknown;                 /* UNAVAILABLE, NOSPACE after the change was made in memory:
                                  * the journal may still write it (id names the job), so
                                  * its outcome is unknown; a put's Idempotency-Key retry
                                  * is safe (docs/QUEUES.md, "When the journal fails") */
    const char *why;             /* UNAVAILABLE, NOSPACE: the reason, at most QSVC_WHY_MAX
                                  * bytes with its NUL; "" until a backend sets it. The
                                  * backend's text: it lives as the jobs' payloads do */
    int gone;                    /* result: QSVC_GONE_* when the job left without an outcome */
    union { /* the backend's, where a pointer: they live as the jobs' payloads do */
        const struct qsvc_queue *queue;          /* declare, stats; name also for bulk */
        const struct queue_result_info *result;  /* result (OK): the outcome (outcome 0:
                                                  * see gone); expires in unix ms */
        struct queue_cursor next; /* jobs: where the page ended (with more) */
    };
};

#define QSVC_WHY_MAX 160 /* res.why's longest text, with its NUL */

typedef void (*qsvc_done_fn)(struct qsvc_call *call, int status);
typedef struct qsvc_call *(*qsvc_keep_fn)(struct qsvc_call *call);

struct qsvc_call {
    /* set by the caller */
    qsvc_done_fn done;
    qsvc_keep_fn keep;
    /* set by the backend */
    struct qsvc_result res;
    /* qsvc-private */
    struct qsvc *svc;
    void *pend;              /* the backend's state while the call waits */
    int status;              /* outcome, until delivered */
    union { /* a call is on one list at a time: node's list, or the store's by wait.node */
        struct list node;       /* the ready list (or a backend's list while waiting) */
        struct store_wait wait; /* the local backend's durability wait */
    };
};

/* ---- operations (q, qlen: the queue's name) ----------------------------- */

/* Put; wait_ms > 0 waits for room that long (then TIMEOUT). res.id, res.duplicate. */
int qsvc_put(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
             const struct queue_put *put, uint64_t wait_ms);

/* One job of a batch put: in, the payload; out, its id. */
struct qsvc_batch_job {
    const void *payload;
    size_t len;
};

/* Put n jobs with one priority and delay, all or nothing as far as room and
 * sizes go (TOOBIG refuses the batch: a payload over max_payload, res.index
 * its frame, or SIZE_MAX for a batch larger than maxsize, which never fits;
 * FULL: no room for all of it, res.limit the room). wait_ms > 0 waits that
 * long for room for the whole batch (then TIMEOUT), in arrival order with
 * the other putters. The jobs get consecutive ids from res.id; an error
 * part-way leaves the first res.n jobs put. jobs[] must last until done();
 * their payloads need not (a waiting batch copies them). */
int qsvc_put_batch(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                   const struct qsvc_batch_job *jobs, size_t n, int32_t priority,
                   uint64_t delay_ms, uint64_t wait_ms);

/* Reserve up to count jobs (lease_ms 0: the queue's lease); wait_ms > 0
 * waits for one that long (then TIMEOUT). jobs has count entries, used on a
 * synchronous return; res.jobs, res.njobs. */
int qsvc_reserve(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                 unsigned count, uint64_t lease_ms, uint64_t wait_ms,
                 struct queue_job_info *jobs);

/* join: OK once every job is acked (or dead); wait_ms 0 answers TIMEOUT at once. */
int qsvc_join(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
              uint64_t wait_ms);

/* attempt 0: any. ack; nack (res.dead); touch (res.deadline_ms). */
int qsvc_ack(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
             uint32_t attempt);
int qsvc_nack(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
              uint32_t attempt, uint64_t delay_ms);
int qsvc_touch(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
               uint32_t attempt, uint64_t lease_ms);

/* One ack of a batch: in, the job and its attempt (0: any); out, its status. */
struct qsvc_ack_item {
    uint64_t id;
    uint32_t attempt;
    int status; /* QSVC_OK, QSVC_ERR_NOTFOUND, QSVC_ERR_STATE */
};

/* Ack n jobs of one queue in one step (one journal wait, one FCALL). Each
 * job is acked or refused on its own, as n plain acks in order would be
 * (items[i].status; a repeated id is refused the second time): a lease
 * that ran out for one job does not hold back the others. QSVC_OK once
 * the batch is applied (res.n jobs acked), else the queue's error
 * (NOQUEUE, UNAVAILABLE, ...) and no item was acked (Redis: maybe, as for
 * any 503). items must last until done(). */
int qsvc_ack_batch(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                   struct qsvc_ack_item *items, size_t n);

/* A job in any state, into *job: res.jobs = job. */
int qsvc_peek(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
              struct queue_job_info *job);

/* Settings given by a declare; mask says which (QSVC_SET_*), the rest are kept
 * (or the defaults for a new queue). */
enum {
    QSVC_SET_MAXSIZE = 1,
    QSVC_SET_LEASE = 2,
    QSVC_SET_MAX_ATTEMPTS = 4,
    QSVC_SET_MAX_PAYLOAD = 8,
    QSVC_SET_KEY_WINDOW = 16,
    QSVC_SET_RESULT_TTL = 32,
};
struct qsvc_settings {
    struct queue_settings s;
    unsigned mask;
};

/* Create the queue, or change its settings: res.created, res.queue. */
int qsvc_declare(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                 const struct qsvc_settings *set);
int qsvc_delete(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen);
/* One queue (res.queue). */
int qsvc_stats(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen);
/* Up to max queues whose names sort after `after` (alen 0: from the first),
 * in name order (res.queues, res.nqueues; res.more when more follow). A
 * walk passing the last name back sees every queue that exists throughout
 * it exactly once, whatever is created or deleted meanwhile. */
int qsvc_list(struct qsvc *svc, struct qsvc_call *call, const char *after, size_t alen,
              size_t max);

/* Up to max dead letters after the dead job after (0: from the first), into jobs. */
int qsvc_dead_list(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                   uint64_t after, struct queue_job_info *jobs, size_t max);

/* Bulk changes, answered once their removed jobs are gone for good. */
enum qsvc_bulk {
    QSVC_PURGE,        /* ready and delayed jobs: res.n */
    QSVC_SHUTDOWN,     /* arg 1: immediate */
    QSVC_DEAD_REQUEUE, /* arg: one dead job, 0 all: res.n */
    QSVC_DEAD_PURGE,   /* arg: one dead job, 0 all: res.n */
};
int qsvc_bulk(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, int op,
              uint64_t arg);

/* ---- results and job listing (issue 17; docs/QUEUES.md "Results") -------- */

/* What an ack carries (a result) or a nack (an error text, ctype unused). */
struct qsvc_outcome {
    const char *ctype; /* content type, may be empty */
    size_t ctype_len;
    const void *body;
    size_t len;
};

/* Why a waited-for job left without an outcome (res.gone). */
enum qsvc_gone {
    QSVC_GONE_PURGED = 1,   /* purged while ready or delayed */
    QSVC_GONE_SHUTDOWN = 2, /* dropped by an immediate shutdown */
    QSVC_GONE_DEAD_PURGED = 3,
    QSVC_GONE_DELETED = 4,  /* its queue was deleted */
};

/* Ack keeping a result; nack keeping an error text should the job die (res.dead). */
int qsvc_ack_result(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, const struct qsvc_outcome *o);
int qsvc_nack_error(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, uint64_t delay_ms, const struct qsvc_outcome *o);

/* A job's outcome: OK with res.result (acked, or dead with its reason) or
 * res.gone; a live job waits up to wait_ms (then TIMEOUT); NOTFOUND when
 * neither the job nor a kept result exists. The client leaving cancels it. */
int qsvc_result(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
                uint64_t wait_ms);

/* A page of q's jobs in state (enum queue_job_state) after *after (NULL:
 * from the first): res.jobs, res.njobs, res.more, res.next. jobs has max entries.
 * A backend may cut each payload to preview bytes (len stays the whole length). */
int qsvc_jobs(struct qsvc *svc, struct qsvc_call *call, const char *q, size_t qlen, int state,
              const struct queue_cursor *after, struct queue_job_info *jobs, size_t max,
              size_t preview);

/* The caller gives up a pending call (its client left): done() will not
 * run, and whatever the call held (reserved jobs, a wait) is let go. */
void qsvc_cancel(struct qsvc_call *call);

/* ---- backends ----------------------------------------------------------- */

/* What a backend implements; the public functions above check nothing and
 * pass through. */
struct qsvc_ops {
    int (*put)(struct qsvc *, struct qsvc_call *, const char *, size_t, const struct queue_put *,
               uint64_t);
    int (*put_batch)(struct qsvc *, struct qsvc_call *, const char *, size_t,
                     const struct qsvc_batch_job *, size_t, int32_t, uint64_t, uint64_t);
    int (*reserve)(struct qsvc *, struct qsvc_call *, const char *, size_t, unsigned, uint64_t,
                   uint64_t, struct queue_job_info *);
    int (*join)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t);
    int (*ack)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t, uint32_t);
    int (*nack)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t, uint32_t,
                uint64_t);
    int (*touch)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t, uint32_t,
                 uint64_t);
    int (*peek)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t,
                struct queue_job_info *);
    int (*declare)(struct qsvc *, struct qsvc_call *, const char *, size_t,
                   const struct qsvc_settings *);
    int (*delete)(struct qsvc *, struct qsvc_call *, const char *, size_t);
    int (*stats)(struct qsvc *, struct qsvc_call *, const char *, size_t);
    int (*list)(struct qsvc *, struct qsvc_call *, const char *, size_t, size_t);
    int (*dead_list)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t,
                     struct queue_job_info *, size_t);
    int (*bulk)(struct qsvc *, struct qsvc_call *, const char *, size_t, int, uint64_t);
    /* Let go of what a pending call holds (after it left the ready list). */
    void (*cancel)(struct qsvc *, struct qsvc_call *);
    /* Free call->pend once done() has run. */
    void (*release)(struct qsvc *, void *pend);
    /* Results and job listing; NULL: QSVC_ERR_UNSUPPORTED. */
    int (*ack_result)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t, uint32_t,
                      const struct qsvc_outcome *);
    int (*nack_error)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t, uint32_t,
                      uint64_t, const struct qsvc_outcome *);
    int (*result)(struct qsvc *, struct qsvc_call *, const char *, size_t, uint64_t, uint64_t);
    int (*jobs)(struct qsvc *, struct qsvc_call *, const char *, size_t, int,
                const struct queue_cursor *, struct queue_job_info *, size_t, size_t);
    /* Batch ack (POST /queues/{q}/acks); NULL: QSVC_ERR_UNSUPPORTED. */
    int (*ack_batch)(struct qsvc *, struct qsvc_call *, const char *, size_t,
                     struct qsvc_ack_item *, size_t);
};

/* The handle every backend's state begins with. */
struct qsvc {
    const struct qsvc_ops *ops;
    struct list ready;       /* calls completed, done() not yet run */
    struct event *ready_ev;  /* drains ready from the loop */
};

/* For backends. qsvc_init: 0 or -1 (no memory); qsvc_fini undoes it. */
int qsvc_init(struct qsvc *svc, const struct qsvc_ops *ops, struct event_base *base);
void qsvc_fini(struct qsvc *svc);
/* A kept call finished: done() runs from the loop, soon. */
void qsvc_complete(struct qsvc_call *call, int status);
/* A kept call finished and this is the loop (not another caller's stack): done() now. */
void qsvc_deliver(struct qsvc_call *call, int status);
/* Move a call off the caller's stack (keep()), ready for linking; NULL: no memory. */
struct qsvc_call *qsvc_keep(struct qsvc_call *call);

/* ---- the local backend (qsvc_local.c) ----------------------------------- */

/* Create the queue engine and register it as a client of store, which
 * replays the journal into it when the store starts. NULL (logged). */
struct qsvc *qsvc_new(struct server *s, struct store *store);

/* The local queues as a service (net/service.h), ctx = the qsvc: start
 * journals from then on and declares the config's queues; reload applies
 * the memory limit and newly declared queues; drain answers every waiting
 * reserve, put and join (DRAINING); close frees the engine. */
extern const struct service_ops qsvc_service;

/* The local engine, for the local timer backend (a timer's action puts
 * into a queue in the same process). NULL for another backend. */
struct queue_engine *qsvc_engine(struct qsvc *svc);

/* ---- the redis backend (qsvc_redis*.c, docs/REDIS.md) ------------------- */

/* The queues in Redis ([store] backend = redis, [redis] settings). NULL (logged). */
struct qsvc *qsvc_redis_new(struct server *s);

/* As a service: start connects (and keeps reconnecting), drain answers
 * the waits, health says degraded while Redis is unreachable. */
extern const struct service_ops qsvc_redis_service;

#endif
