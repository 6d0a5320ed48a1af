/* Unit tests of the metrics modules: the request latency histogram (bucket
 * edges, cumulative rendering, route classes) and the /proc parsing and
 * rendering of the process_* families. */
#include "core/buf.h"
#include "net/metrics.h"
#include "net/metrics_process.h"

#include "check_main.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The value of the sample line that starts with `series ` in text; -1 if none. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* metrics_render's text into o, NUL-terminated. */
static const char *render(const struct metrics *m, struct buf *o) {
    static struct metrics_gauges g;
    ck_assert_int_eq(metrics_render(m, &g, o), 0);
    ck_assert_int_eq(buf_append(o, "", 1), 0);
    return buf_start(o);
}

START_TEST(test_route_classes) {
    ck_assert_int_eq(metrics_route_of_path("/queues"), METRICS_ROUTE_QUEUE);
    ck_assert_int_eq(metrics_route_of_path("/queues/"), METRICS_ROUTE_QUEUE);
    ck_assert_int_eq(metrics_route_of_path("/timers/"), METRICS_ROUTE_TIMER);
    ck_assert_int_eq(metrics_route_of_path("/console"), METRICS_ROUTE_CONSOLE);
    ck_assert_int_eq(metrics_route_of_path("/console/"), METRICS_ROUTE_CONSOLE);
    ck_assert_int_eq(metrics_route_of_path("/metrics"), METRICS_ROUTE_METRICS);
    ck_assert_int_eq(metrics_route_of_path("/get"), METRICS_ROUTE_PROBE);
    ck_assert_int_eq(metrics_route_of_path("/delay/"), METRICS_ROUTE_PROBE);
    ck_assert_int_eq(metrics_route_of_path("/health"), METRICS_ROUTE_PROBE);
    ck_assert_int_eq(metrics_route_of_path("/"), METRICS_ROUTE_PROBE);
    ck_assert_int_eq(metrics_route_of_path("/queuesx"), METRICS_ROUTE_PROBE);
}
END_TEST

START_TEST(test_request_histogram) {
    static struct metrics m; /* large: not on the stack */
    memset(&m, 0, sizeof m);
    /* le is inclusive: 50 us is in le=5e-05, 51 us in le=0.0001. */
    metrics_request_observe(&m, METRICS_ROUTE_PROBE, 0);
    metrics_request_observe(&m, METRICS_ROUTE_PROBE, 50);
    metrics_request_observe(&m, METRICS_ROUTE_PROBE, 51);
    metrics_request_observe(&m, METRICS_ROUTE_QUEUE, 1000000);
    metrics_request_observe(&m, METRICS_ROUTE_QUEUE, 61000000); /* past the last bound */
    struct buf o = {0};
    const char *t = render(&m, &o);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_bucket{route=\"probe\","
                                  "le=\"5e-05\"}"), 2);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_bucket{route=\"probe\","
                                  "le=\"0.0001\"}"), 3);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_bucket{route=\"probe\","
                                  "le=\"+Inf\"}"), 3);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_count{route=\"probe\"}"),
                        3);
    ck_assert_double_eq_tol(
        sample(t, "awaitd_http_request_duration_seconds_sum{route=\"probe\"}"), 101e-6, 1e-9);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_bucket{route=\"queue\","
                                  "le=\"0.5\"}"), 0);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_bucket{route=\"queue\","
                                  "le=\"1\"}"), 1);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_bucket{route=\"queue\","
                                  "le=\"60\"}"), 1);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_bucket{route=\"queue\","
                                  "le=\"+Inf\"}"), 2);
    ck_assert_double_eq_tol(
        sample(t, "awaitd_http_request_duration_seconds_sum{route=\"queue\"}"), 62.0, 1e-9);
    ck_assert_double_eq(sample(t, "awaitd_http_request_duration_seconds_count{route=\"other\"}"),
                        0);
    /* One HELP and one TYPE for the family, before its first sample. */
    const char *help = strstr(t, "# HELP awaitd_http_request_duration_seconds ");
    const char *type = strstr(t, "# TYPE awaitd_http_request_duration_seconds histogram\n");
    ck_assert_ptr_nonnull(help);
    ck_assert_ptr_nonnull(type);
    ck_assert_ptr_null(strstr(type + 1, "# TYPE awaitd_http_request_duration_seconds "));
    ck_assert(help < type && type < strstr(t, "awaitd_http_request_duration_seconds_bucket"));
    buf_free(&o);
}
END_TEST

/* metrics_histogram: the exact text the timers' lateness histograms printed
 * before it was shared (ms bounds with 3 decimals, us with 6, labels). */
