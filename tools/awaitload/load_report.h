/*
 * load_report: the end-of-run summary (text for people, --json for scripts
 * and the benchmark) and the live progress line.
 */
#ifndef AWAITD_LOAD_REPORT_H
#define AWAITD_LOAD_REPORT_H

#include "load_worker.h"

#include <stdint.h>
#include <stdio.h>

struct load_summary {
    const char *url;
    uint64_t connections;
    unsigned threads;
    double rate;       /* open loop target; 0 = closed loop */
    double duration_s; /* from the run's start to the last worker's stop */
    int interrupted;   /* stopped early by SIGINT */
    int histogram;     /* --histogram: the text report prints the latency histogram */
    const char *error; /* why the run failed (no responses, target rate missed), or NULL */
    struct load_stats total;
};

/* dst += src (counts, histogram; first errors kept from whichever came first). */
void load_stats_merge(struct load_stats *dst, const struct load_stats *src);

void load_report_text(FILE *f, const struct load_summary *s);
/* One JSON object on one line:
 * {"requests","duration_s","rps","bytes_in","bytes_out","status":{"1xx".."5xx"},
 *  "errors":{"connect","read","timeout","parse"},"latency_us":{"p50","p90","p99",
 *  "p999","max","mean"},"connections","threads","mode","rate","reconnects","url"}
 * plus, after https:// runs that opened connections, "tls_handshakes" and
 * "handshake_us":{"p50","p90","p99","max","mean"} before "connections". */
void load_report_json(FILE *f, const struct load_summary *s);
/* ... and after "latency_us": "histogram_us": [{"le": BOUND_US, "count": N}, ...]
 * (rows of a 1-2-5 series from the first to the last non-empty one),
 * "timeline": {"interval_s": 1, "responses": [...], "errors": [...],
 * "truncated": false} (one entry per second of the run), and "error": "..."
 * when s->error is set. */

/* The histogram as text rows: "<= BOUND  count  percent  cumulative  bar". */
void load_report_histogram(FILE *f, const char *label, const struct load_hist *h);

/* {"error": msg, "exit_status": status, "url": url}: --json when a run fails
 * before it has anything to report. */
void load_report_json_error(FILE *f, const char *msg, int status, const char *url);

/* A run that fails: "awaitload: MSG" on stderr and, when json is set, the
 * object above on stdout. Returns status. */
int load_report_fail(int json, const char *url, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "\r[  3s] 41234 req/s, 123456 requests, 0 errors" (no newline), with
 * rate_unit "req" and unit "requests". */
void load_report_progress(FILE *f, double elapsed_s, double rate, const char *rate_unit,
                          uint64_t done, const char *unit, uint64_t errors);
/* Erase the progress line. */
void load_report_progress_clear(FILE *f);

/* 780us, 1.40ms, 1.234s (three significant digits) into out; returns out. */
const char *load_report_fmt_us(char *out, size_t n, uint64_t us);

/* "  <label, 11 wide> p50 ..  p90 ..  p99 ..  p99.9 ..  max ..  mean ..". */
void load_report_latency(FILE *f, const char *label, const struct load_hist *h);

/* A one-line account of why a run got no responses ("12 connect errors
 * (first: connect: Connection refused)"), into out. */
void load_report_failure(const struct load_stats *s, char *out, size_t outlen);

#endif
