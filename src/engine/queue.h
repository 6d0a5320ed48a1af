/*
 * queue: the work-queue engine behind /queues. It gives asyncio.Queue
 * semantics (put waits while full, get waits while empty, task_done and
 * join) plus what a queue shared over a network needs: leases with
 * redelivery, delays, priorities, idempotency keys, dead letters and
 * Python 3.13's shutdown. The HTTP layer and the journal sit on top.
 *
 * Pure. No I/O, no logging, no clock, no global state. Time comes only
 * from the timer wheel given to queue_engine_new(): the engine reads
 * wheel->now (ms) and arms the timer embedded in each job for its delay
 * or lease, so a delay or lease expiry happens inside the caller's
 * timer_wheel_advance(). Tests drive the wheel by hand as a fake clock.
 *
 * Who owns what.
 *  - The engine owns its queues, jobs (the payload is copied into the job),
 *    idempotency keys and indexes. queue_delete() and queue_engine_free()
 *    release them and cancel their timers.
 *  - The caller owns the timer wheel, which must outlive the engine. It
 *    also owns every struct queue_waiter (embedded in per-request state). A
 *    waiter must stay valid and in place from a QUEUE_WAIT return until
 *    its wake() runs or queue_waiter_cancel() returns. The caller owns a
 *    waiting putter's payload and key (read when the put happens) and a
 *    waiting getter's jobs[] array.
 *  - Pointers the engine hands out point into its memory. A struct queue *
 *    lives until queue_delete(). The payload pointer in a struct
 *    queue_job_info lives until the next call into the engine (including
 *    a timer_wheel_advance()), except inside wake(), where it lives until
 *    wake() returns. struct queue_event data lives only during on_event().
 *
 * Re-entrancy: wakes are deferred. An operation finishes its state change
 * first. Each waiter it satisfies is unlinked, given its result (jobs
 * leased to it, or the id of the put done for it) and appended to the
 * engine's wake list. The outermost operation then calls these wake()s in
 * order before it returns. So wake() always sees a consistent engine and
 * may call any function here: put, reserve, ack, delete, or wait again
 * with the same waiter. The exceptions are queue_engine_free() and
 * timer_wheel_advance() (not reentrant). Wakes queued by such nested
 * calls run after the current one, in the same loop. on_event() must not
 * call into the engine.
 *
 * No lost jobs. A getter is woken with its jobs already reserved to it.
 * If the caller can no longer deliver them (its client left), it must
 * give them back with queue_waiter_release() or queue_unreserve(). That
 * undoes the delivery: the job is ready again in its place and its
 * attempt count is restored. A job that is neither acked nor given back
 * is still redelivered when its lease expires, so nothing is lost, only
 * delayed.
 *
 * Durability. Every state change the journal must keep is reported,
 * synchronously and before the operation returns, as one plain-data
 * struct queue_event to the on_event hook. queue_engine_replay() applies
 * such an event without reporting it again. Replaying a journal in order
 * into a fresh engine rebuilds the queues and settings, jobs (ids,
 * priorities, payloads, visibility times, order), dead letters,
 * idempotency keys and shutdown state. Some things are not durable, by
 * design. Leases: a reserved job is ready again after a restart
 * (at-least-once). Attempt counts restart at 0. The waiters are lost too,
 * and the totals count since start (queue_engine_totals_reset). Times in events are in the wheel's clock,
 * which restarts at boot, so the journal must convert visible_at and now
 * to wall-clock time and back. Ready order depends only on (priority, id),
 * not on history, so a replay reproduces it exactly.
 *
 * Job life: put -> READY (or DELAYED until visible_at) -> reserve ->
 * RESERVED (leased, attempt+1) -> ack: freed. Or nack/lease expiry: back
 * to READY/DELAYED, or to DEAD once it has been delivered max_attempts
 * times. Dead letters are requeued (READY, attempts 0) or purged.
 * unfinished counts READY+DELAYED+RESERVED jobs (asyncio's unfinished
 * tasks). Moving to dead letters finishes a job, so one poison job cannot
 * block join() for ever. maxsize bounds READY+DELAYED like asyncio's
 * qsize (a reserved job has left the queue). A job coming back (nack,
 * lease expiry, requeue) is never refused, so the queue can exceed
 * maxsize for a while; puts wait until it is below again.
 *
 * Memory per job (x86-64, glibc). struct queue_job is a 60-byte header
 * followed by the payload, in one malloc chunk:
 *   32  union: the wheel timer (DELAYED/RESERVED), or the pairing-heap
 *       links (READY), or the dead-letter list links (DEAD)
 *    8  id            8  queue pointer
 *    4  priority      4  payload length
 *    2  attempts      1  state      1  generation (see "Bulk removal")
 * malloc adds an 8-byte header and rounds up to 16. A 100-byte payload
 * therefore takes a 176-byte chunk, 76 bytes over the payload.
 * The ready structure is an intrusive pairing heap living in the timer
 * union: 0 bytes. The id index is open addressing of 8-byte job pointers
 * at a load of 3/8..3/4, so 10.7..21.3 bytes per job (16.8 at 1,000,000
 * jobs). Total: 92.8 bytes per 100-byte job at 1,000,000 jobs; measured
 * by bench/queue_mem.c as 92.8 (malloc in use) and 93.0 (RSS).
 * QUEUE_JOB_COST() is what the memory limit charges.
 *
 * Costs: put, reserve, ack, nack and touch are O(1) or O(log n) (heap
 * pop/removal is O(log n) amortized).
 *
 * Bulk removal. Purge, immediate shutdown, dead-letter purge and delete
 * are O(1) for the caller: the jobs leave the queue at once (counters,
 * room, joiners and lookups all see them gone) but stay allocated in a
 * grave. queue_engine_reap(), called by the owner of the event loop a
 * slice at a time, reports their DROP events and frees them, so removing
 * a million jobs never stalls the loop. Until then they are still charged
 * to the memory limit (they still use the memory), and a crash can bring
 * back those whose DROP was not yet journaled: a caller that must confirm
 * a purge waits until queue_stats().reaping is 0 for the queue.
 */
