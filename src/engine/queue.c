/*
 * The queue engine: queues by name, waiters and their deferred wakes,
 * shutdown, stats and replay dispatch. queue.h is the contract; job life
 * is in queue_job.c, the ready heap in queue_heap.c, the hash tables in
 * queue_tab.c.
 *
 * Every public operation is bracketed by queue_op_begin/queue_op_end.
 * Inside, state changes and then queue_settle() serves whatever waiters
 * the change satisfied, moving them to the engine's wake list. The
 * outermost queue_op_end() runs the wake list, so wake() never sees a
 * half-done operation, and operations started from wake() nest without
 * recursion into the list.
 */
#include "engine/queue_int.h"

#include <stdlib.h>
#include <string.h>

static void *default_alloc(void *ctx, size_t n) {
    (void)ctx;
    return malloc(n);
}

static void default_dealloc(void *ctx, void *p) {
    (void)ctx;
    free(p);
}

void *queue_zalloc(struct queue_engine *e, size_t n) {
    /* calloc knows when its memory is fresh from the kernel (zero pages):
     * a 16 MiB id index then costs page faults spread over its use, not a
     * memset in one loop turn. */
    if (e->cfg.alloc == default_alloc)
        return calloc(1, n);
    void *p = queue_alloc(e, n);
    if (p)
        memset(p, 0, n);
    return p;
}

const char *queue_strerror(int status) {
    switch (status) {
    case QUEUE_OK:
        return "ok";
    case QUEUE_WAIT:
        return "waiting";
    case QUEUE_ERR_NOMEM:
        return "out of memory";
    case QUEUE_ERR_FULL:
        return "queue full";
    case QUEUE_ERR_MEMORY:
        return "memory limit reached";
    case QUEUE_ERR_EMPTY:
        return "queue empty";
    case QUEUE_ERR_NOTFOUND:
        return "not found";
    case QUEUE_ERR_EXISTS:
        return "already exists";
    case QUEUE_ERR_INVALID:
        return "invalid argument";
    case QUEUE_ERR_TOOBIG:
        return "payload too large";
    case QUEUE_ERR_STATE:
        return "job not reserved by this attempt";
    case QUEUE_ERR_SHUTDOWN:
        return "queue shut down";
    case QUEUE_ERR_DELETED:
        return "queue deleted";
    }
    return "unknown error";
}

void queue_settings_default(struct queue_settings *s) {
    s->maxsize = 0;
    s->lease_ms = 30000;
    s->max_attempts = 5; /* as [queue NAME] max_attempts (issue 16) */
    s->max_payload = 1u << 20;
    s->key_window_ms = 300000;
    s->result_ttl_ms = 300000;
}

static int settings_valid(const struct queue_settings *s) {
    return s->lease_ms && s->lease_ms <= QUEUE_DURATION_MAX_MS && s->key_window_ms &&
           s->key_window_ms <= QUEUE_DURATION_MAX_MS && s->max_attempts <= QUEUE_MAX_ATTEMPTS_MAX &&
           s->result_ttl_ms <= QUEUE_DURATION_MAX_MS;
}

void queue_emit(struct queue *q, struct queue_event *ev) {
    struct queue_engine *e = q->e;
    if (!e->cfg.on_event || e->replaying)
        return;
    ev->queue = q->name;
    ev->queue_len = q->namelen;
    ev->now = queue_now(e);
    e->cfg.on_event(e->cfg.event_ctx, ev);
}

/* ---- waiter lists and wakes ------------------------------------------- */

static void wl_append(struct queue_wlist *l, struct queue_waiter *w) {
    list_push(&l->l, &w->link);
    l->n++;
}

static void wl_unlink(struct queue_wlist *l, struct queue_waiter *w) {
    list_unlink(&w->link);
    l->n--;
}

/* Unlink a waiting waiter and queue its wake with status. */
static void wake_later(struct queue_waiter *w, int status) {
    wl_unlink(&w->q->waits[w->kind], w);
    w->status = status;
    w->state = QUEUE_WAITER_WAKING;
    wl_append(&w->e->wakeq, w);
}

static void wake_all(struct queue_wlist *l, int status) {
    struct queue_waiter *w;
    while ((w = queue_wlist_first(l)))
        wake_later(w, status);
}

