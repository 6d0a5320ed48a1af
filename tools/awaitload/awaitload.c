/*
 * awaitload: the load client that ships with awaitd. The main thread parses
 * options, checks the target and the file limit, starts one worker per -t
 * (each an event loop over its share of the connections), shows progress,
 * and merges the workers' stats into the report. See load_opts.c for the
 * options, load_worker.c for the connection engine, load_seed.c and
 * load_queue.c for the scenarios.
 */
#include "core/buf.h"
#include "load_h2.h"
#include "load_opts.h"
#include "load_queue.h"
#include "load_report.h"
#include "load_seed.h"
#include "load_url.h"
#include "load_worker.h"
#include "tls_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Descriptors needed beside the connections: stdio and slack, plus per
 * thread an epoll fd and a timerfd (libevent's precise timers). */
#define FD_RESERVE_BASE 16
#define FD_RESERVE_PER_THREAD 4

/* An open loop that reached less than this share of -R says so and exits 3. */
#define RATE_TOLERANCE 0.90
#define EXIT_RATE_MISSED 3

/* A run that fails: one line on stderr and, with --json, a JSON object on
 * stdout naming the error, so a script always gets something to parse. */
#define failure(o, status, ...) load_report_fail((o)->json, (o)->url, status, __VA_ARGS__)

/*
 * Raise the soft file limit to the hard one, then check -c against it.
 * Without --fit-fds a run that cannot open every connection refuses to
 * start: a load test quietly holding fewer connections than asked for
 * measures something else.
 */
static int fds_check(struct load_opts *o, char *err, size_t errlen) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    unsigned long long reserve = FD_RESERVE_BASE + FD_RESERVE_PER_THREAD * o->threads;
    unsigned long long need = o->connections + reserve, limit = rl.rlim_cur;
    if (rl.rlim_cur == RLIM_INFINITY || need <= limit)
        return 0;
    if (!o->fit_fds || limit < reserve + o->threads) {
        snprintf(err, errlen,
                "-c %llu needs %llu file descriptors (one per connection, plus %llu) "
                "but the limit is %llu (ulimit -n); lower -c%s",
                (unsigned long long)o->connections, need, reserve, limit,
                o->fit_fds ? "" : " or pass --fit-fds to open what fits");
        return -1;
    }
    o->connections = limit - reserve;
    fprintf(stderr, "awaitload: --fit-fds: opening %llu connections (the file limit is %llu)\n",
            (unsigned long long)o->connections, limit);
    return 0;
}

/* One connect before the run, so an unreachable target is one clear line
 * rather than a run full of connect errors. */
static int probe_target(const struct load_addr *a, uint64_t timeout_us, char *err, size_t errlen) {
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int e = 0;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        e = errno;
        if (e == EINPROGRESS) {
            struct pollfd p = {fd, POLLOUT, 0};
            int ms = timeout_us > 10000000 ? 10000 : (int)(timeout_us / 1000);
            int n = poll(&p, 1, ms < 1 ? 1 : ms);
            socklen_t len = sizeof e;
            e = 0;
            if (n == 0)
                e = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
                e = errno;
        }
    }
    close(fd);
    if (e)
        snprintf(err, errlen, "%s", e == ETIMEDOUT ? "connect timed out" : strerror(e));
    return e ? -1 : 0;
}

/* https://: the client context and the host its certificate must name. */
static struct ssl_ctx_st *run_tls;
static const char *run_tls_host;

/* -n split evenly over the workers. */
static uint64_t plain_quota(const void *arg, unsigned i, unsigned threads, uint64_t first,
                            uint64_t nconns) {
    const struct load_opts *o = arg;
    (void)first;
    (void)nconns;
    if (!o->requests)
        return UINT64_MAX;
    return o->requests / threads + (i < o->requests % threads);
}

