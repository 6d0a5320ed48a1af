/*
 * metrics: the daemon's counters and their Prometheus text rendering.
 * Counters are plain integers bumped on the loop thread; no atomics needed.
 */
#ifndef AWAITD_METRICS_H
#define AWAITD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Route classes of the request latency histogram (the router sets one per
 * request from the route's path): a bounded label set, never a path. */
enum metrics_route {
    METRICS_ROUTE_PROBE,   /* the httpbin-style probes, /health, the index page */
    METRICS_ROUTE_QUEUE,   /* /queues... */
    METRICS_ROUTE_TIMER,   /* /timers... */
    METRICS_ROUTE_CONSOLE, /* /console... */
    METRICS_ROUTE_METRICS, /* /metrics */
    METRICS_ROUTE_OTHER,   /* no route matched (404) */
    METRICS_ROUTES
};

/* Upper bounds (le, microseconds) of the request duration buckets; one
 * more bucket (+Inf) follows. */
#define METRICS_REQ_BUCKETS 19
extern const uint32_t metrics_req_bounds_us[METRICS_REQ_BUCKETS];

/* Kinds of TLS handshake failure: enum tls_fail in tls_server.h, same order. */
#define METRICS_TLS_FAIL_KINDS 6
/* Reasons an HTTP/2 connection is closed: enum h2_close in h2.h, same order. */
#define METRICS_H2_CLOSE_KINDS 11

struct metrics {
    uint64_t conns_open;        /* gauge */
    uint64_t conns_total;       /* accepted, including refused */
    uint64_t conns_refused;     /* closed at accept: max_connections or out of files */
    uint64_t requests[6];       /* by status class: [1]=1xx .. [5]=5xx; [0] unused */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t timeouts[4];       /* header, body, keep-alive (idle close), write */
    uint64_t parse_errors;      /* requests rejected by the parser (4xx/5xx + close) */
    uint64_t reply_failures;    /* answers that could not be built (no memory): closed */
    uint64_t tls_handshakes;    /* TLS handshakes completed */
    uint64_t tls_resumed;       /* of those, sessions resumed (ticket or cache) */
    uint64_t tls_handshake_failures[METRICS_TLS_FAIL_KINDS]; /* by enum tls_fail */
    int64_t tls_cert_not_after; /* the served certificate's expiry, unix s; 0 without TLS */
    uint64_t output_bytes;      /* gauge: answers queued unsent in connections' own buffers */
    uint64_t output_paused;     /* times a connection stopped parsing for unsent output */
    uint64_t output_over_budget; /* times it did so because output_budget was exceeded */
    uint64_t access_log_dropped; /* access log lines dropped: the file took none, 1 MiB waited */
    /* Request durations by route class: per bucket (not cumulative), and sums. */
    uint64_t req_hist[METRICS_ROUTES][METRICS_REQ_BUCKETS + 1];
    uint64_t req_sum_us[METRICS_ROUTES];
    uint64_t h2_conns_open;     /* gauge: HTTP/2 connections (issue 15) */
    uint64_t h2_conns_total;
    uint64_t h2_streams_open;   /* gauge */
    uint64_t h2_streams_total;
    uint64_t h2_memory_bytes;   /* gauge: nghttp2's sessions and streams + awaitd's stream structs */
    uint64_t h2_closes[METRICS_H2_CLOSE_KINDS]; /* by enum h2_close (net/h2.h) */
};

/* Count one request of class cls that took us microseconds (dispatch to
 * answer complete). A few compares: fast answers stop at the first bounds. */
static inline void metrics_request_observe(struct metrics *m, unsigned cls, uint64_t us) {
    unsigned b = 0;
    while (b < METRICS_REQ_BUCKETS && us > metrics_req_bounds_us[b])
        b++;
    m->req_hist[cls][b]++;
    m->req_sum_us[cls] += us;
}

/* The route class of a router path ("/queues/", "/get", ...). */
enum metrics_route metrics_route_of_path(const char *path);

/* Gauges that live elsewhere, sampled when /metrics is rendered. */
struct metrics_gauges {
    uint64_t timers_pending;  /* all wheel timers (deadlines, delays, ...) */
    uint64_t delays_pending;  /* /delay and /drip answers not yet sent */
    uint64_t start_time;      /* unix seconds */
    uint64_t max_connections;
    uint64_t output_budget;   /* [server] output_budget */
};

/* Render one Prometheus histogram: HELP and TYPE when help is not NULL,
 * then name_bucket (cumulative, le inclusive), name_sum and name_count, each
 * with labels ("route=\"queue\"", or NULL for none). bounds[nbounds] and sum
 * are in 10^-unit_exp of the base unit (6: us for seconds), printed as %g
 * and with unit_exp decimals; counts[nbounds + 1] are per bucket (not
 * cumulative), the last over every bound. Nonzero if the buffer failed. */
int metrics_histogram(struct buf *o, const char *name, const char *help, const char *labels,
                      const uint32_t *bounds, size_t nbounds, int unit_exp,
                      const uint64_t *counts, uint64_t sum);

int metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct buf *out);

#endif
