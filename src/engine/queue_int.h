/*
 * queue_int: the engine's internal layout, shared by queue.c (engine,
 * queues, waiters, replay), queue_job.c (job life), queue_heap.c (the
 * ready heap) and queue_tab.c (hash tables). Not for users of queue.h.
 */
#ifndef AWAITD_QUEUE_INT_H
#define AWAITD_QUEUE_INT_H

#include "engine/queue.h"
#include "core/mem_budget.h"
#include "core/timer.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Open addressing of element pointers, linear probing, Fibonacci hashing
 * of a 64-bit key stored in each element at key_off. Deletion shifts back
 * instead of leaving tombstones, so lookups never slow down with churn.
 * Capacity is a power of two, at load 3/8..3/4 (1/8 after mass removal
 * until the next shrink). Resizing is incremental, as in Redis's dict:
 * the old array is kept and emptied a few slots per insert and removal,
 * and lookups look in both meanwhile, so growing a table of a million
 * jobs never stops the loop for the 50-100 ms a full rehash takes.
 */
struct queue_tab {
    void **slots;       /* capacity entries, NULL = empty */
    size_t mask;        /* capacity - 1 (capacity 0 when slots is NULL) */
    size_t count;       /* elements, in both arrays */
    unsigned shift;     /* 64 - log2(capacity) */
    unsigned old_shift; /* the same for old */
    void **old;         /* the array being emptied into slots, or NULL */
    size_t old_mask;    /* its capacity - 1 */
    size_t old_pos;     /* its slots before this one are empty */
    size_t key_off;     /* offset of the element's uint64_t key */
};

/*
 * A job: one allocation, header then payload. The union holds whichever
 * links the state needs, which is what keeps a job at 60 bytes. Only the
 * timer's first three words (next, prev, expire) are reused. Its cb word
 * is never overwritten by the other members, but we re-initialise it
 * before each timer_add anyway.
 */
struct queue_job {
    union {
        struct timer timer; /* DELAYED: visible_at; RESERVED: lease end */
        struct {
            struct queue_job *child; /* first child */
            struct queue_job *next;  /* next sibling */
            struct queue_job *prev;  /* previous sibling, or the parent for a first child */
        } heap;                      /* READY: pairing-heap node */
        struct {
            struct queue_job *next, *prev;
            uint32_t reason; /* enum queue_dead_reason (in the timer's expire word) */
        } dead; /* DEAD: the queue's dead-letter list */
    } u;
    uint64_t id;             /* key of the id index */
    struct queue *q;         /* owner (timer callbacks need it) */
    int32_t priority;        /* lower first */
    uint32_t len;            /* payload bytes */
    uint16_t attempts;       /* deliveries, saturating */
    uint8_t state;           /* enum queue_job_state */
    uint8_t gen;             /* READY/DELAYED: q->gen_live, DEAD: q->gen_dead when placed */
    unsigned char payload[]; /* len bytes */
};

/* An idempotency key remembered until expires; in a per-queue table and a
 * FIFO by creation, so expired keys are freed from the head. */
struct queue_key {
    uint64_t hash;          /* seeded hash of the bytes: the table key */
    uint64_t id;            /* the first job put with this key */
    uint64_t expires;       /* wheel ms */
    struct queue_key *next; /* FIFO by creation */
    uint16_t len;           /* key bytes */
    char key[];             /* the bytes */
};

/* A kept result (queue_result.c): header, then content type, then body. */
struct queue_result {
    struct timer timer;               /* expiry */
    struct queue_result *next, *prev; /* the queue's results */
    uint64_t id;                      /* key of the engine's result index */
    struct queue *q;                  /* owner */
    uint32_t len;                     /* body bytes */
    uint32_t attempt;
    uint8_t outcome, reason, ctype_len;
    char data[]; /* ctype_len bytes of content type, then len bytes of body */
};

struct queue_wlist {
    struct list l; /* struct queue_waiter by link, FIFO: arrival order */
    size_t n;      /* waiters linked */
};

static inline void queue_wlist_init(struct queue_wlist *l) {
    list_init(&l->l);
    l->n = 0;
}

/* The first waiter, or NULL. */
static inline struct queue_waiter *queue_wlist_first(const struct queue_wlist *l) {
    struct list *n = list_first(&l->l);
    return n ? container_of(n, struct queue_waiter, link) : NULL;
}

