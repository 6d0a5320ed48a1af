/*
 * Unit tests for the timer-task engine, driven by a fake clock: the
 * engine's only time is a timer wheel that the tests advance by hand.
 *
 * Build alone: gcc -O1 -g -fsanitize=address,undefined -Isrc src/cron.c src/task.c src/timer.c
 *   tests/check_task.c $(pkg-config --cflags --libs check) -o /tmp/check_task
 */
#include "engine/task.h"
#include "core/mem_budget.h"
#include "core/timer.h"
#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1000                      /* the wheel's start */
#define WALL0 INT64_C(1706745480000) /* 2024-01-31T23:58:00Z, the wall time at T0 */

static struct timer_wheel W;
static struct task_engine *E;
static struct task_engine_config CFG;

/* ---- allocator with fault injection and a live count -------------------- */

static long fail_countdown = -1; /* fail the allocation when it reaches 0; -1 = never */
static long live_allocs;

static void *t_alloc(void *ctx, size_t n) {
    if (fail_countdown >= 0 && fail_countdown-- == 0)
        return NULL;
    void *p = malloc(n);
    live_allocs += p != NULL;
    return p;
}

static void t_free(void *ctx, void *p) {
    live_allocs -= p != NULL;
    free(p);
}

/* ---- fire hook: records calls, returns scripted results ----------------- */

#define MAXF 4096
static struct fired {
    uint64_t id;
    int64_t tick, now;
} fired[MAXF];
static int nfired;
static int results[64], nresults, result_pos; /* scripted results, then default_result */
static int default_result;
static void (*fire_extra)(struct task *t); /* runs inside fire(), e.g. to cancel */

static int t_fire(void *ctx, struct task *t, int64_t tick) {
    if (nfired < MAXF)
        fired[nfired++] = (struct fired){task_id(t), tick, (int64_t)W.now};
    if (fire_extra)
        fire_extra(t);
    return result_pos < nresults ? results[result_pos++] : default_result;
}

static void script(int n, const int *r) {
    memcpy(results, r, (size_t)n * sizeof *r);
    nresults = n;
    result_pos = 0;
}

/* ---- event recorder (deep copies, so events can be replayed) ------------ */

#define MAXEV 4096
static struct rec {
    struct task_event ev;
    struct task_spec spec;
    char action[256];
} evs[MAXEV];
static int nev;

static void t_event(void *ctx, const struct task_event *ev) {
    ck_assert_int_lt(nev, MAXEV);
    struct rec *r = &evs[nev++];
    r->ev = *ev;
    if (ev->spec) {
        r->spec = *ev->spec;
        ck_assert_uint_le(ev->spec->action_len, sizeof r->action);
        memcpy(r->action, ev->spec->action, ev->spec->action_len);
        r->spec.action = r->action;
        r->ev.spec = &r->spec;
    }
}

static int count_ev(int type) {
    int n = 0;
    for (int i = 0; i < nev; i++)
        n += evs[i].ev.type == type;
    return n;
}

/* ---- fixture ----------------------------------------------------------- */

static void engine_up(uint64_t now) {
    timer_wheel_init(&W, now);
    E = task_engine_new(&W, &CFG);
    ck_assert_ptr_nonnull(E);
}

static void setup(void) {
    nfired = nev = nresults = result_pos = 0;
    default_result = TASK_FIRE_OK;
    fire_extra = NULL;
    fail_countdown = -1;
    live_allocs = 0;
    task_engine_config_default(&CFG);
    CFG.fire = t_fire;
    CFG.on_event = t_event;
    CFG.alloc = t_alloc;
    CFG.dealloc = t_free;
    CFG.wall_minus_wheel = WALL0 - T0;
    CFG.seed = 7;
    engine_up(T0);
}

static void teardown(void) {
    task_engine_free(E);
    E = NULL;
    EXPECT_EQ(live_allocs, 0);
}

static void advance_to(uint64_t t) {
    timer_wheel_advance(&W, t);
}

/* Step the wheel 1 ms at a time, as a loop with a fine clock would. */
static void step_to(uint64_t t) {
    while (W.now < t)
        timer_wheel_advance(&W, W.now + 1);
}

static struct task_spec spec_of(int kind) {
    struct task_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.action = "q\0payload";
    s.action_len = 9;
    return s;
}

static struct task *make(struct task_spec s) {
    struct task *t = NULL;
    ck_assert_int_eq(task_create(E, &s, &t), TASK_OK);
    return t;
}

static struct task *once_at(int64_t at) {
    struct task_spec s = spec_of(TASK_ONCE);
    s.at = at;
    return make(s);
}

static struct task *every_ms(uint64_t period, uint32_t count) {
    struct task_spec s = spec_of(TASK_EVERY);
    s.every_ms = period;
    s.count = count;
    return make(s);
}

static struct task_info info(struct task *t) {
    struct task_info i;
    task_info(t, &i);
    return i;
}

/* ---- schedules ---------------------------------------------------------- */

