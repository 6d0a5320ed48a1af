/*
 * queue_result: a job's outcome kept for its queue's result_ttl (acked
 * with a result, or dead with the nack's error text), and the listing of a
 * queue's jobs by state. queue.h ("results", "listing jobs") is the
 * contract.
 *
 * An entry is one allocation (header, content type, body), in the
 * engine's result index by job id and in its queue's list (for delete and
 * snapshot), with a wheel timer for its expiry. Replacing an entry (a
 * requeued dead letter acked later) frees the old one first.
 */
#include "engine/queue_int.h"

#include <string.h>

_Static_assert(offsetof(struct queue_result, data) <= 80, "result header (see QUEUE_RESULT_OVERHEAD)");
_Static_assert(offsetof(struct queue_job, u.dead.reason) + sizeof(uint32_t) <=
                   offsetof(struct timer, cb),
               "the dead reason must not overlap the timer callback");

const char *queue_dead_reason_name(int reason) {
    switch (reason) {
    case QUEUE_DEAD_NACKED: return "nacked";
    case QUEUE_DEAD_LEASE: return "lease_expired";
    }
    return "unknown";
}

static size_t result_cost(const struct queue_result *r) {
    return QUEUE_RESULT_COST(r->len, r->ctype_len);
}

static struct queue_result *result_find(const struct queue_engine *e, uint64_t id) {
    return queue_tab_find(&e->results, id, NULL, NULL);
}

static void result_free(struct queue_result *r) {
    struct queue *q = r->q;
    struct queue_engine *e = q->e;
    timer_cancel(e->wheel, &r->timer);
    queue_tab_remove(e, &e->results, r);
    if (r->prev)
        r->prev->next = r->next;
    else
        q->results = r->next;
    if (r->next)
        r->next->prev = r->prev;
    q->nresults--;
    queue_mem_release(e, result_cost(r));
    queue_dealloc(e, r);
}

static void result_expire(struct timer *t) {
    result_free((struct queue_result *)((char *)t - offsetof(struct queue_result, timer)));
}

/* Keep a result (replacing one for the same id). limits: enforce the memory limit. */
static int result_keep(struct queue *q, const struct queue_result_info *in, int limits) {
    struct queue_engine *e = q->e;
    size_t cost = QUEUE_RESULT_COST(in->len, in->ctype_len);
    struct queue_result *old = result_find(e, in->id);
    size_t freed = old && old->q == q ? result_cost(old) : 0;
    if (limits && !mem_budget_fits(e->budget, cost > freed ? cost - freed : 0))
        return QUEUE_ERR_MEMORY;
    if (in->len > UINT32_MAX || in->ctype_len > QUEUE_CTYPE_MAX)
        return QUEUE_ERR_INVALID;
    if (queue_tab_reserve(e, &e->results, 1) < 0)
        return QUEUE_ERR_NOMEM;
    struct queue_result *r =
        queue_alloc(e, offsetof(struct queue_result, data) + in->ctype_len + in->len);
    if (!r)
        return QUEUE_ERR_NOMEM;
    if (old)
        result_free(old);
    memset(r, 0, offsetof(struct queue_result, data)); /* sizeof *r has padding past data */
    r->id = in->id;
    r->q = q;
    r->len = (uint32_t)in->len;
    r->attempt = in->attempt;
    r->outcome = (uint8_t)in->outcome;
    r->reason = (uint8_t)in->reason;
    r->ctype_len = (uint8_t)in->ctype_len;
    if (in->ctype_len)
        memcpy(r->data, in->ctype, in->ctype_len);
    if (in->len)
        memcpy(r->data + in->ctype_len, in->body, in->len);
    queue_tab_insert(e, &e->results, r);
    r->next = q->results;
    if (q->results)
        q->results->prev = r;
    q->results = r;
    q->nresults++;
    queue_mem_charge(e, cost);
    timer_init(&r->timer, result_expire);
    timer_add(e->wheel, &r->timer, in->expires);
    return QUEUE_OK;
}

