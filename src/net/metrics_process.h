/*
 * metrics_process: the process_* families Prometheus client libraries
 * export (client_golang's process collector, the Python client's), read
 * from /proc at scrape time only: nothing is sampled between scrapes.
 */
#ifndef AWAITD_METRICS_PROCESS_H
#define AWAITD_METRICS_PROCESS_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* What /proc/self/stat says, in its own units. */
struct proc_stat {
    uint64_t utime_ticks;     /* field 14, clock ticks */
    uint64_t stime_ticks;     /* field 15 */
    uint64_t starttime_ticks; /* field 22, ticks after boot */
    uint64_t vsize_bytes;     /* field 23 */
    uint64_t rss_pages;       /* field 24 */
};

/* Parse the text of /proc/PID/stat (the command in parentheses may hold
 * spaces and ')'). 0, or -1 if it is not that. Pure: no I/O. */
int proc_stat_parse(const char *text, size_t len, struct proc_stat *out);

/* The boot time (unix seconds) from the text of /proc/stat's "btime" line;
 * 0, or -1 if there is none. Pure. */
int proc_btime_parse(const char *text, size_t len, uint64_t *btime);

/* The figures, converted to base units (seconds, bytes). */
struct process_figures {
    double cpu_seconds;
    double start_time_seconds; /* unix time */
    uint64_t resident_bytes;
    uint64_t virtual_bytes;
    uint64_t open_fds;
    uint64_t max_fds;
};

/* Append the families for f. 0, or -1 (no memory). Pure. */
int process_metrics_format(const struct process_figures *f, struct buf *out);

/* Read /proc/self and append the families; a figure that cannot be read
 * (no /proc) leaves its family out. 0, or -1 (no memory). */
int process_metrics_render(struct buf *out);

#endif
