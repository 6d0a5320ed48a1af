/*
 * Unit tests for the timing wheel, driven by a fake clock (the wheel has no
 * clock of its own: the tests pass "now" to timer_wheel_advance()).
 */
#include "core/timer.h"
#include "check_main.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct item {
    struct timer t;
    int id;
};

static struct item *item_of(struct timer *t) {
    return (struct item *)((char *)t - offsetof(struct item, t));
}

/* One wheel per test (Check forks each test, but we re-init anyway). */
static struct timer_wheel W;

/* Every firing is logged: which item, and the wheel's time when it ran. */
#define LOG_MAX (1 << 16)
static int log_id[LOG_MAX];
static uint64_t log_now[LOG_MAX];
static size_t nlog;

static void log_fire(int id) {
    EXPECT(nlog < LOG_MAX);
    log_id[nlog] = id;
    log_now[nlog] = W.now;
    nlog++;
}

static void record_cb(struct timer *t) {
    log_fire(item_of(t)->id);
}

static void setup(uint64_t now, struct item *items, size_t n, timer_cb cb) {
    timer_wheel_init(&W, now);
    nlog = 0;
    for (size_t i = 0; i < n; i++) {
        timer_init(&items[i].t, cb);
        items[i].id = (int)i;
    }
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- exact firing ------------------------------------------------------ */

static const uint64_t delays[] = {1,
                                  2,
                                  63,
                                  64,
                                  65,
                                  100,
                                  4095,
                                  4096,
                                  4097,
                                  262143,
                                  262144,
                                  262145,
                                  (1ULL << 24) - 1,
                                  1ULL << 24,
                                  (1ULL << 30) + 1,
                                  (1ULL << 36) - 1,
                                  1ULL << 36,
                                  (1ULL << 36) + 1,
                                  (1ULL << 40) + 12345};
static const uint64_t starts[] = {0, 1, 63, 1000, 4095, (1ULL << 36) - 3, 123456789012ULL};

START_TEST(test_fires_exactly_at_expiry) {
    struct item it;
    for (size_t si = 0; si < NELEM(starts); si++) {
        for (size_t di = 0; di < NELEM(delays); di++) {
            uint64_t e = starts[si] + delays[di];
            /* Pass 0 jumps straight to e - 1; pass 1 walks there in halving
             * steps so cascades happen at many intermediate times. */
            for (int pass = 0; pass < 2; pass++) {
                setup(starts[si], &it, 1, record_cb);
                timer_add(&W, &it.t, e);
                uint64_t now = starts[si];
                while (pass == 1 && now + 1 < e) {
                    now += (e - 1 - now + 1) / 2;
                    ck_assert_uint_eq(timer_wheel_advance(&W, now), 0);
                    ck_assert_uint_le(timer_wheel_next(&W), e);
                }
                ck_assert_uint_eq(timer_wheel_advance(&W, e - 1), 0);
                ck_assert(timer_pending(&it.t));
                ck_assert_uint_le(timer_wheel_next(&W), e);
                ck_assert_uint_eq(timer_wheel_advance(&W, e), 1);
                ck_assert(!timer_pending(&it.t));
                ck_assert_uint_eq(log_now[0], e);
                ck_assert_uint_eq(W.count, 0);
                ck_assert_uint_eq(timer_wheel_next(&W), UINT64_MAX);
            }
        }
    }
}
END_TEST

/* Following timer_wheel_next() reaches a far timer in a handful of steps. */
START_TEST(test_next_driven_loop_is_short) {
    struct item it;
    for (size_t di = 0; di < NELEM(delays); di++) {
        setup(777, &it, 1, record_cb);
        uint64_t e = 777 + delays[di];
        timer_add(&W, &it.t, e);
        int steps = 0;
        uint64_t at;
        while ((at = timer_wheel_next(&W)) != UINT64_MAX) {
            ck_assert_uint_le(at, e);
            timer_wheel_advance(&W, at);
            steps++;
        }
        ck_assert_uint_eq(nlog, 1);
        ck_assert_uint_eq(log_now[0], e);
        ck_assert_int_le(steps, 6 + 32); /* one per level, one per 2^36 epoch */
    }
}
END_TEST

/* ---- ordering ---------------------------------------------------------- */

static uint64_t sort_exp[4096];

static int cmp_by_expiry_then_id(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    if (sort_exp[x] != sort_exp[y])
        return sort_exp[x] < sort_exp[y] ? -1 : 1;
    return x - y;
}

START_TEST(test_order_across_levels) {
    static struct item items[4096];
    static int want[4096];
    uint64_t seed = 42 + (uint64_t)_i;
    uint64_t start = _i == 0 ? 0 : (1ULL << 36) - 100000; /* second run crosses an epoch */
    setup(start, items, NELEM(items), record_cb);
    uint64_t maxe = start;
    for (size_t i = 0; i < NELEM(items); i++) {
        uint64_t r = splitmix(&seed);
        unsigned bits = 1 + (unsigned)(r % 40); /* spread over every level, and past 2^36 */
        uint64_t e = start + 1 + (splitmix(&seed) & ((1ULL << bits) - 1));
        if (i % 7 == 3)
            e = sort_exp[i - 1]; /* some ties */
        sort_exp[i] = e;
        want[i] = (int)i;
        maxe = e > maxe ? e : maxe;
        timer_add(&W, &items[i].t, e);
    }
    qsort(want, NELEM(items), sizeof want[0], cmp_by_expiry_then_id);
    ck_assert_uint_eq(timer_wheel_advance(&W, maxe), NELEM(items));
    for (size_t i = 0; i < NELEM(items); i++) {
        ck_assert_int_eq(log_id[i], want[i]);
        ck_assert_uint_eq(log_now[i], sort_exp[want[i]]);
    }
}
END_TEST

/* Equal expiries added at different times (so first at different levels,
 * then cascaded) fire in insertion order; a move counts as an insertion. */
START_TEST(test_ties_in_insertion_order) {
    struct item it[6];
    setup(0, it, 6, record_cb);
    timer_add(&W, &it[0].t, 300000); /* level 3 */
    timer_add(&W, &it[1].t, 300000);
    timer_add(&W, &it[5].t, 300000); /* moved to the tail below */
    timer_wheel_advance(&W, 299000);
    timer_add(&W, &it[2].t, 300000); /* level 1 */
    timer_wheel_advance(&W, 299990);
    timer_add(&W, &it[3].t, 300000); /* level 0 */
    timer_add(&W, &it[5].t, 300000); /* move: now last */
    timer_add(&W, &it[4].t, 300001);
    ck_assert_uint_eq(timer_wheel_advance(&W, 400000), 6);
    static const int want[] = {0, 1, 2, 3, 5, 4};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(log_id[i], want[i]);
}
END_TEST

/* ---- cancel ------------------------------------------------------------ */

START_TEST(test_cancel_before_firing) {
    struct item it[3];
    setup(100, it, 3, record_cb);
    timer_cancel(&W, &it[0].t); /* never added: no-op */
    ck_assert_uint_eq(W.count, 0);
    timer_add(&W, &it[0].t, 120); /* same 64 ms block as now: level 0 */
    timer_add(&W, &it[1].t, 100000);
    timer_add(&W, &it[2].t, 120);
    ck_assert_uint_eq(W.count, 3);
    timer_cancel(&W, &it[0].t);
    timer_cancel(&W, &it[0].t); /* twice: no-op */
    timer_cancel(&W, &it[1].t);
    ck_assert(!timer_pending(&it[0].t));
    ck_assert_uint_eq(W.count, 1);
    ck_assert_uint_eq(timer_wheel_next(&W), 120);
    ck_assert_uint_eq(timer_wheel_advance(&W, 1000000), 1);
    ck_assert_int_eq(log_id[0], 2);
    timer_cancel(&W, &it[2].t); /* already fired: no-op */
    ck_assert_uint_eq(W.count, 0);
    ck_assert_uint_eq(timer_wheel_next(&W), UINT64_MAX);
    /* A cancelled slot leaves no trace in the bitmaps. */
    for (int l = 0; l < TIMER_LEVELS; l++)
        ck_assert_uint_eq(W.occupied[l][0] | W.occupied[l][1], 0);
}
END_TEST

static struct item *cancel_victims[2];

static void cancel_others_cb(struct timer *t) {
    record_cb(t);
    timer_cancel(&W, &cancel_victims[0]->t);
    timer_cancel(&W, &cancel_victims[1]->t);
}

START_TEST(test_cancel_from_callback) {
    struct item it[4];
    setup(0, it, 4, record_cb);
    it[0].t.cb = cancel_others_cb;
    cancel_victims[0] = &it[1]; /* same millisecond, later in the batch */
    cancel_victims[1] = &it[3]; /* far away, higher level */
    timer_add(&W, &it[0].t, 100);
    timer_add(&W, &it[1].t, 100);
    timer_add(&W, &it[2].t, 100);
    timer_add(&W, &it[3].t, 5000000);
    ck_assert_uint_eq(timer_wheel_advance(&W, 10000000), 2);
    ck_assert_int_eq(log_id[0], 0);
    ck_assert_int_eq(log_id[1], 2);
    ck_assert_uint_eq(W.count, 0);
}
END_TEST

/* ---- re-adding from callbacks ----------------------------------------- */

static uint64_t period;
static int periodic_left;

static void periodic_cb(struct timer *t) {
    record_cb(t);
    if (--periodic_left > 0)
        timer_add(&W, t, t->expire + period);
}

START_TEST(test_periodic_readd) {
    struct item it;
    setup(0, &it, 1, periodic_cb);
    period = 10;
    periodic_left = 100;
    timer_add(&W, &it.t, 10);
    /* One advance over the whole range runs every period, each on time. */
    ck_assert_uint_eq(timer_wheel_advance(&W, 5000), 100);
    for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(log_now[i], 10 * (i + 1));
    ck_assert(!timer_pending(&it.t));

    /* A 1 ms period across level boundaries, advanced in odd steps. */
    setup(60, &it, 1, periodic_cb);
    period = 1;
    periodic_left = 5000;
    timer_add(&W, &it.t, 61);
    for (uint64_t now = 60; now < 6000; now += 37)
        timer_wheel_advance(&W, now);
    ck_assert_uint_eq(nlog, 5000);
    for (size_t i = 0; i < nlog; i++)
        ck_assert_uint_eq(log_now[i], 61 + i);
}
END_TEST

/* ---- due timers -------------------------------------------------------- */

START_TEST(test_add_due_timer) {
    struct item it[3];
    setup(1000, it, 3, record_cb);
    timer_add(&W, &it[0].t, 500);  /* in the past */
    timer_add(&W, &it[1].t, 1000); /* exactly now */
    timer_add(&W, &it[2].t, 1001);
    ck_assert_uint_eq(W.count, 3);
    ck_assert_uint_eq(timer_wheel_next(&W), 1000);
    /* A smaller now is ignored, but due timers still fire. */
    ck_assert_uint_eq(timer_wheel_advance(&W, 10), 2);
    ck_assert_uint_eq(W.now, 1000);
    ck_assert_int_eq(log_id[0], 0); /* due timers: insertion order */
    ck_assert_int_eq(log_id[1], 1);
    ck_assert_uint_eq(log_now[0], 1000);
    ck_assert_uint_eq(timer_wheel_next(&W), 1001);
    ck_assert_uint_eq(timer_wheel_advance(&W, 1001), 1);
}
END_TEST

static struct item *due_chain[2];

static void add_due_cb(struct timer *t) {
    record_cb(t);
    timer_add(&W, &due_chain[0]->t, W.now - 50); /* due: fires this advance */
    timer_add(&W, &due_chain[1]->t, W.now);
}

START_TEST(test_due_added_from_callback) {
    struct item it[5];
    setup(0, it, 5, record_cb);
    it[0].t.cb = add_due_cb;
    due_chain[0] = &it[1];
    due_chain[1] = &it[2];
    timer_add(&W, &it[0].t, 100);
    timer_add(&W, &it[3].t, 100);
    timer_add(&W, &it[4].t, 101);
    ck_assert_uint_eq(timer_wheel_advance(&W, 200), 5);
    /* Same-millisecond timers first, then the ones made due, then later. */
    static const int want[] = {0, 3, 1, 2, 4};
    static const uint64_t when[] = {100, 100, 100, 100, 101};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(log_id[i], want[i]);
        ck_assert_uint_eq(log_now[i], when[i]);
    }
}
END_TEST

