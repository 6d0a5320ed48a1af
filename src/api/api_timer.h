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
struct buf;
struct http_request;
struct store_client;

/* Create the task engine (s->tsvc) and fill client for store_open(). */
int tsvc_init(struct server *s, struct store_client *client);

/* After store_open (and qsvc_start): journal from now on, arm the timers
 * (missed ticks per their policy). */
void tsvc_start(struct server *s);

/* SIGTERM: answer every waiting await now (503). */
void tsvc_drain(struct server *s);

/* Free the engine (after store_close). */
void tsvc_close(struct server *s);

enum handler_result api_timers(struct conn *c, const struct http_request *req, const char *body,
                               size_t body_len);

int tsvc_metrics(struct server *s, struct buf *out);

#endif
