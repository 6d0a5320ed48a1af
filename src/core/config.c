/*
 * config: the key table (every key of every section, its type, range and
 * default: adding a key is one line here) and a config's life: built with
 * every default (config_new, config_defaults), freed with its secrets
 * wiped (config_free), and read by printers through config_key_info. The
 * file's syntax is config_parse.c, value syntax config_value.c, the checks
 * that need the whole file config_check.c; config.h is the contract.
 *
 * The parser is hand-written rather than libinih, because Debian's libinih
 * gives its handler no line numbers and we need them in every message, and
 * we must catch repeated sections and keys. journal_path is always set
 * (the default resolved beside the config).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, strndup, explicit_bzero */
#endif
#include "core/config.h"
#include "core/config_int.h"
#include "core/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:8080"
#define DEFAULT_JOURNAL "var/awaitd.journal"

const char *const config_section_names[NFIXED] = {
    "server",  "probe", "tls",   "journal", "auth", "queues", "timers",
    "metrics", "store", "redis", "console", "log",  "http2"};

static const char *const level_names[] = {"error", "warn", "info", "debug", NULL}; /* LOG_LVL_* */
static const char *const fsync_names[] = {"always", "batch", "off", NULL};         /* FSYNC_* */
static const char *const onoff_names[] = {"off", "on", NULL};
static const char *const backend_names[] = {"local", "redis", NULL}; /* STORE_BACKEND_* */
_Static_assert(sizeof(enum config_fsync) == sizeof(int), "V_ENUM stores through an int");

