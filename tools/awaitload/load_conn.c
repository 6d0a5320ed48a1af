#include "load_conn.h"

#include "tls_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A worker whose first this-many connect or parse errors come before any
 * response stops the run: the target is not an HTTP server that works. */
#define GIVE_UP_ERRORS 100
/* A driver's whole response (kept until complete) may be this large. */
#define MAX_WHOLE (16u * 1024 * 1024)

static void conn_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write(struct load_conn *c);
static void conn_send(struct load_conn *c, uint64_t start_ns);
static void conn_connected(struct load_conn *c);
static void conn_ready(struct load_conn *c);

/* ---- slots: how -n bounds the run ------------------------------------ */

/* Every attempt (a request, or a connect that fails before one) takes a
 * slot, and every slot ends in a response or an error, so -n always ends. */
int load_conn_reserve(struct load_conn *c) {
    if (c->holds_slot)
        return 1;
    if (!load_worker_take(c->w))
        return 0;
    c->holds_slot = 1;
    return 1;
}

static void conn_release(struct load_conn *c) {
    struct load_worker *w = c->w;
    if (!c->holds_slot)
        return;
    c->holds_slot = 0;
    if (++w->finished == w->quota)
        event_base_loopbreak(w->base);
}

/* ---- connection plumbing --------------------------------------------- */

/* what 0: a timer only (the socket may be closed). */
static void conn_watch(struct load_conn *c, short what, const struct timeval *tv) {
    short key = what ? what : EV_TIMEOUT;
    if (c->ev_what != key) {
        if (c->ev_what)
            event_del(&c->ev);
        event_assign(&c->ev, c->w->base, what ? c->fd : -1, what, conn_cb, c);
        c->ev_what = key;
    }
    event_add(&c->ev, tv);
}

/* abort: reset rather than linger, so error closes leave no TIME_WAIT behind. */
void load_conn_close(struct load_conn *c, int abort) {
    if (c->ev_what)
        event_del(&c->ev);
    c->ev_what = 0;
    if (c->fd < 0)
        return;
    c->gen++;
    if (abort) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (c->ssl) {
        tls_client_conn_free(c->ssl); /* close_notify, then the linger reset if aborting */
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    c->head_len = 0;
    c->state = CS_CLOSED;
}

void load_conn_fail(struct load_conn *c, int kind, const char *why) {
    struct load_worker *w = c->w;
    struct load_stats *s = &w->stats;
    s->errors[kind]++;
    load_stats_second(s, w->plan->t0_ns, load_now_ns(), 1);
    if (!s->first_error[kind][0])
        snprintf(s->first_error[kind], sizeof s->first_error[kind], "%s", why);
    if (w->plan->driver) {
        load_conn_close(c, 1);
        c->expect = 0;
        w->plan->driver->failed(c);
        return;
    }
    load_conn_close(c, kind == LOAD_ERR_TIMEOUT || kind == LOAD_ERR_PARSE);
    conn_release(c);
    if (s->requests == 0 &&
        s->errors[LOAD_ERR_CONNECT] + s->errors[LOAD_ERR_PARSE] >= GIVE_UP_ERRORS) {
        atomic_store(w->plan->stop, 1);
        event_base_loopbreak(w->base);
        return;
    }
    load_worker_queue_connect(c);
}

static void conn_fail_errno(struct load_conn *c, int kind, const char *what, int err) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
    load_conn_fail(c, kind, msg);
}

/* A driver's connection: the request it was given goes out now. */
static void conn_start(struct load_conn *c) {
    c->wpos = 0;
    c->got_bytes = 0;
    load_resp_begin(&c->resp, c->w->plan->head_request);
    conn_write(c);
}

void load_conn_send(struct load_conn *c, const char *req, size_t len, unsigned expect,
                    const struct timeval *tv) {
    c->req = req;
    c->req_len = len;
    c->expect = expect;
    c->tv = tv ? tv : c->w->timeout_tv;
    if (c->fd < 0)
        load_conn_open(c); /* conn_ready sends it */
    else
        conn_start(c);
}

