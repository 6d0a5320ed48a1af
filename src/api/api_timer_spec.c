#include "api/api_timer_spec.h"

#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A non-negative number of seconds from JSON -> ms; -1 if not one. */
static int64_t json_seconds(json_t *v) {
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!isfinite(d) || d < 0 || d > 1e9)
        return -1;
    return (int64_t)ceil(d * 1000.0);
}

/* payload_base64 -> a new buffer (the caller frees it after the create).
 * -1 when v is not standard padded base64. */
static int base64_payload(json_t *v, char **out, size_t *len) {
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n % 4 || n > INT_MAX)
        return -1;
    unsigned char *p = malloc(n / 4 * 3 + 1);
    if (!p)
        return -1;
    int got = n ? EVP_DecodeBlock(p, (const unsigned char *)s, (int)n) : 0;
    if (got < 0) {
        free(p);
        return -1;
    }
    /* EVP_DecodeBlock counts the padding's zero bytes in. */
    if (n && s[n - 1] == '=')
        got -= 1 + (s[n - 2] == '=');
    *out = (char *)p;
    *len = (size_t)got;
    return 0;
}

int timer_spec_parse(json_t *o, struct tsvc_spec *spec, char *err, size_t errlen, int *status,
                     char **decoded) {
    memset(spec, 0, sizeof *spec);
    spec->payload = "";
    const char *key;
    int schedules = 0, payloads = 0;
    json_t *v;
    *status = TSVC_INVALID;
    err[0] = '\0';
    json_object_foreach(o, key, v) {
        if (strcmp(key, "queue") == 0 && json_is_string(v)) {
            spec->queue = json_string_value(v);
            spec->queue_len = json_string_length(v);
        } else if (strcmp(key, "payload") == 0 && json_is_string(v)) {
            if (payloads) {
                snprintf(err, errlen, "payload and payload_base64: give one of them");
                break;
            }
            spec->payload = json_string_value(v);
            spec->payload_len = json_string_length(v);
            payloads++;
        } else if (strcmp(key, "payload_base64") == 0 && json_is_string(v)) {
            /* Any bytes, NUL included, which a JSON string cannot carry. */
            if (payloads || base64_payload(v, decoded, &spec->payload_len) < 0) {
                snprintf(err, errlen, payloads ? "payload and payload_base64: give one of them"
                                               : "payload_base64: expected standard base64 "
                                                 "(A-Z a-z 0-9 + /, padded with =)");
                break;
            }
            spec->payload = *decoded;
            payloads++;
        } else if (strcmp(key, "after") == 0 && json_seconds(v) >= 0) {
            spec->kind = TSVC_AFTER;
            spec->after_ms = json_seconds(v);
            schedules++;
        } else if (strcmp(key, "at") == 0 && json_is_string(v)) {
            spec->kind = TSVC_AT;
            if (cron_parse_rfc3339(json_string_value(v), json_string_length(v), &spec->at_ms) < 0) {
                snprintf(err, errlen, "at: expected an RFC 3339 time such as "
                                          "2026-01-31T12:00:00Z");
                break;
            }
            schedules++;
        } else if (strcmp(key, "every") == 0 && json_seconds(v) > 0) {
            spec->kind = TSVC_EVERY;
            spec->every_ms = (uint64_t)json_seconds(v);
            schedules++;
        } else if (strcmp(key, "cron") == 0 && json_is_string(v)) {
            spec->kind = TSVC_CRON;
            spec->cron_text = json_string_value(v);
            spec->cron_len = json_string_length(v);
            char cerr[200];
            if (cron_parse(&spec->cron, spec->cron_text, spec->cron_len, cerr, sizeof cerr) < 0) {
                snprintf(err, errlen, "cron: %s", cerr);
                break;
            }
            schedules++;
        } else if (strcmp(key, "count") == 0 && json_is_integer(v) && json_integer_value(v) >= 1 &&
                   json_integer_value(v) <= UINT32_MAX) {
            spec->count = (uint32_t)json_integer_value(v);
        } else if (strcmp(key, "jitter") == 0 && json_seconds(v) >= 0 &&
                   json_seconds(v) <= TASK_JITTER_MAX_MS) {
            spec->jitter_ms = (uint32_t)json_seconds(v);
        } else if (strcmp(key, "on_full") == 0 && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "skip") || !strcmp(json_string_value(v), "retry"))) {
            spec->full_policy = strcmp(json_string_value(v), "retry") == 0 ? TASK_FULL_RETRY
                                                                           : TASK_FULL_SKIP;
        } else if (strcmp(key, "on_missed") == 0 && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "skip") ||
                    !strcmp(json_string_value(v), "fire_once"))) {
            spec->missed_policy = strcmp(json_string_value(v), "skip") == 0 ? TASK_MISSED_SKIP
                                                                           : TASK_MISSED_FIRE_ONCE;
        } else {
            static const char *const known[] = {"queue", "payload", "after", "at", "every", "cron",
                                                "count", "jitter", "on_full", "on_missed",
                                                "payload_base64"};
            int is_known = 0;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                is_known |= strcmp(key, known[k]) == 0;
            static const char *const expect[] = {
                "a queue name", "a string", "a number of seconds >= 0",
                "an RFC 3339 time such as 2026-01-31T12:00:00Z", "a number of seconds > 0",
                "a 5-field crontab(5) expression", "a whole number >= 1",
                "a number of seconds, at most one day", "\"skip\" or \"retry\"",
                "\"fire_once\" or \"skip\"", "base64 text"};
            size_t k = 0;
            while (k < sizeof known / sizeof known[0] && strcmp(key, known[k]) != 0)
                k++;
            if (is_known)
                snprintf(err, errlen, "%s: expected %s", key, expect[k]);
            else
                snprintf(err, errlen, "%.64s: unknown field", key);
            break;
        }
    }
    if (!err[0] && spec->queue_len && schedules != 1)
        snprintf(err, errlen, "schedule: give exactly one of after, at, every, cron");
    const char *why;
    int st;
    if (!err[0] && (why = tsvc_spec_error(spec, &st))) {
        snprintf(err, errlen, "%s", why);
        *status = st;
    }
    return err[0] ? -1 : 0;
}

