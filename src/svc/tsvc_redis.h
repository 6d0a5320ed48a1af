/*
 * tsvc_redis: the Redis timer backend's state, shared by its files:
 * tsvc_redis.c (the operations: create, get and await, cancel),
 * tsvc_redis_list.c (list),
 * tsvc_redis_svc.c (the service's life, metrics) and tsvc_redis_fire.c (firing: one wake-up per node at
 * the earliest due time of any shard, the atomic claim of due ticks, the
 * put into the queue, the settle). Private to svc/. docs/REDIS.md.
 *
 * Timers live in TRSVC_SHARDS shards, each its own hash tag
 * "{PREFIXtimers:N}", so they spread over a cluster's slots. A timer's id
 * is seq * TRSVC_SHARDS + shard: its shard is id % TRSVC_SHARDS. The
 * daemon holds no per-timer state: per shard, its earliest due time; per
 * await, the caller's call; per tick being fired, its claim.
 */
#ifndef AWAITD_TSVC_REDIS_H
#define AWAITD_TSVC_REDIS_H

#include "core/buf.h"
#include "core/list.h"
#include "core/timer.h"
#include "svc/tsvc.h"

#include <stddef.h>
#include <stdint.h>

struct redis_conn;
struct redisReply;
struct event;

#define TRSVC_SHARDS 16
#define TRSVC_CLAIM_MAX 64          /* due timers claimed per call */
#define TRSVC_LOSER_DEFER_MS 20     /* a node that lost a claim race claims this much later */
#define TRSVC_ONESHOT_GRACE_MS 1000 /* a one-shot later than this was missed (on_missed) */
#define TRSVC_RETRY_MIN_MS 10       /* on_full = retry: backoff bounds, as the local engine's */
#define TRSVC_RETRY_MAX_MS 1000
#define TRSVC_ONCE_RETRY_MS 60000   /* a one-shot retries its tick this long */
#define TRSVC_FIN_RING 256          /* recent "f ID" notifications kept (await races) */
#define TRSVC_NLATE 11

struct trshard {
    int64_t head;       /* earliest due time (Redis ms), -1 none */
    uint64_t at_ms;     /* local monotonic ms to claim at; UINT64_MAX none */
    int claiming;       /* a claim is in flight */
    int64_t msg_head;   /* a notification's head that came while claiming, else -2 */
    uint64_t defer_ms;  /* this node's last claim here took nothing (another node won the
                           race): its next claims wait this long after the head (issue 13) */
    int woke;           /* the claim in flight is a wake-up's (not a reconnect's take-back) */
    struct trsvc *svc;
    unsigned idx;
};

struct trsvc {
    struct tsvc base;          /* first */
    struct server *srv;
    struct redis_conn *rc;
    int lib_ok;
    int draining;
    char *lib;
    char version[17];
    char prefix[72];
    char channel[96];          /* PREFIX "timers": this backend's notifications */
    char qchannel[96];         /* PREFIX "events": the queues' (a fire's put notifies it) */
    char token[40];            /* this node's claims */
    struct trshard shards[TRSVC_SHARDS];
    struct timer wake_t;       /* the earliest shard's claim */
    struct list awaits;        /* struct tsvc_call by link: awaits in progress */
    struct list ready;         /* calls to complete from the loop */
    struct event *ready_ev;
    unsigned next_shard;       /* creates go round the shards */
    uint64_t fin_seq;          /* "f ID" notifications seen */
    uint64_t fin_ring[TRSVC_FIN_RING];
    uint64_t rng;
    /* metrics (this node's) */
    uint64_t fires, skips, retries, claims, claimed, lost;
    uint64_t late[TRSVC_NLATE + 1];
    uint64_t late_sum_ms;
};

/* Send FCALL fn on shard with args (binary-safe with lens); 0 sent, -1 not (down). */
int trsvc_fcall(struct trsvc *svc, const char *fn, unsigned shard, int nargs, const char **args,
                const size_t *lens, void (*cb)(void *, struct redisReply *, const char *),
                void *arg);
