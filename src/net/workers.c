#include "net/workers.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "http/http_parse.h"
#include "net/http_reply.h"
#include "net/io.h"
#include "net/server.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Control bits, set in a worker's inbox beside its messages. */
enum {
    CTL_RELOAD = 1u,   /* re-read the config (after the owner's reload succeeded) */
    CTL_REOPEN = 2u,   /* reopen the access log (SIGUSR1) */
    CTL_SHUTDOWN = 4u, /* drain (SIGTERM) */
    CTL_STOP = 8u,     /* leave the loop now */
    CTL_EXITED = 16u,  /* to the owner: a worker has finished */
};

enum hop_kind { HOP_REQ, HOP_CANCEL, HOP_ANSWER, HOP_ACK };

struct hop;
struct hop_node {
    struct hop_node *next;
    struct hop *h;
    uint8_t kind;
};

/*
 * One request handed to the owner. The worker writes the request part and
 * reads the answer part; the owner the reverse; a message on an inbox
 * (release on push, acquire on take) passes it between them. The worker
 * frees it once every message it expects back has come: the answer, and an
 * ack for each cancel it sent.
 */
struct hop {
    struct hop_node n_req, n_cancel, n_answer, n_ack;
    struct worker *from;
    /* the worker's side */
    struct conn *conn; /* the client, NULL once it left */
    unsigned expect;
    /* the request */
    uint8_t keep_alive, head_only, http10, tls;
    int subject_len; /* -1: no verified client certificate */
    char subject[256];
    struct conn_peer peer;
    struct buf msg; /* head (head_len bytes), then the body */
    size_t head_len;
    /* the owner's side */
    struct conn *proxy; /* while the answer is pending on the owner */
    /* the answer */
    struct buf ans;
    uint64_t bytes, id;
    uint16_t status;
    uint8_t has_id, ans_keep_alive, failed;
};

struct inbox {
    _Atomic(struct hop_node *) head;
    atomic_uint ctl;
    int efd;
    struct event ev;
    int ev_set;
};

struct worker {
    struct server *s; /* the owner's server for worker 0, else &own */
    struct server own;
    struct workers *g;
    struct inbox in;
    pthread_t thread;
    int started;
    int inited; /* own server built (freeable) */
    unsigned id;
};

struct workers {
    unsigned n;
    struct worker *w;
    pthread_mutex_t peers_lock;
    atomic_uint running;   /* worker threads still in their loop */
    struct list proxies;   /* owner: proxy connections with an answer pending */
    uint64_t hops, hops_cancelled, hops_pending; /* owner's thread only */
};

unsigned workers_count(const struct config *cfg) {
    if (cfg->workers)
        return (unsigned)cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (unsigned)n;
}

/* ---- inboxes: a lock-free list (many producers, one consumer) + an eventfd -- */

static void inbox_kick(struct inbox *ib) {
    uint64_t one = 1;
    ssize_t r = write(ib->efd, &one, sizeof one);
    (void)r; /* the counter cannot overflow in practice: the reader resets it */
}

static void inbox_push(struct inbox *ib, struct hop_node *n) {
    struct hop_node *old = atomic_load_explicit(&ib->head, memory_order_relaxed);
    do
        n->next = old;
    while (!atomic_compare_exchange_weak_explicit(&ib->head, &old, n, memory_order_release,
                                                  memory_order_relaxed));
    /* Only the push onto an empty list wakes the reader: it takes the whole
     * list after reading the eventfd, so later pushes ride along. */
    if (!old)
        inbox_kick(ib);
}

static void inbox_ctl(struct inbox *ib, unsigned bits) {
    atomic_fetch_or(&ib->ctl, bits);
    inbox_kick(ib);
}

static void on_inbox(evutil_socket_t fd, short what, void *arg);

