/*
 * qsvc_redis_svc: the Redis queue backend's life as a service. At start
 * it connects (redis_conn.c; a Redis that is not there yet is retried with
 * backoff and /health says degraded meanwhile). On every connection it
 * asks every master for the function library's version and loads it
 * (FUNCTION LOAD REPLACE, on every master) when one differs from this
 * build's, declares the config's
 * [queue NAME] sections, and re-checks every waiter (a notification may
 * have been missed while it was away). Drain answers the waits; close
 * frees everything.
 */
#include "svc/qsvc_redis.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "net/server.h"
#include "net/service.h"
#include "svc/redis_conn.h"
#include "svc/redis_lib.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char qsvc_redis_lua[]; /* qsvc_redis_lua.c, generated from qsvc_redis.lua */
extern const char qsvc_redis_results_lua[]; /* ... from qsvc_redis_results.lua, appended */

/* The library text (qsvc_redis.lua, then qsvc_redis_results.lua) with its version (a hash
 * of the whole text) in place of @VERSION@. */
char *rsvc_library_text(char version[17]) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = qsvc_redis_lua; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    for (const char *p = qsvc_redis_results_lua; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    snprintf(version, 17, "%016" PRIx64, h);
    const char *at = strstr(qsvc_redis_lua, "@VERSION@");
    size_t n = strlen(qsvc_redis_lua), n2 = strlen(qsvc_redis_results_lua);
    char *t = malloc(n + n2 + 17);
    if (!t || !at) {
        free(t);
        return NULL;
    }
    size_t pre = (size_t)(at - qsvc_redis_lua);
    memcpy(t, qsvc_redis_lua, pre);
    memcpy(t + pre, version, 16);
    strcpy(t + pre + 16, at + 9);
    strcat(t + pre + 16, qsvc_redis_results_lua);
    return t;
}

static void on_ignore(void *arg, struct redisReply *r, const char *why) {
    (void)arg;
    (void)r;
    (void)why;
}

/* The config's queues: created, or given the config's settings (as the local backend does). */
static void declare_config_queues(struct rsvc *svc) {
    const struct config *cfg = svc->srv->cfg;
    for (size_t i = 0; i < cfg->nqueues; i++) {
        const struct config_queue *cq = &cfg->queues[i];
        char v[7][24];
        snprintf(v[0], sizeof v[0], "%d", 63);
        snprintf(v[1], sizeof v[1], "%" PRIu64, cq->maxsize);
        snprintf(v[2], sizeof v[2], "%" PRIu64, cq->lease_ms);
        snprintf(v[3], sizeof v[3], "%" PRIu64, cq->max_attempts);
        snprintf(v[4], sizeof v[4], "%" PRIu64, cq->max_payload);
        snprintf(v[5], sizeof v[5], "%" PRIu64, cfg->queue_key_window_ms);
        snprintf(v[6], sizeof v[6], "%" PRIu64, cq->result_ttl_ms);
        const char *args[] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
        const char *argv[] = {"SADD", svc->registry, cq->name};
        redis_conn_command(svc->rc, svc->registry, strlen(svc->registry), on_ignore, NULL, 3, argv,
                           NULL);
        rsvc_fcall(svc, "aw_declare", cq->name, strlen(cq->name), 7, args, NULL, on_ignore, NULL);
    }
}

static void library_ready(struct rsvc *svc) {
    svc->lib_ok = 1;
    redis_conn_ready(svc->rc);
    declare_config_queues(svc);
    rwait_wake_all(svc);
}

static void on_library(void *arg, int loaded, const char *err) {
    struct rsvc *svc = arg;
    if (err) {
        log_error("%s (Redis 7 or later is needed)", err);
        redis_conn_fail(svc->rc, err);
        return;
    }
    if (loaded)
        log_info("redis: loaded the awaitd function library, version %s", svc->version);
    library_ready(svc);
}

/* Connected (again, or a new master, or the subscriber back elsewhere): check the library on
 * every master, then re-check every waiter. Ready calls keep going meanwhile. */
static void on_up(void *ctx) {
    struct rsvc *svc = ctx;
    if (redis_lib_ensure(svc->rc, svc->version, svc->lib, on_library, svc) < 0)
        redis_conn_fail(svc->rc, "cannot send FCALL awaitd_version");
}

static void on_down(void *ctx) {
    struct rsvc *svc = ctx;
    svc->lib_ok = 0;
}

static void on_message(void *ctx, const char *msg, size_t len) {
    rwait_message(ctx, msg, len);
}

struct qsvc *qsvc_redis_new(struct server *s) {
    struct rsvc *svc = calloc(1, sizeof *svc);
    if (!svc)
        return NULL;
    svc->srv = s;
    list_init(&svc->watches);
    rwait_init(svc);
    const char *prefix = s->cfg->redis_prefix ? s->cfg->redis_prefix : "awaitd:";
    snprintf(svc->prefix, sizeof svc->prefix, "%s", prefix);
    snprintf(svc->channel, sizeof svc->channel, "%sevents", prefix);
    snprintf(svc->registry, sizeof svc->registry, "%squeues", prefix);
    struct redis_conn_hooks hooks = {on_up, on_message, on_down, svc};
    svc->lib = rsvc_library_text(svc->version);
    if (!svc->lib || qsvc_init(&svc->base, &qsvc_redis_ops, s->base) < 0 ||
        !(svc->rc = redis_conn_new(s, svc->channel, &hooks))) {
        log_error("out of memory creating the redis queue backend");
        qsvc_fini(&svc->base);
        free(svc->lib);
        free(svc);
        return NULL;
    }
    return &svc->base;
}

