/*
 * Job life in the queue engine: put, reserve, ack, nack, touch, lease and
 * delay timers, idempotency keys, dead letters, purge and the replay of
 * job events. queue.h is the contract; queue.c owns queues and waiters.
 *
 * Every transition is a detach from the structure of the old state (heap,
 * wheel or dead list) followed by a placement in the new one, so the
 * per-state counters cannot drift. unfinished changes only where a job
 * starts (put, requeue) or ends (ack, dead, drop).
 */
#include "engine/queue_int.h"

#include <string.h>

#define JOB_HEADER offsetof(struct queue_job, payload)

_Static_assert(offsetof(struct queue_job, payload) == 60, "job header is 60 bytes (see queue.h)");
_Static_assert(offsetof(struct queue_job, u.heap.prev) + sizeof(void *) <=
                   offsetof(struct timer, cb),
               "heap links must not overlap the timer callback");

size_t queue_job_cost(size_t len) {
    return QUEUE_JOB_COST(len);
}

static size_t key_cost(size_t len) {
    return sizeof(struct queue_key) + len + 32; /* + malloc header and table share */
}

struct queue_job *queue_job_find(const struct queue *q, uint64_t id) {
    struct queue_job *j = queue_tab_find(&q->e->jobs, id, NULL, NULL);
    return j && j->q == q && !queue_job_gone(j) ? j : NULL;
}

static void job_info(const struct queue_job *j, struct queue_job_info *out) {
    out->id = j->id;
    out->priority = j->priority;
    out->attempt = j->attempts;
    out->state = j->state;
    out->deadline =
        j->state == QUEUE_JOB_DELAYED || j->state == QUEUE_JOB_RESERVED ? j->u.timer.expire : 0;
    out->payload = j->payload;
    out->len = j->len;
    out->reason = 0;
    out->error = NULL;
    out->error_len = 0;
    if (j->state == QUEUE_JOB_DEAD) {
        out->reason = (int)j->u.dead.reason;
        out->error = queue_result_error(j->q->e, j->id, &out->error_len);
    }
}

static void emit_job(struct queue *q, int type, const struct queue_job *j) {
    struct queue_event ev = {.type = type, .id = j->id};
    queue_emit(q, &ev);
}

/* ---- placement -------------------------------------------------------- */

static void job_timer_cb(struct timer *t);

/* timer_init also restores the cb word, which the other union members
 * leave alone in practice but C does not promise to keep. */
static void arm(struct queue *q, struct queue_job *j, uint64_t at) {
    timer_init(&j->u.timer, job_timer_cb);
    timer_add(q->e->wheel, &j->u.timer, at);
}

static void detach(struct queue *q, struct queue_job *j) {
    switch (j->state) {
    case QUEUE_JOB_READY:
        q->ready = queue_heap_remove(q->ready, j);
        q->nready--;
        break;
    case QUEUE_JOB_DELAYED:
        timer_cancel(q->e->wheel, &j->u.timer); /* no-op when it just fired */
        q->ndelayed--;
        break;
    case QUEUE_JOB_RESERVED:
        timer_cancel(q->e->wheel, &j->u.timer);
        q->nreserved--;
        break;
    case QUEUE_JOB_DEAD:
        if (j->u.dead.prev)
            j->u.dead.prev->u.dead.next = j->u.dead.next;
        else
            q->dead_head = j->u.dead.next;
        if (j->u.dead.next)
            j->u.dead.next->u.dead.prev = j->u.dead.prev;
        else
            q->dead_tail = j->u.dead.prev;
        q->ndead--;
        break;
    }
}

static void place_ready(struct queue *q, struct queue_job *j) {
    j->state = QUEUE_JOB_READY;
    j->gen = q->gen_live;
    q->ready = queue_heap_insert(q->ready, j);
    q->nready++;
}

/* READY, or DELAYED when visible_at is still in the future. */
static void place_visible_at(struct queue *q, struct queue_job *j, uint64_t visible_at) {
    if (visible_at > queue_now(q->e)) {
        j->state = QUEUE_JOB_DELAYED;
        j->gen = q->gen_live;
        arm(q, j, visible_at);
        q->ndelayed++;
    } else {
        place_ready(q, j);
    }
}