static void readd_now_cb(struct timer *t) {
    record_cb(t);
    timer_add(&W, t, W.now);
}

/* A timer that always re-adds itself as due must not loop forever: it fires
 * at its expiry, once more from the due list, then waits for the next
 * advance() call, where it fires once per call. */
START_TEST(test_self_readd_due_terminates) {
    struct item it[2];
    setup(0, it, 2, record_cb);
    it[0].t.cb = readd_now_cb;
    timer_add(&W, &it[0].t, 100);
    timer_add(&W, &it[1].t, 150);
    ck_assert_uint_eq(timer_wheel_advance(&W, 200), 3);
    ck_assert_int_eq(log_id[0], 0);
    ck_assert_int_eq(log_id[1], 0);
    ck_assert_uint_eq(log_now[1], 100);
    ck_assert_int_eq(log_id[2], 1); /* later timers still run */
    ck_assert(timer_pending(&it[0].t));
    ck_assert_uint_eq(W.count, 1);
    ck_assert_uint_eq(timer_wheel_next(&W), 200);
    ck_assert_uint_eq(timer_wheel_advance(&W, 200), 1);
    ck_assert_uint_eq(timer_wheel_advance(&W, 300), 1);
    timer_cancel(&W, &it[0].t);
    ck_assert_uint_eq(W.count, 0);
    ck_assert_uint_eq(timer_wheel_advance(&W, 400), 0);
    ck_assert_uint_eq(timer_wheel_next(&W), UINT64_MAX);
}
END_TEST