/* Every key of every section, with its default: adding a key is one line here. */
const struct keydef config_keys[] = {
    {SEC_SERVER, "listen", V_LISTEN, 0, 0, 0, 0, NULL},
    {SEC_SERVER, "max_connections", V_COUNT, C(max_connections), 1, 10000000, 10000, NULL},
    {SEC_SERVER, "max_connections_per_ip", V_COUNT, C(max_connections_per_ip), 0, 10000000, 0, NULL},
    {SEC_SERVER, "loopback_reserve", V_COUNT, C(loopback_reserve), 0, 10000000, 8, NULL},
    {SEC_SERVER, "backlog", V_COUNT, C(backlog), 1, 65535, 4096, NULL},
    {SEC_SERVER, "log_level", V_ENUM, C(log_level), 0, 0, LOG_LVL_INFO, level_names},
    {SEC_SERVER, "header_timeout", V_DURATION, C(header_timeout_ms), 1, YEAR, 10 * SECOND, NULL},
    {SEC_SERVER, "body_timeout", V_DURATION, C(body_timeout_ms), 1, YEAR, 10 * SECOND, NULL},
    {SEC_SERVER, "keepalive_timeout", V_DURATION, C(keepalive_timeout_ms), 1, YEAR, 75 * SECOND,
     NULL},
    {SEC_SERVER, "write_timeout", V_DURATION, C(write_timeout_ms), 1, YEAR, 30 * SECOND, NULL},
    {SEC_SERVER, "shutdown_grace", V_DURATION, C(shutdown_grace_ms), 0, YEAR, 10 * SECOND, NULL},
    /* issue 16: /health answers 503 draining this long before the listeners close */
    {SEC_SERVER, "drain_delay", V_DURATION, C(drain_delay_ms), 0, HOUR, 0, NULL},
    {SEC_SERVER, "max_header_bytes", V_SIZE, C(max_header_bytes), 256, MIB, 8 * KIB, NULL},
    {SEC_SERVER, "max_headers", V_COUNT, C(max_headers), 1, 128, 100, NULL}, /* HTTP_MAX_HEADERS */
    {SEC_SERVER, "max_uri", V_SIZE, C(max_uri), 16, MIB, 4 * KIB, NULL}, /* <= max_header_bytes */
    {SEC_SERVER, "max_body", V_SIZE, C(max_body), 0, GIB, MIB, NULL},
    {SEC_SERVER, "max_output", V_SIZE, C(max_output), 4 * KIB, GIB, 256 * KIB, NULL},
    {SEC_SERVER, "output_budget", V_SIZE, C(output_budget), 0, 1024 * GIB, 64 * MIB, NULL},
    /* event-loop threads; 0 is "auto" (online CPUs), as the word auto is (issue 18) */
    {SEC_SERVER, "workers", V_COUNT, C(workers), 0, CONFIG_MAX_WORKERS, 1, NULL},
    {SEC_PROBE, "max_delay", V_DURATION, C(max_delay_ms), 0, YEAR, 60 * SECOND, NULL},
    {SEC_PROBE, "max_bytes", V_SIZE, C(max_bytes), 0, GIB, MIB, NULL},
    {SEC_PROBE, "max_stream", V_COUNT, C(max_stream), 0, 1000000, 1000, NULL},
    {SEC_PROBE, "trust_forwarded", V_ENUM, C(probe_trust_forwarded), 0, 0, 1, onoff_names},
    {SEC_PROBE, "cors", V_ENUM, C(probe_cors), 0, 0, 1, onoff_names},
    {SEC_PROBE, "max_form_parts", V_COUNT, C(max_form_parts), 1, 1000000, 1000, NULL},
    {SEC_TLS, "listen", V_LISTEN, 0, 0, 0, 0, NULL},
    {SEC_TLS, "cert", V_PATH, C(tls_cert), 0, 0, 0, NULL},
    {SEC_TLS, "key", V_PATH, C(tls_key), 0, 0, 0, NULL},
    {SEC_TLS, "chain", V_PATH, C(tls_chain), 0, 0, 0, NULL},
    {SEC_TLS, "client_ca", V_PATH, C(tls_client_ca), 0, 0, 0, NULL},
    {SEC_TLS, "session_tickets", V_ENUM, C(tls_session_tickets), 0, 0, 1, onoff_names},
    {SEC_TLS, "handshake_timeout", V_DURATION, C(tls_handshake_timeout_ms), 1, YEAR, 10 * SECOND,
     NULL},
    {SEC_JOURNAL, "path", V_PATH, C(journal_path), 0, 0, 0, NULL}, /* default: new_config */
    {SEC_JOURNAL, "fsync", V_ENUM, C(fsync), 0, 0, FSYNC_ALWAYS, fsync_names},
    {SEC_JOURNAL, "fsync_interval", V_DURATION, C(fsync_interval_ms), 1, YEAR, 50, NULL},
    {SEC_JOURNAL, "compact_min", V_SIZE, C(journal_compact_min), 0, 1024 * GIB, 64 * MIB, NULL},
    {SEC_AUTH, "token", V_TOKEN, C(auth_token), 0, 0, 0, NULL},
    {SEC_AUTH, "token_file", V_TOKEN_FILE, C(auth_token_file), 0, 0, 0, NULL},
    {SEC_AUTH, "client_subject", V_STRING, C(auth_client_subject), 0, 0, 0, NULL},
    {SEC_QUEUES, "max_wait", V_DURATION, C(queue_max_wait_ms), 0, YEAR, 20 * SECOND, NULL},
    {SEC_QUEUES, "mem_limit", V_SIZE, C(queue_mem_limit), 0, 1024 * GIB, GIB, NULL},
    {SEC_QUEUES, "key_window", V_DURATION, C(queue_key_window_ms), 1, YEAR, 5 * MINUTE, NULL},
    /* [timers], [metrics] (issue 12, findings 2 and 5) */
    {SEC_TIMERS, "max_timers", V_COUNT, C(timers_max), 0, 1000000000, 1000000, NULL},
    {SEC_METRICS, "per_queue", V_TOPN, C(metrics_per_queue), 0, 1000000, 100, NULL},
    {SEC_METRICS, "public", V_ENUM, C(metrics_public), 0, 0, 0, onoff_names},
    {SEC_STORE, "backend", V_ENUM, C(store_backend), 0, 0, STORE_BACKEND_LOCAL, backend_names},
    {SEC_REDIS, "connect_timeout", V_DURATION, C(redis_connect_timeout_ms), 1, HOUR, 2 * SECOND,
     NULL},
    {SEC_REDIS, "command_timeout", V_DURATION, C(redis_command_timeout_ms), 1, HOUR, 5 * SECOND,
     NULL},
    {SEC_REDIS, "replicas_ack", V_COUNT, C(redis_replicas_ack), 0, 16, 0, NULL},
    {SEC_REDIS, "nodes", V_STRING, C(redis_nodes_text), 0, 0, 0, NULL},
    {SEC_REDIS, "user", V_STRING, C(redis_user), 0, 0, 0, NULL},
    {SEC_REDIS, "password", V_STRING, C(redis_password), 0, 0, 0, NULL},
    {SEC_REDIS, "password_file", V_PATH, C(redis_password_file), 0, 0, 0, NULL},
    {SEC_REDIS, "prefix", V_STRING, C(redis_prefix), 0, 0, 0, NULL},
    /* [console] (issue 17) */
    {SEC_CONSOLE, "enabled", V_ENUM, C(console_enabled), 0, 0, 1, onoff_names},
    /* [log] (issue 16): access = off | stderr | PATH; error = PATH (besides stderr) */
    {SEC_LOG, "access", V_PATH, C(log_access), 0, 0, 0, NULL},
    {SEC_LOG, "error", V_PATH, C(log_error), 0, 0, 0, NULL},
    /* [http2] (issue 15) */
    {SEC_HTTP2, "enabled", V_ENUM, C(h2_enabled), 0, 0, 1, onoff_names},
    {SEC_HTTP2, "max_concurrent_streams", V_COUNT, C(h2_max_streams), 1, 100000, 100, NULL},
    {SEC_HTTP2, "initial_window_size", V_SIZE, C(h2_initial_window), 1, 2147483647, 65535, NULL},
    {SEC_HTTP2, "max_header_list_size", V_SIZE, C(h2_max_header_list), 256, 16 * MIB, 16 * KIB,
     NULL},
    {SEC_HTTP2, "idle_timeout", V_DURATION, C(h2_idle_timeout_ms), 1, YEAR, 75 * SECOND, NULL},
    {SEC_HTTP2, "ping_timeout", V_DURATION, C(h2_ping_timeout_ms), 0, YEAR, 0, NULL},
    {SEC_QUEUE, "maxsize", V_COUNT, Q(maxsize), 0, 1000000000, 0, NULL},
    {SEC_QUEUE, "lease", V_DURATION, Q(lease_ms), 1, YEAR, 30 * SECOND, NULL},
    {SEC_QUEUE, "max_attempts", V_COUNT, Q(max_attempts), 1, 65535, 5, NULL},
    {SEC_QUEUE, "max_payload", V_SIZE, Q(max_payload), 1, 64 * MIB, MIB, NULL},
    {SEC_QUEUE, "result_ttl", V_DURATION, Q(result_ttl_ms), 0, YEAR, 5 * MINUTE, NULL},
};
#define NKEYS (sizeof config_keys / sizeof config_keys[0])
const size_t config_nkeys = NKEYS;
_Static_assert(NKEYS <= CONFIG_NKEYS_MAX,
               "struct parser has a line per key: raise CONFIG_NKEYS_MAX");

