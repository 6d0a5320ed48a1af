/*
 * awaitd: the composition root. It reads argv and the config, builds the
 * services (the journal, queues, timers), registers them with the server
 * in start order, wires the routes to their handlers, and runs the loop.
 * Everything else lives in libawaitd.
 */
#include "ac_config.h"
#include "core/config.h"
#include "core/log.h"
#include "net/server.h"
#include "net/access_log.h"
#include "api/api_queue.h"
#include "api/api_timer.h"
#include "api/console.h"
#include "api/probe.h"
#include "api/router.h"
#include "journal/journal.h"
#include "svc/qsvc.h"
#include "svc/store.h"
#include "svc/tsvc.h"
#include "net/tls_server.h"
#include "net/workers.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct router router;
static struct probe *probes;

/* The endpoints, searched in order (the first path match decides). On a
 * worker other than the owner (hop), the routes whose state lives on the
 * owner (queues, timers, and /metrics and /health, which read every
 * service) hand the request over (net/workers.h). */
static int routes_add_to(struct router *r, struct probe *pr, struct qsvc *queues,
                         struct tsvc *timers, int hop) {
    unsigned get = ROUTE_M(GET) | ROUTE_M(HEAD);
    int e = 0;
    e |= router_add(r, "/get", get, "GET, HEAD", probe_get, pr);
    e |= router_add(r, "/post", ROUTE_M(POST), "POST", probe_anything, pr);
    e |= router_add(r, "/put", ROUTE_M(PUT), "PUT", probe_anything, pr);
    e |= router_add(r, "/patch", ROUTE_M(PATCH), "PATCH", probe_anything, pr);
    e |= router_add(r, "/delete", ROUTE_M(DELETE), "DELETE", probe_anything, pr);
    e |= router_add(r, "/anything", ROUTE_ANY | ROUTE_M(TRACE), NULL, probe_anything, pr);
    e |= router_add(r, "/anything/", ROUTE_ANY | ROUTE_M(TRACE), NULL, probe_anything, pr);
    e |= router_add(r, "/delay/", ROUTE_ANY & ~ROUTE_M(OPTIONS),
                    "GET, HEAD, POST, PUT, DELETE, PATCH", probe_delay, pr);
    e |= router_add(r, "/status/", ROUTE_ANY | ROUTE_M(TRACE), NULL, probe_status, pr);
    e |= router_add(r, "/bytes/", get, "GET, HEAD", probe_bytes, pr);
    e |= router_add(r, "/stream/", get, "GET, HEAD", probe_stream, pr);
    e |= router_add(r, "/drip", get, "GET, HEAD", probe_drip, pr);
    conn_handler_fn hh = hop ? workers_hop : probe_health, mh = hop ? workers_hop : probe_metrics;
    conn_handler_fn qh = hop ? workers_hop : api_queues;
    e |= router_add(r, "/health", get, "GET, HEAD", hh, pr);
    e |= router_add(r, "/metrics", get | ROUTE_NOCORS, "GET, HEAD", mh, pr);
    e |= router_add(r, "/queues", ROUTE_ANY | ROUTE_NOCORS, NULL, qh, queues);
    e |= router_add(r, "/queues/", ROUTE_ANY | ROUTE_NOCORS, NULL, qh, queues);
    conn_handler_fn th = hop ? workers_hop : api_timers;
    e |= router_add(r, "/timers", ROUTE_ANY | ROUTE_NOCORS, NULL, th, timers);
    e |= router_add(r, "/timers/", ROUTE_ANY | ROUTE_NOCORS, NULL, th, timers);
    e |= router_add_doc(r, "/console", get | ROUTE_NOCORS, "GET, HEAD", console_serve, NULL,
                        "the web console: queues, dead letters, timers (docs/CONSOLE.md)");
    e |= router_add(r, "/console/", get | ROUTE_NOCORS | ROUTE_DIR, "GET, HEAD", console_serve, NULL);
    e |= probe_routes_add(r, pr); /* the other httpbin routes, and / listing every route */
    return e;
}

static int routes_add(struct probe *pr, struct qsvc *queues, struct tsvc *timers) {
    return routes_add_to(&router, pr, queues, timers, 0);
}

/* [server] workers > 1: worker id's own router and probe state (freed at exit). */
static struct router *worker_routers;
static struct probe **worker_probes;
static unsigned nworkers;

static int compose_worker(struct server *w, unsigned id, void *arg) {
    (void)arg;
    if (!(worker_probes[id] = probe_new()) ||
        routes_add_to(&worker_routers[id], worker_probes[id], NULL, NULL, 1) < 0)
        return -1;
    server_set_handler(w, router_dispatch, &worker_routers[id]);
    w->delays_pending = &worker_probes[id]->delays_pending;
    return 0;
}