START_TEST(test_once_fires_once) {
    struct task *t = once_at(T0 + 100);
    EXPECT_EQ(task_id(t), 1);
    EXPECT_EQ(info(t).tick, T0 + 100);
    step_to(T0 + 99);
    EXPECT_EQ(nfired, 0);
    step_to(T0 + 100);
    EXPECT_EQ(nfired, 1);
    EXPECT_EQ(fired[0].tick, T0 + 100);
    EXPECT_EQ(fired[0].now, T0 + 100);
    EXPECT_EQ(task_state(t), TASK_COMPLETED);
    EXPECT_EQ(info(t).fires, 1);
    EXPECT_EQ(info(t).finished, T0 + 100);
    advance_to(T0 + 100000);
    EXPECT_EQ(nfired, 1);
    EXPECT_EQ(nev, 3);
    EXPECT_EQ(evs[0].ev.type, TASK_EV_CREATE);
    EXPECT_EQ(evs[0].ev.tick, T0 + 100);
    EXPECT_EQ(evs[1].ev.type, TASK_EV_FIRE);
    EXPECT_EQ(evs[1].ev.fires, 1);
    EXPECT_EQ(evs[2].ev.type, TASK_EV_COMPLETE);
    size_t len;
    const char *a = task_action(t, &len);
    EXPECT_EQ(len, 9);
    EXPECT(!memcmp(a, "q\0payload", 9));
}
END_TEST

START_TEST(test_at_wall_clock) {
    struct task_spec s = spec_of(TASK_AT);
    s.at = WALL0 + 5000; /* 2024-01-31T23:58:05Z */
    struct task *t = make(s);
    EXPECT_EQ(info(t).tick, T0 + 5000);
    advance_to(T0 + 4999);
    EXPECT_EQ(nfired, 0);
    advance_to(T0 + 5000);
    EXPECT_EQ(nfired, 1);
    /* An `at` in the past fires on the next advance. */
    s.at = WALL0 - 60000;
    t = make(s);
    advance_to(T0 + 5001);
    EXPECT_EQ(nfired, 2);
    EXPECT_EQ(task_state(t), TASK_COMPLETED);
}
END_TEST

START_TEST(test_every_count) {
    struct task *t = every_ms(100, 3);
    step_to(T0 + 1000);
    EXPECT_EQ(nfired, 3);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(fired[i].tick, T0 + 100 * (i + 1));
        EXPECT_EQ(fired[i].now, fired[i].tick);
    }
    EXPECT_EQ(task_state(t), TASK_COMPLETED);
    EXPECT_EQ(info(t).fires, 3);
    EXPECT_EQ(info(t).finished, T0 + 300);
    EXPECT_EQ(count_ev(TASK_EV_FIRE), 3);
    EXPECT_EQ(count_ev(TASK_EV_COMPLETE), 1);
}
END_TEST

START_TEST(test_every_first_and_big_jump) {
    struct task_spec s = spec_of(TASK_EVERY);
    s.every_ms = 50;
    s.at = T0 + 10;
    struct task *t = make(s);
    advance_to(T0 + 1000); /* one jump: every tick still fires, in order, on time */
    EXPECT_EQ(nfired, 20);
    for (int i = 0; i < 20; i++)
        EXPECT_EQ(fired[i].now, T0 + 10 + 50 * i);
    EXPECT_EQ(info(t).tick, T0 + 1010);
    EXPECT_EQ(task_state(t), TASK_SCHEDULED);
}
END_TEST

START_TEST(test_jitter) {
    struct task_spec s = spec_of(TASK_EVERY);
    s.every_ms = 1000;
    s.jitter_ms = 200;
    make(s);
    advance_to(T0 + 200 * 1000 + 500);
    EXPECT_EQ(nfired, 200);
    int64_t lo = 1000, hi = -1, seq[200];
    for (int i = 0; i < 200; i++) {
        EXPECT_EQ(fired[i].tick, T0 + 1000 * (i + 1)); /* ticks never drift */
        int64_t late = fired[i].now - fired[i].tick;
        EXPECT(late >= 0 && late <= 200);
        lo = late < lo ? late : lo;
        hi = late > hi ? late : hi;
        seq[i] = late;
    }
    EXPECT(lo < 20 && hi > 180); /* spread over the range */
    /* The same seed draws the same jitter; another seed does not. */
    for (int round = 0; round < 2; round++) {
        task_engine_free(E);
        CFG.seed = round ? 8 : 7;
        engine_up(T0);
        nfired = 0;
        make(s);
        advance_to(T0 + 200 * 1000 + 500);
        int same = 0;
        for (int i = 0; i < 200; i++)
            same += fired[i].now - fired[i].tick == seq[i];
        EXPECT(round ? same < 20 : same == 200);
    }
}
END_TEST

