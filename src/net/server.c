/*
 * server: one event loop and what runs it (the contract is net/server.h):
 * building it (server_init, server_init_worker: event base, shared
 * buffers, access log, timer wheel, TLS context, listeners, signals), the
 * timer wheel and the timerfd that drives it, the Date header cache, the
 * services (start, reload, drain, metrics, close), SIGHUP reload, SIGTERM
 * drain and shutdown, the status tick to systemd, and server_free.
 * Listeners and accept are server_listen.c (server_int.h between them).
 */
#include "net/server.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "net/access_log.h"
#include "net/conn.h"
#include "net/http_reply.h"
#include "net/notify.h"
#include "net/server_int.h"
#include "net/tls_server.h"
#include "net/workers.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Free heap memory past which the status tick returns it to the system. */
#define SERVER_TRIM_FREE (4u << 20)

/*
 * The wheel is driven by a timerfd on CLOCK_MONOTONIC, armed at the
 * absolute millisecond timer_wheel_next() names, rather than by a libevent
 * timeout: libevent reads CLOCK_MONOTONIC_COARSE (it ticks every 4 ms
 * here, HZ=250), so its timeouts fired 0-4 ms late, and its precise mode
 * calls timerfd_settime on every loop turn. This one is set only when the
 * wheel's next deadline moves earlier, and after it fires.
 */
