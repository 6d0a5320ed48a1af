#include "api/durable.h"

#include "net/http_reply.h"
#include "svc/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reply kept until its batch is durable. */
struct durable_reply {
    struct store_wait w;
    struct conn *c;
    int status;
    const char *ctype; /* a string constant */
    char extra[192];
    size_t len;
    char body[];
};

static int http_status(int st) {
    return st == STORE_NOSPACE ? 507 : 503;
}

int durable_ready(struct store *st, struct conn *c) {
    char why[256];
    int rc = store_check(st, why, sizeof why);
    if (rc == STORE_OK)
        return 0;
    reply_error(c, http_status(rc), "%s", why);
    return -1;
}

/* The client left before its batch was durable: nothing to send. */
static void durable_cancel(void *arg) {
    struct durable_reply *d = arg;
    store_wait_cancel(&d->w);
    free(d);
}

static void durable_done(void *arg, int status, const char *why) {
    struct durable_reply *d = arg;
    struct conn *c = d->c;
    if (status == STORE_OK)
        reply(c, d->status, d->ctype, d->extra[0] ? d->extra : NULL, d->body, d->len);
    else
        reply_error(c, http_status(status), "the journal could not make this durable: %s", why);
    free(d);
    conn_done(c);
}

enum handler_result durable_reply(struct store *st, struct conn *c, int status, const char *ctype,
                                  const char *extra, const void *body, size_t len) {
    struct durable_reply *d = malloc(sizeof *d + len);
    if (!d) {
        c->keep_alive = 0;
        reply_error(c, 500, "out of memory");
        return HANDLER_DONE;
    }
    if (!store_when_durable(st, &d->w, durable_done, d)) {
        free(d);
        reply(c, status, ctype, extra, body, len);
        return HANDLER_DONE;
    }
    d->c = c;
    d->status = status;
    d->ctype = ctype;
    snprintf(d->extra, sizeof d->extra, "%s", extra ? extra : "");
    d->len = len;
    if (len)
        memcpy(d->body, body, len);
    conn_pending(c, durable_cancel, d);
    return HANDLER_PENDING;
}
