#include "net/tls_server.h"

#include "net/h2.h"

#include "core/config.h"
#include "core/log.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

/* Mozilla's "intermediate" configuration (guidelines v5.7). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:prime256v1:secp384r1"
/* A certificate this close to its end is worth a warning at every (re)load. */
#define EXPIRY_WARN_S (14 * 86400)

const char *const tls_fail_names[TLS_FAIL_KINDS] = {
    "timeout", "protocol", "no_client_cert", "bad_client_cert", "eof", "other",
};

void tls_settings_from_config(const struct config *cfg, struct tls_settings *out) {
    out->session_tickets = cfg->tls_session_tickets;
    out->handshake_timeout_ms = cfg->tls_handshake_timeout_ms;
}

/* ---- messages -------------------------------------------------------------- */

/* OpenSSL's reason for the last error, as a short phrase; clears the queue. */
static const char *ossl_reason(void) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

/* Open path for reading, or say why not. */
static BIO *open_pem(const char *what, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: [tls] %s: cannot read: %s", path, what, strerror(errno));
        return NULL;
    }
    BIO *b = BIO_new_fp(f, BIO_CLOSE);
    if (!b) {
        fclose(f);
        snprintf(err, errlen, "%s: [tls] %s: out of memory", path, what);
    }
    return b;
}

/* Read the next certificate of b; NULL at the end of the file (not an
 * error) or on a bad one (*bad set). */
static X509 *next_cert(BIO *b, int aux, int *bad) {
    X509 *x =
        aux ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (x)
        return x;
    unsigned long e = ERR_peek_last_error();
    *bad = !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    if (!*bad)
        ERR_clear_error();
    return NULL;
}

static void fmt_time(const ASN1_TIME *t, char *out, size_t len, int64_t *unix_out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (ASN1_TIME_to_tm(t, &tm) != 1) {
        snprintf(out, len, "?");
        *unix_out = 0;
        return;
    }
    *unix_out = (int64_t)timegm(&tm);
    strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Expired, not yet valid, or near its end: a warning, not an error (the
 * operator may be replacing it right now, and a reload picks it up). */
static void check_validity(const char *path, X509 *leaf, int64_t *not_after) {
    char date[64];
    int64_t na, nb;
    fmt_time(X509_get0_notAfter(leaf), date, sizeof date, &na);
    if (not_after)
        *not_after = na;
    time_t now = time(NULL);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        log_warnx("%s: [tls] cert: the certificate expired on %s; clients will refuse it", path,
                  date);
    else if (na && na - (int64_t)now < EXPIRY_WARN_S)
        log_warnx("%s: [tls] cert: the certificate expires on %s (in %lld hours)", path, date,
                  (long long)((na - (int64_t)now) / 3600));
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
        fmt_time(X509_get0_notBefore(leaf), date, sizeof date, &nb);
        log_warnx("%s: [tls] cert: the certificate is not valid before %s", path, date);
    }
}

/* ---- session tickets --------------------------------------------------------- */

/* Keys in memory only: [0] encrypts, [1] (the one before) still decrypts
 * so a ticket lives at least one rotation period. Shared by every context,
 * so tickets survive a reload. The loop is one thread: no lock. */
struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
    time_t born;
    int set;
};
static struct ticket_key tkeys[2];

static int ticket_keys_rotate(time_t now) {
    if (tkeys[0].set && now - tkeys[0].born < TLS_TICKET_ROTATE_S)
        return 0;
    if (tkeys[0].set && now - tkeys[0].born < 2 * TLS_TICKET_ROTATE_S)
        tkeys[1] = tkeys[0];
    else
        OPENSSL_cleanse(&tkeys[1], sizeof tkeys[1]);
    struct ticket_key k;
    if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
        RAND_bytes(k.hmac, sizeof k.hmac) != 1)
        return -1;
    k.born = now;
    k.set = 1;
    tkeys[0] = k;
    OPENSSL_cleanse(&k, sizeof k);
    if (tkeys[1].set && now - tkeys[1].born >= 2 * TLS_TICKET_ROTATE_S)
        OPENSSL_cleanse(&tkeys[1], sizeof tkeys[1]);
    return 0;
}