void queue_op_begin(struct queue_engine *e) {
    e->depth++;
}

void queue_op_end(struct queue_engine *e) {
    if (--e->depth || e->draining)
        return;
    e->draining = 1;
    struct queue_waiter *w;
    while ((w = queue_wlist_first(&e->wakeq)) != NULL) {
        wl_unlink(&e->wakeq, w);
        w->state = QUEUE_WAITER_IDLE;
        w->wake(w, w->status); /* may free or reuse w: not touched after */
    }
    e->draining = 0;
}

static void serve_getter(struct queue *q, struct queue_waiter *w) {
    w->njobs = 0;
    while (w->njobs < w->count && q->ready)
        queue_job_take(q, w->lease_ms, &w->jobs[w->njobs++]);
}

static int serve_putter(struct queue *q, struct queue_waiter *w) {
    if (w->batch)
        return queue_put_batch_do(q, w->puts, w->batch, &w->id, &w->done);
    w->duplicate = queue_put_dedup(q, &w->put, &w->id);
    return w->duplicate ? QUEUE_OK : queue_put_do(q, &w->put, &w->id);
}

/* Room for the first waiting putter (a batch needs room for all of it). */
static int putter_fits(const struct queue *q) {
    const struct queue_wlist *put = &q->waits[QUEUE_WAIT_PUT];
    const struct queue_waiter *w = put->n ? queue_wlist_first(put) : NULL;
    return w && (q->shutdown || queue_room_for(q, w->batch ? w->batch : 1));
}

/*
 * Serve q's waiters after any change. Getters take ready jobs in arrival
 * order; every reserve may make room for putters, whose puts may feed
 * getters again, until neither can move. Cheap when nobody waits.
 */
void queue_settle(struct queue *q) {
    struct queue_wlist *get = &q->waits[QUEUE_WAIT_GET], *put = &q->waits[QUEUE_WAIT_PUT];
    for (;;) {
        while (get->n && q->ready) {
            struct queue_waiter *w = queue_wlist_first(get);
            serve_getter(q, w);
            wake_later(w, QUEUE_OK);
        }
        if (!putter_fits(q))
            break;
        while (putter_fits(q)) {
            struct queue_waiter *w = queue_wlist_first(put);
            wake_later(w, q->shutdown ? QUEUE_ERR_SHUTDOWN : serve_putter(q, w));
        }
    }
    if (get->n && queue_getters_done(q))
        wake_all(get, QUEUE_ERR_SHUTDOWN);
    if (q->waits[QUEUE_WAIT_JOIN].n && !q->unfinished)
        wake_all(&q->waits[QUEUE_WAIT_JOIN], QUEUE_OK);
}

/* ---- waiting ---------------------------------------------------------- */

void queue_waiter_init(struct queue_waiter *w, int kind, queue_wake_fn wake) {
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->wake = wake;
    if (kind == QUEUE_WAIT_GET)
        w->count = 1;
    w->state = QUEUE_WAITER_IDLE;
    list_init(&w->link);
}

/* Check a waiter about to wait on q and bind it to q. */
static int wait_check(struct queue *q, struct queue_waiter *w, int kind) {
    if (w->state != QUEUE_WAITER_IDLE || w->kind != kind || !w->wake)
        return QUEUE_ERR_INVALID;
    w->q = q;
    w->e = q->e; /* also for queue_waiter_release() after an immediate serve */
    return QUEUE_OK;
}

static void wait_link(struct queue *q, struct queue_waiter *w) {
    w->state = QUEUE_WAITER_WAITING;
    wl_append(&q->waits[w->kind], w);
}

int queue_reserve_wait(struct queue *q, struct queue_waiter *w) {
    int rc = wait_check(q, w, QUEUE_WAIT_GET);
    if (rc || !w->count || !w->jobs || w->lease_ms > QUEUE_DURATION_MAX_MS)
        return QUEUE_ERR_INVALID;
    w->njobs = 0;
    if (!q->ready) {
        if (queue_getters_done(q))
            return QUEUE_ERR_SHUTDOWN;
        wait_link(q, w);
        return QUEUE_WAIT;
    }
    queue_op_begin(q->e);
    serve_getter(q, w);
    queue_settle(q);
    queue_op_end(q->e);
    return QUEUE_OK;
}

