/*
 * server_listen: a server's listening sockets and what arrives on them.
 * Binding (listener_open: the config's listen lines; listeners_inherit:
 * sockets systemd passed; listeners_share: a worker's copies of those),
 * accepting (on_accept: a batch of ACCEPT_BATCH per wakeup, one on a TLS
 * listener; max_connections with its loopback reserve and
 * max_connections_per_ip refused with a canned 503; EMFILE: the spare
 * descriptor accepts and closes the waiting client, then the listeners
 * pause for EMFILE_PAUSE_MS), and a reload's new set (listeners_apply:
 * all new addresses bound or none, then the unlisted ones closed).
 * Private to server.c and this file: server_int.h.
 */
#include "net/server.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/h2.h"
#include "net/notify.h"
#include "net/peer_limit.h"
#include "net/server_int.h"
#include "net/workers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections accepted per readiness callback, so one busy listener cannot
 * starve the connections already open. */
#define ACCEPT_BATCH 64
/* A new TLS connection costs a private-key operation (hundreds of us with
 * RSA) at its first read. Taking few per wakeup lets the connections whose
 * handshakes are done (cheap to finish) go first, as nginx does by
 * accepting one at a time; the level-triggered listener fires again. */
#define TLS_ACCEPT_BATCH 1
/* Pause before accepting again after running out of file descriptors. */
#define EMFILE_PAUSE_MS 100

struct listener {
    struct listener *next;
    struct server *srv;
    int fd;
    int paused;
    int activated; /* passed by systemd: kept across reloads whatever the config says */
    int tls;       /* a [tls] listener (or systemd's socket named "tls") */
    int nodelay;   /* TCP_NODELAY set on the listener: accepted sockets inherit it */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct event ev;
    char text[64];
};

#define BUSY_BODY "{\"error\": \"too many connections (max_connections)\", \"status\": 503}\n"
#define PEER_BODY                                                                                  \
    "{\"error\": \"too many connections from your address (max_connections_per_ip)\", "          \
    "\"status\": 503}\n"
static char refuse_busy[512], refuse_peer[512];
static size_t refuse_busy_len, refuse_peer_len;

static size_t refusal(char *out, size_t len, const char *body, size_t body_len) {
    return (size_t)snprintf(
        out, len,
        "HTTP/1.1 503 Service Unavailable\r\nServer: awaitd\r\nContent-Type: application/json\r\n"
        "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
        body_len, body);
}

/* Refuse cleanly: a short answer the client can read, then close (a TLS
 * client could not read plain text: it just sees the close). */
static void refuse(struct server *s, struct listener *l, int fd, const char *msg, size_t len) {
    s->metrics.conns_refused++;
    if (!l->tls) {
        ssize_t w = send(fd, msg, len, MSG_NOSIGNAL);
        (void)w;
    }
    close(fd);
}

void listeners_init_once(void) {
    refuse_busy_len = refusal(refuse_busy, sizeof refuse_busy, BUSY_BODY, sizeof BUSY_BODY - 1);
    refuse_peer_len = refusal(refuse_peer, sizeof refuse_peer, PEER_BODY, sizeof PEER_BODY - 1);
}

void server_peer_release(struct server *s, struct conn *c) {
    union conn_addr peer;
    conn_peer_sockaddr(c, &peer);
    if (s->peers_lock) { /* workers: one table, the owner's, under a lock (accept and close only) */
        pthread_mutex_lock(s->peers_lock);
        peer_limit_release(&s->owner->peers, &peer.sa);
        pthread_mutex_unlock(s->peers_lock);
    } else {
        peer_limit_release(&s->peers, &peer.sa);
    }
    c->peer_counted = 0;
}

/* Take a slot for peer in the per-address table: 0, or -1 (at the limit). */
static int server_peer_take(struct server *s, const struct sockaddr *peer, uint32_t max) {
    if (!s->peers_lock)
        return peer_limit_take(&s->peers, peer, max);
    pthread_mutex_lock(s->peers_lock);
    int r = peer_limit_take(&s->owner->peers, peer, max);
    pthread_mutex_unlock(s->peers_lock);
    return r;
}

static void listeners_pause(struct server *s, int pause) {
    for (struct listener *l = s->listeners; l; l = l->next) {
        if (pause && !l->paused)
            event_del(&l->ev);
        else if (!pause && l->paused)
            event_add(&l->ev, NULL);
        l->paused = pause;
    }
}

void listeners_on_resume(struct timer *t) {
    struct server *s = container_of(t, struct server, accept_resume);
    if (!s->draining)
        listeners_pause(s, 0);
}

/* Out of descriptors: free the spare one to accept and close the waiting
 * connection (a clean refusal instead of a client stuck in the backlog),
 * then stop accepting for a moment rather than spin on a ready listener. */