/* Fetched once: an implicit fetch per ticket costs a property lookup. */
static EVP_CIPHER *ticket_cipher;

static int ticket_cb_locked(SSL *ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                            EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc);

/* [server] workers > 1: every loop's contexts share the keys, so a ticket
 * from one worker resumes on another; a handshake takes this lock, a request never. */
static pthread_mutex_t tkeys_lock = PTHREAD_MUTEX_INITIALIZER;

static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc) {
    pthread_mutex_lock(&tkeys_lock);
    int r = ticket_cb_locked(ssl, name, iv, cctx, hctx, enc);
    pthread_mutex_unlock(&tkeys_lock);
    return r;
}

static int ticket_cb_locked(SSL *ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                            EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc) {
    if (ticket_keys_rotate(time(NULL)) < 0)
        return -1;
    if (!ticket_cipher && !(ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)))
        return -1;
    const struct ticket_key *k = NULL;
    int ret = 1;
    if (enc) {
        k = &tkeys[0];
        memcpy(name, k->name, 16);
        if (RAND_bytes(iv, 16) != 1 || !EVP_EncryptInit_ex(cctx, ticket_cipher, NULL, k->aes, iv))
            return -1;
    } else {
        for (int i = 0; i < 2 && !k; i++)
            if (tkeys[i].set && CRYPTO_memcmp(name, tkeys[i].name, 16) == 0) {
                k = &tkeys[i];
                ret = i == 0 ? 1 : 2; /* 2: good, but send a ticket under the new key */
            }
        if (!k)
            return 0; /* unknown or retired key: a full handshake */
        if (!EVP_DecryptInit_ex(cctx, ticket_cipher, NULL, k->aes, iv))
            return -1;
    }
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string("key", (void *)k->hmac, sizeof k->hmac);
    params[1] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_CTX_set_params(hctx, params))
        return -1;
    return ret;
}

/* ---- the server context --------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;
    /* arg: [http2] enabled. Ours is the preference order: h2 first. */
    const unsigned char *ours = arg ? h2_alpn_h2_h11 : h11;
    unsigned int ours_len = arg ? h2_alpn_h2_h11_len : sizeof h11 - 1;
    if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    /* RFC 7301 3.2: no overlap is a no_application_protocol alert, rather
     * than a connection on which the client would speak, say, h2 to us. */
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int load_cert(SSL_CTX *ctx, const char *path, int64_t *not_after, char *err, size_t errlen) {
    int bad = 0, n = 0;
    BIO *b = open_pem("cert", path, err, errlen);
    if (!b)
        return -1;
    X509 *leaf = next_cert(b, 1, &bad), *x;
    if (!leaf) {
        if (bad)
            FAIL("%s: [tls] cert: the certificate cannot be parsed: %s", path, ossl_reason());
        FAIL("%s: [tls] cert: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
             path);
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1)
        FAIL("%s: [tls] cert: certificate refused: %s", path, ossl_reason());
    check_validity(path, leaf, not_after);
    /* Certificates after the first are its chain (as in a "fullchain.pem"). */
    while ((x = next_cert(b, 0, &bad))) {
        n++;
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            FAIL("%s: [tls] cert: chain certificate %d refused: %s", path, n, ossl_reason());
        }
    }
    if (bad)
        FAIL("%s: [tls] cert: chain certificate %d cannot be parsed: %s", path, n + 1,
             ossl_reason());
    X509_free(leaf);
    BIO_free(b);
    return 0;
fail:
    X509_free(leaf);
    BIO_free(b);
    return -1;
}

