/*
 * tsvc: the timer service seam. Every timer operation (create, get and
 * await, list, cancel) goes through these functions, whatever keeps the
 * timers: tsvc_local.c (the task engine and the journal) today, a remote
 * backend later. It speaks no HTTP: results are plain data and statuses,
 * and api_timer.c turns them into answers.
 *
 * A call. The caller embeds a struct tsvc_call in its per-request state,
 * sets done and arg, and starts one operation with it:
 *   TSVC_OK or an error (< 0): done already, the result is filled, done()
 *       is not called. Strings in the result stay valid until the caller
 *       returns to the loop.
 *   TSVC_PENDING: done(call) runs later, always from the loop (never inside
 *       another request's handler), with call->status set; strings in the
 *       result stay valid until done() returns. Until then the call must
 *       stay in place; tsvc_call_cancel() (its client left) drops it and
 *       done() is not called.
 * A change (create, cancel) completes only once it is as durable as the
 * backend promises ([journal] fsync for the local one).
 */
#ifndef AWAITD_TSVC_H
#define AWAITD_TSVC_H

#include "core/list.h"
#include "core/timer.h"
#include "engine/cron.h"
#include "engine/queue.h"
#include "engine/task.h"
#include "svc/store.h"

#include <stddef.h>
#include <stdint.h>

struct tsvc;
struct tsvc_call;

/* Outcomes. The API maps them: INVALID 400, NOTFOUND 404, TOOBIG 413,
 * NOSPACE 507, TIMEOUT 204, the rest 503 (MEMORY and LIMIT with
 * Retry-After, as a put refused by the memory limit). */
enum tsvc_status {
    TSVC_OK = 0,           /* done; the result is filled */
    TSVC_PENDING = 1,      /* start only: done() reports the outcome later */
    TSVC_TIMEOUT = 2,      /* await: the wait passed before the timer finished */
    TSVC_INVALID = -1,     /* bad spec or argument: why names the field */
    TSVC_NOTFOUND = -2,    /* no timer with that id */
    TSVC_TOOBIG = -3,      /* a length over its bound (TSVC_*_MAX) */
    TSVC_LIMIT = -4,       /* the backend holds as many timers as it may */
    TSVC_NOMEM = -5,       /* out of memory */
    TSVC_UNAVAILABLE = -6, /* the backend cannot take the change (journal failed, unreachable) */
    TSVC_NOSPACE = -7,     /* the backend's disk is full */
    TSVC_DRAINING = -8,    /* the daemon is shutting down */
    TSVC_MEMORY = -9,      /* the memory limit would be exceeded (as a put's): 503, Retry-After */
};

/* Same values as the engine's enum task_kind / task_state (checked in tsvc_local.c). */
enum tsvc_kind { TSVC_AFTER, TSVC_AT, TSVC_EVERY, TSVC_CRON };
enum tsvc_state { TSVC_SCHEDULED, TSVC_COMPLETED, TSVC_CANCELLED, TSVC_FAILED };

/*
 * Bounds of what a timer stores. The local backend keeps the queue name's
 * length in 8 bits and the cron text's in 16 (journal compatibility), and
 * a whole CREATE record must fit JOURNAL_RECORD_MAX; tsvc_spec_error()
 * refuses anything longer, so nothing is ever cut short.
 */
#define TSVC_QUEUE_MAX QUEUE_NAME_MAX /* bytes of a queue name */
#define TSVC_CRON_MAX CRON_TEXT_MAX   /* bytes of a cron expression as written */
#define TSVC_PAYLOAD_MAX 67107840     /* bytes of a payload: 64 MiB - 1 KiB */

/* What to create (docs/TIMERS.md). Strings need not be NUL-terminated. */
struct tsvc_spec {
    int kind;              /* enum tsvc_kind */
    int64_t after_ms;      /* AFTER: from now */
    int64_t at_ms;         /* AT: unix ms */
    uint64_t every_ms;     /* EVERY: the period */
    const char *cron_text; /* CRON: as written (shown by GET) */
    size_t cron_len;
    struct cron cron;      /* CRON: cron_text parsed */
    uint32_t count;        /* EVERY, CRON: complete after this many ticks; 0 = never */
    uint32_t jitter_ms;    /* EVERY, CRON */
    int full_policy;       /* enum task_full_policy */
    int missed_policy;     /* enum task_missed_policy */
    const char *queue;     /* the queue the payload is put into */
    size_t queue_len;
    const char *payload;
    size_t payload_len;
};