static int run_load(const struct load_opts *o, const struct load_addr *a, const struct buf *req,
                    const struct load_h2_plan *h2) {
    atomic_int stop;
    atomic_init(&stop, 0);
    unsigned threads = o->threads;
    if (o->requests && o->requests < threads)
        threads = (unsigned)o->requests; /* every worker needs at least one request */
    struct load_plan plan = {
        .addr = (const struct sockaddr *)&a->ss,
        .addrlen = a->len,
        .req = buf_start(req),
        .req_len = req->len,
        .head_request = strcmp(o->method, "HEAD") == 0,
        .rate = o->rate,
        .total_conns = o->connections,
        .threads = threads,
        .timeout_us = o->timeout_us,
        .connect_rate = o->connect_rate,
        .stop = &stop,
        .tls = run_tls,
        .tls_host = run_tls_host,
        .driver = h2 ? &load_h2_driver : NULL,
        .driver_plan = (void *)h2,
    };

    struct load_worker *w[256];
    int interrupted;
    unsigned started = load_run(&plan, o->duration_us, plain_quota, o, "req", "requests", w,
                                &interrupted);

    struct load_summary s;
    memset(&s, 0, sizeof s);
    load_hist_init(&s.total.hist);
    const char *setup_error = NULL;
    for (unsigned i = 0; i < started; i++) {
        load_stats_merge(&s.total, load_worker_stats(w[i]));
        if (!setup_error && load_worker_setup_error(w[i])[0])
            setup_error = load_worker_setup_error(w[i]);
    }
    int rc = 0;
    if (started < threads || setup_error) {
        rc = failure(o, 1, "%s", setup_error ? setup_error : "could not start the worker threads");
        goto out;
    }
    s.url = o->url;
    s.connections = o->connections;
    s.threads = threads;
    s.rate = o->rate;
    s.interrupted = interrupted;
    s.duration_s = (double)(s.total.end_ns - plan.t0_ns) / 1e9;
    s.histogram = o->histogram;
    char why[256], msg[512];
    double reached = s.duration_s > 0 ? (double)s.total.requests / s.duration_s : 0;
    if (s.total.requests == 0) {
        load_report_failure(&s.total, why, sizeof why);
        snprintf(msg, sizeof msg, "no responses from %s: %s", o->url, why);
        rc = 1;
    } else if (o->rate > 0 && reached < RATE_TOLERANCE * o->rate) {
        /* The schedule fell behind: the latencies then describe a lighter load
         * than asked for, which must not pass for the asked one. */
        snprintf(msg, sizeof msg,
                 "open loop reached %.1f responses/s, below %.0f%% of the target -R %.1f/s "
                 "(the server, or %llu connections each waiting for its answer, could not "
                 "keep up; raise -c or lower -R)",
                 reached, RATE_TOLERANCE * 100, o->rate, (unsigned long long)o->connections);
        rc = EXIT_RATE_MISSED;
    }
    if (rc)
        s.error = msg;
    if (o->json)
        load_report_json(stdout, &s);
    else if (s.total.requests > 0)
        load_report_text(stdout, &s);
    if (rc)
        fprintf(stderr, "awaitload: %s\n", msg);
out:
    for (unsigned i = 0; i < started; i++)
        load_worker_free(w[i]);
    return rc;
}

/* Everything after the options; returns the exit status. */
static int run(struct load_opts *o) {
    struct load_url u;
    struct load_addr addrs[LOAD_URL_MAX_ADDRS];
    char err[256];
    if (load_url_parse(o->url, &u, err, sizeof err) < 0)
        return failure(o, 2, "bad URL '%s': %s", o->url, err);
    if (o->scenario == LOAD_SCENARIO_QUEUE) {
        char name[LOAD_URL_MAX];
        if (load_queue_name(u.target, name, sizeof name) < 0)
            return failure(o, 2,
                           "--scenario queue: the URL must be http://host:port/queues/NAME "
                           "(got '%s')",
                           o->url);
    }
    if (u.tls && o->h2)
        return failure(o, 2, "--h2 speaks h2c (prior knowledge): http:// only");
    if (u.tls && o->scenario != LOAD_SCENARIO_URL)
        return failure(o, 2, "https:// is not supported with --scenario %s",
                       o->scenario == LOAD_SCENARIO_SEED ? "seed" : "queue");
    if (u.tls) {
        run_tls = tls_client_ctx_new(o->insecure, err, sizeof err);
        if (!run_tls)
            return failure(o, 1, "%s", err);
        run_tls_host = u.host;
    }
    signal(SIGPIPE, SIG_IGN);
    int naddrs = load_url_resolve(&u, addrs, err, sizeof err);
    if (naddrs < 0)
        return failure(o, 1, "%s", err);
    if (o->scenario != LOAD_SCENARIO_SEED && fds_check(o, err, sizeof err) < 0)
        return failure(o, 2, "%s", err);
    /* The first address that accepts a connection is the target: "localhost"
     * may offer ::1 and 127.0.0.1 with the server on only one of them. */
    const struct load_addr *a = NULL;
    for (int i = 0; i < naddrs && !a; i++)
        if (probe_target(&addrs[i], o->timeout_us, err, sizeof err) == 0)
            a = &addrs[i];
    if (!a)
        return failure(o, 1, "cannot connect to %s (%s%s): %s", u.host_header,
                       addrs[naddrs - 1].text, naddrs > 1 ? " and others" : "", err);
    if (o->scenario == LOAD_SCENARIO_QUEUE)
        return load_queue_run(o, &u, a);
    if (o->scenario == LOAD_SCENARIO_SEED)
        return load_seed_run(o, &u, a);
    struct buf req = BUF_INIT;
    if (load_opts_render_request(o, u.host_header, u.target, &req) < 0)
        return failure(o, 1, "out of memory");
    struct load_h2_plan h2;
    if (o->h2)
        load_h2_plan_init(&h2, o->method, "http", u.host_header, u.target, o->streams);
    int rc = run_load(o, a, &req, o->h2 ? &h2 : NULL);
    buf_free(&req);
    return rc;
}

int main(int argc, char **argv) {
    struct load_opts o;
    int rc = load_opts_parse(&o, argc, argv);
    if (rc == 0) {
        rc = run(&o);
    } else if (rc < 0) {
        /* --json anywhere on the line: the option error as JSON too, even
         * when parsing stopped before reaching it. */
        for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
            if (strcmp(argv[i], "--json") == 0) {
                load_report_json_error(stdout, load_opts_error(), 2, NULL);
                break;
            }
        rc = 2;
    } else {
        rc = 0;
    }
    load_opts_free(&o);
    return rc;
}
