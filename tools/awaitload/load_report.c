#include "load_report.h"

#include "core/buf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

void load_stats_merge(struct load_stats *dst, const struct load_stats *src) {
    dst->requests += src->requests;
    for (int i = 0; i < 6; i++)
        dst->status[i] += src->status[i];
    for (int k = 0; k < LOAD_ERR_KINDS; k++) {
        dst->errors[k] += src->errors[k];
        if (!dst->first_error[k][0])
            memcpy(dst->first_error[k], src->first_error[k], sizeof dst->first_error[k]);
    }
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    dst->connects += src->connects;
    dst->reconnects += src->reconnects;
    if (src->end_ns > dst->end_ns)
        dst->end_ns = src->end_ns;
    load_hist_merge(&dst->hist, &src->hist);
    dst->handshakes += src->handshakes;
    load_hist_merge(&dst->handshake_hist, &src->handshake_hist);
    for (unsigned i = 0; i < LOAD_TIMELINE_MAX; i++) {
        dst->second_ok[i] += src->second_ok[i];
        dst->second_err[i] += src->second_err[i];
    }
}

/* ---- the histogram, in rows of a 1-2-5 series ----------------------------------- */

/* Row i covers values up to row_bound(i) us (and above row_bound(i - 1)). */
#define HIST_ROWS 27 /* 1us .. 200s: past LOAD_HIST_MAX_VALUE (134 s) */
static uint64_t row_bound(unsigned i) {
    static const uint64_t steps[3] = {1, 2, 5};
    uint64_t p = 1;
    for (unsigned k = 0; k < i / 3; k++)
        p *= 10;
    return steps[i % 3] * p;
}

/* counts[r]: values in row r; *first and *last: the non-empty range. */
static void hist_rows(const struct load_hist *h, uint64_t counts[HIST_ROWS], unsigned *first,
                      unsigned *last) {
    memset(counts, 0, HIST_ROWS * sizeof counts[0]);
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        if (!h->counts[i])
            continue;
        uint64_t v = load_hist_bucket_value(i);
        v = v < h->min ? h->min : v > h->max ? h->max : v; /* the exact extremes */
        unsigned r = 0;
        while (r < HIST_ROWS - 1 && v > row_bound(r))
            r++;
        counts[r] += h->counts[i];
    }
    *first = HIST_ROWS;
    *last = 0;
    for (unsigned r = 0; r < HIST_ROWS; r++)
        if (counts[r]) {
            if (*first == HIST_ROWS)
                *first = r;
            *last = r;
        }
}

void load_report_histogram(FILE *f, const char *label, const struct load_hist *h) {
    uint64_t counts[HIST_ROWS], top = 0, cum = 0;
    unsigned first, last;
    char a[32];
    hist_rows(h, counts, &first, &last);
    fprintf(f, "  %s histogram (%" PRIu64 " values; row = up to the bound, within 0.39%%)\n",
            label, h->total);
    if (first == HIST_ROWS) {
        fprintf(f, "    (empty)\n");
        return;
    }
    for (unsigned r = first; r <= last; r++)
        top = counts[r] > top ? counts[r] : top;
    for (unsigned r = first; r <= last; r++) {
        cum += counts[r];
        int bar = (int)((counts[r] * 40 + top - 1) / top);
        fprintf(f, "    <= %9s %12" PRIu64 " %6.2f%% %7.2f%%  %.*s\n",
                load_report_fmt_us(a, sizeof a, row_bound(r)), counts[r],
                100.0 * (double)counts[r] / (double)h->total, 100.0 * (double)cum / (double)h->total,
                bar, "########################################");
    }
}

/* "histogram_us": [{"le": BOUND, "count": N}, ...] over the non-empty range. */
static int hist_json_rows(struct buf *b, const struct load_hist *h) {
    uint64_t counts[HIST_ROWS];
    unsigned first, last;
    hist_rows(h, counts, &first, &last);
    int r = buf_appends(b, "\"histogram_us\": [");
    for (unsigned i = first; i <= last && first < HIST_ROWS; i++)
        r |= buf_appendf(b, "%s{\"le\": %" PRIu64 ", \"count\": %" PRIu64 "}", i > first ? ", " : "",
                         row_bound(i), counts[i]);
    return r | buf_appends(b, "], ");
}

/* "timeline": {"interval_s": 1, "responses": [...], "errors": [...]}, one entry
 * per second of the run. */
