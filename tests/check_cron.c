/*
 * Unit tests for cron: crontab(5) parsing, next-fire computation in UTC
 * and the calendar helpers. Expected times are written as RFC 3339 text
 * and checked against an independent minute-by-minute search, so a bug
 * in the calendar code cannot hide behind itself.
 *
 * Build alone: gcc -O1 -g -fsanitize=address,undefined -Isrc src/cron.c
 *   tests/check_cron.c $(pkg-config --cflags --libs check) -o /tmp/check_cron
 */
#include "engine/cron.h"
#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static struct cron parse_ok(const char *s) {
    struct cron c;
    char err[128];
    if (cron_parse(&c, s, strlen(s), err, sizeof err))
        ck_abort_msg("cron_parse(\"%s\") failed: %s", s, err);
    return c;
}

/* The error text for s, which must fail to parse. */
static const char *parse_err(const char *s) {
    static char err[128];
    struct cron c;
    if (!cron_parse(&c, s, strlen(s), err, sizeof err))
        ck_abort_msg("cron_parse(\"%s\") should have failed", s);
    return err;
}

static int same(struct cron a, struct cron b) {
    return a.minutes == b.minutes && a.hours == b.hours && a.mdays == b.mdays &&
           a.months == b.months && a.wdays == b.wdays && a.flags == b.flags;
}

static int64_t ms(const char *rfc3339) {
    int64_t v;
    if (cron_parse_rfc3339(rfc3339, strlen(rfc3339), &v))
        ck_abort_msg("bad time %s", rfc3339);
    return v;
}

/* Reference matcher: does the minute starting at unix ms t match c? */
static int matches(const struct cron *c, int64_t t) {
    struct cron_tm tm;
    cron_gmtime(t, &tm);
    int dom = c->mdays >> tm.day & 1, dow = c->wdays >> tm.wday & 1;
    int day = (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR)) ? dom && dow : dom || dow;
    return (c->minutes >> tm.minute & 1) && (c->hours >> tm.hour & 1) &&
           (c->months >> tm.month & 1) && day;
}

/* cron_next(after) must be expect, and agree with a brute-force search. */
static void check_next(const char *expr, const char *after, const char *expect) {
    struct cron c = parse_ok(expr);
    int64_t got = cron_next(&c, ms(after)), want = ms(expect);
    char buf[CRON_RFC3339_LEN + 1];
    cron_format_rfc3339(got, buf);
    if (got != want)
        ck_abort_msg("cron_next(\"%s\", %s) = %s, want %s", expr, after, buf, expect);
    /* Nothing matches in between (brute force, bounded to 2 years of minutes). */
    int64_t from = (ms(after) / 60000 + 1) * 60000;
    if (want - from <= INT64_C(2) * 366 * 86400000)
        for (int64_t t = from; t < want; t += 60000)
            if (matches(&c, t)) {
                cron_format_rfc3339(t, buf);
                ck_abort_msg("\"%s\": %s matches before %s", expr, buf, expect);
            }
    ck_assert(matches(&c, want));
}

START_TEST(test_parse_fields) {
    struct cron c = parse_ok("*/15 9-17 1,15 * MON-FRI");
    EXPECT_EQ(c.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
    EXPECT_EQ(c.hours, 0x3fe00); /* 9..17 */
    EXPECT_EQ(c.mdays, (1u << 1) | (1u << 15));
    EXPECT_EQ(c.months, 0x1ffe);
    EXPECT_EQ(c.wdays, 0x3e);
    EXPECT_EQ(c.flags, 0);

    c = parse_ok("  0\t0  *  *  *  ");
    EXPECT_EQ(c.minutes, 1);
    EXPECT_EQ(c.hours, 1);
    EXPECT_EQ(c.mdays, 0xfffffffe);
    EXPECT_EQ(c.wdays, 0x7f);
    EXPECT_EQ(c.flags, CRON_DOM_STAR | CRON_DOW_STAR);

    c = parse_ok("1-10/3,59 0 */10 jan,Mar-may,DEC sun");
    EXPECT_EQ(c.minutes, (1ull << 1) | (1ull << 4) | (1ull << 7) | (1ull << 10) | (1ull << 59));
    EXPECT_EQ(c.mdays, (1u << 1) | (1u << 11) | (1u << 21) | (1u << 31));
    EXPECT_EQ(c.months, (1u << 1) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 12));
    EXPECT_EQ(c.wdays, 1);
    EXPECT_EQ(c.flags, CRON_DOM_STAR);

    /* 7 is Sunday too; ranges through 7 wrap into Sunday. */
    EXPECT_EQ(parse_ok("0 0 * * 7").wdays, 1);
    EXPECT_EQ(parse_ok("0 0 * * 5-7").wdays, (1 << 5) | (1 << 6) | 1);
    EXPECT_EQ(parse_ok("0 0 * * */2").wdays, 0x55); /* 0 2 4 6 */
    /* cronie's a/n: from a to the end. */
    EXPECT_EQ(parse_ok("50/5 * * * *").minutes, (1ull << 50) | (1ull << 55));
    EXPECT_EQ(parse_ok("0 20/2 * * *").hours, (1u << 20) | (1u << 22));
}
END_TEST