START_TEST(test_cron_task) {
    /* T0 is 2024-01-31T23:58Z: "0 0 31 * *" is next on March 31, then May 31. */
    struct task_spec s = spec_of(TASK_CRON);
    ck_assert_int_eq(cron_parse(&s.cron, "0 0 31 * *", 10, NULL, 0), 0);
    s.count = 2;
    struct task *t = make(s);
    int64_t mar31 = INT64_C(1711843200000), may31 = INT64_C(1717113600000);
    EXPECT_EQ(info(t).tick, mar31 - (WALL0 - T0));
    advance_to((uint64_t)(mar31 - (WALL0 - T0) - 1));
    EXPECT_EQ(nfired, 0);
    advance_to((uint64_t)(may31 - (WALL0 - T0)));
    EXPECT_EQ(nfired, 2);
    EXPECT_EQ(fired[1].tick, may31 - (WALL0 - T0));
    EXPECT_EQ(task_state(t), TASK_COMPLETED);
    /* Daily at midnight: two minutes after T0. */
    ck_assert_int_eq(cron_parse(&s.cron, "@daily", 6, NULL, 0), 0);
    s.count = 0;
    t = make(s); /* now is May 31, 00:00: the next midnight is a day away */
    EXPECT_EQ(info(t).tick - (int64_t)W.now, 86400000);
}
END_TEST

START_TEST(test_spec_errors) {
    struct task_spec s = spec_of(TASK_EVERY);
    ck_assert_str_eq(task_spec_error(E, &s), "every: must be positive");
    s.every_ms = 100;
    s.jitter_ms = 100;
    ck_assert_str_eq(task_spec_error(E, &s), "jitter: must be less than the period");
    s.jitter_ms = 0;
    s.full_policy = 7;
    ck_assert_str_eq(task_spec_error(E, &s), "on_full: must be skip or retry");
    s.full_policy = 0;
    ck_assert_ptr_null(task_spec_error(E, &s));
    s = spec_of(TASK_ONCE);
    s.count = 2;
    ck_assert_str_eq(task_spec_error(E, &s), "count: only for periodic timers");
    s = spec_of(TASK_CRON);
    ck_assert_int_eq(cron_parse(&s.cron, "0 0 30 2 *", 10, NULL, 0), 0);
    ck_assert_str_eq(task_spec_error(E, &s), "cron: never matches (no such date)");
    EXPECT_EQ(task_create(E, &s, NULL), TASK_ERR_INVALID);
    s = spec_of(TASK_AT);
    s.at = CRON_MAX_MS + 1;
    ck_assert_str_eq(task_spec_error(E, &s), "at: out of range");
    s = spec_of(TASK_ONCE);
    s.action_len = CFG.max_action + 1;
    EXPECT_EQ(task_create(E, &s, NULL), TASK_ERR_TOOBIG);
    EXPECT_EQ(nev, 0);
}
END_TEST

/* ---- cancellation ------------------------------------------------------- */

START_TEST(test_cancel_before) {
    struct task *t = every_ms(100, 0);
    advance_to(T0 + 50);
    EXPECT_EQ(task_cancel(t), 1);
    EXPECT_EQ(task_state(t), TASK_CANCELLED);
    EXPECT_EQ(info(t).finished, T0 + 50);
    EXPECT_EQ(task_cancel(t), 0);
    advance_to(T0 + 1000);
    EXPECT_EQ(nfired, 0);
    EXPECT_EQ(count_ev(TASK_EV_CANCEL), 1);
}
END_TEST

static int cancel_result;
static void cancel_self(struct task *t) {
    cancel_result = task_cancel(t);
}

START_TEST(test_cancel_during) {
    struct task *t = every_ms(100, 0);
    fire_extra = cancel_self;
    advance_to(T0 + 1000);
    EXPECT_EQ(cancel_result, 1);
    EXPECT_EQ(nfired, 1);
    EXPECT_EQ(task_state(t), TASK_CANCELLED);
    EXPECT_EQ(info(t).fires, 1); /* the firing still counts */
    EXPECT_EQ(nev, 3);
    EXPECT_EQ(evs[1].ev.type, TASK_EV_CANCEL);
    EXPECT_EQ(evs[2].ev.type, TASK_EV_FIRE);
    EXPECT_EQ(evs[2].ev.fires, 1);
    /* A one-shot cancelled during its firing ends cancelled, as in asyncio. */
    t = once_at(T0 + 1100);
    advance_to(T0 + 1100);
    EXPECT_EQ(task_state(t), TASK_CANCELLED);
}
END_TEST

START_TEST(test_cancel_after) {
    struct task *t = once_at(T0 + 10);
    advance_to(T0 + 10);
    EXPECT_EQ(task_state(t), TASK_COMPLETED);
    int n = nev;
    EXPECT_EQ(task_cancel(t), 0);
    EXPECT_EQ(task_state(t), TASK_COMPLETED);
    EXPECT_EQ(nev, n);
}
END_TEST

/* ---- await -------------------------------------------------------------- */

static int woken[8], nwoken;
static void on_wake(struct task_waiter *w, int status) {
    woken[nwoken++] = (int)(intptr_t)w->arg * 100 + status;
}