static int inbox_init(struct worker *w) {
    w->in.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->in.efd < 0) {
        log_warn("eventfd");
        return -1;
    }
    event_assign(&w->in.ev, w->s->base, w->in.efd, EV_READ | EV_PERSIST, on_inbox, w);
    if (event_add(&w->in.ev, NULL) < 0)
        return -1;
    w->in.ev_set = 1;
    return 0;
}

/* ---- the owner's side: a proxy connection per hop -------------------------- */

static void owner_send(struct hop *h, struct hop_node *n, enum hop_kind kind) {
    n->h = h;
    n->kind = (uint8_t)kind;
    inbox_push(&h->from->in, n);
}

/* The proxy's answer is complete (or abandoned): send it back, free the proxy. */
static void proxy_finish(struct conn *c) {
    struct hop *h = c->as.hop;
    struct server *s = c->srv;
    int fail = 0;
    if (c->b->out.len)
        fail |= buf_append(&h->ans, buf_start(&c->b->out), c->b->out.len) < 0;
    if (s->wbuf_owner == c) {
        fail |= buf_append(&h->ans, buf_start(&s->wbuf), s->wbuf.len) < 0;
        s->wbuf_owner = NULL;
        if (s->wbuf.cap > 65536)
            buf_free(&s->wbuf);
        else
            buf_reset(&s->wbuf);
    }
    h->status = c->b->alog.status;
    h->bytes = c->b->alog.bytes;
    h->id = c->b->alog.id;
    h->has_id = c->b->alog.has_id;
    h->ans_keep_alive = c->keep_alive;
    h->failed = c->failed || fail;
    h->proxy = NULL;
    s->group->hops_pending--;
    list_unlink(&c->link);
    buf_free(&c->b->out);
    buf_free(&c->b->in);
    access_req_drop(&c->b->alog);
    free(c);
    owner_send(h, &h->n_answer, HOP_ANSWER);
}

void workers_proxy_done(struct conn *c) {
    proxy_finish(c);
}

int workers_proxy_tls(const struct conn *c) {
    return c->as.hop->tls;
}

int workers_proxy_subject(const struct conn *c, char *out, size_t len) {
    const struct hop *h = c->as.hop;
    if (h->subject_len < 0 || (size_t)h->subject_len >= len)
        return -1;
    memcpy(out, h->subject, (size_t)h->subject_len + 1);
    return h->subject_len;
}

/* A proxy: the connection and what it holds while busy, in one allocation
 * (free(c) frees both). */
struct proxy_conn {
    struct conn c; /* first */
    struct conn_busy busy;
};

static void owner_request(struct worker *o, struct hop *h) {
    struct server *s = o->s;
    struct workers *g = o->g;
    g->hops++;
    struct proxy_conn *pc = calloc(1, sizeof *pc);
    struct conn *c = pc ? &pc->c : NULL;
    if (!c) {
        h->failed = 1;
        owner_send(h, &h->n_answer, HOP_ANSWER);
        return;
    }
    c->srv = s;
    conn_busy_embed(c, &pc->busy);
    c->fd = -1;
    c->io = &io_plain;
    c->role = CONN_ROLE_HOP;
    c->as.hop = h;
    c->state = CONN_BUSY;
    c->keep_alive = h->keep_alive;
    c->head_only = h->head_only;
    c->http10 = h->http10;
    c->peer = h->peer;
    list_push(&g->proxies, &c->link);
    g->hops_pending++;
    h->proxy = c;
    /* The worker parsed it under the same limits; its re-serialised head
     * may be a little longer (a Content-Length for a chunked body). */
    struct http_limits lim = s->limits;
    lim.max_header_bytes = h->head_len;
    lim.max_uri = h->head_len;
    lim.max_headers = HTTP_MAX_HEADERS;
    lim.max_body = UINT64_MAX;
    struct http_request req;
    const char *why = "bad request";
    const char *base = buf_start(&h->msg);
    if (http_parse_request(base, h->head_len, &lim, &req, &why) != (int)h->head_len) {
        reply_error(c, 500, "the request could not be handed to the queue owner: %s", why);
        proxy_finish(c);
        return;
    }
    if (s->alog) {
        c->start_us = clock_now_us();
        access_req_start(&c->b->alog);
    }
    c->dispatching = 1;
    enum handler_result r =
        s->handler(s->handler_ctx, c, &req, base + h->head_len, h->msg.len - h->head_len);
    c->dispatching = 0;
    if (r == HANDLER_DONE)
        proxy_finish(c);
    /* else the handler calls conn_done (workers_proxy_done) later */
}

