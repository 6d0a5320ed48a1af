#include "net/io.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The plain socket's reads and writes call the system call directly
 * (syscall(2)), not glibc's recv/read and send: those are pthread cancellation
 * points, and glibc brackets each one in a multi-threaded process (the
 * journal writer makes awaitd one) with two atomic updates of the thread's
 * cancellation state, about 1% of the server's CPU per GET /get in perf.
 * awaitd never cancels a thread, so the bracketing buys nothing; syscall(2)
 * is the same system call without it (Linux only, as epoll and timerfd
 * already are).
 */
/* recvfrom(2), not read(2): the same socket receive without the file layer
 * in front of it (vfs_read, the file position check, sock_read_iter): the
 * read path's kernel symbols went from about 3.1% to 2.25% of the server's
 * CPU per GET /get in perf. nginx reads with recv() too. */
static ssize_t plain_read(int fd, void *ctx, void *buf, size_t len) {
    ssize_t n;
    do
        n = syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t plain_write(int fd, void *ctx, const void *buf, size_t len) {
    ssize_t n;
    /* sendto() with MSG_NOSIGNAL: a peer that went away must not raise SIGPIPE. */
    do
        n = syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static int plain_want(void *ctx, int for_write) {
    return for_write ? IO_WANT_WRITE : IO_WANT_READ;
}

static void plain_release(void *ctx) {
}

const struct io_ops io_plain = {"plain", plain_read, plain_write, plain_want, plain_release, NULL};