struct queue {
    struct queue_engine *e;          /* owner */
    struct queue_settings set;       /* settings */
    struct queue_job *ready;         /* pairing-heap root, by (priority, id) */
    struct queue_job *dead_head;     /* dead letters, oldest death first */
    struct queue_job *dead_tail;     /* newest dead letter */
    struct queue_wlist waits[3];     /* waiting getters, putters, joiners (by kind) */
    struct queue_tab keys;           /* idempotency keys by hash */
    struct queue_key *key_head;      /* oldest key */
    struct queue_key *key_tail;      /* newest key */
    uint64_t nready, nreserved;      /* jobs per state */
    uint64_t ndelayed, ndead;        /* jobs per state */
    uint64_t unfinished;             /* kept apart from the above so tests can check the sum */
    uint64_t total_put, total_acked; /* totals, see struct queue_stats */
    uint64_t total_redelivered, total_dead;
    uint64_t total_requeued, total_dropped, total_dead_purged;
    int shutdown;                  /* 0, 1, 2 = immediate */
    /* The grave (queue_reap.c): jobs already gone from the queue, whose
     * DROP events and frees the reaper does a slice at a time. */
    uint8_t gen_live, gen_dead;    /* generations placed now; a purge bumps them */
    uint8_t gens_open;             /* bumps while the grave was not empty (wrap guard) */
    uint8_t zombie;                /* deleted: the reaper frees all that is left */
    int grave_reason;              /* enum queue_drop_reason of the latest retirement */
    struct queue_job *grave_heap;  /* detached ready trees: a stack through heap.next */
    struct queue_job *grave_dead;  /* detached dead letters (dead.next) */
    uint64_t grave_timed;          /* gone jobs still on the wheel, found by the scan */
    uint64_t grave_n;              /* gone jobs not yet freed */
    size_t scan_pos, scan_span;    /* the scan's place in the id index, and its span then */
    struct queue_result *results;  /* kept results (queue_result.c) */
    uint64_t nresults;
    struct queue *reap_next;       /* the engine's reap list */
    int reap_listed;               /* on it */
    size_t namelen;                /* name length */
    char name[QUEUE_NAME_MAX + 1]; /* NUL-terminated for convenience */
};

struct queue_engine {
    struct timer_wheel *wheel;      /* the only clock */
    struct queue_engine_config cfg; /* allocator filled in */
    uint64_t next_id;               /* next job id */
    size_t mem_used;                /* bytes this engine charged (its share of *budget) */
    struct mem_budget own;          /* the budget when the config gives none */
    struct mem_budget *budget;      /* where the memory limit is kept and checked */
    struct queue_tab jobs;          /* id -> job */
    struct queue **queues;          /* sorted by name */
    struct queue *last_found;       /* queue_find's last answer (a client's next request is
                                       mostly for the same queue), NULL once it is deleted */
    size_t nqueues, capqueues;      /* used and allocated entries */
    struct queue_wlist wakeq;       /* satisfied waiters whose wake() is pending */
    unsigned depth;                 /* operations in progress (nesting through wake) */
    int draining;                   /* the wake list is being run */
    int replaying;                  /* suppress events */
    struct queue *reap_head;        /* queues with a grave (or deleted ones), oldest first */
    struct queue *reap_tail;
    uint64_t reaping;               /* gone jobs not yet freed, all queues */
    struct queue_tab results;       /* id -> struct queue_result */
};

enum { QUEUE_WAITER_IDLE, QUEUE_WAITER_WAITING, QUEUE_WAITER_WAKING };

/* Zeroed memory (calloc with the default allocator). */
void *queue_zalloc(struct queue_engine *e, size_t n);

static inline void *queue_alloc(struct queue_engine *e, size_t n) {
    return e->cfg.alloc(e->cfg.alloc_ctx, n);
}

static inline void queue_dealloc(struct queue_engine *e, void *p) {
    if (p)
        e->cfg.dealloc(e->cfg.alloc_ctx, p);
}

static inline uint64_t queue_now(const struct queue_engine *e) {
    return e->wheel->now;
}

/* queue.c */
void queue_op_begin(struct queue_engine *e);
void queue_op_end(struct queue_engine *e); /* runs pending wakes at the outermost level */
void queue_settle(struct queue *q);        /* serve waiters after any change to q */
void queue_emit(struct queue *q, struct queue_event *ev);

/* Room for one more put: READY+DELAYED below maxsize. */
static inline int queue_room(const struct queue *q) {
    return !q->set.maxsize || q->nready + q->ndelayed < q->set.maxsize;
}

/* Room for n more puts (a batch). */
static inline int queue_room_for(const struct queue *q, unsigned n) {
    return !q->set.maxsize || q->nready + q->ndelayed + n <= q->set.maxsize;
}

/* A getter finding nothing ready gets QUEUE_ERR_SHUTDOWN: nothing can
 * become ready any more (see queue_shutdown in queue.h). */
static inline int queue_getters_done(const struct queue *q) {
    return q->shutdown == 2 || (q->shutdown && !q->unfinished);
}

/* A job that is still in the id index but no longer in its queue: it waits
 * in the grave for the reaper. Lookups treat it as gone. */
static inline int queue_job_gone(const struct queue_job *j) {
    const struct queue *q = j->q;
    if (q->zombie)
        return 1;
    switch (j->state) {
    case QUEUE_JOB_READY:
    case QUEUE_JOB_DELAYED: return j->gen != q->gen_live;
    case QUEUE_JOB_DEAD: return j->gen != q->gen_dead;
    default: return 0;
    }
}