static void result_info(const struct queue_result *r, struct queue_result_info *out) {
    out->id = r->id;
    out->outcome = r->outcome;
    out->reason = r->reason;
    out->attempt = r->attempt;
    out->expires = r->timer.expire;
    out->ctype = r->data;
    out->ctype_len = r->ctype_len;
    out->body = r->data + r->ctype_len;
    out->len = r->len;
}

static void result_emit(struct queue *q, const struct queue_result_info *in) {
    struct queue_event ev = {.type = QUEUE_EV_RESULT,
                             .id = in->id,
                             .immediate = in->outcome,
                             .reason = in->reason,
                             .priority = (int32_t)in->attempt,
                             .visible_at = in->expires,
                             .payload = in->body,
                             .len = in->len,
                             .key = in->ctype_len ? in->ctype : NULL,
                             .key_len = in->ctype_len};
    queue_emit(q, &ev);
}

/* The RESERVED job id with this attempt (0: any). */
static int check_reserved(const struct queue *q, uint64_t id, uint32_t attempt,
                          struct queue_job **out) {
    struct queue_job *j = queue_job_find(q, id);
    if (!j)
        return QUEUE_ERR_NOTFOUND;
    if (j->state != QUEUE_JOB_RESERVED || (attempt && attempt != j->attempts))
        return QUEUE_ERR_STATE;
    *out = j;
    return QUEUE_OK;
}

int queue_ack_result(struct queue *q, uint64_t id, uint32_t attempt, const char *ctype,
                     size_t ctype_len, const void *body, size_t len) {
    struct queue_job *j;
    int rc = check_reserved(q, id, attempt, &j);
    if (rc)
        return rc;
    if (len > q->set.max_payload)
        return QUEUE_ERR_TOOBIG;
    if (ctype_len > QUEUE_CTYPE_MAX)
        return QUEUE_ERR_INVALID;
    if (q->set.result_ttl_ms) {
        struct queue_result_info in = {.id = id,
                                       .outcome = QUEUE_OUTCOME_ACKED,
                                       .attempt = j->attempts,
                                       .expires = queue_now(q->e) + q->set.result_ttl_ms,
                                       .ctype = ctype,
                                       .ctype_len = ctype_len,
                                       .body = body,
                                       .len = len};
        rc = result_keep(q, &in, 1);
        if (rc)
            return rc;
        result_emit(q, &in);
    }
    return queue_ack(q, id, attempt);
}

int queue_nack_error(struct queue *q, uint64_t id, uint32_t attempt, uint64_t delay_ms,
                     const void *err, size_t len, int *dead) {
    struct queue_job *j;
    if (dead)
        *dead = 0;
    if (delay_ms > QUEUE_DURATION_MAX_MS)
        return QUEUE_ERR_INVALID;
    int rc = check_reserved(q, id, attempt, &j);
    if (rc)
        return rc;
    /* As job_return decides: an immediate shutdown drops it, else max_attempts kills it. */
    int dies = q->shutdown != 2 && q->set.max_attempts && j->attempts >= q->set.max_attempts;
    if (dies && len && q->set.result_ttl_ms) {
        struct queue_result_info in = {.id = id,
                                       .outcome = QUEUE_OUTCOME_DEAD,
                                       .reason = QUEUE_DEAD_NACKED,
                                       .attempt = j->attempts,
                                       .expires = queue_now(q->e) + q->set.result_ttl_ms,
                                       .body = err,
                                       .len = len > q->set.max_payload ? q->set.max_payload : len};
        if (result_keep(q, &in, 1) == QUEUE_OK) /* else: dead without its text */
            result_emit(q, &in);
    }
    rc = queue_nack(q, id, attempt, delay_ms);
    if (dead && rc == QUEUE_OK)
        *dead = dies;
    return rc;
}