#ifndef AWAITD_QUEUE_H
#define AWAITD_QUEUE_H

#include "core/list.h"

#include <stddef.h>
#include <stdint.h>

struct timer_wheel;
struct mem_budget;   /* core/mem_budget.h */
struct queue_engine; /* opaque: every queue, the id index, memory accounting */
struct queue;        /* opaque: one named queue */

/* Return codes. Every failing call leaves the engine as it was. */
enum queue_status {
    QUEUE_OK = 0,             /* done */
    QUEUE_WAIT = 1,           /* the waiter is linked; its wake() reports the outcome */
    QUEUE_ERR_NOMEM = -1,     /* an allocation failed */
    QUEUE_ERR_FULL = -2,      /* put_nowait: the queue holds maxsize jobs */
    QUEUE_ERR_MEMORY = -3,    /* the engine's memory limit would be exceeded */
    QUEUE_ERR_EMPTY = -4,     /* get_nowait: nothing ready */
    QUEUE_ERR_NOTFOUND = -5,  /* no such queue, or no such job in this queue */
    QUEUE_ERR_EXISTS = -6,    /* the queue (or, in replay, the job id) exists already */
    QUEUE_ERR_INVALID = -7,   /* bad name, setting or argument */
    QUEUE_ERR_TOOBIG = -8,    /* payload longer than the queue's max_payload */
    QUEUE_ERR_STATE = -9,     /* the job is not reserved, or the attempt is stale */
    QUEUE_ERR_SHUTDOWN = -10, /* the queue is shut down (puts refused, gets drained) */
    QUEUE_ERR_DELETED = -11,  /* wake only: the queue was deleted while waiting */
};

/* A short lowercase text for a status ("queue full", "not found"), for error bodies. */
const char *queue_strerror(int status);

/* ---- settings ----------------------------------------------------------- */

#define QUEUE_NAME_MAX 64 /* names are [A-Za-z0-9_.-]{1,64} */

/* Is name a queue name: 1 to QUEUE_NAME_MAX of A-Z a-z 0-9 _ . -, and not
 * "." or ".." (they would read as path segments in URLs)? */
int queue_name_valid(const char *name, size_t len);
#define QUEUE_KEY_MAX 255 /* idempotency keys are 1..255 arbitrary bytes */
#define QUEUE_MAX_ATTEMPTS_MAX 65535
/* Longest lease, delay or key window accepted (2^40 ms, about 35 years),
 * so deadlines never overflow. */
#define QUEUE_DURATION_MAX_MS (UINT64_C(1) << 40)

/* Bytes the memory limit charges for a job: header + payload + malloc and
 * index share (see "Memory per job" above). */
#define QUEUE_JOB_OVERHEAD 92
#define QUEUE_JOB_COST(len) ((size_t)(len) + QUEUE_JOB_OVERHEAD)

