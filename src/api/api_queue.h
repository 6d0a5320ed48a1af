/*
 * api_queue: /queues over HTTP (docs/QUEUES.md). HTTP only: it parses
 * requests, calls the queue seam (svc/qsvc.h, which also declares
 * qsvc_new, qsvc_service and qsvc_engine) and renders the outcomes.
 */
#ifndef AWAITD_API_QUEUE_H
#define AWAITD_API_QUEUE_H

#include "net/conn.h"
#include "svc/qsvc.h"

#include <stddef.h>

struct http_request;

/* Every /queues request; ctx = the qsvc. */
enum handler_result api_queues(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len);

#endif
