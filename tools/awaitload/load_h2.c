/*
 * load_h2: awaitload --h2, HTTP/2 with prior knowledge (h2c) over plain
 * connections, --streams requests in flight on each (issue 15). A driver of
 * load_worker: it opens its own sockets on the worker's loop, lets nghttp2
 * frame, and counts into the worker's stats as the HTTP/1.1 engine does
 * (requests by status class, latency histogram, the per-second timeline).
 * Closed loop only; a stream that a connection loses (reset, closed) is an
 * error, and a closed connection is not reopened.
 */
#include "load_h2.h"

#include "load_conn.h"
#include "load_worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct h2conn {
    struct load_worker *w;
    struct event rev, wev;
    int fd;
    int live;         /* connected, session up */
    unsigned inflight;
    nghttp2_session *ng;
};

struct h2drv {
    nghttp2_session_callbacks *cb;
    struct h2conn *conns;
    uint64_t n;
    uint64_t done; /* streams ended (responses and errors) */
    int ending;
};

/* A stream's user data: its start (ns since the run began) and, once the
 * head is in, its status in the top 10 bits. */
#define START_MASK ((UINT64_C(1) << 54) - 1)

static void count_error(struct load_worker *w, int kind, const char *why) {
    if (!w->stats.errors[kind]++)
        snprintf(w->stats.first_error[kind], sizeof w->stats.first_error[kind], "%s", why);
    load_stats_second(&w->stats, w->plan->t0_ns, load_now_ns(), 1);
}

static void maybe_finish(struct load_worker *w) {
    struct h2drv *d = load_worker_data(w);
    if (w->started == w->quota && d->done == w->started)
        event_base_loopbreak(w->base);
}

static int submit_one(struct h2conn *h) {
    const struct load_h2_plan *p = h->w->plan->driver_plan;
    uint64_t start = load_now_ns() - h->w->plan->t0_ns;
    int32_t id = nghttp2_submit_request(h->ng, NULL, p->nva, p->nvlen, NULL,
                                        (void *)(uintptr_t)(start & START_MASK));
    if (id < 0)
        return -1;
    h->inflight++;
    return 0;
}

static void refill(struct h2conn *h) {
    const struct load_h2_plan *p = h->w->plan->driver_plan;
    struct h2drv *d = load_worker_data(h->w);
    while (h->live && !d->ending && h->inflight < p->streams && load_worker_take(h->w))
        if (submit_one(h) < 0) {
            d->done++;
            count_error(h->w, LOAD_ERR_READ, "cannot submit a stream");
            break;
        }
}

static void h2conn_close(struct h2conn *h, const char *why) {
    if (h->fd < 0)
        return;
    struct h2drv *d = load_worker_data(h->w);
    if (why && h->inflight) {
        for (unsigned i = 0; i < h->inflight; i++)
            count_error(h->w, LOAD_ERR_READ, why);
        d->done += h->inflight;
    }
    h->inflight = 0;
    event_del(&h->rev);
    event_del(&h->wev);
    if (h->ng)
        nghttp2_session_del(h->ng);
    h->ng = NULL;
    struct linger lg = {1, 0}; /* reset: no TIME_WAIT left behind */
    setsockopt(h->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(h->fd);
    h->fd = -1;
    h->live = 0;
    maybe_finish(h->w);
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *ud) {
    struct h2conn *h = ud;
    ssize_t n = send(h->fd, data, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK
                                                       : NGHTTP2_ERR_CALLBACK_FAILURE;
    h->w->stats.bytes_out += (uint64_t)n;
    return n;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    if (f->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0 ||
        valuelen != 3)
        return 0;
    int status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    if (status < 200)
        return 0; /* an interim answer */
    uintptr_t u = (uintptr_t)nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id,
                                         (void *)((u & START_MASK) | (uintptr_t)status << 54));
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud) {
    return 0; /* the body is counted in bytes_in, not kept */
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
    struct h2conn *h = ud;
    struct load_worker *w = h->w;
    struct h2drv *d = load_worker_data(w);
    uintptr_t u = (uintptr_t)nghttp2_session_get_stream_user_data(ng, id);
    unsigned status = (unsigned)(u >> 54);
    uint64_t now = load_now_ns();
    h->inflight--;
    d->done++;
    if (code != NGHTTP2_NO_ERROR || status < 200 || status > 599) {
        char why[96];
        snprintf(why, sizeof why, "stream reset (%s)", nghttp2_http2_strerror(code));
        count_error(w, LOAD_ERR_READ, why);
    } else {
        uint64_t start = w->plan->t0_ns + (u & START_MASK);
        w->stats.requests++;
        w->stats.status[status / 100]++;
        load_hist_record(&w->stats.hist, (now - start) / 1000);
        load_stats_second(&w->stats, w->plan->t0_ns, now, 0);
    }
    refill(h);
    maybe_finish(w);
    return 0;
}

static void io(struct h2conn *h) {
    if (nghttp2_session_send(h->ng) != 0) {
        h2conn_close(h, "send failed");
        return;
    }
    if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng)) {
        h2conn_close(h, "the server ended the connection (GOAWAY)");
        return;
    }
    if (nghttp2_session_want_write(h->ng))
        event_add(&h->wev, NULL);
    else
        event_del(&h->wev);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    struct h2conn *h = arg;
    char *buf = h->w->rbuf;
    for (;;) {
        ssize_t n = recv(fd, buf, LOAD_READ_CHUNK, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            h2conn_close(h, n == 0 ? "the server closed the connection" : strerror(errno));
            return;
        }
        if (n < 0)
            break;
        h->w->stats.bytes_in += (uint64_t)n;
        if (nghttp2_session_mem_recv(h->ng, (const uint8_t *)buf, (size_t)n) < 0) {
            h2conn_close(h, "bad HTTP/2 from the server");
            return;
        }
        if (h->fd < 0)
            return;
    }
    if (h->fd >= 0)
        io(h);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    struct h2conn *h = arg;
    if (!h->live) { /* the connect finished */
        int e = 0;
        socklen_t len = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
        if (e) {
            event_del(&h->wev);
            close(h->fd);
            h->fd = -1;
            count_error(h->w, LOAD_ERR_CONNECT, strerror(e));
            maybe_finish(h->w);
            return;
        }
        h->live = 1;
        h->w->stats.connects++;
        event_add(&h->rev, NULL);
        refill(h);
    }
    io(h);
}

