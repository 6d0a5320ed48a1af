/*
 * crontab(5) parsing, next-fire computation and the UTC calendar; cron.h
 * is the contract.
 *
 * cron_next() works on the calendar, not on minutes: from the candidate
 * minute it finds the next allowed month, then within it the next
 * matching day, hour and minute, each with one bit scan of a mask. A
 * month's matching days are computed as a 31-bit mask at once (day of
 * month bits, combined with the weekdays laid over that month), so even a
 * schedule that matches once in 8 years (February 29 and a weekday, or
 * February 29 across 2100) costs a few thousand cheap steps.
 */
#include "engine/cron.h"

#include <stdio.h>
#include <string.h>

/* ---- calendar ----------------------------------------------------------- */

/* Floor division and modulo: C's truncate the wrong way before 1970. */
static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t cron_days_from_civil(int64_t y, int m, int d) {
    /* Hinnant: count years from March, so the leap day is the year's last. */
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days) {
    return (int)(days - floor_div(days + 4, 7) * 7 + 4);
}

static int is_leap(int64_t y) {
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

int cron_days_in_month(int64_t y, int m) {
    static const unsigned char dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 ? 28 + is_leap(y) : dim[m];
}

void cron_gmtime(int64_t ms, struct cron_tm *tm) {
    int64_t days = floor_div(ms, 86400000);
    int64_t in_day = ms - days * 86400000;
    civil_from_days(days, &tm->year, &tm->month, &tm->day);
    tm->hour = (int)(in_day / 3600000);
    tm->minute = (int)(in_day / 60000 % 60);
    tm->second = (int)(in_day / 1000 % 60);
    tm->ms = (int)(in_day % 1000);
    tm->wday = weekday(days);
}

int64_t cron_timegm(const struct cron_tm *tm) {
    int64_t days = cron_days_from_civil(tm->year, tm->month, tm->day);
    return ((days * 24 + tm->hour) * 60 + tm->minute) * 60000 + tm->second * 1000 + tm->ms;
}

/* ---- parsing ------------------------------------------------------------ */

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct field {
    const char *name;         /* for error messages, as crontab(5) names the field */
    int lo, hi;               /* allowed values */
    const char *const *names; /* three-letter names, or NULL */
    int nnames;               /* entries of names */
    int name_base;            /* value of names[0] */
};

static const struct field fields[5] = {
    {"minute", 0, 59, NULL, 0, 0},          {"hour", 0, 23, NULL, 0, 0},
    {"day-of-month", 1, 31, NULL, 0, 0},    {"month", 1, 12, month_names, 12, 1},
    {"day-of-week", 0, 7, day_names, 7, 0},
};

static int is_blank(char ch) {
    return ch == ' ' || ch == '\t';
}

static char lower(char ch) {
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static int is_digit(char ch) {
    return ch >= '0' && ch <= '9';
}

static int is_alpha(char ch) {
    ch = lower(ch);
    return ch >= 'a' && ch <= 'z';
}

/* Case-insensitive: does s[0..len) equal the NUL-terminated lowercase word? */
static int word_eq(const char *s, size_t len, const char *word) {
    size_t i = 0;
    for (; i < len && word[i]; i++)
        if (lower(s[i]) != word[i])
            return 0;
    return i == len && !word[i];
}

/* The parse error: "field: what" into err. Always returns -1. */
static int fail(char *err, size_t errlen, const char *field, const char *what, const char *tok,
                size_t toklen) {
    if (!errlen)
        return -1;
    int n = (int)(toklen > 20 ? 20 : toklen); /* a quote, not the whole input */
    snprintf(err, errlen, "%s%s%s%s%.*s%s", field ? field : "", field ? ": " : "", what,
             tok ? " \"" : "", tok ? n : 0, tok ? tok : "", tok ? "\"" : "");
    return -1;
}

/* A number or, where the field has them, a name, at *p (< end). */
static int parse_value(const struct field *f, const char **p, const char *end, int *out, char *err,
                       size_t errlen) {
    const char *s = *p;
    if (is_digit(*s)) {
        int v = 0;
        while (s < end && is_digit(*s)) {
            if (v > 9999) /* keeps v far from overflow; out of range anyway */
                return fail(err, errlen, f->name, "number too large:", *p, (size_t)(end - *p));
            v = v * 10 + (*s++ - '0');
        }
        if (v < f->lo || v > f->hi) {
            char what[48];
            snprintf(what, sizeof what, "%d is out of range %d-%d", v, f->lo, f->hi);
            return fail(err, errlen, f->name, what, NULL, 0);
        }
        *out = v;
    } else if (is_alpha(*s)) {
        while (s < end && is_alpha(*s))
            s++;
        int i = 0;
        while (i < f->nnames && !word_eq(*p, (size_t)(s - *p), f->names[i]))
            i++;
        if (i == f->nnames)
            return fail(err, errlen, f->name, "unknown name", *p, (size_t)(s - *p));
        *out = f->name_base + i;
    } else {
        return fail(err, errlen, f->name, "expected a number at", s, (size_t)(end - s));
    }
    *p = s;
    return 0;
}

/* One list item: '*', 'a', 'a-b', each with an optional '/step'. */
static int parse_item(const struct field *f, const char *p, const char *end, uint64_t *bits,
                      char *err, size_t errlen) {
    const char *item = p;
    int lo, hi, step = 1;
    if (p == end)
        return fail(err, errlen, f->name, "empty list item", NULL, 0);
    if (*p == '*') {
        lo = f->lo;
        hi = f->hi;
        p++;
    } else {
        if (parse_value(f, &p, end, &lo, err, errlen))
            return -1;
        hi = lo;
        if (p < end && *p == '-') {
            if (++p == end)
                return fail(err, errlen, f->name, "range without an end:", item,
                            (size_t)(end - item));
            if (parse_value(f, &p, end, &hi, err, errlen))
                return -1;
            if (hi < lo)
                return fail(err, errlen, f->name, "range goes backwards", item,
                            (size_t)(end - item));
        } else if (p < end && *p == '/') {
            hi = f->hi; /* cronie's "a/n": from a to the end of the field */
        }
    }
    if (p < end && *p == '/') {
        const char *s = ++p;
        step = 0;
        while (p < end && is_digit(*p) && step <= f->hi + 1)
            step = step * 10 + (*p++ - '0');
        if (p == s || step < 1 || step > f->hi - f->lo + 1 || (p < end && is_digit(*p)))
            return fail(err, errlen, f->name, "bad step in", item, (size_t)(end - item));
    }
    if (p != end)
        return fail(err, errlen, f->name, "unexpected text in", item, (size_t)(end - item));
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << v;
    return 0;
}

static int parse_field(const struct field *f, const char *p, const char *end, uint64_t *bits,
                       char *err, size_t errlen) {
    *bits = 0;
    for (;;) {
        const char *comma = p;
        while (comma < end && *comma != ',')
            comma++;
        if (parse_item(f, p, comma, bits, err, errlen))
            return -1;
        if (comma == end)
            return 0;
        p = comma + 1;
    }
}

static const struct {
    const char *name;
    const char *expr;
} nicknames[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

int cron_parse(struct cron *c, const char *s, size_t len, char *err, size_t errlen) {
    const char *end = s + len;
    memset(c, 0, sizeof *c); /* padding too, for callers that store the bytes */
    if (len > CRON_TEXT_MAX) /* callers keep the text as written: never cut it short */
        return fail(err, errlen, NULL, "longer than " CRON_STR(CRON_TEXT_MAX) " bytes", NULL, 0);
    while (s < end && is_blank(*s))
        s++;
    while (end > s && is_blank(end[-1]))
        end--;
    if (s == end)
        return fail(err, errlen, NULL, "empty cron expression", NULL, 0);
    if (*s == '@') {
        for (size_t i = 0; i < sizeof nicknames / sizeof nicknames[0]; i++)
            if (word_eq(s, (size_t)(end - s), nicknames[i].name)) {
                const char *e = nicknames[i].expr;
                size_t n = 0;
                while (e[n])
                    n++;
                return cron_parse(c, e, n, err, errlen);
            }
        return fail(err, errlen, NULL, "unknown nickname", s, (size_t)(end - s));
    }

    const char *start[6], *stop[6];
    int n = 0;
    for (const char *p = s; p < end && n < 6;) {
        start[n] = p;
        while (p < end && !is_blank(*p))
            p++;
        stop[n++] = p;
        while (p < end && is_blank(*p))
            p++;
    }
    if (n != 5) {
        return fail(err, errlen, NULL,
                    n < 5 ? "too few fields: want minute hour day-of-month month day-of-week"
                          : "too many fields: want minute hour day-of-month month day-of-week",
                    NULL, 0);
    }
    uint64_t bits[5];
    for (int i = 0; i < 5; i++)
        if (parse_field(&fields[i], start[i], stop[i], &bits[i], err, errlen))
            return -1;
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->mdays = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    c->wdays = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
    c->flags =
        (uint8_t)((*start[2] == '*' ? CRON_DOM_STAR : 0) | (*start[4] == '*' ? CRON_DOW_STAR : 0));
    if (errlen)
        err[0] = '\0';
    return 0;
}

/* ---- next fire ---------------------------------------------------------- */

/* Bits 1 + 7k: the days of a month that fall on the weekday of day 1. */
#define EVERY_SEVENTH_DAY UINT64_C(0x810204081) /* bits 0, 7, 14, 21, 28, 35 */

/* Bit d set: day d (1..31) of month m of year y matches c. */
static uint32_t month_day_mask(const struct cron *c, int64_t y, int m) {
    uint64_t valid = (UINT64_C(1) << (cron_days_in_month(y, m) + 1)) - 2;
    uint64_t dom = c->mdays & valid;
    int w1 = weekday(cron_days_from_civil(y, m, 1));
    uint64_t dow = 0;
    for (int k = 0; k < 7; k++)
        if (c->wdays >> k & 1)
            dow |= EVERY_SEVENTH_DAY << (1 + (k - w1 + 7) % 7);
    dow &= valid;
    return (uint32_t)(c->flags & (CRON_DOM_STAR | CRON_DOW_STAR) ? dom & dow : dom | dow);
}

/* Index of the lowest bit of m at or above from, or -1. */
static int next_bit(uint64_t m, int from) {
    if (from > 63)
        return -1;
    m &= ~((UINT64_C(1) << from) - 1);
    return m ? __builtin_ctzll(m) : -1;
}

int64_t cron_next(const struct cron *c, int64_t after_ms) {
    if (after_ms < CRON_MIN_MS || after_ms > CRON_MAX_MS || !c->minutes || !c->hours ||
        !(c->months & 0x1ffe))
        return -1;
    int64_t minute = floor_div(after_ms, 60000) + 1; /* strictly after */
    int64_t days = floor_div(minute, 1440);
    int in_day = (int)(minute - days * 1440);
    int hour = in_day / 60, min = in_day % 60;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    const int64_t last_year = y + 401; /* one whole 400-year cycle and a bit */

    for (;;) {
        if (y > last_year)
            return -1;
        int nm = next_bit(c->months, m);
        if (nm != m) {
            if (nm < 0) {
                y++;
                nm = __builtin_ctz(c->months);
            }
            m = nm;
            d = 1;
            hour = min = 0;
        }
        int nd = next_bit(month_day_mask(c, y, m), d);
        if (nd < 0) { /* nothing left this month: from the first of the next */
            if (++m > 12) {
                m = 1;
                y++;
            }
            d = 1;
            hour = min = 0;
            continue;
        }
        if (nd != d) {
            d = nd;
            hour = min = 0;
        }
        int nh = next_bit(c->hours, hour);
        if (nh < 0) { /* past the day's last hour: next day (d 32 ends the month) */
            d++;
            hour = min = 0;
            continue;
        }
        if (nh != hour) {
            hour = nh;
            min = 0;
        }
        int nmin = next_bit(c->minutes, min);
        if (nmin < 0) {
            hour++;
            min = 0;
            continue;
        }
        int64_t t = ((cron_days_from_civil(y, m, d) * 24 + hour) * 60 + nmin) * 60000;
        /* Past year 9999 is outside the range promised (and RFC 3339 cannot
         * write it): never (found by tests/fuzz/fuzz_cron.c). */
        return t <= CRON_MAX_MS ? t : -1;
    }
}

/* ---- RFC 3339 ------------------------------------------------------------ */

/* n decimal digits at *p as an int; -1 if they are not all digits. */
static int digits(const char **p, const char *end, int n) {
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (*p >= end || !is_digit(**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

static int expect(const char **p, const char *end, char ch) {
    if (*p >= end || **p != ch)
        return -1;
    (*p)++;
    return 0;
}

int cron_parse_rfc3339(const char *s, size_t len, int64_t *unix_ms) {
    const char *p = s, *end = s + len;
    struct cron_tm tm = {0};
    int year = digits(&p, end, 4);
    if (year < 0 || expect(&p, end, '-') || (tm.month = digits(&p, end, 2)) < 1 || tm.month > 12 ||
        expect(&p, end, '-') || (tm.day = digits(&p, end, 2)) < 1)
        return -1;
    tm.year = year;
    if (year < 1 || tm.day > cron_days_in_month(tm.year, tm.month))
        return -1;
    if (p >= end || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if ((tm.hour = digits(&p, end, 2)) < 0 || tm.hour > 23 || expect(&p, end, ':') ||
        (tm.minute = digits(&p, end, 2)) < 0 || tm.minute > 59 || expect(&p, end, ':') ||
        (tm.second = digits(&p, end, 2)) < 0 || tm.second > 60)
        return -1;
    if (p < end && *p == '.') {
        int scale = 100, nd = 0;
        for (p++; p < end && is_digit(*p); p++, nd++) {
            tm.ms += (*p - '0') * scale;
            scale /= 10;
        }
        if (!nd)
            return -1;
    }
    int64_t offset_min = 0;
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = digits(&p, end, 2), om;
        if (oh < 0 || oh > 23 || expect(&p, end, ':') || (om = digits(&p, end, 2)) < 0 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (p != end)
        return -1;
    /* A leap second reads as the next second: the seconds field just carries. */
    int64_t ms = cron_timegm(&tm) - offset_min * 60000;
    if (ms < CRON_MIN_MS || ms > CRON_MAX_MS)
        return -1;
    *unix_ms = ms;
    return 0;
}

size_t cron_format_rfc3339(int64_t unix_ms, char *buf) {
    buf[0] = '\0';
    if (unix_ms < CRON_MIN_MS || unix_ms > CRON_MAX_MS)
        return 0;
    struct cron_tm tm;
    cron_gmtime(unix_ms, &tm);
    int n = snprintf(buf, CRON_RFC3339_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)tm.year,
                     tm.month, tm.day, tm.hour, tm.minute, tm.second, tm.ms);
    return n == CRON_RFC3339_LEN ? (size_t)n : 0;
}