/* The client on the worker left: drop the pending answer (its waiter goes). */
static void owner_cancel(struct worker *o, struct hop *h) {
    struct conn *c = h->proxy;
    if (c) {
        o->g->hops_cancelled++;
        if (c->cancel) {
            conn_cancel_fn fn = c->cancel;
            c->cancel = NULL;
            fn(c->cancel_arg);
        }
        proxy_finish(c);
    }
    owner_send(h, &h->n_ack, HOP_ACK);
}

/* ---- the worker's side --------------------------------------------------------- */

static void hop_free(struct hop *h) {
    buf_free(&h->msg);
    buf_free(&h->ans);
    free(h);
}

static void hop_cancel(void *arg) {
    struct hop *h = arg;
    h->conn = NULL;
    h->expect++;
    h->n_cancel.h = h;
    h->n_cancel.kind = HOP_CANCEL;
    inbox_push(&h->from->g->w[0].in, &h->n_cancel);
}

static void worker_answer(struct hop *h) {
    struct conn *c = h->conn;
    h->expect--;
    if (c) {
        h->conn = NULL;
        if (h->failed || buf_append(conn_out(c), buf_start(&h->ans), h->ans.len) < 0)
            conn_fail(c);
        c->b->alog.status = h->status;
        c->b->alog.bytes = h->bytes;
        if (h->has_id)
            conn_log_id(c, h->id);
        if (!h->ans_keep_alive)
            c->keep_alive = 0;
        conn_done(c);
    }
    if (!h->expect)
        hop_free(h);
}