/* ---- moving ------------------------------------------------------------ */

START_TEST(test_move_pending) {
    struct item it[2];
    setup(0, it, 2, record_cb);
    timer_add(&W, &it[0].t, 5000);
    timer_add(&W, &it[0].t, 50); /* earlier */
    ck_assert_uint_eq(W.count, 1);
    ck_assert_uint_eq(timer_wheel_next(&W), 50);
    ck_assert_uint_eq(timer_wheel_advance(&W, 49), 0);
    ck_assert_uint_eq(timer_wheel_advance(&W, 50), 1);
    ck_assert_uint_eq(timer_wheel_advance(&W, 10000), 0); /* not again at 5000 */

    timer_add(&W, &it[1].t, 10100);
    timer_add(&W, &it[1].t, 1000000); /* later */
    ck_assert_uint_eq(W.count, 1);
    ck_assert_uint_eq(timer_wheel_advance(&W, 999999), 0);
    ck_assert_uint_eq(timer_wheel_advance(&W, 1000000), 1);
    ck_assert_uint_eq(log_now[1], 1000000);

    /* A due timer moved back into the future is no longer due. */
    timer_add(&W, &it[0].t, 5);
    timer_add(&W, &it[0].t, 1000010);
    ck_assert_uint_eq(timer_wheel_next(&W), 1000010);
    ck_assert_uint_eq(timer_wheel_advance(&W, 1000009), 0);
    ck_assert_uint_eq(timer_wheel_advance(&W, 1000010), 1);
    ck_assert_uint_eq(W.count, 0);
}
END_TEST

