/*
 * conn: a connection's life (the contract is net/conn.h). conn_new takes an
 * accepted socket; the connection then owns one libevent event, read or
 * write interest (conn_watch; its callback conn_on_event hands the event
 * to the handshake, the read path or the write path), and one deadline on
 * the server's wheel (conn_on_deadline: header, body, keep-alive, write,
 * lingering close, TLS handshake). A handler that answers later parks the
 * connection (conn_pending) and resumes it (conn_done); conn_close frees
 * everything, conn_drain closes at the end of the current answer. The
 * peer's address is kept in 17 bytes (struct conn_peer) and read back here.
 *
 * Bytes in are conn_read.c, bytes out conn_write.c, the busy structs
 * conn_busy.c; what they share is in conn_int.h.
 */
#include "net/conn.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "net/conn_int.h"
#include "net/h2.h"
#include "net/http_reply.h"
#include "net/io.h"
#include "net/server.h"
#include "net/tls_server.h"
#include "net/workers.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void conn_on_event(evutil_socket_t fd, short what, void *arg);
static void conn_on_deadline(struct timer *t);

_Static_assert(TLS_FAIL_KINDS == METRICS_TLS_FAIL_KINDS, "metrics.h and tls_server.h disagree");

/*
 * The flags of the one event. A plain socket's read interest is
 * edge-triggered (EPOLLET, as nginx reads): epoll then reports a socket
 * once per arrival instead of polling it again on the next epoll_wait to
 * find it drained, which was a second tcp_poll per request (tcp_poll,
 * sock_poll and ep_item_poll were 7% of the server's CPU per GET /get).
 * Edge-triggered, a read must leave nothing behind unannounced: a read
 * shorter than it asked for emptied the socket, one that filled its buffer
 * runs the callback again (conn_read_again), and EV_CLOSED (EPOLLRDHUP)
 * says when the end of the stream waits behind the bytes read. Writes
 * and TLS stay level-triggered.
 */
static short conn_ev_flags(const struct conn *c, int for_write) {
    if (for_write ^ c->io_flip)
        return EV_WRITE | EV_PERSIST;
    if (c->io == &io_plain)
        return EV_READ | EV_PERSIST | EV_ET | EV_CLOSED;
    return EV_READ | EV_PERSIST;
}

/* Switch the one event between read and write interest. ev_write is what
 * the connection waits to do; the readiness watched is the other one while
 * TLS needs it (io_flip: a read that must write first, or the reverse). */
int conn_watch(struct conn *c, int for_write) {
    if (c->ev_write == for_write && c->ev_flip == c->io_flip && !c->reading_paused)
        return 0;
    event_del(&c->ev);
    event_assign(&c->ev, c->srv->base, c->fd, conn_ev_flags(c, for_write), conn_on_event, c);
    c->ev_write = (uint8_t)for_write;
    c->ev_flip = c->io_flip;
    c->reading_paused = 0;
    return event_add(&c->ev, NULL);
}

/*
 * TLS only, after the connection's work for an event: watch the readiness
 * TLS needs now, and if OpenSSL already holds input (records read ahead,
 * or more than the last read had room for), run the read callback again
 * at once, since the socket will not become readable for bytes it no longer has.
 */
static int conn_io_rearm(struct conn *c) {
    if (c->reading_paused)
        return 0;
    if (c->ev_flip != c->io_flip && conn_watch(c, c->ev_write) < 0) {
        conn_close(c);
        return -1;
    }
    if (!c->ev_write && !c->io_flip && c->state != CONN_HANDSHAKE && c->io->pending(c->io_ctx))
        event_active(&c->ev, EV_READ, 0);
    return 0;
}

struct conn *conn_new(struct server *s, int fd, const struct sockaddr *peer, socklen_t len,
                      struct ssl_ctx_st *tls) {
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->srv = s;
    c->b = &s->idle_busy;
    c->fd = fd;
    c->io = &io_plain;
    if (tls) {
        c->io_ctx = tls_conn_new(tls, fd);
        if (!c->io_ctx) {
            close(fd);
            free(c);
            return NULL;
        }
        c->io = &io_tls;
        c->state = CONN_HANDSHAKE;
    }
    c->keep_alive = 1;
    conn_peer_set(&c->peer, peer, len);
    timer_init(&c->deadline, conn_on_deadline);
    event_assign(&c->ev, s->base, fd, conn_ev_flags(c, 0), conn_on_event, c);
    if (event_add(&c->ev, NULL) < 0) {
        c->io->release(c->io_ctx);
        close(fd);
        free(c);
        return NULL;
    }
    list_push(&s->conns, &c->link);
    s->metrics.conns_open++;
    if (tls) {
        struct tls_settings ts;
        tls_settings_from_config(s->cfg, &ts);
        conn_set_deadline(c, DL_HANDSHAKE, ts.handshake_timeout_ms);
        return c;
    }
    /* The first request has header_timeout to arrive, as every later one does. */
    conn_set_deadline(c, DL_HEADER, s->cfg->header_timeout_ms);
    return c;
}

