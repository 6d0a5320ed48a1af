/*
 * qsvc_redis: the Redis queue backend's state, shared by its files:
 * qsvc_redis.c (the operations: each one FCALL of the function library
 * qsvc_redis.lua), qsvc_redis_reply.c (their replies), qsvc_redis_wait.c
 * (blocking waits held in the daemon, woken by the notification channel)
 * and qsvc_redis_svc.c (the library's loading, the service's life). Private to svc/. docs/REDIS.md.
 *
 * The daemon holds no per-job state: a call in flight holds its reply's
 * copy until done(); a waiting call holds its arguments (a waiting put,
 * its payload) and its place in its queue's watch.
 */
#ifndef AWAITD_QSVC_REDIS_H
#define AWAITD_QSVC_REDIS_H

#include "core/list.h"
#include "core/timer.h"
#include "svc/qsvc.h"

#include <stddef.h>
#include <stdint.h>

struct redis_conn;
struct redisReply;

#define RSVC_SAFETY_MS 1000 /* waiters re-check this often even without a notification */

enum rop_kind {
    R_PUT, R_BATCH, R_RESERVE, R_JOIN, R_ACK, R_NACK, R_TOUCH, R_PEEK, R_DECLARE, R_DELETE,
    R_STATS, R_LIST, R_DEAD, R_BULK, R_ACKS, R_RESULT, R_JOBS, R_NKINDS
};

struct rsvc {
    struct qsvc base;         /* first: a struct qsvc * is a struct rsvc * */
    char why[QSVC_WHY_MAX];   /* res.why of an answer given at once, until the next one */
    struct server *srv;
    struct redis_conn *rc;
    int lib_ok;               /* the function library in Redis is ours */
    char *lib;                /* the library's text, version filled in */
    char version[17];
    char prefix[72];
    char channel[96];         /* PREFIX "events" */
    char registry[96];        /* PREFIX "queues": the set of queue names */
    struct list watches;      /* struct rwatch: queues with waiters here */
    struct timer safety_t;
    int draining;
    uint64_t ops_total[R_NKINDS]; /* operations started, by kind (metrics) */
    struct list *rwaits;      /* result waits by job id (qsvc_redis_result.c), or NULL */
};

/* A queue this node has waiters on. */
struct rwatch {
    struct rsvc *svc;
    struct list node;         /* svc->watches */
    struct list getters, putters, joiners; /* struct rop by wnode, arrival order */
    struct timer due_t;       /* the next delayed job or lease end: re-check a getter */
    size_t len;
    char name[QUEUE_NAME_MAX + 1];
};


/* One call's state while it is kept (call->pend). */
struct rop {
    struct rsvc *svc;
    struct qsvc_call *call;   /* NULL once completed or given up */
    int kind;                 /* enum rop_kind */
    int inflight;             /* commands sent, not yet answered */
    int released;             /* the caller is done with it (release) */
    int held;                 /* reserve: jobs handed to done(), not yet delivered */
    int ok_status;            /* the outcome waiting for WAIT (replicas_ack) */
    /* a blocking wait */
    uint64_t wait_ms;
    struct rwatch *watch;     /* set while waiting */
    struct list wnode;
    struct timer wait_t;
    int recheck;              /* woken while a check was in flight: check again */
    int rechecked;            /* a later check (NOQUEUE then means DELETED) */
    /* arguments */
    size_t qlen;
    char qname[QUEUE_NAME_MAX + 1];
    uint64_t id, arg;         /* job id; reserve lease; nack delay; touch lease; bulk arg */
    uint32_t attempt;
    int32_t priority;
    uint64_t delay_ms;
    unsigned count;           /* reserve */
    int op;                   /* bulk */
    struct qsvc_settings set; /* declare */
    const struct qsvc_batch_job *bjobs; /* batch: the caller's, or (waiting) a copy in extra[] */
    size_t bn;                /* batch: jobs; acks: items */
    struct qsvc_ack_item *acks; /* acks: the caller's (they last until done) */
    const char *payload, *key; /* put: copies in extra[] */
    size_t len, key_len;
    /* results */
    struct queue_job_info *jobs; /* reserve, peek: ours; dead: the caller's */
    size_t max;               /* dead: room in jobs */
    char *copy;               /* payloads of the jobs */
    char *why;                /* res.why of a kept call (rop_why), freed with the op */
    struct qsvc_queue *queues; /* list */
    size_t nqueues, nnames;
    /* results and listings (qsvc_redis_result.c); a result's or error's bytes are
     * payload/len, its content type key/key_len */
    int state, has_after;     /* jobs: the state, and whether after_k and id name a cursor */
    int64_t after_k;
    size_t preview;           /* jobs: payload bytes wanted */
    struct list rnode;        /* a result wait: its bucket in svc->rwaits ... */
    struct timer due_t;       /* ... and its job's lease end: check again then */
    int rwaiting;             /* in a bucket */
    _Alignas(max_align_t) char extra[]; /* reserve: count jobs (aligned for them); put: payload, key */
};

extern const struct qsvc_ops qsvc_redis_ops;

/* The function library's text (malloc'd) with its version, a hash of the
 * text, filled in; NULL when out of memory. The timers load it too. */
char *rsvc_library_text(char version[17]);

/* A fresh rop with extra bytes (NULL: no memory); send its command and keep the call:
 * PENDING, or the error (rop freed; UNAVAILABLE when Redis is not there). */