struct queue_settings {
    uint64_t maxsize;       /* puts wait at READY+DELAYED >= maxsize; 0 = memory limit only */
    uint64_t lease_ms;      /* default lease (visibility timeout) of a reserve; > 0 */
    uint32_t max_attempts;  /* deliveries before dead letters; <= 65535; 0 = unlimited
                             * (old journals only: the API and config refuse 0) */
    uint32_t max_payload;   /* largest payload accepted, bytes */
    uint64_t key_window_ms; /* how long an idempotency key is remembered; > 0 */
    uint64_t result_ttl_ms; /* how long a job's result is kept (queue_result.c); 0 = none */
};

/* Defaults: maxsize 0, lease 30 s, max_attempts 5 (the config's default too),
 * max_payload 1 MiB, key window 5 min, result ttl 5 min. */
void queue_settings_default(struct queue_settings *s);

/* ---- events (durability) ------------------------------------------------ */

enum queue_event_type {
    QUEUE_EV_CREATE,   /* queue created: name, settings */
    QUEUE_EV_UPDATE,   /* queue settings changed: name, settings */
    QUEUE_EV_DELETE,   /* queue deleted with all its jobs and dead letters: name */
    QUEUE_EV_PUT,      /* job created: id, priority, visible_at, payload, key */
    QUEUE_EV_ACK,      /* job done and freed (task_done): id */
    QUEUE_EV_RELEASE,  /* nack: job back to READY (visible_at 0) or DELAYED: id, visible_at */
    QUEUE_EV_DEAD,     /* job moved to the dead letters: id */
    QUEUE_EV_REQUEUE,  /* dead letter back to READY, attempts reset: id */
    QUEUE_EV_DROP,     /* job discarded by purge, shutdown or dead-letter purge: id */
    QUEUE_EV_SHUTDOWN, /* queue shut down: immediate (drops follow as DROP events) */
    QUEUE_EV_RESULT,   /* a job's result kept: id, immediate = outcome, reason, priority =
                        * attempt, visible_at = expiry, payload = body, key = content type */
};

enum queue_drop_reason {
    QUEUE_DROP_PURGE,     /* queue_purge() */
    QUEUE_DROP_SHUTDOWN,  /* immediate shutdown, or a job coming back after it */
    QUEUE_DROP_DEADPURGE, /* queue_dead_purge() */
};

/* One journaled change. Plain data: pointers are valid during on_event only. */
struct queue_event {
    int type;                       /* enum queue_event_type */
    const char *queue;              /* queue name (not NUL-terminated) */
    size_t queue_len;               /* its length */
    uint64_t now;                   /* wheel time of the change (PUT: when the key was made) */
    uint64_t id;                    /* job id (job events) */
    int32_t priority;               /* PUT */
    uint64_t visible_at;            /* PUT, RELEASE: 0 = ready now, else absolute wheel ms */
    const void *payload;            /* PUT: the payload bytes */
    size_t len;                     /* PUT: payload length */
    const char *key;                /* PUT: idempotency key or NULL */
    size_t key_len;                 /* PUT: its length */
    struct queue_settings settings; /* CREATE, UPDATE */
    int immediate;                  /* SHUTDOWN: 1 for shutdown(immediate=True) */
    int reason;                     /* DROP: enum queue_drop_reason (informational);
                                       DEAD, RESULT: enum queue_dead_reason */
};

typedef void (*queue_event_fn)(void *ctx, const struct queue_event *ev);

/* ---- engine ------------------------------------------------------------- */

struct queue_engine_config {
    size_t mem_limit;                    /* bytes charged by QUEUE_JOB_COST and keys; 0 = none */
    struct mem_budget *budget;           /* shared budget to charge (its limit rules, mem_limit
                                            is ignored), or NULL for the engine's own; it must
                                            outlive the engine */
    queue_event_fn on_event;             /* durability hook, or NULL */
    void *event_ctx;                     /* first argument of on_event */
    void *(*alloc)(void *ctx, size_t n); /* malloc replacement (fault injection), or NULL */
    void (*dealloc)(void *ctx, void *p); /* its free; set both or neither */
    void *alloc_ctx;                     /* first argument of alloc and dealloc */
    uint64_t hash_seed;                  /* seeds the key hash; give random bits */
};

struct queue_engine_stats {
    size_t mem_used;        /* bytes this engine charged (jobs and keys) */
    size_t mem_limit;       /* the budget's limit, 0 = none */
    size_t mem_budget_used; /* bytes charged to the budget by every owner (timers too) */
    size_t jobs;      /* jobs in the id index, dead letters and the grave included */
    uint64_t reaping; /* gone jobs the reaper has not freed yet */
    size_t queues;    /* queues */
    uint64_t next_id; /* id the next put gets */
};