static int timeline_json(struct buf *b, const struct load_summary *s) {
    const struct load_stats *t = &s->total;
    unsigned n = s->duration_s > 0 ? (unsigned)ceil(s->duration_s - 1e-9) : 0;
    for (unsigned i = n; i < LOAD_TIMELINE_MAX; i++)
        if (t->second_ok[i] || t->second_err[i])
            n = i + 1; /* an answer that landed just past the measured end */
    if (n > LOAD_TIMELINE_MAX)
        n = LOAD_TIMELINE_MAX;
    int r = buf_appends(b, "\"timeline\": {\"interval_s\": 1, \"responses\": [");
    for (unsigned i = 0; i < n; i++)
        r |= buf_appendf(b, "%s%u", i ? ", " : "", t->second_ok[i]);
    r |= buf_appends(b, "], \"errors\": [");
    for (unsigned i = 0; i < n; i++)
        r |= buf_appendf(b, "%s%u", i ? ", " : "", t->second_err[i]);
    return r | buf_appendf(b, "], \"truncated\": %s}, ",
                           s->duration_s > LOAD_TIMELINE_MAX ? "true" : "false");
}

/* 780us, 1.40ms, 1.234s: three significant digits are what a reader wants. */
const char *load_report_fmt_us(char *out, size_t n, uint64_t us) {
    if (us < 1000)
        snprintf(out, n, "%" PRIu64 "us", us);
    else if (us < 1000000)
        snprintf(out, n, "%.2fms", (double)us / 1e3);
    else
        snprintf(out, n, "%.3fs", (double)us / 1e6);
    return out;
}

void load_report_latency(FILE *f, const char *label, const struct load_hist *h) {
    char a[32], b[32], c[32], d[32], e[32], m[32];
    fprintf(f, "  %-11s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n", label,
            load_report_fmt_us(a, sizeof a, load_hist_percentile(h, 50)),
            load_report_fmt_us(b, sizeof b, load_hist_percentile(h, 90)),
            load_report_fmt_us(c, sizeof c, load_hist_percentile(h, 99)),
            load_report_fmt_us(d, sizeof d, load_hist_percentile(h, 99.9)),
            load_report_fmt_us(e, sizeof e, h->max),
            load_report_fmt_us(m, sizeof m, (uint64_t)(load_hist_mean(h) + 0.5)));
}

static double rps_of(const struct load_summary *s) {
    return s->duration_s > 0 ? (double)s->total.requests / s->duration_s : 0.0;
}

void load_report_text(FILE *f, const struct load_summary *s) {
    const struct load_stats *t = &s->total;
    const struct load_hist *h = &t->hist;
    char a[32], b[32], c[32], e[32], m[32];

    fprintf(f, "awaitload %s\n", s->url);
    if (s->rate > 0)
        fprintf(f, "  open loop at %.1f requests/s", s->rate);
    else
        fprintf(f, "  closed loop");
    fprintf(f, ", %" PRIu64 " connection%s, %u thread%s, %.2f s%s\n", s->connections,
            s->connections == 1 ? "" : "s", s->threads, s->threads == 1 ? "" : "s", s->duration_s,
            s->interrupted ? " (interrupted)" : "");
    fprintf(f, "  requests    %" PRIu64 " (%.1f/s)\n", t->requests, rps_of(s));
    load_report_latency(f, "latency", h);
    if (t->handshakes) {
        /* New https:// connections: their TLS handshakes, not in the latency above
         * (closed loop; an open loop's schedule counts them in). */
        const struct load_hist *hh = &t->handshake_hist;
        fprintf(f, "  handshake   p50 %s  p90 %s  p99 %s  max %s  mean %s  (%" PRIu64 " TLS)\n",
                load_report_fmt_us(a, sizeof a, load_hist_percentile(hh, 50)),
                load_report_fmt_us(b, sizeof b, load_hist_percentile(hh, 90)),
                load_report_fmt_us(c, sizeof c, load_hist_percentile(hh, 99)),
                load_report_fmt_us(e, sizeof e, hh->max),
                load_report_fmt_us(m, sizeof m, (uint64_t)(load_hist_mean(hh) + 0.5)),
                t->handshakes);
    }
    fprintf(f, "  status     ");
    int any = 0;
    for (int i = 1; i <= 5; i++) {
        if (t->status[i]) {
            fprintf(f, " %dxx %" PRIu64, i, t->status[i]);
            any = 1;
        }
    }
    fprintf(f, "%s\n", any ? "" : " none");
    uint64_t errs = 0;
    for (int k = 0; k < LOAD_ERR_KINDS; k++)
        errs += t->errors[k];
    fprintf(f, "  errors     ");
    if (!errs)
        fprintf(f, " none\n");
    else {
        for (int k = 0; k < LOAD_ERR_KINDS; k++)
            fprintf(f, " %s %" PRIu64, load_err_name(k), t->errors[k]);
        fprintf(f, "\n");
        for (int k = 0; k < LOAD_ERR_KINDS; k++)
            if (t->errors[k])
                fprintf(f, "    first %s error: %s\n", load_err_name(k), t->first_error[k]);
    }
    fprintf(f, "  bytes       %" PRIu64 " in (%.2f MB/s), %" PRIu64 " out\n", t->bytes_in,
            s->duration_s > 0 ? (double)t->bytes_in / s->duration_s / 1e6 : 0.0, t->bytes_out);
    fprintf(f, "  connections %" PRIu64 " established, %" PRIu64 " reconnects\n", t->connects,
            t->reconnects);
    if (s->histogram)
        load_report_histogram(f, "latency", h);
}

