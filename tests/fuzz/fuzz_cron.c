/*
 * libFuzzer target for cron expressions and RFC 3339 times (engine/cron.c).
 * The first 8 input bytes are a start time (folded into the range cron
 * accepts), the rest the text. Beyond "no crash, no UB":
 *  - a parsed schedule's next time is after the start, on a whole minute,
 *    matches the schedule by an independent reading of the masks (Vixie's
 *    day rule), and is the same when asked from any time between;
 *  - a refusal names the problem;
 *  - an RFC 3339 time that parses formats and parses back to itself.
 */
#include "fuzz.h"

#include "engine/cron.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int matches(const struct cron *c, int64_t t) {
    struct cron_tm tm;
    cron_gmtime(t, &tm);
    if (!(c->minutes >> tm.minute & 1) || !(c->hours >> tm.hour & 1) ||
        !(c->months >> tm.month & 1))
        return 0;
    int dom = c->mdays >> tm.day & 1, dow = c->wdays >> tm.wday & 1;
    if (!(c->flags & CRON_DOM_STAR) && !(c->flags & CRON_DOW_STAR))
        return dom || dow;
    return dom && dow;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8)
        return 0;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | data[i];
    int64_t span = CRON_MAX_MS - CRON_MIN_MS;
    int64_t after = CRON_MIN_MS + (int64_t)(u % (uint64_t)span);
    data += 8, size -= 8;
    /* An exact-size copy, so ASan catches any read past the end. */
    char *s = malloc(size ? size : 1);
    CHECK(s);
    memcpy(s, data, size);

    struct cron c;
    char err[200];
    err[0] = '\0';
    if (cron_parse(&c, s, size, err, sizeof err) == 0) {
        CHECK(size <= CRON_TEXT_MAX);
        CHECK((c.minutes >> 60) == 0 && (c.hours >> 24) == 0 && (c.mdays & 1) == 0 &&
              (c.months & 1) == 0 && (c.months >> 13) == 0 && (c.wdays >> 7) == 0);
        int64_t next = cron_next(&c, after);
        if (next != -1) {
            CHECK(next > after && next <= CRON_MAX_MS && next % 60000 == 0);
            CHECK(matches(&c, next));
            int64_t mid = after + (next - after) / 2;
            CHECK(cron_next(&c, mid) == next);
            CHECK(cron_next(&c, next - 1) == next);
            int64_t after_next = cron_next(&c, next);
            CHECK(after_next == -1 || (after_next > next && matches(&c, after_next)));
        }
    } else {
        CHECK(err[0] != '\0');
    }

    int64_t ms;
    if (cron_parse_rfc3339(s, size, &ms) == 0) {
        char out[CRON_RFC3339_LEN + 1];
        size_t n = cron_format_rfc3339(ms, out);
        if (n) {
            int64_t back;
            CHECK(n == CRON_RFC3339_LEN && cron_parse_rfc3339(out, n, &back) == 0 && back == ms);
        }
    }
    char out[CRON_RFC3339_LEN + 1];
    if (cron_format_rfc3339(after, out)) {
        int64_t back;
        CHECK(cron_parse_rfc3339(out, CRON_RFC3339_LEN, &back) == 0 && back == after);
    }
    free(s);
    return 0;
}