START_TEST(test_histogram_text) {
    static const uint32_t ms[] = {1, 20, 5000};
    uint64_t c[] = {2, 0, 3, 1};
    struct buf o = BUF_INIT;
    ck_assert_int_eq(metrics_histogram(&o, "x_seconds", "Help text.", NULL, ms, 3, 3, c, 1234), 0);
    ck_assert_int_eq(buf_append(&o, "", 1), 0);
    ck_assert_str_eq(buf_start(&o), "# HELP x_seconds Help text.\n# TYPE x_seconds histogram\n"
                                    "x_seconds_bucket{le=\"0.001\"} 2\n"
                                    "x_seconds_bucket{le=\"0.02\"} 2\n"
                                    "x_seconds_bucket{le=\"5\"} 5\n"
                                    "x_seconds_bucket{le=\"+Inf\"} 6\n"
                                    "x_seconds_sum 1.234\nx_seconds_count 6\n");
    buf_reset(&o);
    static const uint32_t us[] = {250, 1000000};
    uint64_t d[] = {1, 1, 0};
    ck_assert_int_eq(metrics_histogram(&o, "y", NULL, "route=\"q\"", us, 2, 6, d, 250001), 0);
    ck_assert_int_eq(buf_append(&o, "", 1), 0);
    ck_assert_str_eq(buf_start(&o), "y_bucket{route=\"q\",le=\"0.00025\"} 1\n"
                                    "y_bucket{route=\"q\",le=\"1\"} 2\n"
                                    "y_bucket{route=\"q\",le=\"+Inf\"} 2\n"
                                    "y_sum{route=\"q\"} 0.250001\ny_count{route=\"q\"} 2\n");
    buf_free(&o);
}
END_TEST

START_TEST(test_proc_stat_parse) {
    /* The command may hold spaces and ')': the last ')' ends it. */
    const char *line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1209 0 0 0 "
                       "150 75 0 0 20 0 1 0 123456 20549632 1616 18446744073709551615 "
                       "1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
    struct proc_stat ps;
    ck_assert_int_eq(proc_stat_parse(line, strlen(line), &ps), 0);
    ck_assert_uint_eq(ps.utime_ticks, 150);
    ck_assert_uint_eq(ps.stime_ticks, 75);
    ck_assert_uint_eq(ps.starttime_ticks, 123456);
    ck_assert_uint_eq(ps.vsize_bytes, 20549632);
    ck_assert_uint_eq(ps.rss_pages, 1616);
    /* Truncated before rss, or no command at all: refused. */
    const char *cut = "4242 (x) S 1 4242 4242 0 -1 4194560 1209 0 0 0 150 75 0 0 20 0 1 0 "
                      "123456 20549632";
    ck_assert_int_eq(proc_stat_parse(cut, strlen(cut), &ps), -1);
    ck_assert_int_eq(proc_stat_parse("4242 x S 1", 10, &ps), -1);
    ck_assert_int_eq(proc_stat_parse("", 0, &ps), -1);
}
END_TEST

START_TEST(test_proc_btime_parse) {
    const char *stat = "cpu  1 2 3\ncpu0 1 2 3\nintr 5 6 7\nctxt 99\nbtime 1796300000\n"
                       "processes 12\n";
    uint64_t bt = 0;
    ck_assert_int_eq(proc_btime_parse(stat, strlen(stat), &bt), 0);
    ck_assert_uint_eq(bt, 1796300000);
    ck_assert_int_eq(proc_btime_parse("cpu 1\nctxt 2\n", 13, &bt), -1);
}
END_TEST

START_TEST(test_process_format) {
    struct process_figures f = {.cpu_seconds = 2.25, .start_time_seconds = 1796301234.5,
                                .resident_bytes = 6619136, .virtual_bytes = 20549632,
                                .open_fds = 12, .max_fds = 20000};
    struct buf o = {0};
    ck_assert_int_eq(process_metrics_format(&f, &o), 0);
    ck_assert_int_eq(buf_append(&o, "", 1), 0);
    const char *t = buf_start(&o);
    ck_assert_double_eq_tol(sample(t, "process_cpu_seconds_total"), 2.25, 1e-9);
    ck_assert_double_eq_tol(sample(t, "process_start_time_seconds"), 1796301234.5, 1e-3);
    ck_assert_double_eq(sample(t, "process_resident_memory_bytes"), 6619136);
    ck_assert_double_eq(sample(t, "process_virtual_memory_bytes"), 20549632);
    ck_assert_double_eq(sample(t, "process_open_fds"), 12);
    ck_assert_double_eq(sample(t, "process_max_fds"), 20000);
    ck_assert_ptr_nonnull(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
    ck_assert_ptr_nonnull(strstr(t, "# TYPE process_open_fds gauge\n"));
    ck_assert_ptr_nonnull(strstr(t, "# HELP process_max_fds "));
    buf_free(&o);
}
END_TEST

START_TEST(test_process_render_live) {
    /* This process: its figures are there and plausible. */
    struct buf o = {0};
    ck_assert_int_eq(process_metrics_render(&o), 0);
    ck_assert_int_eq(buf_append(&o, "", 1), 0);
    const char *t = buf_start(&o);
    ck_assert(sample(t, "process_resident_memory_bytes") > 100000);
    ck_assert(sample(t, "process_virtual_memory_bytes") >= sample(t, "process_resident_memory_bytes"));
    ck_assert(sample(t, "process_open_fds") >= 3);
    ck_assert(sample(t, "process_max_fds") >= sample(t, "process_open_fds"));
    double start = sample(t, "process_start_time_seconds");
    double now = (double)time(NULL);
    ck_assert(start > now - 3600 && start <= now + 2);
    ck_assert(sample(t, "process_cpu_seconds_total") >= 0);
    buf_free(&o);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_route_classes);
    tcase_add_test(tc, test_request_histogram);
    tcase_add_test(tc, test_histogram_text);
    tcase_add_test(tc, test_proc_stat_parse);
    tcase_add_test(tc, test_proc_btime_parse);
    tcase_add_test(tc, test_process_format);
    tcase_add_test(tc, test_process_render_live);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(suite());
}