START_TEST(test_parse_nicknames) {
    struct cron a = parse_ok("@yearly"), b = parse_ok("0 0 1 1 *");
    ck_assert(same(a, b));
    a = parse_ok("@ANNUALLY");
    ck_assert(same(a, b));
    a = parse_ok("@monthly"), b = parse_ok("0 0 1 * *");
    ck_assert(same(a, b));
    a = parse_ok(" @weekly "), b = parse_ok("0 0 * * 0");
    ck_assert(same(a, b));
    a = parse_ok("@daily"), b = parse_ok("0 0 * * *");
    ck_assert(same(a, b));
    a = parse_ok("@midnight");
    ck_assert(same(a, b));
    a = parse_ok("@hourly"), b = parse_ok("0 * * * *");
    ck_assert(same(a, b));
}
END_TEST

START_TEST(test_parse_errors) {
    ck_assert_str_eq(parse_err(""), "empty cron expression");
    ck_assert_str_eq(parse_err("   "), "empty cron expression");
    ck_assert(strstr(parse_err("* * * *"), "too few fields"));
    ck_assert(strstr(parse_err("* * * * * /bin/true"), "too many fields"));
    ck_assert_str_eq(parse_err("60 * * * *"), "minute: 60 is out of range 0-59");
    ck_assert_str_eq(parse_err("0 24 * * *"), "hour: 24 is out of range 0-23");
    ck_assert_str_eq(parse_err("0 0 32 * *"), "day-of-month: 32 is out of range 1-31");
    ck_assert_str_eq(parse_err("0 0 0 * *"), "day-of-month: 0 is out of range 1-31");
    ck_assert_str_eq(parse_err("0 0 * 13 *"), "month: 13 is out of range 1-12");
    ck_assert_str_eq(parse_err("0 0 * * 8"), "day-of-week: 8 is out of range 0-7");
    ck_assert_str_eq(parse_err("0 0 * foo *"), "month: unknown name \"foo\"");
    ck_assert_str_eq(parse_err("0 0 * * MONDAY"), "day-of-week: unknown name \"MONDAY\"");
    ck_assert_str_eq(parse_err("0 0 * * JAN"), "day-of-week: unknown name \"JAN\"");
    ck_assert_str_eq(parse_err("0 MON * * *"), "hour: unknown name \"MON\"");
    ck_assert_str_eq(parse_err("5-1 * * * *"), "minute: range goes backwards \"5-1\"");
    ck_assert_str_eq(parse_err("5- * * * *"), "minute: range without an end: \"5-\"");
    ck_assert_str_eq(parse_err("*/0 * * * *"), "minute: bad step in \"*/0\"");
    ck_assert_str_eq(parse_err("*/61 * * * *"), "minute: bad step in \"*/61\"");
    ck_assert_str_eq(parse_err("*/ * * * *"), "minute: bad step in \"*/\"");
    ck_assert_str_eq(parse_err("1,,2 * * * *"), "minute: empty list item");
    ck_assert_str_eq(parse_err("1, * * * *"), "minute: empty list item");
    ck_assert_str_eq(parse_err("1x * * * *"), "minute: unexpected text in \"1x\"");
    ck_assert_str_eq(parse_err("** * * * *"), "minute: unexpected text in \"**\"");
    ck_assert_str_eq(parse_err("99999 * * * *"), "minute: 99999 is out of range 0-59");
    ck_assert_str_eq(parse_err("9999999999 * * * *"), "minute: number too large: \"9999999999\"");
    ck_assert_str_eq(parse_err("? * * * *"), "minute: expected a number at \"?\"");
    ck_assert_str_eq(parse_err("@reboot"), "unknown nickname \"@reboot\"");
    ck_assert_str_eq(parse_err("@every 5m"), "unknown nickname \"@every 5m\"");
    /* A zero-length error buffer is allowed. */
    struct cron c;
    ck_assert_int_eq(cron_parse(&c, "x", 1, NULL, 0), -1);
    /* Not NUL-terminated: only len bytes count. */
    ck_assert_int_eq(cron_parse(&c, "0 0 * * *junk", 9, NULL, 0), 0);
}
END_TEST

