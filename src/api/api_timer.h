/*
 * api_timer: /timers over HTTP (docs/TIMERS.md). It parses requests,
 * calls the timer service (svc/tsvc.h), and renders what the service
 * answers; it keeps no timers itself.
 */
#ifndef AWAITD_API_TIMER_H
#define AWAITD_API_TIMER_H

#include "net/conn.h"

#include <stddef.h>

struct http_request;

/* Every /timers request; ctx = the struct tsvc. */
enum handler_result api_timers(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len);

#endif
