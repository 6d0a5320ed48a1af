#include "load_report.h"

#include "core/buf.h"

#include <inttypes.h>
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
