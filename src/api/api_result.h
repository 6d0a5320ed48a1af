/*
 * api_result: the /queues routes of job results and job listing (issue 17,
 * docs/QUEUES.md "Results" and "Seeing jobs"):
 *   POST /queues/{q}/jobs/{id}/ack    with a body: ack keeping a result
 *   POST /queues/{q}/jobs/{id}/nack   with a body or Job-Error: nack with an error text
 *   GET  /queues/{q}/jobs/{id}/result?wait=S   the job's outcome, long-polled
 *   GET  /queues/{q}/jobs?state=ready|reserved|delayed|dead&limit=N&after=C
 * api_queue.c hands these over and keeps the rest of /queues.
 */
#ifndef AWAITD_API_RESULT_H
#define AWAITD_API_RESULT_H

#include "net/conn.h"
#include "svc/qsvc.h"

#include <stddef.h>
#include <stdint.h>

struct http_request;

/* A /queues/{q}/jobs... path, parsed by api_queue.c. */
struct api_jobpath {
    const char *name; /* the queue */
    size_t name_len;
    uint64_t id;      /* jobs/{id}, or 0 */
    const char *verb; /* what follows jobs/{id}/, or NULL */
    size_t verb_len;
    int bare;         /* the path ends at /jobs */
};

/* Take the request if it is one of the routes above: 1 and *hr set; 0 leaves it to api_queue.c. */
int api_result_take(struct conn *c, struct qsvc *svc, const struct api_jobpath *p,
                    const struct http_request *req, const char *body, size_t body_len,
                    enum handler_result *hr);

#endif