int queue_result_get(const struct queue *q, uint64_t id, struct queue_result_info *out) {
    const struct queue_result *r = result_find(q->e, id);
    if (!r || r->q != q)
        return QUEUE_ERR_NOTFOUND;
    result_info(r, out);
    return QUEUE_OK;
}

uint64_t queue_results_count(const struct queue *q) {
    return q->nresults;
}

const char *queue_result_error(const struct queue_engine *e, uint64_t id, size_t *len) {
    const struct queue_result *r = result_find(e, id);
    if (!r || r->outcome != QUEUE_OUTCOME_DEAD)
        return NULL;
    *len = r->len;
    return r->data + r->ctype_len;
}

void queue_results_forget(struct queue *q) {
    while (q->results)
        result_free(q->results);
}

void queue_result_forget_id(struct queue *q, uint64_t id) {
    struct queue_result *r = result_find(q->e, id);
    if (r && r->q == q)
        result_free(r);
}

int queue_result_replay(struct queue *q, const struct queue_event *ev) {
    if (!ev->id || (ev->immediate != QUEUE_OUTCOME_ACKED && ev->immediate != QUEUE_OUTCOME_DEAD) ||
        (ev->len && !ev->payload) || ev->key_len > QUEUE_CTYPE_MAX)
        return QUEUE_ERR_INVALID;
    if (ev->visible_at <= queue_now(q->e))
        return QUEUE_OK; /* expired while awaitd was down */
    struct queue_result_info in = {.id = ev->id,
                                   .outcome = ev->immediate,
                                   .reason = ev->reason,
                                   .attempt = (uint32_t)ev->priority,
                                   .expires = ev->visible_at,
                                   .ctype = ev->key,
                                   .ctype_len = ev->key ? ev->key_len : 0,
                                   .body = ev->payload,
                                   .len = ev->len};
    return result_keep(q, &in, 0);
}

void queue_results_snapshot(struct queue *q, queue_event_fn fn, void *ctx) {
    for (const struct queue_result *r = q->results; r; r = r->next) {
        struct queue_result_info in;
        result_info(r, &in);
        struct queue_event ev = {.type = QUEUE_EV_RESULT,
                                 .queue = q->name,
                                 .queue_len = q->namelen,
                                 .now = queue_now(q->e),
                                 .id = in.id,
                                 .immediate = in.outcome,
                                 .reason = in.reason,
                                 .priority = (int32_t)in.attempt,
                                 .visible_at = in.expires,
                                 .payload = in.body,
                                 .len = in.len,
                                 .key = in.ctype_len ? in.ctype : NULL,
                                 .key_len = in.ctype_len};
        fn(ctx, &ev);
    }
}

/* ---- listing ------------------------------------------------------------------------ */

static int64_t job_k(const struct queue_job *j) {
    switch (j->state) {
    case QUEUE_JOB_READY: return j->priority;
    case QUEUE_JOB_DELAYED: return (int64_t)j->u.timer.expire;
    default: return 0;
    }
}

static int key_less(int64_t ak, uint64_t aid, int64_t bk, uint64_t bid) {
    return ak < bk || (ak == bk && aid < bid);
}

static int cand_less(const struct queue_cursor *a, const struct queue_cursor *b) {
    return key_less(a->k, a->id, b->k, b->id);
}

/* h[0..n) is a max-heap by key: restore it below i. */
static void sift_down(struct queue_cursor *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_less(&h[m], &h[l]))
            m = l;
        if (r < n && cand_less(&h[m], &h[r]))
            m = r;
        if (m == i)
            return;
        struct queue_cursor t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_up(struct queue_cursor *h, size_t i) {
    while (i) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&h[p], &h[i]))
            return;
        struct queue_cursor t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

void queue_jobs_scan_init(struct queue_jobs_scan *s, int state, const struct queue_cursor *after,
                          struct queue_cursor *cand, size_t max) {
    memset(s, 0, sizeof *s);
    s->state = state;
    s->has_after = after != NULL;
    if (after)
        s->after = *after;
    s->cand = cand;
    s->max = max;
}