/* ---- huge jumps -------------------------------------------------------- */

START_TEST(test_huge_jumps) {
    static const uint64_t day = 86400000ULL;
    static const uint64_t offs[] = {day, 30 * day, (1ULL << 36) + 5, (1ULL << 40) + 7, 1ULL << 45};
    struct item it[NELEM(offs)];
    uint64_t start = 1700000000000ULL; /* a realistic epoch-ms clock */
    setup(start, it, NELEM(offs), record_cb);
    for (size_t i = 0; i < NELEM(offs); i++)
        timer_add(&W, &it[NELEM(offs) - 1 - i].t, start + offs[NELEM(offs) - 1 - i]);
    /* Jump over everything in one call: must be quick and in order. */
    ck_assert_uint_eq(timer_wheel_advance(&W, start + (1ULL << 50)), NELEM(offs));
    for (size_t i = 0; i < NELEM(offs); i++) {
        ck_assert_int_eq(log_id[i], (int)i);
        ck_assert_uint_eq(log_now[i], start + offs[i]);
    }

    /* Random timers up to 2^44 ms out, random huge jumps: exact firing. */
    static struct item many[2000];
    uint64_t seed = 7;
    setup(start, many, NELEM(many), record_cb);
    for (size_t i = 0; i < NELEM(many); i++)
        timer_add(&W, &many[i].t, start + 1 + (splitmix(&seed) >> 20));
    uint64_t now = start;
    while (W.count) {
        size_t before = nlog;
        now += splitmix(&seed) >> 23;
        timer_wheel_advance(&W, now);
        for (size_t k = before; k < nlog; k++) {
            EXPECT_EQ(log_now[k], many[log_id[k]].t.expire);
            EXPECT(log_now[k] <= now);
            EXPECT(k == 0 || log_now[k - 1] <= log_now[k]);
        }
        for (size_t i = 0; i < NELEM(many); i++)
            EXPECT(!timer_pending(&many[i].t) || many[i].t.expire > now);
    }
    ck_assert_uint_eq(nlog, NELEM(many));
}
END_TEST

/* ---- timer_wheel_next -------------------------------------------------- */

START_TEST(test_next) {
    struct item it[3];
    setup(0, it, 3, record_cb);
    ck_assert_uint_eq(timer_wheel_next(&W), UINT64_MAX);
    timer_add(&W, &it[0].t, 37);
    ck_assert_uint_eq(timer_wheel_next(&W), 37);
    timer_add(&W, &it[1].t, 5);
    ck_assert_uint_eq(timer_wheel_next(&W), 5);
    timer_cancel(&W, &it[1].t);
    ck_assert_uint_eq(timer_wheel_next(&W), 37);
    timer_cancel(&W, &it[0].t);
    timer_add(&W, &it[2].t, 1000); /* level 1: the start of its slot */
    ck_assert_uint_le(timer_wheel_next(&W), 1000);
    ck_assert_uint_gt(timer_wheel_next(&W), 0);

    /* Level-0 timers (same 64 ms block as now) are reported exactly. */
    uint64_t seed = 99;
    for (int i = 0; i < 10000; i++) {
        uint64_t now = splitmix(&seed) >> 20;
        uint64_t room = 63 - (now & 63);
        if (room == 0)
            continue;
        uint64_t e = now + 1 + splitmix(&seed) % room;
        timer_wheel_init(&W, now);
        timer_init(&it[0].t, record_cb);
        timer_add(&W, &it[0].t, e);
        EXPECT_EQ(timer_wheel_next(&W), e);
        /* After cascading down to level 0, also exact. */
        timer_wheel_init(&W, now);
        timer_init(&it[0].t, record_cb);
        e = now + 1 + (splitmix(&seed) >> 30);
        timer_add(&W, &it[0].t, e);
        uint64_t at;
        while ((at = timer_wheel_next(&W)) < e) {
            EXPECT(at > W.now);
            timer_wheel_advance(&W, at);
        }
        EXPECT_EQ(at, e);
    }
}
END_TEST