void load_conn_pause(struct load_conn *c, uint64_t ns) {
    struct timeval tv = load_tv_from_ns(ns);
    c->due_ns = load_now_ns() + ns;
    c->state = CS_PAUSED;
    conn_watch(c, c->fd < 0 ? 0 : EV_READ | EV_PERSIST, &tv);
}

void load_conn_open(struct load_conn *c) {
    struct load_worker *w = c->w;
    const struct load_plan *p = w->plan;
    if (c->opened)
        w->stats.reconnects++;
    c->opened = 1;
    c->fd = socket(p->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail_errno(c, LOAD_ERR_CONNECT, "socket", errno);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /*
     * Linux gives connect() even ephemeral ports first and bind(port 0) odd
     * ones first, and searches one parity completely before the other. With
     * plain connect()s, once about half the range is in use (14,000 of the
     * default 28,000 ports) every connect scans the exhausted half, ~1.5 ms
     * each. Binding every other socket first spreads them over both halves.
     */
    if (w->opens++ & 1) {
        struct sockaddr_storage any;
        memset(&any, 0, sizeof any);
        any.ss_family = p->addr->sa_family;
        (void)bind(c->fd, (struct sockaddr *)&any, p->addrlen); /* on failure connect picks */
    }
    if (connect(c->fd, p->addr, p->addrlen) == 0) {
        conn_connected(c); /* loopback may connect at once */
        return;
    }
    if (errno != EINPROGRESS) {
        conn_fail_errno(c, LOAD_ERR_CONNECT, "connect", errno);
        return;
    }
    c->state = CS_CONNECTING;
    conn_watch(c, EV_WRITE | EV_PERSIST, w->timeout_tv);
}

/* Open loop: send now if the request is due (or overdue), else wait for it. */
static void conn_wait_or_send(struct load_conn *c, uint64_t now) {
    if (c->due_ns <= now) {
        conn_send(c, c->due_ns);
        return;
    }
    struct timeval tv = load_tv_from_ns(c->due_ns - now);
    c->state = CS_WAITING;
    conn_watch(c, EV_READ | EV_PERSIST, &tv);
}

/* https: drive the handshake; then the connection is ready for requests. */
static void conn_handshake(struct load_conn *c) {
    struct load_worker *w = c->w;
    const char *detail = "";
    int r = tls_client_handshake(c->ssl, &detail);
    if (r == 0) {
        short ev = tls_client_want_write(c->ssl) ? EV_WRITE : EV_READ;
        conn_watch(c, ev | EV_PERSIST, w->timeout_tv);
        return;
    }
    if (r < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "TLS handshake: %s%s", detail,
                 strstr(detail, "certificate verify failed") ? " (--insecure skips the check)"
                                                             : "");
        load_conn_fail(c, LOAD_ERR_CONNECT, msg);
        return;
    }
    uint64_t now = load_now_ns();
    w->stats.handshakes++;
    load_hist_record(&w->stats.handshake_hist, (now - c->hs_start_ns) / 1000u);
    conn_ready(c);
}

static void conn_connected(struct load_conn *c) {
    struct load_worker *w = c->w;
    w->stats.connects++;
    if (w->plan->tls) {
        c->ssl = tls_client_conn_new(w->plan->tls, c->fd, w->plan->tls_host);
        if (!c->ssl) {
            load_conn_fail(c, LOAD_ERR_CONNECT, "TLS: out of memory");
            return;
        }
        c->hs_start_ns = load_now_ns();
        c->state = CS_HANDSHAKE;
        conn_handshake(c);
        return;
    }
    conn_ready(c);
}