int queue_jobs_scan_step(const struct queue *q, struct queue_jobs_scan *s, size_t budget) {
    const struct queue_tab *t = &q->e->jobs;
    size_t span = queue_tab_span(t);
    if (span != s->span) { /* first step, or the index resized: (re)start the pass */
        s->span = span;
        s->pos = 0;
        s->ncand = 0;
        s->more = 0;
    }
    for (; s->pos < span && budget; s->pos++, budget--) {
        const struct queue_job *j = queue_tab_at(t, s->pos);
        if (!j || j->q != q || j->state != s->state || queue_job_gone(j))
            continue;
        struct queue_cursor c = {job_k(j), j->id};
        if (s->has_after && !cand_less(&s->after, &c))
            continue;
        if (s->ncand < s->max) {
            s->cand[s->ncand] = c;
            sift_up(s->cand, s->ncand++);
        } else {
            s->more = 1;
            if (cand_less(&c, &s->cand[0])) {
                s->cand[0] = c;
                sift_down(s->cand, s->max, 0);
            }
        }
    }
    return s->pos >= span;
}

void queue_jobs_scan_finish(const struct queue *q, struct queue_jobs_scan *s,
                            struct queue_job_info *out, size_t *n, int *more,
                            struct queue_cursor *next) {
    struct queue_cursor *h = s->cand;
    for (size_t m = s->ncand; m > 1; m--) { /* heap sort: ascending */
        struct queue_cursor tmp = h[0];
        h[0] = h[m - 1];
        h[m - 1] = tmp;
        sift_down(h, m - 1, 0);
    }
    *n = 0;
    for (size_t m = 0; m < s->ncand; m++) {
        const struct queue_job *j = queue_job_find(q, h[m].id);
        if (!j || j->state != s->state) /* moved on since it was seen */
            continue;
        queue_peek(q, h[m].id, &out[*n]);
        if (next) {
            next->k = h[m].k;
            next->id = h[m].id;
        }
        (*n)++;
    }
    *more = s->more;
}

static int list_dead(const struct queue *q, const struct queue_cursor *after,
                     struct queue_job_info *out, size_t max, size_t *n, int *more) {
    const struct queue_job *j = q->dead_head;
    if (after) {
        const struct queue_job *a = queue_job_find(q, after->id);
        if (!a || a->state != QUEUE_JOB_DEAD)
            return QUEUE_ERR_NOTFOUND;
        j = a->u.dead.next;
    }
    for (; j && *n < max; j = j->u.dead.next)
        queue_peek(q, j->id, &out[(*n)++]);
    *more = j != NULL;
    return QUEUE_OK;
}

int queue_jobs_list(const struct queue *q, int state, const struct queue_cursor *after,
                    struct queue_job_info *out, size_t max, size_t *n, int *more,
                    struct queue_cursor *next) {
    *n = 0;
    *more = 0;
    if (state < QUEUE_JOB_READY || state > QUEUE_JOB_DEAD || !max)
        return QUEUE_ERR_INVALID;
    int rc = QUEUE_OK;
    if (state == QUEUE_JOB_DEAD) {
        rc = list_dead(q, after, out, max, n, more);
    } else {
        struct queue_cursor *h = queue_alloc(q->e, max * sizeof *h);
        if (!h)
            return QUEUE_ERR_NOMEM;
        struct queue_jobs_scan sc;
        queue_jobs_scan_init(&sc, state, after, h, max);
        queue_jobs_scan_step(q, &sc, SIZE_MAX);
        queue_jobs_scan_finish(q, &sc, out, n, more, next);
        queue_dealloc(q->e, h);
        return QUEUE_OK;
    }
    if (rc == QUEUE_OK && *n && next) {
        next->k = 0;
        next->id = out[*n - 1].id;
    }
    return rc;
}
