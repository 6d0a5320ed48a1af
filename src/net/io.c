#include "net/io.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t plain_read(int fd, void *ctx, void *buf, size_t len) {
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t plain_write(int fd, void *ctx, const void *buf, size_t len) {
    ssize_t n;
    /* send() with MSG_NOSIGNAL: a peer that went away must not raise SIGPIPE. */
    do
        n = send(fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

static int plain_want(void *ctx, int for_write) {
    return for_write ? IO_WANT_WRITE : IO_WANT_READ;
}

static void plain_release(void *ctx) {
}

const struct io_ops io_plain = {"plain", plain_read, plain_write, plain_want, plain_release, NULL};