/* A new engine on wheel (cfg may be NULL for defaults); NULL when out of memory. */
struct queue_engine *queue_engine_new(struct timer_wheel *wheel,
                                      const struct queue_engine_config *cfg);

/* Delete every queue (waiters are woken with QUEUE_ERR_DELETED; their wake()
 * must not call the engine), then free the engine. NULL is a no-op. */
void queue_engine_free(struct queue_engine *e);

/*
 * Do up to budget jobs' worth of the work purges, shutdowns and deletions
 * left (DROP events, frees); see "Bulk removal". Returns 0 when none is
 * left, else non-zero: call it again on a later turn of the event loop. A
 * budget of SIZE_MAX finishes everything.
 */
size_t queue_engine_reap(struct queue_engine *e, size_t budget);

/* Change the memory limit (config reload) of the budget in use, shared or
 * not; existing jobs are kept. */
void queue_engine_set_mem_limit(struct queue_engine *e, size_t limit);

/* The budget this engine charges, to share with another engine (timers). */
struct mem_budget *queue_engine_budget(struct queue_engine *e);

void queue_engine_stats(const struct queue_engine *e, struct queue_engine_stats *st);

/*
 * Report, through fn, a sequence of events that rebuilds the engine's
 * durable state when replayed into a fresh engine: CREATE per queue, PUT
 * per live job (reserved ones as ready), PUT + DEAD per dead letter in
 * dead-list order, SHUTDOWN where set. For journal compaction. Not kept:
 * idempotency keys of jobs already gone, and the id counter (record
 * queue_engine_stats().next_id beside the snapshot).
 */
void queue_engine_snapshot(const struct queue_engine *e, queue_event_fn fn, void *ctx);

/* Make the next put use id (a snapshot restoring the counter). Ids are never
 * reused, so id below the current next id is QUEUE_ERR_INVALID. */
int queue_engine_set_next_id(struct queue_engine *e, uint64_t id);

/*
 * Apply a recorded event without reporting it. PUT takes the event's id
 * and bumps the id counter past it, and ignores maxsize, the memory limit
 * and shutdown, which held when it was recorded. Its key is remembered
 * until ev->now + the key window. ACK, RELEASE, DEAD and DROP accept a
 * job in any state, since a job reserved when recorded is READY in
 * replay. SHUTDOWN only sets the flag, because its drops are separate
 * events. Call it before serving: waiters are not expected during replay.
 */
int queue_engine_replay(struct queue_engine *e, const struct queue_event *ev);

/* Zero every queue's totals (total_put ... total_dead_purged): called after
 * the replay, so that they all count since this start (issue 16). A replay
 * counts the puts and acks still in the journal but no redelivery (leases
 * are not journaled) and nothing a compaction dropped, which mixed
 * "since the journal began" with "since start". */
void queue_engine_totals_reset(struct queue_engine *e);

/* ---- queues ------------------------------------------------------------- */

/* Create a queue (s NULL = defaults); *out (may be NULL) gets it, or the
 * existing queue on EXISTS. Errors: INVALID (name or settings), EXISTS,
 * NOMEM. Emits CREATE. */
int queue_create(struct queue_engine *e, const char *name, size_t len,
                 const struct queue_settings *s, struct queue **out);

/* Change settings. A larger maxsize serves waiting putters; lease and
 * window changes apply to later leases and keys. Emits UPDATE. */
int queue_update(struct queue *q, const struct queue_settings *s);

/* Delete q with its jobs and dead letters; every waiter is woken with
 * QUEUE_ERR_DELETED (a getter about to be woken loses its jobs and gets
 * that too). q is invalid afterwards (the reaper frees it). Emits DELETE. */
int queue_delete(struct queue *q);

/* The queue named name[0..len), or NULL. */
struct queue *queue_find(const struct queue_engine *e, const char *name, size_t len);

/* Queues in name order: queue_at(e, i) for i < queue_count(e). */
/* The index of the first queue whose name sorts after name (len 0: 0), for
 * paging by name: stable while queues come and go. */
size_t queue_after(const struct queue_engine *e, const char *name, size_t len);
size_t queue_count(const struct queue_engine *e);
struct queue *queue_at(const struct queue_engine *e, size_t i);

/* The queue's name (not NUL-terminated; *len gets its length) and settings. */
const char *queue_name(const struct queue *q, size_t *len);
const struct queue_settings *queue_settings_of(const struct queue *q);