static void on_wheel(evutil_socket_t fd, short what, void *arg) {
    struct server *s = arg;
    uint64_t expirations;
    (void)what;
    if (read(fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        log_warn("timerfd read");
    s->wheel_armed_at = UINT64_MAX;
    s->wheel.sync_min = 0; /* fired: the sync below looks at the wheel */
    server_wheel_catch_up(s);
    server_timers_sync(s);
}

void server_wheel_catch_up(struct server *s) {
    if (s->in_advance)
        return;
    s->in_advance = 1;
    timer_wheel_advance(&s->wheel, clock_now_ms());
    s->in_advance = 0;
}

void server_timers_sync(struct server *s) {
    /* Nothing added before the alarm, no advance that moved anything since
     * the last look: the alarm still comes first (about 100 instructions
     * saved per loop event). */
    if (s->wheel.sync_min >= s->wheel_armed_at)
        return;
    s->wheel.sync_min = UINT64_MAX;
    uint64_t next = timer_wheel_next(&s->wheel);
    if (next >= s->wheel_armed_at)
        return;
    /* An absolute time in the past fires at once; zero would disarm. */
    struct itimerspec its = {.it_value = {(time_t)(next / 1000), (long)(next % 1000) * 1000000}};
    if (!next)
        its.it_value.tv_nsec = 1;
    if (timerfd_settime(s->wheel_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        log_warn("timerfd_settime");
        s->wheel.sync_min = 0; /* try again at the next sync */
        return;
    }
    s->wheel_armed_at = next;
}

void server_timer_in(struct server *s, struct timer *t, uint64_t ms) {
    /* The clock truncates to the millisecond, so +1 makes "at least ms from
     * now" true even late in the current millisecond: never early. */
    timer_add(&s->wheel, t, clock_now_ms() + ms + 1);
}

/* The kernel's clock tick in ms (CLOCK_MONOTONIC_COARSE's resolution): the
 * granularity of TCP_INFO's times. Set once, before any worker starts. */
static uint64_t tick_ms = 10;

static void tick_ms_init(void) {
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0)
        tick_ms = ((uint64_t)res.tv_nsec + 999999) / 1000000;
}

/*
 * When c's current request reached the kernel, on clock_now_ms()'s scale:
 * now, less the time its bytes waited in the socket (accept queue and
 * receive buffer) before the loop read them, as TCP_INFO's
 * tcpi_last_data_recv tells it. That figure counts in kernel ticks
 * (jiffies; 4 ms here), so one tick comes off it: the time returned is
 * never before the last byte arrived, so nothing timed from it is early.
 * Only for a request read straight from the socket (c->in empty at
 * dispatch): a pipelined one that waited in c->in behind a pending answer
 * starts when it is dispatched, and HTTP/2 streams and worker handovers
 * (no socket of their own) start now.
 */
uint64_t server_request_arrival_ms(const struct conn *c) {
    uint64_t now = clock_now_ms();
    if (c->fd < 0 || c->h2_stream || c->role != CONN_ROLE_PLAIN || c->b->in.len)
        return now;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof ti.tcpi_last_data_recv)
        return now;
    uint64_t waited = ti.tcpi_last_data_recv;
    if (waited <= tick_ms || waited - tick_ms >= now)
        return now;
    return now - (waited - tick_ms);
}

void server_timer_after_arrival(struct server *s, const struct conn *c, struct timer *t,
                                uint64_t ms) {
    /* +1 as in server_timer_in: the clock truncates to the millisecond. */
    timer_add(&s->wheel, t, server_request_arrival_ms(c) + ms + 1);
}

const char *server_date(struct server *s) {
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static void on_grace(struct timer *t) {
    struct server *s = container_of(t, struct server, grace);
    log_warnx("shutdown grace period over; closing %d connections", (int)s->metrics.conns_open);
    while (!list_empty(&s->conns))
        conn_close(container_of(s->conns.next, struct conn, link));
    event_base_loopexit(s->base, NULL);
}

static void on_announced(struct timer *t) {
    server_shutdown(container_of(t, struct server, announce));
}

void server_shutdown(struct server *s) {
    if (!s->draining && !s->announcing && s->cfg->drain_delay_ms) {
        /* [server] drain_delay: first tell load balancers (/health 503
         * "draining" on new connections too), still serving; then drain. */
        s->announcing = 1;
        notify_send("STOPPING=1");
        log_info("shutting down: /health answers 503 draining for %llu ms, then the drain",
                 (unsigned long long)s->cfg->drain_delay_ms);
        server_timer_in(s, &s->announce, s->cfg->drain_delay_ms);
        server_timers_sync(s);
        return;
    }
    if (!s->draining) {
        timer_cancel(&s->wheel, &s->announce); /* a second signal cuts drain_delay short */
        s->draining = 1;
        if (s->worker_id == 0)
            notify_send("STOPPING=1");
        workers_shutdown(s);
        log_info("shutting down: draining %d connections (grace %llu ms)",
                 (int)s->metrics.conns_open, (unsigned long long)s->cfg->shutdown_grace_ms);
        listeners_close(s);
        timer_cancel(&s->wheel, &s->accept_resume);
        for (size_t i = 0; i < s->nstarted; i++)
            if (s->services[i].ops->drain)
                s->services[i].ops->drain(s->services[i].ctx);
        server_timer_in(s, &s->grace, s->cfg->shutdown_grace_ms);
        /* Idle connections go now; busy ones after their current answer. */
        struct list *n, *tmp;
        list_for_each_safe(n, tmp, &s->conns)
            conn_drain(container_of(n, struct conn, link));
        server_timers_sync(s);
    }
    /* The owner serves the other workers' queue requests until they are done. */
    if (list_empty(&s->conns) && workers_done(s))
        event_base_loopexit(s->base, NULL);
}

static uint64_t total_requests(const struct server *s) {
    const struct metrics *m = &s->metrics;
    struct metrics sum;
    struct metrics_gauges g;
    if (s->group) { /* every worker's */
        workers_metrics_sum(s, &sum, &g);
        m = &sum;
    }
    uint64_t n = 0;
    for (int i = 1; i <= 5; i++)
        n += m->requests[i];
    return n;
}

/* Every few seconds (or half the watchdog interval): tell systemd how we are. */
static void on_status_tick(struct timer *t) {
    struct server *s = container_of(t, struct server, status_tick);
    /* Memory freed after a burst (answers streamed to many clients, say)
     * sits in the heap's free lists; give it back to the system. */
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks > SERVER_TRIM_FREE)
        malloc_trim(0);
    uint64_t open = s->group ? workers_conns_open(s) : s->metrics.conns_open;
    notify_sendf("STATUS=%llu connections open, %llu requests answered%s",
                 (unsigned long long)open, (unsigned long long)total_requests(s),
                 s->draining ? ", draining" : "");
    uint64_t next = 5000;
    if (s->watchdog_ms) {
        notify_send("WATCHDOG=1");
        if (s->watchdog_ms / 2 < next)
            next = s->watchdog_ms / 2 ? s->watchdog_ms / 2 : 1;
    }
    server_timer_in(s, t, next);
}

/* Build the TLS context cfg asks for, if any, into *out (NULL if none). */
static int tls_prepare(const struct server *s, const struct config *cfg, struct ssl_ctx_st **out,
                       int64_t *not_after, char *err, size_t errlen) {
    *out = NULL;
    *not_after = 0;
    if (!listeners_tls_needed(s, cfg))
        return 0;
    *out = tls_ctx_new(cfg, not_after, err, errlen);
    return *out ? 0 : -1;
}

static void tls_swap(struct server *s, struct ssl_ctx_st *ctx, int64_t not_after,
                     const struct config *cfg) {
    /* Connections accepted under the old context hold their own reference. */
    tls_ctx_free(s->tls_ctx);
    s->tls_ctx = ctx;
    s->metrics.tls_cert_not_after = not_after;
    if (ctx) {
        char when[32] = "?";
        time_t t = (time_t)not_after;
        struct tm tm;
        if (not_after && gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%d", &tm);
        log_info("TLS: serving certificate %s (valid until %s)%s%s", cfg->tls_cert, when,
                 cfg->tls_client_ca ? ", client certificates from " : "",
                 cfg->tls_client_ca ? cfg->tls_client_ca : "");
    }
}

static int config_same_str(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

int server_reload(struct server *s) {
    if (s->worker_id == 0)
        notify_send("RELOADING=1");
    struct config *nc;
    char err[1024];
    int ok = 0;
    struct ssl_ctx_st *nctx = NULL;
    int64_t not_after = 0;
    if (config_load(s->cfg->path, &nc, err, sizeof err) < 0) {
        log_error("reload failed, the running configuration stays: %s", err);
    } else if (tls_prepare(s, nc, &nctx, &not_after, err, sizeof err) < 0) {
        log_error("reload failed, the running configuration and TLS certificate stay: %s", err);
        config_free(nc);
    } else if (listeners_apply(s, nc) < 0) {
        log_error("reload failed (a new listen address could not be bound), the running "
                  "configuration stays");
        tls_ctx_free(nctx);
        config_free(nc);
    } else {
        tls_swap(s, nctx, not_after, nc);
        struct config *old = s->cfg;
        if (nc->workers != old->workers && s->worker_id == 0)
            log_warnx("reload: [server] workers changes need a restart");
        if (nc->backlog != old->backlog)
            log_warnx("reload: backlog applies to newly bound addresses only");
        if (nc->journal_path && old->journal_path && strcmp(nc->journal_path, old->journal_path))
            log_warnx("reload: [journal] path changes need a restart");
        if (!config_same_str(nc->log_access, old->log_access) ||
            !config_same_str(nc->log_error, old->log_error))
            log_warnx("reload: [log] access and error changes need a restart");
        if (s->worker_id == 0)
            config_log_changes(old, nc);
        s->cfg = nc;
        s->limits.max_header_bytes = nc->max_header_bytes;
        s->limits.max_headers = nc->max_headers;
        s->limits.max_uri = nc->max_uri;
        s->limits.max_body = nc->max_body;
        s->output_budget = nc->output_budget / s->nloops;
        log_set_level(nc->log_level);
        config_free(old);
        s->reloads++;
        for (size_t i = 0; i < s->nstarted; i++)
            if (s->services[i].ops->reload)
                s->services[i].ops->reload(s->services[i].ctx);
        ok = 1;
        if (s->worker_id == 0) {
            log_info("configuration reloaded from %s", nc->path);
            workers_reload(s); /* each worker reads the file again, binds, swaps */
        }
    }
    if (s->worker_id == 0)
        notify_send("READY=1");
    return ok ? 0 : -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    struct server *s = arg;
    if (sig == SIGHUP) {
        if (!s->draining && !s->announcing)
            server_reload(s);
        return;
    }
    if (sig == SIGUSR1) {
        /* logrotate renamed the files: open them again by name. */
        log_reopen();
        if (s->alog)
            access_log_reopen(s->alog);
        workers_reopen(s);
        log_info("SIGUSR1: log files reopened");
        return;
    }
    if (s->announcing && !s->draining) {
        log_info("second %s: drain_delay cut short", sig == SIGINT ? "SIGINT" : "SIGTERM");
        server_shutdown(s);
        return;
    }
    if (s->draining) {
        log_warnx("second %s: exiting now", sig == SIGINT ? "SIGINT" : "SIGTERM");
        s->exit_code = 1;
        event_base_loopbreak(s->base);
        return;
    }
    log_info("%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_shutdown(s);
}

int server_add_service(struct server *s, const struct service_ops *ops, void *ctx) {
    if (s->nservices == SERVER_MAX_SERVICES)
        return -1;
    s->services[s->nservices++] = (struct service){ops, ctx};
    return 0;
}

void server_set_handler(struct server *s, conn_handler_fn handler, void *ctx) {
    s->handler = handler;
    s->handler_ctx = ctx;
}

int server_services_metrics(struct server *s, struct buf *out) {
    for (size_t i = 0; i < s->nstarted; i++)
        if (s->services[i].ops->metrics && s->services[i].ops->metrics(s->services[i].ctx, out) < 0)
            return -1;
    return 0;
}

int server_services_health(struct server *s, char *why, size_t len) {
    for (size_t i = 0; i < s->nstarted; i++)
        if (s->services[i].ops->health && s->services[i].ops->health(s->services[i].ctx, why, len))
            return 1;
    return 0;
}

/* A handler for a server nobody wired: every request is a 500. */
static enum handler_result no_handler(void *ctx, struct conn *c, const struct http_request *req,
                                      const char *body, size_t body_len) {
    reply_error(c, 500, "no request handler is configured");
    return HANDLER_DONE;
}

/* The fields server_free needs, before anything can fail. */
static void server_zero(struct server *s) {
    memset(s, 0, sizeof *s);
    s->handler = no_handler;
    list_init(&s->conns);
    s->spare_fd = -1;
    s->wheel_fd = -1;
    s->wheel_armed_at = UINT64_MAX;
    s->start_time = time(NULL);
    s->owner = s;
    s->nloops = 1;
}


static int server_setup(struct server *s, struct config *cfg, struct server *owner);

int server_init(struct server *s, struct config *cfg) {
    server_zero(s);
    return server_setup(s, cfg, NULL);
}

int server_init_worker(struct server *s, struct server *owner, unsigned id) {
    server_zero(s);
    s->group = owner->group;
    s->worker_id = id;
    s->owner = owner;
    s->peers_lock = owner->peers_lock;
    char err[1024];
    if (config_load(owner->cfg->path, &s->cfg, err, sizeof err) < 0) {
        log_error("worker %u: %s", id, err);
        s->cfg = NULL;
        return -1;
    }
    return server_setup(s, s->cfg, owner);
}

static int server_setup(struct server *s, struct config *cfg, struct server *owner) {
    s->cfg = cfg;
    s->nloops = workers_count(cfg);
    s->reuseport = s->nloops > 1;
    s->output_budget = cfg->output_budget / s->nloops;
    s->limits.max_header_bytes = cfg->max_header_bytes;
    s->limits.max_headers = cfg->max_headers;
    s->limits.max_uri = cfg->max_uri;
    s->limits.max_body = cfg->max_body;
    log_set_level(cfg->log_level);
    if (!owner && cfg->log_error && log_open_file(cfg->log_error) < 0) {
        log_warn("[log] error: cannot open %s", cfg->log_error);
        return -1;
    }

    struct event_config *ec = event_config_new();
    if (!ec)
        return -1;
    /* One thread: no locks. The time cache would make deadlines stale. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!s->base) {
        log_error("cannot create the event loop");
        return -1;
    }
    if (!owner) {
        tick_ms_init();
        listeners_init_once();
    }
    s->rbuf = malloc(SERVER_RBUF_SIZE);
    if (!s->rbuf)
        return -1;
    char aerr[1024];
    s->alog = access_log_new(s->base, cfg, &s->metrics.access_log_dropped, aerr, sizeof aerr);
    if (!s->alog && aerr[0]) {
        log_error("%s", aerr);
        return -1;
    }
    timer_wheel_init(&s->wheel, clock_now_ms());
    timer_init(&s->grace, on_grace);
    timer_init(&s->announce, on_announced);
    timer_init(&s->accept_resume, listeners_on_resume);
    timer_init(&s->status_tick, on_status_tick);
    s->wheel_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->wheel_fd < 0) {
        log_warn("timerfd_create");
        return -1;
    }
    event_assign(&s->wheel_ev, s->base, s->wheel_fd, EV_READ | EV_PERSIST, on_wheel, s);
    if (event_add(&s->wheel_ev, NULL) < 0) {
        log_error("cannot watch the timer fd");
        return -1;
    }

    int inherited = owner ? listeners_share(s, owner) : listeners_inherit(s);
    if (inherited < 0)
        return -1;
    /* Certificate and key before any bind: a bad file is the whole error. */
    char err[1024];
    struct ssl_ctx_st *tctx;
    int64_t not_after;
    if (tls_prepare(s, cfg, &tctx, &not_after, err, sizeof err) < 0) {
        log_error("%s%s", inherited > 0 ? "socket activation passed a socket named \"tls\": " : "",
                  err);
        return -1;
    }
    tls_swap(s, tctx, not_after, cfg);
    for (size_t i = 0; inherited == 0 && i < cfg->nlisten; i++)
        if (!listener_open(s, &cfg->listen[i], 0))
            return -1;
    for (size_t i = 0; inherited == 0 && i < cfg->ntls_listen; i++)
        if (!listener_open(s, &cfg->tls_listen[i], 1))
            return -1;
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (owner)
        return 0; /* signals are the owner's: it tells the workers */

    s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
    s->sig_hup = evsignal_new(s->base, SIGHUP, on_signal, s);
    /* Ignored rather than caught: OpenSSL writes with write(), not
     * send(MSG_NOSIGNAL), so every TLS write to a client that has gone
     * raises one, and a caught signal costs the loop a wakeup each. */
    signal(SIGPIPE, SIG_IGN);
    s->sig_usr1 = evsignal_new(s->base, SIGUSR1, on_signal, s);
    evsignal_add(s->sig_usr1, NULL);
    evsignal_add(s->sig_term, NULL);
    evsignal_add(s->sig_int, NULL);
    evsignal_add(s->sig_hup, NULL);
    return 0;
}

int server_run(struct server *s) {
    /* Services start after the listeners are bound (a replay may take a
     * while; clients queue in the backlog) and before anything is served. */
    for (; s->nstarted < s->nservices; s->nstarted++) {
        const struct service *sv = &s->services[s->nstarted];
        if (sv->ops->start && sv->ops->start(sv->ctx) < 0) {
            log_error("%s could not start", sv->ops->name);
            return 1;
        }
    }
    if (workers_start(s) < 0) {
        workers_stop(s);
        return 1;
    }
    log_info("awaitd ready (max_connections %llu, %s backend)",
             (unsigned long long)s->cfg->max_connections, event_base_get_method(s->base));
    s->watchdog_ms = notify_watchdog_ms();
    notify_sendf("READY=1\nSTATUS=listening, %llu connections open",
                 (unsigned long long)s->metrics.conns_open);
    on_status_tick(&s->status_tick);
    server_timers_sync(s);
    event_base_dispatch(s->base);
    workers_stop(s); /* drained by now, or forced: the grace is over, or a second signal */
    log_info("stopped");
    return s->exit_code;
}

void server_free(struct server *s) {
    while (!list_empty(&s->conns))
        conn_close(container_of(s->conns.next, struct conn, link));
    listeners_close(s);
    tls_ctx_free(s->tls_ctx);
    s->tls_ctx = NULL;
    /* Reverse order: a later service may use an earlier one (timers put
     * into queues; both journal through the store). Every registered
     * service is closed, started or not: its close frees what it holds. */
    while (s->nservices > 0) {
        const struct service *sv = &s->services[--s->nservices];
        if (sv->ops->close)
            sv->ops->close(sv->ctx);
    }
    s->nstarted = 0;
    if (s->worker_id == 0)
        workers_free(s); /* after the services: their close may still answer a worker */
    access_log_free(s->alog); /* after the connections: their last lines go too */
    s->alog = NULL;
    if (s->base) {
        event_del(&s->wheel_ev);
        struct event *sigs[] = {s->sig_term, s->sig_int, s->sig_hup, s->sig_usr1};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            if (sigs[i])
                event_free(sigs[i]);
        event_base_free(s->base);
    }
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    if (s->wheel_fd >= 0)
        close(s->wheel_fd);
    peer_limit_free(&s->peers);
    free(s->rbuf);
    buf_free(&s->wbuf);
    buf_free(&s->errbuf);
    conn_busy_trim(s, 0);
    buf_free(&s->lost);
    config_free(s->cfg);
}