/* Callers keep the text as written (16 bits of length in a timer's action):
 * an expression padded past CRON_TEXT_MAX is refused, not parsed. */
START_TEST(test_parse_text_max) {
    char text[CRON_TEXT_MAX + 2];
    struct cron c;
    char err[200];
    memset(text, ' ', sizeof text);
    memcpy(text, "* * * * *", 9);
    ck_assert_int_eq(cron_parse(&c, text, CRON_TEXT_MAX, err, sizeof err), 0);
    ck_assert_int_eq(cron_parse(&c, text, CRON_TEXT_MAX + 1, err, sizeof err), -1);
    ck_assert(strstr(err, "longer than"));
}
END_TEST

START_TEST(test_next_basic) {
    check_next("* * * * *", "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z"); /* strictly after */
    check_next("* * * * *", "2024-05-01T10:00:59.999Z", "2024-05-01T10:01:00Z");
    check_next("30 * * * *", "2024-05-01T10:30:00Z", "2024-05-01T11:30:00Z");
    check_next("0 0 * * *", "2024-12-31T23:59:00Z", "2025-01-01T00:00:00Z"); /* year end */
    check_next("*/15 9-17 * * *", "2024-05-01T17:45:00Z", "2024-05-02T09:00:00Z");
    check_next("0 12 * * *", "1969-12-31T11:00:00Z", "1969-12-31T12:00:00Z"); /* before 1970 */
    check_next("@hourly", "2024-05-01T23:30:00Z", "2024-05-02T00:00:00Z");
    check_next("@weekly", "2024-05-01T00:00:00Z", "2024-05-05T00:00:00Z"); /* a Sunday */
    check_next("@yearly", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z");
}
END_TEST

START_TEST(test_next_month_ends) {
    /* The 31st exists in 7 months only: Jan 31 -> Mar 31 -> May 31 -> Jul 31 -> Aug 31. */
    check_next("0 0 31 * *", "2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z");
    check_next("0 0 31 * *", "2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z");
    check_next("0 0 31 * *", "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z");
    check_next("0 0 31 * *", "2024-12-31T00:00:00Z", "2025-01-31T00:00:00Z");
    check_next("0 0 30 * *", "2024-01-30T00:00:00Z", "2024-03-30T00:00:00Z"); /* skips Feb */
    check_next("59 23 28-31 * *", "2023-02-28T23:59:00Z", "2023-03-28T23:59:00Z");
    check_next("59 23 28-31 * *", "2024-02-28T23:59:00Z", "2024-02-29T23:59:00Z");
    check_next("0 0 1 * *", "2024-04-30T23:59:00Z", "2024-05-01T00:00:00Z");
    check_next("0 0 1 * *", "2024-04-01T00:00:00Z", "2024-05-01T00:00:00Z");
}
END_TEST

START_TEST(test_next_leap_years) {
    /* February 29 only every four years, and not in 2100. */
    check_next("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    check_next("0 0 29 FEB *", "2023-06-15T12:00:00Z", "2024-02-29T00:00:00Z");
    check_next("0 0 29 2 *", "2096-02-29T00:00:00Z", "2104-02-29T00:00:00Z");
    check_next("0 0 29 2 *", "1999-01-01T00:00:00Z", "2000-02-29T00:00:00Z"); /* 2000 is leap */
    check_next("0 0 29 2 *", "2016-01-01T00:00:00Z", "2016-02-29T00:00:00Z");
    /* '*' first, so AND: February 1 or 29 that is a Monday. */
    struct cron c = parse_ok("0 0 */28 2 MON");
    int64_t t = cron_next(&c, ms("2016-03-01T00:00:00Z"));
    struct cron_tm tm;
    cron_gmtime(t, &tm);
    EXPECT_EQ(tm.month, 2);
    EXPECT_EQ(tm.wday, 1);
    ck_assert(tm.day == 1 || tm.day == 29);
    check_next("0 0 */28 2 MON", "2016-03-01T00:00:00Z", "2021-02-01T00:00:00Z");
}
END_TEST

START_TEST(test_next_dow_dom) {
    /* Both restricted: the 13th OR any Friday. 2024-09-13 is a Friday. */
    check_next("0 0 13 * FRI", "2024-09-01T00:00:00Z", "2024-09-06T00:00:00Z");
    check_next("0 0 13 * FRI", "2024-10-11T00:00:00Z", "2024-10-13T00:00:00Z"); /* a Sunday */
    check_next("0 0 13 * 5", "2024-10-13T00:00:00Z", "2024-10-18T00:00:00Z");
    /* Day-of-week restricted only: AND with '*' is Fridays. */
    check_next("0 0 * * 5", "2024-10-11T00:00:00Z", "2024-10-18T00:00:00Z");
    /* Day-of-month restricted only. */
    check_next("0 0 13 * *", "2024-10-11T00:00:00Z", "2024-10-13T00:00:00Z");
    /* A starred day-of-month with a step still means AND (Vixie): odd days that are Mondays. */
    check_next("0 0 */2 * MON", "2024-10-01T00:00:00Z", "2024-10-07T00:00:00Z");
    check_next("0 0 */2 * MON", "2024-10-07T00:00:00Z", "2024-10-21T00:00:00Z");
    /* Sunday as 0 and as 7. */
    check_next("0 0 * * 7", "2024-10-07T00:00:00Z", "2024-10-13T00:00:00Z");
    check_next("0 0 * * SUN", "2024-10-07T00:00:00Z", "2024-10-13T00:00:00Z");
    /* Weekdays at 09:30 from a Friday evening: Monday. */
    check_next("30 9 * * 1-5", "2024-10-11T18:00:00Z", "2024-10-14T09:30:00Z");
    /* Last days with a weekday: the OR rule also picks Sundays in November. */
    check_next("0 0 30,31 11 0", "2024-11-01T00:00:00Z", "2024-11-03T00:00:00Z");
}
END_TEST

START_TEST(test_next_never) {
    struct cron c = parse_ok("0 0 30 2 *"); /* February 30 */
    EXPECT_EQ(cron_next(&c, ms("2024-01-01T00:00:00Z")), -1);
    c = parse_ok("0 0 31 4,6,9,11 *");
    EXPECT_EQ(cron_next(&c, 0), -1);
    c = parse_ok("* * * * *");
    EXPECT_EQ(cron_next(&c, CRON_MAX_MS + 1), -1);
    EXPECT_EQ(cron_next(&c, CRON_MIN_MS - 1), -1);
    EXPECT_EQ(cron_next(&c, CRON_MIN_MS), CRON_MIN_MS + 60000);
    EXPECT_EQ(cron_next(&c, CRON_MAX_MS - 60000), CRON_MAX_MS - 59999);
    EXPECT_EQ(cron_next(&c, CRON_MAX_MS - 59999), -1); /* 10000-01-01T00:00Z is past the range */
    /* Found by tests/fuzz/fuzz_cron.c: the next 3 June that is a Wednesday
     * after September 9999 is in year 10000, past the range: never. */
    c = parse_ok("59 23 3 6 3");
    EXPECT_EQ(cron_next(&c, ms("9999-09-14T22:47:57.330Z")), -1);
    struct cron zero = {0};
    EXPECT_EQ(cron_next(&zero, 0), -1);
}
END_TEST

/* Random expressions against the brute-force matcher: any two-month window. */
START_TEST(test_next_random) {
    static const char *const exprs[] = {"*/7 */5 * * *",     "0 0 1,15 * 3", "15 3 * 1,7 MON-WED",
                                        "0 */6 10-20 * FRI", "5 4 * * SUN",  "0 0 29 2 *",
                                        "59 23 31 12 *",     "0 0 * * 6,0",  "1-59/2 22 * * *"};
    uint64_t seed = 42;
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        struct cron c;
        ck_assert_int_eq(cron_parse(&c, exprs[i], strlen(exprs[i]), NULL, 0), 0);
        for (int k = 0; k < 20; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            int64_t after = (int64_t)(seed >> 24) % (INT64_C(60) * 365 * 86400000); /* 1970..2030 */
            int64_t got = cron_next(&c, after);
            ck_assert(got > after && got % 60000 == 0 && matches(&c, got));
            for (int64_t t = (after / 60000 + 1) * 60000; t < got; t += 60000)
                if (matches(&c, t))
                    ck_abort_msg("%s: earlier match at %lld", exprs[i], (long long)t);
        }
    }
}
END_TEST

START_TEST(test_calendar) {
    EXPECT_EQ(cron_days_from_civil(1970, 1, 1), 0);
    EXPECT_EQ(cron_days_from_civil(2000, 3, 1), 11017);
    EXPECT_EQ(cron_days_from_civil(1969, 12, 31), -1);
    EXPECT_EQ(cron_days_in_month(2024, 2), 29);
    EXPECT_EQ(cron_days_in_month(2100, 2), 28);
    EXPECT_EQ(cron_days_in_month(2000, 2), 29);
    EXPECT_EQ(cron_days_in_month(2023, 4), 30);
    /* Round trips over 800 years of days, with weekdays stepping by one. */
    struct cron_tm prev;
    cron_gmtime(CRON_MIN_MS, &prev);
    EXPECT_EQ(prev.year, 1);
    for (int64_t d = -719162 + 1; d < 2932896; d += 97) {
        struct cron_tm tm;
        cron_gmtime(d * 86400000 + 45296789, &tm); /* 12:34:56.789 */
        EXPECT_EQ(cron_days_from_civil(tm.year, tm.month, tm.day), d);
        EXPECT_EQ(tm.hour, 12);
        EXPECT_EQ(tm.minute, 34);
        EXPECT_EQ(tm.second, 56);
        EXPECT_EQ(tm.ms, 789);
        EXPECT_EQ(tm.wday, ((d % 7) + 7 + 4) % 7);
        EXPECT_EQ(cron_timegm(&tm), d * 86400000 + 45296789);
    }
    struct cron_tm tm;
    cron_gmtime(-1, &tm); /* floor, not truncation */
    EXPECT_EQ(tm.year, 1969);
    EXPECT_EQ(tm.second, 59);
    EXPECT_EQ(tm.ms, 999);
}
END_TEST

START_TEST(test_rfc3339) {
    int64_t v;
    EXPECT_EQ(ms("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(ms("1970-01-01T00:00:01.5Z"), 1500);
    EXPECT_EQ(ms("1970-01-01t00:00:00.123456z"), 123);
    EXPECT_EQ(ms("1970-01-01 01:00:00+01:00"), 0);
    EXPECT_EQ(ms("1969-12-31T19:30:00-04:30"), 0);
    EXPECT_EQ(ms("2024-02-29T12:00:00Z"), INT64_C(1709208000000));
    EXPECT_EQ(ms("2016-12-31T23:59:60Z"), ms("2017-01-01T00:00:00Z")); /* leap second */
    static const char *const bad[] = {
        "",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00+0100",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01X00:00:00Z",
        "24-01-01T00:00:00Z",
        "2024-01-01T00:00:00Zjunk",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!cron_parse_rfc3339(bad[i], strlen(bad[i]), &v))
            ck_abort_msg("accepted %s", bad[i]);
    char buf[CRON_RFC3339_LEN + 1];
    EXPECT_EQ(cron_format_rfc3339(0, buf), 24);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    cron_format_rfc3339(ms("2024-02-29T23:59:59.999+00:00"), buf);
    ck_assert_str_eq(buf, "2024-02-29T23:59:59.999Z");
    cron_format_rfc3339(-1, buf);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
    cron_format_rfc3339(CRON_MAX_MS, buf);
    ck_assert_str_eq(buf, "9999-12-31T23:59:59.999Z");
    EXPECT_EQ(cron_format_rfc3339(CRON_MAX_MS + 1, buf), 0);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_next_speed) {
    /* February 29 across 2100 takes the longest: still far below a millisecond each. */
    struct cron c = parse_ok("0 0 29 2 *");
    int64_t t = ms("2096-03-01T00:00:00Z");
    for (int i = 0; i < 1000; i++)
        ck_assert(cron_next(&c, t) == ms("2104-02-29T00:00:00Z"));
    c = parse_ok("0 0 30 2 *"); /* never: a full 400-year scan */
    for (int i = 0; i < 100; i++)
        ck_assert(cron_next(&c, t) == -1);
}
END_TEST

static Suite *cron_suite(void) {
    Suite *s = suite_create("cron");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parse_fields);
    tcase_add_test(tc, test_parse_nicknames);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_parse_text_max);
    tcase_add_test(tc, test_next_basic);
    tcase_add_test(tc, test_next_month_ends);
    tcase_add_test(tc, test_next_leap_years);
    tcase_add_test(tc, test_next_dow_dom);
    tcase_add_test(tc, test_next_never);
    tcase_add_test(tc, test_next_random);
    tcase_add_test(tc, test_calendar);
    tcase_add_test(tc, test_rfc3339);
    tcase_add_test(tc, test_next_speed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(cron_suite());
}