/* r is Redis's "Function not found": the library went; reconnect (and reload). 1 if so. */
int trsvc_lib_gone(struct trsvc *svc, const struct redisReply *r);
/* Count a firing's lateness (Redis ms) in the metrics' histogram. */
void trsvc_late(struct trsvc *svc, int64_t late_ms);
/* A random number (jitter draws). */
uint64_t trsvc_rand(struct trsvc *svc);

/* ---- the operations (tsvc_redis.c) ---- */

extern const struct tsvc_ops trsvc_ops;
/* Complete the calls on svc->ready (the ready event's work). */
void trsvc_run_ready(struct trsvc *svc);
void trsvc_on_ready(int fd, short what, void *arg);
/* A timer finished ("f ID"; all: every await, after a reconnect): its awaits re-read it. */
void trsvc_awaits_finished(struct trsvc *svc, uint64_t id, int all);
/* Answer every await TSVC_DRAINING. */
void trsvc_end_awaits(struct trsvc *svc);

/* ---- firing (tsvc_redis_fire.c) ---- */

void tfire_init(struct trsvc *svc);
/* Claim on every shard now (after a connect): learns every head. */
void tfire_claim_all(struct trsvc *svc);
/* A "d SHARD HEAD NOW" notification. */
void tfire_head(struct trsvc *svc, unsigned shard, int64_t head, int64_t now);
/* Stop (close). */
void tfire_stop(struct trsvc *svc);

/* ---- a call's state: tsvc_redis.c, tsvc_redis_list.c ----------------------------------- */

enum { OP_CREATE, OP_GET, OP_LIST, OP_CANCEL };

#define TVIEW 16 /* elements of a timer in a reply (qsvc_redis.lua's tview) */

/* A listed timer before the merge: strings as offsets into the op's buffer. */
struct tlisted {
    struct tsvc_timer t;
    size_t qoff, coff;
};

struct trop {
    struct trsvc *svc;
    struct tsvc_call *call; /* NULL once answered or given up */
    int op;
    int inflight;           /* commands sent, not answered */
    uint64_t id;
    uint64_t wait_ms;       /* get: await this long */
    uint64_t fin_seq;       /* get: svc->fin_seq when it was sent */
    int rechecked;
    /* create */
    struct tsvc_spec spec;  /* strings in extra[] */
    int64_t redis_now;      /* TIME's answer */
    int failed;
    /* list */
    uint64_t after;
    size_t max, n;
    struct tsvc_timer *out;
    struct tlisted *items;
    struct buf strs;
    char extra[];
};

static inline struct trsvc *trsvc_of(struct tsvc *s) {
    return (struct trsvc *)s;
}

/* The timer at element at of r into o; queue and cron copied to text when given. */
void trop_timer_of(const struct redisReply *r, size_t at, struct tsvc_timer *o, char *text);
/* A new call's state, hung off call->pend (NULL out of memory). */
struct trop *trop_new(struct trsvc *svc, struct tsvc_call *call, int kind, size_t extra);
/* TSVC_OK, or the status (draining, unavailable) a call is refused with now. */
int trop_refuse(struct trsvc *svc, struct tsvc_call *call);
/* A call that could not start (sent < 0): answered now (done() is not called). */
int trop_started(struct trop *op, int sent);
/* Answer op's call with status: done() runs from the loop. */
void trop_complete(struct trop *op, int status);
void trop_fail(struct trop *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void trop_unavailable(struct trop *op, const char *why);
/* An error reply, or an answer we cannot read: 503 naming it (1), else 0. */
int trop_bad_reply(struct trop *op, const struct redisReply *r, const char *why);
/* Free op once neither the caller nor Redis needs it. */
void trop_maybe_free(struct trop *op);
/* tsvc_redis_list.c: the list operation. */
int trsvc_list(struct tsvc *base, struct tsvc_call *call, uint64_t after, struct tsvc_timer *out,
               size_t max);

#endif