static int load_chain(SSL_CTX *ctx, const char *path, char *err, size_t errlen) {
    int bad = 0, n = 0;
    X509 *x;
    BIO *b = open_pem("chain", path, err, errlen);
    if (!b)
        return -1;
    while ((x = next_cert(b, 0, &bad))) {
        n++;
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            FAIL("%s: [tls] chain: certificate %d refused: %s", path, n, ossl_reason());
        }
    }
    if (bad)
        FAIL("%s: [tls] chain: certificate %d cannot be parsed: %s", path, n + 1, ossl_reason());
    if (n == 0)
        FAIL("%s: [tls] chain: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
             path);
    BIO_free(b);
    return 0;
fail:
    BIO_free(b);
    return -1;
}

static int no_password(char *buf, int size, int rwflag, void *u) {
    *(int *)u = 1;
    return -1;
}

static int load_key(SSL_CTX *ctx, const char *path, const char *cert, char *err, size_t errlen) {
    int asked = 0;
    BIO *b = open_pem("key", path, err, errlen);
    if (!b)
        return -1;
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(b, NULL, no_password, &asked);
    if (!pk) {
        unsigned long e = ERR_peek_last_error();
        if (asked)
            FAIL("%s: [tls] key: the private key is encrypted; awaitd needs it unencrypted "
                 "(protect it with file permissions)",
                 path);
        if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
            FAIL("%s: [tls] key: no private key in it (expected PEM, -----BEGIN PRIVATE KEY-----)",
                 path);
        FAIL("%s: [tls] key: the private key cannot be parsed: %s", path, ossl_reason());
    }
    if (SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        FAIL("%s: [tls] key: the private key does not match the certificate in %s", path, cert);
    }
    EVP_PKEY_free(pk);
    BIO_free(b);
    return 0;
fail:
    EVP_PKEY_free(pk);
    BIO_free(b);
    return -1;
}

/* Client certificates must chain to the CAs in path. The session id
 * context carries a digest of the file, so a session (ticket) verified
 * under another client CA is not resumed after a reload. */
