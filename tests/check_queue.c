/*
 * Unit tests for the queue engine, driven by a fake clock: the engine's
 * only time is a timer wheel that the tests advance by hand.
 *
 * Build alone: gcc -O1 -g -fsanitize=address,undefined -Isrc src/queue*.c src/timer.c
 *   tests/check_queue.c $(pkg-config --cflags --libs check) -o /tmp/check_queue
 */
#include "engine/queue.h"
#include "core/mem_budget.h"
#include "engine/queue_int.h" /* the id index's arrays, for the resize test */
#include "core/timer.h"
#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1000 /* the wheel's start: nonzero so "visible_at 0" is unambiguous */

static struct timer_wheel W;
static struct queue_engine *E;

/* ---- allocator with fault injection and a live count -------------------- */

static long fail_countdown = -1; /* fail the allocation when it reaches 0; -1 = never */
static long live_allocs;

static void *t_alloc(void *ctx, size_t n) {
    (void)ctx;
    if (fail_countdown >= 0 && fail_countdown-- == 0)
        return NULL;
    void *p = malloc(n);
    if (p)
        live_allocs++;
    return p;
}

static void t_free(void *ctx, void *p) {
    (void)ctx;
    live_allocs--;
    free(p);
}

/* ---- event recorder ------------------------------------------------------ */

struct rec {
    struct queue_event ev; /* payload and key point to the copies below; queue is NULL */
    char name[QUEUE_NAME_MAX + 1];
    unsigned char *payload;
    char *key;
};

struct recorder {
    struct rec *v;
    size_t n, cap;
};

static struct recorder R;

static void on_event(void *ctx, const struct queue_event *ev) {
    struct recorder *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        EXPECT(r->v);
    }
    struct rec *c = &r->v[r->n++];
    c->ev = *ev;
    EXPECT(ev->queue_len <= QUEUE_NAME_MAX);
    memcpy(c->name, ev->queue, ev->queue_len);
    c->name[ev->queue_len] = '\0';
    c->ev.queue = NULL; /* c moves when v grows: see rec_event() */
    c->payload = NULL;
    c->key = NULL;
    if (ev->type == QUEUE_EV_PUT) {
        c->payload = malloc(ev->len + 1);
        memcpy(c->payload, ev->payload, ev->len);
        c->ev.payload = c->payload;
        if (ev->key) {
            c->key = malloc(ev->key_len);
            memcpy(c->key, ev->key, ev->key_len);
            c->ev.key = c->key;
        }
    }
}

/* The recorded event with its queue name pointer filled in. */
static struct queue_event rec_event(const struct rec *c) {
    struct queue_event ev = c->ev;
    ev.queue = c->name;
    return ev;
}

static void recorder_free(struct recorder *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].payload);
        free(r->v[i].key);
    }
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* ---- fixture and helpers -------------------------------------------------- */

static struct queue_engine *engine_new(struct timer_wheel *w, size_t mem_limit,
                                       struct recorder *r) {
    struct queue_engine_config cfg = {.mem_limit = mem_limit,
                                      .on_event = r ? on_event : NULL,
                                      .event_ctx = r,
                                      .alloc = t_alloc,
                                      .dealloc = t_free,
                                      .hash_seed = 0x5eed};
    return queue_engine_new(w, &cfg);
}

static void setup(void) {
    timer_wheel_init(&W, T0);
    fail_countdown = -1;
    live_allocs = 0;
    memset(&R, 0, sizeof R);
    E = engine_new(&W, 0, &R);
    ck_assert_ptr_nonnull(E);
}

static void teardown(void) {
    queue_engine_free(E);
    E = NULL;
    ck_assert_int_eq(live_allocs, 0); /* every allocation was given back */
    ck_assert_uint_eq(W.count, 0);    /* and every timer cancelled */
    recorder_free(&R);
}

static void advance_to(uint64_t t) {
    timer_wheel_advance(&W, t);
}

static void advance(uint64_t ms) {
    advance_to(W.now + ms);
}

static struct queue *mkq(const char *name, uint64_t maxsize, uint64_t lease_ms,
                         uint32_t max_attempts) {
    struct queue_settings s;
    struct queue *q = NULL;
    queue_settings_default(&s);
    s.maxsize = maxsize;
    s.lease_ms = lease_ms;
    s.max_attempts = max_attempts;
    ck_assert_int_eq(queue_create(E, name, strlen(name), &s, &q), QUEUE_OK);
    return q;
}

static int put_full(struct queue *q, const char *payload, int32_t prio, uint64_t delay,
                    const char *key, uint64_t *id) {
    struct queue_put p = {payload, payload ? strlen(payload) : 0, prio, delay,
                          key,     key ? strlen(key) : 0};
    return queue_put(q, &p, id, NULL);
}

static uint64_t put(struct queue *q, const char *payload, int32_t prio, uint64_t delay) {
    uint64_t id = 0;
    EXPECT_EQ(put_full(q, payload, prio, delay, NULL, &id), QUEUE_OK);
    EXPECT(id != 0);
    return id;
}

/* Reserve one job; 0 when none. info (may be NULL) gets it. */
static uint64_t get1(struct queue *q, struct queue_job_info *info) {
    struct queue_job_info tmp;
    unsigned n = 0;
    int rc = queue_reserve(q, 1, 0, info ? info : &tmp, &n);
    if (rc != QUEUE_OK)
        return 0;
    EXPECT_EQ(n, 1);
    return (info ? info : &tmp)->id;
}

static struct queue_stats stats(const struct queue *q) {
    struct queue_stats st;
    queue_stats(q, &st);
    return st;
}

/* The invariants every queue keeps between operations. */
static void check_invariants(const struct queue *q) {
    struct queue_stats s = stats(q);
    EXPECT_EQ(s.unfinished, s.size + s.reserved + s.delayed);
    EXPECT_EQ(s.unfinished,
              s.total_put - s.total_acked - s.total_dead + s.total_requeued - s.total_dropped);
    EXPECT_EQ(s.dead, s.total_dead - s.total_requeued - s.total_dead_purged);
    if (s.getters)
        EXPECT_EQ(s.size, 0);
    if (s.putters && !s.shutdown)
        EXPECT(s.maxsize && s.size + s.delayed >= s.maxsize);
}

/* A waiter embedded in a test "request", as the HTTP layer will do. */
struct req {
    struct queue_waiter w; /* first: the wake callback casts back */
    struct queue_job_info jobs[8];
    int woken;
    int status;
    int order;
    uint64_t woke_at;
    uint64_t ids[8];
    unsigned n;
    void (*then)(struct req *r); /* re-entrant action run inside wake */
};

static int wake_seq;

static void req_wake(struct queue_waiter *w, int status) {
    struct req *r = (struct req *)w;
    r->woken++;
    r->status = status;
    r->order = ++wake_seq;
    r->woke_at = W.now;
    r->n = 0;
    if (w->kind == QUEUE_WAIT_GET)
        for (unsigned i = 0; i < w->njobs; i++)
            r->ids[r->n++] = w->jobs[i].id;
    if (r->then)
        r->then(r);
}

static void req_init(struct req *r, int kind, unsigned count) {
    memset(r, 0, sizeof *r);
    queue_waiter_init(&r->w, kind, req_wake);
    if (kind == QUEUE_WAIT_GET) { /* a putter's fields share this memory */
        r->w.count = count;
        r->w.jobs = r->jobs;
    }
}

static void req_put(struct req *r, const char *payload) {
    req_init(r, QUEUE_WAIT_PUT, 1);
    r->w.put.payload = payload;
    r->w.put.len = strlen(payload);
}

static int payload_is(const struct queue *q, uint64_t id, const char *s) {
    struct queue_job_info info;
    return queue_peek(q, id, &info) == QUEUE_OK && info.len == strlen(s) &&
           memcmp(info.payload, s, info.len) == 0;
}

/* ---- queues ---------------------------------------------------------------- */

START_TEST(test_queue_names_and_settings) {
    struct queue *q, *other;
    ck_assert_int_eq(queue_create(E, "", 0, NULL, &q), QUEUE_ERR_INVALID);
    ck_assert_int_eq(queue_create(E, "a/b", 3, NULL, &q), QUEUE_ERR_INVALID);
    ck_assert_int_eq(queue_create(E, "sp ace", 6, NULL, &q), QUEUE_ERR_INVALID);
    char long_name[66];
    memset(long_name, 'x', sizeof long_name);
    ck_assert_int_eq(queue_create(E, long_name, 65, NULL, &q), QUEUE_ERR_INVALID);
    ck_assert_int_eq(queue_create(E, long_name, 64, NULL, &q), QUEUE_OK);
    ck_assert_int_eq(queue_create(E, "emails", 6, NULL, &q), QUEUE_OK);
    ck_assert_int_eq(queue_create(E, "emails", 6, NULL, &other), QUEUE_ERR_EXISTS);
    ck_assert_ptr_eq(other, q);
    ck_assert_int_eq(queue_create(E, "A-b_c.9", 7, NULL, NULL), QUEUE_OK);
    struct queue_settings s;
    queue_settings_default(&s);
    ck_assert_uint_eq(s.lease_ms, 30000);
    ck_assert_uint_eq(s.max_payload, 1u << 20);
    ck_assert_uint_eq(s.max_attempts, 5); /* as the config's (issue 16) */
    s.lease_ms = 0;
    ck_assert_int_eq(queue_create(E, "bad", 3, &s, NULL), QUEUE_ERR_INVALID);
    queue_settings_default(&s);
    s.max_attempts = 70000;
    ck_assert_int_eq(queue_update(q, &s), QUEUE_ERR_INVALID);

    /* Sorted listing, lookup by exact name. */
    ck_assert_uint_eq(queue_count(E), 3);
    size_t len;
    ck_assert_str_eq(queue_name(queue_at(E, 0), &len), "A-b_c.9");
    ck_assert_str_eq(queue_name(queue_at(E, 1), &len), "emails");
    ck_assert_uint_eq(len, 6);
    ck_assert_ptr_null(queue_at(E, 3));
    ck_assert_ptr_eq(queue_find(E, "emails", 6), q);
    ck_assert_ptr_null(queue_find(E, "email", 5));
    ck_assert_ptr_null(queue_find(E, "emailsx", 7));
    ck_assert_uint_eq(queue_settings_of(q)->lease_ms, 30000);

    ck_assert_int_eq(queue_delete(q), QUEUE_OK);
    ck_assert_ptr_null(queue_find(E, "emails", 6)); /* not the last answer, deleted */
    ck_assert_uint_eq(queue_count(E), 2);
    ck_assert_int_eq(queue_create(E, "emails", 6, NULL, &other), QUEUE_OK);
    ck_assert_ptr_eq(queue_find(E, "emails", 6), other);
    ck_assert_ptr_eq(queue_find(E, "A-b_c.9", 7), queue_at(E, 0));
    ck_assert_ptr_eq(queue_find(E, "emails", 6), other);
    ck_assert_int_eq(queue_delete(other), QUEUE_OK);
    ck_assert_str_eq(queue_strerror(QUEUE_ERR_FULL), "queue full");
}
END_TEST

/* ---- put bounds --------------------------------------------------------------- */

START_TEST(test_put_nowait_full) {
    struct queue *q = mkq("q", 2, 1000, 0);
    uint64_t id;
    put(q, "a", 0, 0);
    put(q, "b", 0, 500); /* delayed jobs count toward maxsize */
    ck_assert_int_eq(put_full(q, "c", 0, 0, NULL, &id), QUEUE_ERR_FULL);
    ck_assert_uint_eq(stats(q).size, 1);
    ck_assert_uint_eq(stats(q).delayed, 1);
    ck_assert(get1(q, NULL)); /* a reserved job leaves the queue, as asyncio's get */
    put(q, "c", 0, 0);
    ck_assert_int_eq(put_full(q, "d", 0, 0, NULL, &id), QUEUE_ERR_FULL);

    /* Payload limit, bad arguments. */
    struct queue_settings s = *queue_settings_of(q);
    s.max_payload = 4;
    s.maxsize = 0;
    ck_assert_int_eq(queue_update(q, &s), QUEUE_OK);
    ck_assert_int_eq(put_full(q, "12345", 0, 0, NULL, &id), QUEUE_ERR_TOOBIG);
    ck_assert_int_eq(put_full(q, "1234", 0, 0, NULL, &id), QUEUE_OK);
    struct queue_put p = {NULL, 3, 0, 0, NULL, 0};
    ck_assert_int_eq(queue_put(q, &p, &id, NULL), QUEUE_ERR_INVALID);
    p.len = 0; /* an empty payload is a job like any other */
    ck_assert_int_eq(queue_put(q, &p, &id, NULL), QUEUE_OK);
    p.delay_ms = QUEUE_DURATION_MAX_MS + 1;
    ck_assert_int_eq(queue_put(q, &p, &id, NULL), QUEUE_ERR_INVALID);
    check_invariants(q);
}
END_TEST