static int redis_start(void *ctx) {
    struct rsvc *svc = ctx;
    const struct config_redis_node *n = &svc->srv->cfg->redis_nodes[0];
    log_info("queues: backend redis, %s:%d, prefix %s", n->host, n->port, svc->prefix);
    if (svc->srv->cfg->redis_ignored[0])
        log_warnx("%s not applied with [store] backend = redis (the local engine's limits; "
                  "Redis's maxmemory is the limit, docs/REDIS.md)", svc->srv->cfg->redis_ignored);
    redis_conn_start(svc->rc);
    return 0;
}

static void redis_reload(void *ctx) {
    struct rsvc *svc = ctx;
    if (svc->lib_ok && redis_conn_up(svc->rc))
        declare_config_queues(svc);
}

static void redis_drain(void *ctx) {
    struct rsvc *svc = ctx;
    svc->draining = 1;
    rwait_end_all(svc, QSVC_ERR_DRAINING);
}

static void redis_close(void *ctx) {
    struct rsvc *svc = ctx;
    rwait_end_all(svc, QSVC_ERR_DRAINING);
    timer_cancel(&svc->srv->wheel, &svc->safety_t);
    free(svc->rwaits);
    redis_conn_free(svc->rc); /* calls in flight get their callbacks (their callers are gone) */
    qsvc_fini(&svc->base);
    free(svc->lib);
    free(svc);
}

/* Per-queue figures live in Redis (GET /queues); /metrics, answered without
 * waiting on the network, has this node's share: operations and waiters. */
static int redis_metrics(void *ctx, struct buf *o) {
    struct rsvc *svc = ctx;
    static const char *const names[R_NKINDS] = {
        "put", "put_batch", "reserve", "join", "ack", "nack", "touch", "peek", "declare",
        "delete", "stats", "list", "dead_list", "bulk", "result", "jobs", "ack_batch"};
    int r = buf_appendf(o, "# HELP awaitd_redis_up 1 if the Redis backend is connected with its function library loaded.\n"
                        "# TYPE awaitd_redis_up gauge\nawaitd_redis_up %d\n",
                        svc->lib_ok && redis_conn_up(svc->rc));
    r |= buf_appendf(o, "# HELP awaitd_redis_masters Redis masters this node holds a connection to (1 for a standalone server).\n"
                        "# TYPE awaitd_redis_masters gauge\nawaitd_redis_masters %zu\n",
                     redis_conn_masters(svc->rc));
    r |= buf_appendf(o, "# HELP awaitd_redis_degraded 1 while a Redis master or the subscription is down.\n"
                        "# TYPE awaitd_redis_degraded gauge\nawaitd_redis_degraded %d\n",
                     redis_conn_degraded(svc->rc));
    r |= buf_appends(o, "# HELP awaitd_queue_ops_total Queue operations this node sent to the backend, by kind.\n"
                        "# TYPE awaitd_queue_ops_total counter\n");
    for (int k = 0; k < R_NKINDS; k++)
        r |= buf_appendf(o, "awaitd_queue_ops_total{backend=\"redis\",op=\"%s\"} %" PRIu64 "\n",
                         names[k], svc->ops_total[k]);
    uint64_t waiting[3] = {0, 0, 0};
    struct list *n, *tmp;
    list_for_each_safe(n, tmp, &svc->watches) {
        struct rwatch *w = container_of(n, struct rwatch, node);
        struct queue_stats st;
        rwait_counts(svc, w->name, w->len, &st);
        waiting[0] += st.getters, waiting[1] += st.putters, waiting[2] += st.joiners;
    }
    r |= buf_appendf(o, "# HELP awaitd_queue_waiting Requests on this node waiting on a queue, by kind.\n"
                     "# TYPE awaitd_queue_waiting gauge\n"
                     "awaitd_queue_waiting{kind=\"reserve\"} %" PRIu64 "\n"
                     "awaitd_queue_waiting{kind=\"put\"} %" PRIu64 "\n"
                     "awaitd_queue_waiting{kind=\"join\"} %" PRIu64 "\n",
                     waiting[0], waiting[1], waiting[2]);
    return r ? -1 : 0;
}

static int redis_health(void *ctx, char *why, size_t len) {
    struct rsvc *svc = ctx;
    if (svc->lib_ok && !redis_conn_degraded(svc->rc))
        return 0;
    snprintf(why, len, "queue backend redis: %s",
             redis_conn_up(svc->rc) && !svc->lib_ok ? "loading the function library"
                                                     : redis_conn_why(svc->rc));
    return 1;
}

const struct service_ops qsvc_redis_service = {
    .name = "queues (redis)",
    .start = redis_start,
    .reload = redis_reload,
    .drain = redis_drain,
    .close = redis_close,
    .metrics = redis_metrics,
    .health = redis_health,
};
