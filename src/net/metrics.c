#include "net/metrics.h"

#include "core/buf.h"
#include "net/tls_server.h"

#include <inttypes.h>

#define COUNTER(name, help) "# HELP " name " " help "\n# TYPE " name " counter\n"
#define GAUGE(name, help) "# HELP " name " " help "\n# TYPE " name " gauge\n"

int metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct buf *o) {
    static const char *const timeout_kind[4] = {"header", "body", "keepalive", "write"};
    int r = 0;
    r |= buf_appendf(o, GAUGE("awaitd_connections_open", "Connections open now.")
                     "awaitd_connections_open %" PRIu64 "\n", m->conns_open);
    r |= buf_appendf(o, GAUGE("awaitd_connections_max", "Configured max_connections.")
                     "awaitd_connections_max %" PRIu64 "\n", g->max_connections);
    r |= buf_appendf(o, COUNTER("awaitd_connections_total", "Connections accepted.")
                     "awaitd_connections_total %" PRIu64 "\n", m->conns_total);
    r |= buf_appendf(o, COUNTER("awaitd_connections_refused_total",
                                "Connections closed at accept (max_connections or no file descriptors).")
                     "awaitd_connections_refused_total %" PRIu64 "\n", m->conns_refused);
    r |= buf_appends(o, COUNTER("awaitd_requests_total", "Responses sent, by status class."));
    for (int i = 1; i <= 5; i++)
        r |= buf_appendf(o, "awaitd_requests_total{class=\"%dxx\"} %" PRIu64 "\n", i,
                         m->requests[i]);
    r |= buf_appends(o, COUNTER("awaitd_timeouts_total", "Connections closed by a deadline, by kind."));
    for (int i = 0; i < 4; i++)
        r |= buf_appendf(o, "awaitd_timeouts_total{kind=\"%s\"} %" PRIu64 "\n", timeout_kind[i],
                         m->timeouts[i]);
    r |= buf_appendf(o, COUNTER("awaitd_parse_errors_total", "Requests rejected by the HTTP parser.")
                     "awaitd_parse_errors_total %" PRIu64 "\n", m->parse_errors);
    r |= buf_appendf(o, COUNTER("awaitd_reply_failures_total",
                                "Answers that could not be built (out of memory); each closed its connection.")
                     "awaitd_reply_failures_total %" PRIu64 "\n", m->reply_failures);
    r |= buf_appendf(o, COUNTER("awaitd_access_log_dropped_total",
                                "Access log lines dropped because the log file or pipe did not take them.")
                     "awaitd_access_log_dropped_total %" PRIu64 "\n", m->access_log_dropped);
    r |= buf_appendf(o, COUNTER("awaitd_tls_handshakes_total", "TLS handshakes completed.")
                     "awaitd_tls_handshakes_total %" PRIu64 "\n", m->tls_handshakes);
    r |= buf_appendf(o, COUNTER("awaitd_tls_sessions_resumed_total",
                                "TLS handshakes that resumed a session (no full handshake).")
                     "awaitd_tls_sessions_resumed_total %" PRIu64 "\n", m->tls_resumed);
    r |= buf_appends(o, COUNTER("awaitd_tls_handshake_failures_total",
                                "TLS connections closed before the handshake completed, by reason."));
    for (int i = 0; i < METRICS_TLS_FAIL_KINDS; i++)
        r |= buf_appendf(o, "awaitd_tls_handshake_failures_total{reason=\"%s\"} %" PRIu64 "\n",
                         tls_fail_names[i], m->tls_handshake_failures[i]);
    if (m->tls_cert_not_after)
        r |= buf_appendf(o, GAUGE("awaitd_tls_certificate_expiry_seconds",
                                  "Unix time the served TLS certificate expires.")
                         "awaitd_tls_certificate_expiry_seconds %" PRId64 "\n",
                         m->tls_cert_not_after);
    r |= buf_appendf(o, COUNTER("awaitd_bytes_in_total", "Bytes read from clients.")
                     "awaitd_bytes_in_total %" PRIu64 "\n", m->bytes_in);
    r |= buf_appendf(o, COUNTER("awaitd_bytes_out_total", "Bytes written to clients.")
                     "awaitd_bytes_out_total %" PRIu64 "\n", m->bytes_out);
    r |= buf_appendf(o, GAUGE("awaitd_output_bytes",
                              "Bytes of answers queued unsent in connections' buffers.")
                     "awaitd_output_bytes %" PRIu64 "\n", m->output_bytes);
    r |= buf_appendf(o, GAUGE("awaitd_output_budget_bytes", "Configured output_budget (0: none).")
                     "awaitd_output_budget_bytes %" PRIu64 "\n", g->output_budget);
    r |= buf_appendf(o, COUNTER("awaitd_output_paused_total",
                                "Times a connection stopped reading and parsing requests because "
                                "its unsent answers passed max_output (or output_budget).")
                     "awaitd_output_paused_total %" PRIu64 "\n", m->output_paused);
    r |= buf_appendf(o, COUNTER("awaitd_output_over_budget_total",
                                "Of those, the times output_budget (all connections) was the reason.")
                     "awaitd_output_over_budget_total %" PRIu64 "\n", m->output_over_budget);
    r |= buf_appendf(o, GAUGE("awaitd_timers_pending", "Timers pending in the wheel (all kinds).")
                     "awaitd_timers_pending %" PRIu64 "\n", g->timers_pending);
    r |= buf_appendf(o, GAUGE("awaitd_delays_pending", "Probe answers over time (/delay, /drip, /sse, ...) and open WebSockets.")
                     "awaitd_delays_pending %" PRIu64 "\n", g->delays_pending);
    r |= buf_appendf(o, GAUGE("awaitd_start_time_seconds", "Unix time the daemon started.")
                     "awaitd_start_time_seconds %" PRIu64 "\n", g->start_time);
    return r ? -1 : 0;
}