START_TEST(test_await) {
    struct task *t = every_ms(100, 2);
    struct task_waiter w[4];
    for (int i = 0; i < 4; i++) {
        task_waiter_init(&w[i], on_wake, (void *)(intptr_t)i);
        EXPECT_EQ(task_await(t, &w[i]), TASK_WAIT);
    }
    EXPECT_EQ(task_await(t, &w[0]), TASK_ERR_INVALID); /* busy */
    task_waiter_cancel(&w[2]);                         /* middle */
    task_waiter_cancel(&w[3]);                         /* newest (the list head) */
    task_waiter_cancel(&w[3]);                         /* idle: no-op */
    struct task_engine_stats st;
    task_engine_stats(E, &st);
    EXPECT_EQ(st.waiters, 2);
    advance_to(T0 + 150);
    EXPECT_EQ(nwoken, 0);
    advance_to(T0 + 200);
    EXPECT_EQ(nwoken, 2); /* oldest first */
    EXPECT_EQ(woken[0], 0 * 100 + TASK_COMPLETED);
    EXPECT_EQ(woken[1], 1 * 100 + TASK_COMPLETED);
    EXPECT(w[0].task == t && w[0].id == task_id(t) && w[0].status == TASK_COMPLETED);
    /* Already final: at once, no wake. */
    EXPECT_EQ(task_await(t, &w[0]), TASK_OK);
    EXPECT_EQ(w[0].status, TASK_COMPLETED);
    EXPECT_EQ(nwoken, 2);
    /* Woken on cancel, before task_cancel returns. */
    t = once_at(T0 + 10000);
    EXPECT_EQ(task_await(t, &w[1]), TASK_WAIT);
    EXPECT_EQ(task_cancel(t), 1);
    EXPECT_EQ(nwoken, 3);
    EXPECT_EQ(woken[2], 100 + TASK_CANCELLED);
    /* Woken on failure. */
    t = once_at(T0 + 20000);
    EXPECT_EQ(task_await(t, &w[1]), TASK_WAIT);
    default_result = -10;
    advance_to(T0 + 20000);
    EXPECT_EQ(woken[3], 100 + TASK_FAILED);
    task_engine_stats(E, &st);
    EXPECT_EQ(st.waiters, 0);
}
END_TEST

/* wake() may call the engine: here it cancels a second task, whose own waiter
 * is woken after it, in the same drain. */
static struct task *chain_target;
static struct task_waiter chain_w2;
static void wake_chain(struct task_waiter *w, int status) {
    on_wake(w, status);
    if (chain_target)
        EXPECT_EQ(task_cancel(chain_target), 1);
    chain_target = NULL;
}

START_TEST(test_await_reentrant) {
    struct task *a = once_at(T0 + 10), *b = once_at(T0 + 5000);
    struct task_waiter w1;
    task_waiter_init(&w1, wake_chain, (void *)1);
    task_waiter_init(&chain_w2, on_wake, (void *)2);
    EXPECT_EQ(task_await(a, &w1), TASK_WAIT);
    EXPECT_EQ(task_await(b, &chain_w2), TASK_WAIT);
    chain_target = b;
    advance_to(T0 + 10);
    EXPECT_EQ(nwoken, 2);
    EXPECT_EQ(woken[0], 100 + TASK_COMPLETED);
    EXPECT_EQ(woken[1], 200 + TASK_CANCELLED);
}
END_TEST

/* ---- full queue and errors ---------------------------------------------- */

START_TEST(test_full_skip) {
    struct task *t = every_ms(100, 4);
    script(2, (int[]){TASK_FIRE_OK, TASK_FIRE_FULL});
    advance_to(T0 + 1000);
    struct task_info i = info(t);
    EXPECT_EQ(nfired, 4); /* the skipped tick counts toward count */
    EXPECT_EQ(i.fires, 3);
    EXPECT_EQ(i.skips, 1);
    EXPECT_EQ(i.last_error, TASK_FIRE_FULL);
    EXPECT_EQ(i.state, TASK_COMPLETED);
    EXPECT_EQ(evs[2].ev.type, TASK_EV_FIRE);
    EXPECT_EQ(evs[2].ev.skips, 1);
    /* A one-shot skipped because its target was full never happened: failed. */
    t = once_at(T0 + 1100);
    default_result = TASK_FIRE_FULL;
    advance_to(T0 + 1100);
    EXPECT_EQ(task_state(t), TASK_FAILED);
    EXPECT_EQ(info(t).skips, 1);
    /* A transient error (> 1) skips a periodic tick; a negative one fails the task. */
    default_result = 0;
    script(2, (int[]){5, -10});
    t = every_ms(100, 0);
    advance_to(T0 + 1300);
    EXPECT_EQ(task_state(t), TASK_FAILED);
    EXPECT_EQ(info(t).skips, 2);
    EXPECT_EQ(info(t).last_error, -10);
    EXPECT_EQ(evs[nev - 1].ev.type, TASK_EV_FAIL);
}
END_TEST