static nghttp2_session_callbacks *callbacks(void) {
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
}

static int h2conn_open(struct h2conn *h) {
    const struct load_plan *p = h->w->plan;
    h->fd = socket(p->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd < 0)
        return -1;
    int one = 1;
    setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(h->fd, p->addr, p->addrlen) < 0 && errno != EINPROGRESS) {
        close(h->fd);
        h->fd = -1;
        return -1;
    }
    struct h2drv *d = load_worker_data(h->w);
    if (nghttp2_session_client_new(&h->ng, d->cb, h) != 0)
        return -1;
    nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 30)}};
    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, set, 1);
    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    event_assign(&h->rev, h->w->base, h->fd, EV_READ | EV_PERSIST, on_read, h);
    event_assign(&h->wev, h->w->base, h->fd, EV_WRITE | EV_PERSIST, on_write, h);
    return event_add(&h->wev, NULL);
}

static int drv_start(struct load_worker *w) {
    struct h2drv *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    d->n = w->nconns;
    d->conns = calloc(d->n ? d->n : 1, sizeof *d->conns);
    d->cb = callbacks();
    if (!d->conns || !d->cb) {
        free(d->conns);
        if (d->cb)
            nghttp2_session_callbacks_del(d->cb);
        free(d);
        return -1;
    }
    load_worker_set_data(w, d);
    for (uint64_t i = 0; i < d->n; i++) {
        d->conns[i].w = w;
        d->conns[i].fd = -1;
        if (h2conn_open(&d->conns[i]) < 0)
            count_error(w, LOAD_ERR_CONNECT, strerror(errno ? errno : ENOMEM));
    }
    return 0;
}

static void drv_end(struct load_worker *w) {
    struct h2drv *d = load_worker_data(w);
    d->ending = 1;
    event_base_loopbreak(w->base);
}

static void drv_teardown(struct load_worker *w) {
    struct h2drv *d = load_worker_data(w);
    if (!d)
        return;
    d->ending = 1;
    for (uint64_t i = 0; i < d->n; i++) {
        d->conns[i].inflight = 0; /* the run is over: not errors */
        h2conn_close(&d->conns[i], NULL);
    }
    free(d->conns);
    nghttp2_session_callbacks_del(d->cb);
    free(d);
    load_worker_set_data(w, NULL);
}

static void drv_tick(struct load_worker *w) {
}

/* load_conn's callbacks: this driver opens no load_conn. */
static void drv_response(struct load_conn *c, const struct http_response *res, const char *body,
                         size_t len) {
}
static void drv_conn(struct load_conn *c) {
}

static uint64_t drv_progress(const struct load_worker *w) {
    return w->stats.requests;
}

const struct load_driver load_h2_driver = {
    .start = drv_start,
    .response = drv_response,
    .failed = drv_conn,
    .resume = drv_conn,
    .tick = drv_tick,
    .end = drv_end,
    .teardown = drv_teardown,
    .progress = drv_progress,
};

int load_h2_plan_init(struct load_h2_plan *p, const char *method, const char *scheme,
                      const char *authority, const char *path, unsigned streams) {
    memset(p, 0, sizeof *p);
    p->streams = streams ? streams : 1;
    const char *v[4][2] = {{":method", method}, {":scheme", scheme}, {":authority", authority},
                           {":path", path}};
    for (int i = 0; i < 4; i++)
        p->nva[p->nvlen++] = (nghttp2_nv){(uint8_t *)v[i][0], (uint8_t *)v[i][1],
                                          strlen(v[i][0]), strlen(v[i][1]), NGHTTP2_NV_FLAG_NONE};
    return 0;
}
