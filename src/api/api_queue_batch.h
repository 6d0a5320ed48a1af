/*
 * api_queue_batch: POST /queues/{q}/acks, the batch ack (docs/QUEUES.md,
 * "Batch ack"): a consumer that reserved N jobs (reserve with count=N)
 * acks them in one request, one journal wait or one FCALL. api_queue.c
 * hands the route over and keeps the rest of /queues.
 */
#ifndef AWAITD_API_QUEUE_BATCH_H
#define AWAITD_API_QUEUE_BATCH_H

#include "net/conn.h"
#include "svc/qsvc.h"

#include <stddef.h>

struct http_request;

#define QUEUE_ACKS_MAX 1000 /* ids in one batch ack */

/* POST /queues/{q}/acks (q already checked as a name). */
enum handler_result api_queue_acks(struct conn *c, struct qsvc *svc, const char *q, size_t qlen,
                                   const struct http_request *req, const char *body,
                                   size_t body_len);

#endif
