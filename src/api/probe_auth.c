/*
 * probe_auth: httpbin's authentication probes. /basic-auth/{user}/{passwd}
 * (401 with a Basic challenge, or 404 for /hidden-basic-auth), /bearer
 * (any token), /digest-auth/{qop}/{user}/{passwd}[/{algorithm}[/{stale_after}]]
 * (RFC 7616: qop auth or auth-int, MD5, SHA-256 or SHA-512). Any nonce
 * the client brings back is accepted, as in httpbin; the state of
 * stale_after and ?require-cookie lives in the client's cookies
 * (stale_after, last_nonce, fake) exactly as httpbin keeps it, so awaitd
 * keeps none.
 */
#include "api/probe_int.h"

#include "core/base64.h"
#include "core/buf.h"
#include "http/auth_param.h"
#include "http/cookie.h"
#include "http/http_query.h"
#include "http/http_parse.h"
#include "net/http_reply.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define REALM "me@kennethreitz.com" /* httpbin's, which clients' tests may expect */

/* Path segments after the prefix, each percent-decoded into one buffer:
 * seg[i] points into it. The count, or -1. */
static int decoded_segments(const struct http_request *req, size_t skip, struct buf *b,
                            const char **seg, size_t *len, size_t max) {
    struct probe_kv kv[8];
    int n = probe_path_args(req, skip, kv, max < 8 ? max : 8);
    if (n < 0)
        return -1;
    size_t at[8];
    for (int i = 0; i < n; i++) {
        at[i] = b->len;
        if (probe_urldecode(b, kv[i].k, kv[i].klen, 0) < 0 || buf_append(b, "", 1) < 0)
            return -1;
        len[i] = b->len - at[i] - 1;
    }
    for (int i = 0; i < n; i++)
        seg[i] = buf_start(b) + at[i];
    return n;
}

static enum handler_result authenticated_x(struct probe *p, struct conn *c, const char *user,
                                           size_t ulen, const char *extra) {
    int r = buf_appends(&p->body, "{\"authenticated\": true, \"user\": ");
    r |= buf_append_json_str(&p->body, user, ulen);
    r |= buf_appends(&p->body, "}\n");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, extra);
}

static enum handler_result authenticated(struct probe *p, struct conn *c, const char *user,
                                         size_t ulen) {
    return authenticated_x(p, c, user, ulen, NULL);
}

/* /basic-auth/{user}/{passwd} and /hidden-basic-auth/{user}/{passwd} */
PROBE_HANDLER(probe_basic_auth) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    int hidden = req->path[1] == 'h';
    struct buf b = BUF_INIT;
    const char *seg[3];
    size_t len[3];
    if (decoded_segments(req, hidden ? 19 : 12, &b, seg, len, 3) != 2) {
        buf_free(&b);
        return reply_fail(c, 404, "use %s/{user}/{passwd}", hidden ? "/hidden-basic-auth" : "/basic-auth");
    }
    const struct http_header *h = probe_header(req, "authorization");
    int ok = 0;
    if (h && h->value_len > 6 && strncasecmp(h->value, "basic ", 6) == 0 && h->value_len < 4096) {
        unsigned char dec[3072];
        long n = base64_decode(h->value + 6, h->value_len - 6, dec);
        const unsigned char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
        ok = colon && (size_t)(colon - dec) == len[0] && memcmp(dec, seg[0], len[0]) == 0 &&
             (size_t)(n - (colon + 1 - dec)) == len[1] && memcmp(colon + 1, seg[1], len[1]) == 0;
    }
    enum handler_result res;
    if (ok)
        res = authenticated(p, c, seg[0], len[0]);
    else
        res = probe_status_reply(c, hidden ? 404 : 401);
    buf_free(&b);
    return res;
}

PROBE_HANDLER(probe_bearer) {
    struct probe *p = ctx;
    (void)body, (void)body_len;
    const struct http_header *h = probe_header(req, "authorization");
    if (!h || h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0) {
        reply(c, 401, "text/html; charset=utf-8", "WWW-Authenticate: Bearer\r\n", "", 0);
        return HANDLER_DONE;
    }
    int r = buf_appends(&p->body, "{\"authenticated\": true, \"token\": ");
    r |= buf_append_json_str(&p->body, h->value + 7, h->value_len - 7);
    r |= buf_appends(&p->body, "}\n");
    return r ? probe_oom(p, c) : probe_send(p, c, 200, CT_JSON, NULL);
}

/* ---- digest ------------------------------------------------------------------ */

static const EVP_MD *digest_md(const char *alg, size_t n) {
    if (n == 7 && strncasecmp(alg, "SHA-256", 7) == 0)
        return EVP_sha256();
    if (n == 7 && strncasecmp(alg, "SHA-512", 7) == 0)
        return EVP_sha512();
    return EVP_md5();
}

/* Lowercase hex of H(s[0..n)) into out (room for 129). */
static void hex_digest(const EVP_MD *md, const void *s, size_t n, char *out) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    EVP_Digest(s, n, d, &dl, md, NULL);
    for (unsigned i = 0; i < dl; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    out[2 * dl] = '\0';
}