static void place_dead(struct queue *q, struct queue_job *j) {
    j->state = QUEUE_JOB_DEAD;
    j->gen = q->gen_dead;
    j->u.dead.next = NULL;
    j->u.dead.prev = q->dead_tail;
    if (q->dead_tail)
        q->dead_tail->u.dead.next = j;
    else
        q->dead_head = j;
    q->dead_tail = j;
    q->ndead++;
}

/* Forget a detached job. */
static void destroy(struct queue *q, struct queue_job *j) {
    struct queue_engine *e = q->e;
    queue_tab_remove(e, &e->jobs, j);
    queue_mem_release(e, queue_job_cost(j->len));
    queue_dealloc(e, j);
}

/* ---- transitions ------------------------------------------------------ */

static void job_ack(struct queue *q, struct queue_job *j) {
    detach(q, j);
    emit_job(q, QUEUE_EV_ACK, j);
    q->unfinished--;
    q->total_acked++;
    destroy(q, j);
}

static void job_kill(struct queue *q, struct queue_job *j, int reason) {
    detach(q, j);
    struct queue_event ev = {.type = QUEUE_EV_DEAD, .id = j->id, .reason = reason};
    queue_emit(q, &ev);
    place_dead(q, j);
    j->u.dead.reason = (uint32_t)reason;
    q->unfinished--;
    q->total_dead++;
}

/* Emit DROP for a detached job and forget it; was_dead tells which total. */
static void drop_detached(struct queue *q, struct queue_job *j, int was_dead, int reason) {
    struct queue_event ev = {.type = QUEUE_EV_DROP, .id = j->id, .reason = reason};
    queue_emit(q, &ev);
    if (was_dead) {
        q->total_dead_purged++;
    } else {
        q->unfinished--;
        q->total_dropped++;
    }
    destroy(q, j);
}

static void job_drop(struct queue *q, struct queue_job *j, int reason) {
    int was_dead = j->state == QUEUE_JOB_DEAD;
    detach(q, j);
    drop_detached(q, j, was_dead, reason);
}

static void job_requeue(struct queue *q, struct queue_job *j) {
    detach(q, j);
    j->attempts = 0;
    queue_result_forget_id(q, j->id); /* its DEAD result, if it had one */
    emit_job(q, QUEUE_EV_REQUEUE, j);
    place_ready(q, j);
    q->unfinished++;
    q->total_requeued++;
}

/*
 * A RESERVED job comes back, by nack (release set, visible_at 0 or a time)
 * or lease expiry. After an immediate shutdown nothing re-enters the
 * queue. After max_attempts deliveries it is a dead letter.
 */
static void job_return(struct queue *q, struct queue_job *j, uint64_t visible_at, int release) {
    if (q->shutdown == 2) {
        job_drop(q, j, QUEUE_DROP_SHUTDOWN);
    } else if (q->set.max_attempts && j->attempts >= q->set.max_attempts) {
        job_kill(q, j, release ? QUEUE_DEAD_NACKED : QUEUE_DEAD_LEASE);
    } else {
        detach(q, j);
        if (release) {
            struct queue_event ev = {
                .type = QUEUE_EV_RELEASE, .id = j->id, .visible_at = visible_at};
            queue_emit(q, &ev);
        }
        place_visible_at(q, j, visible_at);
    }
}

/* Delay over, or lease expired. */
static void job_timer_cb(struct timer *t) {
    struct queue_job *j = (struct queue_job *)((char *)t - offsetof(struct queue_job, u.timer));
    struct queue *q = j->q;
    struct queue_engine *e = q->e;
    if (queue_job_gone(j)) { /* purged or deleted: the reaper had not found it yet */
        queue_reap_timed(q, j);
        return;
    }
    queue_op_begin(e);
    if (j->state == QUEUE_JOB_DELAYED) {
        detach(q, j);
        place_ready(q, j);
    } else {
        job_return(q, j, 0, 0);
    }
    queue_settle(q);
    queue_op_end(e);
}

