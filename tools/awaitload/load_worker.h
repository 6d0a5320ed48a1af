/*
 * load_worker: one thread, one event_base, a share of the connections
 * (each run by load_conn.c), the connect rate limit and the run's end;
 * load_run starts the workers, shows progress and joins them.
 *
 * Workers share nothing while running but the read-only plan and a stop
 * flag; each keeps its own stats and histogram, merged after the join.
 *
 * The plain scenario (one pre-rendered request, again and again) is built
 * in. Another scenario (load_queue.c) is a load_driver: it decides what
 * each connection sends and what a response means, and load_conn.c does
 * the connecting, TLS, sending, reading, framing and deadlines for it.
 */
#ifndef AWAITD_LOAD_WORKER_H
#define AWAITD_LOAD_WORKER_H

#include "load_hist.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

enum load_err {
    LOAD_ERR_CONNECT, /* socket() or connect() failed or timed out, or the TLS handshake */
    LOAD_ERR_READ,    /* the connection broke or closed mid-exchange (writes too) */
    LOAD_ERR_TIMEOUT, /* a response made no progress for --timeout */
    LOAD_ERR_PARSE,   /* the response was not valid HTTP/1.1 */
    LOAD_ERR_KINDS,
};

/* What every worker shares, read-only once the threads start. */
struct load_plan {
    const struct sockaddr *addr;
    socklen_t addrlen;
    const char *req; /* the pre-rendered request */
    size_t req_len;
    int head_request; /* responses have no body */
    double rate;      /* open loop: requests/s over all connections; 0 = closed */
    uint64_t total_conns;
    unsigned threads;
    uint64_t timeout_us;
    double connect_rate;              /* new connections/s over all threads */
    uint64_t t0_ns;                   /* run start, monotonic */
    uint64_t end_ns;                  /* deadline; UINT64_MAX for none */
    atomic_int *stop;                 /* set by main (SIGINT) or by a worker giving up */
    struct ssl_ctx_st *tls;           /* https://: the client context; NULL for http:// */
    const char *tls_host;             /* for SNI and the certificate's name check */
    const struct load_driver *driver; /* NULL: the plain scenario (req) */
    void *driver_plan;                /* the driver's own shared plan */
};

/* The per-second timeline: responses and errors in each second of the run
 * (from t0); a run longer than this keeps the totals, not the seconds. */
#define LOAD_TIMELINE_MAX 3600

struct load_stats {
    uint64_t requests;  /* complete responses */
    uint64_t status[6]; /* [1]..[5]: 1xx..5xx (only final responses, so [1] stays 0) */
    uint64_t errors[LOAD_ERR_KINDS];
    uint64_t bytes_in, bytes_out;
    uint64_t connects;               /* connections established */
    uint64_t reconnects;             /* connections opened again after a close */
    uint64_t end_ns;                 /* when this worker stopped */
    uint64_t handshakes;             /* TLS handshakes completed (each a full one: no resumption) */
    struct load_hist handshake_hist; /* their durations, connect to handshake done */
    char first_error[LOAD_ERR_KINDS][96];
    struct load_hist hist;
    uint32_t second_ok[LOAD_TIMELINE_MAX];  /* responses completed in second i */
    uint32_t second_err[LOAD_TIMELINE_MAX]; /* errors in second i */
};

/* Count one response (err 0) or error (err 1) in the second it happened. */
static inline void load_stats_second(struct load_stats *s, uint64_t t0_ns, uint64_t now_ns,
                                     int err) {
    uint64_t i = now_ns > t0_ns ? (now_ns - t0_ns) / 1000000000u : 0;
    if (i < LOAD_TIMELINE_MAX)
        (err ? s->second_err : s->second_ok)[i]++;
}

struct load_worker;
struct load_conn;
struct http_response;

/*
 * A scenario other than the plain one. Its connections send what the
 * driver gives load_conn_send() and read whole responses, which must be
 * framed by Content-Length (or have no body). Every hook runs on the
 * worker's thread.
 */
struct load_driver {
    /* The worker's loop is set up: start the connections (w->conns). */
    int (*start)(struct load_worker *w);
    /* One whole response to c's request (c->expect already counts it off).
     * body is the response's body (len bytes) in a buffer of the
     * connection's, valid during the call; res is its parsed head. */
    void (*response)(struct load_conn *c, const struct http_response *res, const char *body,
                     size_t len);
    /* c failed: the error is counted and the socket closed (reset). */
    void (*failed)(struct load_conn *c);
    /* The wait of load_conn_pause() is over. */
    void (*resume)(struct load_conn *c);
    void (*tick)(struct load_worker *w); /* every 100 ms */
    void (*end)(struct load_worker *w);  /* -d is over (else the loop just ends) */
    void (*teardown)(struct load_worker *w);
    /* What the progress line counts (done units so far), for load_run. */
    uint64_t (*progress)(const struct load_worker *w);
};

/* Connections [first_conn, first_conn + nconns) of plan->total_conns;
 * quota: requests this worker may start (UINT64_MAX for no -n). */
struct load_worker *load_worker_new(const struct load_plan *plan, uint64_t first_conn,
                                    uint64_t nconns, uint64_t quota);
int load_worker_start(struct load_worker *w);
void load_worker_join(struct load_worker *w);
void load_worker_free(struct load_worker *w);

/* The driver's per-worker state. */
void *load_worker_data(const struct load_worker *w);
void load_worker_set_data(struct load_worker *w, void *data);

/* The quota of worker i, which runs connections [first, first + nconns). */
typedef uint64_t (*load_quota_fn)(const void *arg, unsigned i, unsigned threads, uint64_t first,
                                  uint64_t nconns);

/*
 * Start plan->threads workers over plan->total_conns connections (t0_ns
 * and end_ns set here from duration_us), wait for them with a progress
 * line once a second on a terminal ("123 <rate_unit>/s, 4567 <unit>"),
 * and join them. w gets the workers, which the caller frees. Returns how
 * many started (fewer than plan->threads after an error, said on stderr);
 * *interrupted is 1 if SIGINT or SIGTERM cut the run short.
 */
unsigned load_run(struct load_plan *plan, uint64_t duration_us, load_quota_fn quota,
                  const void *quota_arg, const char *rate_unit, const char *unit,
                  struct load_worker **w, int *interrupted);

/* From any thread while running: 1 once the worker's loop has ended. */
int load_worker_finished(struct load_worker *w);
/* From any thread while running: counts published every 100 ms. */
void load_worker_progress(struct load_worker *w, uint64_t *requests, uint64_t *errors);
/* After the join. NULL-free: setup_error is "" unless the loop failed to start. */
const struct load_stats *load_worker_stats(const struct load_worker *w);
const char *load_worker_setup_error(const struct load_worker *w);

static inline const char *load_err_name(int kind) {
    static const char *const names[LOAD_ERR_KINDS] = {"connect", "read", "timeout", "parse"};
    return names[kind];
}

#endif