void conn_close(struct conn *c) {
    struct server *s = c->srv;
    if (c->h2_stream) {
        h2_stream_close(c);
        return;
    }
    if (c->role == CONN_ROLE_H2)
        h2_free(c);
    if (c->dispatching) {
        /* Inside the handler's stack (a failed flush): conn_dispatch closes
         * it once the handler returns, so nothing below touches freed memory. */
        c->close_pending = 1;
        return;
    }
    if (c->cancel) {
        conn_cancel_fn fn = c->cancel;
        c->cancel = NULL;
        fn(c->cancel_arg);
        if (s->alog) /* the client went before the answer: 499, as nginx says */
            access_log_write(s->alog, c, NULL);
    }
    timer_cancel(&s->wheel, &c->deadline);
    event_del(&c->ev);
    c->io->release(c->io_ctx);
    close(c->fd);
    if (c->b->stream)
        conn_stream_end(c);
    s->metrics.output_bytes -= c->b->out_counted;
    buf_free(&c->b->in);
    buf_free(&c->b->out);
    free(c->b->chunked);
    access_req_drop(&c->b->alog);
    if (c->b != &s->idle_busy && c->b->pooled) {
        *c->b = (struct conn_busy){.pooled = 1}; /* chunked was freed, need and out_counted stale */
        conn_busy_free(s, c->b);
    }
    conn_idle_busy_check(s);
    list_unlink(&c->link);
    if (s->wbuf_owner == c)
        conn_wbuf_release(s);
    s->metrics.conns_open--;
    if (c->peer_counted)
        server_peer_release(s, c);
    free(c);
    if (s->draining && list_empty(&s->conns))
        server_shutdown(s);
}

void conn_pending(struct conn *c, conn_cancel_fn cancel, void *arg) {
    c->cancel = cancel;
    c->cancel_arg = arg;
}

void conn_takeover(struct conn *c, conn_input_fn on_input) {
    c->role = CONN_ROLE_TAKEN; /* the listener is forgotten: only HTTP/2 needs it */
    c->as.on_input = on_input;
}

void conn_done(struct conn *c) {
    if (c->h2_stream) {
        h2_stream_done(c);
        return;
    }
    if (c->role == CONN_ROLE_HOP) { /* a proxy (workers): the answer goes back to the worker that asked */
        workers_proxy_done(c);
        return;
    }
    conn_observed.c = NULL;
    c->cancel = NULL;
    c->cancel_arg = NULL;
    if (c->role == CONN_ROLE_TAKEN) {
        c->role = CONN_ROLE_PLAIN;
        c->as.listener = NULL;
    }
    c->state = CONN_READY;
    if (!c->b->stream)
        conn_observe(c);
    if (c->srv->alog && !c->b->stream)
        access_log_write(c->srv->alog, c, NULL);
    conn_request_finished(c);
    if (c->reading_paused && conn_watch(c, 0) < 0) {
        conn_close(c);
        return;
    }
    /* Requests that arrived behind the pending one go next (they are in c->b->in). */
    struct server *s = c->srv; /* c may be freed by what follows */
    if (c->state == CONN_READY && c->b->in.len > 0) {
        if (conn_process(c, NULL, 0) < 0)
            return;
    }
    if (conn_pump(c) == 0 && c->io->pending)
        conn_io_rearm(c);
    server_timers_sync(s);
}

void conn_fail(struct conn *c) {
    if (!c->failed) {
        c->failed = 1;
        c->srv->metrics.reply_failures++;
    }
    c->keep_alive = 0;
}

void conn_drain(struct conn *c) {
    if (c->role == CONN_ROLE_H2)
        h2_drain(c);
    else if (c->state == CONN_HANDSHAKE)
        conn_close(c); /* nothing asked yet: nothing to finish */
    else if (c->state == CONN_READY && c->b->in.len == 0 && c->b->out.len == 0 && !c->b->stream &&
             c->srv->wbuf_owner != c)
        conn_close(c);
    else if (c->state != CONN_BUSY || c->b->in.len == 0)
        c->keep_alive = 0;
    /* else a request is in flight with the next one already read behind it
     * (pipelined): the answer in flight keeps the connection, so that the
     * next request is answered too, with Connection: close (the flags of a
     * request read while draining), and /health's 503 "draining" can be
     * seen (issue 16). Whatever follows it is not read. */
}