static int load_client_ca(SSL_CTX *ctx, const char *path, unsigned char *sid, unsigned *sid_len,
                          char *err, size_t errlen) {
    BIO *b = open_pem("client_ca", path, err, errlen);
    STACK_OF(X509_NAME) *names = NULL;
    if (!b)
        return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char chunk[4096];
    int n, bad = 0, count = 0;
    X509 *x;
    while ((x = next_cert(b, 0, &bad))) {
        count++;
        X509_free(x);
    }
    if (bad)
        FAIL("%s: [tls] client_ca: certificate %d cannot be parsed: %s", path, count + 1,
             ossl_reason());
    if (count == 0)
        FAIL(
            "%s: [tls] client_ca: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
            path);
    if (!md || BIO_reset(b) < 0 || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
        FAIL("%s: [tls] client_ca: cannot read it again: %s", path, ossl_reason());
    while ((n = BIO_read(b, chunk, sizeof chunk)) > 0)
        EVP_DigestUpdate(md, chunk, (size_t)n);
    EVP_DigestFinal_ex(md, sid, sid_len);
    names = SSL_load_client_CA_file(path);
    if (!names || SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
        FAIL("%s: [tls] client_ca: cannot load the CA certificates: %s", path, ossl_reason());
    SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    EVP_MD_CTX_free(md);
    BIO_free(b);
    return 0;
fail:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    EVP_MD_CTX_free(md);
    BIO_free(b);
    return -1;
}

/* Prefix err with the config file and the line of [tls] key i (issue 16:
 * every config error names them; the file's own name is in err already). */
static void at_line(const struct config *cfg, int i, char *err, size_t errlen) {
    if (!cfg->path || !cfg->tls_lines[i])
        return;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s:%d: %s", cfg->path, cfg->tls_lines[i], err);
    snprintf(err, errlen, "%s", tmp);
}

struct ssl_ctx_st *tls_ctx_new(const struct config *cfg, int64_t *not_after, char *err,
                               size_t errlen) {
    struct tls_settings set;
    tls_settings_from_config(cfg, &set);
    ERR_clear_error();
    if (!cfg->tls_cert || !cfg->tls_key) {
        snprintf(err, errlen, "%s: [tls] %s is not set (a PEM file path is required for HTTPS)",
                 cfg->path ? cfg->path : "config", cfg->tls_cert ? "key" : "cert");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", ossl_reason());
        return NULL;
    }
    /* Renegotiation is a DoS lever and HTTP/1.1 does not need it; a close
     * without close_notify is an EOF like any other (HTTP's own framing
     * catches a truncated message, and most clients just close); buffers
     * go back to the heap whenever a connection is idle; the chain is what
     * the files say, never one built from the client CA store; a write
     * that blocked may be retried from the connection's own buffer. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 (set.session_tickets ? 0 : SSL_OP_NO_TICKET));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_NO_AUTO_CHAIN);
    /* One read() takes in every record the kernel has (io_tls.pending then
     * tells conn.c what OpenSSL holds beyond what it returned). */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 || SSL_CTX_set_dh_auto(ctx, 1) != 1)
        FAIL("cannot set the TLS cipher policy: %s", ossl_reason());
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, cfg->h2_enabled ? (void *)1 : NULL);

    unsigned char sid[EVP_MAX_MD_SIZE];
    unsigned sid_len = 0;
    int failed = load_cert(ctx, cfg->tls_cert, not_after, err, errlen) < 0 ? 0
                 : cfg->tls_chain && load_chain(ctx, cfg->tls_chain, err, errlen) < 0 ? 2
                 : load_key(ctx, cfg->tls_key, cfg->tls_cert, err, errlen) < 0 ? 1
                 : cfg->tls_client_ca &&
                         load_client_ca(ctx, cfg->tls_client_ca, sid, &sid_len, err, errlen) < 0
                     ? 3
                     : -1;
    if (failed >= 0) {
        at_line(cfg, failed, err, errlen);
        goto fail;
    }
    if (sid_len == 0) {
        memcpy(sid, "awaitd", 6);
        sid_len = 6;
    }
    if (sid_len > SSL_MAX_SID_CTX_LENGTH)
        sid_len = SSL_MAX_SID_CTX_LENGTH;
    SSL_CTX_set_session_id_context(ctx, sid, sid_len);
    SSL_CTX_set_timeout(ctx, TLS_TICKET_ROTATE_S);
    if (set.session_tickets) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, 20000);
    }
    ERR_clear_error();
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

void tls_ctx_free(struct ssl_ctx_st *ctx) {
    SSL_CTX_free(ctx);
}

/* ---- connections ------------------------------------------------------------------- */

void *tls_conn_new(struct ssl_ctx_st *ctx, int fd) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

static enum tls_fail classify(unsigned long e) {
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return TLS_FAIL_OTHER;
    int r = ERR_GET_REASON(e);
    if (r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        return TLS_FAIL_NO_CLIENT_CERT;
    if (r == SSL_R_CERTIFICATE_VERIFY_FAILED)
        return TLS_FAIL_BAD_CLIENT_CERT;
    if (r == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return TLS_FAIL_EOF;
    if (r >= SSL_AD_REASON_OFFSET)
        return TLS_FAIL_OTHER; /* the client sent an alert: it gave up on us */
    return TLS_FAIL_PROTOCOL;
}

int tls_handshake(void *p, enum tls_fail *why, const char **detail) {
    SSL *ssl = p;
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int saved = errno;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    unsigned long ec = ERR_peek_last_error();
    int http = 0;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ec == 0)) {
        *why = TLS_FAIL_EOF;
        *detail = e == SSL_ERROR_SYSCALL && saved ? strerror(saved) : "closed by the client";
    } else {
        *why = classify(ec);
        *detail = ec ? ERR_reason_error_string(ec) : "handshake failed";
        http = ERR_GET_LIB(ec) == ERR_LIB_SSL && ERR_GET_REASON(ec) == SSL_R_HTTP_REQUEST;
        if (!*detail)
            *detail = "handshake failed";
    }
    ERR_clear_error();
    return http ? -2 : -1;
}

