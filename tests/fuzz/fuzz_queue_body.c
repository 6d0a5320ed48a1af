/*
 * libFuzzer target for the request bodies of /queues (api/api_queue_parse.c):
 * the JSON settings of PUT /queues/{q} and the frames of a batch put
 * (POST /queues/{q}/jobs?batch=1). Beyond "no crash, no leak, no UB":
 *  - accepted settings are in the ranges docs/QUEUES.md gives, and only
 *    known bits are set; a refusal names the problem;
 *  - an accepted batch is exactly a sequence of "<len>\n<payload>\n"
 *    frames covering the body, every payload inside it;
 *  - an accepted batch ack (POST /queues/{q}/acks) has 1 to 1000 ids, none 0,
 *    and is made of digits, spaces and newlines only.
 */
#include "fuzz.h"

#include "api/api_queue_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so ASan catches any read past the end. */
    char *body = malloc(size ? size : 1);
    CHECK(body);
    memcpy(body, data, size);

    struct qsvc_settings set;
    char err[200];
    memset(&set, 0xAB, sizeof set);
    err[0] = '\0';
    const char *bad = queue_settings_parse(body, size, &set, err, sizeof err);
    if (bad) {
        CHECK(bad[0] != '\0');
    } else {
        CHECK((set.mask & ~63u) == 0); /* 32: result_ttl (issue 17) */
        CHECK(size > 0 || set.mask == 0);
        if (set.mask & QSVC_SET_MAXSIZE)
            CHECK(set.s.maxsize <= 1000000000000ull);
        if (set.mask & QSVC_SET_LEASE)
            CHECK(set.s.lease_ms >= 1 && set.s.lease_ms <= 1000000000000ull);
        if (set.mask & QSVC_SET_MAX_ATTEMPTS)
            CHECK(set.s.max_attempts <= QUEUE_MAX_ATTEMPTS_MAX);
        if (set.mask & QSVC_SET_MAX_PAYLOAD)
            CHECK(set.s.max_payload >= 1 && set.s.max_payload <= 64u * 1024 * 1024);
        if (set.mask & QSVC_SET_KEY_WINDOW)
            CHECK(set.s.key_window_ms >= 1 && set.s.key_window_ms <= 1000000000000ull);
        if (set.mask & QSVC_SET_RESULT_TTL)
            CHECK(set.s.result_ttl_ms <= 1000000000000ull); /* 0 allowed: keep none */
    }

    size_t count = 0;
    if (queue_batch_parse(body, size, NULL, &count, err, sizeof err) == 0) {
        CHECK(count >= 1 && count <= size / 3);
        struct qsvc_batch_job *jobs = malloc(count * sizeof *jobs);
        CHECK(jobs);
        size_t again = count;
        CHECK(queue_batch_parse(body, size, jobs, &again, err, sizeof err) == 0 && again == count);
        size_t off = 0;
        for (size_t i = 0; i < count; i++) {
            const char *p = jobs[i].payload;
            CHECK(p > body + off && p <= body + size);
            CHECK(p[-1] == '\n');
            for (const char *d = body + off; d < p - 1; d++)
                CHECK(*d >= '0' && *d <= '9');
            CHECK((size_t)(p - body) + jobs[i].len < size && p[jobs[i].len] == '\n');
            off = (size_t)(p - body) + jobs[i].len + 1;
        }
        CHECK(off == size);
        free(jobs);
    } else {
        CHECK(err[0] != '\0');
    }

    count = 0;
    err[0] = '\0';
    if (queue_acks_parse(body, size, NULL, &count, 1000, err, sizeof err) == 0) {
        CHECK(count >= 1 && count <= 1000 && count <= (size + 1) / 2);
        struct qsvc_ack_item *items = malloc(count * sizeof *items);
        CHECK(items);
        size_t again = count;
        CHECK(queue_acks_parse(body, size, items, &again, 1000, err, sizeof err) == 0 &&
              again == count);
        for (size_t i = 0; i < count; i++)
            CHECK(items[i].id != 0);
        for (size_t i = 0; i < size; i++)
            CHECK((body[i] >= '0' && body[i] <= '9') || body[i] == ' ' || body[i] == '\n');
        free(items);
    } else {
        CHECK(err[0] != '\0');
    }
    free(body);
    return 0;
}
