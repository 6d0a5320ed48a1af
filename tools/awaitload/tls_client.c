#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* OpenSSL's reason for the last error; clears the queue. */
static const char *last_reason(void) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

struct ssl_ctx_st *tls_client_ctx_new(int insecure, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", last_reason());
        return NULL;
    }
    static const unsigned char h11[] = "\x08http/1.1";
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* no resumption: see the header */
    if (SSL_CTX_set_alpn_protos(ctx, h11, sizeof h11 - 1) != 0) {
        snprintf(err, errlen, "cannot set ALPN: %s", last_reason());
        goto fail;
    }
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(err, errlen, "cannot load the system's CA certificates: %s", last_reason());
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    ERR_clear_error();
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void *tls_client_conn_new(struct ssl_ctx_st *ctx, int fd, const char *host) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    SSL_set_connect_state(ssl);
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1)
        goto fail;
    if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1 : SSL_set1_host(ssl, host) != 1)
            goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

void tls_client_conn_free(void *p) {
    SSL *ssl = p;
    if (SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        (void)SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
}

/* How an SSL call that returned ret <= 0 ended. Every outcome but AGAIN
 * empties the error queue (after *reason has been read from it), so the
 * next call sees only its own errors. */
enum outcome { AGAIN, CLOSED, SYS_ERROR, TLS_ERROR };
static enum outcome outcome_of(SSL *ssl, int ret, int saved, const char **reason) {
    int e = SSL_get_error(ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return AGAIN;
    unsigned long ec = ERR_peek_last_error();
    if (reason && !(ec && (*reason = ERR_reason_error_string(ec))))
        *reason = "handshake failed";
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ec == 0 && saved == 0))
        return CLOSED;
    if (e == SSL_ERROR_SYSCALL && ec == 0) {
        errno = saved;
        return SYS_ERROR;
    }
    errno = EIO;
    return TLS_ERROR;
}

int tls_client_handshake(void *ssl, const char **detail) {
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    switch (outcome_of(ssl, r, errno, detail)) {
    case AGAIN:
        return 0;
    case CLOSED:
        *detail = "closed by the server";
        return -1;
    case SYS_ERROR:
        *detail = strerror(errno);
        return -1;
    default:
        return -1; /* *detail is OpenSSL's reason */
    }
}

int tls_client_want_write(void *ssl) {
    return SSL_want_write((SSL *)ssl);
}

ssize_t tls_client_read(void *ssl, void *buf, size_t len) {
    size_t n;
    if (SSL_read_ex(ssl, buf, len, &n))
        return (ssize_t)n;
    switch (outcome_of(ssl, 0, errno, NULL)) {
    case AGAIN:
        errno = EAGAIN;
        return -1;
    case CLOSED:
        return 0;
    default:
        return -1;
    }
}

ssize_t tls_client_write(void *ssl, const void *buf, size_t len) {
    size_t n;
    if (SSL_write_ex(ssl, buf, len, &n))
        return (ssize_t)n;
    enum outcome o = outcome_of(ssl, 0, errno, NULL);
    errno = o == AGAIN ? EAGAIN : o == CLOSED ? EPIPE : errno; /* a write cannot end a stream */
    return -1;
}

int tls_client_pending(void *p) {
    SSL *ssl = p;
    return SSL_pending(ssl) > 0 || (SSL_has_pending(ssl) && !SSL_want_read(ssl));
}