static int is_field(const struct http_header *f, const char *name) {
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

enum handler_result workers_hop(void *ctx, struct conn *c, const struct http_request *req,
                                const char *body, size_t body_len) {
    (void)ctx;
    struct server *s = c->srv;
    if (!s->group || s->worker_id == 0) {
        reply_error(c, 500, "workers_hop on the owner");
        return HANDLER_DONE;
    }
    struct hop *h = calloc(1, sizeof *h);
    if (!h) {
        reply_error(c, 503, "out of memory");
        return HANDLER_DONE;
    }
    /* The head again, with the body's framing made plain: the owner parses
     * it as the worker did (method, target, fields), the body follows. */
    struct buf *m = &h->msg;
    int r = buf_reserve(m, 256 + req->target_len + body_len);
    r |= buf_append(m, req->method_str, req->method_len);
    r |= buf_append(m, " ", 1);
    r |= buf_append(m, req->target, req->target_len);
    r |= buf_appends(m, req->minor_version ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *f = &req->headers[i];
        if (is_field(f, "content-length") || is_field(f, "transfer-encoding") ||
            is_field(f, "expect"))
            continue;
        r |= buf_append(m, f->name, f->name_len);
        r |= buf_append(m, ": ", 2);
        r |= buf_append(m, f->value, f->value_len);
        r |= buf_append(m, "\r\n", 2);
    }
    if (body_len || req->content_length >= 0 || req->chunked) {
        r |= buf_appends(m, "Content-Length: ");
        r |= buf_append_u64(m, body_len);
        r |= buf_append(m, "\r\n", 2);
    }
    r |= buf_append(m, "\r\n", 2);
    h->head_len = m->len;
    r |= buf_append(m, body, body_len);
    if (r) {
        hop_free(h);
        reply_error(c, 503, "out of memory");
        return HANDLER_DONE;
    }
    h->keep_alive = c->keep_alive;
    h->head_only = c->head_only;
    h->http10 = c->http10;
    h->peer = c->peer;
    h->tls = (uint8_t)conn_is_tls(c);
    h->subject_len = conn_tls_subject(c, h->subject, sizeof h->subject);
    h->from = &s->group->w[s->worker_id];
    h->conn = c;
    h->expect = 1;
    conn_pending(c, hop_cancel, h);
    h->n_req.h = h;
    h->n_req.kind = HOP_REQ;
    inbox_push(&s->group->w[0].in, &h->n_req);
    return HANDLER_PENDING;
}

/* ---- a loop's inbox ------------------------------------------------------------- */

static void on_inbox(evutil_socket_t fd, short what, void *arg) {
    struct worker *w = arg;
    struct server *s = w->s;
    uint64_t v;
    (void)what;
    if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("eventfd read");
    struct hop_node *n = atomic_exchange_explicit(&w->in.head, NULL, memory_order_acquire);
    struct hop_node *fifo = NULL; /* pushed last first: turn it around */
    while (n) {
        struct hop_node *next = n->next;
        n->next = fifo;
        fifo = n;
        n = next;
    }
    while (fifo) {
        n = fifo;
        fifo = n->next;
        switch (n->kind) {
        case HOP_REQ: owner_request(w, n->h); break;
        case HOP_CANCEL: owner_cancel(w, n->h); break;
        case HOP_ANSWER: worker_answer(n->h); break;
        case HOP_ACK:
            if (!--n->h->expect)
                hop_free(n->h);
            break;
        }
    }
    unsigned ctl = atomic_exchange(&w->in.ctl, 0);
    if (ctl & CTL_RELOAD)
        server_reload(s);
    if ((ctl & CTL_REOPEN) && s->alog)
        access_log_reopen(s->alog);
    if (ctl & CTL_SHUTDOWN)
        server_shutdown(s);
    if (ctl & CTL_STOP)
        event_base_loopbreak(s->base);
    if ((ctl & CTL_EXITED) && s->draining)
        server_shutdown(s); /* the owner exits once every worker has */
    server_timers_sync(s);
}

/* ---- life cycle ------------------------------------------------------------------ */

/* The owner's service: per-worker figures, and pending proxies cancelled
 * before the queues and timers close (it is registered after them). */
static int workers_svc_metrics(void *ctx, struct buf *o) {
    struct workers *g = ctx;
    int r = 0;
    /* Pending: waiting for an answer; not this /metrics request itself, if it hopped. */
    uint64_t pending = g->hops_pending;
    for (struct list *l = g->proxies.next; l != &g->proxies; l = l->next)
        if (container_of(l, struct conn, link)->dispatching)
            pending--;
    r |= buf_appends(o, "# HELP awaitd_worker_requests_total Responses sent by each worker "
                        "(event loop).\n# TYPE awaitd_worker_requests_total counter\n");
    for (unsigned i = 0; i < g->n; i++) {
        const struct metrics *m = &g->w[i].s->metrics;
        uint64_t n = 0;
        for (int k = 1; k <= 5; k++)
            n += __atomic_load_n(&m->requests[k], __ATOMIC_RELAXED);
        r |= buf_appendf(o, "awaitd_worker_requests_total{worker=\"%u\"} %" PRIu64 "\n", i, n);
    }
    r |= buf_appends(o, "# HELP awaitd_worker_connections_open Connections open on each worker.\n"
                        "# TYPE awaitd_worker_connections_open gauge\n");
    for (unsigned i = 0; i < g->n; i++)
        r |= buf_appendf(o, "awaitd_worker_connections_open{worker=\"%u\"} %" PRIu64 "\n", i,
                         __atomic_load_n(&g->w[i].s->metrics.conns_open, __ATOMIC_RELAXED));
    r |= buf_appendf(o,
                     "# HELP awaitd_worker_hops_total Requests handed from another worker to "
                     "the owner of the queues and timers.\n# TYPE awaitd_worker_hops_total "
                     "counter\nawaitd_worker_hops_total %" PRIu64 "\n"
                     "# HELP awaitd_worker_hops_cancelled_total Handed requests whose client "
                     "left before the answer.\n# TYPE awaitd_worker_hops_cancelled_total "
                     "counter\nawaitd_worker_hops_cancelled_total %" PRIu64 "\n"
                     "# HELP awaitd_worker_hops_pending Handed requests waiting for their "
                     "answer on the owner (long polls).\n# TYPE awaitd_worker_hops_pending "
                     "gauge\nawaitd_worker_hops_pending %" PRIu64 "\n",
                     g->hops, g->hops_cancelled, pending);
    return r ? -1 : 0;
}

static void workers_svc_close(void *ctx) {
    struct workers *g = ctx;
    while (!list_empty(&g->proxies)) {
        struct conn *c = container_of(g->proxies.next, struct conn, link);
        if (c->cancel) {
            conn_cancel_fn fn = c->cancel;
            c->cancel = NULL;
            fn(c->cancel_arg);
        }
        struct hop *h = c->as.hop;
        h->proxy = NULL;
        list_unlink(&c->link);
        buf_free(&c->b->out);
        access_req_drop(&c->b->alog);
        if (c->srv->wbuf_owner == c)
            c->srv->wbuf_owner = NULL;
        free(c);
    }
}

static const struct service_ops workers_service = {
    .name = "workers", .close = workers_svc_close, .metrics = workers_svc_metrics};

int workers_create(struct server *s, unsigned n, workers_compose_fn compose, void *arg) {
    struct workers *g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    g->w = calloc(n, sizeof *g->w);
    if (!g->w) {
        free(g);
        return -1;
    }
    g->n = n;
    pthread_mutex_init(&g->peers_lock, NULL);
    list_init(&g->proxies);
    s->group = g;
    s->worker_id = 0;
    s->peers_lock = &g->peers_lock;
    for (unsigned i = 0; i < n; i++) {
        g->w[i].g = g;
        g->w[i].id = i;
        g->w[i].in.efd = -1;
        g->w[i].s = i ? &g->w[i].own : s;
    }
    if (server_add_service(s, &workers_service, g) < 0 || inbox_init(&g->w[0]) < 0)
        return -1;
    for (unsigned i = 1; i < n; i++) {
        struct worker *w = &g->w[i];
        w->inited = 1;
        if (server_init_worker(w->s, s, i) < 0 || compose(w->s, i, arg) < 0 || inbox_init(w) < 0) {
            log_error("worker %u could not be set up", i);
            return -1;
        }
    }
    log_info("%u workers (event loops), queues and timers on worker 0", n);
    return 0;
}

/*
 * Every loop runs SCHED_BATCH when there are several (sched(7): "without
 * interactivity causing extra preemptions between the workload's tasks").
 * A loop woken by a packet then does not preempt another loop in the middle
 * of its batch on a shared core: it waits for that loop to block in
 * epoll_wait (or for the tick) and finds more events ready. bench/workers.sh
 * with both loops on one core: 0.017 -> 0.004 involuntary context switches
 * per /get and 1.19x -> 1.06x the CPU per request of one loop (medians of 7
 * and 5 runs). A policy other than SCHED_OTHER (a unit's
 * CPUSchedulingPolicy=) is left alone. The loop's thread only: threads it
 * starts later inherit it, the journal writer (started before) does not.
 */
static void loop_sched_batch(unsigned id) {
    int policy;
    struct sched_param sp;
    if (pthread_getschedparam(pthread_self(), &policy, &sp) != 0 || policy != SCHED_OTHER)
        return;
    sp.sched_priority = 0;
    if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp) != 0)
        log_warnx("worker %u: cannot set SCHED_BATCH", id);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct server *s = w->s;
    loop_sched_batch(w->id);
    server_timers_sync(s);
    event_base_dispatch(s->base);
    /* Close what is left here, on the thread whose loop owns the events. */
    while (!list_empty(&s->conns))
        conn_close(container_of(s->conns.next, struct conn, link));
    atomic_fetch_sub(&w->g->running, 1);
    inbox_ctl(&w->g->w[0].in, CTL_EXITED);
    return NULL;
}

