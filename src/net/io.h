/*
 * io: the connection's byte seam. The HTTP engine reads and writes through
 * these calls only, so a TLS transport (OpenSSL) plugs in beside the plain
 * socket without the engine knowing which it talks to.
 *
 * Contract of every transport:
 *   read:  n > 0 bytes read; 0 end of stream; -1 with errno (EAGAIN: wait for
 *          io_want(); anything else: the connection is dead).
 *   write: n > 0 bytes written (may be short); -1 with errno as for read.
 *   want:  which readiness (IO_WANT_READ / IO_WANT_WRITE) the last EAGAIN
 *          waits for (TLS may need to write while reading and vice versa).
 *   pending: NULL for transports without buffers of their own; else nonzero
 *          when input is buffered inside the transport (TLS records read
 *          ahead), which the socket's readiness will not announce again.
 */
#ifndef AWAITD_IO_H
#define AWAITD_IO_H

#include <stddef.h>
#include <sys/types.h>

enum { IO_WANT_READ = 1, IO_WANT_WRITE = 2 };

struct io_ops {
    const char *name;
    ssize_t (*read)(int fd, void *ctx, void *buf, size_t len);
    ssize_t (*write)(int fd, void *ctx, const void *buf, size_t len);
    int (*want)(void *ctx, int for_write);
    /* Release the transport state (not the fd). */
    void (*release)(void *ctx);
    int (*pending)(void *ctx);
};

extern const struct io_ops io_plain;
/* TLS (OpenSSL) is io_tls in tls_server.h. */

#endif
