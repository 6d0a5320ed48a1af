/*
 * notify: systemd's service protocols without libsystemd.
 *  - sd_notify: one datagram to $NOTIFY_SOCKET per state change
 *    ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...", "WATCHDOG=1").
 *    A no-op when the variable is unset (not started by systemd).
 *  - socket activation: listening sockets passed as fds 3.. with
 *    LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES.
 */
#ifndef AWAITD_NOTIFY_H
#define AWAITD_NOTIFY_H

#include <stdint.h>

#define NOTIFY_MAX_FDS 32

/* Send one message; returns 0 when sent or when there is no $NOTIFY_SOCKET. */
int notify_send(const char *msg);
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval systemd asked for, in ms (0 when none). */
uint64_t notify_watchdog_ms(void);

struct notify_fd {
    int fd;
    char name[64]; /* from LISTEN_FDNAMES, "" when not given */
};

/*
 * Take the sockets systemd passed: fills up to max entries, marks them
 * close-on-exec and non-blocking, unsets the LISTEN_* variables so children
 * do not inherit them, and returns how many (0 when not socket-activated,
 * -1 on a malformed environment, logged).
 */
int notify_listen_fds(struct notify_fd *out, int max);

#endif