int workers_start(struct server *s) {
    struct workers *g = s->group;
    if (!g)
        return 0;
    /* Signals go to the main thread's loop: the workers block them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    loop_sched_batch(0);
    for (unsigned i = 1; i < g->n && rc == 0; i++) {
        atomic_fetch_add(&g->running, 1);
        if (pthread_create(&g->w[i].thread, NULL, worker_main, &g->w[i]) != 0) {
            atomic_fetch_sub(&g->running, 1);
            log_error("cannot start worker %u", i);
            rc = -1;
        } else {
            g->w[i].started = 1;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void workers_tell(struct server *s, unsigned bits) {
    struct workers *g = s->worker_id == 0 ? s->group : NULL; /* the owner speaks for all */
    for (unsigned i = 1; g && i < g->n; i++)
        if (g->w[i].started)
            inbox_ctl(&g->w[i].in, bits);
}

void workers_reload(struct server *s) { workers_tell(s, CTL_RELOAD); }
void workers_reopen(struct server *s) { workers_tell(s, CTL_REOPEN); }
void workers_shutdown(struct server *s) { workers_tell(s, CTL_SHUTDOWN); }

int workers_done(const struct server *s) {
    if (!s->group || s->worker_id != 0)
        return 1;
    return atomic_load(&s->group->running) == 0;
}