/* Connected (and TLS done): the first request goes out now or when due. */
static void conn_ready(struct load_conn *c) {
    struct load_worker *w = c->w;
    if (w->plan->driver) {
        conn_start(c);
        return;
    }
    uint64_t now = load_now_ns();
    if (w->interval_ns == 0) {
        conn_send(c, now);
        return;
    }
    /* The first connect anchors the schedule: time spent waiting for the
     * connect rate limit is the client's, not the server's. Reconnects keep
     * the schedule, so a server that drops connections pays for it. */
    if (!c->scheduled) {
        c->scheduled = 1;
        if (c->due_ns < now)
            c->due_ns = now;
    }
    conn_wait_or_send(c, now);
}

static void conn_write(struct load_conn *c) {
    while (c->wpos < c->req_len) {
        ssize_t n = c->ssl ? tls_client_write(c->ssl, c->req + c->wpos, c->req_len - c->wpos)
                           : send(c->fd, c->req + c->wpos, c->req_len - c->wpos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->state = CS_WRITING;
                conn_watch(c, EV_READ | EV_WRITE | EV_PERSIST, c->tv);
                return;
            }
            conn_fail_errno(c, LOAD_ERR_READ, c->ssl ? "TLS write" : "send", errno);
            return;
        }
        c->wpos += (size_t)n;
        c->w->stats.bytes_out += (uint64_t)n;
    }
    c->state = CS_READING;
    conn_watch(c, EV_READ | EV_PERSIST, c->tv);
}

static void conn_send(struct load_conn *c, uint64_t start_ns) {
    if (load_worker_stopping(c->w) || !load_conn_reserve(c)) {
        load_conn_close(c, 0);
        return;
    }
    c->start_ns = start_ns;
    c->req = c->w->plan->req;
    c->req_len = c->w->plan->req_len;
    c->expect = 1;
    c->tv = c->w->timeout_tv;
    conn_start(c);
}

/* A whole response arrived (or a close ended a close-delimited one). */
static void conn_done(struct load_conn *c, int closed) {
    struct load_worker *w = c->w;
    uint64_t now = load_now_ns();
    load_hist_record(&w->stats.hist, now > c->start_ns ? (now - c->start_ns) / 1000u : 0);
    w->stats.requests++;
    load_stats_second(&w->stats, w->plan->t0_ns, now, 0);
    int cls = c->resp.status / 100;
    w->stats.status[cls >= 1 && cls <= 5 ? cls : 0]++;
    conn_release(c);
    /* A response that overtook our request (an early 413, say) leaves the
     * stream mid-request: the connection cannot be reused either. */
    if (closed || !c->resp.keep_alive || c->state == CS_WRITING) {
        load_conn_close(c, 0);
        load_worker_queue_connect(c);
        return;
    }
    if (w->interval_ns) {
        c->due_ns += w->interval_ns;
        conn_wait_or_send(c, now);
        return;
    }
    /*
     * Closed loop: the next request goes out when this loop pass ends, not
     * now. Reading every ready response first keeps answers from waiting
     * behind our sends (time that would count as server latency), and the
     * server gets the pass's requests together, as it would from wrk.
     */
    c->state = CS_DEFERRED;
    c->next_send = NULL;
    if (w->send_tail)
        w->send_tail->next_send = c;
    else
        w->send_head = c;
    w->send_tail = c;
}

void load_conn_flush_sends(struct load_worker *w) {
    struct load_conn *c = w->send_head;
    w->send_head = w->send_tail = NULL;
    while (c) {
        struct load_conn *next = c->next_send;
        /* Latency starts at this connection's own send, not the flush's. */
        if (c->state == CS_DEFERRED)
            conn_send(c, load_now_ns());
        c = next;
    }
}

static void conn_eof(struct load_conn *c) {
    if (c->state == CS_PAUSED) {
        /* The driver's idle connection closed: the next send opens another. */
        uint64_t now = load_now_ns();
        load_conn_close(c, 0);
        load_conn_pause(c, c->due_ns > now ? c->due_ns - now : 0);
    } else if (c->state == CS_WAITING || c->state == CS_DEFERRED) {
        /* An idle keep-alive connection closed by the server: not an error. */
        load_conn_close(c, 0);
        load_worker_queue_connect(c);
    } else if (!c->w->plan->driver && load_resp_eof(&c->resp)) {
        conn_done(c, 1);
    } else {
        load_conn_fail(c, LOAD_ERR_READ,
                       c->got_bytes ? "connection closed mid-response"
                                    : "connection closed before the response");
    }
}