/* ---- count ------------------------------------------------------------- */

START_TEST(test_count) {
    struct item it[10];
    setup(0, it, 10, readd_now_cb);
    for (int i = 0; i < 10; i++)
        it[i].t.cb = record_cb;
    for (int i = 0; i < 10; i++)
        timer_add(&W, &it[i].t, 10 + (uint64_t)i * 1000);
    ck_assert_uint_eq(W.count, 10);
    timer_add(&W, &it[0].t, 20); /* move */
    timer_add(&W, &it[1].t, 0);  /* move to due */
    ck_assert_uint_eq(W.count, 10);
    timer_cancel(&W, &it[2].t);
    timer_cancel(&W, &it[2].t);
    timer_cancel(&W, &it[3].t);
    ck_assert_uint_eq(W.count, 8);
    ck_assert_uint_eq(timer_wheel_advance(&W, 4010), 3); /* 1, 0, 4 */
    ck_assert_uint_eq(W.count, 5);
    it[5].t.cb = readd_now_cb;
    ck_assert_uint_eq(timer_wheel_advance(&W, 5010), 2); /* 5 twice, now deferred */
    ck_assert_uint_eq(W.count, 5);
    ck_assert_uint_eq(timer_wheel_advance(&W, 1000000), 5);
    ck_assert_uint_eq(W.count, 1); /* 5 is deferred again */
    timer_cancel(&W, &it[5].t);
    ck_assert_uint_eq(W.count, 0);
}
END_TEST

/* ---- randomized, against a reference model ----------------------------- */

/*
 * The model keeps, per timer, its effective expiry (the expiry, or "now"
 * when added already due) and an insertion sequence number, and fires the
 * smallest (effective expiry, seq) that is <= the target time, one at a
 * time. It mirrors the due-list rule: a timer made due by a callback of a
 * timer that was itself due waits for the next advance() call.
 *
 * Callbacks act on both sides identically: their actions are a hash of
 * the global firing index, so as long as the sequences agree so do the
 * actions (and the test fails at the first disagreement).
 */
#define MN 256
#define BUDGET 300 /* re-adds per advance call, so huge jumps stay finite */

static struct item mitems[MN];
static struct {
    int active, was_due, deferred;
    uint64_t eff, seq;
} model[MN];
static uint64_t mnow, mseq, real_fires, model_fires;
static unsigned real_budget, model_budget;

struct action {
    int cancel, add; /* target ids, -1 for none */
    uint64_t expire;
};

static struct action decide(uint64_t index, int self, uint64_t tick, unsigned *budget) {
    uint64_t h = index * 0x9e3779b97f4a7c15ULL ^ 0x1234567;
    h = splitmix(&h);
    struct action a = {-1, -1, 0};
    unsigned r = (unsigned)(h % 100);
    int target = (int)((h >> 8) % MN);
    uint64_t x = h >> 20;
    if (r < 30)
        return a;
    if (r < 55 && r >= 40) { /* cancel someone (maybe self, maybe a later batch member) */
        a.cancel = target;
        return a;
    }
    if (*budget == 0)
        return a;
    (*budget)--;
    if (r < 40) { /* periodic */
        a.add = self;
        a.expire = tick + 1 + x % 300;
    } else if (r < 65) { /* re-add self as due */
        a.add = self;
        a.expire = tick - (x % 3 < tick ? x % 3 : tick);
    } else if (r < 85) { /* add or move another, sometimes due */
        a.add = target;
        a.expire = tick + x % 100000;
    } else if (r < 92) {
        a.add = target;
        a.expire = tick - (x % 50 < tick ? x % 50 : tick);
    } else {
        a.cancel = target;
        a.add = self;
        a.expire = tick + 64 * (x % 100);
    }
    return a;
}

static void model_add(int id, uint64_t expire, int in_due_round) {
    model[id].active = 1;
    model[id].seq = mseq++;
    model[id].was_due = expire <= mnow;
    model[id].eff = expire <= mnow ? mnow : expire;
    model[id].deferred = expire <= mnow && in_due_round;
}