START_TEST(test_full_retry) {
    struct task_spec s = spec_of(TASK_EVERY);
    s.every_ms = 1000;
    s.full_policy = TASK_FULL_RETRY;
    struct task *t = make(s);
    /* Full 4 times: retries at +10, +20, +40 and +80 ms (the gap doubles). */
    script(4, (int[]){1, 1, 1, 1});
    step_to(T0 + 1050);
    EXPECT_EQ(nfired, 4);
    EXPECT(info(t).retrying);
    EXPECT_EQ(info(t).fire_at, T0 + 1080);
    EXPECT_EQ(info(t).full_policy, TASK_FULL_RETRY);
    step_to(T0 + 1080);
    EXPECT_EQ(nfired, 5);
    int64_t want[] = {1000, 1010, 1020, 1040, 1080};
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(fired[i].now, T0 + want[i]);
        EXPECT_EQ(fired[i].tick, T0 + 1000);
    }
    EXPECT_EQ(info(t).fires, 1);
    EXPECT_EQ(info(t).skips, 0);
    EXPECT(!info(t).retrying);
    EXPECT_EQ(info(t).tick, T0 + 2000); /* no drift */
    EXPECT_EQ(count_ev(TASK_EV_FIRE), 1);
    /* Always full: gaps grow to retry_max, and retries stop before the next tick. */
    nfired = 0;
    default_result = TASK_FIRE_FULL;
    step_to(T0 + 3000);
    EXPECT_EQ(info(t).skips, 1);
    EXPECT_EQ(fired[nfired - 1].tick, T0 + 3000); /* the next tick fired on time */
    for (int i = 1; i < nfired - 1; i++)
        EXPECT(fired[i].now < T0 + 3000 && fired[i].now - fired[i - 1].now <= 1000);
    struct task_engine_stats st;
    task_engine_stats(E, &st);
    EXPECT(st.total_retries >= 11);
    /* A one-shot retries for once_retry_ms, then fails. */
    task_cancel(t);
    s = spec_of(TASK_ONCE);
    s.at = T0 + 10000;
    s.full_policy = TASK_FULL_RETRY;
    t = make(s);
    advance_to(T0 + 10000 + CFG.once_retry_ms);
    EXPECT_EQ(task_state(t), TASK_FAILED);
    EXPECT_EQ(info(t).last_error, TASK_FIRE_FULL);
    EXPECT(info(t).finished > T0 + 10000 + (int64_t)CFG.once_retry_ms - 1000);
}
END_TEST

/* ---- missed ticks, replay and resume ------------------------------------- */

/* Replay the recorded events into a fresh engine whose wheel starts at now. */
static void restart_at(uint64_t now) {
    int n = nev;
    task_engine_free(E);
    engine_up(now);
    for (int i = 0; i < n; i++)
        EXPECT_EQ(task_engine_replay(E, &evs[i].ev), TASK_OK);
    EXPECT_EQ(nev, n); /* replay reports nothing */
}

START_TEST(test_resume_fire_once) {
    every_ms(1000, 10);
    advance_to(T0 + 3500); /* ticks 1000..3000 fired */
    restart_at(T0 + 8500); /* down for 5 s: ticks 4000..8000 missed */
    struct task *t = task_find(E, 1);
    EXPECT_EQ(info(t).fires, 3);
    EXPECT_EQ(task_engine_resume(E), 1);
    EXPECT_EQ(info(t).skips, 4);
    nfired = 0;
    advance_to(T0 + 8500);
    EXPECT_EQ(nfired, 1); /* once, for the latest missed tick */
    EXPECT_EQ(fired[0].tick, T0 + 8000);
    EXPECT_EQ(info(t).fires, 4);
    advance_to(T0 + 20000);
    EXPECT_EQ(task_state(t), TASK_COMPLETED); /* 4 fired + 4 skipped + 9000 + 10000 */
    EXPECT_EQ(info(t).fires, 6);
    EXPECT_EQ(info(t).finished, T0 + 10000);
}
END_TEST

START_TEST(test_resume_skip) {
    struct task_spec s = spec_of(TASK_EVERY);
    s.every_ms = 1000;
    s.missed_policy = TASK_MISSED_SKIP;
    make(s);
    s = spec_of(TASK_ONCE);
    s.at = T0 + 6000;
    s.missed_policy = TASK_MISSED_SKIP;
    make(s);
    advance_to(T0 + 3500);
    restart_at(T0 + 8500);
    int n = nev;
    EXPECT_EQ(task_engine_resume(E), 1);
    struct task *t = task_find(E, 1), *once = task_find(E, 2);
    EXPECT_EQ(info(t).skips, 5);
    EXPECT_EQ(info(t).tick, T0 + 9000);
    EXPECT_EQ(evs[n].ev.type, TASK_EV_FIRE); /* the skips are journaled */
    EXPECT_EQ(evs[n].ev.tick, T0 + 8000);
    EXPECT_EQ(evs[n].ev.skips, 5);
    EXPECT_EQ(task_state(once), TASK_COMPLETED); /* skipping was asked for */
    EXPECT_EQ(info(once).skips, 1);
    nfired = 0;
    advance_to(T0 + 9000);
    EXPECT_EQ(nfired, 1);
    EXPECT_EQ(fired[0].tick, T0 + 9000);
}
END_TEST

START_TEST(test_resume_within_count) {
    every_ms(1000, 5);
    advance_to(T0 + 2500); /* 2 fired, 3 ticks left */
    restart_at(T0 + 20000);
    task_engine_resume(E);
    advance_to(T0 + 20000);
    struct task *t = task_find(E, 1);
    EXPECT_EQ(task_state(t), TASK_COMPLETED); /* the missed ticks used up the count */
    EXPECT_EQ(info(t).fires, 3);
    EXPECT_EQ(info(t).skips, 2);
    EXPECT_EQ(fired[nfired - 1].tick, T0 + 5000); /* the last tick within count */
}
END_TEST

