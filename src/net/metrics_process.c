#include "net/metrics_process.h"

#include "core/buf.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The unsigned decimal at *p (after spaces); advances *p. -1 if none. */
static int next_u64(const char **p, const char *end, uint64_t *v) {
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s == end || *s < '0' || *s > '9')
        return -1;
    uint64_t n = 0;
    while (s < end && *s >= '0' && *s <= '9')
        n = n * 10 + (uint64_t)(*s++ - '0');
    *p = s;
    *v = n;
    return 0;
}

/* Skip one space-separated field (it may be signed, or the state letter). */
static int skip_field(const char **p, const char *end) {
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s == end || *s == '\n')
        return -1;
    while (s < end && *s != ' ' && *s != '\n')
        s++;
    *p = s;
    return 0;
}

int proc_stat_parse(const char *text, size_t len, struct proc_stat *out) {
    const char *end = text + len, *p = NULL;
    for (const char *s = text; s < end; s++) /* the last ')' ends the command */
        if (*s == ')')
            p = s + 1;
    if (!p)
        return -1;
    /* Field 3 (state) is next; we want 14, 15, 22, 23, 24. */
    uint64_t v[25] = {0};
    for (int field = 3; field <= 24; field++) {
        int want = field == 14 || field == 15 || field >= 22;
        if (want ? next_u64(&p, end, &v[field]) < 0 : skip_field(&p, end) < 0)
            return -1;
    }
    *out = (struct proc_stat){.utime_ticks = v[14], .stime_ticks = v[15],
                              .starttime_ticks = v[22], .vsize_bytes = v[23], .rss_pages = v[24]};
    return 0;
}

int proc_btime_parse(const char *text, size_t len, uint64_t *btime) {
    const char *end = text + len;
    for (const char *s = text; s < end;) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eol = nl ? nl : end;
        if (eol - s > 6 && memcmp(s, "btime ", 6) == 0) {
            const char *p = s + 6;
            return next_u64(&p, eol, btime);
        }
        s = nl ? nl + 1 : end;
    }
    return -1;
}

#define FAMILY(name, type, help) "# HELP " name " " help "\n# TYPE " name " " type "\n" name " "

int process_metrics_format(const struct process_figures *f, struct buf *o) {
    int r = 0;
    r |= buf_appendf(o, FAMILY("process_cpu_seconds_total", "counter",
                               "Total user and system CPU time spent in seconds.") "%.2f\n",
                     f->cpu_seconds);
    r |= buf_appendf(o, FAMILY("process_resident_memory_bytes", "gauge",
                               "Resident memory size in bytes.") "%" PRIu64 "\n",
                     f->resident_bytes);
    r |= buf_appendf(o, FAMILY("process_virtual_memory_bytes", "gauge",
                               "Virtual memory size in bytes.") "%" PRIu64 "\n",
                     f->virtual_bytes);
    r |= buf_appendf(o, FAMILY("process_start_time_seconds", "gauge",
                               "Start time of the process since unix epoch in seconds.") "%.2f\n",
                     f->start_time_seconds);
    r |= buf_appendf(o, FAMILY("process_open_fds", "gauge", "Number of open file descriptors.")
                     "%" PRIu64 "\n", f->open_fds);
    r |= buf_appendf(o, FAMILY("process_max_fds", "gauge",
                               "Maximum number of open file descriptors.") "%" PRIu64 "\n",
                     f->max_fds);
    return r ? -1 : 0;
}

/* The start of a small /proc file into buf (NUL-terminated); its length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0) {
            close(fd);
            return -1;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Entries of /proc/self/fd, less the one reading it; -1 if unreadable. */
static int64_t count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

int process_metrics_render(struct buf *o) {
    char text[1024];
    struct proc_stat ps;
    ssize_t n = read_small("/proc/self/stat", text, sizeof text);
    if (n < 0 || proc_stat_parse(text, (size_t)n, &ps) < 0)
        return 0; /* no /proc: the families are left out */
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (tick <= 0)
        tick = 100;
    if (page <= 0)
        page = 4096;
    /* btime, after the cpu and intr lines (long on a many-core machine). */
    uint64_t btime = 0;
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (proc_btime_parse(line, strlen(line), &btime) == 0)
            break;
    if (f)
        fclose(f);
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    int64_t fds = count_fds();
    struct process_figures fig = {
        .cpu_seconds = (double)(ps.utime_ticks + ps.stime_ticks) / (double)tick,
        .start_time_seconds = (double)btime + (double)ps.starttime_ticks / (double)tick,
        .resident_bytes = ps.rss_pages * (uint64_t)page,
        .virtual_bytes = ps.vsize_bytes,
        .open_fds = fds < 0 ? 0 : (uint64_t)fds,
        .max_fds = (uint64_t)rl.rlim_cur,
    };
    return process_metrics_format(&fig, o);
}
