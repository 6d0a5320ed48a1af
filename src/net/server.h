/*
 * server: the daemon's one event loop and what hangs off it: listeners,
 * accept (max_connections, EMFILE back-off), the timer wheel and the
 * libevent timer that drives it, signals, shutdown drain, and the buffers
 * shared by every connection on this thread.
 */
#ifndef AWAITD_SERVER_H
#define AWAITD_SERVER_H

#include "core/buf.h"
#include "core/list.h"
#include "net/conn.h"
#include "net/peer_limit.h"
#include "net/service.h"
#include "http/http_parse.h"
#include "net/metrics.h"
#include "core/timer.h"

#include <event2/event_struct.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

struct config;
struct conn;
struct listener;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

#define SERVER_RBUF_SIZE 65536

struct server {
    struct event_base *base;
    struct config *cfg;           /* in force; owned */
    struct http_limits limits;    /* derived from cfg */
    struct timer_wheel wheel;     /* every deadline of the daemon */
    int wheel_fd;                 /* timerfd (CLOCK_MONOTONIC) that advances the wheel */
    struct event wheel_ev;        /* read event on wheel_fd */
    uint64_t wheel_armed_at;      /* ms wheel_fd is set for; UINT64_MAX if unset */
    struct listener *listeners;   /* singly linked */
    struct ssl_ctx_st *tls_ctx;   /* for new TLS connections (each holds a reference to
                                     the one it began with); NULL without TLS listeners */
    struct list conns;            /* every open connection (struct conn, link) */
    struct peer_table peers;      /* open connections per client address (per-IP limit) */
    struct metrics metrics;
    struct access_log *alog;      /* [log] access, or NULL when off */
    /* Scratch shared by all connections: empty whenever control returns to the loop. */
    char *rbuf;                   /* SERVER_RBUF_SIZE bytes */
    struct buf wbuf;              /* responses built in a callback, before they are written */
    struct conn *wbuf_owner;      /* the connection whose bytes wbuf holds, or NULL */
    struct buf errbuf;            /* error bodies (reply_error) */
    struct conn_busy idle_busy;   /* what an idle connection's b points at: always empty */
    struct conn_busy *busy_free;  /* busy structs given back, for the next busy connection */
    unsigned busy_nfree;
    struct buf lost;              /* an answer with no memory for its buffer goes here, unsent */
    /* Cached HTTP Date header value, refreshed once a second. */
    time_t date_sec;
    char date[40];
    int spare_fd;                 /* kept open to be closed when accept hits EMFILE */
    int draining;                 /* SIGTERM seen: no accepts, close when idle */
    int announcing;               /* SIGTERM seen, [server] drain_delay running: serving on,
                                     /health 503 draining, every answer Connection: close */
    struct timer announce;        /* the end of drain_delay: the drain proper */
    struct event *sig_term, *sig_int, *sig_hup, *sig_usr1;
    struct timer grace;           /* shutdown grace deadline */
    struct timer accept_resume;   /* re-enables listeners after EMFILE */
    struct timer status_tick;     /* sd_notify STATUS= and WATCHDOG=1 */
    uint64_t watchdog_ms;         /* systemd's WATCHDOG_USEC in ms, 0 if none */
    uint64_t reloads;             /* successful SIGHUP reloads */
    time_t start_time;
    int exit_code;                /* 1 after a forced exit (second signal) or a failed start */
    int in_advance;               /* inside timer_wheel_advance (not reentrant) */
    conn_handler_fn handler;      /* answers every parsed request (main.c sets the router) */
    const char *reply_extra;      /* header lines every answer to reply_extra_conn gets */
    size_t reply_extra_len;       /* strlen(reply_extra), set with it */
    const struct conn *reply_extra_conn; /* set by the handler for one dispatch (CORS), or NULL */
    void *handler_ctx;
    struct service services[SERVER_MAX_SERVICES]; /* registered by main.c, started in order */
    size_t nservices;
    size_t nstarted;              /* services whose start succeeded */
    /* [server] workers > 1 (net/workers.h): every loop is a struct server. */
    struct workers *group;        /* NULL with one loop */
    unsigned worker_id;           /* 0: the owner (main thread; the services) */
    int reuseport;                /* listeners bind with SO_REUSEPORT (workers > 1) */
    pthread_mutex_t *peers_lock;  /* guards the owner's peer table when shared */
    struct server *owner;         /* worker 0's server; itself when alone */
    unsigned nloops;              /* event loops (workers), 1 alone */
    uint64_t output_budget;       /* this loop's share of [server] output_budget */
    const uint64_t *delays_pending; /* workers: this loop's probes' gauge (set by main.c), summed */
};

/* Build the server for cfg (takes ownership) and bind every listener.
 * 0 or -1 (logged). server_free() is needed either way. */
int server_init(struct server *s, struct config *cfg);

/* Build worker id's server beside owner (net/workers.c): the config read
 * again from its file, listeners bound with SO_REUSEPORT (or the owner's
 * socket-activated ones shared), no signals and no services. 0 or -1;
 * server_free() is needed either way. */
int server_init_worker(struct server *s, struct server *owner, unsigned id);

/* Register a service (net/service.h) before server_run. 0, or -1 (too many). */
int server_add_service(struct server *s, const struct service_ops *ops, void *ctx);

/* Who answers parsed requests: handler(ctx, c, req, body, len). */
void server_set_handler(struct server *s, conn_handler_fn handler, void *ctx);

/* Start the services in registration order, then run the loop until
 * shutdown completes. Returns the exit code (1 if a service failed to
 * start or a second signal forced the exit). */
int server_run(struct server *s);

/* Close every connection and listener, then the services in reverse order. */
void server_free(struct server *s);

/* A connection that counted against max_connections_per_ip closed. */
void server_peer_release(struct server *s, struct conn *c);

/* Append every service's figures (Prometheus text). 0 or -1 (no memory). */
int server_services_metrics(struct server *s, struct buf *out);
/* 0 when every started service is healthy, else 1 with the first one's why. */
int server_services_health(struct server *s, char *why, size_t len);

/* Arm the wheel's libevent timer if the wheel's next expiry moved earlier. */
void server_timers_sync(struct server *s);
/* Schedule t at now + ms on the server's wheel. */
void server_timer_in(struct server *s, struct timer *t, uint64_t ms);
/* When c's current request reached the kernel (clock_now_ms() scale, never
 * earlier than it did); now if that cannot be told. */
uint64_t server_request_arrival_ms(const struct conn *c);
/* Schedule t ms after c's current request arrived (server_request_arrival_ms):
 * a request that waited in the accept queue or the socket while the loop
 * was busy is answered on time, not late by the wait. */
void server_timer_after_arrival(struct server *s, const struct conn *c, struct timer *t,
                                uint64_t ms);

/* Bring the wheel's clock to now (firing what is due), unless already inside
 * an advance: the queue engine reads wheel->now as the current time. */
void server_wheel_catch_up(struct server *s);

/* The Date header value for now, "Sun, 06 Nov 1994 08:49:37 GMT". */
const char *server_date(struct server *s);

/*
 * Re-read the config file (as SIGHUP does). The new file is parsed and
 * validated in full, the TLS context is built from the files it names (so
 * a replaced certificate, key or client CA is read again), new listeners
 * are bound, and only then is it swapped in; on any error the running
 * config and TLS context stay and the reason is logged.
 * Returns 0 when the new config is in force.
 */
int server_reload(struct server *s);

/* Start the drain (as SIGTERM does). */
void server_shutdown(struct server *s);

#endif