/* H(a:b:c...) over the pieces, hex into out. */
static int hex_joined(const EVP_MD *md, char *out, size_t npieces, const char *const *piece,
                      const size_t *plen) {
    struct buf b = BUF_INIT;
    int r = 0;
    for (size_t i = 0; i < npieces; i++) {
        if (i)
            r |= buf_append(&b, ":", 1);
        r |= buf_append(&b, piece[i], plen[i]);
    }
    if (!r)
        hex_digest(md, b.len ? buf_start(&b) : "", b.len, out);
    buf_free(&b);
    return r;
}

static enum handler_result digest_challenge(struct conn *c, const char *qop, const char *alg,
                                            int stale, const char *cookies) {
    unsigned char rnd[32];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        memset(rnd, 0x5a, sizeof rnd);
    char nonce[129], opaque[129], line[1536];
    const EVP_MD *md = digest_md(alg, strlen(alg));
    hex_digest(md, rnd, 16, nonce);
    hex_digest(md, rnd + 16, 16, opaque);
    snprintf(line, sizeof line,
             "WWW-Authenticate: Digest realm=\"" REALM "\", nonce=\"%s\", qop=\"%s\", "
             "opaque=\"%s\", algorithm=%s, stale=%s\r\n%s",
             nonce, qop, opaque, alg, stale ? "TRUE" : "FALSE", cookies);
    reply(c, 401, "text/html; charset=utf-8", line, "", 0);
    return HANDLER_DONE;
}

#define SET_COOKIE(name, fmt) "Set-Cookie: " name "=" fmt "; Path=/\r\n"
#define SET_FAKE SET_COOKIE("fake", "fake_value")

/* s[0..n) can be a cookie value as it is (RFC 6265 cookie-octets, at most max). */
static int cookie_safe(const char *s, size_t n, size_t max) {
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == ',' || ch == ';' || ch == '\\')
            return 0;
    }
    return 1;
}

static const struct http_cookie *cookie_find(const struct http_cookie *ck, size_t n,
                                             const char *name) {
    for (size_t i = 0; i < n; i++) /* the first, as werkzeug's request.cookies */
        if (ck[i].name_len == strlen(name) && memcmp(ck[i].name, name, ck[i].name_len) == 0)
            return &ck[i];
    return NULL;
}

static int cookie_is(const struct http_cookie *ck, const char *v) {
    return ck && ck->value_len == strlen(v) && memcmp(ck->value, v, ck->value_len) == 0;
}

static int param_is(const struct http_param *p, const char *s) {
    return p && p->value_len == strlen(s) && strncasecmp(p->value, s, p->value_len) == 0;
}