void queue_job_take(struct queue *q, uint64_t lease_ms, struct queue_job_info *out) {
    struct queue_job *j = q->ready;
    q->ready = queue_heap_pop(j);
    q->nready--;
    if (j->attempts < UINT16_MAX)
        j->attempts++;
    if (j->attempts > 1)
        q->total_redelivered++;
    j->state = QUEUE_JOB_RESERVED;
    q->nreserved++;
    arm(q, j, queue_now(q->e) + (lease_ms ? lease_ms : q->set.lease_ms));
    job_info(j, out);
}

void queue_job_unreserve(struct queue *q, struct queue_job *j) {
    if (j->attempts > 1)
        q->total_redelivered--;
    j->attempts--;
    if (q->shutdown == 2) {
        job_drop(q, j, QUEUE_DROP_SHUTDOWN);
    } else {
        detach(q, j);
        place_ready(q, j);
    }
}

/* ---- idempotency keys ------------------------------------------------- */

struct key_probe {
    const char *key;
    size_t len;
    uint64_t now;
};

/* An expired key may linger behind a younger head of the FIFO; it is
 * invisible, so a new record for the same bytes can sit beside it. */
static int key_eq(const void *elem, const void *arg) {
    const struct queue_key *k = elem;
    const struct key_probe *p = arg;
    return k->expires > p->now && k->len == p->len && memcmp(k->key, p->key, p->len) == 0;
}

static void keys_expire(struct queue *q) {
    struct queue_engine *e = q->e;
    struct queue_key *k;
    while ((k = q->key_head) != NULL && k->expires <= queue_now(e)) {
        q->key_head = k->next;
        if (!q->key_head)
            q->key_tail = NULL;
        queue_tab_remove(e, &q->keys, k);
        queue_mem_release(e, key_cost(k->len));
        queue_dealloc(e, k);
    }
}

void queue_key_free_head(struct queue *q) {
    struct queue_engine *e = q->e;
    struct queue_key *k = q->key_head;
    q->key_head = k->next;
    if (!q->key_head)
        q->key_tail = NULL;
    queue_mem_release(e, key_cost(k->len));
    queue_dealloc(e, k);
}

/* ---- put -------------------------------------------------------------- */

int queue_job_put(struct queue *q, const struct queue_put *p, uint64_t id, uint64_t visible_at,
                  uint64_t key_expires, int limits, uint64_t *id_out) {
    struct queue_engine *e = q->e;
    int keep_key = p->key && key_expires > queue_now(e);
    size_t cost = queue_job_cost(p->len) + (p->key ? key_cost(p->key_len) : 0);
    if (limits && !mem_budget_fits(e->budget, cost))
        return QUEUE_ERR_MEMORY;
    /* Everything that can fail comes before the first change. */
    if (queue_tab_reserve(e, &e->jobs, 1) || (keep_key && queue_tab_reserve(e, &q->keys, 1)))
        return QUEUE_ERR_NOMEM;
    size_t size = JOB_HEADER + p->len;
    struct queue_job *j = queue_alloc(e, size < sizeof *j ? sizeof *j : size);
    if (!j)
        return QUEUE_ERR_NOMEM;
    struct queue_key *k = NULL;
    if (keep_key) {
        k = queue_alloc(e, offsetof(struct queue_key, key) + p->key_len);
        if (!k) {
            queue_dealloc(e, j);
            return QUEUE_ERR_NOMEM;
        }
    }

    if (!id)
        id = e->next_id++;
    else if (id >= e->next_id)
        e->next_id = id + 1;
    j->id = id;
    j->q = q;
    j->priority = p->priority;
    j->len = (uint32_t)p->len;
    j->attempts = 0;
    j->gen = 0;
    if (p->len)
        memcpy(j->payload, p->payload, p->len);
    queue_tab_insert(e, &e->jobs, j);
    queue_mem_charge(e, queue_job_cost(p->len));
    if (k) {
        k->hash = queue_hash_bytes(e->cfg.hash_seed, p->key, p->key_len);
        k->id = id;
        k->expires = key_expires;
        k->next = NULL;
        k->len = (uint16_t)p->key_len;
        memcpy(k->key, p->key, p->key_len);
        queue_tab_insert(e, &q->keys, k);
        if (q->key_tail)
            q->key_tail->next = k;
        else
            q->key_head = k;
        q->key_tail = k;
        queue_mem_charge(e, key_cost(p->key_len));
    }
    q->unfinished++;
    q->total_put++;

    struct queue_event ev = {.type = QUEUE_EV_PUT,
                             .id = id,
                             .priority = p->priority,
                             .visible_at = visible_at,
                             .payload = j->payload,
                             .len = p->len,
                             .key = p->key,
                             .key_len = p->key ? p->key_len : 0};
    queue_emit(q, &ev);
    place_visible_at(q, j, visible_at);
    *id_out = id;
    return QUEUE_OK;
}

