/* Unit tests for engine/tick_plan.c: the task engine's tick rules for timers kept in Redis
 * (missed ticks, count, on_full = retry), on a fake clock. */
#include "engine/task.h"
#include "engine/tick_plan.h"
#include "check_main.h"

#include <check.h>
#include <string.h>

#define MIN 60000

static struct tick_sched every(uint64_t ms, uint32_t count) {
    return (struct tick_sched){.kind = TASK_EVERY, .every_ms = ms, .count = count};
}

static struct tick_plan plan(const struct tick_sched *s, int64_t tick, int64_t now, uint32_t fires,
                             uint32_t skips, int policy, int retrying) {
    struct tick_claim c = {tick, now, fires, skips, policy, retrying};
    struct tick_plan p;
    tick_plan_claim(s, &c, 1000, &p);
    return p;
}

START_TEST(on_time_puts_the_tick) {
    struct tick_sched s = every(1000, 0);
    struct tick_plan p = plan(&s, 5000, 5003, 4, 0, TASK_MISSED_SKIP, 0);
    EXPECT_EQ(p.put, 1);
    EXPECT_EQ(p.tick, 5000);
    EXPECT_EQ(p.skips, 0);
    /* late but within the period: not missed, whatever the policy */
    p = plan(&s, 5000, 5999, 4, 0, TASK_MISSED_SKIP, 0);
    EXPECT_EQ(p.put, 1);
    EXPECT_EQ(p.skips, 0);
}
END_TEST

START_TEST(missed_every_fire_once_and_skip) {
    struct tick_sched s = every(1000, 0);
    /* ticks 2000, 3000, 4000, 5000 are due at 5300 */
    struct tick_plan p = plan(&s, 2000, 5300, 1, 0, TASK_MISSED_FIRE_ONCE, 0);
    EXPECT_EQ(p.put, 1);
    EXPECT_EQ(p.tick, 5000); /* the latest fires */
    EXPECT_EQ(p.skips, 3);   /* the others are skipped */
    p = plan(&s, 2000, 5300, 1, 0, TASK_MISSED_SKIP, 0);
    EXPECT_EQ(p.put, 0);
    EXPECT_EQ(p.skips, 4);
    EXPECT_EQ(p.next, 6000); /* on the grid, in the future */
}
END_TEST

START_TEST(missed_within_count) {
    struct tick_sched s = every(1000, 5);
    /* 3 handled, 2 left; 10 ticks due: only 2 count */
    struct tick_plan p = plan(&s, 4000, 13500, 3, 0, TASK_MISSED_SKIP, 0);
    EXPECT_EQ(p.put, 0);
    EXPECT_EQ(p.skips, 2);
    EXPECT_EQ(p.next, TICK_PLAN_NONE); /* completed */
    p = plan(&s, 4000, 13500, 3, 0, TASK_MISSED_FIRE_ONCE, 0);
    EXPECT_EQ(p.put, 1);
    EXPECT_EQ(p.tick, 5000);
    EXPECT_EQ(p.skips, 1);
}
END_TEST

START_TEST(one_shot_grace) {
    struct tick_sched s = {.kind = TASK_ONCE};
    struct tick_plan p = plan(&s, 1000, 1900, 0, 0, TASK_MISSED_SKIP, 0);
    EXPECT_EQ(p.put, 1); /* 0.9 s late: not missed */
    p = plan(&s, 1000, 2500, 0, 0, TASK_MISSED_SKIP, 0);
    EXPECT_EQ(p.put, 0);
    EXPECT_EQ(p.skips, 1);
    EXPECT_EQ(p.next, TICK_PLAN_NONE);
    p = plan(&s, 1000, 2500, 0, 0, TASK_MISSED_FIRE_ONCE, 0);
    EXPECT_EQ(p.put, 1);
    EXPECT_EQ(p.tick, 1000);
    EXPECT_EQ(p.skips, 0);
    /* a retry of a full queue is never "missed" */
    p = plan(&s, 1000, 30000, 0, 0, TASK_MISSED_SKIP, 1);
    EXPECT_EQ(p.put, 1);
}
END_TEST

START_TEST(cron_missed) {
    struct cron c;
    char err[64];
    ck_assert_int_eq(cron_parse(&c, "*/5 * * * *", 11, err, sizeof err), 0);
    struct tick_sched s = {.kind = TASK_CRON, .cron = &c};
    int64_t t0 = 1767225600000; /* 2026-01-01T00:00Z */
    EXPECT_EQ(tick_plan_next(&s, t0), t0 + 5 * MIN);
    /* claimed at 00:17: 00:00, 00:05, 00:10, 00:15 due */
    struct tick_plan p = plan(&s, t0, t0 + 17 * MIN, 0, 0, TASK_MISSED_SKIP, 0);
    EXPECT_EQ(p.put, 0);
    EXPECT_EQ(p.skips, 4);
    EXPECT_EQ(p.next, t0 + 20 * MIN);
    p = plan(&s, t0, t0 + 17 * MIN, 0, 0, TASK_MISSED_FIRE_ONCE, 0);
    EXPECT_EQ(p.tick, t0 + 15 * MIN);
    EXPECT_EQ(p.skips, 3);
}
END_TEST

START_TEST(after_a_tick) {
    struct tick_sched s = every(250, 3);
    EXPECT_EQ(tick_plan_after(&s, 1000, 1), 1250);
    EXPECT_EQ(tick_plan_after(&s, 1000, 3), TICK_PLAN_NONE);
    struct tick_sched once = {.kind = TASK_AT};
    EXPECT_EQ(tick_plan_after(&once, 1000, 1), TICK_PLAN_NONE);
}
END_TEST

START_TEST(retry_backoff) {
    struct tick_sched s = every(1000, 0);
    EXPECT_EQ(tick_plan_retry(&s, 5000, 5000, 10, 1000, 60000), 10);  /* at least min */
    EXPECT_EQ(tick_plan_retry(&s, 5000, 5040, 10, 1000, 60000), 40);  /* the time since the tick */
    EXPECT_EQ(tick_plan_retry(&s, 5000, 5600, 10, 1000, 60000), 0);   /* 5600 + 600 > 6000: skip */
    struct tick_sched once = {.kind = TASK_ONCE};
    EXPECT_EQ(tick_plan_retry(&once, 5000, 30000, 10, 1000, 60000), 1000); /* at most max */
    EXPECT_EQ(tick_plan_retry(&once, 5000, 64500, 10, 1000, 60000), 0);    /* past once_ms */
}
END_TEST

int main(void) {
    Suite *s = suite_create("tick_plan");
    TCase *t = tcase_create("plan");
    tcase_add_test(t, on_time_puts_the_tick);
    tcase_add_test(t, missed_every_fire_once_and_skip);
    tcase_add_test(t, missed_within_count);
    tcase_add_test(t, one_shot_grace);
    tcase_add_test(t, cron_missed);
    tcase_add_test(t, after_a_tick);
    tcase_add_test(t, retry_backoff);
    suite_add_tcase(s, t);
    return check_run(s);
}
