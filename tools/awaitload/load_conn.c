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

static void conn_cb(evutil_socket_t fd, short what, void *arg);
static void conn_send(struct load_conn *c, uint64_t start_ns);
static void conn_connected(struct load_conn *c);
static void conn_ready(struct load_conn *c);

/* ---- slots: how -n bounds the run ------------------------------------ */

/* Every attempt (a request, or a connect that fails before one) takes a
 * slot, and every slot ends in a response or an error, so -n always ends. */
int load_conn_reserve(struct load_conn *c) {
    struct load_worker *w = c->w;
    if (c->holds_slot)
        return 1;
    if (w->started == w->quota)
        return 0;
    w->started++;
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

static void conn_watch(struct load_conn *c, short what, const struct timeval *tv) {
    if (c->ev_what != what) {
        if (c->ev_what)
            event_del(&c->ev);
        event_assign(&c->ev, c->w->base, c->fd, what, conn_cb, c);
        c->ev_what = what;
    }
    event_add(&c->ev, tv);
}

/* abort: reset rather than linger, so error closes leave no TIME_WAIT behind. */
void load_conn_close(struct load_conn *c, int abort) {
    if (c->fd < 0)
        return;
    if (c->ev_what)
        event_del(&c->ev);
    c->ev_what = 0;
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

static void conn_fail(struct load_conn *c, int kind, const char *why) {
    struct load_worker *w = c->w;
    struct load_stats *s = &w->stats;
    s->errors[kind]++;
    if (!s->first_error[kind][0])
        snprintf(s->first_error[kind], sizeof s->first_error[kind], "%s", why);
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
    conn_fail(c, kind, msg);
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
        conn_fail(c, LOAD_ERR_CONNECT, msg);
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
            conn_fail(c, LOAD_ERR_CONNECT, "TLS: out of memory");
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
    const struct load_plan *p = c->w->plan;
    while (c->wpos < p->req_len) {
        ssize_t n = c->ssl ? tls_client_write(c->ssl, p->req + c->wpos, p->req_len - c->wpos)
                           : send(c->fd, p->req + c->wpos, p->req_len - c->wpos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->state = CS_WRITING;
                conn_watch(c, EV_READ | EV_WRITE | EV_PERSIST, c->w->timeout_tv);
                return;
            }
            conn_fail_errno(c, LOAD_ERR_READ, c->ssl ? "TLS write" : "send", errno);
            return;
        }
        c->wpos += (size_t)n;
        c->w->stats.bytes_out += (uint64_t)n;
    }
    c->state = CS_READING;
    conn_watch(c, EV_READ | EV_PERSIST, c->w->timeout_tv);
}

static void conn_send(struct load_conn *c, uint64_t start_ns) {
    if (load_worker_stopping(c->w) || !load_conn_reserve(c)) {
        load_conn_close(c, 0);
        return;
    }
    c->start_ns = start_ns;
    c->wpos = 0;
    c->got_bytes = 0;
    load_resp_begin(&c->resp, c->w->plan->head_request);
    conn_write(c);
}

/* A whole response arrived (or a close ended a close-delimited one). */
static void conn_done(struct load_conn *c, int closed) {
    struct load_worker *w = c->w;
    uint64_t now = load_now_ns();
    load_hist_record(&w->stats.hist, now > c->start_ns ? (now - c->start_ns) / 1000u : 0);
    w->stats.requests++;
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
    if (c->state == CS_WAITING || c->state == CS_DEFERRED) {
        /* An idle keep-alive connection closed by the server: not an error. */
        load_conn_close(c, 0);
        load_worker_queue_connect(c);
    } else if (load_resp_eof(&c->resp)) {
        conn_done(c, 1);
    } else {
        conn_fail(c, LOAD_ERR_READ,
                  c->got_bytes ? "connection closed mid-response"
                               : "connection closed before the response");
    }
}

static void conn_read_once(struct load_conn *c) {
    struct load_worker *w = c->w;
    char *buf = w->rbuf;
    /* Read past the space a split head needs, then put the head in front. */
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
    if (c->state == CS_WAITING || c->state == CS_DEFERRED) {
        conn_fail(c, LOAD_ERR_PARSE, "data from the server with no request outstanding");
        return;
    }
    c->got_bytes = 1;
    size_t len = c->head_len + (size_t)n;
    if (c->head_len)
        memcpy(buf, c->head, c->head_len);
    c->head_len = 0;
    const char *why = "malformed response";
    ssize_t used = load_resp_feed(&c->resp, buf, len, &w->res, &why);
    if (used < 0) {
        conn_fail(c, LOAD_ERR_PARSE, why);
        return;
    }
    if (c->resp.state == LOAD_RESP_DONE) {
        if ((size_t)used < len)
            conn_fail(c, LOAD_ERR_PARSE, "data after the end of the response");
        else
            conn_done(c, 0);
        return;
    }
    size_t rest = len - (size_t)used; /* a head not yet complete */
    if (rest == 0)
        return;
    if (rest > c->head_cap) {
        char *p = realloc(c->head, rest);
        if (!p) {
            conn_fail(c, LOAD_ERR_READ, "out of memory");
            return;
        }
        c->head = p;
        c->head_cap = (uint32_t)rest;
    }
    memmove(c->head, buf + used, rest);
    c->head_len = (uint32_t)rest;
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
            conn_fail(c, LOAD_ERR_CONNECT, "connect timed out");
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
            conn_fail(c, LOAD_ERR_CONNECT, "TLS handshake timed out");
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
            conn_fail(c, LOAD_ERR_TIMEOUT, "request not sent within --timeout");
        return;
    case CS_READING:
        if (what & EV_READ)
            conn_read(c);
        else if (what & EV_TIMEOUT)
            conn_fail(c, LOAD_ERR_TIMEOUT, "no response progress within --timeout");
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
    default:
        return;
    }
}