static void accept_emfile(struct server *s, struct listener *l) {
    static uint64_t last_log;
    uint64_t now = clock_now_ms();
    if (now - last_log > 10000) {
        log_warnx("out of file descriptors (%d connections open); refusing new connections",
                  (int)s->metrics.conns_open);
        last_log = now;
    }
    if (s->spare_fd >= 0) {
        close(s->spare_fd);
        int fd = accept(l->fd, NULL, NULL);
        if (fd >= 0) {
            s->metrics.conns_total++;
            s->metrics.conns_refused++;
            close(fd);
        }
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    listeners_pause(s, 1);
    server_timer_in(s, &s->accept_resume, EMFILE_PAUSE_MS);
}

static void on_accept(evutil_socket_t fd, short what, void *arg) {
    struct listener *l = arg;
    struct server *s = l->srv;
    int batch = l->tls ? TLS_ACCEPT_BATCH : ACCEPT_BATCH;
    for (int i = 0; i < batch; i++) {
        union conn_addr peer;
        socklen_t len = sizeof peer;
        int cfd = accept4(l->fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_emfile(s, l);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("accept on %s", l->text);
            break;
        }
        s->metrics.conns_total++;
        /* The last loopback_reserve slots are for loopback peers (health
         * checks, the operator's curl) so remote clients cannot take them. */
        uint64_t cap = s->cfg->max_connections;
        /* With workers the bound is on all loops' connections together. */
        uint64_t open = s->group ? workers_conns_open(s) : s->metrics.conns_open;
        if (open >= cap - s->cfg->loopback_reserve && !peer_is_loopback(&peer.sa))
            cap -= s->cfg->loopback_reserve;
        if (open >= cap || (l->tls && !s->tls_ctx)) {
            refuse(s, l, cfd, refuse_busy, refuse_busy_len);
            continue;
        }
        uint64_t per_ip = s->cfg->max_connections_per_ip;
        if (per_ip && server_peer_take(s, &peer.sa,
                                       per_ip > UINT32_MAX ? UINT32_MAX : (uint32_t)per_ip) != 0) {
            refuse(s, l, cfd, refuse_peer, refuse_peer_len);
            continue;
        }
        if (!l->nodelay) {
            int one = 1;
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        struct conn *c = conn_new(s, cfd, &peer.sa, len, l->tls ? s->tls_ctx : NULL);
        if (c)
            c->as.listener = l; /* role PLAIN (conn_new) */
        if (c && per_ip)
            c->peer_counted = 1;
        else if (per_ip) {
            struct conn tmp = {0};
            conn_peer_set(&tmp.peer, &peer.sa, len);
            server_peer_release(s, &tmp);
        }
    }
    server_timers_sync(s);
}

static struct listener *listener_add(struct server *s, int fd, const struct sockaddr *addr,
                                     socklen_t addrlen, const char *text, int tls) {
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->srv = s;
    l->fd = fd;
    l->tls = tls;
    if (addrlen > sizeof l->addr)
        addrlen = sizeof l->addr;
    memcpy(&l->addr, addr, addrlen);
    l->addrlen = addrlen;
    snprintf(l->text, sizeof l->text, "%s", text);
    /* Linux copies a listening socket's TCP options into the sockets it
     * accepts: set once here, it saves a setsockopt per connection (10,000
     * of them in a connect storm). Where it fails, on_accept sets each. */
    int one = 1;
    l->nodelay = setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
    event_assign(&l->ev, s->base, fd, EV_READ | EV_PERSIST, on_accept, l);
    if (!s->draining)
        event_add(&l->ev, NULL);
    l->next = s->listeners;
    s->listeners = l;
    return l;
}

struct listener *listener_open(struct server *s, const struct config_listen *a, int tls) {
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("cannot listen on %s: socket: %s", a->text, strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* workers > 1: each loop binds the address; the kernel spreads connections. */
    if (s->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        log_warn("%s: SO_REUSEPORT", a->text);
    if (a->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&a->addr, a->addrlen) < 0) {
        log_error("cannot listen on %s: bind: %s", a->text, strerror(errno));
        close(fd);
        return NULL;
    }
    if (listen(fd, (int)s->cfg->backlog) < 0) {
        log_error("cannot listen on %s: listen: %s", a->text, strerror(errno));
        close(fd);
        return NULL;
    }
    struct listener *l =
        listener_add(s, fd, (const struct sockaddr *)&a->addr, a->addrlen, a->text, tls);
    if (!l) {
        close(fd);
        return NULL;
    }
    log_info("listening on %s%s", a->text, tls ? " (TLS)" : "");
    return l;
}

static void listener_free(struct listener *l) {
    event_del(&l->ev);
    close(l->fd);
    free(l);
}

/* Same family, address and port. */
static int addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

/* Listening sockets passed by systemd replace the config's listen lines. */
int listeners_inherit(struct server *s) {
    struct notify_fd fds[NOTIFY_MAX_FDS];
    int n = notify_listen_fds(fds, NOTIFY_MAX_FDS);
    for (int i = 0; i < n; i++) {
        int tls = strcmp(fds[i].name, "tls") == 0;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char text[64] = "?";
        if (getsockname(fds[i].fd, (struct sockaddr *)&ss, &len) == 0) {
            char host[INET6_ADDRSTRLEN] = "?";
            if (ss.ss_family == AF_INET) {
                struct sockaddr_in *sin = (void *)&ss;
                inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
                snprintf(text, sizeof text, "%s:%u", host, ntohs(sin->sin_port));
            } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *sin6 = (void *)&ss;
                inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
                snprintf(text, sizeof text, "[%s]:%u", host, ntohs(sin6->sin6_port));
            }
        }
        struct listener *l = listener_add(s, fds[i].fd, (struct sockaddr *)&ss, len, text, tls);
        if (!l)
            return -1;
        l->activated = 1;
        log_info("listening on %s (socket activation, fd %d%s)", text, fds[i].fd,
                 tls ? ", TLS" : "");
    }
    if (n > 0 && (s->cfg->nlisten > 0 || s->cfg->ntls_listen > 0))
        log_info("socket activation: %d socket(s) from systemd; [server] and [tls] listen lines "
                 "not used", n);
    return n;
}

void listeners_close(struct server *s) {
    while (s->listeners) {
        struct listener *l = s->listeners;
        s->listeners = l->next;
        listener_free(l);
    }
}

/* Is a in cfg's listen lines: 0 no, 1 [server], 2 [tls]. */
static int listed(const struct config *cfg, const struct sockaddr_storage *a) {
    for (size_t i = 0; i < cfg->nlisten; i++)
        if (addr_equal(a, &cfg->listen[i].addr))
            return 1;
    for (size_t i = 0; i < cfg->ntls_listen; i++)
        if (addr_equal(a, &cfg->tls_listen[i].addr))
            return 2;
    return 0;
}

/* Bring the listeners in line with cfg: bind the new addresses first (all or
 * nothing), then close the ones no longer listed. An address that moves
 * between [server] and [tls] keeps its socket and changes its protocol. */
int listeners_apply(struct server *s, const struct config *cfg) {
    struct listener *added[2 * CONFIG_MAX_LISTEN];
    size_t nadded = 0;
    for (struct listener *l = s->listeners; l; l = l->next)
        if (l->activated)
            return 0; /* systemd owns the sockets */
    for (int tls = 0; tls < 2; tls++) {
        const struct config_listen *want = tls ? cfg->tls_listen : cfg->listen;
        size_t nwant = tls ? cfg->ntls_listen : cfg->nlisten;
        for (size_t i = 0; i < nwant; i++) {
            int have = 0;
            for (struct listener *l = s->listeners; l && !have; l = l->next)
                have = addr_equal(&l->addr, &want[i].addr);
            if (have)
                continue;
            struct listener *l = listener_open(s, &want[i], tls);
            if (!l) {
                /* Undo: the running set stays exactly as it was. */
                for (size_t k = 0; k < nadded; k++) {
                    struct listener **pp = &s->listeners;
                    while (*pp != added[k])
                        pp = &(*pp)->next;
                    *pp = added[k]->next;
                    listener_free(added[k]);
                }
                return -1;
            }
            added[nadded++] = l;
        }
    }
    for (struct listener **pp = &s->listeners; *pp;) {
        struct listener *l = *pp;
        int kind = listed(cfg, &l->addr);
        if (kind) {
            if (l->tls != (kind == 2))
                log_info("%s now serves %s", l->text, kind == 2 ? "TLS" : "plain HTTP");
            l->tls = kind == 2;
            pp = &l->next;
            continue;
        }
        log_info("no longer listening on %s", l->text);
        /* HTTP/2 connections it accepted get a GOAWAY: their streams finish,
         * new ones go to an address still served (issue 15). */
        for (struct list *n = s->conns.next, *next; n != &s->conns; n = next) {
            next = n->next;
            struct conn *c = container_of(n, struct conn, link);
            if (c->role == CONN_ROLE_PLAIN && c->as.listener == l) {
                c->as.listener = NULL;
            } else if (c->role == CONN_ROLE_H2 && h2_listener_gone(c, l)) {
                conn_drain(c);
            }
        }
        *pp = l->next;
        listener_free(l);
    }
    return 0;
}

/* Does cfg (with the sockets systemd passed, which override its listen
 * lines) need a TLS context? */
int listeners_tls_needed(const struct server *s, const struct config *cfg) {
    int activated = 0;
    for (const struct listener *l = s->listeners; l; l = l->next) {
        if (l->activated && l->tls)
            return 1;
        activated |= l->activated;
    }
    return !activated && cfg->ntls_listen > 0;
}

/* Share the owner's socket-activated listeners (a worker's own reference). */
int listeners_share(struct server *s, const struct server *owner) {
    int n = 0;
    for (const struct listener *o = owner->listeners; o; o = o->next) {
        if (!o->activated)
            continue;
        int fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
        struct listener *l = fd < 0 ? NULL
                                    : listener_add(s, fd, (const struct sockaddr *)&o->addr,
                                                   o->addrlen, o->text, o->tls);
        if (!l) {
            if (fd >= 0)
                close(fd);
            return -1;
        }
        l->activated = 1;
        n++;
    }
    return n;
}
