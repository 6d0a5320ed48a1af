/*
 * api_queue_parse: the request bodies of /queues, parsed without a
 * connection (pure: no I/O, no service), so that api_queue.c only maps the
 * outcome to an answer and tests/fuzz/fuzz_queue_body.c can fuzz them.
 */
#ifndef AWAITD_API_QUEUE_PARSE_H
#define AWAITD_API_QUEUE_PARSE_H

#include "svc/qsvc.h"

#include <stddef.h>

/* Settings from a PUT /queues/{q} JSON body into set (an empty body sets
 * none). NULL, or an error text (in err, errlen bytes) naming the setting.
 * Counts must be whole numbers: 2.7 is refused, not truncated to 2. */
const char *queue_settings_parse(const char *body, size_t len, struct qsvc_settings *set,
                                 char *err, size_t errlen);

/* A batch put body, frames "<len>\n<payload>\n": checks it whole. With jobs
 * NULL, *count is set to the number of frames; with jobs (count entries)
 * it fills their payload and len too. 0, or -1 with err naming the frame
 * (an empty body is an error). */
int queue_batch_parse(const char *body, size_t len, struct qsvc_batch_job *jobs, size_t *count,
                      char *err, size_t errlen);

/* A batch ack body (POST /queues/{q}/acks): one line per job, "<id>\n" or
 * "<id> <attempt>\n" (the first two fields of a framed reserve's header
 * line; attempt 0 or absent: any), the last newline optional. With items
 * NULL, *count is set to the number of lines; with items (count entries)
 * it fills their id and attempt too. 0, or -1 with err naming the line (an
 * empty body, an id 0, more than max lines are errors). */
int queue_acks_parse(const char *body, size_t len, struct qsvc_ack_item *items, size_t *count,
                     size_t max, char *err, size_t errlen);

#endif
