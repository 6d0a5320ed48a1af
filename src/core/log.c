#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int log_level_current = LOG_LVL_INFO;

/* Under systemd (JOURNAL_STREAM set) lines carry the sd-daemon priority
 * prefix, so journalctl -p filters them: err, warning, info, debug. */
static const char *const journal_prefix[] = {"<3>", "<4>", "<6>", "<7>"};
static int to_journal = -1;

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
    /* One write per line so lines from a later writer thread never interleave. */
    fprintf(stderr, "%sawaitd[%s]: %.*s\n", to_journal ? journal_prefix[level] : "",
            log_level_name(level), n, line);
    errno = saved;
}
