/*
 * conn_busy: the out-of-line part of a busy connection (struct conn_busy,
 * net/conn.h; issue 19). An idle connection's c->b points at its server's
 * idle_busy, which is always empty; a connection takes a struct of its own
 * (conn_busy, conn_busy_own in conn_int.h) before it keeps anything there,
 * and gives it back when it goes idle (conn_busy_put, conn_int.h) or
 * closes. Given-back structs wait on the server's free list, up to
 * BUSY_FREE_MAX, for the next busy connection. An HTTP/2 stream and a
 * workers proxy embed theirs (conn_busy_embed): never pooled.
 */
#include "net/conn.h"

#include "core/log.h"
#include "net/conn_int.h"
#include "net/server.h"

#include <stdlib.h>

/* Out of line: conn_busy_own's rare path (the fast one is a compare). */
__attribute__((noinline)) struct conn_busy *conn_busy_take(struct conn *c) {
    struct server *s = c->srv;
    /* One from the free list is empty already (conn_busy_put checked, or
     * conn_close cleared it); its alog fields are scratch until the next
     * dispatch resets them (access_req_start), as idle_busy's are. */
    struct conn_busy *b = s->busy_free;
    if (b) {
        s->busy_free = b->next;
        s->busy_nfree--;
    } else {
        b = malloc(sizeof *b);
        if (!b)
            return NULL;
        *b = (struct conn_busy){.pooled = 1};
    }
    c->b = b;
    return b;
}

struct conn_busy *conn_busy(struct conn *c) {
    return conn_busy_own(c);
}

void conn_busy_embed(struct conn *c, struct conn_busy *b) {
    *b = (struct conn_busy){.pooled = 0};
    c->b = b;
}

void conn_busy_free(struct server *s, struct conn_busy *b) {
    if (s->busy_nfree < BUSY_FREE_MAX) {
        b->next = s->busy_free;
        s->busy_free = b;
        s->busy_nfree++;
    } else {
        free(b);
    }
}

void conn_busy_trim(struct server *s, unsigned keep) {
    while (s->busy_nfree > keep) {
        struct conn_busy *b = s->busy_free;
        s->busy_free = b->next;
        s->busy_nfree--;
        free(b);
    }
}

/* idle_busy is shared by every idle connection: anything kept in it would
 * be seen by all of them. A bug, caught here (conn_close) in the tests. */
void conn_idle_busy_check(const struct server *s) {
    const struct conn_busy *b = &s->idle_busy;
    if (b->in.data || b->in.len || b->out.data || b->out.len || b->need || b->chunked ||
        b->stream || b->out_counted || b->alog.saved) {
        log_error("internal error: state left in idle_busy");
        abort();
    }
}