struct queue_stats {
    uint64_t size;              /* READY jobs (asyncio's qsize) */
    uint64_t maxsize;           /* the setting */
    uint64_t reserved;          /* leased to a consumer */
    uint64_t delayed;           /* put or released with a delay, not yet visible */
    uint64_t dead;              /* dead letters */
    uint64_t unfinished;        /* put and not yet acked, dead or dropped */
    uint64_t putters;           /* waiting putters */
    uint64_t getters;           /* waiting getters */
    uint64_t joiners;           /* waiting joiners */
    uint64_t total_put;         /* jobs created (key repeats not counted) */
    uint64_t total_acked;       /* acks */
    uint64_t total_redelivered; /* deliveries with attempt > 1 (totals: since start) */
    uint64_t total_dead;        /* moves to the dead letters */
    uint64_t total_requeued;    /* dead letters requeued */
    uint64_t total_dropped;     /* jobs dropped by purge and shutdown */
    uint64_t total_dead_purged; /* dead letters purged */
    int shutdown;               /* 0, 1 shut down, 2 shut down immediately */
    uint64_t reaping;           /* purged jobs whose DROP event is still to come */
    uint64_t results;           /* job results kept (queue_result.c) */
};

void queue_stats(const struct queue *q, struct queue_stats *st);

/*
 * Python 3.13's Queue.shutdown. Puts fail with QUEUE_ERR_SHUTDOWN from now
 * on and waiting putters are woken with it. Not immediate: getters go on
 * draining, and a getter finding nothing ready waits while jobs may still
 * become ready (delayed, or reserved and maybe released). It gets
 * QUEUE_ERR_SHUTDOWN once unfinished is 0. That is a deliberate
 * difference from asyncio, where a got item never comes back. Immediate:
 * READY and DELAYED jobs are dropped, waiting getters are woken with
 * QUEUE_ERR_SHUTDOWN, and reserved jobs may still be acked; any that come
 * back (nack, lease expiry) are dropped. Joiners are woken (QUEUE_OK) when
 * unfinished reaches 0, as in asyncio. Repeating it is OK; a second call
 * may upgrade to immediate. Emits SHUTDOWN; the reaper emits DROP per job.
 */
int queue_shutdown(struct queue *q, int immediate);

/* Drop every READY and DELAYED job (reserved ones stay); *n (may be NULL)
 * gets how many. O(1): the reaper emits DROP per job later. */
int queue_purge(struct queue *q, uint64_t *n);

/* ---- jobs --------------------------------------------------------------- */

enum queue_job_state {
    QUEUE_JOB_READY,    /* waiting to be reserved */
    QUEUE_JOB_DELAYED,  /* waiting for visible_at */
    QUEUE_JOB_RESERVED, /* leased until deadline */
    QUEUE_JOB_DEAD,     /* in the dead letters */
};

/* A put's arguments. */
struct queue_put {
    const void *payload; /* bytes to copy; NULL allowed when len is 0 */
    size_t len;          /* payload length, <= max_payload */
    int32_t priority;    /* lower first; FIFO (by id) among equals */
    uint64_t delay_ms;   /* 0 = ready now, else visible after this long */
    const char *key;     /* idempotency key, or NULL */
    size_t key_len;      /* its length, 1..QUEUE_KEY_MAX when key is set */
};

/* What a reserve or peek reports about a job. */
struct queue_job_info {
    uint64_t id;         /* job id (never reused) */
    int32_t priority;    /* as put */
    uint32_t attempt;    /* deliveries so far; the reserve's lease token */
    int state;           /* enum queue_job_state */
    int reason;          /* DEAD: enum queue_dead_reason, else 0 (here: no holes, 64 B) */
    uint64_t deadline;   /* RESERVED: lease end; DELAYED: visible_at; else 0 (wheel ms) */
    const void *payload; /* the engine's copy (see "Who owns what") */
    size_t len;          /* payload length */
    const char *error;   /* DEAD: the text of the nack that killed it (a kept result), or NULL */
    size_t error_len;    /* its length */
};

/*
 * put_nowait. On QUEUE_OK *id gets the new job's id. If p->key was seen in
 * the key window, it gets the first job's id instead, with *dup = 1 and no
 * new job (dup may be NULL). Errors: INVALID, TOOBIG, SHUTDOWN, FULL (at
 * maxsize, or putters already waiting), MEMORY, NOMEM. Emits PUT.
 */
int queue_put(struct queue *q, const struct queue_put *p, uint64_t *id, int *dup);

