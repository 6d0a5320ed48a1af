/*
 * cron: crontab(5) schedules and the UTC calendar arithmetic behind them.
 *
 * Pure: no clock, no time zone, no libc time functions, no I/O. Times are
 * unix milliseconds (ms since 1970-01-01T00:00:00Z, leap seconds ignored,
 * as POSIX does), always UTC, so there is no daylight-saving gap or
 * repeat to handle. The calendar is the proleptic Gregorian one, done
 * with integer day arithmetic (Howard Hinnant's days_from_civil), which
 * is exact for every year 1..9999 that RFC 3339 can write.
 *
 * Expressions. Five fields separated by blanks: minute (0-59), hour
 * (0-23), day of month (1-31), month (1-12 or JAN..DEC), day of week
 * (0-7 or SUN..SAT, 0 and 7 both Sunday). Each field is a list of items
 * separated by ','; an item is '*', a value, or a range 'a-b', optionally
 * followed by a step '/n' ('*' + '/n' steps over the whole field). As in
 * cronie, 'a/n' means 'a-max/n'. Names are three letters, in any case,
 * and may be used in ranges ("MON-FRI"). Nicknames: @yearly (@annually),
 * @monthly, @weekly, @daily (@midnight), @hourly.
 *
 * The day rule is Vixie cron's, which crontab(5) describes: if the
 * day-of-month and day-of-week fields are both restricted (neither starts
 * with '*'), a day matches when EITHER matches ("0 0 13 * FRI" fires on
 * every 13th and every Friday). Otherwise both must match, and a '*'
 * field matches every day, so "0 0 * * FRI" fires on Fridays only. Note
 * that a field starting with '*' counts as unrestricted even with a step,
 * as in Vixie cron: with '*' and '/2' as day of month and MON as day of
 * week, it fires on odd days that are Mondays.
 *
 * A schedule can parse and never match ("0 0 30 FEB *"): cron_next()
 * returns -1 for it, and callers that need a next time should refuse it.
 */
#ifndef AWAITD_CRON_H
#define AWAITD_CRON_H

#include <stddef.h>
#include <stdint.h>

/* A parsed expression: one bit per allowed value (24 bytes). */
struct cron {
    uint64_t minutes; /* bit m set: minute m (0..59) matches */
    uint32_t hours;   /* bit h: hour h (0..23) */
    uint32_t mdays;   /* bit d: day of month d (1..31); bit 0 unused */
    uint16_t months;  /* bit m: month m (1..12); bit 0 unused */
    uint8_t wdays;    /* bit d: day of week d (0..6, 0 = Sunday); 7 is folded into 0 */
    uint8_t flags;    /* CRON_DOM_STAR | CRON_DOW_STAR: the field started with '*' */
};

#define CRON_DOM_STAR 1 /* day of month unrestricted: the AND rule applies */
#define CRON_DOW_STAR 2 /* day of week unrestricted: the AND rule applies */

/* The range of unix ms accepted everywhere here: 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999Z. */
#define CRON_MIN_MS INT64_C(-62135596800000)
#define CRON_MAX_MS INT64_C(253402300799999)

/* The longest expression cron_parse() accepts, blanks included: every
 * value of every field listed one by one still fits. */
#define CRON_TEXT_MAX 512
#define CRON_STR_(x) #x
#define CRON_STR(x) CRON_STR_(x) /* a bound as a string literal, for messages */

/*
 * Parse s[0..len) (need not be NUL-terminated; leading and trailing blanks
 * are ignored; at most CRON_TEXT_MAX bytes) into *c. Returns 0, or -1
 * with a message naming the field and the problem written to err (errlen
 * bytes, NUL-terminated, may be 0), e.g. "day-of-month: 32 is out of range 1-31". *c is undefined on error.
 */
int cron_parse(struct cron *c, const char *s, size_t len, char *err, size_t errlen);

/*
 * The first matching minute strictly after after_ms, in unix ms (always a
 * whole minute). It skips whole months, days and hours that cannot match,
 * so it costs a few dozen steps, never one per minute. -1 when nothing
 * matches in the next 400 years (the Gregorian calendar, weekdays
 * included, repeats every 400 years, so that means never), or when
 * after_ms is outside CRON_MIN_MS..CRON_MAX_MS.
 */
int64_t cron_next(const struct cron *c, int64_t after_ms);

/* ---- UTC calendar ------------------------------------------------------- */

/* A broken-down UTC time. */
struct cron_tm {
    int64_t year; /* e.g. 2024 */
    int month;    /* 1..12 */
    int day;      /* 1..31 */
    int hour;     /* 0..23 */
    int minute;   /* 0..59 */
    int second;   /* 0..59 */
    int ms;       /* 0..999 */
    int wday;     /* 0..6, 0 = Sunday (output only) */
};

/* Days since 1970-01-01 of a civil date (month 1..12, day 1..31). */
int64_t cron_days_from_civil(int64_t year, int month, int day);

/* Days in month (1..12) of year, leap years included. */
int cron_days_in_month(int64_t year, int month);

/* Split unix ms into a UTC date and time (floor semantics before 1970). */
void cron_gmtime(int64_t unix_ms, struct cron_tm *tm);

/* Unix ms of a UTC date and time; fields are not range-checked (wday ignored). */
int64_t cron_timegm(const struct cron_tm *tm);

/*
 * Parse an RFC 3339 date-time ("2024-02-29T12:00:00Z",
 * "2024-02-29t14:30:00.25+02:30"; 'T', 't' or a space between date and
 * time) into unix ms. Fractions beyond milliseconds are truncated; a
 * leap second (:60) is read as the next second, as POSIX time has none.
 * Returns 0, or -1 when s[0..len) is not one, or a field is out of range
 * (February 30, hour 24, ...).
 */
int cron_parse_rfc3339(const char *s, size_t len, int64_t *unix_ms);

/*
 * Write unix_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 characters and a NUL)
 * into buf, which has room for CRON_RFC3339_LEN + 1. Returns the length,
 * or 0 (buf = "") when unix_ms is outside CRON_MIN_MS..CRON_MAX_MS.
 */
#define CRON_RFC3339_LEN 24
size_t cron_format_rfc3339(int64_t unix_ms, char *buf);

#endif
