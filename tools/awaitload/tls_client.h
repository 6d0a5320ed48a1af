/*
 * tls_client: awaitload's side of HTTPS (OpenSSL 3). A context verifies the
 * server against the system's CAs (or not, with --insecure), speaks TLS
 * 1.2+ and offers ALPN http/1.1; every connection is a full handshake (no
 * resumption), the cost a load test of new connections means to measure.
 *
 * The daemon's server side is src/net/tls_server.c; the two share no code:
 * the client needs no failure classes, no tickets and no io seam, and
 * reads into a buffer large enough that one SSL_read per readiness (plus
 * tls_client_pending) is all it takes.
 *
 * Reads and writes follow send()/recv(): -1 with errno EAGAIN when OpenSSL
 * waits for the socket (tls_client_want_write says which way), another
 * errno when the connection is broken; a read returns 0 at the server's
 * close_notify or a plain EOF.
 */
#ifndef AWAITD_LOAD_TLS_CLIENT_H
#define AWAITD_LOAD_TLS_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_ctx_st; /* SSL_CTX */

/* NULL on error, with err saying why. */
struct ssl_ctx_st *tls_client_ctx_new(int insecure, char *err, size_t errlen);
/* A client SSL on a connected socket for host (SNI and name check), or NULL. */
void *tls_client_conn_new(struct ssl_ctx_st *ctx, int fd, const char *host);
/* Send close_notify if the handshake is done, and free ssl (not the fd). */
void tls_client_conn_free(void *ssl);

/* Advance the handshake: 1 done, 0 again (on tls_client_want_write's
 * readiness), -1 failed with *detail (static text) saying why. */
int tls_client_handshake(void *ssl, const char **detail);
/* The last EAGAIN waits for the socket to be writable (else readable). */
int tls_client_want_write(void *ssl);

ssize_t tls_client_read(void *ssl, void *buf, size_t len);
ssize_t tls_client_write(void *ssl, const void *buf, size_t len);
/* OpenSSL holds input (decrypted, or whole records read ahead) that the
 * socket's readiness will not announce again. */
int tls_client_pending(void *ssl);

#endif