START_TEST(test_replay_states) {
    struct task *a = every_ms(100, 0), *b = every_ms(100, 2), *c = once_at(T0 + 50);
    struct task *d = once_at(T0 + 5000);
    default_result = TASK_FIRE_OK;
    advance_to(T0 + 250);
    task_cancel(a);
    (void)b, (void)c, (void)d;
    struct task_info before[4];
    for (int i = 0; i < 4; i++)
        task_info(task_find(E, (uint64_t)i + 1), &before[i]);
    restart_at(T0 + 300);
    task_engine_resume(E);
    for (int i = 0; i < 4; i++) {
        struct task_info x = info(task_find(E, (uint64_t)i + 1));
        EXPECT_EQ(x.state, before[i].state);
        EXPECT_EQ(x.fires, before[i].fires);
        EXPECT_EQ(x.skips, before[i].skips);
        EXPECT_EQ(x.kind, before[i].kind);
        EXPECT_EQ(x.every_ms, before[i].every_ms);
        EXPECT_EQ(x.action_len, 9);
        if (x.state != TASK_SCHEDULED)
            EXPECT_EQ(x.finished, before[i].finished);
    }
    EXPECT_EQ(info(task_find(E, 4)).tick, T0 + 5000);
    /* Ids are never reused. */
    EXPECT_EQ(task_id(once_at(T0 + 6000)), 5);
    /* Duplicates and unknown ids are refused. */
    EXPECT_EQ(task_engine_replay(E, &evs[0].ev), TASK_ERR_EXISTS);
    struct task_event ev = {.type = TASK_EV_CANCEL, .id = 99};
    EXPECT_EQ(task_engine_replay(E, &ev), TASK_ERR_NOTFOUND);
}
END_TEST

START_TEST(test_missed_in_process) {
    /* First tick long past: it fires once, the ticks between count as skipped. */
    struct task_spec s = spec_of(TASK_EVERY);
    s.every_ms = 100;
    s.at = 1;
    struct task *t = make(s);
    advance_to(T0);
    EXPECT_EQ(nfired, 1); /* tick 1; the catch-up was made due while due timers ran */
    advance_to(T0);       /* so the wheel runs it on its next advance */
    EXPECT_EQ(nfired, 2); /* once for ticks 101..901 */
    EXPECT_EQ(fired[1].tick, 901);
    EXPECT_EQ(info(t).skips, 8);
    EXPECT_EQ(info(t).tick, 1001);
}
END_TEST

/* ---- removal, listing, index ------------------------------------------- */

START_TEST(test_keep_and_remove) {
    CFG.keep_ms = 1000;
    task_engine_free(E);
    engine_up(T0);
    struct task *t = once_at(T0 + 10);
    advance_to(T0 + 1009);
    EXPECT(task_find(E, 1) == t);
    advance_to(T0 + 1010);
    ck_assert_ptr_null(task_find(E, 1));
    EXPECT_EQ(evs[nev - 1].ev.type, TASK_EV_REMOVE);
    struct task_engine_stats st;
    task_engine_stats(E, &st);
    EXPECT_EQ(st.tasks, 0);
    EXPECT_EQ(st.total_removed, 1);
    EXPECT_EQ(st.by_state[TASK_COMPLETED], 0);
}
END_TEST

