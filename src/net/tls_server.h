/*
 * tls_server: the daemon's HTTPS with OpenSSL 3, behind the io seam (io.h)
 * so that conn.c and the HTTP engine above it do not know whether they talk
 * TLS. (awaitload's client side is tools/awaitload/tls_client.c.)
 *
 * A server context (SSL_CTX) is built from the [tls] keys of a config and
 * checked whole before it is used: the certificate (and the chain after it
 * in the same file), the key (unencrypted PEM) and that it matches, the
 * chain file, the client CA. Errors name the file and what is wrong; an
 * expired or not yet valid certificate is a warning, logged. Contexts are
 * reference counted by OpenSSL: a reload builds a new one and drops the
 * server's reference to the old, and connections that were accepted under
 * the old one keep it until they close.
 *
 * Policy (Mozilla's "intermediate" profile): TLS 1.2 and 1.3 only; its TLS
 * 1.2 ciphers (ECDHE/DHE with AES-GCM or ChaCha20-Poly1305) and TLS 1.3
 * suites; groups X25519, P-256, P-384; renegotiation refused; ALPN
 * "http/1.1" (a client that offers ALPN without http/1.1 gets the
 * no_application_protocol alert, as RFC 7301 says); compression off.
 * SSL_MODE_RELEASE_BUFFERS: an idle connection holds no record buffers.
 *
 * Resumption: stateless session tickets by default, encrypted with keys
 * that live in this process's memory only and rotate every
 * TLS_TICKET_ROTATE_S; a ticket stays good for one more period after its
 * key retires, and keys outlive reloads. With tickets off, a per-context
 * session cache is used instead.
 */
#ifndef AWAITD_TLS_SERVER_H
#define AWAITD_TLS_SERVER_H

#include "net/io.h"

#include <stddef.h>
#include <stdint.h>

struct config;
struct ssl_ctx_st; /* SSL_CTX */

/* Ticket keys rotate this often; tickets live as long (see above). */
#define TLS_TICKET_ROTATE_S 3600

/* Why a handshake failed, for /metrics (awaitd_tls_handshake_failures_total). */
enum tls_fail {
    TLS_FAIL_TIMEOUT,         /* the handshake deadline passed */
    TLS_FAIL_PROTOCOL,        /* not TLS, old version, no shared cipher or ALPN */
    TLS_FAIL_NO_CLIENT_CERT,  /* client_ca set and no certificate sent */
    TLS_FAIL_BAD_CLIENT_CERT, /* client certificate did not verify against client_ca */
    TLS_FAIL_EOF,             /* the client closed or reset mid-handshake */
    TLS_FAIL_OTHER,           /* an alert from the client (it refused us), anything else */
    TLS_FAIL_KINDS,
};
extern const char *const tls_fail_names[TLS_FAIL_KINDS];

/* What the config does not say (yet): see tls_settings_from_config(). */
struct tls_settings {
    int session_tickets;           /* 1: stateless tickets; 0: a session cache */
    uint64_t handshake_timeout_ms; /* a handshake not done by then closes the connection */
};
void tls_settings_from_config(const struct config *cfg, struct tls_settings *out);

/*
 * A server context for cfg's [tls] cert, key, chain and client_ca. NULL on
 * error, with err holding "FILE: what is wrong". not_after (may be NULL)
 * gets the certificate's expiry as unix time. Warnings (expired
 * certificate, expiring within 14 days) are logged here.
 */
struct ssl_ctx_st *tls_ctx_new(const struct config *cfg, int64_t *not_after, char *err,
                               size_t errlen);
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* The byte seam over an SSL object (ctx = SSL *): see io.h. read returns
 * 0 for the peer's close_notify or a plain EOF, -1/EAGAIN when OpenSSL needs
 * the socket (want says which way), -1/ECONNRESET or EIO when broken. */
extern const struct io_ops io_tls;

/* Did ALPN choose h2 on this (handshaken) connection? */
int tls_conn_h2(void *ssl);

/* A server-side SSL for an accepted socket, or NULL (out of memory). */
void *tls_conn_new(struct ssl_ctx_st *ctx, int fd);

/* Advance the handshake of ssl: 1 done, 0 again (io_tls.want says for
 * which readiness), -1 failed, -2 failed because the client spoke plain
 * HTTP (nothing was sent: the caller may answer in plain text). On
 * failure *why and *detail (OpenSSL's reason, static text) are set and the
 * caller closes. */
int tls_handshake(void *ssl, enum tls_fail *why, const char **detail);

/* Send close_notify once, if the handshake is done and it was not sent
 * yet (before a lingering close's shutdown of the write side). */
void tls_close_notify(void *ssl);

/* Was this connection's session resumed (not a full handshake)? */
int tls_conn_resumed(void *ssl);

/*
 * The verified client certificate's subject as RFC 2253 text
 * ("CN=ops,O=Example") into out. Returns its length, or -1 when there is
 * none (no client_ca, or not verified). Lets the subject stand in for a
 * bearer token.
 */
int tls_conn_subject(void *ssl, char *out, size_t len);

#endif