void load_report_json(FILE *f, const struct load_summary *s) {
    const struct load_stats *t = &s->total;
    const struct load_hist *h = &t->hist;
    struct buf b = BUF_INIT;
    int r = buf_appendf(&b,
                        "{\"requests\": %" PRIu64 ", \"duration_s\": %.3f, \"rps\": %.1f, "
                        "\"bytes_in\": %" PRIu64 ", \"bytes_out\": %" PRIu64 ", \"status\": {",
                        t->requests, s->duration_s, rps_of(s), t->bytes_in, t->bytes_out);
    for (int i = 1; i <= 5; i++)
        r |= buf_appendf(&b, "%s\"%dxx\": %" PRIu64, i > 1 ? ", " : "", i, t->status[i]);
    r |= buf_appends(&b, "}, \"errors\": {");
    for (int k = 0; k < LOAD_ERR_KINDS; k++)
        r |= buf_appendf(&b, "%s\"%s\": %" PRIu64, k ? ", " : "", load_err_name(k), t->errors[k]);
    r |= buf_appendf(
        &b,
        "}, \"latency_us\": {\"p50\": %" PRIu64 ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64
        ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 ", \"mean\": %.1f}, ",
        load_hist_percentile(h, 50), load_hist_percentile(h, 90), load_hist_percentile(h, 99),
        load_hist_percentile(h, 99.9), h->max, load_hist_mean(h));
    r |= hist_json_rows(&b, h);
    r |= timeline_json(&b, s);
    if (s->error) {
        r |= buf_appends(&b, "\"error\": ");
        r |= buf_append_json_str(&b, s->error, strlen(s->error));
        r |= buf_appends(&b, ", ");
    }
    if (t->handshakes) {
        const struct load_hist *hh = &t->handshake_hist;
        r |= buf_appendf(&b,
                         "\"tls_handshakes\": %" PRIu64 ", \"handshake_us\": {\"p50\": %" PRIu64
                         ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"max\": %" PRIu64
                         ", \"mean\": %.1f}, ",
                         t->handshakes, load_hist_percentile(hh, 50), load_hist_percentile(hh, 90),
                         load_hist_percentile(hh, 99), hh->max, load_hist_mean(hh));
    }
    r |= buf_appendf(&b,
                     "\"connections\": %" PRIu64 ", \"threads\": %u, \"mode\": \"%s\", "
                     "\"rate\": %.1f, \"reconnects\": %" PRIu64 ", \"interrupted\": %s, "
                     "\"url\": ",
                     s->connections, s->threads, s->rate > 0 ? "open" : "closed", s->rate,
                     t->reconnects, s->interrupted ? "true" : "false");
    r |= buf_append_json_str(&b, s->url, strlen(s->url));
    r |= buf_appends(&b, "}\n");
    if (r == 0)
        fwrite(buf_start(&b), 1, b.len, f);
    buf_free(&b);
}

void load_report_progress(FILE *f, double elapsed_s, double rate, const char *rate_unit,
                          uint64_t done, const char *unit, uint64_t errors) {
    fprintf(f, "\r\033[K[%5.0fs] %.0f %s/s, %" PRIu64 " %s, %" PRIu64 " errors", elapsed_s, rate,
            rate_unit, done, unit, errors);
    fflush(f);
}

void load_report_progress_clear(FILE *f) {
    fputs("\r\033[K", f);
    fflush(f);
}

void load_report_failure(const struct load_stats *s, char *out, size_t outlen) {
    int worst = -1;
    for (int k = 0; k < LOAD_ERR_KINDS; k++)
        if (s->errors[k] && (worst < 0 || s->errors[k] > s->errors[worst]))
            worst = k;
    if (worst < 0) {
        snprintf(out, outlen, "no response arrived before the run ended");
        return;
    }
    snprintf(out, outlen, "%" PRIu64 " %s error%s (first: %s)", s->errors[worst],
             load_err_name(worst), s->errors[worst] == 1 ? "" : "s", s->first_error[worst]);
}

void load_report_json_error(FILE *f, const char *msg, int status, const char *url) {
    struct buf b = BUF_INIT;
    int r = buf_appends(&b, "{\"error\": ");
    r |= buf_append_json_str(&b, msg, strlen(msg));
    r |= buf_appendf(&b, ", \"exit_status\": %d, \"url\": ", status);
    if (url)
        r |= buf_append_json_str(&b, url, strlen(url));
    else
        r |= buf_appends(&b, "null");
    r |= buf_appends(&b, "}\n");
    if (r == 0)
        fwrite(buf_start(&b), 1, b.len, f);
    buf_free(&b);
    fflush(f);
}

int load_report_fail(int json, const char *url, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "awaitload: %s\n", msg);
    if (json)
        load_report_json_error(stdout, msg, status, url);
    return status;
}
