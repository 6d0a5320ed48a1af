/*
 * libFuzzer target for the JSON body of POST /timers
 * (api/api_timer_spec.c, with the cron and RFC 3339 parsers and
 * payload_base64 under it). Beyond "no crash, no leak, no UB", an
 * accepted spec is one the timer service can take (tsvc_spec_error finds
 * nothing): a queue, exactly one schedule, a payload within bounds, and a
 * base64 payload decodes to at most 3/4 of its text; a refusal names the
 * field.
 */
#include "fuzz.h"

#include "api/api_timer_spec.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *o = json_loadb((const char *)data, size, 0, &jerr);
    if (!o)
        return 0;
    if (!json_is_object(o)) {
        json_decref(o);
        return 0;
    }
    struct tsvc_spec spec;
    char err[256];
    int st = 12345;
    char *decoded = NULL;
    int rc = timer_spec_parse(o, &spec, err, sizeof err, &st, &decoded);
    if (rc == 0) {
        int st2;
        CHECK(tsvc_spec_error(&spec, &st2) == NULL);
        CHECK(spec.queue && spec.queue_len >= 1);
        CHECK(spec.kind >= TSVC_AFTER && spec.kind <= TSVC_CRON);
        CHECK(spec.payload != NULL);
        json_t *b64 = json_object_get(o, "payload_base64");
        if (json_is_string(b64)) {
            CHECK(decoded && spec.payload == decoded);
            CHECK(spec.payload_len <= json_string_length(b64) / 4 * 3);
        }
        if (spec.kind == TSVC_EVERY)
            CHECK(spec.every_ms >= 1);
        if (spec.kind == TSVC_AFTER)
            CHECK(spec.after_ms >= 0);
    } else {
        CHECK(rc == -1 && err[0] != '\0');
        CHECK(st == TSVC_INVALID || st == TSVC_TOOBIG);
    }
    free(decoded);
    json_decref(o);
    return 0;
}