static void random_cb(struct timer *t) {
    int id = item_of(t)->id;
    log_fire(id);
    struct action a = decide(real_fires++, id, W.now, &real_budget);
    if (a.cancel >= 0)
        timer_cancel(&W, &mitems[a.cancel].t);
    if (a.add >= 0)
        timer_add(&W, &mitems[a.add].t, a.expire);
}

/* Returns the number fired; appends to want_id/want_now. */
static size_t model_advance(uint64_t now, int *want_id, uint64_t *want_now) {
    size_t n = 0;
    for (int i = 0; i < MN; i++)
        model[i].deferred = 0;
    for (;;) {
        int best = -1;
        for (int i = 0; i < MN; i++) {
            if (!model[i].active || model[i].deferred || model[i].eff > now)
                continue;
            if (best < 0 || model[i].eff < model[best].eff ||
                (model[i].eff == model[best].eff && model[i].seq < model[best].seq))
                best = i;
        }
        if (best < 0)
            break;
        if (model[best].eff > mnow)
            mnow = model[best].eff;
        model[best].active = 0;
        EXPECT(n < LOG_MAX);
        want_id[n] = best;
        want_now[n] = mnow;
        n++;
        struct action a = decide(model_fires++, best, mnow, &model_budget);
        if (a.cancel >= 0)
            model[a.cancel].active = 0;
        if (a.add >= 0)
            model_add(a.add, a.expire, model[best].was_due);
    }
    if (now > mnow)
        mnow = now;
    return n;
}

static void check_against_model(void) {
    size_t active = 0;
    uint64_t min_eff = UINT64_MAX;
    for (int i = 0; i < MN; i++) {
        EXPECT_EQ(timer_pending(&mitems[i].t), model[i].active);
        if (model[i].active) {
            active++;
            min_eff = model[i].eff < min_eff ? model[i].eff : min_eff;
        }
    }
    EXPECT_EQ(W.count, active);
    EXPECT_EQ(W.now, mnow);
    uint64_t next = timer_wheel_next(&W);
    if (active == 0) {
        EXPECT_EQ(next, UINT64_MAX);
    } else if (min_eff <= mnow) {
        EXPECT_EQ(next, mnow); /* something is due */
    } else if (next == mnow) {
        EXPECT(W.pend != 0); /* timers are being moved down: a slice per advance */
    } else {
        EXPECT(next <= min_eff);
        EXPECT(next > mnow);
        if ((min_eff >> 6) == (mnow >> 6))
            EXPECT_EQ(next, min_eff); /* level 0: exact */
    }
}

static uint64_t random_delta(uint64_t *seed) {
    uint64_t r = splitmix(seed);
    switch (r % 6) {
    case 0:
        return (r >> 8) % 64;
    case 1:
        return (r >> 8) % 4096;
    case 2:
        return (r >> 8) % (1 << 20);
    case 3:
        return (r >> 8) % (1ULL << 32);
    case 4:
        return (1ULL << 35) + (r >> 8) % (1ULL << 40);
    default:
        return (r >> 8) % 200;
    }
}

START_TEST(test_random_against_model) {
    static const uint64_t bases[] = {0, (1ULL << 36) - 5000, 1700000000000ULL, 12345};
    static int want_id[LOG_MAX];
    static uint64_t want_now[LOG_MAX];
    uint64_t seed = 1000 + (uint64_t)_i;
    uint64_t base = bases[_i % NELEM(bases)];
    setup(base, mitems, MN, random_cb);
    /* Tiny drain budgets leave slots half moved at their deadlines. */
    static const size_t budgets[] = {1, 3, TIMER_DRAIN_BUDGET, 17};
    W.drain_budget = budgets[(_i / NELEM(bases)) % NELEM(budgets)];
    for (int i = 0; i < MN; i++)
        model[i].active = 0;
    mnow = base;
    mseq = real_fires = model_fires = 0;
    size_t total = 0;
    for (int op = 0; op < 20000; op++) {
        uint64_t r = splitmix(&seed);
        int id = (int)((r >> 8) % MN);
        unsigned kind = (unsigned)(r % 100);
        if (kind < 45) {
            uint64_t e = mnow + random_delta(&seed);
            if (kind < 8)
                e = mnow - (e - mnow < mnow ? e - mnow : mnow) % 100; /* due */
            timer_add(&W, &mitems[id].t, e);
            model_add(id, e, 0);
        } else if (kind < 60) {
            timer_cancel(&W, &mitems[id].t);
            model[id].active = 0;
        } else {
            uint64_t jump;
            switch (kind % 5) {
            case 0:
                jump = 0;
                break;
            case 1:
                jump = splitmix(&seed) % 64;
                break;
            case 2:
                jump = splitmix(&seed) % 5000;
                break;
            case 3:
                jump = splitmix(&seed) % (1 << 22);
                break;
            default:
                jump = splitmix(&seed) % (op % 50 == 0 ? 1ULL << 38 : 1ULL << 30);
            }
            real_budget = model_budget = BUDGET;
            nlog = 0;
            size_t got = timer_wheel_advance(&W, mnow + jump);
            size_t want = model_advance(mnow + jump, want_id, want_now);
            EXPECT_EQ(got, nlog);
            EXPECT_EQ(got, want);
            for (size_t k = 0; k < want; k++) {
                EXPECT_EQ(log_id[k], want_id[k]);
                EXPECT_EQ(log_now[k], want_now[k]);
            }
            total += got;
        }
        check_against_model();
    }
    ck_assert_uint_gt(total, 10000); /* the test actually fired things */
}
END_TEST