int conn_is_tls(const struct conn *c) {
    if (c->role == CONN_ROLE_HOP)
        return workers_proxy_tls(c);
    return c->io == &io_tls;
}

int conn_tls_subject(const struct conn *c, char *out, size_t len) {
    if (c->role == CONN_ROLE_HOP)
        return workers_proxy_subject(c, out, len);
    if (c->io != &io_tls || c->state == CONN_HANDSHAKE)
        return -1;
    return tls_conn_subject(c->io_ctx, out, len);
}

/* a.b.c.d without inet_ntop's sprintf: /get's origin asks on every
 * request (perf: inet_ntop was 2% of the server's CPU per /get). */
static void ipv4_text(const unsigned char *a, char *out) {
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

void conn_peer_set(struct conn_peer *p, const struct sockaddr *sa, socklen_t len) {
    memset(p, 0, sizeof *p);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        p->family = AF_INET;
        memcpy(p->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        p->family = AF_INET6;
        memcpy(p->addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    }
}

void conn_peer_sockaddr(const struct conn *c, union conn_addr *out) {
    memset(out, 0, sizeof *out);
    out->sa.sa_family = c->peer.family;
    if (c->peer.family == AF_INET)
        memcpy(&out->sin.sin_addr, c->peer.addr, 4);
    else if (c->peer.family == AF_INET6)
        memcpy(&out->sin6.sin6_addr, c->peer.addr, 16);
}

const char *conn_peer_text(const struct conn *c, char *out, size_t len) {
    out[0] = '\0';
    if (c->peer.family == AF_INET) {
        if (len >= INET_ADDRSTRLEN)
            ipv4_text(c->peer.addr, out);
    } else if (c->peer.family == AF_INET6) {
        /* An IPv4-mapped peer on a dual-stack socket reads best as IPv4. */
        struct in6_addr a;
        memcpy(&a, c->peer.addr, 16);
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            if (len >= INET_ADDRSTRLEN)
                ipv4_text(&c->peer.addr[12], out);
        } else
            inet_ntop(AF_INET6, &a, out, (socklen_t)len);
    }
    return out;
}

static void conn_on_event(evutil_socket_t fd, short what, void *arg) {
    struct conn *c = arg;
    struct server *s = c->srv;
    int r;
    conn_observed.c = NULL;
    c->io_flip = 0;
    if (c->ev_write) {
        if (c->deadline_kind == DL_WRITE)
            conn_set_deadline(c, DL_WRITE, s->cfg->write_timeout_ms);
        /* Requests that waited behind the output go once it drains. */
        if (c->state == CONN_READY && c->b->in.len > 0)
            c->backlogged = 1;
        r = conn_pump(c);
    } else if (c->state == CONN_HANDSHAKE) {
        r = conn_handshake(c);
    } else {
        r = conn_on_readable(c, what);
    }
    if (r == 0 && c->io->pending)
        conn_io_rearm(c);
    server_timers_sync(s);
}

static void conn_on_deadline(struct timer *t) {
    struct conn *c = container_of(t, struct conn, deadline);
    struct metrics *m = &c->srv->metrics;
    switch (c->deadline_kind) {
    case DL_HEADER:
    case DL_BODY:
        m->timeouts[c->deadline_kind == DL_HEADER ? 0 : 1]++;
        if (c->b->in.len > 0 && c->b->out.len == 0 && !c->b->stream && c->state == CONN_READY) {
            /* A request was started: say why we hang up. */
            c->keep_alive = 0;
            free(c->b->chunked);
            c->b->chunked = NULL;
            c->b->need = 0;
            buf_free(&c->b->in);
            reply_error(c, 408, "request %s not received in time",
                        c->deadline_kind == DL_HEADER ? "head" : "body");
            c->state = CONN_CLOSING;
            c->deadline_kind = DL_NONE;
            conn_send(c);
            return;
        }
        break;
    case DL_KEEPALIVE:
        if (c->start_us / 1000 > c->srv->wheel.now) {
            /* Answered since it was placed: the deadline moved on (conn_set_keepalive). */
            timer_add(&c->srv->wheel, t, c->start_us / 1000);
            return;
        }
        m->timeouts[2]++;
        break;
    case DL_WRITE:
        m->timeouts[3]++;
        break;
    case DL_HANDSHAKE:
        m->tls_handshake_failures[TLS_FAIL_TIMEOUT]++;
        break;
    default:
        break;
    }
    conn_close(c);
}