/*
 * A batch put, all or nothing as to room: the n puts (no keys) go in only
 * if the queue has room for all n and no putter waits, and get consecutive
 * ids from *first. Waiting getters are served once, after the last put, so
 * one waiting for several jobs can take several of the batch. Errors as
 * queue_put() before anything is put (FULL: room for fewer than n); a
 * MEMORY or NOMEM part-way stops it with *done jobs put (the ones before).
 */
int queue_put_batch(struct queue *q, const struct queue_put *p, unsigned n, uint64_t *first,
                    unsigned *done);

/*
 * Reserve (get_nowait) up to count ready jobs, in (priority, id) order,
 * each leased for lease_ms (0 = the queue's lease) with attempt+1. The
 * jobs go to out[0..*n). Errors: INVALID (count 0), EMPTY, SHUTDOWN (shut
 * down and nothing left). Not journaled (leases are not durable).
 */
int queue_reserve(struct queue *q, unsigned count, uint64_t lease_ms, struct queue_job_info *out,
                  unsigned *n);

/* task_done: free a RESERVED job. attempt != 0 must equal the job's
 * attempt, so a consumer whose lease expired cannot ack the redelivery.
 * Errors: NOTFOUND, STATE. Emits ACK. */
int queue_ack(struct queue *q, uint64_t id, uint32_t attempt);

/* Release a RESERVED job: READY now, or DELAYED for delay_ms. If it has had
 * max_attempts deliveries it goes to the dead letters instead (emits DEAD,
 * not RELEASE). Errors: NOTFOUND, STATE, INVALID. Emits RELEASE. */
int queue_nack(struct queue *q, uint64_t id, uint32_t attempt, uint64_t delay_ms);

/* Extend a RESERVED job's lease to now + lease_ms (0 = the queue's lease);
 * *deadline (may be NULL) gets the new end. Errors: NOTFOUND, STATE. */
int queue_touch(struct queue *q, uint64_t id, uint32_t attempt, uint64_t lease_ms,
                uint64_t *deadline);

/* Undo a delivery the caller could not hand over: the RESERVED job is
 * READY again in its place, its attempt count as before. No event (the
 * journal never saw the reserve). Errors: NOTFOUND, STATE. */
int queue_unreserve(struct queue *q, uint64_t id, uint32_t attempt);

/* Information about job id of q, in any state. Errors: NOTFOUND. */
int queue_peek(const struct queue *q, uint64_t id, struct queue_job_info *out);

/* The job a reserve would return next, without reserving it. Errors: EMPTY. */
int queue_peek_ready(const struct queue *q, struct queue_job_info *out);

/* ---- waiting ------------------------------------------------------------ */

enum queue_wait_kind {
    QUEUE_WAIT_GET,  /* reserve, waiting while nothing is ready */
    QUEUE_WAIT_PUT,  /* put, waiting while the queue is full */
    QUEUE_WAIT_JOIN, /* join, waiting until unfinished is 0 */
};

struct queue_waiter;

/*
 * Called exactly once per QUEUE_WAIT, after the waiter is unlinked.
 * status: QUEUE_OK (GET: njobs jobs reserved to it; PUT: the put is done,
 * id set; JOIN: unfinished is 0), QUEUE_ERR_SHUTDOWN, QUEUE_ERR_DELETED,
 * or for PUT the put's own error (QUEUE_ERR_MEMORY, QUEUE_ERR_NOMEM). The
 * waiter is idle again by then, so it may be reused or freed.
 */
typedef void (*queue_wake_fn)(struct queue_waiter *w, int status);

/* Embedded in the caller's per-request state; see "Who owns what": wake()
 * finds that state from w (container_of). A getter's fields and a
 * putter's share memory (a waiting reserve's state is its memory: issue
 * 19): set only those of w's kind, after queue_waiter_init. */
struct queue_waiter {
    /* set by the caller (queue_waiter_init, then the kind's fields) */
    int kind;                    /* enum queue_wait_kind */
    /* engine-private */
    int state;                   /* idle, waiting, waking */
    int status;                  /* outcome to pass to wake() */
    /* set by the caller */
    queue_wake_fn wake;          /* outcome callback */
    /* engine-private */
    struct list link;            /* queue's wait list, then the engine's wake list */
    struct queue *q;             /* queue waited on */
    struct queue_engine *e;      /* engine (outlives q on delete) */
    union {
        struct { /* GET */
            unsigned count;              /* most jobs wanted, >= 1; the size of jobs[] */
            unsigned njobs;              /* result: entries of jobs[] filled */
            uint64_t lease_ms;           /* lease length, 0 = the queue's */
            struct queue_job_info *jobs; /* caller's array of count entries */
        };
        struct { /* PUT */
            union {
                struct queue_put put; /* one job (batch 0): the put to perform, in arrival order */
                struct {              /* a batch (batch > 0) */
                    const struct queue_put *puts; /* batch entries, no keys */
                    unsigned done;                /* result: jobs put */
                };
            };
            uint64_t id;          /* result: the job's id (the first one's on a key repeat;
                                     a batch's first, the rest follow it) */
            int duplicate;        /* result: 1 on an idempotency-key repeat */
            unsigned batch;       /* 0: put; else the number of puts[] */
        };
    };
};

