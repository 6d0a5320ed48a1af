/*
 * durable: HTTP answers that wait for the store (svc/store.h). The store
 * speaks no HTTP; this is where its outcomes become statuses: a journal
 * that cannot write is 503, a full disk 507.
 */
#ifndef AWAITD_DURABLE_H
#define AWAITD_DURABLE_H

#include "net/conn.h"

#include <stddef.h>

struct store;

/* 0 when the journal takes writes; else answers 503 (507: disk full) and returns -1. */
int durable_ready(struct store *st, struct conn *c);

/*
 * Send a reply now, or once the records of this loop turn are durable (the
 * reply is copied; conn_pending is set). A journal failure then answers
 * 503/507 instead.
 */
enum handler_result durable_reply(struct store *st, struct conn *c, int status, const char *ctype,
                                  const char *extra, const void *body, size_t len);

#endif