START_TEST(test_list_paging) {
    CFG.keep_ms = 0;
    task_engine_free(E);
    engine_up(T0);
    for (int i = 0; i < 300; i++)
        once_at(i % 3 ? T0 + 100000 : T0 + 5);
    advance_to(T0 + 10); /* ids 1, 4, 7, ... complete and are removed */
    struct task *page[64];
    uint64_t after = 0, seen = 0;
    size_t n;
    while ((n = task_list(E, after, page, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            EXPECT(task_id(page[i]) > after);
            EXPECT(task_id(page[i]) % 3 != 1);
            after = task_id(page[i]);
            seen++;
        }
    }
    EXPECT_EQ(seen, 200);
    EXPECT_EQ(task_list(E, 299, page, 64), 1);
    EXPECT_EQ(task_list(E, 300, page, 64), 0);
    ck_assert_ptr_null(task_find(E, 4));
    ck_assert_ptr_nonnull(task_find(E, 5));
    ck_assert_ptr_null(task_find(E, 0));
    ck_assert_ptr_null(task_find(E, 1000));
}
END_TEST

/* Lookups and paging over an index with irregular holes, against a reference. */
START_TEST(test_index_irregular) {
    CFG.keep_ms = 0;
    CFG.on_event = NULL;
    task_engine_free(E);
    engine_up(T0);
    enum { N = 20000 };
    static char live[N + 2];
    for (int id = 1; id <= N; id++) {
        once_at(T0 + 1000000);
        live[id] = 1;
    }
    for (int id = 1; id <= N; id++)
        if ((id >= 1000 && id < 9000 && id % 97) || (id >= 15000 && id % 5) || id == N) {
            task_cancel(task_find(E, (uint64_t)id));
            live[id] = 0;
        }
    advance_to(T0 + 1);
    for (int id = 0; id <= N + 1; id++) {
        struct task *t = task_find(E, (uint64_t)id);
        if (live[id] != (t != NULL) || (t && task_id(t) != (uint64_t)id))
            ck_abort_msg("find %d", id);
        struct task *next;
        int want = id + 1;
        while (want <= N && !live[want])
            want++;
        size_t n = task_list(E, (uint64_t)id, &next, 1);
        if (want > N ? n != 0 : (n != 1 || task_id(next) != (uint64_t)want))
            ck_abort_msg("list after %d", id);
    }
    /* Replay in descending id order: inserts land in the middle. */
    task_engine_free(E);
    engine_up(T0);
    for (int id = 50; id >= 1; id--) {
        struct task_spec sp = spec_of(TASK_ONCE);
        struct task_event ev = {.type = TASK_EV_CREATE, .id = (uint64_t)(id * 3), .spec = &sp};
        EXPECT_EQ(task_engine_replay(E, &ev), TASK_OK);
    }
    struct task *all[64];
    EXPECT_EQ(task_list(E, 0, all, 64), 50);
    for (int i = 0; i < 50; i++)
        EXPECT_EQ(task_id(all[i]), 3 * (i + 1));
    EXPECT_EQ(task_id(task_find(E, 75)), 75);
    ck_assert_ptr_null(task_find(E, 76));
    EXPECT_EQ(task_id(once_at(T0 + 5)), 151);
}
END_TEST

START_TEST(test_million) {
    /* 1,000,000 tasks created then cancelled, and removed; no leaks. */
    CFG.keep_ms = 0;
    CFG.on_event = NULL;
    task_engine_free(E);
    engine_up(T0);
    enum { N = 1000000 };
    for (int i = 0; i < N; i++) {
        struct task_spec s = spec_of(i & 1 ? TASK_EVERY : TASK_ONCE);
        s.every_ms = 1000 + (uint64_t)i % 5000;
        s.at = i & 1 ? 0 : T0 + 1 + i % 3600000;
        ck_assert_int_eq(task_create(E, &s, NULL), TASK_OK);
    }
    EXPECT_EQ(W.count, N);
    for (uint64_t id = 1; id <= N; id += 7) /* a sample of lookups */
        EXPECT_EQ(task_id(task_find(E, id)), id);
    for (uint64_t id = N; id >= 1; id--) /* newest first: the hardest order for tombstones */
        if (!task_cancel(task_find(E, id)))
            ck_abort_msg("cancel %llu", (unsigned long long)id);
    advance_to(T0 + 1);
    struct task_engine_stats st;
    task_engine_stats(E, &st);
    EXPECT_EQ(st.tasks, 0);
    EXPECT_EQ(W.count, 0);
    EXPECT(live_allocs <= 2); /* the engine and a shrunk index; teardown checks the rest */
}
END_TEST

START_TEST(test_nomem) {
    for (long k = 0; k < 3; k++) {
        fail_countdown = k;
        struct task_spec s = spec_of(TASK_ONCE);
        s.at = T0 + 10;
        int r = task_create(E, &s, NULL);
        if (r == TASK_OK)
            break;
        EXPECT_EQ(r, TASK_ERR_NOMEM);
        struct task_engine_stats st;
        task_engine_stats(E, &st);
        EXPECT_EQ(st.tasks, 0);
        EXPECT_EQ(st.next_id, 1);
        EXPECT_EQ(nev, 0);
    }
    fail_countdown = -1;
    ck_assert_ptr_nonnull(task_find(E, 1));
}
END_TEST

/* Keep the action's first 2 bytes ("q\0") once finished: the payload goes. */
static size_t keep2(void *ctx, const void *a, size_t n) {
    (void)ctx;
    (void)a;
    return n < 2 ? n : 2;
}

/* Issue 12, finding 2: tasks are charged against a memory budget (shared
 * with the queues in awaitd), max_tasks bounds scheduled ones, and a
 * finished task gives its payload back at the next advance. */
START_TEST(test_memory_budget) {
    task_engine_free(E);
    struct mem_budget b = {.used = 0, .limit = 0};
    static char big[200] = "q";
    struct task_spec s = spec_of(TASK_ONCE);
    s.at = T0 + 100000000; /* after every removal below */
    s.action = big;
    s.action_len = sizeof big;
    size_t cost = task_cost(TASK_ONCE, sizeof big);
    EXPECT_EQ(cost, 288 + TASK_INDEX_COST); /* 72 + 200 + 8 -> 288 */
    b.limit = 3 * cost + 100; /* 100 bytes someone else holds */
    b.used = 100;
    CFG.budget = &b;
    CFG.action_keep = keep2;
    CFG.max_tasks = 5;
    engine_up(T0);
    struct task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = make(s);
    EXPECT_EQ(task_create(E, &s, NULL), TASK_ERR_MEMORY);
    EXPECT_EQ(b.used, 100 + 3 * cost);
    struct task_engine_stats st;
    task_engine_stats(E, &st);
    EXPECT_EQ(st.mem_used, 3 * cost);
    EXPECT_EQ(st.tasks, 3);
    EXPECT_EQ(nev, 3); /* the refused create left no trace */
    /* Cancel: the payload is freed at the next advance, not the task. */
    uint64_t id = task_id(t[0]);
    EXPECT_EQ(task_cancel(t[0]), 1);
    EXPECT_EQ(b.used, 100 + 3 * cost);
    advance_to(T0 + 1);
    size_t small = task_cost(TASK_ONCE, 2);
    EXPECT(small < cost);
    EXPECT_EQ(b.used, 100 + 2 * cost + small);
    struct task *c = task_find(E, id);
    ck_assert_ptr_nonnull(c);
    struct task_info i;
    task_info(c, &i);
    EXPECT_EQ(i.state, TASK_CANCELLED);
    EXPECT_EQ(i.action_len, 2);
    EXPECT_EQ(memcmp(i.action, "q\0", 2), 0);
    /* Room for one more once another finishes; max_tasks counts scheduled only. */
    EXPECT_EQ(task_cancel(t[1]), 1);
    advance_to(T0 + 2);
    make(s);
    /* Removal after keep_ms gives the rest back. */
    advance_to(T0 + 2 + CFG.keep_ms);
    EXPECT(task_find(E, id) == NULL);
    task_engine_stats(E, &st);
    EXPECT_EQ(st.tasks, 2);
    EXPECT_EQ(b.used, 100 + 2 * cost);
    task_engine_set_limits(E, 2, 0);
    EXPECT_EQ(task_create(E, &s, NULL), TASK_ERR_LIMIT);
    task_engine_free(E);
    EXPECT_EQ(b.used, 100);
    E = NULL;
    engine_up(T0); /* for teardown */
}
END_TEST

START_TEST(test_wall_step) {
    struct task_spec s = spec_of(TASK_AT);
    s.at = WALL0 + 60000;
    struct task *at = make(s);
    s = spec_of(TASK_CRON);
    ck_assert_int_eq(cron_parse(&s.cron, "* * * * *", 9, NULL, 0), 0);
    struct task *cr = make(s);
    struct task *ev = every_ms(60000, 0);
    EXPECT_EQ(info(cr).tick, T0 + 60000);
    task_engine_set_wall_offset(E, WALL0 - T0 + 900); /* within the slack: ignored */
    EXPECT_EQ(info(at).tick, T0 + 60000);
    task_engine_set_wall_offset(E, WALL0 - T0 + 5000); /* the clock stepped 5 s forward */
    EXPECT_EQ(info(at).tick, T0 + 55000);
    EXPECT_EQ(info(cr).tick, T0 + 55000);
    EXPECT_EQ(info(ev).tick, T0 + 60000); /* monotonic schedules stay */
    advance_to(T0 + 55000);
    EXPECT_EQ(nfired, 2);
    EXPECT_EQ(info(cr).tick, T0 + 115000);
    struct task_engine_stats st;
    task_engine_stats(E, &st);
    EXPECT_EQ(st.wall_minus_wheel, WALL0 - T0 + 5000);
}
END_TEST

static int deleted_wakes;
static void wake_deleted(struct task_waiter *w, int status) {
    deleted_wakes += status == TASK_ERR_DELETED;
}

START_TEST(test_free_wakes_waiters) {
    struct task *t = once_at(T0 + 100);
    struct task_waiter w;
    task_waiter_init(&w, wake_deleted, NULL);
    EXPECT_EQ(task_await(t, &w), TASK_WAIT);
    task_engine_free(E);
    E = NULL;
    EXPECT_EQ(deleted_wakes, 1);
    EXPECT_EQ(W.count, 0);
}
END_TEST

static Suite *task_suite(void) {
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_once_fires_once);
    tcase_add_test(tc, test_at_wall_clock);
    tcase_add_test(tc, test_every_count);
    tcase_add_test(tc, test_every_first_and_big_jump);
    tcase_add_test(tc, test_jitter);
    tcase_add_test(tc, test_cron_task);
    tcase_add_test(tc, test_spec_errors);
    tcase_add_test(tc, test_cancel_before);
    tcase_add_test(tc, test_cancel_during);
    tcase_add_test(tc, test_cancel_after);
    tcase_add_test(tc, test_await);
    tcase_add_test(tc, test_await_reentrant);
    tcase_add_test(tc, test_full_skip);
    tcase_add_test(tc, test_full_retry);
    tcase_add_test(tc, test_resume_fire_once);
    tcase_add_test(tc, test_resume_skip);
    tcase_add_test(tc, test_resume_within_count);
    tcase_add_test(tc, test_replay_states);
    tcase_add_test(tc, test_missed_in_process);
    tcase_add_test(tc, test_keep_and_remove);
    tcase_add_test(tc, test_list_paging);
    tcase_add_test(tc, test_index_irregular);
    tcase_add_test(tc, test_million);
    tcase_add_test(tc, test_nomem);
    tcase_add_test(tc, test_wall_step);
    tcase_add_test(tc, test_memory_budget);
    tcase_add_test(tc, test_free_wakes_waiters);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(task_suite());
}