int queue_put_wait(struct queue *q, struct queue_waiter *w) {
    int rc = wait_check(q, w, QUEUE_WAIT_PUT);
    if (rc)
        return rc;
    unsigned batch = w->batch;
    if (batch && !w->puts)
        return QUEUE_ERR_INVALID;
    rc = batch ? queue_put_batch_validate(q, w->puts, batch) : queue_put_validate(q, &w->put);
    if (rc != QUEUE_OK)
        return rc;
    w->id = 0;
    w->duplicate = 0;
    if (batch)
        w->done = 0; /* (shares memory with the one-job put) */
    queue_op_begin(q->e);
    if (!batch && queue_put_dedup(q, &w->put, &w->id)) {
        w->duplicate = 1;
    } else if (!q->waits[QUEUE_WAIT_PUT].n && queue_room_for(q, batch ? batch : 1)) {
        rc = serve_putter(q, w);
    } else {
        wait_link(q, w); /* behind earlier putters: arrival order */
        rc = QUEUE_WAIT;
    }
    queue_settle(q);
    queue_op_end(q->e);
    return rc;
}

int queue_join_wait(struct queue *q, struct queue_waiter *w) {
    int rc = wait_check(q, w, QUEUE_WAIT_JOIN);
    if (rc)
        return rc;
    if (!q->unfinished)
        return QUEUE_OK;
    wait_link(q, w);
    return QUEUE_WAIT;
}

/* Give back the jobs reserved for a getter that will not deliver them.
 * Looked up through the engine, so it is safe after the queue is gone. */
static void release_jobs(struct queue_waiter *w) {
    struct queue_engine *e = w->e;
    for (unsigned i = 0; i < w->njobs; i++) {
        struct queue_job *j = queue_tab_find(&e->jobs, w->jobs[i].id, NULL, NULL);
        if (j && j->state == QUEUE_JOB_RESERVED && j->attempts == w->jobs[i].attempt &&
            !j->q->zombie) {
            queue_job_unreserve(j->q, j);
            queue_settle(j->q);
        }
    }
    w->njobs = 0;
}

void queue_waiter_cancel(struct queue_waiter *w) {
    if (w->state == QUEUE_WAITER_WAITING) {
        wl_unlink(&w->q->waits[w->kind], w);
        w->state = QUEUE_WAITER_IDLE;
    } else if (w->state == QUEUE_WAITER_WAKING) {
        struct queue_engine *e = w->e;
        queue_op_begin(e);
        wl_unlink(&e->wakeq, w);
        w->state = QUEUE_WAITER_IDLE;
        if (w->kind == QUEUE_WAIT_GET && w->status == QUEUE_OK)
            release_jobs(w);
        queue_op_end(e);
    }
}

void queue_waiter_release(struct queue_waiter *w) {
    if (w->kind != QUEUE_WAIT_GET || !w->e || w->state != QUEUE_WAITER_IDLE)
        return;
    queue_op_begin(w->e);
    release_jobs(w);
    queue_op_end(w->e);
}

/* ---- engine ----------------------------------------------------------- */

struct queue_engine *queue_engine_new(struct timer_wheel *wheel,
                                      const struct queue_engine_config *cfg) {
    struct queue_engine_config c;
    if (cfg)
        c = *cfg;
    else
        memset(&c, 0, sizeof c);
    if (!c.alloc || !c.dealloc) {
        c.alloc = default_alloc;
        c.dealloc = default_dealloc;
    }
    struct queue_engine *e = c.alloc(c.alloc_ctx, sizeof *e);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->wheel = wheel;
    e->cfg = c;
    e->own.limit = c.mem_limit;
    e->budget = c.budget ? c.budget : &e->own;
    queue_tab_init(&e->results, offsetof(struct queue_result, id));
    e->next_id = 1;
    queue_tab_init(&e->jobs, offsetof(struct queue_job, id));
    queue_wlist_init(&e->wakeq);
    return e;
}

