#include "load_conn.h"

#include "load_report.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 100
/* Longest a connect_cb pass may spend opening connections. */
#define CONNECT_BUDGET_NS 5000000u

/* ---- connect queue and rate limit ------------------------------------ */

static void token_refill(struct load_worker *w) {
    uint64_t now = load_now_ns();
    w->tokens += (double)(now - w->token_ns) * 1e-9 * w->token_rate;
    if (w->tokens > w->token_burst)
        w->tokens = w->token_burst;
    w->token_ns = now;
}

/* Schedule connect_cb: at once (next loop pass) when a token is available,
 * else when the next one will be. */
static void connect_kick(struct load_worker *w) {
    if (w->connect_scheduled)
        return;
    w->connect_scheduled = 1;
    token_refill(w);
    uint64_t wait = 0;
    if (w->tokens < 1)
        wait = (uint64_t)((1 - w->tokens) / w->token_rate * 1e9) + 1000;
    struct timeval tv = load_tv_from_ns(wait);
    event_add(&w->connect_ev, &tv);
}

/* Queue c for a new connection; the connect rate limit decides when. */
void load_worker_queue_connect(struct load_conn *c) {
    struct load_worker *w = c->w;
    if (load_worker_stopping(w) || !load_conn_reserve(c))
        return;
    c->state = CS_QUEUED;
    c->next_queued = NULL;
    if (w->cq_tail)
        w->cq_tail->next_queued = c;
    else
        w->cq_head = c;
    w->cq_tail = c;
    connect_kick(w);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg) {
    struct load_worker *w = arg;
    w->connect_scheduled = 0;
    token_refill(w);
    uint64_t start = w->token_ns;
    unsigned n = 0;
    while (w->cq_head && w->tokens >= 1 && !load_worker_stopping(w)) {
        struct load_conn *c = w->cq_head;
        w->cq_head = c->next_queued;
        if (!w->cq_head)
            w->cq_tail = NULL;
        w->tokens -= 1;
        load_conn_open(c);
        /* Connects can get slow (a crowded port range): never hold up the
         * responses of open connections for more than a few ms. */
        if (++n % 32 == 0 && load_now_ns() - start > CONNECT_BUDGET_NS)
            break;
    }
    if (w->cq_head)
        connect_kick(w);
}

/* ---- the worker ------------------------------------------------------ */

static void worker_publish(struct load_worker *w) {
    uint64_t errs = 0;
    for (int k = 0; k < LOAD_ERR_KINDS; k++)
        errs += w->stats.errors[k];
    uint64_t done = w->plan->driver ? w->plan->driver->progress(w) : w->stats.requests;
    atomic_store_explicit(&w->pub_requests, done, memory_order_relaxed);
    atomic_store_explicit(&w->pub_errors, errs, memory_order_relaxed);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    struct load_worker *w = arg;
    worker_publish(w);
    if (load_worker_stopping(w)) {
        event_base_loopbreak(w->base);
        return;
    }
    if (w->plan->driver)
        w->plan->driver->tick(w);
}

static void end_cb(evutil_socket_t fd, short what, void *arg) {
    struct load_worker *w = arg;
    if (w->plan->driver)
        w->plan->driver->end(w);
    else
        event_base_loopbreak(w->base);
}

static int worker_setup(struct load_worker *w) {
    const struct load_plan *p = w->plan;
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return -1;
    /* One thread per base: no locks. Open loop needs sub-millisecond timers,
     * or every scheduled send would be late by up to 1 ms and say so. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    if (p->rate > 0)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base)
        return -1;
    struct timeval tv = load_tv_from_ns(p->timeout_us * 1000u);
    w->timeout_tv = event_base_init_common_timeout(w->base, &tv);
    w->rbuf = malloc(LOAD_READ_CHUNK + LOAD_RESP_MAX_HEAD);
    w->conns = calloc(w->nconns ? w->nconns : 1, sizeof *w->conns);
    if (!w->timeout_tv || !w->rbuf || !w->conns)
        return -1;

    event_assign(&w->tick_ev, w->base, -1, EV_PERSIST, tick_cb, w);
    struct timeval tick = {0, TICK_MS * 1000};
    event_add(&w->tick_ev, &tick);
    event_assign(&w->connect_ev, w->base, -1, 0, connect_cb, w);
    event_assign(&w->end_ev, w->base, -1, 0, end_cb, w);
    uint64_t now = load_now_ns();
    if (p->end_ns != UINT64_MAX) {
        struct timeval end = load_tv_from_ns(p->end_ns > now ? p->end_ns - now : 0);
        event_add(&w->end_ev, &end);
    }

    w->token_rate = p->connect_rate / p->threads;
    w->token_burst = w->token_rate / 100; /* 10 ms worth */
    if (w->token_burst < 1)
        w->token_burst = 1;
    w->tokens = w->token_burst;
    w->token_ns = now;
    if (p->rate > 0)
        w->interval_ns = (uint64_t)((double)p->total_conns * 1e9 / p->rate);

    for (uint64_t i = 0; i < w->nconns; i++) {
        struct load_conn *c = &w->conns[i];
        c->w = w;
        c->fd = -1;
        c->index = w->first_conn + i;
        if (p->driver)
            continue;
        /* Stagger the connections so the total schedule is evenly spaced. */
        if (p->rate > 0)
            c->due_ns = p->t0_ns + (uint64_t)((double)c->index * 1e9 / p->rate);
        load_worker_queue_connect(c);
    }
    return p->driver ? p->driver->start(w) : 0;
}

