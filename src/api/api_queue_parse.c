#include "api/api_queue_parse.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *queue_settings_parse(const char *body, size_t len, struct qsvc_settings *set,
                                 char *err, size_t errlen) {
    set->mask = 0;
    if (len == 0)
        return NULL;
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        if (o)
            snprintf(err, errlen, "the body must be a JSON object of settings, not another value");
        else /* say where the JSON broke (issue 16: name the problem) */
            snprintf(err, errlen, "the body must be a JSON object of settings: %s (line %d, "
                     "column %d)", jerr.text, jerr.line, jerr.column);
        json_decref(o);
        return err;
    }
    static const struct {
        const char *name;
        unsigned bit;
        int whole;        /* a count, not seconds */
        double lo, hi;    /* inclusive; lo > 0 excludes 0 where lo_open */
        int lo_open;
    } keys[] = {
        {"maxsize", QSVC_SET_MAXSIZE, 1, 0, 1e12, 0},
        {"lease", QSVC_SET_LEASE, 0, 0, 1e9, 1},
        /* 0 (never dead) is refused, as by the config (issue 16) */
        {"max_attempts", QSVC_SET_MAX_ATTEMPTS, 1, 1, QUEUE_MAX_ATTEMPTS_MAX, 0},
        {"max_payload", QSVC_SET_MAX_PAYLOAD, 1, 1, 64.0 * 1024 * 1024, 0},
        {"key_window", QSVC_SET_KEY_WINDOW, 0, 0, 1e9, 1},
        {"result_ttl", QSVC_SET_RESULT_TTL, 0, 0, 1e9, 0},
    };
    struct queue_settings *s = &set->s;
    const char *key;
    json_t *v;
    const char *bad = NULL;
    json_object_foreach(o, key, v) {
        size_t k = 0;
        while (k < sizeof keys / sizeof keys[0] && strcmp(key, keys[k].name) != 0)
            k++;
        if (k == sizeof keys / sizeof keys[0]) {
            snprintf(err, errlen, "unknown setting '%.64s' (maxsize, lease, max_attempts, "
                     "max_payload, key_window, result_ttl)", key);
            bad = err;
            break;
        }
        double d = json_is_number(v) ? json_number_value(v) : -1;
        if (!json_is_number(v) || d < keys[k].lo || d > keys[k].hi ||
            (keys[k].lo_open && d <= keys[k].lo)) {
            if (keys[k].whole)
                snprintf(err, errlen, "%s: must be a whole number from %.0f to %.0f", key,
                         keys[k].lo, keys[k].hi);
            else
                snprintf(err, errlen, "%s: must be a number of seconds over 0, at most %.0f", key,
                         keys[k].hi);
            bad = err;
            break;
        }
        if (keys[k].whole && d != floor(d)) {
            snprintf(err, errlen, "%s: must be a whole number, got %g", key, d);
            bad = err;
            break;
        }
        set->mask |= keys[k].bit;
        switch (keys[k].bit) {
        case QSVC_SET_MAXSIZE: s->maxsize = (uint64_t)d; break;
        case QSVC_SET_LEASE: s->lease_ms = (uint64_t)ceil(d * 1000); break;
        case QSVC_SET_MAX_ATTEMPTS: s->max_attempts = (uint32_t)d; break;
        case QSVC_SET_MAX_PAYLOAD: s->max_payload = (uint32_t)d; break;
        case QSVC_SET_RESULT_TTL: s->result_ttl_ms = (uint64_t)ceil(d * 1000); break;
        default: s->key_window_ms = (uint64_t)ceil(d * 1000); break;
        }
    }
    json_decref(o);
    return bad;
}

int queue_batch_parse(const char *body, size_t len, struct qsvc_batch_job *jobs, size_t *count,
                      char *err, size_t errlen) {
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        const char *nl = memchr(body + off, '\n', len - off);
        char *end;
        if (!nl || nl == body + off || !isdigit((unsigned char)body[off])) {
            snprintf(err, errlen, "batch frame %zu: expected \"<length>\\n<payload>\\n\"", n);
            return -1;
        }
        unsigned long long plen = strtoull(body + off, &end, 10);
        if (end != nl || plen > len || (size_t)(nl + 1 - body) + plen + 1 > len ||
            nl[1 + plen] != '\n') {
            snprintf(err, errlen, "batch frame %zu: bad length or missing newline after it", n);
            return -1;
        }
        if (jobs && n < *count) {
            jobs[n].payload = nl + 1;
            jobs[n].len = (size_t)plen;
        }
        off = (size_t)(nl + 1 - body) + (size_t)plen + 1;
    }
    if (n == 0) {
        snprintf(err, errlen, "empty batch");
        return -1;
    }
    *count = n;
    return 0;
}

/* Digits at s..end as a number up to max: 0 and *v, or -1. */
static int parse_num(const char *s, const char *end, uint64_t max, uint64_t *v) {
    uint64_t x = 0;
    if (s == end || end - s > 20)
        return -1;
    for (; s < end; s++) {
        if (!isdigit((unsigned char)*s) || x > (max - (uint64_t)(*s - '0')) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return 0;
}

int queue_acks_parse(const char *body, size_t len, struct qsvc_ack_item *items, size_t *count,
                     size_t max, char *err, size_t errlen) {
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        const char *line = body + off, *nl = memchr(line, '\n', len - off);
        const char *end = nl ? nl : body + len;
        const char *sp = memchr(line, ' ', (size_t)(end - line));
        uint64_t id, attempt = 0;
        if (n == max) {
            snprintf(err, errlen, "more than %zu ids in one batch ack", max);
            return -1;
        }
        if (parse_num(line, sp ? sp : end, UINT64_MAX, &id) < 0 || id == 0 ||
            (sp && parse_num(sp + 1, end, UINT32_MAX, &attempt) < 0)) {
            snprintf(err, errlen, "ack line %zu: expected \"<id>\" or \"<id> <attempt>\", whole numbers (id over 0)", n);
            return -1;
        }
        if (items && n < *count) {
            items[n].id = id;
            items[n].attempt = (uint32_t)attempt;
            items[n].status = 0;
        }
        off = (size_t)(end - body) + (nl ? 1 : 0);
    }
    if (n == 0) {
        snprintf(err, errlen, "empty batch ack: one job id per line");
        return -1;
    }
    *count = n;
    return 0;
}