int queue_put_validate(const struct queue *q, const struct queue_put *p) {
    if (p->len > q->set.max_payload)
        return QUEUE_ERR_TOOBIG;
    if ((p->len && !p->payload) || p->delay_ms > QUEUE_DURATION_MAX_MS ||
        (p->key && (p->key_len == 0 || p->key_len > QUEUE_KEY_MAX)))
        return QUEUE_ERR_INVALID;
    return q->shutdown ? QUEUE_ERR_SHUTDOWN : QUEUE_OK;
}

int queue_put_dedup(struct queue *q, const struct queue_put *p, uint64_t *id) {
    keys_expire(q);
    if (!p->key || !q->keys.count)
        return 0;
    struct key_probe probe = {p->key, p->key_len, queue_now(q->e)};
    uint64_t h = queue_hash_bytes(q->e->cfg.hash_seed, p->key, p->key_len);
    const struct queue_key *k = queue_tab_find(&q->keys, h, key_eq, &probe);
    if (!k)
        return 0;
    *id = k->id;
    return 1;
}

int queue_put_do(struct queue *q, const struct queue_put *p, uint64_t *id) {
    uint64_t now = queue_now(q->e);
    return queue_job_put(q, p, 0, p->delay_ms ? now + p->delay_ms : 0, now + q->set.key_window_ms,
                         1, id);
}

int queue_put_batch_validate(const struct queue *q, const struct queue_put *p, unsigned n) {
    if (n == 0)
        return QUEUE_ERR_INVALID;
    for (unsigned i = 0; i < n; i++) {
        int rc = p[i].key ? QUEUE_ERR_INVALID : queue_put_validate(q, &p[i]);
        if (rc)
            return rc;
    }
    return QUEUE_OK;
}

int queue_put_batch_do(struct queue *q, const struct queue_put *p, unsigned n, uint64_t *first,
                       unsigned *done) {
    int rc = QUEUE_OK;
    *done = 0;
    *first = 0;
    for (unsigned i = 0; i < n && rc == QUEUE_OK; i++) {
        uint64_t id = 0;
        rc = queue_put_do(q, &p[i], &id);
        if (rc == QUEUE_OK && (*done)++ == 0)
            *first = id; /* one engine-wide counter, nothing between: the rest follow it */
    }
    return rc;
}

int queue_put_batch(struct queue *q, const struct queue_put *p, unsigned n, uint64_t *first,
                    unsigned *done) {
    *done = 0;
    *first = 0;
    int rc = queue_put_batch_validate(q, p, n);
    if (rc)
        return rc;
    queue_op_begin(q->e);
    if (q->waits[QUEUE_WAIT_PUT].n || !queue_room_for(q, n))
        rc = QUEUE_ERR_FULL; /* waiting putters come first */
    else
        rc = queue_put_batch_do(q, p, n, first, done);
    queue_settle(q); /* once: a waiting getter can take several of the batch */
    queue_op_end(q->e);
    return rc;
}

int queue_put(struct queue *q, const struct queue_put *p, uint64_t *id, int *dup) {
    uint64_t id_ = 0;
    int dup_ = 0, rc = queue_put_validate(q, p);
    if (rc)
        return rc;
    queue_op_begin(q->e);
    if (queue_put_dedup(q, p, &id_))
        dup_ = 1;
    else if (q->waits[QUEUE_WAIT_PUT].n || !queue_room(q))
        rc = QUEUE_ERR_FULL; /* waiting putters come first */
    else
        rc = queue_put_do(q, p, &id_);
    if (id)
        *id = id_;
    if (dup)
        *dup = dup_;
    queue_settle(q);
    queue_op_end(q->e);
    return rc;
}

