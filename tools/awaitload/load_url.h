/*
 * load_url: the target of a load run. Parsing is pure (and unit tested);
 * resolution calls getaddrinfo once, before any thread starts, so name
 * lookups never sit on the measured path.
 */
#ifndef AWAITD_LOAD_URL_H
#define AWAITD_LOAD_URL_H

#include <stddef.h>
#include <sys/socket.h>

#define LOAD_URL_MAX 4096

struct load_url {
    char host[256];            /* name or address, without IPv6 brackets */
    char host_header[300];     /* the Host field value: host[:port], brackets kept */
    char port[6];              /* decimal */
    char target[LOAD_URL_MAX]; /* path and query as sent; "/" when empty */
    int tls;                   /* https:// was given (refused by the caller) */
};

struct load_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80]; /* "127.0.0.1:8080" or "[::1]:8080", for messages */
};

/*
 * Parse http[s]://host[:port][/path][?query][#fragment]. The host is a name,
 * a dotted IPv4 address or a bracketed IPv6 address; the fragment is
 * dropped (clients never send it). Returns 0, or -1 with err (size errlen)
 * naming the problem.
 */
int load_url_parse(const char *text, struct load_url *u, char *err, size_t errlen);

#define LOAD_URL_MAX_ADDRS 8

/* Resolve u->host once, into up to LOAD_URL_MAX_ADDRS addresses in
 * getaddrinfo's order (the caller uses the first that accepts a connection).
 * Returns how many (>= 1), or -1 with err set. */
int load_url_resolve(const struct load_url *u, struct load_addr *a, char *err, size_t errlen);

#endif
