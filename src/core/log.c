#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level_current = LOG_LVL_INFO;

/* Under systemd (JOURNAL_STREAM set) lines carry the sd-daemon priority
 * prefix, so journalctl -p filters them: err, warning, info, debug. */
static const char *const journal_prefix[] = {"<3>", "<4>", "<6>", "<7>"};
static int to_journal = -1;

/* [log] error: the file every line also goes to, -1 if none. Reopened by
 * dup2 onto the same number, so a line written meanwhile (from the journal's
 * writer thread) goes whole to the old file or the new one. */
static int file_fd = -1;
static char *file_path;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(int level) {
    if (level >= LOG_LVL_ERROR && level <= LOG_LVL_DEBUG)
        log_level_current = level;
}

int log_level_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(int level) {
    return level >= 0 && level < 4 ? level_names[level] : "?";
}

static int open_append(const char *path) {
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_open_file(const char *path) {
    int fd = open_append(path);
    if (fd < 0)
        return -1;
    char *p = strdup(path);
    if (!p) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    if (file_fd >= 0)
        close(file_fd);
    free(file_path);
    file_fd = fd;
    file_path = p;
    return 0;
}

void log_reopen(void) {
    if (file_fd < 0)
        return;
    int fd = open_append(file_path);
    if (fd < 0) {
        log_warn("SIGUSR1: cannot reopen the error log %s, still writing the old file", file_path);
        return;
    }
    if (dup2(fd, file_fd) < 0)
        log_warn("SIGUSR1: cannot reopen the error log %s", file_path);
    close(fd);
}

void log_emit(int level, int with_errno, const char *fmt, ...) {
    int saved = errno;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (with_errno)
        n += snprintf(line + n, sizeof line - n, ": %s", strerror(saved));
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (to_journal < 0)
        to_journal = getenv("JOURNAL_STREAM") != NULL;
    char stamp[40] = "";
    if (!to_journal || file_fd >= 0) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        size_t k = strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
        snprintf(stamp + k, sizeof stamp - k, ".%03ld ", ts.tv_nsec / 1000000);
    }
    /* One write per line so lines from a later writer thread never interleave. */
    fprintf(stderr, "%sawaitd[%s]: %.*s\n", to_journal ? journal_prefix[level] : stamp,
            log_level_name(level), n, line);
    if (file_fd >= 0) {
        char out[1200];
        int m = snprintf(out, sizeof out, "%sawaitd[%s]: %.*s\n", stamp, log_level_name(level),
                         n, line);
        if (m > 0) {
            if ((size_t)m >= sizeof out) {
                m = sizeof out - 1;
                out[m - 1] = '\n';
            }
            ssize_t w = write(file_fd, out, (size_t)m);
            (void)w; /* nowhere better to say so than the stderr line above */
        }
    }
    errno = saved;
}
