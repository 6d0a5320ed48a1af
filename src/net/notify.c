#include "net/notify.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *msg) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len >= sizeof sun.sun_path || (path[0] != '/' && path[0] != '@')) {
        log_warnx("NOTIFY_SOCKET is not a usable socket path");
        return -1;
    }
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("sd_notify socket");
        return -1;
    }
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        log_warn("sd_notify to %s", path);
        return -1;
    }
    return 0;
}

int notify_sendf(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return notify_send(msg);
}

/* LISTEN_PID / WATCHDOG_PID must name us, or the variable was meant for another. */
static int env_pid_is_us(const char *name) {
    const char *v = getenv(name);
    if (!v)
        return 1; /* WATCHDOG_PID is optional */
    char *end;
    long pid = strtol(v, &end, 10);
    return *end == '\0' && pid == (long)getpid();
}

uint64_t notify_watchdog_ms(void) {
    const char *v = getenv("WATCHDOG_USEC");
    if (!v || !env_pid_is_us("WATCHDOG_PID"))
        return 0;
    char *end;
    unsigned long long us = strtoull(v, &end, 10);
    return *end == '\0' ? us / 1000 : 0;
}

int notify_listen_fds(struct notify_fd *out, int max) {
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds)
        return 0;
    if (!env_pid_is_us("LISTEN_PID"))
        return 0;
    char *end;
    long n = strtol(fds, &end, 10);
    if (*end || n < 0 || n > max) {
        log_error("LISTEN_FDS=%s: expected 0 to %d sockets", fds, max);
        return -1;
    }
    const char *names = getenv("LISTEN_FDNAMES");
    for (int i = 0; i < n; i++) {
        int fd = 3 + i;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0) {
            log_error("LISTEN_FDS=%ld but fd %d is not open", n, fd);
            return -1;
        }
        fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        out[i].fd = fd;
        out[i].name[0] = '\0';
        if (names) {
            const char *colon = strchr(names, ':');
            size_t len = colon ? (size_t)(colon - names) : strlen(names);
            if (len >= sizeof out[i].name)
                len = sizeof out[i].name - 1;
            memcpy(out[i].name, names, len);
            out[i].name[len] = '\0';
            names = colon ? colon + 1 : NULL;
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return (int)n;
}