/* ---- moving down in slices ---------------------------------------------- */

/*
 * Timers of one expiry added at many times: before their slot starts to
 * move down, while it is half moved (tiny budget), after; with company in
 * the same slots so the drains have work. They fire in insertion order.
 */
START_TEST(test_ties_across_drains) {
    static const uint64_t targets[] = {5000, 300000, 20000000, 4096 * 64 + 7};
    static struct item it[3000];
    uint64_t e = targets[_i];
    uint64_t seed = 42 + (uint64_t)_i;
    setup(0, it, NELEM(it), record_cb);
    W.drain_budget = 3;
    size_t next_id = 0, tied = 0;
    /* Company: other expiries in e's slots at levels 1..3. */
    for (int k = 0; k < 1000; k++) {
        uint64_t c = e - 600 + splitmix(&seed) % 1200;
        if (c != e && c > 0)
            timer_add(&W, &it[next_id++].t, c);
    }
    size_t first_tied = next_id;
    uint64_t now = 0;
    while (now < e) {
        if (next_id < NELEM(it)) {
            timer_add(&W, &it[next_id++].t, e);
            tied++;
        }
        uint64_t step = 1 + splitmix(&seed) % (e / 400 + 1);
        now = now + step < e ? now + step : e;
        timer_wheel_advance(&W, now);
    }
    while (W.count)
        timer_wheel_advance(&W, W.now + 1000);
    /* Every timer fired once at its expiry; the tied ones in id order. */
    ck_assert_uint_eq(nlog, next_id);
    int last = -1;
    size_t seen = 0;
    for (size_t k = 0; k < nlog; k++) {
        EXPECT_EQ(log_now[k], it[log_id[k]].t.expire);
        EXPECT(k == 0 || log_now[k - 1] <= log_now[k]);
        if ((size_t)log_id[k] >= first_tied) {
            EXPECT(log_id[k] > last);
            last = log_id[k];
            seen++;
        }
    }
    ck_assert_uint_eq(seen, tied);
    ck_assert_uint_gt(tied, 100);
}
END_TEST

/*
 * The fallback at a deadline: two levels' slots are still half moved when
 * time reaches them. Z (expiry 8197) was moved down to level 1 before X
 * (same expiry, added later) joined the level-2 slot still being moved;
 * moving X down at 8192 must put it behind Z, not straight into level 0.
 */
START_TEST(test_forced_drain_keeps_ties) {
    struct item it[10];
    setup(0, it, NELEM(it), record_cb);
    W.drain_budget = 1;
    for (int i = 0; i < 3; i++)
        timer_add(&W, &it[i].t, 8200); /* company ahead of Z */
    timer_add(&W, &it[3].t, 8197);     /* Z */
    for (int i = 4; i < 9; i++)
        timer_add(&W, &it[i].t, 8250); /* company behind Z, in its level-1 slot */
    ck_assert_uint_eq(W.occupied[2][0], UINT64_C(1) << 2);
    for (uint64_t now = 4096; now <= 4100; now++)
        timer_wheel_advance(&W, now); /* 5 moved: the 8200s, Z, one 8250 */
    ck_assert_uint_eq(W.occupied[1][0] & 1, 1); /* Z is at level 1 */
    timer_add(&W, &it[9].t, 8197); /* X joins the level-2 slot */
    ck_assert_uint_eq(timer_wheel_advance(&W, 8197), 2);
    ck_assert_int_eq(log_id[0], 3);
    ck_assert_int_eq(log_id[1], 9);
    ck_assert_uint_eq(timer_wheel_advance(&W, 9000), 8);
}
END_TEST

