/*
 * The grave: how purge, immediate shutdown, dead-letter purge and queue
 * deletion stay cheap for the event loop. queue.h is the contract.
 *
 * Retiring is O(1) for what the queue holds in its own structures: the
 * ready heap is detached whole (its root pushed on a stack of trees), the
 * dead-letter list likewise, and the queue's counters are settled at once,
 * so the queue is empty, room appears and joiners wake in the same call.
 * What cannot be found in O(1) is left where it is: each job carries the
 * generation of the queue's live (READY/DELAYED) or dead structure it was
 * placed in, and a retirement bumps the generation, so every job of the
 * old generation is gone to lookups (queue_job_gone) without being
 * touched. A deleted queue is a zombie: all of its jobs are gone.
 *
 * queue_engine_reap() then does the per-job work a slice at a time: emit
 * the DROP event (none for a zombie, whose DELETE says it all), take the
 * job out of the id index, free it. Trees are taken apart by rotation
 * (child = left, sibling = right), O(1) state, no stack. Gone DELAYED jobs
 * (and a zombie's RESERVED ones) are only on the wheel, so a scan of the
 * id index finds them; it runs only while such jobs exist, and if one
 * fires first, its timer callback buries it (queue_reap_timed). The scan
 * restarts from slot 0 when the index was resized, or when a pass ends
 * with gone jobs left (another removal shifted one behind the cursor);
 * the count of gone timed jobs is exact, so it always ends.
 *
 * Generations are 8 bits. A retirement while 250 older ones still have
 * jobs in the grave first reaps the queue to the end, so a live job can
 * never share a generation with a gone one.
 */
#include "engine/queue_int.h"

#define GENS_MAX 250
#define SCAN_COST 64 /* index slots looked at per unit of budget */

static void reap_list_add(struct queue *q) {
    struct queue_engine *e = q->e;
    if (q->reap_listed)
        return;
    q->reap_listed = 1;
    q->reap_next = NULL;
    if (e->reap_tail)
        e->reap_tail->reap_next = q;
    else
        e->reap_head = q;
    e->reap_tail = q;
}

static void reap_one(struct queue *q, struct queue_job *j) {
    queue_job_bury(q, j);
    q->grave_n--;
    q->e->reaping--;
}

/* Take apart the trees on the grave stack; returns the budget left. */
static size_t reap_trees(struct queue *q, size_t budget) {
    struct queue_job *x = q->grave_heap;
    while (x && budget) {
        struct queue_job *y = x->u.heap.child;
        if (y) {
            x->u.heap.child = y->u.heap.next;
            y->u.heap.next = x;
            x = y;
        } else {
            y = x->u.heap.next;
            reap_one(q, x);
            x = y;
            budget--;
        }
    }
    q->grave_heap = x;
    return budget;
}

static size_t reap_dead(struct queue *q, size_t budget) {
    while (q->grave_dead && budget) {
        struct queue_job *j = q->grave_dead;
        q->grave_dead = j->u.dead.next;
        reap_one(q, j);
        budget--;
    }
    return budget;
}

static int timed_gone(const struct queue *q, const struct queue_job *j) {
    return j && j->q == q && (j->state == QUEUE_JOB_DELAYED || j->state == QUEUE_JOB_RESERVED) &&
           queue_job_gone(j);
}

/* Find gone jobs that are only on the wheel by scanning the id index. */
static size_t reap_scan(struct queue *q, size_t budget) {
    struct queue_engine *e = q->e;
    struct queue_tab *t = &e->jobs;
    size_t looked = 0;
    while (q->grave_timed && budget) {
        size_t span = queue_tab_span(t);
        if (!span)
            break; /* cannot happen: the gone jobs are in the index */
        if (q->scan_span != span || q->scan_pos >= span) {
            q->scan_span = span;
            q->scan_pos = 0;
        }
        struct queue_job *j = queue_tab_at(t, q->scan_pos);
        if (timed_gone(q, j)) {
            timer_cancel(e->wheel, &j->u.timer);
            q->grave_timed--;
            reap_one(q, j);
            budget--;
            continue; /* the backward shift may have moved another job here */
        }
        q->scan_pos++;
        if (++looked == SCAN_COST) {
            looked = 0;
            budget--;
        }
    }
    return budget;
}

static size_t reap_keys(struct queue *q, size_t budget) {
    while (q->key_head && budget) {
        queue_key_free_head(q);
        budget--;
    }
    return budget;
}

/* A slice of q's grave; returns the budget left (> 0 means q is done). */
static size_t reap_queue(struct queue *q, size_t budget) {
    budget = reap_trees(q, budget);
    budget = reap_dead(q, budget);
    budget = reap_scan(q, budget);
    if (q->zombie && !q->grave_n)
        budget = reap_keys(q, budget);
    return budget;
}

static int grave_empty(const struct queue *q) {
    return !q->grave_n && !(q->zombie && q->key_head);
}

size_t queue_engine_reap(struct queue_engine *e, size_t budget) {
    if (!budget)
        budget = 1;
    while (e->reap_head && budget) {
        struct queue *q = e->reap_head;
        budget = reap_queue(q, budget);
        if (!grave_empty(q))
            break;
        e->reap_head = q->reap_next;
        if (!e->reap_head)
            e->reap_tail = NULL;
        q->reap_listed = 0;
        q->gens_open = 0;
        if (q->zombie) {
            queue_tab_free(e, &q->keys);
            queue_dealloc(e, q);
        }
    }
    return e->reap_head ? (size_t)e->reaping + 1 : 0;
}

void queue_reap_timed(struct queue *q, struct queue_job *j) {
    q->grave_timed--;
    reap_one(q, j);
}

/* Before bumping a generation: make sure it cannot meet a gone job's. */
static void gen_guard(struct queue *q) {
    if (q->gens_open >= GENS_MAX) {
        while (!grave_empty(q))
            reap_queue(q, SIZE_MAX);
        q->gens_open = 0;
    }
    q->gens_open++;
}

uint64_t queue_retire_live(struct queue *q, int reason) {
    uint64_t n = q->nready + q->ndelayed;
    if (!n)
        return 0;
    gen_guard(q);
    if (q->ready) {
        q->ready->u.heap.next = q->grave_heap;
        q->grave_heap = q->ready;
        q->ready = NULL;
    }
    q->grave_timed += q->ndelayed;
    q->grave_n += n;
    q->e->reaping += n;
    q->grave_reason = reason;
    q->unfinished -= n;
    q->total_dropped += n;
    q->nready = q->ndelayed = 0;
    q->gen_live++;
    reap_list_add(q);
    return n;
}

uint64_t queue_retire_dead(struct queue *q) {
    uint64_t n = q->ndead;
    if (!n)
        return 0;
    gen_guard(q);
    q->dead_tail->u.dead.next = q->grave_dead;
    q->grave_dead = q->dead_head;
    q->dead_head = q->dead_tail = NULL;
    q->grave_n += n;
    q->e->reaping += n;
    q->grave_reason = QUEUE_DROP_DEADPURGE;
    q->total_dead_purged += n;
    q->ndead = 0;
    q->gen_dead++;
    reap_list_add(q);
    return n;
}

void queue_retire_all(struct queue *q) {
    queue_results_forget(q);
    queue_retire_live(q, QUEUE_DROP_PURGE);
    queue_retire_dead(q);
    q->grave_timed += q->nreserved;
    q->grave_n += q->nreserved;
    q->e->reaping += q->nreserved;
    q->nreserved = 0;
    q->unfinished = 0;
    q->zombie = 1;
    reap_list_add(q);
}