struct rop *rop_new(struct rsvc *svc, int kind, const char *q, size_t qlen, size_t extra);
int rop_start(struct rop *rop, struct qsvc_call *call);
/* Send the FCALL of rop's operation (again, for a waiter's re-check). 0 or -1. */
int rop_send(struct rop *rop);
/* Finish rop's call with st: done() runs from the loop. */
void rop_finish(struct rop *rop, int st);
/* Free rop once neither the caller nor Redis needs it. */
void rop_maybe_free(struct rop *rop);
/* rop's call fails for this reason (res.why): text of rop's own. */
void rop_why(struct rop *rop, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Give back jobs a reserve got but could not hand over (FCALL aw_unreserve). */
void rop_unreserve_jobs(struct rop *rop);

/* The reply of rop's FCALL (qsvc_redis_reply.c). */
void rop_on_reply(void *arg, struct redisReply *r, const char *why);
/* Element i of an array reply as a number (an integer, or a string of
 * digits); 0 when r is not an array or has no element i. The timer
 * service (tsvc_redis*.c) reads its replies with it too. */
long long rsvc_ival(const struct redisReply *r, size_t i);
/* One integer field of a struct, read from a reply's element at + idx:
 * its offset and size (1, 2, 4 or 8 bytes; a signed and an unsigned field
 * of one size get the same bits). RSVC_FIELD(struct x, member, idx). */
struct rsvc_field {
    unsigned idx, off, size;
};
#define RSVC_FIELD(type, member, i) {(i), offsetof(type, member), sizeof(((type *)0)->member)}
/* The n fields f of dst from r's elements at + f[k].idx (rsvc_ival: 0 for
 * one missing). */
void rsvc_fields(const struct redisReply *r, size_t at, void *dst, const struct rsvc_field *f,
                 size_t n);
/* Element i of an array reply if it is a string, else NULL. */
const struct redisReply *rsvc_sval(const struct redisReply *r, size_t i);
/* Stats (aw_stats' 20 figures from element at) into q, with this node's waiters. */
void rsvc_fill_stats(struct rop *rop, const struct redisReply *r, size_t at, struct qsvc_queue *q,
                     const char *name, size_t len);
/* A reply nobody needs. */
void rsvc_ignore(void *arg, struct redisReply *r, const char *why);

/* The base key of queue (name, len): "{PREFIX}NAME" in its hash tag; its length. */
int rsvc_key(const struct rsvc *svc, const char *q, size_t qlen, char *key, size_t size);

/* Send FCALL fn on queue (name, len) with args; 0 sent, -1 not (down). */
int rsvc_fcall(struct rsvc *svc, const char *fn, const char *q, size_t qlen, int nargs,
               const char **args, const size_t *lens, void (*cb)(void *, struct redisReply *,
                                                                  const char *),
               void *arg);

/* ---- results and listings (qsvc_redis_result.c) ---- */

int rsvc_ack_result(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, const struct qsvc_outcome *o);
int rsvc_nack_error(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen,
                    uint64_t id, uint32_t attempt, uint64_t delay_ms, const struct qsvc_outcome *o);
int rsvc_result(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen, uint64_t id,
                uint64_t wait_ms);
int rsvc_jobs(struct qsvc *base, struct qsvc_call *call, const char *q, size_t qlen, int state,
              const struct queue_cursor *after, struct queue_job_info *jobs, size_t max,
              size_t preview);
/* Send rop's aw_result or aw_jobs (R_RESULT, R_JOBS, R_DEAD). 0 or -1. */
int rsvc_result_send(struct rop *rop);
/* Their replies (st: the reply's status, r NULL when it failed). */
void rsvc_result_reply(struct rop *rop, const struct redisReply *r, int st);
/* A notification for result waits ("o ID QUEUE": job ID finished; "x 0 QUEUE": deleted). */
void rsvc_result_message(struct rsvc *svc, const char *msg, size_t len);
/* Re-check every result wait (reconnect), end them all with st (drain), leave one. */
void rsvc_result_wake_all(struct rsvc *svc);
void rsvc_result_end_all(struct rsvc *svc, int st);
void rsvc_result_leave(struct rop *rop);

/* ---- waits (qsvc_redis_wait.c) ---- */

/* Set up svc's waits (its safety timer). */
void rwait_init(struct rsvc *svc);
/* Put rop in its queue's watch, in arrival order (list: getters, putters or joiners), and
 * arm its wait= deadline. -1: no memory. */
int rwait_join(struct rop *rop);
/* Take rop out of its watch (and cancel its deadline). */
void rwait_leave(struct rop *rop);
/* A check found nothing: wait for a wake (next_due_ms >= 0: a getter's next due job). */
void rwait_idle(struct rop *rop, int64_t next_due_ms);
/* Check rop (a watch's waiter, or a result wait) again now, or, while its check is in
 * flight, once that answers: a wake landing meanwhile is not lost. */
void rwait_recheck(struct rop *rop);
/* A notification "KIND N QUEUE" from the channel. */
void rwait_message(struct rsvc *svc, const char *msg, size_t len);
/* Re-check every waiter (after a reconnect). */
void rwait_wake_all(struct rsvc *svc);
/* End every wait with st (drain). */
void rwait_end_all(struct rsvc *svc, int st);
/* This node's waiters on a queue, for stats. */
void rwait_counts(struct rsvc *svc, const char *q, size_t qlen, struct queue_stats *st);

#endif