PROBE_HANDLER(probe_digest_auth) {
    struct probe *p = ctx;
    struct buf b = BUF_INIT;
    const char *seg[6];
    size_t len[6];
    int n = decoded_segments(req, 13, &b, seg, len, 6);
    if (n < 3 || n > 5) {
        buf_free(&b);
        return reply_fail(c, 404, "use /digest-auth/{qop}/{user}/{passwd}[/{algorithm}[/{stale_after}]]");
    }
    const char *qop = strcmp(seg[0], "auth") == 0 || strcmp(seg[0], "auth-int") == 0
                          ? seg[0] : "auth, auth-int"; /* httpbin: anything else offers both */
    const char *alg = n >= 4 && (strcmp(seg[3], "SHA-256") == 0 || strcmp(seg[3], "SHA-512") == 0)
                          ? seg[3] : "MD5";
    const char *stale_after = n == 5 ? seg[4] : "never";
    if (!cookie_safe(stale_after, strlen(stale_after), 64)) {
        buf_free(&b);
        return reply_fail(c, 400, "stale_after must be a count or a word (letters, digits, - _)");
    }
    /* httpbin's cookie state: what the client brings back. */
    const struct http_header *ch = probe_header(req, "cookie");
    struct http_cookie ck[32];
    size_t nck = ch ? http_cookie_parse(ch->value, ch->value_len, ck, 32) : 0;
    const struct http_cookie *c_stale = cookie_find(ck, nck, "stale_after");
    const struct http_cookie *c_last = cookie_find(ck, nck, "last_nonce");
    const struct http_cookie *c_fake = cookie_find(ck, nck, "fake");
    size_t rl;
    const char *rc = http_query_get(req, "require-cookie", &rl);
    int require_cookie = rc && ((rl == 1 && (*rc == '1' || *rc == 't' || *rc == 'T')) ||
                                (rl == 4 && strncasecmp(rc, "true", 4) == 0));
    char cookies[512];
    const struct http_header *h = probe_header(req, "authorization");
    struct http_param prm[32];
    const char *scheme;
    size_t slen;
    int np = h ? http_auth_params(h->value, h->value_len, &scheme, &slen, prm, 32) : -1;
    enum handler_result res;
    if (np < 0 || slen != 6 || strncasecmp(scheme, "digest", 6) != 0 || (require_cookie && !ch)) {
        snprintf(cookies, sizeof cookies, SET_COOKIE("stale_after", "%s") SET_FAKE, stale_after);
        res = digest_challenge(c, qop, alg, 0, cookies);
        buf_free(&b);
        return res;
    }
    if (require_cookie && !cookie_is(c_fake, "fake_value")) {
        buf_free(&b);
        buf_appends(&p->body, "{\"errors\": [\"missing cookie set on challenge\"]}\n");
        return probe_send(p, c, 403, CT_JSON, SET_FAKE);
    }
    const struct http_param *user = http_param_find(prm, (size_t)np, "username");
    const struct http_param *realm = http_param_find(prm, (size_t)np, "realm");
    const struct http_param *nonce = http_param_find(prm, (size_t)np, "nonce");
    const struct http_param *resp = http_param_find(prm, (size_t)np, "response");
    const struct http_param *cq = http_param_find(prm, (size_t)np, "qop");
    const struct http_param *nc = http_param_find(prm, (size_t)np, "nc");
    const struct http_param *cnonce = http_param_find(prm, (size_t)np, "cnonce");
    const struct http_param *calg = http_param_find(prm, (size_t)np, "algorithm");
    /* The nonce comes back as last_nonce only when it is a cookie value. */
    char last[160] = "";
    if (nonce && cookie_safe(nonce->value, nonce->value_len, 128))
        snprintf(last, sizeof last, SET_COOKIE("last_nonce", "%.*s"), (int)nonce->value_len,
                 nonce->value);
    int stale = (c_last && nonce && c_last->value_len == nonce->value_len &&
                 memcmp(c_last->value, nonce->value, nonce->value_len) == 0) ||
                cookie_is(c_stale, "0");
    if (stale) {
        snprintf(cookies, sizeof cookies, SET_COOKIE("stale_after", "%s") "%s" SET_FAKE,
                 stale_after, last);
        res = digest_challenge(c, qop, alg, 1, cookies);
        buf_free(&b);
        return res;
    }
    int ok = user && nonce && resp && user->value_len == len[1] &&
             memcmp(user->value, seg[1], len[1]) == 0 &&
             (!cq || ((param_is(cq, "auth") || param_is(cq, "auth-int")) && nc && cnonce));
    if (ok) {
        const EVP_MD *md = calg ? digest_md(calg->value, calg->value_len) : EVP_md5();
        char ha1[129], ha2[129], bodyh[129], want[129];
        const char *a1[] = {user->value, realm ? realm->value : "", seg[2]};
        size_t a1l[] = {user->value_len, realm ? realm->value_len : 0, len[2]};
        int r = hex_joined(md, ha1, 3, a1, a1l);
        /* The URI hashed is the request's own, as httpbin checks it. */
        if (param_is(cq, "auth-int")) {
            hex_digest(md, body ? body : "", body_len, bodyh);
            const char *a2[] = {req->method_str, req->target, bodyh};
            size_t a2l[] = {req->method_len, req->target_len, strlen(bodyh)};
            r |= hex_joined(md, ha2, 3, a2, a2l);
        } else {
            const char *a2[] = {req->method_str, req->target};
            size_t a2l[] = {req->method_len, req->target_len};
            r |= hex_joined(md, ha2, 2, a2, a2l);
        }
        if (cq) {
            const char *x[] = {ha1, nonce->value, nc->value, cnonce->value, cq->value, ha2};
            size_t xl[] = {strlen(ha1), nonce->value_len, nc->value_len, cnonce->value_len,
                           cq->value_len, strlen(ha2)};
            r |= hex_joined(md, want, 6, x, xl);
        } else {
            const char *x[] = {ha1, nonce->value, ha2};
            size_t xl[] = {strlen(ha1), nonce->value_len, strlen(ha2)};
            r |= hex_joined(md, want, 3, x, xl);
        }
        if (r) {
            buf_free(&b);
            return probe_oom(p, c);
        }
        ok = resp->value_len == strlen(want) && strncasecmp(resp->value, want, resp->value_len) == 0;
    }
    if (!ok) {
        snprintf(cookies, sizeof cookies, SET_COOKIE("stale_after", "%s") "%s" SET_FAKE,
                 stale_after, last);
        res = digest_challenge(c, qop, alg, 0, cookies);
    } else {
        /* A login counts stale_after down: 3, 2, 1, 0 (then stale); a word
         * ("never") becomes "never". */
        char next[32] = "never";
        if (c_stale) {
            int64_t v = http_parse_uint(c_stale->value, c_stale->value_len, 1000000000);
            if (v > 0)
                snprintf(next, sizeof next, "%lld", (long long)(v - 1));
        }
        snprintf(cookies, sizeof cookies, SET_FAKE "%s%s%s", c_stale ? "Set-Cookie: stale_after=" : "",
                 c_stale ? next : "", c_stale ? "; Path=/\r\n" : "");
        res = authenticated_x(p, c, seg[1], len[1], cookies);
    }
    buf_free(&b);
    return res;
}