/* Zero w and set its kind and callback; GET count defaults to 1. */
void queue_waiter_init(struct queue_waiter *w, int kind, queue_wake_fn wake);

/*
 * Blocking get. QUEUE_OK: served at once, w->jobs[0..w->njobs) are
 * reserved, no wake() follows. QUEUE_WAIT: linked behind earlier getters;
 * when jobs become ready the first getter gets up to count of them.
 * Errors: INVALID, SHUTDOWN.
 */
int queue_reserve_wait(struct queue *q, struct queue_waiter *w);

/*
 * Blocking put. The engine performs the put itself when room appears, in
 * arrival order, so the wake carries the id and a job never waits outside
 * the queue. QUEUE_OK: done at once (w->id, w->duplicate). QUEUE_WAIT:
 * linked. Errors as queue_put() except FULL. A batch (batch > 0, puts[])
 * waits until there is room for all of it, and holds back the putters
 * behind it meanwhile; it is done as queue_put_batch() (w->id the first id,
 * w->done the jobs put).
 */
int queue_put_wait(struct queue *q, struct queue_waiter *w);

/* join: QUEUE_OK at once if unfinished is 0, else QUEUE_WAIT until it is. */
int queue_join_wait(struct queue *q, struct queue_waiter *w);

/*
 * Cancel a wait: the client left or its time ran out. O(1). wake() will
 * not be called. It is a no-op on an idle waiter (e.g. one already
 * woken). A getter cancelled between being served and its wake()
 * (possible only from another wake()) gives its jobs back first.
 */
void queue_waiter_cancel(struct queue_waiter *w);

/* Give back every job a woken getter still holds (queue_unreserve on each
 * of w->jobs[0..njobs)); for a caller whose client left during wake(). */
void queue_waiter_release(struct queue_waiter *w);

/* ---- dead letters ------------------------------------------------------- */

/*
 * List dead letters, oldest death first: up to max entries after the dead
 * job after (0 = from the start) go to out[0..*n). Errors: NOTFOUND
 * (after is not a dead letter of q).
 */
int queue_dead_list(const struct queue *q, uint64_t after, struct queue_job_info *out, size_t max,
                    size_t *n);

/* Move dead letter id (0 = all) back to READY with attempts reset; *n (may
 * be NULL) gets how many. Errors: NOTFOUND, SHUTDOWN. Emits REQUEUE per job. */
int queue_dead_requeue(struct queue *q, uint64_t id, uint64_t *n);

/* Drop dead letter id (0 = all). Errors: NOTFOUND. Emits DROP (for all:
 * the reaper emits DROP per job later). */
int queue_dead_purge(struct queue *q, uint64_t id, uint64_t *n);

/* ---- results (queue_result.c) ------------------------------------------- */

/*
 * A job's outcome, kept for its queue's result_ttl so that a producer can
 * await it (GET .../jobs/{id}/result). An ack may carry a result (bytes and
 * a content type), and a nack on a job's last attempt an error text: each
 * is kept as one entry per job id, charged to the memory limit
 * (QUEUE_RESULT_COST), expired by a wheel timer, reported as a RESULT
 * event before the ACK or DEAD it belongs to, replayed and snapshotted
 * (an entry whose expiry passed is not brought back). Requeueing a dead
 * letter forgets its entry; deleting a queue forgets its entries. An ack
 * without a result keeps nothing (no memory, no record: the ack's fast
 * path is unchanged).
 *
 * Why a job died stays on the dead letter itself (queue_job_info.reason),
 * journaled in the DEAD event.
 */
enum queue_outcome {
    QUEUE_OUTCOME_ACKED = 1, /* acked with a result */
    QUEUE_OUTCOME_DEAD = 2,  /* moved to the dead letters (nacked with an error text) */
};

enum queue_dead_reason {
    QUEUE_DEAD_UNKNOWN = 0, /* journaled before reasons were kept */
    QUEUE_DEAD_NACKED = 1,  /* nacked on its last attempt */
    QUEUE_DEAD_LEASE = 2,   /* its last lease ran out */
};