/* Workers 1..n-1 beside the composed owner; nothing to do with one. */
static int compose_workers(struct server *s) {
    nworkers = workers_count(s->cfg);
    if (nworkers <= 1)
        return 0;
    s->delays_pending = &probes->delays_pending;
    worker_routers = calloc(nworkers, sizeof *worker_routers);
    worker_probes = calloc(nworkers, sizeof *worker_probes);
    if (!worker_routers || !worker_probes)
        return -1;
    return workers_create(s, nworkers, compose_worker, NULL);
}

static void workers_composition_free(void) {
    for (unsigned i = 0; worker_probes && i < nworkers; i++) {
        probe_free(worker_probes[i]);
        buf_free(&worker_routers[i].cors);
    }
    free(worker_probes);
    free(worker_routers);
}

/* backend = redis: the queues and timers live in Redis; no journal. */
static int compose_redis(struct server *s) {
    struct qsvc *queues = qsvc_redis_new(s);
    if (!queues || server_add_service(s, &qsvc_redis_service, queues) < 0)
        return -1;
    struct tsvc *timers = tsvc_redis_new(s);
    if (!timers || server_add_service(s, &tsvc_redis_service, timers) < 0)
        return -1;
    if (!(probes = probe_new()) || routes_add(probes, queues, timers) < 0)
        return -1;
    server_set_handler(s, router_dispatch, &router);
    return 0;
}

/*
 * Services in start order: the journal first (its start replays records
 * into the engines registered as its clients), then queues, then timers
 * (a timer's action puts into a queue). They close in reverse order.
 */
static int compose(struct server *s, int repair) {
    if (s->cfg->store_backend == STORE_BACKEND_REDIS)
        return compose_redis(s);
    struct store *st = store_new(s, repair);
    if (!st || server_add_service(s, &store_service, st) < 0)
        return -1;
    struct qsvc *queues = qsvc_new(s, st);
    if (!queues || server_add_service(s, &qsvc_service, queues) < 0)
        return -1;
    struct tsvc *timers = tsvc_new(s, st, queues);
    if (!timers || server_add_service(s, &tsvc_service, timers) < 0)
        return -1;
    if (!(probes = probe_new()) || routes_add(probes, queues, timers) < 0)
        return -1;
    server_set_handler(s, router_dispatch, &router);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: awaitd [-c FILE] [-t | -T] [-r] [-V] [-h]\n"
               "  -c FILE  config file (default %s/awaitd.conf)\n"
               "  -t       check the config and exit (0 ok, 1 error)\n"
               "  -T       check the config, print the effective configuration (every\n"
               "           key, defaults included, as a config file) and exit\n"
               "  -r       repair a refused journal instead of refusing to start: cut it at\n"
               "           the last good batch, or rewrite a damaged header (a copy of the\n"
               "           original is kept as JOURNAL.damaged-OFFSET)\n"
               "  -V, --version  print the version and exit\n"
               "  -h, --help     this help\n",
            SYSCONFDIR);
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    const char *path = SYSCONFDIR "/awaitd.conf";
    int test_only = 0, dump = 0, repair = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:tTrVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test_only = 1; break;
        case 'T': test_only = dump = 1; break;
        case 'r': repair = 1; break;
        case 'V': printf("awaitd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    struct config *cfg;
    char err[1024];
    if (config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "awaitd: %s\n", err);
        return 1;
    }
    if (test_only) {
        /* -t also opens the log files and loads the TLS certificate and key, as a start would. */
        if (log_files_check(cfg, err, sizeof err) < 0) {
            fprintf(stderr, "awaitd: %s\n", err);
            config_free(cfg);
            return 1;
        }
        /* And that the journal can be created or written where it says (issue 16). */
        if (cfg->store_backend == STORE_BACKEND_LOCAL &&
            journal_path_check(cfg->journal_path, err, sizeof err) < 0) {
            fprintf(stderr, "awaitd: %s\n", err);
            config_free(cfg);
            return 1;
        }
        if (cfg->ntls_listen) {
            struct ssl_ctx_st *t = tls_ctx_new(cfg, NULL, err, sizeof err);
            if (!t) {
                fprintf(stderr, "awaitd: %s\n", err);
                config_free(cfg);
                return 1;
            }
            tls_ctx_free(t);
        }
        if (cfg->store_backend == STORE_BACKEND_REDIS && cfg->redis_ignored[0])
            fprintf(stderr, "awaitd: note: %s not applied with [store] backend = redis (the local "
                    "engine's limits; Redis's maxmemory is the limit, docs/REDIS.md)\n",
                    cfg->redis_ignored);
        /* -T: the verdict goes to stderr so stdout is a config file (nginx -T). */
        fprintf(dump ? stderr : stdout, "awaitd: the configuration file %s syntax is ok\n", path);
        if (dump)
            config_dump(cfg, stdout);
        config_free(cfg);
        return 0;
    }
    struct server srv;
    int rc = server_init(&srv, cfg) == 0 && compose(&srv, repair) == 0 &&
                     compose_workers(&srv) == 0
                 ? server_run(&srv)
                 : 1;
    server_free(&srv);
    workers_composition_free();
    probe_free(probes);
    buf_free(&router.cors);
    return rc;
}