static void worker_teardown(struct load_worker *w) {
    /* Reset rather than close: 19,000 client-side TIME_WAITs would hold
     * most of the ephemeral port range for a minute and slow the next run's
     * connects to a crawl. */
    for (uint64_t i = 0; w->conns && i < w->nconns; i++) {
        load_conn_close(&w->conns[i], 1);
        free(w->conns[i].head);
    }
    if (w->plan->driver)
        w->plan->driver->teardown(w);
    if (w->base) {
        event_del(&w->tick_ev);
        event_del(&w->connect_ev);
        event_del(&w->end_ev);
        event_base_free(w->base);
        w->base = NULL;
    }
    free(w->conns);
    w->conns = NULL;
    free(w->rbuf);
    w->rbuf = NULL;
}

static void *worker_main(void *arg) {
    struct load_worker *w = arg;
    if (worker_setup(w) < 0) {
        snprintf(w->setup_error, sizeof w->setup_error, "cannot set up an event loop: %s",
                 strerror(errno ? errno : ENOMEM));
    } else if (w->quota > 0 || w->plan->driver) {
        /* One pass at a time, so the closed loop's deferred sends go out
         * between passes. */
        while (event_base_loop(w->base, EVLOOP_ONCE) == 0 && !event_base_got_break(w->base))
            load_conn_flush_sends(w);
    }
    w->stats.end_ns = load_now_ns();
    worker_teardown(w);
    worker_publish(w);
    atomic_store(&w->done, 1);
    return NULL;
}

struct load_worker *load_worker_new(const struct load_plan *plan, uint64_t first_conn,
                                    uint64_t nconns, uint64_t quota) {
    struct load_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->plan = plan;
    w->first_conn = first_conn;
    w->nconns = nconns;
    w->quota = quota;
    load_hist_init(&w->stats.hist);
    load_hist_init(&w->stats.handshake_hist);
    atomic_init(&w->pub_requests, 0);
    atomic_init(&w->pub_errors, 0);
    atomic_init(&w->done, 0);
    return w;
}

int load_worker_start(struct load_worker *w) {
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void load_worker_join(struct load_worker *w) {
    pthread_join(w->thread, NULL);
}

void load_worker_free(struct load_worker *w) {
    free(w);
}

int load_worker_finished(struct load_worker *w) {
    return atomic_load(&w->done);
}

void load_worker_progress(struct load_worker *w, uint64_t *requests, uint64_t *errors) {
    *requests = atomic_load_explicit(&w->pub_requests, memory_order_relaxed);
    *errors = atomic_load_explicit(&w->pub_errors, memory_order_relaxed);
}

const struct load_stats *load_worker_stats(const struct load_worker *w) {
    return &w->stats;
}

const char *load_worker_setup_error(const struct load_worker *w) {
    return w->setup_error;
}

void *load_worker_data(const struct load_worker *w) {
    return w->data;
}

void load_worker_set_data(struct load_worker *w, void *data) {
    w->data = data;
}

/* ---- the run ---------------------------------------------------------- */

/* Wait for the workers, printing progress once a second on a terminal.
 * Returns 1 if SIGINT or SIGTERM cut the run short. */
static int run_wait(struct load_worker **w, unsigned n, atomic_int *stop, uint64_t t0,
                    const char *rate_unit, const char *unit) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int tty = isatty(STDERR_FILENO), interrupted = 0;
    uint64_t last_ns = t0, last_done = 0;
    for (;;) {
        unsigned live = 0;
        for (unsigned i = 0; i < n; i++)
            live += !load_worker_finished(w[i]);
        if (!live)
            break;
        struct timespec wait = {0, 100 * 1000000};
        if (sigtimedwait(&set, NULL, &wait) > 0) {
            if (interrupted)
                _exit(130); /* a second ^C: the user means it */
            interrupted = 1;
            atomic_store(stop, 1);
        }
        uint64_t now = load_now_ns();
        if (tty && now - last_ns >= 1000000000u) {
            uint64_t done = 0, errs = 0;
            for (unsigned i = 0; i < n; i++) {
                uint64_t r, e;
                load_worker_progress(w[i], &r, &e);
                done += r;
                errs += e;
            }
            double dt = (double)(now - last_ns) / 1e9;
            load_report_progress(stderr, (double)(now - t0) / 1e9, (double)(done - last_done) / dt,
                                 rate_unit, done, unit, errs);
            last_ns = now;
            last_done = done;
        }
    }
    if (tty && last_ns != t0)
        load_report_progress_clear(stderr);
    return interrupted;
}

unsigned load_run(struct load_plan *plan, uint64_t duration_us, load_quota_fn quota,
                  const void *quota_arg, const char *rate_unit, const char *unit,
                  struct load_worker **w, int *interrupted) {
    /* Signals go to this thread only, where sigtimedwait collects them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    plan->t0_ns = load_now_ns();
    plan->end_ns = duration_us ? plan->t0_ns + duration_us * 1000u : UINT64_MAX;
    uint64_t first = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < plan->threads; i++) {
        uint64_t nconns =
            plan->total_conns / plan->threads + (i < plan->total_conns % plan->threads);
        w[i] = load_worker_new(plan, first, nconns, quota(quota_arg, i, plan->threads, first, nconns));
        if (!w[i] || load_worker_start(w[i]) < 0) {
            fprintf(stderr, "awaitload: cannot start thread %u: %s\n", i, strerror(errno));
            atomic_store(plan->stop, 1);
            load_worker_free(w[i]);
            break;
        }
        started++;
        first += nconns;
    }
    *interrupted = run_wait(w, started, plan->stop, plan->t0_ns, rate_unit, unit);
    for (unsigned i = 0; i < started; i++)
        load_worker_join(w[i]);
    return started;
}