/* Charge or release bytes: the engine's share and the (shared) budget. */
static inline void queue_mem_charge(struct queue_engine *e, size_t n) {
    e->mem_used += n;
    mem_budget_charge(e->budget, n);
}

static inline void queue_mem_release(struct queue_engine *e, size_t n) {
    e->mem_used -= n;
    mem_budget_release(e->budget, n);
}

/* queue_job.c */
size_t queue_job_cost(size_t len);
struct queue_job *queue_job_find(const struct queue *q, uint64_t id);
/* The put itself, checks done by the caller: id 0 = take the next id;
 * limits = enforce the memory limit; the key is kept if key_expires is
 * still ahead. */
int queue_job_put(struct queue *q, const struct queue_put *p, uint64_t id, uint64_t visible_at,
                  uint64_t key_expires, int limits, uint64_t *id_out);
/* A put's argument and shutdown checks (not fullness). */
int queue_put_validate(const struct queue *q, const struct queue_put *p);
/* 1 and *id = the first job's id when p's key is live (expires old keys). */
int queue_put_dedup(struct queue *q, const struct queue_put *p, uint64_t *id);
/* A validated, non-duplicate put now (memory limit enforced). */
int queue_put_do(struct queue *q, const struct queue_put *p, uint64_t *id);
/* Put a batch known to fit: *first the first id, *done the jobs put (all
 * unless MEMORY or NOMEM stopped it, which is returned). No settle. */
int queue_put_batch_do(struct queue *q, const struct queue_put *p, unsigned n, uint64_t *first,
                       unsigned *done);
/* Check a batch's puts (queue_put_validate each; no keys). */
int queue_put_batch_validate(const struct queue *q, const struct queue_put *p, unsigned n);
/* Reserve the heap's first job, filling *out. Requires q->ready. */
void queue_job_take(struct queue *q, uint64_t lease_ms, struct queue_job_info *out);
/* Undo a delivery of RESERVED j (attempt restored, READY in its place). */
void queue_job_unreserve(struct queue *q, struct queue_job *j);
/* Emit DROP (unless q is deleted) for a gone, detached job and free it. */
void queue_job_bury(struct queue *q, struct queue_job *j);
/* Free the oldest idempotency key of q (a deleted queue's, by the reaper). */
void queue_key_free_head(struct queue *q);
/* Apply a job event (PUT, ACK, RELEASE, DEAD, REQUEUE, DROP) to q. */
int queue_job_replay(struct queue *q, const struct queue_event *ev);

/* queue_reap.c: purge, immediate shutdown and delete take the jobs out of
 * the queue at once (O(1) for the ready heap and the dead letters) and
 * leave them in the grave; queue_engine_reap() finishes the work. */
uint64_t queue_retire_live(struct queue *q, int reason); /* READY + DELAYED; returns how many */
uint64_t queue_retire_dead(struct queue *q);             /* every dead letter; returns how many */
void queue_retire_all(struct queue *q);                  /* delete: q becomes a zombie */
void queue_reap_timed(struct queue *q, struct queue_job *j); /* a gone job's timer fired */

/* queue_result.c */
void queue_results_forget(struct queue *q);              /* every result of q (delete) */
void queue_result_forget_id(struct queue *q, uint64_t id); /* one (requeue) */
int queue_result_replay(struct queue *q, const struct queue_event *ev);
void queue_results_snapshot(struct queue *q, queue_event_fn fn, void *ctx);
/* A dead job's error text (its DEAD result), or NULL. */
const char *queue_result_error(const struct queue_engine *e, uint64_t id, size_t *len);

/* queue_heap.c: an intrusive pairing heap of READY jobs by (priority, id) */
struct queue_job *queue_heap_insert(struct queue_job *root, struct queue_job *j);
struct queue_job *queue_heap_pop(struct queue_job *root); /* returns the new root */
struct queue_job *queue_heap_remove(struct queue_job *root, struct queue_job *j);

/* queue_tab.c */
void queue_tab_init(struct queue_tab *t, size_t key_off);
int queue_tab_reserve(struct queue_engine *e, struct queue_tab *t, size_t n); /* 0 or -1 */
void queue_tab_insert(struct queue_engine *e, struct queue_tab *t, void *elem); /* after reserve */
void *queue_tab_find(const struct queue_tab *t, uint64_t key,
                     int (*eq)(const void *elem, const void *arg), const void *arg);
void queue_tab_remove(struct queue_engine *e, struct queue_tab *t, void *elem);
void queue_tab_free(struct queue_engine *e, struct queue_tab *t);
/* For a scan: positions 0..span-1 cover both arrays (the old one first);
 * queue_tab_at() is the element there or NULL. A resize changes span. */
size_t queue_tab_span(const struct queue_tab *t);
void *queue_tab_at(const struct queue_tab *t, size_t pos);
uint64_t queue_hash_bytes(uint64_t seed, const void *p, size_t n);

#endif