/* ---- paths and a config's life ------------------------------------------ */

/* dir + "/" + v unless v is absolute. */
char *config_resolve_path(const char *dir, const char *v) {
    if (v[0] == '/')
        return strdup(v);
    char *r;
    size_t n = strlen(dir);
    if (asprintf(&r, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", v) < 0)
        return NULL;
    return r;
}

/* The absolute directory of path: realpath when it exists, else cwd-joined. */
static char *config_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *d = !slash ? strdup(".") : strndup(path, slash == path ? 1 : (size_t)(slash - path));
    char *r = d ? realpath(d, NULL) : NULL;
    if (!r && d && d[0] == '/') {
        r = d;
        d = NULL;
    } else if (!r && d) {
        char *cwd = getcwd(NULL, 0);
        r = cwd ? config_resolve_path(cwd, d) : NULL;
        free(cwd);
    }
    free(d);
    return r;
}

/* Number and enum defaults come from the table; queue picks which struct base is. */
void config_apply_defaults(void *base, bool queue) {
    for (const struct keydef *k = config_keys; k < config_keys + NKEYS; k++) {
        if ((k->sec == SEC_QUEUE) != queue || k->type > V_ENUM)
            continue;
        if (k->type == V_ENUM)
            *(int *)((char *)base + k->off) = (int)k->def;
        else
            *(uint64_t *)((char *)base + k->off) = k->def;
    }
}

/* A config with every default except listen (filled in at the end). */
struct config *config_new(const char *path) {
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    config_apply_defaults(c, false);
    c->path = path ? strdup(path) : NULL;
    c->dir = path ? config_dir(path) : getcwd(NULL, 0);
    c->journal_path = c->dir ? config_resolve_path(c->dir, DEFAULT_JOURNAL) : NULL;
    if ((path && !c->path) || !c->journal_path) {
        config_free(c);
        return NULL;
    }
    return c;
}

int config_add_default_listen(struct config *c) {
    if (c->nlisten > 0)
        return 0;
    c->nlisten = 1;
    return config_parse_listen(DEFAULT_LISTEN, &c->listen[0]);
}

struct config *config_defaults(void) {
    struct config *c = config_new(NULL);
    if (c)
        config_add_default_listen(c);
    return c;
}

void config_free(struct config *c) {
    if (!c)
        return;
    if (c->auth_token) /* a secret: do not leave it in freed memory */
        explicit_bzero(c->auth_token, strlen(c->auth_token));
    if (c->redis_password)
        explicit_bzero(c->redis_password, strlen(c->redis_password));
    for (const struct keydef *k = config_keys; k < config_keys + NKEYS; k++)
        if (k->type >= V_PATH) /* every string key owns its value */
            free(*(char **)((char *)c + k->off));
    free(c->path);
    free(c->dir);
    free(c);
}

/* ---- keys by name ------------------------------------------------------- */

int config_find_key(enum section sec, const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (config_keys[i].sec == sec && strcmp(config_keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- the key table, for printers (config_dump.c) -------------------------- */

_Static_assert((int)V_COUNT == CONFIG_KIND_COUNT && (int)V_TOPN == CONFIG_KIND_TOPN &&
                   (int)V_ENUM == CONFIG_KIND_ENUM &&
                   (int)V_PATH == CONFIG_KIND_PATH && (int)V_STRING == CONFIG_KIND_STRING,
               "enum config_kind mirrors enum vtype");

int config_key_info(size_t i, struct config_key_info *out) {
    if (i >= NKEYS)
        return -1;
    const struct keydef *k = &config_keys[i];
    *out = (struct config_key_info){
        .section = k->sec == SEC_QUEUE ? "queue" : config_section_names[k->sec],
        .per_queue = k->sec == SEC_QUEUE,
        .name = k->name,
        .kind = (enum config_kind)k->type,
        .off = k->off,
        .names = k->names,
    };
    return 0;
}