/* A large slot moves down a slice per advance(), and is done before its deadline. */
START_TEST(test_drain_is_sliced) {
    const size_t n = 20000;
    struct item *its = malloc(n * sizeof *its);
    ck_assert_ptr_nonnull(its);
    setup(0, its, 0, record_cb);
    uint64_t seed = 9;
    /* 20,000 timers in level-2 slot 4 ([16384, 20480)): they move to level 1
     * while now crosses [12288, 16384). */
    for (size_t i = 0; i < n; i++) {
        timer_init(&its[i].t, record_cb);
        its[i].id = (int)i;
        timer_add(&W, &its[i].t, 16384 + splitmix(&seed) % 4096);
    }
    ck_assert_uint_eq(W.occupied[2][0], UINT64_C(1) << 4);
    uint64_t at = timer_wheel_next(&W);
    ck_assert_uint_eq(at, 12288); /* the slot before */
    timer_wheel_advance(&W, at);
    size_t turns = 1;
    while (W.pend) {
        ck_assert_uint_eq(timer_wheel_next(&W), W.now); /* more to move: come back */
        timer_wheel_advance(&W, W.now);
        turns++;
    }
    /* ceil(20000 / budget) slices, all at 12288, long before 16384. */
    ck_assert_uint_eq(turns, (n + TIMER_DRAIN_BUDGET - 1) / TIMER_DRAIN_BUDGET);
    ck_assert_uint_eq(W.now, 12288);
    ck_assert_uint_eq(W.occupied[2][0] | W.occupied[2][1], 0);
    ck_assert_uint_ne(W.occupied[1][0] | W.occupied[1][1], 0);
    ck_assert_uint_eq(nlog, 0);
    while ((at = timer_wheel_next(&W)) != UINT64_MAX)
        timer_wheel_advance(&W, at);
    ck_assert_uint_eq(nlog, n);
    for (size_t k = 0; k < n; k++) {
        EXPECT_EQ(log_now[k], its[log_id[k]].t.expire);
        EXPECT(k == 0 || log_now[k - 1] < log_now[k] ||
               (log_now[k - 1] == log_now[k] && log_id[k - 1] < log_id[k]));
    }
    free(its);
}
END_TEST

/* ---- scale ------------------------------------------------------------- */

static struct item *big;
static size_t big_fired;
static uint64_t big_last_exp;
static int big_last_id;

static void big_cb(struct timer *t) {
    struct item *it = item_of(t);
    EXPECT_EQ(t->expire, W.now);
    if (big_fired > 0) {
        EXPECT(t->expire >= big_last_exp);
        if (t->expire == big_last_exp)
            EXPECT(it->id > big_last_id);
    }
    big_last_exp = t->expire;
    big_last_id = it->id;
    big_fired++;
}

START_TEST(test_million_timers) {
    const size_t n = 1000000;
    big = malloc(n * sizeof *big);
    ck_assert_ptr_nonnull(big);
    timer_wheel_init(&W, 0);
    uint64_t seed = 5;
    for (size_t i = 0; i < n; i++) {
        timer_init(&big[i].t, big_cb);
        big[i].id = (int)i;
        timer_add(&W, &big[i].t, 1 + splitmix(&seed) % 3600000);
    }
    ck_assert_uint_eq(W.count, n);
    /* Half the way in one jump, the rest as an event loop would. */
    size_t fired = timer_wheel_advance(&W, 1800000);
    uint64_t at;
    while ((at = timer_wheel_next(&W)) != UINT64_MAX)
        fired += timer_wheel_advance(&W, at);
    ck_assert_uint_eq(fired, n);
    ck_assert_uint_eq(big_fired, n);
    ck_assert_uint_eq(W.count, 0);
    free(big);
}
END_TEST

static Suite *timer_suite(void) {
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* the suite takes ~2 s under ASan; a hang must fail */
    tcase_add_test(tc, test_fires_exactly_at_expiry);
    tcase_add_test(tc, test_next_driven_loop_is_short);
    tcase_add_loop_test(tc, test_order_across_levels, 0, 2);
    tcase_add_test(tc, test_ties_in_insertion_order);
    tcase_add_test(tc, test_cancel_before_firing);
    tcase_add_test(tc, test_cancel_from_callback);
    tcase_add_test(tc, test_periodic_readd);
    tcase_add_test(tc, test_add_due_timer);
    tcase_add_test(tc, test_due_added_from_callback);
    tcase_add_test(tc, test_self_readd_due_terminates);
    tcase_add_test(tc, test_move_pending);
    tcase_add_test(tc, test_huge_jumps);
    tcase_add_test(tc, test_next);
    tcase_add_test(tc, test_count);
    tcase_add_loop_test(tc, test_random_against_model, 0, 16);
    tcase_add_loop_test(tc, test_ties_across_drains, 0, 4);
    tcase_add_test(tc, test_drain_is_sliced);
    tcase_add_test(tc, test_forced_drain_keeps_ties);
    tcase_add_test(tc, test_million_timers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(timer_suite());
}