/* Room for need bytes in c->head. 0, or -1 after failing c. */
static int conn_room(struct load_conn *c, size_t need) {
    if (need <= c->head_cap)
        return 0;
    if (need > MAX_WHOLE + LOAD_RESP_MAX_HEAD + LOAD_READ_CHUNK) {
        load_conn_fail(c, LOAD_ERR_PARSE, "a response over 16 MiB");
        return -1;
    }
    char *p = realloc(c->head, need);
    if (!p) {
        load_conn_fail(c, LOAD_ERR_READ, "out of memory");
        return -1;
    }
    c->head = p;
    c->head_cap = (uint32_t)need;
    return 0;
}

/* Keep from[0..rest) for the next read: a head not yet complete, or (a
 * driver's) a whole response not yet complete. from is in the worker's
 * read buffer, or already in c->head (then it fits). */
static void conn_keep(struct load_conn *c, const char *from, size_t rest) {
    if (conn_room(c, rest) < 0)
        return;
    memmove(c->head, from, rest);
    c->head_len = (uint32_t)rest;
}

/*
 * A driver's response, whole, is buf[0..len): count it and hand it over.
 * Returns 1 if c still waits on this socket for more responses (so bytes
 * after this one are the next), 0 if it does not, -1 if the socket went.
 */
static int conn_answer(struct load_conn *c, const char *buf, size_t len) {
    struct load_worker *w = c->w;
    const struct http_response *res = &w->res; /* the final head, parsed from buf */
    size_t blen = 0;
    if (res->status != 204 && res->status != 304 && res->content_length > 0)
        blen = (size_t)res->content_length;
    unsigned gen = c->gen;
    w->stats.requests++;
    load_stats_second(&w->stats, w->plan->t0_ns, load_now_ns(), 0);
    int cls = c->resp.status / 100;
    w->stats.status[cls >= 1 && cls <= 5 ? cls : 0]++;
    c->expect--;
    if (!c->resp.keep_alive || (c->expect == 0 && c->state == CS_WRITING)) {
        if (c->expect > 0) {
            load_conn_fail(c, LOAD_ERR_READ,
                           "the server closed the connection with responses outstanding");
            return -1;
        }
        load_conn_close(c, 0); /* the next request opens a new one */
    }
    w->plan->driver->response(c, res, buf + len - blen, blen);
    if (c->gen != gen)
        return -1;
    if (c->state != CS_READING && c->state != CS_WRITING)
        return 0;
    if (c->resp.state == LOAD_RESP_DONE) /* pipelined: the next response of the batch */
        load_resp_begin(&c->resp, 0);
    return 1;
}