/* A timer as a result: plain data (strings as the call's contract says). */
struct tsvc_timer {
    uint64_t id;
    int kind;               /* enum tsvc_kind */
    int state;              /* enum tsvc_state */
    const char *queue;
    size_t queue_len;
    const char *cron;       /* CRON: the expression as written, else NULL */
    size_t cron_len;
    uint32_t fires, skips, count;
    uint64_t every_ms;      /* EVERY */
    uint32_t jitter_ms;     /* EVERY, CRON */
    int64_t next_fire_ms;   /* SCHEDULED: unix ms it will fire */
    int64_t finished_ms;    /* otherwise: unix ms it finished */
    int full_policy;        /* enum task_full_policy */
    int missed_policy;      /* enum task_missed_policy */
    int retrying;           /* a full queue is being retried */
    const char *last_error; /* why the last tick was skipped or the timer failed, or NULL */
};

typedef void (*tsvc_done_fn)(struct tsvc_call *call);

/* One operation in flight; embedded in the caller's request state. */
struct tsvc_call {
    /* set by the caller */
    tsvc_done_fn done;
    void *arg;
    /* results */
    int status;              /* enum tsvc_status (not PENDING) */
    char why[256];           /* errors: a message naming the field or the cause */
    struct tsvc_timer timer; /* create, get, cancel */
    int cancelled;           /* cancel: 1 if it was scheduled (asyncio's cancel() True) */
    size_t nlisted;          /* list: timers written to the caller's array */
    uint64_t next_after;     /* list: the last id when the page is full, else 0 */
    /* backend-private: what a pending call holds on to */
    struct tsvc *svc;
    struct list link;           /* on the backend's awaits, then on its list to complete */
    struct store_wait durable;  /* create, cancel: the journal's batch */
    struct task_waiter waiter;  /* await */
    struct timer deadline;      /* await: ?wait= */
    void *pend;                 /* the redis backend's state of the call */
    char text[TSVC_QUEUE_MAX + TSVC_CRON_MAX]; /* the timer's strings, kept until done() */
};

/* A backend's operations, behind the functions below. */
struct tsvc_ops {
    int (*create)(struct tsvc *svc, struct tsvc_call *call, const struct tsvc_spec *spec);
    int (*get)(struct tsvc *svc, struct tsvc_call *call, uint64_t id, uint64_t wait_ms);
    int (*list)(struct tsvc *svc, struct tsvc_call *call, uint64_t after, struct tsvc_timer *out,
                size_t max);
    int (*cancel)(struct tsvc *svc, struct tsvc_call *call, uint64_t id);
    void (*call_cancel)(struct tsvc_call *call);
};

/* Every backend's handle starts with this. */
struct tsvc {
    const struct tsvc_ops *ops;
};

/* Prepare a call: zeroed, with its callback and context. */
void tsvc_call_init(struct tsvc_call *call, tsvc_done_fn done, void *arg);

/* NULL if spec keeps within the bounds and the rules every backend shares
 * (one schedule; count and jitter only for periodic ones), else a message
 * naming the field; *status gets TSVC_INVALID or TSVC_TOOBIG. */
const char *tsvc_spec_error(const struct tsvc_spec *spec, int *status);

/* Create a timer; the result is the timer as created. spec is read only
 * during the call. */
int tsvc_create(struct tsvc *svc, struct tsvc_call *call, const struct tsvc_spec *spec);

/* The timer; with wait_ms > 0 and the timer scheduled, once it finishes
 * (TSVC_TIMEOUT when wait_ms passes first; the backend may shorten it). */
int tsvc_get(struct tsvc *svc, struct tsvc_call *call, uint64_t id, uint64_t wait_ms);

/* Up to max timers with ids above after, in id order, into out (which
 * stays in place until the call is done). */
int tsvc_list(struct tsvc *svc, struct tsvc_call *call, uint64_t after, struct tsvc_timer *out,
              size_t max);

/* asyncio's cancel(): call->cancelled says whether it was scheduled. */
int tsvc_cancel(struct tsvc *svc, struct tsvc_call *call, uint64_t id);

/* Forget a pending call (its client left): done() will not be called.
 * Safe on a call that is not pending. */
void tsvc_call_cancel(struct tsvc_call *call);

/* ---- the local backend (tsvc_local.c) ---- */

struct server;
struct qsvc;

/* The task engine, registered with store (replayed when the store starts);
 * a timer's action puts into queues. NULL (logged). */
struct tsvc *tsvc_new(struct server *s, struct store *store, struct qsvc *queues);

/* The local timers as a service (net/service.h), ctx = the tsvc: start
 * journals from then on and arms the timers (missed ticks per their
 * policy); drain completes every await (TSVC_DRAINING); close frees the
 * engine. Register after the queues. */
extern const struct service_ops tsvc_service;

/* ---- the redis backend (tsvc_redis*.c, docs/REDIS.md) ---- */

/* Timers in Redis ([store] backend = redis); its own connection. NULL (logged). */
struct tsvc *tsvc_redis_new(struct server *s);

/* The redis timers as a service: start connects, drain ends the awaits,
 * health says degraded while Redis is away. Register after the queues. */
extern const struct service_ops tsvc_redis_service;

#endif
