/*
 * log: leveled lines to stderr (systemd's journal captures them), after
 * OpenBSD httpd's log.c. The level is checked before formatting, so a
 * debug line costs a compare when debug is off. When stderr is not the
 * journal (no JOURNAL_STREAM), lines start with the local time,
 * "2026-12-03 12:32:24.123 ". With [log] error = PATH every line also goes
 * to that file (always timestamped), reopened by log_reopen (SIGUSR1).
 */
#ifndef AWAITD_LOG_H
#define AWAITD_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

extern int log_level_current;

void log_set_level(int level);
/* "error", "warn", "info", "debug" -> level, or -1. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

/* Also append every line to path. 0, or -1 with errno set. */
int log_open_file(const char *path);
/* Open that file again by name (logrotate renamed it); keeps the old on failure. */
void log_reopen(void);

void log_emit(int level, int with_errno, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...) log_emit(LOG_LVL_ERROR, 0, __VA_ARGS__)
#define log_warnx(...)                                                                             \
    do {                                                                                           \
        if (log_level_current >= LOG_LVL_WARN)                                                     \
            log_emit(LOG_LVL_WARN, 0, __VA_ARGS__);                                                \
    } while (0)
/* log_warn appends ": strerror(errno)". */
#define log_warn(...)                                                                              \
    do {                                                                                           \
        if (log_level_current >= LOG_LVL_WARN)                                                     \
            log_emit(LOG_LVL_WARN, 1, __VA_ARGS__);                                                \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_level_current >= LOG_LVL_INFO)                                                     \
            log_emit(LOG_LVL_INFO, 0, __VA_ARGS__);                                                \
    } while (0)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_level_current >= LOG_LVL_DEBUG)                                                    \
            log_emit(LOG_LVL_DEBUG, 0, __VA_ARGS__);                                               \
    } while (0)

#endif