/* Totals count since start: zeroed after the replay, the jobs kept (issue 16). */
START_TEST(test_totals_reset) {
    struct queue *q = mkq("q", 0, 1000, 0);
    put(q, "a", 0, 0);
    put(q, "b", 0, 0);
    uint64_t id = get1(q, NULL);
    ck_assert_int_eq(queue_ack(q, id, 0), QUEUE_OK);
    ck_assert_uint_eq(stats(q).total_put, 2);
    ck_assert_uint_eq(stats(q).total_acked, 1);
    queue_engine_totals_reset(E);
    struct queue_stats st = stats(q);
    ck_assert_uint_eq(st.total_put + st.total_acked + st.total_redelivered + st.total_dead, 0);
    ck_assert_uint_eq(st.total_requeued + st.total_dropped + st.total_dead_purged, 0);
    ck_assert_uint_eq(st.size, 1);
    ck_assert_uint_eq(st.unfinished, 1);
    put(q, "c", 0, 0);
    ck_assert_uint_eq(stats(q).total_put, 1);
    /* (not check_invariants: its unfinished = put - acked - ... holds for
     * totals since the queue's creation, which these no longer are) */
}
END_TEST

/* ---- waiting putters and getters ---------------------------------------------- */

START_TEST(test_putters_served_in_order) {
    struct queue *q = mkq("q", 1, 1000, 0);
    struct req a, b, c, d;
    put(q, "first", 0, 0);
    req_put(&a, "a");
    req_put(&b, "b");
    req_put(&c, "c");
    ck_assert_int_eq(queue_put_wait(q, &a.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_put_wait(q, &b.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_put_wait(q, &c.w), QUEUE_WAIT);
    ck_assert_uint_eq(stats(q).putters, 3);
    check_invariants(q);
    /* put_nowait does not jump the line. */
    uint64_t id;
    ck_assert_int_eq(put_full(q, "x", 0, 0, NULL, &id), QUEUE_ERR_FULL);

    queue_waiter_cancel(&b.w); /* client gone: unlinked, never woken */
    queue_waiter_cancel(&b.w); /* twice is harmless */
    ck_assert_uint_eq(stats(q).putters, 2);

    struct queue_job_info info;
    ck_assert(get1(q, &info));
    ck_assert(payload_is(q, info.id, "first"));
    /* The room went to a: the engine did its put, in order, and woke it. */
    ck_assert_int_eq(a.woken, 1);
    ck_assert_int_eq(a.status, QUEUE_OK);
    ck_assert(payload_is(q, a.w.id, "a"));
    ck_assert_int_eq(c.woken, 0);
    ck_assert_uint_eq(stats(q).size, 1);

    ck_assert(get1(q, &info));
    ck_assert_uint_eq(info.id, a.w.id);
    ck_assert_int_eq(c.woken, 1);
    ck_assert(payload_is(q, c.w.id, "c"));
    ck_assert_int_eq(b.woken, 0);
    ck_assert_uint_gt(c.w.id, a.w.id);

    /* With room, put_wait is immediate and no wake follows. */
    ck_assert(get1(q, &info));
    req_put(&d, "d");
    ck_assert_int_eq(queue_put_wait(q, &d.w), QUEUE_OK);
    ck_assert_uint_ne(d.w.id, 0);
    ck_assert_int_eq(d.woken, 0);
    check_invariants(q);
}
END_TEST

/* A batch goes in whole or not at all; waiting, it needs room for all of
 * it and holds back the putters behind it; a getter takes several of it. */
START_TEST(test_batch_put_and_wait) {
    struct queue *q = mkq("q", 4, 1000, 0);
    struct queue_put three[3] = {{"a", 1, 0, 0, NULL, 0}, {"b", 1, 0, 0, NULL, 0},
                                 {"c", 1, 0, 0, NULL, 0}};
    uint64_t first;
    unsigned done;
    ck_assert_int_eq(queue_put_batch(q, three, 3, &first, &done), QUEUE_OK);
    ck_assert_uint_eq(done, 3);
    ck_assert(payload_is(q, first, "a") && payload_is(q, first + 2, "c")); /* consecutive */
    ck_assert_int_eq(queue_put_batch(q, three, 2, &first, &done), QUEUE_ERR_FULL);
    ck_assert_uint_eq(done, 0);
    ck_assert_uint_eq(stats(q).size, 3); /* nothing of it went in */
    struct queue_put keyed = {"k", 1, 0, 0, "key", 3};
    ck_assert_int_eq(queue_put_batch(q, &keyed, 1, &first, &done), QUEUE_ERR_INVALID);
    ck_assert_int_eq(queue_put_batch(q, three, 0, &first, &done), QUEUE_ERR_INVALID);

    /* Waiting: room for one is not room for two; c waits behind the batch. */
    struct req batch, c;
    req_init(&batch, QUEUE_WAIT_PUT, 0);
    batch.w.batch = 2;
    batch.w.puts = three;
    req_put(&c, "single");
    ck_assert_int_eq(queue_put_wait(q, &batch.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_put_wait(q, &c.w), QUEUE_WAIT);
    ck_assert_uint_eq(stats(q).putters, 2);
    uint64_t id;
    ck_assert_int_eq(put_full(q, "x", 0, 0, NULL, &id), QUEUE_ERR_FULL); /* no jumping */
    ck_assert(get1(q, NULL)); /* 2 queued: room for two */
    ck_assert_int_eq(batch.woken, 1);
    ck_assert_int_eq(batch.status, QUEUE_OK);
    ck_assert_uint_eq(batch.w.done, 2);
    ck_assert(payload_is(q, batch.w.id, "a") && payload_is(q, batch.w.id + 1, "b"));
    ck_assert_int_eq(c.woken, 0);
    ck_assert_uint_eq(stats(q).size, 4);
    ck_assert(get1(q, NULL));
    ck_assert_int_eq(c.woken, 1);
    ck_assert(payload_is(q, c.w.id, "single"));
    check_invariants(q);

    /* A getter waiting for three takes all three of a batch put at once. */
    struct queue *q2 = mkq("q2", 0, 1000, 0);
    struct req g;
    req_init(&g, QUEUE_WAIT_GET, 3);
    ck_assert_int_eq(queue_reserve_wait(q2, &g.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_put_batch(q2, three, 3, &first, &done), QUEUE_OK);
    ck_assert_int_eq(g.woken, 1);
    ck_assert_uint_eq(g.n, 3);
    ck_assert_uint_eq(g.ids[0], first);
    check_invariants(q2);
}
END_TEST

START_TEST(test_getters_served_in_order) {
    struct queue *q = mkq("q", 0, 1000, 0);
    struct req a, b, c, many;
    req_init(&a, QUEUE_WAIT_GET, 1);
    req_init(&b, QUEUE_WAIT_GET, 1);
    req_init(&c, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q, &a.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_reserve_wait(q, &b.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_reserve_wait(q, &c.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_reserve_wait(q, &c.w), QUEUE_ERR_INVALID); /* already waiting */
    ck_assert_uint_eq(stats(q).getters, 3);
    queue_waiter_cancel(&b.w);

    uint64_t j1 = put(q, "1", 0, 0);
    ck_assert_int_eq(a.woken, 1);
    ck_assert_int_eq(a.status, QUEUE_OK);
    ck_assert_uint_eq(a.n, 1);
    ck_assert_uint_eq(a.ids[0], j1);
    ck_assert_uint_eq(a.jobs[0].attempt, 1);
    ck_assert_uint_eq(a.jobs[0].deadline, T0 + 1000); /* leased at once */
    ck_assert_int_eq(a.jobs[0].state, QUEUE_JOB_RESERVED);
    uint64_t j2 = put(q, "2", 0, 0);
    ck_assert_uint_eq(c.ids[0], j2);
    ck_assert_int_eq(b.woken, 0);
    ck_assert_uint_eq(stats(q).reserved, 2);

    /* count = N takes up to N at once: whatever is ready. */
    uint64_t j3 = put(q, "3", 0, 0), j4 = put(q, "4", 0, 0);
    req_init(&many, QUEUE_WAIT_GET, 5);
    ck_assert_int_eq(queue_reserve_wait(q, &many.w), QUEUE_OK);
    ck_assert_uint_eq(many.w.njobs, 2);
    ck_assert_uint_eq(many.jobs[0].id, j3);
    ck_assert_uint_eq(many.jobs[1].id, j4);
    /* Waiting with count = 3 is woken by the first job. */
    req_init(&many, QUEUE_WAIT_GET, 3);
    ck_assert_int_eq(queue_reserve_wait(q, &many.w), QUEUE_WAIT);
    put(q, "5", 0, 0);
    ck_assert_uint_eq(many.n, 1);
    check_invariants(q);

    /* get_nowait */
    struct queue_job_info out[4];
    unsigned n;
    ck_assert_int_eq(queue_reserve(q, 4, 0, out, &n), QUEUE_ERR_EMPTY);
    ck_assert_int_eq(queue_reserve(q, 0, 0, out, &n), QUEUE_ERR_INVALID);
}
END_TEST

/* A getter served and woken while waiting for room: a put wakes a getter
 * whose reserve makes room for a waiting putter, all in one call. */
START_TEST(test_getters_and_putters_chain) {
    struct queue *q = mkq("q", 1, 1000, 0);
    struct req g, p;
    put(q, "x", 0, 500); /* delayed: full, and nothing ready */
    req_init(&g, QUEUE_WAIT_GET, 1);
    req_put(&p, "p");
    ck_assert_int_eq(queue_reserve_wait(q, &g.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_put_wait(q, &p.w), QUEUE_WAIT);
    check_invariants(q);
    advance(500); /* x visible -> g reserves it -> room -> p's put happens */
    ck_assert_int_eq(g.woken, 1);
    ck_assert_int_eq(p.woken, 1);
    ck_assert_int_eq(p.status, QUEUE_OK);
    ck_assert_int_lt(g.order, p.order);
    ck_assert_uint_eq(stats(q).size, 1);
    ck_assert_uint_eq(stats(q).reserved, 1);
    check_invariants(q);
}
END_TEST

/* ---- leases, redelivery, dead letters ------------------------------------------ */

START_TEST(test_lease_expiry_redelivers) {
    struct queue *q = mkq("q", 0, 1000, 0);
    uint64_t id = put(q, "job", 0, 0);
    struct queue_job_info info;
    ck_assert_uint_eq(get1(q, &info), id);
    ck_assert_uint_eq(info.attempt, 1);
    ck_assert_uint_eq(info.deadline, T0 + 1000);
    advance_to(T0 + 999);
    ck_assert_uint_eq(stats(q).reserved, 1);
    advance_to(T0 + 1000);
    ck_assert_uint_eq(stats(q).reserved, 0);
    ck_assert_uint_eq(stats(q).size, 1);
    ck_assert_uint_eq(get1(q, &info), id);
    ck_assert_uint_eq(info.attempt, 2);
    ck_assert_uint_eq(info.deadline, T0 + 2000);
    ck_assert_uint_eq(stats(q).total_redelivered, 1);
    /* The first consumer's lease is gone: its ack is refused. */
    ck_assert_int_eq(queue_ack(q, id, 1), QUEUE_ERR_STATE);
    ck_assert_int_eq(queue_ack(q, id + 100, 0), QUEUE_ERR_NOTFOUND);
    ck_assert_int_eq(queue_ack(q, id, 2), QUEUE_OK);
    ck_assert_int_eq(queue_ack(q, id, 2), QUEUE_ERR_NOTFOUND);
    ck_assert_uint_eq(stats(q).unfinished, 0);
    /* A ready job cannot be acked. */
    id = put(q, "j2", 0, 0);
    ck_assert_int_eq(queue_ack(q, id, 0), QUEUE_ERR_STATE);
    /* Per-reserve lease. */
    struct queue_job_info out;
    unsigned n;
    ck_assert_int_eq(queue_reserve(q, 1, 50, &out, &n), QUEUE_OK);
    ck_assert_uint_eq(out.deadline, W.now + 50);
    check_invariants(q);
}
END_TEST

START_TEST(test_dead_letters) {
    struct queue *q = mkq("q", 0, 100, 2);
    uint64_t a = put(q, "a", 0, 0), b = put(q, "b", 0, 0);
    struct queue_job_info info;
    ck_assert_uint_eq(get1(q, &info), a);
    advance(100);
    ck_assert_uint_eq(get1(q, &info), a);
    ck_assert_uint_eq(info.attempt, 2);
    advance(100); /* second delivery expired: max_attempts reached */
    ck_assert_uint_eq(stats(q).dead, 1);
    ck_assert_uint_eq(stats(q).total_dead, 1);
    ck_assert_uint_eq(stats(q).unfinished, 1); /* a dead job is finished (for join) */
    ck_assert_int_eq(queue_peek(q, a, &info), QUEUE_OK);
    ck_assert_int_eq(info.state, QUEUE_JOB_DEAD);
    /* nack counts too: b delivered twice, nacked -> dead. */
    ck_assert_uint_eq(get1(q, &info), b);
    ck_assert_int_eq(queue_nack(q, b, 0, 0), QUEUE_OK);
    ck_assert_uint_eq(get1(q, &info), b);
    ck_assert_int_eq(queue_nack(q, b, 0, 0), QUEUE_OK);
    ck_assert_uint_eq(stats(q).dead, 2);
    check_invariants(q);

    struct queue_job_info list[4];
    size_t n;
    ck_assert_int_eq(queue_dead_list(q, 0, list, 4, &n), QUEUE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(list[0].id, a);
    ck_assert_uint_eq(list[1].id, b);
    ck_assert_int_eq(queue_dead_list(q, a, list, 4, &n), QUEUE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(list[0].id, b);
    ck_assert_int_eq(queue_dead_list(q, 999, list, 4, &n), QUEUE_ERR_NOTFOUND);
    ck_assert_int_eq(queue_dead_list(q, 0, list, 1, &n), QUEUE_OK);
    ck_assert_uint_eq(n, 1);

    /* Requeue one: ready with attempts reset. */
    uint64_t k;
    ck_assert_int_eq(queue_dead_requeue(q, b, &k), QUEUE_OK);
    ck_assert_uint_eq(k, 1);
    ck_assert_int_eq(queue_dead_requeue(q, b, &k), QUEUE_ERR_NOTFOUND);
    ck_assert_uint_eq(get1(q, &info), b);
    ck_assert_uint_eq(info.attempt, 1);
    ck_assert_int_eq(queue_ack(q, b, 1), QUEUE_OK);
    /* Purge the rest. */
    ck_assert_int_eq(queue_dead_purge(q, 0, &k), QUEUE_OK);
    ck_assert_uint_eq(k, 1);
    ck_assert_uint_eq(stats(q).dead, 0);
    ck_assert_int_eq(queue_peek(q, a, &info), QUEUE_ERR_NOTFOUND);
    check_invariants(q);
}
END_TEST

START_TEST(test_nack) {
    struct queue *q = mkq("q", 0, 1000, 0);
    uint64_t a = put(q, "a", 0, 0), b = put(q, "b", 0, 0);
    struct queue_job_info info;
    ck_assert_uint_eq(get1(q, &info), a);
    /* Released without delay: ready at once, ahead of the younger b. */
    ck_assert_int_eq(queue_nack(q, a, 1, 0), QUEUE_OK);
    ck_assert_int_eq(queue_nack(q, a, 1, 0), QUEUE_ERR_STATE);
    ck_assert_uint_eq(stats(q).size, 2);
    ck_assert_uint_eq(get1(q, &info), a);
    ck_assert_uint_eq(info.attempt, 2);
    /* With a delay: invisible until exactly then. */
    ck_assert_int_eq(queue_nack(q, a, 2, 500), QUEUE_OK);
    ck_assert_uint_eq(stats(q).delayed, 1);
    ck_assert_int_eq(queue_peek(q, a, &info), QUEUE_OK);
    ck_assert_int_eq(info.state, QUEUE_JOB_DELAYED);
    ck_assert_uint_eq(info.deadline, T0 + 500);
    ck_assert_uint_eq(get1(q, &info), b);
    ck_assert_uint_eq(get1(q, &info), 0);
    advance_to(T0 + 499);
    ck_assert_uint_eq(get1(q, &info), 0);
    advance_to(T0 + 500);
    ck_assert_uint_eq(get1(q, &info), a);
    ck_assert_uint_eq(info.attempt, 3);
    ck_assert_int_eq(queue_nack(q, a, 0, QUEUE_DURATION_MAX_MS + 1), QUEUE_ERR_INVALID);
    check_invariants(q);
}
END_TEST

START_TEST(test_touch_extends_lease) {
    struct queue *q = mkq("q", 0, 1000, 0);
    uint64_t id = put(q, "a", 0, 0), deadline;
    ck_assert_uint_eq(get1(q, NULL), id);
    advance_to(T0 + 800);
    ck_assert_int_eq(queue_touch(q, id, 1, 0, &deadline), QUEUE_OK);
    ck_assert_uint_eq(deadline, T0 + 1800);
    advance_to(T0 + 1799);
    ck_assert_uint_eq(stats(q).reserved, 1);
    ck_assert_int_eq(queue_touch(q, id, 0, 10, &deadline), QUEUE_OK); /* shorter works too */
    ck_assert_uint_eq(deadline, T0 + 1809);
    advance_to(T0 + 1809);
    ck_assert_uint_eq(stats(q).reserved, 0);
    ck_assert_int_eq(queue_touch(q, id, 1, 0, &deadline), QUEUE_ERR_STATE);
    check_invariants(q);
}
END_TEST

/* ---- ordering ------------------------------------------------------------------- */

START_TEST(test_priorities_fifo_among_equals) {
    struct queue *q = mkq("q", 0, 1000, 0);
    uint64_t p5a = put(q, "5a", 5, 0), p1a = put(q, "1a", 1, 0), p5b = put(q, "5b", 5, 0);
    uint64_t p1b = put(q, "1b", 1, 0), p0 = put(q, "0", 0, 0), neg = put(q, "-7", -7, 0);
    uint64_t want[] = {neg, p0, p1a, p1b, p5a, p5b};
    struct queue_job_info info;
    ck_assert_int_eq(queue_peek_ready(q, &info), QUEUE_OK);
    ck_assert_uint_eq(info.id, neg);
    for (size_t i = 0; i < 6; i++)
        ck_assert_uint_eq(get1(q, NULL), want[i]);
    ck_assert_int_eq(queue_peek_ready(q, &info), QUEUE_ERR_EMPTY);

    /* A big heap against a sort, with removals from the middle (unreserve
     * reinserts, nack reinserts). */
    enum { N = 5000 };
    static int32_t prio[N];
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        prio[i] = (int32_t)(seed >> 60);
        put(q, "x", prio[i], 0);
    }
    uint64_t last_id = 0;
    int32_t last_prio = INT32_MIN;
    for (int i = 0; i < N; i++) {
        struct queue_job_info ji;
        uint64_t id = get1(q, &ji);
        EXPECT(id);
        if (i % 3 == 0) { /* give it back: it must come out again next */
            EXPECT_EQ(queue_unreserve(q, id, ji.attempt), QUEUE_OK);
            EXPECT_EQ(get1(q, &ji), id);
        }
        EXPECT(ji.priority > last_prio || (ji.priority == last_prio && id > last_id));
        last_prio = ji.priority;
        last_id = id;
        EXPECT_EQ(queue_ack(q, id, 0), QUEUE_OK);
    }
    check_invariants(q);
}
END_TEST

START_TEST(test_delay_visible_exactly) {
    struct queue *q = mkq("q", 0, 1000, 0);
    struct req g;
    uint64_t late = put(q, "late", 0, 250);
    uint64_t early = put(q, "early", 0, 100);
    ck_assert_uint_eq(stats(q).delayed, 2);
    ck_assert_uint_eq(get1(q, NULL), 0);
    req_init(&g, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q, &g.w), QUEUE_WAIT);
    advance_to(T0 + 99);
    ck_assert_int_eq(g.woken, 0);
    advance_to(T0 + 300); /* one big jump: the getter is woken at the exact ms */
    ck_assert_int_eq(g.woken, 1);
    ck_assert_uint_eq(g.ids[0], early);
    ck_assert_uint_eq(g.woke_at, T0 + 100);
    ck_assert_uint_eq(g.jobs[0].deadline, T0 + 100 + 1000); /* lease from then */
    ck_assert_uint_eq(get1(q, NULL), late);
    check_invariants(q);
}
END_TEST

/* ---- idempotency keys ------------------------------------------------------------- */

START_TEST(test_idempotency_keys) {
    struct queue *q = mkq("q", 1, 1000, 0);
    struct queue_settings s = *queue_settings_of(q);
    s.key_window_ms = 1000;
    ck_assert_int_eq(queue_update(q, &s), QUEUE_OK);
    uint64_t id1, id2, id3;
    int dup = -1;
    struct queue_put p = {"a", 1, 0, 0, "key-1", 5};
    ck_assert_int_eq(queue_put(q, &p, &id1, &dup), QUEUE_OK);
    ck_assert_int_eq(dup, 0);
    /* A repeat returns the first id even though the queue is full. */
    ck_assert_int_eq(queue_put(q, &p, &id2, &dup), QUEUE_OK);
    ck_assert_int_eq(dup, 1);
    ck_assert_uint_eq(id2, id1);
    ck_assert_uint_eq(stats(q).total_put, 1);
    ck_assert_int_eq(put_full(q, "b", 0, 0, "key-2", &id3), QUEUE_ERR_FULL);
    /* ... and after the job is done, still within the window. */
    ck_assert_uint_eq(get1(q, NULL), id1);
    ck_assert_int_eq(queue_ack(q, id1, 0), QUEUE_OK);
    advance_to(T0 + 999);
    ck_assert_int_eq(queue_put(q, &p, &id2, &dup), QUEUE_OK);
    ck_assert_uint_eq(id2, id1);
    ck_assert_uint_eq(stats(q).unfinished, 0);
    /* After the window: a new job. */
    advance_to(T0 + 1000);
    ck_assert_int_eq(queue_put(q, &p, &id2, &dup), QUEUE_OK);
    ck_assert_int_eq(dup, 0);
    ck_assert_uint_gt(id2, id1);
    /* An expired key stuck behind a longer-lived one (the window shrank)
     * is not matched. */
    struct queue_put pa = {"a", 1, 0, 0, "long", 4}, pb = {"b", 1, 0, 0, "short", 5};
    ck_assert_uint_eq(get1(q, NULL), id2);
    ck_assert_int_eq(queue_put(q, &pa, &id3, &dup), QUEUE_OK); /* expires in 1000 */
    ck_assert_uint_eq(get1(q, NULL), id3);
    s.key_window_ms = 10;
    ck_assert_int_eq(queue_update(q, &s), QUEUE_OK);
    ck_assert_int_eq(queue_put(q, &pb, &id3, &dup), QUEUE_OK); /* expires in 10 */
    ck_assert_uint_eq(get1(q, NULL), id3);
    advance(10);
    ck_assert_int_eq(queue_put(q, &pb, &id2, &dup), QUEUE_OK);
    ck_assert_int_eq(dup, 0);
    ck_assert_uint_gt(id2, id3);
    ck_assert_uint_eq(get1(q, NULL), id2);
    /* Key bounds. */
    p.key_len = 0;
    ck_assert_int_eq(queue_put(q, &p, &id3, &dup), QUEUE_ERR_INVALID);
    p.key_len = QUEUE_KEY_MAX + 1;
    ck_assert_int_eq(queue_put(q, &p, &id3, &dup), QUEUE_ERR_INVALID);

    /* Waiting putters with the same key: the second gets the first's id. */
    struct req a, b;
    req_put(&a, "x");
    a.w.put.key = "same";
    a.w.put.key_len = 4;
    req_put(&b, "y");
    b.w.put.key = "same";
    b.w.put.key_len = 4;
    uint64_t filler = put(q, "f", 0, 0);
    ck_assert_int_eq(queue_put_wait(q, &a.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_put_wait(q, &b.w), QUEUE_WAIT);
    ck_assert_uint_eq(get1(q, NULL), filler); /* room: a's put happens */
    ck_assert_int_eq(a.status, QUEUE_OK);
    ck_assert_int_eq(b.woken, 0);             /* next in line, behind a full queue */
    ck_assert_uint_eq(get1(q, NULL), a.w.id); /* room: b's put is a repeat of a's */
    ck_assert_int_eq(b.status, QUEUE_OK);
    ck_assert_int_eq(a.w.duplicate, 0);
    ck_assert_int_eq(b.w.duplicate, 1);
    ck_assert_uint_eq(b.w.id, a.w.id);
    ck_assert_uint_eq(stats(q).size, 0); /* a repeat takes no room */
    check_invariants(q);
}
END_TEST

/* ---- join ---------------------------------------------------------------------- */

START_TEST(test_join) {
    struct queue *q = mkq("q", 0, 100, 1);
    struct req j, j2;
    req_init(&j, QUEUE_WAIT_JOIN, 0);
    ck_assert_int_eq(queue_join_wait(q, &j.w), QUEUE_OK); /* nothing unfinished */
    uint64_t a = put(q, "a", 0, 0), b = put(q, "b", 0, 0);
    ck_assert_int_eq(queue_join_wait(q, &j.w), QUEUE_WAIT);
    req_init(&j2, QUEUE_WAIT_JOIN, 0);
    ck_assert_int_eq(queue_join_wait(q, &j2.w), QUEUE_WAIT);
    ck_assert_uint_eq(stats(q).joiners, 2);
    ck_assert_uint_eq(get1(q, NULL), a);
    ck_assert_uint_eq(get1(q, NULL), b);
    ck_assert_int_eq(queue_ack(q, a, 0), QUEUE_OK);
    ck_assert_int_eq(j.woken, 0);
    advance(100); /* b's only delivery expires: dead, which finishes it */
    ck_assert_int_eq(j.woken, 1);
    ck_assert_int_eq(j.status, QUEUE_OK);
    ck_assert_int_eq(j2.woken, 1);
    ck_assert_uint_eq(stats(q).joiners, 0);
    /* A requeued dead letter is unfinished again. */
    ck_assert_int_eq(queue_dead_requeue(q, 0, NULL), QUEUE_OK);
    ck_assert_int_eq(queue_join_wait(q, &j.w), QUEUE_WAIT);
    ck_assert_uint_eq(get1(q, NULL), b);
    ck_assert_int_eq(queue_ack(q, b, 0), QUEUE_OK);
    ck_assert_int_eq(j.woken, 2);
    check_invariants(q);
}
END_TEST

/* ---- shutdown and delete ---------------------------------------------------------- */

START_TEST(test_shutdown_drains) {
    struct queue *q = mkq("q", 2, 1000, 0);
    struct req p, g, g2;
    uint64_t a = put(q, "a", 0, 0), b = put(q, "b", 0, 0), id;
    req_put(&p, "p");
    ck_assert_int_eq(queue_put_wait(q, &p.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_shutdown(q, 0), QUEUE_OK);
    ck_assert_int_eq(p.woken, 1);
    ck_assert_int_eq(p.status, QUEUE_ERR_SHUTDOWN);
    ck_assert_int_eq(put_full(q, "c", 0, 0, NULL, &id), QUEUE_ERR_SHUTDOWN);
    req_put(&p, "p");
    ck_assert_int_eq(queue_put_wait(q, &p.w), QUEUE_ERR_SHUTDOWN);
    ck_assert_int_eq(stats(q).shutdown, 1);
    /* Getters drain what is left. */
    ck_assert_uint_eq(get1(q, NULL), a);
    ck_assert_uint_eq(get1(q, NULL), b);
    /* Nothing ready but two jobs in flight that may come back: wait. */
    req_init(&g, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q, &g.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_nack(q, a, 0, 0), QUEUE_OK);
    ck_assert_int_eq(g.woken, 1);
    ck_assert_uint_eq(g.ids[0], a);
    req_init(&g2, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q, &g2.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_ack(q, a, 0), QUEUE_OK);
    ck_assert_int_eq(g2.woken, 0);
    ck_assert_int_eq(queue_ack(q, b, 0), QUEUE_OK); /* the last one: nothing can come */
    ck_assert_int_eq(g2.woken, 1);
    ck_assert_int_eq(g2.status, QUEUE_ERR_SHUTDOWN);
    struct queue_job_info out;
    unsigned n;
    ck_assert_int_eq(queue_reserve(q, 1, 0, &out, &n), QUEUE_ERR_SHUTDOWN);
    req_init(&g2, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q, &g2.w), QUEUE_ERR_SHUTDOWN);
    ck_assert_int_eq(queue_dead_requeue(q, 0, NULL), QUEUE_ERR_SHUTDOWN);
    ck_assert_int_eq(queue_shutdown(q, 0), QUEUE_OK); /* again: no-op */
    check_invariants(q);
}
END_TEST

START_TEST(test_shutdown_immediate) {
    struct queue *q = mkq("q", 3, 1000, 0);
    struct req p, g, j;
    uint64_t r1 = put(q, "r1", -1, 0);
    uint64_t r2 = put(q, "r2", -1, 0);
    ck_assert_uint_eq(get1(q, NULL), r1);
    ck_assert_uint_eq(get1(q, NULL), r2);
    put(q, "ready", 0, 0);
    put(q, "delayed", 0, 5000);
    put(q, "ready2", 0, 0); /* full */
    req_put(&p, "p");
    ck_assert_int_eq(queue_put_wait(q, &p.w), QUEUE_WAIT);
    req_init(&j, QUEUE_WAIT_JOIN, 0);
    ck_assert_int_eq(queue_join_wait(q, &j.w), QUEUE_WAIT);
    /* A getter on another queue state: make one wait by draining a second queue. */
    struct queue *q2 = mkq("q2", 0, 1000, 0);
    req_init(&g, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q2, &g.w), QUEUE_WAIT);

    size_t before = R.n;
    ck_assert_int_eq(queue_shutdown(q, 1), QUEUE_OK);
    struct queue_stats s = stats(q);
    ck_assert_uint_eq(s.size, 0);
    ck_assert_uint_eq(s.delayed, 0);
    ck_assert_uint_eq(s.reserved, 2);
    ck_assert_uint_eq(s.total_dropped, 3);
    ck_assert_int_eq(s.shutdown, 2);
    ck_assert_int_eq(p.status, QUEUE_ERR_SHUTDOWN);
    ck_assert_int_eq(j.woken, 0); /* two jobs still in flight, as asyncio */
    ck_assert_int_eq(g.woken, 0); /* other queues untouched */
    /* SHUTDOWN now; one DROP per dropped job once the reaper ran. */
    ck_assert_uint_eq(R.n - before, 1);
    ck_assert_uint_eq(s.reaping, 3);
    ck_assert_uint_ne(queue_engine_reap(E, 2), 0); /* a slice: more to do */
    ck_assert_uint_eq(R.n - before, 3);
    ck_assert_uint_eq(queue_engine_reap(E, 2), 0);
    ck_assert_uint_eq(R.n - before, 4);
    ck_assert_uint_eq(stats(q).reaping, 0);
    ck_assert_int_eq(R.v[before].ev.type, QUEUE_EV_SHUTDOWN);
    ck_assert_int_eq(R.v[before].ev.immediate, 1);
    for (size_t i = before + 1; i < R.n; i++)
        ck_assert_int_eq(R.v[i].ev.type, QUEUE_EV_DROP);

    /* A getter on the shut queue is refused at once. */
    struct req g2;
    req_init(&g2, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q, &g2.w), QUEUE_ERR_SHUTDOWN);
    /* In-flight jobs: ack works; one that comes back is dropped. */
    ck_assert_int_eq(queue_ack(q, r1, 0), QUEUE_OK);
    advance(1000);
    ck_assert_uint_eq(stats(q).size, 0);
    ck_assert_uint_eq(stats(q).total_dropped, 4);
    ck_assert_int_eq(j.woken, 1);
    ck_assert_int_eq(j.status, QUEUE_OK);
    check_invariants(q);
    queue_waiter_cancel(&g.w);
}
END_TEST

START_TEST(test_shutdown_immediate_wakes_getters) {
    struct queue *q = mkq("q", 0, 1000, 0);
    struct req g;
    put(q, "d", 0, 100);
    req_init(&g, QUEUE_WAIT_GET, 1);
    ck_assert_int_eq(queue_reserve_wait(q, &g.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_shutdown(q, 1), QUEUE_OK);
    ck_assert_int_eq(g.woken, 1);
    ck_assert_int_eq(g.status, QUEUE_ERR_SHUTDOWN);
    ck_assert_uint_eq(stats(q).unfinished, 0);
}
END_TEST

START_TEST(test_delete_wakes_waiters) {
    struct queue *q = mkq("q", 1, 1000, 0);
    struct queue *keep = mkq("keep", 0, 1000, 0);
    struct req g, p, j;
    put(keep, "stays", 0, 0);
    put(q, "a", 0, 2000);
    uint64_t r = put(mkq("tmp", 0, 10, 0), "x", 0, 0);
    (void)r;
    req_init(&g, QUEUE_WAIT_GET, 1);
    req_put(&p, "p");
    req_init(&j, QUEUE_WAIT_JOIN, 0);
    ck_assert_int_eq(queue_reserve_wait(q, &g.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_put_wait(q, &p.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_join_wait(q, &j.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_delete(q), QUEUE_OK);
    ck_assert_int_eq(g.status, QUEUE_ERR_DELETED);
    ck_assert_int_eq(p.status, QUEUE_ERR_DELETED);
    ck_assert_int_eq(j.status, QUEUE_ERR_DELETED);
    ck_assert_int_eq(g.woken + p.woken + j.woken, 3);
    /* The delayed job waits for the reaper, then is gone with its timer;
     * the others are intact. */
    struct queue_engine_stats es;
    queue_engine_stats(E, &es);
    ck_assert_uint_eq(es.jobs, 3);
    ck_assert_uint_eq(es.reaping, 1);
    ck_assert_uint_eq(queue_engine_reap(E, 100), 0);
    queue_engine_stats(E, &es);
    ck_assert_uint_eq(es.jobs, 2);
    ck_assert_uint_eq(es.reaping, 0);
    ck_assert_uint_eq(es.mem_used, 2 * QUEUE_JOB_COST(5) - 4);
    advance(5000);
    ck_assert_uint_eq(stats(keep).size, 1);
    ck_assert_int_eq(R.v[R.n - 1].ev.type, QUEUE_EV_DELETE);
}
END_TEST

/* ---- re-entrancy ------------------------------------------------------------------ */

static struct queue *RQ;

/* A consumer that acks inside its wake and waits again with the same waiter. */
static void then_ack_and_rewait(struct req *r) {
    if (r->status != QUEUE_OK)
        return;
    EXPECT_EQ(queue_ack(RQ, r->ids[0], 0), QUEUE_OK);
    if (r->woken < 3)
        EXPECT_EQ(queue_reserve_wait(RQ, &r->w), QUEUE_WAIT);
}

START_TEST(test_reentrant_wake) {
    RQ = mkq("q", 0, 1000, 0);
    struct req g;
    req_init(&g, QUEUE_WAIT_GET, 1);
    g.then = then_ack_and_rewait;
    ck_assert_int_eq(queue_reserve_wait(RQ, &g.w), QUEUE_WAIT);
    put(RQ, "1", 0, 0);
    ck_assert_int_eq(g.woken, 1);
    ck_assert_uint_eq(stats(RQ).getters, 1);
    put(RQ, "2", 0, 0);
    put(RQ, "3", 0, 0);
    ck_assert_int_eq(g.woken, 3);
    ck_assert_uint_eq(stats(RQ).unfinished, 0);
    ck_assert_uint_eq(stats(RQ).getters, 0);
    check_invariants(RQ);
}
END_TEST

static struct req *VICTIM;

static void then_cancel_victim(struct req *r) {
    queue_waiter_cancel(&VICTIM->w);
}

/* A getter cancelled after being served but before its wake gives its job
 * back, and a getter whose client left hands its jobs back in wake. */
START_TEST(test_cancel_served_getter) {
    struct queue *q = mkq("q", 0, 10, 1);
    struct req a, b, c;
    /* Three dead letters, so that one requeue-all makes three jobs ready in
     * one operation and a, b and c are all served before any wake runs. */
    uint64_t j1 = put(q, "1", 0, 0), j2 = put(q, "2", 0, 0), j3 = put(q, "3", 0, 0);
    (void)j3;
    for (int i = 0; i < 3; i++)
        ck_assert(get1(q, NULL));
    advance(10);
    ck_assert_uint_eq(stats(q).dead, 3);
    req_init(&a, QUEUE_WAIT_GET, 1);
    req_init(&b, QUEUE_WAIT_GET, 2);
    req_init(&c, QUEUE_WAIT_GET, 1);
    a.then = then_cancel_victim;
    VICTIM = &b;
    ck_assert_int_eq(queue_reserve_wait(q, &a.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_reserve_wait(q, &b.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_reserve_wait(q, &c.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_dead_requeue(q, 0, NULL), QUEUE_OK);
    ck_assert_int_eq(a.woken, 1);
    ck_assert_int_eq(b.woken, 0); /* cancelled while waking */
    ck_assert_int_eq(c.woken, 1);
    ck_assert_uint_eq(a.ids[0], j1);
    /* a got j1 at once; j2 and j3 went to b; b's cancel gave them back and
     * c (next in line) got j2 then. */
    ck_assert_uint_eq(c.ids[0], j2);
    struct queue_job_info info;
    ck_assert_int_eq(queue_peek(q, j2, &info), QUEUE_OK);
    ck_assert_uint_eq(info.attempt, 1); /* b's delivery was undone */
    ck_assert_uint_eq(stats(q).size, 1);
    ck_assert_uint_eq(stats(q).total_redelivered, 0); /* requeue reset the attempts */
    check_invariants(q);

    /* queue_waiter_release after an immediate serve. */
    struct req d;
    req_init(&d, QUEUE_WAIT_GET, 4);
    ck_assert_int_eq(queue_reserve_wait(q, &d.w), QUEUE_OK);
    ck_assert_uint_eq(d.w.njobs, 1);
    queue_waiter_release(&d.w);
    ck_assert_uint_eq(stats(q).size, 1);
    ck_assert_uint_eq(stats(q).reserved, 2);
    check_invariants(q);
}
END_TEST

static void then_delete_queue(struct req *r) {
    EXPECT_EQ(queue_delete(RQ), QUEUE_OK);
}

START_TEST(test_delete_from_wake) {
    RQ = mkq("q", 0, 10, 1);
    struct req a, b;
    put(RQ, "1", 0, 0);
    put(RQ, "2", 0, 0);
    ck_assert(get1(RQ, NULL) && get1(RQ, NULL));
    advance(10); /* both dead */
    req_init(&a, QUEUE_WAIT_GET, 1);
    req_init(&b, QUEUE_WAIT_GET, 1);
    a.then = then_delete_queue;
    ck_assert_int_eq(queue_reserve_wait(RQ, &a.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_reserve_wait(RQ, &b.w), QUEUE_WAIT);
    ck_assert_int_eq(queue_dead_requeue(RQ, 0, NULL), QUEUE_OK); /* a and b served at once */
    ck_assert_int_eq(a.status, QUEUE_OK);
    ck_assert_int_eq(b.woken, 1);
    ck_assert_int_eq(b.status, QUEUE_ERR_DELETED); /* its job was freed with the queue */
    ck_assert_uint_eq(b.n, 0);
    ck_assert_uint_eq(queue_count(E), 0);
}
END_TEST

/* ---- memory -------------------------------------------------------------------------- */

/* Issue 12, finding 2: a budget shared with another owner (the timers)
 * refuses puts while the other holds the memory, and gets back what the
 * engine frees. */
START_TEST(test_shared_budget) {
    struct mem_budget b = {.used = 0, .limit = 2 * QUEUE_JOB_COST(100)};
    struct queue_engine_config cfg = {.mem_limit = 1, /* ignored: the budget rules */
                                      .budget = &b,
                                      .alloc = t_alloc,
                                      .dealloc = t_free,
                                      .hash_seed = 1};
    struct queue_engine *e = queue_engine_new(&W, &cfg);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_eq(queue_engine_budget(e), &b);
    struct queue *q;
    ck_assert_int_eq(queue_create(e, "s", 1, NULL, &q), QUEUE_OK);
    char payload[100];
    memset(payload, 'p', sizeof payload);
    struct queue_put p = {payload, sizeof payload, 0, 0, NULL, 0};
    uint64_t id, id2;
    ck_assert_int_eq(queue_put(q, &p, &id, NULL), QUEUE_OK);
    b.used += QUEUE_JOB_COST(100); /* another owner takes the rest */
    ck_assert_int_eq(queue_put(q, &p, &id2, NULL), QUEUE_ERR_MEMORY);
    b.used -= QUEUE_JOB_COST(100);
    ck_assert_int_eq(queue_put(q, &p, &id2, NULL), QUEUE_OK);
    ck_assert_uint_eq(b.used, 2 * QUEUE_JOB_COST(100));
    struct queue_engine_stats es;
    queue_engine_stats(e, &es);
    ck_assert_uint_eq(es.mem_used, 2 * QUEUE_JOB_COST(100));
    ck_assert_uint_eq(es.mem_budget_used, 2 * QUEUE_JOB_COST(100));
    ck_assert_uint_eq(es.mem_limit, 2 * QUEUE_JOB_COST(100));
    queue_engine_set_mem_limit(e, 0); /* a reload changes the shared limit */
    ck_assert_uint_eq(b.limit, 0);
    queue_engine_free(e);
    ck_assert_uint_eq(b.used, 0);
}
END_TEST

/* queue_after: paging GET /queues by name. */
START_TEST(test_queue_after) {
    const char *names[] = {"b", "d", "f"};
    for (int i = 0; i < 3; i++)
        mkq(names[i], 0, 1000, 0);
    ck_assert_uint_eq(queue_after(E, NULL, 0), 0);
    ck_assert_uint_eq(queue_after(E, "a", 1), 0);
    ck_assert_uint_eq(queue_after(E, "b", 1), 1);
    ck_assert_uint_eq(queue_after(E, "c", 1), 1); /* deleted since: the next name */
    ck_assert_uint_eq(queue_after(E, "d", 1), 2);
    ck_assert_uint_eq(queue_after(E, "f", 1), 3);
    ck_assert_uint_eq(queue_after(E, "z", 1), 3);
}
END_TEST

START_TEST(test_memory_limit) {
    queue_engine_set_mem_limit(E, 3 * QUEUE_JOB_COST(100) + QUEUE_JOB_COST(0));
    struct queue *q = mkq("q", 0, 1000, 0), *q2 = mkq("q2", 0, 1000, 0);
    char payload[101];
    memset(payload, 'p', 100);
    payload[100] = '\0';
    uint64_t id;
    put(q, payload, 0, 0);
    put(q2, payload, 0, 0); /* the limit is global */
    uint64_t last = put(q, payload, 0, 0);
    ck_assert_int_eq(put_full(q, payload, 0, 0, NULL, &id), QUEUE_ERR_MEMORY);
    ck_assert_int_eq(put_full(q2, "", 0, 0, NULL, &id), QUEUE_OK); /* an empty one still fits */
    ck_assert_int_eq(put_full(q2, "x", 0, 0, NULL, &id), QUEUE_ERR_MEMORY);
    struct queue_engine_stats es;
    queue_engine_stats(E, &es);
    ck_assert_uint_eq(es.mem_used, 3 * QUEUE_JOB_COST(100) + QUEUE_JOB_COST(0));
    /* A blocking put is refused too, not parked. */
    struct req p;
    req_put(&p, payload);
    ck_assert_int_eq(queue_put_wait(q, &p.w), QUEUE_ERR_MEMORY);
    ck_assert_uint_eq(get1(q, NULL) != 0, 1);
    ck_assert_uint_eq(get1(q, NULL), last);
    ck_assert_int_eq(queue_ack(q, last, 0), QUEUE_OK);
    ck_assert_int_eq(put_full(q, "x", 0, 0, NULL, &id), QUEUE_OK);
}
END_TEST

/* Every allocation of a scripted scenario fails once, in turn: the failing
 * call reports NOMEM with nothing changed (no event either), the scenario
 * goes on, and everything is freed at the end. */
struct snap {
    struct queue_stats s;
    struct queue_engine_stats es;
    size_t events;
};

static struct snap snap_of(const struct queue *q) {
    struct snap s;
    memset(&s, 0, sizeof s);
    if (q)
        queue_stats(q, &s.s);
    queue_engine_stats(E, &s.es);
    s.events = R.n;
    return s;
}

static void expect_unchanged_on_nomem(int rc, const struct queue *q, const struct snap *before) {
    if (rc != QUEUE_ERR_NOMEM)
        return;
    struct snap after = snap_of(q);
    EXPECT(memcmp(&before->s, &after.s, sizeof after.s) == 0);
    EXPECT_EQ(after.es.mem_used, before->es.mem_used);
    EXPECT_EQ(after.es.jobs, before->es.jobs);
    EXPECT_EQ(after.es.queues, before->es.queues);
    EXPECT_EQ(after.es.next_id, before->es.next_id);
    EXPECT_EQ(after.events, before->events);
}

static int scenario(long fail_at) {
    struct queue *q = NULL;
    struct snap sn;
    int nomem = 0, rc;
    uint64_t id;
    fail_countdown = fail_at;
#define STEP(qq, call)                                                                             \
    do {                                                                                           \
        sn = snap_of(qq);                                                                          \
        rc = (call);                                                                               \
        expect_unchanged_on_nomem(rc, qq, &sn);                                                    \
        nomem += rc == QUEUE_ERR_NOMEM;                                                            \
    } while (0)
    for (int i = 0; i < 12; i++) {
        char name[8];
        snprintf(name, sizeof name, "q%d", i);
        STEP(NULL, queue_create(E, name, strlen(name), NULL, i ? NULL : &q));
        if (i == 0 && rc != QUEUE_OK)
            STEP(NULL, queue_create(E, name, strlen(name), NULL, &q)); /* need one */
    }
    if (!q) {
        fail_countdown = -1;
        ck_assert_int_eq(queue_create(E, "q0", 2, NULL, &q), QUEUE_OK);
        fail_countdown = fail_at;
    }
    struct req p;
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i % 7);
        STEP(q, put_full(q, "payload", i % 3, (uint64_t)(i % 4) * 10, i % 2 ? key : NULL, &id));
        check_invariants(q);
    }
    req_put(&p, "waiting");
    struct queue_settings s = *queue_settings_of(q);
    s.maxsize = stats(q).size + stats(q).delayed;
    queue_update(q, &s);
    STEP(q, queue_put_wait(q, &p.w));
    for (int i = 0; i < 30; i++) {
        struct queue_job_info info;
        uint64_t got = get1(q, &info);
        if (got && i % 2)
            EXPECT_EQ(queue_ack(q, got, 0), QUEUE_OK);
        advance(7);
        check_invariants(q);
    }
    queue_waiter_cancel(&p.w);
    fail_countdown = -1;
    return nomem;
#undef STEP
}

START_TEST(test_alloc_failure_injection) {
    /* A clean run counts the allocations the scenario makes. */
    fail_countdown = -1;
    ck_assert_int_eq(scenario(-1), 0);
    queue_engine_free(E);
    ck_assert_int_eq(live_allocs, 0);
    long total_fail_points = 0;
    for (long k = 0; k < 400; k++) {
        timer_wheel_init(&W, T0);
        recorder_free(&R);
        live_allocs = 0;
        E = engine_new(&W, 0, &R);
        ck_assert_ptr_nonnull(E);
        total_fail_points += scenario(k);
        queue_engine_free(E);
        E = NULL;
        EXPECT_EQ(live_allocs, 0);
        EXPECT_EQ(W.count, 0);
    }
    ck_assert_int_gt(total_fail_points, 50); /* failures did land in many places */
    /* Engine creation itself. */
    fail_countdown = 0;
    ck_assert_ptr_null(engine_new(&W, 0, NULL));
    fail_countdown = -1;
    E = engine_new(&W, 0, &R);
}
END_TEST

/* ---- events and replay -------------------------------------------------------------- */

START_TEST(test_event_sequence) {
    struct queue *q = mkq("ev", 0, 100, 2);
    uint64_t a = put(q, "a", 3, 0);
    struct queue_put p = {"b", 1, 0, 50, "kb", 2};
    uint64_t b;
    ck_assert_int_eq(queue_put(q, &p, &b, NULL), QUEUE_OK);
    ck_assert_int_eq(queue_put(q, &p, &b, NULL), QUEUE_OK); /* repeat: no event */
    ck_assert_uint_eq(get1(q, NULL), a);                    /* reserve: no event */
    ck_assert_int_eq(queue_nack(q, a, 0, 20), QUEUE_OK);
    advance(50);
    ck_assert_uint_eq(get1(q, NULL), b);
    ck_assert_int_eq(queue_ack(q, b, 0), QUEUE_OK);
    ck_assert_uint_eq(get1(q, NULL), a);
    advance(100); /* second delivery of a expired: dead */
    ck_assert_int_eq(queue_dead_requeue(q, a, NULL), QUEUE_OK);
    put(q, "c", 0, 0);
    ck_assert_int_eq(queue_purge(q, NULL), QUEUE_OK);
    queue_engine_reap(E, SIZE_MAX); /* the DROPs */
    ck_assert_int_eq(queue_shutdown(q, 0), QUEUE_OK);
    ck_assert_int_eq(queue_delete(q), QUEUE_OK);

    static const int want[] = {QUEUE_EV_CREATE, QUEUE_EV_PUT,  QUEUE_EV_PUT,      QUEUE_EV_RELEASE,
                               QUEUE_EV_ACK,    QUEUE_EV_DEAD, QUEUE_EV_REQUEUE,  QUEUE_EV_PUT,
                               QUEUE_EV_DROP,   QUEUE_EV_DROP, QUEUE_EV_SHUTDOWN, QUEUE_EV_DELETE};
    ck_assert_uint_eq(R.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < R.n; i++) {
        ck_assert_int_eq(R.v[i].ev.type, want[i]);
        ck_assert_str_eq(R.v[i].name, "ev");
    }
    /* The fields a journal needs. */
    ck_assert_uint_eq(R.v[0].ev.settings.max_attempts, 2);
    ck_assert_uint_eq(R.v[1].ev.id, a);
    ck_assert_int_eq(R.v[1].ev.priority, 3);
    ck_assert_uint_eq(R.v[1].ev.visible_at, 0);
    ck_assert_uint_eq(R.v[1].ev.len, 1);
    ck_assert_int_eq(memcmp(R.v[1].ev.payload, "a", 1), 0);
    ck_assert_ptr_null(R.v[1].ev.key);
    ck_assert_uint_eq(R.v[2].ev.visible_at, T0 + 50);
    ck_assert_uint_eq(R.v[2].ev.key_len, 2);
    ck_assert_int_eq(memcmp(R.v[2].ev.key, "kb", 2), 0);
    ck_assert_uint_eq(R.v[2].ev.now, T0);
    ck_assert_uint_eq(R.v[3].ev.id, a);
    ck_assert_uint_eq(R.v[3].ev.visible_at, T0 + 20);
    ck_assert_int_eq(R.v[8].ev.reason, QUEUE_DROP_PURGE);
}
END_TEST

/* Replay every recorded event into a fresh engine on its own wheel at the
 * same time. Reserved jobs come back READY. */
static struct queue_engine *replay_all(struct timer_wheel *w2, const struct recorder *r) {
    timer_wheel_init(w2, W.now);
    struct queue_engine *e2 = engine_new(w2, 0, NULL);
    EXPECT(e2);
    for (size_t i = 0; i < r->n; i++) {
        struct queue_event ev = rec_event(&r->v[i]);
        EXPECT_EQ(queue_engine_replay(e2, &ev), QUEUE_OK);
    }
    return e2;
}

/* Compare a live queue with its replayed twin, then drain both. In the live
 * one, reserved jobs are given back first (a restart makes them ready). */
static void compare_replayed(struct queue *q, struct queue *q2, struct timer_wheel *w2) {
    struct queue_stats s = stats(q), s2 = stats(q2);
    EXPECT_EQ(s2.size, s.size + s.reserved);
    EXPECT_EQ(s2.reserved, 0);
    EXPECT_EQ(s2.delayed, s.delayed);
    EXPECT_EQ(s2.dead, s.dead);
    EXPECT_EQ(s2.unfinished, s.unfinished);
    EXPECT_EQ(s2.total_put, s.total_put);
    EXPECT_EQ(s2.total_acked, s.total_acked);
    EXPECT_EQ(s2.total_dead, s.total_dead);
    EXPECT_EQ(s2.shutdown, s.shutdown);
    if (s.shutdown == 2) {
        /* The live engine drops jobs that come back; after a restart the
         * in-flight ones are simply ready (at-least-once). */
        return;
    }

    static struct queue_job_info d1[4096], d2[4096];
    size_t n1, n2;
    EXPECT_EQ(queue_dead_list(q, 0, d1, 4096, &n1), QUEUE_OK);
    EXPECT_EQ(queue_dead_list(q2, 0, d2, 4096, &n2), QUEUE_OK);
    EXPECT_EQ(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        EXPECT_EQ(d1[i].id, d2[i].id);
        EXPECT(d1[i].len == d2[i].len && !memcmp(d1[i].payload, d2[i].payload, d1[i].len));
    }
    /* Give back the live engine's reserved jobs, comparing every job. */
    struct queue_engine_stats es;
    queue_engine_stats(E, &es);
    for (uint64_t id = 1; id < es.next_id; id++) {
        struct queue_job_info info;
        if (queue_peek(q, id, &info) == QUEUE_OK && info.state == QUEUE_JOB_RESERVED)
            EXPECT_EQ(queue_unreserve(q, id, 0), QUEUE_OK);
        struct queue_job_info i2;
        if (queue_peek(q, id, &info) == QUEUE_OK) {
            EXPECT_EQ(queue_peek(q2, id, &i2), QUEUE_OK);
            EXPECT_EQ(i2.state, info.state);
            EXPECT_EQ(i2.priority, info.priority);
            EXPECT(i2.len == info.len && !memcmp(i2.payload, info.payload, info.len));
            if (info.state == QUEUE_JOB_DELAYED)
                EXPECT_EQ(i2.deadline, info.deadline);
        }
    }
    /* Same order, including delayed jobs once visible. */
    advance(QUEUE_DURATION_MAX_MS);
    timer_wheel_advance(w2, W.now);
    for (;;) {
        struct queue_job_info x, y;
        uint64_t a = get1(q, &x);
        unsigned n = 0;
        int rc = queue_reserve(q2, 1, 0, &y, &n);
        if (!a) {
            EXPECT(rc != QUEUE_OK);
            break;
        }
        EXPECT_EQ(rc, QUEUE_OK);
        EXPECT_EQ(y.id, a);
        EXPECT(x.len == y.len && !memcmp(x.payload, y.payload, x.len));
    }
}

START_TEST(test_replay_reproduces_state) {
    struct queue *q = mkq("main", 0, 100, 3), *other = mkq("other", 5, 1000, 0);
    mkq("gone", 0, 100, 0);
    put(queue_find(E, "gone", 4), "g", 0, 0);
    uint64_t ids[64];
    for (int i = 0; i < 64; i++) {
        char payload[16], key[16];
        snprintf(payload, sizeof payload, "job-%d", i);
        snprintf(key, sizeof key, "k%d", i);
        struct queue_put p = {
            payload,    strlen(payload), i % 5 - 2, i % 7 == 0 ? 500 : 0, i % 3 ? NULL : key,
            strlen(key)};
        ck_assert_int_eq(queue_put(q, &p, &ids[i], NULL), QUEUE_OK);
    }
    for (int i = 0; i < 40; i++) {
        struct queue_job_info info;
        uint64_t id = get1(q, &info);
        ck_assert(id);
        switch (i % 5) {
        case 0:
            ck_assert_int_eq(queue_ack(q, id, 0), QUEUE_OK);
            break;
        case 1:
            ck_assert_int_eq(queue_nack(q, id, 0, (uint64_t)i * 3), QUEUE_OK);
            break;
        case 2:
            break; /* left reserved; some expire below */
        default:
            ck_assert_int_eq(queue_nack(q, id, 0, 0), QUEUE_OK);
        }
        if (i % 9 == 0)
            advance(100);
    }
    queue_dead_requeue(q, 0, NULL);
    for (int i = 0; i < 5; i++)
        put(other, "o", i, 0);
    ck_assert_uint_eq(get1(other, NULL) != 0, 1);
    ck_assert_int_eq(queue_shutdown(other, 1), QUEUE_OK);
    ck_assert_int_eq(queue_delete(queue_find(E, "gone", 4)), QUEUE_OK);
    struct queue_settings s = *queue_settings_of(q);
    s.maxsize = 1000;
    ck_assert_int_eq(queue_update(q, &s), QUEUE_OK);
    check_invariants(q);
    ck_assert_uint_eq(queue_engine_reap(E, SIZE_MAX), 0); /* the journal is complete */

    struct timer_wheel w2;
    struct queue_engine *e2 = replay_all(&w2, &R);
    ck_assert_uint_eq(queue_count(e2), 2);
    ck_assert_ptr_null(queue_find(e2, "gone", 4));
    struct queue *q2 = queue_find(e2, "main", 4), *other2 = queue_find(e2, "other", 5);
    ck_assert_uint_eq(queue_settings_of(q2)->maxsize, 1000);
    ck_assert_uint_eq(queue_settings_of(q2)->max_attempts, 3);
    /* Keys survive: a repeat within the window returns the first id. */
    struct queue_put p = {"job-0", 5, 0, 0, "k0", 2};
    uint64_t id, id2;
    int dup;
    ck_assert_int_eq(queue_put(q2, &p, &id, &dup), QUEUE_OK);
    ck_assert_int_eq(dup, 1);
    ck_assert_uint_eq(id, ids[0]);
    ck_assert_int_eq(queue_put(q, &p, &id2, &dup), QUEUE_OK);
    ck_assert_uint_eq(id2, id);
    /* A new put in the replayed engine gets a fresh id. */
    struct queue_engine_stats es, es2;
    queue_engine_stats(E, &es);
    queue_engine_stats(e2, &es2);
    ck_assert_uint_eq(es2.next_id, es.next_id); /* bumped past every replayed id */
    ck_assert_int_eq(queue_engine_set_next_id(e2, es.next_id), QUEUE_OK);
    ck_assert_int_eq(queue_engine_set_next_id(e2, 1), QUEUE_ERR_INVALID);

    compare_replayed(other, other2, &w2);
    compare_replayed(q, q2, &w2);
    /* Replay errors. */
    struct queue_event bad = {.type = QUEUE_EV_ACK, .queue = "main", .queue_len = 4, .id = 99999};
    ck_assert_int_eq(queue_engine_replay(e2, &bad), QUEUE_ERR_NOTFOUND);
    bad.queue = "nope";
    ck_assert_int_eq(queue_engine_replay(e2, &bad), QUEUE_ERR_NOTFOUND);
    queue_engine_free(e2);
    ck_assert_uint_eq(w2.count, 0);
}
END_TEST

/* ---- bulk removal in slices --------------------------------------------------------- */

static size_t count_events(size_t from, int type) {
    size_t n = 0;
    for (size_t i = from; i < R.n; i++)
        n += R.v[i].ev.type == type;
    return n;
}

START_TEST(test_purge_in_slices) {
    struct queue *q = mkq("q", 0, 1000, 0), *other = mkq("other", 0, 1000, 0);
    uint64_t first = put(q, "r", 0, 0), keep_other = put(other, "o", 0, 0);
    for (int i = 1; i < 10000; i++)
        put(q, "r", i % 7, 0);
    uint64_t late = 0;
    for (int i = 0; i < 1000; i++)
        late = put(q, "d", 0, 100 + (uint64_t)i % 50);
    uint64_t held = put(q, "h", -5, 0);
    ck_assert_uint_eq(get1(q, NULL), held); /* reserved: a purge keeps it */
    struct req j;
    req_init(&j, QUEUE_WAIT_JOIN, 0);
    ck_assert_int_eq(queue_join_wait(q, &j.w), QUEUE_WAIT);

    size_t before = R.n;
    uint64_t n = 0;
    ck_assert_int_eq(queue_purge(q, &n), QUEUE_OK);
    ck_assert_uint_eq(n, 11000);
    struct queue_stats s = stats(q);
    ck_assert_uint_eq(s.size + s.delayed, 0);
    ck_assert_uint_eq(s.reserved, 1);
    ck_assert_uint_eq(s.unfinished, 1);
    ck_assert_uint_eq(s.total_dropped, 11000);
    ck_assert_uint_eq(s.reaping, 11000);
    ck_assert_uint_eq(R.n, before); /* nothing reported yet */
    check_invariants(q);
    /* Gone to every lookup at once, though not freed. */
    struct queue_job_info info;
    ck_assert_int_eq(queue_peek(q, first, &info), QUEUE_ERR_NOTFOUND);
    ck_assert_int_eq(queue_peek(q, late, &info), QUEUE_ERR_NOTFOUND);
    ck_assert_int_eq(queue_peek_ready(q, &info), QUEUE_ERR_EMPTY);
    /* Jobs put now live on, whatever the reaper does. */
    uint64_t fresh = put(q, "new", 9, 0), fresh_d = put(q, "new-d", 0, 120);
    ck_assert_uint_eq(queue_ack(q, held, 0), QUEUE_OK);
    ck_assert_int_eq(j.woken, 0); /* the fresh jobs are unfinished */

    /* Slices: never more DROPs than the budget. One slice meets the
     * delayed jobs' timers first: those are buried by their callback. */
    size_t slices = 0, last = R.n, fired = 0;
    while (queue_engine_reap(E, 500)) {
        ck_assert_uint_le(count_events(last, QUEUE_EV_DROP), 500);
        if (++slices == 15) {
            last = R.n;
            advance(120); /* some gone delayed jobs fire before the scan finds them */
            fired = count_events(last, QUEUE_EV_DROP);
        }
        last = R.n;
        ck_assert_uint_lt(slices, 100);
    }
    ck_assert_uint_gt(fired, 0);
    ck_assert_uint_ge(slices, 21);
    ck_assert_uint_eq(count_events(before, QUEUE_EV_DROP), 11000);
    ck_assert_uint_eq(stats(q).reaping, 0);
    for (size_t i = before; i < R.n; i++)
        if (R.v[i].ev.type == QUEUE_EV_DROP) {
            ck_assert_uint_ne(R.v[i].ev.id, fresh);
            ck_assert_uint_ne(R.v[i].ev.id, fresh_d);
            ck_assert_int_eq(R.v[i].ev.reason, QUEUE_DROP_PURGE);
        }
    advance(200);
    ck_assert_uint_eq(stats(q).size, 2); /* fresh and fresh_d */
    ck_assert_uint_eq(stats(other).size, 1);
    ck_assert_int_eq(queue_peek(other, keep_other, &info), QUEUE_OK);
    struct queue_engine_stats es;
    queue_engine_stats(E, &es);
    ck_assert_uint_eq(es.jobs, 3);
    ck_assert_uint_eq(es.mem_used, 2 * QUEUE_JOB_COST(3) + QUEUE_JOB_COST(5) - 2);
    ck_assert_uint_eq(W.count, 0);
    check_invariants(q);
    queue_waiter_cancel(&j.w);
}
END_TEST

/* Hundreds of purges with the reaper asleep: the 8-bit generations wrap,
 * and no live job may ever look gone, nor a gone one live. */
START_TEST(test_purges_while_reaper_sleeps) {
    struct queue *q = mkq("q", 0, 1000, 2);
    uint64_t last = 0;
    for (int i = 0; i < 700; i++) {
        put(q, "x", 0, 0);
        put(q, "y", 0, (uint64_t)(i % 3) * 10);
        if (i % 2) { /* a dead letter to purge as well */
            uint64_t d = put(q, "z", -1, 0);
            ck_assert_uint_eq(get1(q, NULL), d);
            ck_assert_int_eq(queue_nack(q, d, 0, 0), QUEUE_OK);
            ck_assert_uint_eq(get1(q, NULL), d);
            ck_assert_int_eq(queue_nack(q, d, 0, 0), QUEUE_OK); /* second delivery: dead */
            ck_assert_uint_eq(stats(q).dead, 1);
            uint64_t k = 0;
            ck_assert_int_eq(queue_dead_purge(q, 0, &k), QUEUE_OK);
            ck_assert_uint_eq(k, 1);
            ck_assert_int_eq(queue_dead_requeue(q, d, NULL), QUEUE_ERR_NOTFOUND);
        }
        uint64_t k = 0;
        ck_assert_int_eq(queue_purge(q, &k), QUEUE_OK);
        ck_assert_uint_eq(k, 2);
        last = put(q, "live", 0, 0);
        struct queue_job_info info;
        ck_assert_int_eq(queue_peek(q, last, &info), QUEUE_OK);
        ck_assert_uint_eq(get1(q, NULL), last);
        ck_assert_int_eq(queue_ack(q, last, 0), QUEUE_OK);
        if (i % 5 == 0)
            advance(7);
    }
    struct queue_stats s = stats(q);
    ck_assert_uint_eq(s.size + s.delayed + s.reserved + s.dead, 0);
    ck_assert_uint_eq(queue_engine_reap(E, SIZE_MAX), 0);
    struct queue_engine_stats es;
    queue_engine_stats(E, &es);
    ck_assert_uint_eq(es.jobs, 0);
    ck_assert_uint_eq(es.mem_used, 0);
    ck_assert_uint_eq(W.count, 0);
}
END_TEST

/* A deleted queue's jobs in every state, its keys, and a getter that was
 * served before the delete and gives its jobs back after it. */
START_TEST(test_delete_leaves_a_zombie) {
    struct queue *q = mkq("z", 0, 1000, 1);
    for (int i = 0; i < 3000; i++)
        put(q, "ready", 0, 0);
    for (int i = 0; i < 500; i++)
        put(q, "delayed", 0, 5000);
    uint64_t kid;
    ck_assert_int_eq(put_full(q, "keyed", 0, 0, "the-key", &kid), QUEUE_OK);
    uint64_t dead = put(q, "dead", -9, 0);
    ck_assert_uint_eq(get1(q, NULL), dead);
    ck_assert_int_eq(queue_nack(q, dead, 0, 0), QUEUE_OK); /* max_attempts 1: dead */
    struct req g;
    req_init(&g, QUEUE_WAIT_GET, 4);
    ck_assert_int_eq(queue_reserve_wait(q, &g.w), QUEUE_OK); /* served at once */
    ck_assert_uint_eq(g.w.njobs, 4);
    uint64_t leased = get1(q, NULL);
    size_t before = R.n;
    ck_assert_int_eq(queue_delete(q), QUEUE_OK);
    ck_assert_uint_eq(count_events(before, QUEUE_EV_DELETE), 1);
    /* The name is free at once; the old jobs are not in the new queue. */
    struct queue *q2 = mkq("z", 0, 1000, 0);
    ck_assert_int_eq(queue_ack(q2, leased, 0), QUEUE_ERR_NOTFOUND);
    ck_assert_int_eq(queue_dead_requeue(q2, dead, NULL), QUEUE_ERR_NOTFOUND);
    uint64_t again;
    int dup = 1;
    struct queue_put p = {"keyed", 5, 0, 0, "the-key", 7};
    ck_assert_int_eq(queue_put(q2, &p, &again, &dup), QUEUE_OK);
    ck_assert_int_eq(dup, 0);
    queue_waiter_release(&g.w); /* the served getter's client left: nothing to give back to */
    ck_assert_uint_eq(stats(q2).size, 1);
    /* Half the reaping, then time passes over the delays and leases. */
    queue_engine_reap(E, 1000);
    advance(6000);
    while (queue_engine_reap(E, 700))
        ;
    ck_assert_uint_eq(count_events(before, QUEUE_EV_DROP), 0); /* DELETE says it all */
    struct queue_engine_stats es;
    queue_engine_stats(E, &es);
    ck_assert_uint_eq(es.jobs, 1);
    ck_assert_uint_eq(es.reaping, 0);
    ck_assert_uint_gt(es.mem_used, QUEUE_JOB_COST(5) + 7); /* the job and q2's key only */
    ck_assert_uint_lt(es.mem_used, QUEUE_JOB_COST(5) + 7 + 100);
    ck_assert_uint_eq(W.count, 0);
    ck_assert_uint_eq(queue_count(E), 1);
}
END_TEST

/* ---- randomized model test --------------------------------------------------------- */

enum { MAXJ = 3000 };

struct mjob {
    int alive;
    int state;
    int32_t prio;
    uint16_t attempts;
    uint64_t at; /* visible_at or lease end */
    size_t len;
};

static struct mjob M[MAXJ + 1];

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int m_before(uint64_t a, uint64_t b) {
    return M[a].prio < M[b].prio || (M[a].prio == M[b].prio && a < b);
}

static uint64_t m_top(uint64_t next_id) {
    uint64_t best = 0;
    for (uint64_t i = 1; i < next_id; i++)
        if (M[i].alive && M[i].state == QUEUE_JOB_READY && (!best || m_before(i, best)))
            best = i;
    return best;
}

static uint64_t m_pick(uint64_t *s, uint64_t next_id, int state) {
    uint64_t n = 0, pick = 0;
    for (uint64_t i = 1; i < next_id; i++)
        if (M[i].alive && M[i].state == state && rnd(s) % ++n == 0)
            pick = i; /* reservoir sampling */
    return pick;
}

/*
 * The id index grows and shrinks a few slots per put and ack (no put or
 * ack re-places the whole table), and every job stays findable while the
 * old array is being emptied.
 */
START_TEST(test_index_resizes_in_steps) {
    enum { N = 100000 };
    struct queue *q = mkq("q", 0, 60000, 0);
    struct queue_tab *t = &E->jobs;
    static uint64_t ids[N];
    uint64_t seed = 3;
    int grows = 0, shrinks = 0;
    for (int i = 0; i < N; i++) {
        int had_old = t->old != NULL;
        size_t pos = t->old_pos, cap = t->mask + 1;
        ids[i] = put(q, "x", 0, 0);
        if (t->old && !had_old) {
            grows++;
            EXPECT(t->mask + 1 > cap);
        } else if (t->old) {
            EXPECT(t->old_pos - pos <= 64); /* MIGRATE_LOOKS slots per insert */
        }
        if (i % 97 == 0) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t id = ids[(seed >> 33) % (uint64_t)(i + 1)];
            struct queue_job *j = queue_tab_find(t, id, NULL, NULL);
            EXPECT(j && j->id == id);
        }
    }
    EXPECT(grows >= 10);
    EXPECT_EQ(t->count, N);
    for (int i = 0; i < N; i++) {
        int had_old = t->old != NULL;
        struct queue_job_info info;
        EXPECT_EQ(get1(q, &info), ids[i]);
        EXPECT_EQ(queue_ack(q, info.id, info.attempt), QUEUE_OK);
        if (t->old && !had_old)
            shrinks++;
        EXPECT(queue_tab_find(t, ids[i], NULL, NULL) == NULL);
        if (i % 89 == 0 && i + 1 < N) {
            uint64_t id = ids[i + 1 + (uint64_t)i % (uint64_t)(N - i - 1)];
            struct queue_job *j = queue_tab_find(t, id, NULL, NULL);
            EXPECT(j && j->id == id);
        }
    }
    ck_assert_int_ge(shrinks, 5);
    EXPECT_EQ(t->count, 0);
    EXPECT(t->old == NULL);
    check_invariants(q);
}
END_TEST

START_TEST(test_random_against_model) {
    uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)_i * 7919;
    const uint32_t max_attempts = 3;
    const uint64_t maxsize = 400, lease = 60;
    struct queue *q = mkq("m", maxsize, lease, max_attempts);
    memset(M, 0, sizeof M);
    uint64_t next_id = 1;
    uint64_t n_put = 0, n_ack = 0, n_dead = 0, n_req = 0, n_drop = 0, n_dpurge = 0;
    static char buf[64];
    memset(buf, 'z', sizeof buf);

    for (int step = 0; step < 20000 && next_id <= MAXJ; step++) {
        unsigned op = (unsigned)(rnd(&seed) % 100);
        uint64_t now = W.now;
        if (op < 30) { /* put */
            int32_t prio = (int32_t)(rnd(&seed) % 4) - 1;
            uint64_t delay = rnd(&seed) % 3 ? 0 : 1 + rnd(&seed) % 50;
            size_t len = (size_t)(rnd(&seed) % sizeof buf);
            struct queue_put p = {buf, len, prio, delay, NULL, 0};
            uint64_t id;
            uint64_t inq = 0;
            for (uint64_t i = 1; i < next_id; i++)
                inq += M[i].alive &&
                       (M[i].state == QUEUE_JOB_READY || M[i].state == QUEUE_JOB_DELAYED);
            int rc = queue_put(q, &p, &id, NULL);
            if (inq >= maxsize) {
                EXPECT_EQ(rc, QUEUE_ERR_FULL);
            } else {
                EXPECT_EQ(rc, QUEUE_OK);
                EXPECT_EQ(id, next_id);
                M[id] = (struct mjob){1,
                                      delay ? QUEUE_JOB_DELAYED : QUEUE_JOB_READY,
                                      prio,
                                      0,
                                      delay ? now + delay : 0,
                                      len};
                next_id++;
                n_put++;
            }
        } else if (op < 50) { /* reserve 1..3 */
            unsigned count = 1 + (unsigned)(rnd(&seed) % 3), n;
            uint64_t l = rnd(&seed) % 2 ? 0 : 1 + rnd(&seed) % 100;
            struct queue_job_info out[3];
            int rc = queue_reserve(q, count, l, out, &n);
            if (!m_top(next_id)) {
                EXPECT_EQ(rc, QUEUE_ERR_EMPTY);
                continue;
            }
            EXPECT_EQ(rc, QUEUE_OK);
            for (unsigned i = 0; i < count; i++) {
                uint64_t want = m_top(next_id);
                if (!want) {
                    EXPECT_EQ(n, i);
                    break;
                }
                EXPECT(i < n);
                EXPECT_EQ(out[i].id, want);
                M[want].state = QUEUE_JOB_RESERVED;
                M[want].attempts++;
                M[want].at = now + (l ? l : lease);
                EXPECT_EQ(out[i].attempt, M[want].attempts);
                EXPECT_EQ(out[i].deadline, M[want].at);
                EXPECT_EQ(out[i].len, M[want].len);
            }
        } else if (op < 62) { /* ack, sometimes with a stale attempt */
            uint64_t id = m_pick(&seed, next_id, QUEUE_JOB_RESERVED);
            if (!id)
                continue;
            int stale = rnd(&seed) % 8 == 0 && M[id].attempts > 1;
            int rc = queue_ack(q, id, stale ? M[id].attempts - 1u : M[id].attempts);
            if (stale) {
                EXPECT_EQ(rc, QUEUE_ERR_STATE);
            } else {
                EXPECT_EQ(rc, QUEUE_OK);
                M[id].alive = 0;
                n_ack++;
            }
        } else if (op < 70) { /* nack */
            uint64_t id = m_pick(&seed, next_id, QUEUE_JOB_RESERVED);
            if (!id)
                continue;
            uint64_t delay = rnd(&seed) % 2 ? 0 : rnd(&seed) % 40;
            EXPECT_EQ(queue_nack(q, id, 0, delay), QUEUE_OK);
            if (M[id].attempts >= max_attempts) {
                M[id].state = QUEUE_JOB_DEAD;
                n_dead++;
            } else {
                M[id].state = delay ? QUEUE_JOB_DELAYED : QUEUE_JOB_READY;
                M[id].at = delay ? now + delay : 0;
            }
        } else if (op < 74) { /* touch */
            uint64_t id = m_pick(&seed, next_id, QUEUE_JOB_RESERVED), d;
            if (!id)
                continue;
            uint64_t l = rnd(&seed) % 100;
            EXPECT_EQ(queue_touch(q, id, M[id].attempts, l, &d), QUEUE_OK);
            M[id].at = now + (l ? l : lease);
            EXPECT_EQ(d, M[id].at);
        } else if (op < 77) { /* unreserve */
            uint64_t id = m_pick(&seed, next_id, QUEUE_JOB_RESERVED);
            if (!id)
                continue;
            EXPECT_EQ(queue_unreserve(q, id, 0), QUEUE_OK);
            M[id].attempts--;
            M[id].state = QUEUE_JOB_READY;
        } else if (op < 92) { /* time passes */
            uint64_t to = now + rnd(&seed) % 40;
            advance_to(to);
            for (uint64_t i = 1; i < next_id; i++) {
                if (!M[i].alive || M[i].at > to)
                    continue;
                if (M[i].state == QUEUE_JOB_DELAYED) {
                    M[i].state = QUEUE_JOB_READY;
                } else if (M[i].state == QUEUE_JOB_RESERVED) {
                    if (M[i].attempts >= max_attempts) {
                        M[i].state = QUEUE_JOB_DEAD;
                        n_dead++;
                    } else {
                        M[i].state = QUEUE_JOB_READY;
                    }
                }
            }
        } else if (op < 94) { /* requeue a dead letter, or all */
            int all = rnd(&seed) % 4 == 0;
            uint64_t id = all ? 0 : m_pick(&seed, next_id, QUEUE_JOB_DEAD), k;
            if (!all && !id)
                continue;
            EXPECT_EQ(queue_dead_requeue(q, id, &k), QUEUE_OK);
            for (uint64_t i = 1; i < next_id; i++)
                if (M[i].alive && M[i].state == QUEUE_JOB_DEAD && (all || i == id)) {
                    M[i].state = QUEUE_JOB_READY;
                    M[i].attempts = 0;
                    n_req++;
                    k--;
                }
            EXPECT_EQ(k, 0);
        } else if (op < 96) { /* purge a dead letter, or all */
            int all = rnd(&seed) % 4 == 0;
            uint64_t id = all ? 0 : m_pick(&seed, next_id, QUEUE_JOB_DEAD), k;
            if (!all && !id)
                continue;
            EXPECT_EQ(queue_dead_purge(q, id, &k), QUEUE_OK);
            for (uint64_t i = 1; i < next_id; i++)
                if (M[i].alive && M[i].state == QUEUE_JOB_DEAD && (all || i == id)) {
                    M[i].alive = 0;
                    n_dpurge++;
                    k--;
                }
            EXPECT_EQ(k, 0);
        } else if (op < 97 && rnd(&seed) % 4 == 0) { /* purge ready and delayed */
            uint64_t k;
            EXPECT_EQ(queue_purge(q, &k), QUEUE_OK);
            for (uint64_t i = 1; i < next_id; i++)
                if (M[i].alive &&
                    (M[i].state == QUEUE_JOB_READY || M[i].state == QUEUE_JOB_DELAYED)) {
                    M[i].alive = 0;
                    n_drop++;
                    k--;
                }
            EXPECT_EQ(k, 0);
        } else { /* peek */
            uint64_t id = 1 + rnd(&seed) % next_id;
            struct queue_job_info info;
            int rc = queue_peek(q, id, &info);
            if (id >= next_id || !M[id].alive) {
                EXPECT_EQ(rc, QUEUE_ERR_NOTFOUND);
            } else {
                EXPECT_EQ(rc, QUEUE_OK);
                EXPECT_EQ(info.state, M[id].state);
                EXPECT_EQ(info.attempt, M[id].attempts);
                EXPECT_EQ(info.priority, M[id].prio);
                if (M[id].state == QUEUE_JOB_DELAYED || M[id].state == QUEUE_JOB_RESERVED)
                    EXPECT_EQ(info.deadline, M[id].at);
            }
        }

        /* The reaper runs in slices of random size between operations, or
         * not at all for a while: gone jobs must stay invisible meanwhile. */
        unsigned r = (unsigned)(rnd(&seed) % 8);
        if (r == 0)
            queue_engine_reap(E, SIZE_MAX);
        else if (r < 4)
            queue_engine_reap(E, r * 3);

        /* Stats against the model, and the memory charged. */
        uint64_t cnt[4] = {0, 0, 0, 0};
        size_t mem = 0;
        for (uint64_t i = 1; i < next_id; i++)
            if (M[i].alive) {
                cnt[M[i].state]++;
                mem += QUEUE_JOB_COST(M[i].len);
            }
        struct queue_stats s = stats(q);
        EXPECT_EQ(s.size, cnt[QUEUE_JOB_READY]);
        EXPECT_EQ(s.delayed, cnt[QUEUE_JOB_DELAYED]);
        EXPECT_EQ(s.reserved, cnt[QUEUE_JOB_RESERVED]);
        EXPECT_EQ(s.dead, cnt[QUEUE_JOB_DEAD]);
        EXPECT_EQ(s.total_put, n_put);
        EXPECT_EQ(s.total_acked, n_ack);
        EXPECT_EQ(s.total_dead, n_dead);
        EXPECT_EQ(s.total_requeued, n_req);
        EXPECT_EQ(s.total_dropped, n_drop);
        EXPECT_EQ(s.total_dead_purged, n_dpurge);
        check_invariants(q);
        struct queue_engine_stats es;
        queue_engine_stats(E, &es);
        EXPECT_EQ(es.reaping, s.reaping);
        EXPECT_EQ(es.jobs - es.reaping, cnt[0] + cnt[1] + cnt[2] + cnt[3]);
        if (es.reaping) {
            EXPECT(es.mem_used > mem);
            EXPECT(W.count >= cnt[QUEUE_JOB_DELAYED] + cnt[QUEUE_JOB_RESERVED]);
        } else {
            EXPECT_EQ(es.mem_used, mem);
            EXPECT_EQ(W.count, cnt[QUEUE_JOB_DELAYED] + cnt[QUEUE_JOB_RESERVED]);
        }
    }
    queue_engine_reap(E, SIZE_MAX);
    ck_assert_uint_gt(n_put, 1000);
    ck_assert_uint_gt(n_dead, 10);

    /* The journal of all that rebuilds the same queue. */
    struct timer_wheel w2;
    struct queue_engine *e2 = replay_all(&w2, &R);
    compare_replayed(q, queue_find(e2, "m", 1), &w2);
    queue_engine_free(e2);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------ */

static Suite *queue_suite(void) {
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_queue_names_and_settings);
    tcase_add_test(tc, test_put_nowait_full);
    tcase_add_test(tc, test_totals_reset);
    tcase_add_test(tc, test_putters_served_in_order);
    tcase_add_test(tc, test_batch_put_and_wait);
    tcase_add_test(tc, test_getters_served_in_order);
    tcase_add_test(tc, test_getters_and_putters_chain);
    tcase_add_test(tc, test_lease_expiry_redelivers);
    tcase_add_test(tc, test_dead_letters);
    tcase_add_test(tc, test_nack);
    tcase_add_test(tc, test_touch_extends_lease);
    tcase_add_test(tc, test_priorities_fifo_among_equals);
    tcase_add_test(tc, test_delay_visible_exactly);
    tcase_add_test(tc, test_idempotency_keys);
    tcase_add_test(tc, test_join);
    tcase_add_test(tc, test_shutdown_drains);
    tcase_add_test(tc, test_shutdown_immediate);
    tcase_add_test(tc, test_shutdown_immediate_wakes_getters);
    tcase_add_test(tc, test_delete_wakes_waiters);
    tcase_add_test(tc, test_reentrant_wake);
    tcase_add_test(tc, test_cancel_served_getter);
    tcase_add_test(tc, test_delete_from_wake);
    tcase_add_test(tc, test_memory_limit);
    tcase_add_test(tc, test_alloc_failure_injection);
    tcase_add_test(tc, test_event_sequence);
    tcase_add_test(tc, test_replay_reproduces_state);
    tcase_add_test(tc, test_purge_in_slices);
    tcase_add_test(tc, test_purges_while_reaper_sleeps);
    tcase_add_test(tc, test_delete_leaves_a_zombie);
    tcase_add_test(tc, test_index_resizes_in_steps);
    tcase_add_test(tc, test_shared_budget);
    tcase_add_test(tc, test_queue_after);
    tcase_add_loop_test(tc, test_random_against_model, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(queue_suite());
}