int tls_conn_resumed(void *ssl) {
    return SSL_session_reused(ssl);
}

void tls_close_notify(void *p) {
    SSL *ssl = p;
    if (SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) {
        (void)SSL_shutdown(ssl);
        ERR_clear_error();
    }
}

int tls_conn_subject(void *p, char *out, size_t len) {
    SSL *ssl = p;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (!peer || !(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) ||
        SSL_get_verify_result(ssl) != X509_V_OK || len == 0)
        return -1;
    BIO *m = BIO_new(BIO_s_mem());
    if (!m)
        return -1;
    int n = -1;
    if (X509_NAME_print_ex(m, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_read(m, out, (int)len - 1);
        if (n < 0)
            n = 0;
        out[n] = '\0';
    }
    BIO_free(m);
    ERR_clear_error();
    return n;
}

/* ---- the byte seam -------------------------------------------------------------------- */

/* Every failure path empties OpenSSL's error queue, so SSL_get_error()
 * sees only the current call's errors without an ERR_clear_error() before
 * each read and write. */
static ssize_t tls_read(int fd, void *p, void *buf, size_t len) {
    SSL *ssl = p;
    size_t got = 0, n;
    for (;;) {
        if (SSL_read_ex(ssl, (char *)buf + got, len - got, &n)) {
            got += n;
            /* Read-ahead may hold more records: take them while there is
             * room, without another read() for the common single request. */
            if (got == len || !SSL_has_pending(ssl))
                return (ssize_t)got;
            continue;
        }
        int saved = errno;
        int e = SSL_get_error(ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (got)
                return (ssize_t)got;
            errno = EAGAIN;
            return -1;
        }
        ERR_clear_error();
        if (got)
            return (ssize_t)got; /* the error (or EOF) comes again next time */
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e == SSL_ERROR_SYSCALL) {
            if (saved == 0)
                return 0;
            errno = saved;
            return -1;
        }
        errno = EIO;
        return -1;
    }
}

static ssize_t tls_write(int fd, void *p, const void *buf, size_t len) {
    SSL *ssl = p;
    size_t n;
    if (SSL_write_ex(ssl, buf, len, &n))
        return (ssize_t)n;
    int saved = errno;
    int e = SSL_get_error(ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        errno = EAGAIN;
        return -1;
    }
    ERR_clear_error();
    errno = e == SSL_ERROR_SYSCALL && saved ? saved : e == SSL_ERROR_SYSCALL ? EPIPE : EIO;
    return -1;
}

static int tls_want(void *p, int for_write) {
    SSL *ssl = p;
    if (SSL_want_write(ssl))
        return IO_WANT_WRITE;
    if (SSL_want_read(ssl))
        return IO_WANT_READ;
    return for_write ? IO_WANT_WRITE : IO_WANT_READ;
}

static void tls_release(void *p) {
    SSL *ssl = p;
    if (!ssl)
        return;
    tls_close_notify(ssl);
    SSL_free(ssl);
}

/* Decrypted bytes not yet returned, or raw records read ahead and not yet
 * looked at. After a read that ended on WANT_READ the raw rest is a partial
 * record, which only more bytes from the socket can complete. */
static int tls_pending(void *p) {
    SSL *ssl = p;
    return SSL_pending(ssl) > 0 || (SSL_has_pending(ssl) && !SSL_want_read(ssl));
}

int tls_conn_h2(void *p) {
    const unsigned char *d;
    unsigned int n;
    SSL_get0_alpn_selected(p, &d, &n);
    return n == 2 && memcmp(d, "h2", 2) == 0;
}

const struct io_ops io_tls = {"tls", tls_read, tls_write, tls_want, tls_release, tls_pending};
