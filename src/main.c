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

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct router router;
static struct probe *probes;

/* The endpoints, searched in order (the first path match decides). */
static int routes_add(struct probe *pr, struct qsvc *queues, struct tsvc *timers) {
    struct router *r = &router;
    unsigned get = ROUTE_M(GET) | ROUTE_M(HEAD);
    int e = 0;
    e |= router_add(r, "/get", get, "GET, HEAD", probe_get, pr);
    e |= router_add(r, "/post", ROUTE_M(POST), "POST", probe_anything, pr);
    e |= router_add(r, "/put", ROUTE_M(PUT), "PUT", probe_anything, pr);
    e |= router_add(r, "/patch", ROUTE_M(PATCH), "PATCH", probe_anything, pr);
    e |= router_add(r, "/delete", ROUTE_M(DELETE), "DELETE", probe_anything, pr);
    e |= router_add(r, "/anything", ROUTE_ANY, NULL, probe_anything, pr);
    e |= router_add(r, "/anything/", ROUTE_ANY, NULL, probe_anything, pr);
    e |= router_add(r, "/delay/", ROUTE_ANY & ~ROUTE_M(OPTIONS),
                    "GET, HEAD, POST, PUT, DELETE, PATCH", probe_delay, pr);
    e |= router_add(r, "/status/", ROUTE_ANY, NULL, probe_status, pr);
    e |= router_add(r, "/bytes/", get, "GET, HEAD", probe_bytes, pr);
    e |= router_add(r, "/stream/", get, "GET, HEAD", probe_stream, pr);
    e |= router_add(r, "/drip", get, "GET, HEAD", probe_drip, pr);
    e |= router_add(r, "/health", get, "GET, HEAD", probe_health, pr);
    e |= router_add(r, "/metrics", get | ROUTE_NOCORS, "GET, HEAD", probe_metrics, pr);
    e |= router_add(r, "/queues", ROUTE_ANY | ROUTE_NOCORS, NULL, api_queues, queues);
    e |= router_add(r, "/queues/", ROUTE_ANY | ROUTE_NOCORS, NULL, api_queues, queues);
    e |= router_add(r, "/timers", ROUTE_ANY | ROUTE_NOCORS, NULL, api_timers, timers);
    e |= router_add(r, "/timers/", ROUTE_ANY | ROUTE_NOCORS, NULL, api_timers, timers);
    e |= router_add_doc(r, "/console", get | ROUTE_NOCORS, "GET, HEAD", console_serve, NULL,
                        "the web console: queues, dead letters, timers (docs/CONSOLE.md)");
    e |= router_add(r, "/console/", get | ROUTE_NOCORS | ROUTE_DIR, "GET, HEAD", console_serve, NULL);
    e |= probe_routes_add(r, pr); /* the other httpbin routes, and / listing every route */
    return e;
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
        /* -T: the verdict goes to stderr so stdout is a config file (nginx -T). */
        fprintf(dump ? stderr : stdout, "awaitd: the configuration file %s syntax is ok\n", path);
        if (dump)
            config_dump(cfg, stdout);
        config_free(cfg);
        return 0;
    }
    struct server srv;
    int rc = server_init(&srv, cfg) == 0 && compose(&srv, repair) == 0 ? server_run(&srv) : 1;
    server_free(&srv);
    probe_free(probes);
    buf_free(&router.cors);
    return rc;
}
