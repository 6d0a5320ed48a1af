/*
 * api_timer_spec: the JSON body of POST /timers into a tsvc_spec, without
 * a connection (pure: no I/O, no service), so that api_timer.c only maps
 * the outcome to an answer and tests/fuzz/fuzz_timer_body.c can fuzz it.
 */
#ifndef AWAITD_API_TIMER_SPEC_H
#define AWAITD_API_TIMER_SPEC_H

#include "svc/tsvc.h"

#include <jansson.h>
#include <stddef.h>

/*
 * The body's object o into spec (its strings point into o, which the
 * caller frees after the call). 0, or -1 with err naming the field and
 * *status the TSVC_* status for it (TSVC_INVALID, or TSVC_TOOBIG for a
 * payload too big). A payload_base64 is decoded into *decoded, a new
 * buffer the caller frees after the call (it may be set on -1 too; NULL
 * it first).
 */
int timer_spec_parse(json_t *o, struct tsvc_spec *spec, char *err, size_t errlen, int *status,
                     char **decoded);

#endif