/* ---- reserve, ack, nack, touch ---------------------------------------- */

int queue_reserve(struct queue *q, unsigned count, uint64_t lease_ms, struct queue_job_info *out,
                  unsigned *n) {
    *n = 0;
    if (!count || lease_ms > QUEUE_DURATION_MAX_MS)
        return QUEUE_ERR_INVALID;
    if (!q->ready)
        return queue_getters_done(q) ? QUEUE_ERR_SHUTDOWN : QUEUE_ERR_EMPTY;
    queue_op_begin(q->e);
    while (*n < count && q->ready)
        queue_job_take(q, lease_ms, &out[(*n)++]);
    queue_settle(q); /* room for waiting putters */
    queue_op_end(q->e);
    return QUEUE_OK;
}

static int find_reserved(const struct queue *q, uint64_t id, uint32_t attempt,
                         struct queue_job **out) {
    struct queue_job *j = queue_job_find(q, id);
    if (!j)
        return QUEUE_ERR_NOTFOUND;
    if (j->state != QUEUE_JOB_RESERVED || (attempt && attempt != j->attempts))
        return QUEUE_ERR_STATE;
    *out = j;
    return QUEUE_OK;
}

int queue_ack(struct queue *q, uint64_t id, uint32_t attempt) {
    struct queue_job *j;
    int rc = find_reserved(q, id, attempt, &j);
    if (rc)
        return rc;
    queue_op_begin(q->e);
    job_ack(q, j);
    queue_settle(q); /* joiners, draining getters */
    queue_op_end(q->e);
    return QUEUE_OK;
}

int queue_nack(struct queue *q, uint64_t id, uint32_t attempt, uint64_t delay_ms) {
    struct queue_job *j;
    if (delay_ms > QUEUE_DURATION_MAX_MS)
        return QUEUE_ERR_INVALID;
    int rc = find_reserved(q, id, attempt, &j);
    if (rc)
        return rc;
    queue_op_begin(q->e);
    job_return(q, j, delay_ms ? queue_now(q->e) + delay_ms : 0, 1);
    queue_settle(q);
    queue_op_end(q->e);
    return QUEUE_OK;
}

int queue_touch(struct queue *q, uint64_t id, uint32_t attempt, uint64_t lease_ms,
                uint64_t *deadline) {
    struct queue_job *j;
    if (lease_ms > QUEUE_DURATION_MAX_MS)
        return QUEUE_ERR_INVALID;
    int rc = find_reserved(q, id, attempt, &j);
    if (rc)
        return rc;
    uint64_t at = queue_now(q->e) + (lease_ms ? lease_ms : q->set.lease_ms);
    timer_add(q->e->wheel, &j->u.timer, at); /* pending: a move, not arm() */
    if (deadline)
        *deadline = at;
    return QUEUE_OK;
}

int queue_unreserve(struct queue *q, uint64_t id, uint32_t attempt) {
    struct queue_job *j;
    int rc = find_reserved(q, id, attempt, &j);
    if (rc)
        return rc;
    queue_op_begin(q->e);
    queue_job_unreserve(q, j);
    queue_settle(q);
    queue_op_end(q->e);
    return QUEUE_OK;
}

int queue_peek(const struct queue *q, uint64_t id, struct queue_job_info *out) {
    const struct queue_job *j = queue_job_find(q, id);
    if (!j)
        return QUEUE_ERR_NOTFOUND;
    job_info(j, out);
    return QUEUE_OK;
}

int queue_peek_ready(const struct queue *q, struct queue_job_info *out) {
    if (!q->ready)
        return QUEUE_ERR_EMPTY;
    job_info(q->ready, out);
    return QUEUE_OK;
}

/* ---- purge ---------------------------------------------------------- */

void queue_job_bury(struct queue *q, struct queue_job *j) {
    if (!q->zombie) {
        struct queue_event ev = {.type = QUEUE_EV_DROP, .id = j->id, .reason = q->grave_reason};
        queue_emit(q, &ev);
    }
    destroy(q, j);
}

