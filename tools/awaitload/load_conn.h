/*
 * load_conn: one connection's state machine, and the worker state it
 * shares (private to load_worker.c, load_conn.c and the drivers).
 *
 * A connection is a raw non-blocking socket with a single struct event
 * that serves for connect, write, read, the response timeout and (open
 * loop) the wait for the next scheduled send. In the steady state a request
 * costs one send(), one recv() and a share of an epoll_wait: the event stays
 * EV_READ|EV_PERSIST and only its timeout moves (a libevent common timeout,
 * so O(1)), and no epoll_ctl is made.
 */
#ifndef AWAITD_LOAD_CONN_H
#define AWAITD_LOAD_CONN_H

#include "load_resp.h"
#include "load_worker.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define LOAD_READ_CHUNK (64 * 1024)

enum load_conn_state {
    CS_CLOSED,     /* no socket, not queued (quota spent or stopping) */
    CS_QUEUED,     /* waiting for a connect token */
    CS_CONNECTING, /* connect() in progress */
    CS_HANDSHAKE,  /* https: TLS handshake in progress */
    CS_WRITING,    /* request partly sent */
    CS_READING,    /* request sent, response not complete */
    CS_WAITING,    /* open loop: connected, next request not yet due */
    CS_DEFERRED,   /* closed loop: next request goes out at the end of the loop pass */
    CS_PAUSED,     /* driver: waiting (load_conn_pause), the socket open or not */
};

struct load_conn {
    struct load_worker *w;
    struct event ev;
    int fd;
    short ev_what; /* what ev is assigned for; 0 = unassigned */
    unsigned char state;
    unsigned char holds_slot; /* reserved one of the worker's -n requests */
    unsigned char opened;     /* opened at least once: later opens are reconnects */
    unsigned char scheduled;  /* open loop: due_ns anchored to a real connect */
    unsigned char got_bytes;  /* bytes of the current response arrived */
    const char *req;          /* the request being sent: plan->req, or the driver's */
    size_t req_len;
    size_t wpos;              /* request bytes sent */
    unsigned expect;          /* responses outstanding (a driver may pipeline) */
    unsigned gen;             /* bumped by every close: callers see their socket went */
    const struct timeval *tv; /* deadline of the exchange under way (a common timeout) */
    void *data;               /* the driver's, per connection */
    uint64_t index;           /* global connection number */
    uint64_t start_ns;        /* latency is measured from here */
    uint64_t due_ns;          /* open loop: when the next request is due */
    uint64_t hs_start_ns;     /* https: when the TCP connection was established */
    void *ssl;                /* https: the connection's SSL (io_tls's ctx); else NULL */
    struct load_resp resp;
    char *head; /* a response head split across reads */
    uint32_t head_len, head_cap;
    struct load_conn *next_queued; /* in the connect queue */
    struct load_conn *next_send;   /* in the deferred-send list */
};

struct load_worker {
    const struct load_plan *plan;
    uint64_t first_conn, nconns, quota;
    uint64_t started, finished; /* -n accounting: slots reserved and ended */
    uint64_t interval_ns;       /* open loop: spacing of one connection's requests */
    struct event_base *base;
    const struct timeval *timeout_tv; /* a libevent common timeout: O(1) re-arming */
    struct event tick_ev, connect_ev, end_ev;
    int connect_scheduled;
    uint64_t opens; /* sockets opened, for the port parity trick */
    struct load_conn *conns;
    struct load_conn *cq_head, *cq_tail;     /* waiting for a connect token */
    struct load_conn *send_head, *send_tail; /* CS_DEFERRED, in answer order */
    double tokens, token_rate, token_burst;
    uint64_t token_ns;
    char *rbuf;
    struct http_response res; /* parse scratch */
    struct load_stats stats;
    atomic_uint_least64_t pub_requests, pub_errors;
    atomic_int done;
    pthread_t thread;
    char setup_error[128];
    void *data; /* the driver's, per worker */
};

static inline uint64_t load_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline struct timeval load_tv_from_ns(uint64_t ns) {
    struct timeval tv = {(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u)};
    return tv;
}

static inline int load_worker_stopping(const struct load_worker *w) {
    return atomic_load_explicit(w->plan->stop, memory_order_relaxed);
}

/* Take one of the worker's quota (-n), if any is left. */
static inline int load_worker_take(struct load_worker *w) {
    if (w->started == w->quota)
        return 0;
    w->started++;
    return 1;
}

/* In load_conn.c: */
/* Open a socket and start connecting (the worker calls this when a connect
 * token allows). Failures are counted and the connection queued again. */
void load_conn_open(struct load_conn *c);
/* Close the socket, if any; abort resets instead (no TIME_WAIT). */
void load_conn_close(struct load_conn *c, int abort);
/* Take one of the worker's -n slots, unless c holds one; 0 if none is left. */
int load_conn_reserve(struct load_conn *c);
/* Send the requests deferred during this loop pass (closed loop). */
void load_conn_flush_sends(struct load_worker *w);

/* For drivers. Send req[0..len) (kept by the caller until the responses
 * are in), expecting that many responses within tv (NULL: --timeout);
 * a closed connection is opened first. */
void load_conn_send(struct load_conn *c, const char *req, size_t len, unsigned expect,
                    const struct timeval *tv);
/* Do nothing for ns, then call the driver's resume (a close of the idle
 * socket meanwhile is no error). */
void load_conn_pause(struct load_conn *c, uint64_t ns);
/* Count an error of kind (first message why), reset the connection and
 * tell the driver (or, plain, reconnect). */
void load_conn_fail(struct load_conn *c, int kind, const char *why);

/* In load_worker.c: queue c for a new connection under the connect rate
 * limit (if the run goes on and a slot is left). */
void load_worker_queue_connect(struct load_conn *c);

#endif