static void conn_read_once(struct load_conn *c) {
    struct load_worker *w = c->w;
    const struct load_driver *drv = w->plan->driver;
    /* Read past the space a split head needs, then put the head in front;
     * a driver's longer partial response is read onto where it is kept. */
    char *buf = w->rbuf;
    if (c->head_len > LOAD_RESP_MAX_HEAD) {
        if (conn_room(c, c->head_len + (size_t)LOAD_READ_CHUNK) < 0)
            return;
        buf = c->head;
    }
    ssize_t n = c->ssl ? tls_client_read(c->ssl, buf + c->head_len, LOAD_READ_CHUNK)
                       : recv(c->fd, buf + c->head_len, LOAD_READ_CHUNK, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_fail_errno(c, LOAD_ERR_READ, c->ssl ? "TLS read" : "recv", errno);
        return;
    }
    if (n == 0) {
        conn_eof(c);
        return;
    }
    w->stats.bytes_in += (uint64_t)n;
    if (c->state == CS_WAITING || c->state == CS_DEFERRED || c->state == CS_PAUSED) {
        load_conn_fail(c, LOAD_ERR_PARSE, "data from the server with no request outstanding");
        return;
    }
    c->got_bytes = 1;
    size_t len = c->head_len + (size_t)n;
    if (c->head_len && buf == w->rbuf)
        memcpy(buf, c->head, c->head_len);
    c->head_len = 0;
    for (size_t off = 0;;) {
        const char *why = "malformed response";
        ssize_t used = load_resp_feed(&c->resp, buf + off, len - off, &w->res, &why);
        if (used < 0) {
            load_conn_fail(c, LOAD_ERR_PARSE, why);
            return;
        }
        if (drv && (c->resp.state == LOAD_RESP_CHUNKED || c->resp.state == LOAD_RESP_UNTIL_CLOSE ||
                    (c->resp.state == LOAD_RESP_DONE && w->res.chunked))) {
            load_conn_fail(c, LOAD_ERR_PARSE, "a response without Content-Length (not awaitd?)");
            return;
        }
        if (c->resp.state != LOAD_RESP_DONE) {
            if (!drv) {
                off += (size_t)used; /* the body so far is counted, not kept */
            } else {
                load_resp_begin(&c->resp, 0); /* parsed again when whole */
            }
            if (off < len)
                conn_keep(c, buf + off, len - off);
            return;
        }
        size_t end = off + (size_t)used;
        int more = drv ? conn_answer(c, buf + off, end - off) : 0;
        if (more < 0)
            return;
        if (end < len && !more) {
            load_conn_fail(c, LOAD_ERR_PARSE, "data after the end of the response");
            return;
        }
        if (!drv)
            conn_done(c, 0);
        if (end == len)
            return;
        off = end;
    }
}

static void conn_read(struct load_conn *c) {
    conn_read_once(c);
    /* TLS may hold records beyond what one read had room for, and the
     * socket will not become readable again for them. */
    while (c->ssl && (c->state == CS_READING || c->state == CS_WRITING) &&
           tls_client_pending(c->ssl))
        conn_read_once(c);
}

static void conn_cb(evutil_socket_t fd, short what, void *arg) {
    struct load_conn *c = arg;
    switch (c->state) {
    case CS_CONNECTING: {
        if (what & EV_TIMEOUT) {
            load_conn_fail(c, LOAD_ERR_CONNECT, "connect timed out");
            return;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err)
            conn_fail_errno(c, LOAD_ERR_CONNECT, "connect", err);
        else
            conn_connected(c);
        return;
    }
    case CS_HANDSHAKE:
        if (what & EV_TIMEOUT)
            load_conn_fail(c, LOAD_ERR_CONNECT, "TLS handshake timed out");
        else
            conn_handshake(c);
        return;
    case CS_WRITING:
        if (what & EV_READ) {
            conn_read(c);
            if (c->state != CS_WRITING)
                return;
        }
        if (what & EV_WRITE)
            conn_write(c);
        else if (what & EV_TIMEOUT)
            load_conn_fail(c, LOAD_ERR_TIMEOUT, "request not sent within --timeout");
        return;
    case CS_READING:
        if (what & EV_READ)
            conn_read(c);
        else if (what & EV_TIMEOUT)
            load_conn_fail(c, LOAD_ERR_TIMEOUT, "no response progress within --timeout");
        return;
    case CS_WAITING:
        if (what & EV_READ)
            conn_read(c);
        /* libevent measures timeouts from the time cached at the start of
         * the loop pass, so they can fire early: never send before due. */
        if (c->state == CS_WAITING && (what & EV_TIMEOUT))
            conn_wait_or_send(c, load_now_ns());
        return;
    case CS_DEFERRED:
        if (what & EV_READ)
            conn_read(c); /* only a close or stray bytes can come now */
        return;
    case CS_PAUSED:
        if ((what & EV_READ) && c->fd >= 0)
            conn_read(c); /* a close or stray bytes */
        else if (what & EV_TIMEOUT)
            c->w->plan->driver->resume(c);
        return;
    default:
        return;
    }
}