int queue_purge(struct queue *q, uint64_t *n) {
    queue_op_begin(q->e);
    uint64_t k = queue_retire_live(q, QUEUE_DROP_PURGE);
    if (n)
        *n = k;
    queue_settle(q);
    queue_op_end(q->e);
    return QUEUE_OK;
}

/* ---- dead letters ----------------------------------------------------- */

static struct queue_job *find_dead(const struct queue *q, uint64_t id) {
    struct queue_job *j = queue_job_find(q, id);
    return j && j->state == QUEUE_JOB_DEAD ? j : NULL;
}

int queue_dead_list(const struct queue *q, uint64_t after, struct queue_job_info *out, size_t max,
                    size_t *n) {
    const struct queue_job *j = q->dead_head;
    *n = 0;
    if (after) {
        const struct queue_job *a = find_dead(q, after);
        if (!a)
            return QUEUE_ERR_NOTFOUND;
        j = a->u.dead.next;
    }
    for (; j && *n < max; j = j->u.dead.next)
        job_info(j, &out[(*n)++]);
    return QUEUE_OK;
}

int queue_dead_requeue(struct queue *q, uint64_t id, uint64_t *n) {
    struct queue_job *j = NULL;
    uint64_t k = 0;
    if (q->shutdown)
        return QUEUE_ERR_SHUTDOWN;
    if (id && !(j = find_dead(q, id)))
        return QUEUE_ERR_NOTFOUND;
    queue_op_begin(q->e);
    if (j) {
        job_requeue(q, j);
        k = 1;
    } else {
        for (; q->dead_head; k++)
            job_requeue(q, q->dead_head);
    }
    if (n)
        *n = k;
    queue_settle(q);
    queue_op_end(q->e);
    return QUEUE_OK;
}

int queue_dead_purge(struct queue *q, uint64_t id, uint64_t *n) {
    struct queue_job *j = NULL;
    uint64_t k;
    if (id && !(j = find_dead(q, id)))
        return QUEUE_ERR_NOTFOUND;
    queue_op_begin(q->e);
    if (j) {
        job_drop(q, j, QUEUE_DROP_DEADPURGE);
        k = 1;
    } else {
        k = queue_retire_dead(q);
    }
    if (n)
        *n = k;
    queue_op_end(q->e);
    return QUEUE_OK;
}

/* ---- replay ----------------------------------------------------------- */

int queue_job_replay(struct queue *q, const struct queue_event *ev) {
    if (ev->type == QUEUE_EV_PUT) {
        uint64_t id;
        struct queue_put p = {ev->payload, ev->len, ev->priority, 0, ev->key, ev->key_len};
        if (!ev->id || (ev->len && !ev->payload) || ev->len > UINT32_MAX ||
            (ev->key && (!ev->key_len || ev->key_len > QUEUE_KEY_MAX)))
            return QUEUE_ERR_INVALID;
        if (queue_tab_find(&q->e->jobs, ev->id, NULL, NULL))
            return QUEUE_ERR_EXISTS;
        keys_expire(q);
        return queue_job_put(q, &p, ev->id, ev->visible_at, ev->now + q->set.key_window_ms, 0, &id);
    }
    struct queue_job *j = queue_job_find(q, ev->id);
    if (!j)
        return QUEUE_ERR_NOTFOUND;
    int dead = j->state == QUEUE_JOB_DEAD;
    switch (ev->type) {
    case QUEUE_EV_ACK:
        if (dead)
            return QUEUE_ERR_STATE;
        job_ack(q, j);
        return QUEUE_OK;
    case QUEUE_EV_RELEASE:
        if (dead)
            return QUEUE_ERR_STATE;
        detach(q, j);
        place_visible_at(q, j, ev->visible_at);
        return QUEUE_OK;
    case QUEUE_EV_DEAD:
        if (dead)
            return QUEUE_ERR_STATE;
        job_kill(q, j, ev->reason);
        return QUEUE_OK;
    case QUEUE_EV_REQUEUE:
        if (!dead)
            return QUEUE_ERR_STATE;
        job_requeue(q, j);
        return QUEUE_OK;
    case QUEUE_EV_DROP:
        job_drop(q, j, ev->reason);
        return QUEUE_OK;
    }
    return QUEUE_ERR_INVALID;
}
