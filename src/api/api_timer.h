/*
 * api_timer: /timers over HTTP (docs/TIMERS.md). Background timers whose
 * action puts a payload into a queue: one-shot (after, at) or periodic
 * (every, cron), cancellable and awaitable, journaled through the store.
 * The pure engine is task.h; records are task_journal.h.
 */
#ifndef AWAITD_API_TIMER_H
#define AWAITD_API_TIMER_H

#include "net/conn.h"

#include <stddef.h>

struct server;
struct store;
struct qsvc;
struct http_request;

/* Create the task engine and register it with store (replay at its start).
 * A timer's action puts into queues. NULL (logged). */
struct tsvc *tsvc_new(struct server *s, struct store *store, struct qsvc *queues);

/* The timers as a service, ctx = the tsvc: start journals from then on and
 * arms the timers (missed ticks per their policy); drain answers every
 * waiting await (503); close frees the engine. Register after the queues. */
extern const struct service_ops tsvc_service;

/* Every /timers request; ctx = the tsvc. */
enum handler_result api_timers(void *ctx, struct conn *c, const struct http_request *req,
                               const char *body, size_t body_len);

#endif