/* "nacked", "lease_expired", "unknown". */
const char *queue_dead_reason_name(int reason);

#define QUEUE_CTYPE_MAX 127 /* content type of a result, bytes */
#define QUEUE_RESULT_OVERHEAD 112 /* header 75 (80) + malloc 16 + index share 16 */
#define QUEUE_RESULT_COST(len, ctlen) ((size_t)(len) + (size_t)(ctlen) + QUEUE_RESULT_OVERHEAD)

struct queue_result_info {
    uint64_t id;
    int outcome;       /* enum queue_outcome */
    int reason;        /* DEAD: enum queue_dead_reason */
    uint32_t attempt;  /* the delivery that finished it */
    uint64_t expires;  /* wheel ms */
    const char *ctype; /* content type (ACKED; may be empty), engine memory */
    size_t ctype_len;
    const void *body;  /* ACKED: the result; DEAD: the error text; engine memory */
    size_t len;
};

/*
 * queue_ack with a result: the job is acked and {ctype, body} kept for the
 * queue's result_ttl (nothing kept when it is 0). Errors as queue_ack, and
 * TOOBIG (len > max_payload), INVALID (ctype_len > QUEUE_CTYPE_MAX),
 * MEMORY (the result would pass the memory limit: the job stays
 * reserved), NOMEM. Emits RESULT, then ACK.
 */
int queue_ack_result(struct queue *q, uint64_t id, uint32_t attempt, const char *ctype,
                     size_t ctype_len, const void *body, size_t len);

/*
 * queue_nack with an error text: when this nack sends the job to the dead
 * letters, the text is kept as its DEAD result (if the memory limit
 * allows: a nack is never refused for it; len is cut to max_payload).
 * *dead (may be NULL) says whether it died. Emits RESULT, then DEAD.
 */
int queue_nack_error(struct queue *q, uint64_t id, uint32_t attempt, uint64_t delay_ms,
                     const void *err, size_t len, int *dead);

/* The kept result of job id of q. Errors: NOTFOUND (none, or expired). */
int queue_result_get(const struct queue *q, uint64_t id, struct queue_result_info *out);

/* Results q keeps now. */
uint64_t queue_results_count(const struct queue *q);

/* ---- listing jobs (queue_result.c) ---------------------------------------- */

/* Where a page of a job listing ends: pass it back for the next page. */
struct queue_cursor {
    int64_t k;   /* READY: priority; DELAYED: visible_at (wheel ms); RESERVED: 0 */
    uint64_t id;
};

/*
 * Up to max jobs of q in state (READY in delivery order, DELAYED by due
 * time, RESERVED by id, DEAD oldest death first) after *after (NULL: from
 * the first), into out[0..*n); *more says whether any follow, *next is
 * the cursor of the last one. Reads every job of the engine for READY,
 * DELAYED and RESERVED (O(jobs)): for operators and consoles, not for the
 * hot path. Errors: INVALID (state).
 */
int queue_jobs_list(const struct queue *q, int state, const struct queue_cursor *after,
                    struct queue_job_info *out, size_t max, size_t *n, int *more,
                    struct queue_cursor *next);

/*
 * The same in slices, so a listing over a million jobs never holds the
 * loop: queue_jobs_scan_init, then queue_jobs_scan_step (up to budget
 * positions of the id index per call, one call per loop turn; 1 when the
 * pass is over) and queue_jobs_scan_finish (out[] from the candidates
 * still in state). The scan keeps (key, id) pairs, never job pointers, so
 * the engine may change between steps (a job that moved is left out; a
 * resize of the index restarts the pass); q must still exist at each call
 * (look it up again by name). READY, DELAYED, RESERVED only; cand has max
 * entries, owned by the caller.
 */
struct queue_jobs_scan {
    int state;
    int has_after;
    struct queue_cursor after;
    struct queue_cursor *cand; /* a max-heap of the smallest keys seen */
    size_t max, ncand;
    size_t pos, span;          /* the pass's place in the id index */
    int more;                  /* more than max matched */
};
void queue_jobs_scan_init(struct queue_jobs_scan *s, int state, const struct queue_cursor *after,
                          struct queue_cursor *cand, size_t max);
int queue_jobs_scan_step(const struct queue *q, struct queue_jobs_scan *s, size_t budget);
void queue_jobs_scan_finish(const struct queue *q, struct queue_jobs_scan *s,
                            struct queue_job_info *out, size_t *n, int *more,
                            struct queue_cursor *next);

#endif
