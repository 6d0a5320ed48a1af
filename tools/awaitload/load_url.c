#include "load_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

static int host_char_ok(unsigned char c) {
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

/* Split "host[:port]" or "[v6][:port]" from the authority a[0..n). */
static int parse_authority(const char *a, size_t n, struct load_url *u, char *err, size_t errlen) {
    const char *host = a, *port = NULL;
    size_t host_len, port_len = 0;
    if (n == 0)
        FAIL("missing host");
    if (memchr(a, '@', n))
        FAIL("user names in URLs are not supported");
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            FAIL("missing ']' after an IPv6 address");
        host = a + 1;
        host_len = (size_t)(close - host);
        const char *rest = close + 1;
        if (rest < a + n) {
            if (*rest != ':')
                FAIL("unexpected characters after ']'");
            port = rest + 1;
            port_len = (size_t)(a + n - port);
        }
        char v6[INET6_ADDRSTRLEN + 1];
        struct in6_addr in6;
        if (host_len == 0 || host_len >= sizeof v6)
            FAIL("invalid IPv6 address");
        memcpy(v6, host, host_len);
        v6[host_len] = '\0';
        if (inet_pton(AF_INET6, v6, &in6) != 1)
            FAIL("invalid IPv6 address '%s'", v6);
    } else {
        const char *colon = memchr(a, ':', n);
        host_len = colon ? (size_t)(colon - a) : n;
        if (colon) {
            port = colon + 1;
            port_len = (size_t)(a + n - port);
        }
        if (host_len == 0)
            FAIL("missing host");
        for (size_t i = 0; i < host_len; i++)
            if (!host_char_ok((unsigned char)host[i]))
                FAIL("invalid character in host name");
    }
    if (host_len >= sizeof u->host)
        FAIL("host name too long");
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';

    if (port) {
        unsigned long v = 0;
        if (port_len == 0 || port_len > 5)
            FAIL("invalid port");
        for (size_t i = 0; i < port_len; i++) {
            if (!isdigit((unsigned char)port[i]))
                FAIL("invalid port");
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (v < 1 || v > 65535)
            FAIL("port out of range (1 to 65535)");
        snprintf(u->port, sizeof u->port, "%lu", v);
    } else {
        snprintf(u->port, sizeof u->port, "%s", u->tls ? "443" : "80");
    }
    /* The Host field carries the authority exactly as written. */
    snprintf(u->host_header, sizeof u->host_header, "%.*s", (int)n, a);
    return 0;
}

int load_url_parse(const char *text, struct load_url *u, char *err, size_t errlen) {
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncasecmp(text, "http://", 7) == 0) {
        p = text + 7;
    } else if (strncasecmp(text, "https://", 8) == 0) {
        u->tls = 1;
        p = text + 8;
    } else {
        const char *colon = strstr(text, "://");
        if (colon)
            FAIL("unsupported scheme '%.*s' (only http:// is)", (int)(colon - text), text);
        FAIL("not an http:// URL");
    }
    size_t alen = strcspn(p, "/?#");
    if (parse_authority(p, alen, u, err, errlen) < 0)
        return -1;

    const char *t = p + alen;
    size_t tlen = strcspn(t, "#");
    size_t off = 0;
    if (tlen == 0 || t[0] == '?')
        u->target[off++] = '/'; /* an empty path is "/" (RFC 9110 4.2.3) */
    if (off + tlen >= sizeof u->target)
        FAIL("URL path too long (at most %d bytes)", LOAD_URL_MAX - 1);
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f)
            FAIL("URL path has a space, control or non-ASCII byte (percent-encode it)");
    }
    memcpy(u->target + off, t, tlen);
    u->target[off + tlen] = '\0';
    return 0;
}

int load_url_resolve(const struct load_url *u, struct load_addr *a, char *err, size_t errlen) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* No AI_ADDRCONFIG: it hides ::1 on hosts without a global IPv6
     * address, and the caller tries each address anyway. */
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0)
        FAIL("cannot resolve '%s': %s", u->host, gai_strerror(rc));
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < LOAD_URL_MAX_ADDRS; ai = ai->ai_next, n++) {
        struct load_addr *x = &a[n];
        char ip[INET6_ADDRSTRLEN];
        memcpy(&x->ss, ai->ai_addr, ai->ai_addrlen);
        x->len = ai->ai_addrlen;
        if (ai->ai_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof ip);
            snprintf(x->text, sizeof x->text, "[%s]:%s", ip, u->port);
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof ip);
            snprintf(x->text, sizeof x->text, "%s:%s", ip, u->port);
        }
    }
    freeaddrinfo(res);
    return n;
}
