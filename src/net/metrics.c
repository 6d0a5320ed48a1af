#include "net/metrics.h"

#include "core/buf.h"
#include "net/h2.h"
#include "net/tls_server.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define GAUGE(name, help) "# HELP " name " " help "\n# TYPE " name " gauge\n"

const uint32_t metrics_req_bounds_us[METRICS_REQ_BUCKETS] = {
    50,     100,    250,     500,     1000,    2500,    5000,     10000,    25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000};

static const char *const route_names[METRICS_ROUTES] = {"probe",   "queue",   "timer",
                                                        "console", "metrics", "other"};

static int prefix(const char *path, const char *p) {
    size_t n = strlen(p);
    return strncmp(path, p, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

enum metrics_route metrics_route_of_path(const char *path) {
    if (prefix(path, "/queues"))
        return METRICS_ROUTE_QUEUE;
    if (prefix(path, "/timers"))
        return METRICS_ROUTE_TIMER;
    if (prefix(path, "/console"))
        return METRICS_ROUTE_CONSOLE;
    if (strcmp(path, "/metrics") == 0)
        return METRICS_ROUTE_METRICS;
    return METRICS_ROUTE_PROBE;
}

static const double unit_of_exp[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

int metrics_histogram(struct buf *o, const char *name, const char *help, const char *labels,
                      const uint32_t *bounds, size_t nbounds, int unit_exp,
                      const uint64_t *counts, uint64_t sum) {
    double unit = unit_of_exp[unit_exp];
    const char *sep = labels ? "," : "";
    labels = labels ? labels : "";
    int r = 0;
    if (help)
        r |= buf_appendf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t b = 0; b < nbounds; b++) {
        cum += counts[b];
        r |= buf_appendf(o, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep,
                         bounds[b] / unit, cum);
    }
    cum += counts[nbounds];
    r |= buf_appendf(o, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, cum);
    const char *lo = labels[0] ? "{" : "", *lc = labels[0] ? "}" : "";
    r |= buf_appendf(o, "%s_sum%s%s%s %.*f\n%s_count%s%s%s %" PRIu64 "\n", name, lo, labels, lc,
                     unit_exp, (double)sum / unit, name, lo, labels, lc, cum);
    return r;
}

/* awaitd_http_request_duration_seconds: a histogram per route class. */
static int render_request_hist(const struct metrics *m, struct buf *o) {
    int r = 0;
    for (int k = 0; k < METRICS_ROUTES; k++) {
        char label[32];
        snprintf(label, sizeof label, "route=\"%s\"", route_names[k]);
        r |= metrics_histogram(o, "awaitd_http_request_duration_seconds",
                               k ? NULL
                                 : "Time from a request's dispatch to its answer complete "
                                   "(handed to the connection), by route class.",
                               label, metrics_req_bounds_us, METRICS_REQ_BUCKETS, 6,
                               m->req_hist[k], m->req_sum_us[k]);
    }
    return r;
}

/* One unlabelled sample with its HELP and TYPE (gauge, counter). */
static int scalar(struct buf *o, const char *type, const char *name, const char *help, uint64_t v) {
    return buf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                       name, v);
}

/* A counter family of n samples, one label: name{label="values[i]"} counts[i].
 * The samples are appended in pieces, not formatted: cheaper than a printf each. */
static int family(struct buf *o, const char *name, const char *help, const char *label,
                  const char *const *values, const uint64_t *counts, int n) {
    char pre[96]; /* name{label=" */
    if (snprintf(pre, sizeof pre, "%s{%s=\"", name, label) >= (int)sizeof pre)
        return -1;
    int r = buf_appendf(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < n; i++) {
        r |= buf_appends(o, pre);
        r |= buf_appends(o, values[i]);
        r |= buf_appends(o, "\"} ");
        r |= buf_append_u64(o, counts[i]);
        r |= buf_appends(o, "\n");
    }
    return r;
}

int metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct buf *o) {
    static const char *const status_class[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    static const char *const timeout_kind[4] = {"header", "body", "keepalive", "write"};
    int r = 0;
    r |= scalar(o, "gauge", "awaitd_connections_open", "Connections open now.", m->conns_open);
    r |= scalar(o, "gauge", "awaitd_connections_max", "Configured max_connections.",
                g->max_connections);
    r |= scalar(o, "counter", "awaitd_connections_total", "Connections accepted.", m->conns_total);
    r |= scalar(o, "counter", "awaitd_connections_refused_total",
                "Connections closed at accept (max_connections or no file descriptors).",
                m->conns_refused);
    r |= family(o, "awaitd_requests_total", "Responses sent, by status class.", "class",
                status_class, m->requests + 1, 5);
    r |= render_request_hist(m, o);
    r |= family(o, "awaitd_timeouts_total", "Connections closed by a deadline, by kind.", "kind",
                timeout_kind, m->timeouts, 4);
    r |= scalar(o, "counter", "awaitd_parse_errors_total", "Requests rejected by the HTTP parser.",
                m->parse_errors);
    r |= scalar(o, "counter", "awaitd_reply_failures_total",
                "Answers that could not be built (out of memory); each closed its connection.",
                m->reply_failures);
    r |= scalar(o, "counter", "awaitd_access_log_dropped_total",
                "Access log lines dropped because the log file or pipe did not take them.",
                m->access_log_dropped);
    r |= scalar(o, "counter", "awaitd_tls_handshakes_total", "TLS handshakes completed.",
                m->tls_handshakes);
    r |= scalar(o, "counter", "awaitd_tls_sessions_resumed_total",
                "TLS handshakes that resumed a session (no full handshake).", m->tls_resumed);
    r |= family(o, "awaitd_tls_handshake_failures_total",
                "TLS connections closed before the handshake completed, by reason.", "reason",
                tls_fail_names, m->tls_handshake_failures, METRICS_TLS_FAIL_KINDS);
    if (m->tls_cert_not_after)
        r |= buf_appendf(o, GAUGE("awaitd_tls_certificate_expiry_seconds",
                                  "Unix time the served TLS certificate expires.")
                         "awaitd_tls_certificate_expiry_seconds %" PRId64 "\n",
                         m->tls_cert_not_after);
    r |= scalar(o, "counter", "awaitd_bytes_in_total", "Bytes read from clients.", m->bytes_in);
    r |= scalar(o, "counter", "awaitd_bytes_out_total", "Bytes written to clients.", m->bytes_out);
    r |= scalar(o, "gauge", "awaitd_output_bytes",
                "Bytes of answers queued unsent in connections' buffers.", m->output_bytes);
    r |= scalar(o, "gauge", "awaitd_output_budget_bytes", "Configured output_budget (0: none).",
                g->output_budget);
    r |= scalar(o, "counter", "awaitd_output_paused_total",
                "Times a connection stopped reading and parsing requests because "
                "its unsent answers passed max_output (or output_budget).",
                m->output_paused);
    r |= scalar(o, "counter", "awaitd_output_over_budget_total",
                "Of those, the times output_budget (all connections) was the reason.",
                m->output_over_budget);
    r |= scalar(o, "gauge", "awaitd_h2_connections_open", "HTTP/2 connections open now.",
                m->h2_conns_open);
    r |= scalar(o, "counter", "awaitd_h2_connections_total", "Connections that spoke HTTP/2.",
                m->h2_conns_total);
    r |= scalar(o, "gauge", "awaitd_h2_streams_open", "HTTP/2 streams open now.",
                m->h2_streams_open);
    r |= scalar(o, "counter", "awaitd_h2_streams_total", "HTTP/2 streams (requests) opened.",
                m->h2_streams_total);
    r |= scalar(o, "gauge", "awaitd_h2_memory_bytes",
                "Heap held by HTTP/2 state: nghttp2's sessions and streams (HPACK "
                "tables, queued frames) and awaitd's per-stream structs.",
                m->h2_memory_bytes);
    r |= family(o, "awaitd_h2_closes_total",
                "HTTP/2 connections closed with a GOAWAY for an error or a flood, by reason.",
                "reason", h2_close_names, m->h2_closes, METRICS_H2_CLOSE_KINDS);
    r |= scalar(o, "gauge", "awaitd_timers_pending", "Timers pending in the wheel (all kinds).",
                g->timers_pending);
    r |= scalar(o, "gauge", "awaitd_delays_pending",
                "Probe answers over time (/delay, /drip, /sse, ...) and open WebSockets.",
                g->delays_pending);
    r |= scalar(o, "gauge", "awaitd_start_time_seconds", "Unix time the daemon started.",
                g->start_time);
    return r ? -1 : 0;
}
