/* awaitd: argv, config, run the loop. Everything else lives in libawaitd. */
#include "ac_config.h"
#include "core/config.h"
#include "core/log.h"
#include "net/server.h"
#include "net/tls_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: awaitd [-c FILE] [-t] [-r] [-V] [-h]\n"
               "  -c FILE  config file (default %s/awaitd.conf)\n"
               "  -t       check the config and exit (0 ok, 1 error)\n"
               "  -r       repair a corrupt journal: cut it at the first bad record\n"
               "           (the cut bytes are saved beside it) instead of refusing to start\n"
               "  -V       print the version and exit\n"
               "  -h       this help\n",
            SYSCONFDIR);
}

int main(int argc, char **argv) {
    const char *path = SYSCONFDIR "/awaitd.conf";
    int test_only = 0, repair = 0, opt;
    while ((opt = getopt(argc, argv, "c:trVh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test_only = 1; break;
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
        /* -t also loads the TLS certificate and key, as a start would. */
        if (cfg->ntls_listen) {
            struct ssl_ctx_st *t = tls_ctx_new(cfg, NULL, err, sizeof err);
            if (!t) {
                fprintf(stderr, "awaitd: %s\n", err);
                config_free(cfg);
                return 1;
            }
            tls_ctx_free(t);
        }
        printf("awaitd: the configuration file %s syntax is ok\n", path);
        config_free(cfg);
        return 0;
    }
    struct server srv;
    int rc = 1;
    if (server_init(&srv, cfg, repair) == 0)
        rc = server_run(&srv);
    server_free(&srv);
    return rc;
}