void queue_engine_free(struct queue_engine *e) {
    if (!e)
        return;
    while (e->nqueues)
        queue_delete(e->queues[e->nqueues - 1]);
    queue_engine_reap(e, SIZE_MAX);
    queue_tab_free(e, &e->jobs);
    queue_tab_free(e, &e->results);
    queue_dealloc(e, e->queues);
    e->cfg.dealloc(e->cfg.alloc_ctx, e);
}

void queue_engine_set_mem_limit(struct queue_engine *e, size_t limit) {
    e->cfg.mem_limit = limit;
    e->budget->limit = limit;
}

struct mem_budget *queue_engine_budget(struct queue_engine *e) {
    return e->budget;
}

void queue_engine_stats(const struct queue_engine *e, struct queue_engine_stats *st) {
    st->mem_used = e->mem_used;
    st->mem_limit = e->budget->limit;
    st->mem_budget_used = e->budget->used;
    st->jobs = e->jobs.count;
    st->reaping = e->reaping;
    st->queues = e->nqueues;
    st->next_id = e->next_id;
}

int queue_engine_set_next_id(struct queue_engine *e, uint64_t id) {
    if (id < e->next_id)
        return QUEUE_ERR_INVALID;
    e->next_id = id;
    return QUEUE_OK;
}

/* ---- queues ----------------------------------------------------------- */