void workers_stop(struct server *s) {
    struct workers *g = s->group;
    if (!g)
        return;
    workers_tell(s, CTL_STOP);
    for (unsigned i = 1; i < g->n; i++)
        if (g->w[i].started) {
            pthread_join(g->w[i].thread, NULL);
            g->w[i].started = 0;
        }
}

void workers_free(struct server *s) {
    struct workers *g = s->group;
    if (!g)
        return;
    workers_stop(s);
    for (unsigned i = 0; i < g->n; i++) {
        struct worker *w = &g->w[i];
        if (w->in.ev_set)
            event_del(&w->in.ev);
        if (i && w->inited)
            server_free(w->s);
        if (w->in.efd >= 0)
            close(w->in.efd);
    }
    pthread_mutex_destroy(&g->peers_lock);
    free(g->w);
    free(g);
    s->group = NULL;
    s->peers_lock = NULL;
}

void workers_metrics_sum(const struct server *s, struct metrics *out, struct metrics_gauges *gg) {
    _Static_assert(sizeof(struct metrics) % sizeof(uint64_t) == 0, "metrics are 64-bit words");
    const struct workers *g = s->group;
    memset(out, 0, sizeof *out);
    gg->timers_pending = gg->delays_pending = 0;
    for (unsigned i = 0; i < g->n; i++) {
        const uint64_t *from = (const uint64_t *)&g->w[i].s->metrics;
        uint64_t *to = (uint64_t *)out;
        for (size_t k = 0; k < sizeof *out / sizeof(uint64_t); k++)
            to[k] += __atomic_load_n(&from[k], __ATOMIC_RELAXED);
        gg->timers_pending += __atomic_load_n(&g->w[i].s->wheel.count, __ATOMIC_RELAXED);
        if (g->w[i].s->delays_pending)
            gg->delays_pending += __atomic_load_n(g->w[i].s->delays_pending, __ATOMIC_RELAXED);
    }
    out->tls_cert_not_after = s->metrics.tls_cert_not_after; /* not a sum: the owner's */
}

uint64_t workers_conns_open(const struct server *s) {
    const struct workers *g = s->group;
    uint64_t n = 0;
    for (unsigned i = 0; i < g->n; i++)
        n += __atomic_load_n(&g->w[i].s->metrics.conns_open, __ATOMIC_RELAXED);
    return n;
}