int queue_name_valid(const char *name, size_t len) {
    if (!name || len == 0 || len > QUEUE_NAME_MAX)
        return 0;
    /* "." and ".." would read as path segments in /queues/{q} URLs. */
    if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int name_cmp(const struct queue *q, const char *name, size_t len) {
    int c = memcmp(q->name, name, q->namelen < len ? q->namelen : len);
    return c ? c : (q->namelen > len) - (q->namelen < len);
}

/* Index of the first queue not before name; *found if it is name. */
static size_t name_pos(const struct queue_engine *e, const char *name, size_t len, int *found) {
    size_t lo = 0, hi = e->nqueues;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (name_cmp(e->queues[mid], name, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < e->nqueues && name_cmp(e->queues[lo], name, len) == 0;
    return lo;
}

struct queue *queue_find(const struct queue_engine *e, const char *name, size_t len) {
    struct queue *q = e->last_found;
    if (q && q->namelen == len && memcmp(q->name, name, len) == 0)
        return q;
    int found;
    size_t i = name_pos(e, name, len, &found);
    if (!found)
        return NULL;
    ((struct queue_engine *)e)->last_found = e->queues[i]; /* a cache, not state */
    return e->queues[i];
}

size_t queue_after(const struct queue_engine *e, const char *name, size_t len) {
    int found;
    size_t i = len ? name_pos(e, name, len, &found) : 0;
    return len && found ? i + 1 : i;
}

size_t queue_count(const struct queue_engine *e) {
    return e->nqueues;
}

struct queue *queue_at(const struct queue_engine *e, size_t i) {
    return i < e->nqueues ? e->queues[i] : NULL;
}

const char *queue_name(const struct queue *q, size_t *len) {
    if (len)
        *len = q->namelen;
    return q->name;
}

const struct queue_settings *queue_settings_of(const struct queue *q) {
    return &q->set;
}

int queue_create(struct queue_engine *e, const char *name, size_t len,
                 const struct queue_settings *s, struct queue **out) {
    struct queue_settings set;
    int found;
    if (s)
        set = *s;
    else
        queue_settings_default(&set);
    if (!queue_name_valid(name, len) || !settings_valid(&set))
        return QUEUE_ERR_INVALID;
    size_t pos = name_pos(e, name, len, &found);
    if (found) {
        if (out)
            *out = e->queues[pos];
        return QUEUE_ERR_EXISTS;
    }
    if (e->nqueues == e->capqueues) {
        size_t cap = e->capqueues ? e->capqueues * 2 : 8;
        struct queue **v = queue_alloc(e, cap * sizeof *v);
        if (!v)
            return QUEUE_ERR_NOMEM;
        if (e->nqueues)
            memcpy(v, e->queues, e->nqueues * sizeof *v);
        queue_dealloc(e, e->queues);
        e->queues = v;
        e->capqueues = cap;
    }
    struct queue *q = queue_alloc(e, sizeof *q);
    if (!q)
        return QUEUE_ERR_NOMEM;
    memset(q, 0, sizeof *q);
    q->e = e;
    q->set = set;
    q->namelen = len;
    memcpy(q->name, name, len);
    q->name[len] = '\0';
    queue_tab_init(&q->keys, offsetof(struct queue_key, hash));
    for (int k = 0; k < 3; k++)
        queue_wlist_init(&q->waits[k]);
    memmove(e->queues + pos + 1, e->queues + pos, (e->nqueues - pos) * sizeof *e->queues);
    e->queues[pos] = q;
    e->nqueues++;
    struct queue_event ev = {.type = QUEUE_EV_CREATE, .settings = set};
    queue_emit(q, &ev);
    if (out)
        *out = q;
    return QUEUE_OK;
}

int queue_update(struct queue *q, const struct queue_settings *s) {
    if (!settings_valid(s))
        return QUEUE_ERR_INVALID;
    queue_op_begin(q->e);
    q->set = *s;
    struct queue_event ev = {.type = QUEUE_EV_UPDATE, .settings = *s};
    queue_emit(q, &ev);
    queue_settle(q); /* a larger maxsize lets putters in */
    queue_op_end(q->e);
    return QUEUE_OK;
}

int queue_delete(struct queue *q) {
    struct queue_engine *e = q->e;
    queue_op_begin(e);
    struct queue_event ev = {.type = QUEUE_EV_DELETE};
    queue_emit(q, &ev);
    for (int k = 0; k < 3; k++)
        wake_all(&q->waits[k], QUEUE_ERR_DELETED);
    /* Waiters already served but not yet woken: a getter's jobs are about
     * to be freed, so it is told DELETED instead; a done put stays done. */
    struct list *n;
    for (n = e->wakeq.l.next; n != &e->wakeq.l; n = n->next) {
        struct queue_waiter *w = container_of(n, struct queue_waiter, link);
        if (w->q != q)
            continue;
        if (w->kind == QUEUE_WAIT_GET && w->status == QUEUE_OK) {
            w->status = QUEUE_ERR_DELETED;
            w->njobs = 0;
        }
        w->q = NULL;
    }
    int found;
    size_t pos = name_pos(e, q->name, q->namelen, &found);
    memmove(e->queues + pos, e->queues + pos + 1, (e->nqueues - pos - 1) * sizeof *e->queues);
    e->nqueues--;
    if (e->last_found == q)
        e->last_found = NULL;
    queue_retire_all(q); /* the reaper frees q once its jobs and keys are gone */
    queue_op_end(e);
    return QUEUE_OK;
}

void queue_stats(const struct queue *q, struct queue_stats *st) {
    st->size = q->nready;
    st->maxsize = q->set.maxsize;
    st->reserved = q->nreserved;
    st->delayed = q->ndelayed;
    st->dead = q->ndead;
    st->unfinished = q->unfinished;
    st->getters = q->waits[QUEUE_WAIT_GET].n;
    st->putters = q->waits[QUEUE_WAIT_PUT].n;
    st->joiners = q->waits[QUEUE_WAIT_JOIN].n;
    st->total_put = q->total_put;
    st->total_acked = q->total_acked;
    st->total_redelivered = q->total_redelivered;
    st->total_dead = q->total_dead;
    st->total_requeued = q->total_requeued;
    st->total_dropped = q->total_dropped;
    st->total_dead_purged = q->total_dead_purged;
    st->shutdown = q->shutdown;
    st->reaping = q->grave_n;
    st->results = q->nresults;
}

int queue_shutdown(struct queue *q, int immediate) {
    int level = immediate ? 2 : 1;
    if (q->shutdown >= level)
        return QUEUE_OK;
    queue_op_begin(q->e);
    q->shutdown = level;
    struct queue_event ev = {.type = QUEUE_EV_SHUTDOWN, .immediate = immediate ? 1 : 0};
    queue_emit(q, &ev);
    if (level == 2)
        queue_retire_live(q, QUEUE_DROP_SHUTDOWN);
    queue_settle(q); /* putters refused; getters and joiners as the state allows */
    queue_op_end(q->e);
    return QUEUE_OK;
}

/* ---- replay ----------------------------------------------------------- */

int queue_engine_replay(struct queue_engine *e, const struct queue_event *ev) {
    struct queue *q = NULL;
    int rc;
    if (ev->type != QUEUE_EV_CREATE && !(q = queue_find(e, ev->queue, ev->queue_len)))
        return QUEUE_ERR_NOTFOUND;
    e->replaying++;
    switch (ev->type) {
    case QUEUE_EV_CREATE:
        rc = queue_create(e, ev->queue, ev->queue_len, &ev->settings, NULL);
        break;
    case QUEUE_EV_UPDATE:
        rc = queue_update(q, &ev->settings);
        break;
    case QUEUE_EV_DELETE:
        rc = queue_delete(q);
        queue_engine_reap(e, SIZE_MAX);
        break;
    case QUEUE_EV_SHUTDOWN:
        /* The drops of an immediate shutdown were recorded one by one. */
        if (q->shutdown < (ev->immediate ? 2 : 1))
            q->shutdown = ev->immediate ? 2 : 1;
        rc = QUEUE_OK;
        break;
    case QUEUE_EV_RESULT:
        rc = queue_result_replay(q, ev);
        break;
    case QUEUE_EV_PUT:
    case QUEUE_EV_ACK:
    case QUEUE_EV_RELEASE:
    case QUEUE_EV_DEAD:
    case QUEUE_EV_REQUEUE:
    case QUEUE_EV_DROP:
        queue_op_begin(e);
        rc = queue_job_replay(q, ev);
        queue_settle(q);
        queue_op_end(e);
        break;
    default:
        rc = QUEUE_ERR_INVALID;
    }
    e->replaying--;
    return rc;
}

void queue_engine_totals_reset(struct queue_engine *e) {
    for (size_t i = 0; i < e->nqueues; i++) {
        struct queue *q = e->queues[i];
        q->total_put = q->total_acked = q->total_redelivered = q->total_dead = 0;
        q->total_requeued = q->total_dropped = q->total_dead_purged = 0;
    }
}

/* ---- snapshot (journal compaction) ---------------------------------------- */

static void snap_emit(struct queue *q, struct queue_event *ev, queue_event_fn fn, void *ctx) {
    ev->queue = q->name;
    ev->queue_len = q->namelen;
    ev->now = queue_now(q->e);
    fn(ctx, ev);
}

static void snap_job(struct queue_job *j, queue_event_fn fn, void *ctx) {
    struct queue_event ev = {.type = QUEUE_EV_PUT,
                             .id = j->id,
                             .priority = j->priority,
                             .visible_at = j->state == QUEUE_JOB_DELAYED ? j->u.timer.expire : 0,
                             .payload = j->payload,
                             .len = j->len};
    snap_emit(j->q, &ev, fn, ctx);
}

void queue_engine_snapshot(const struct queue_engine *e, queue_event_fn fn, void *ctx) {
    for (size_t i = 0; i < e->nqueues; i++) {
        struct queue *q = e->queues[i];
        struct queue_event ev = {.type = QUEUE_EV_CREATE, .settings = q->set};
        snap_emit(q, &ev, fn, ctx);
    }
    /* Live jobs in id-index order; ready order depends only on (priority, id). */
    for (size_t i = 0, n = queue_tab_span(&e->jobs); i < n; i++) {
        struct queue_job *j = queue_tab_at(&e->jobs, i);
        if (j && j->state != QUEUE_JOB_DEAD && !queue_job_gone(j))
            snap_job(j, fn, ctx);
    }
    for (size_t i = 0; i < e->nqueues; i++) {
        struct queue *q = e->queues[i];
        /* Dead letters oldest death first, so the dead list keeps its order. */
        for (struct queue_job *j = q->dead_head; j; j = j->u.dead.next) {
            snap_job(j, fn, ctx);
            struct queue_event ev = {.type = QUEUE_EV_DEAD, .id = j->id,
                                     .reason = (int)j->u.dead.reason};
            snap_emit(q, &ev, fn, ctx);
        }
        if (q->shutdown) {
            struct queue_event ev = {.type = QUEUE_EV_SHUTDOWN, .immediate = q->shutdown == 2};
            snap_emit(q, &ev, fn, ctx);
        }
        queue_results_snapshot(q, fn, ctx);
    }
}
