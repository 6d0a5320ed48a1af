/*
 * tsvc_redis_svc: the Redis timer backend's life as a service, and what
 * its files share. At start it connects its own redis_conn (a command and
 * a subscriber connection, on the channel PREFIX "timers"; a Redis that
 * is not there yet is retried with backoff and /health says degraded
 * meanwhile). On every connection it asks Redis for the function
 * library's version and loads it when it differs from this build's
 * (FUNCTION LOAD REPLACE), claims on every shard (which also learns each
 * shard's earliest due time) and re-reads every await (a notification
 * may have been missed while it was away). Drain answers the awaits;
 * close frees everything. Metrics are this node's.
 */
#include "svc/tsvc_redis.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "net/metrics.h"
#include "net/server.h"
#include "net/service.h"
#include "svc/qsvc_redis.h"
#include "svc/redis_conn.h"
#include "svc/redis_lib.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t trsvc_rand(struct trsvc *svc) {
    uint64_t x = svc->rng; /* xorshift64* */
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    svc->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int trsvc_fcall(struct trsvc *svc, const char *fn, unsigned shard, int nargs, const char **args,
                const size_t *lens, void (*cb)(void *, struct redisReply *, const char *),
                void *arg) {
    char key[sizeof svc->prefix + 24], num[12];
    int klen = snprintf(key, sizeof key, "{%stimers:%u}", svc->prefix, shard);
    snprintf(num, sizeof num, "%u", shard);
    const char *argv[24];
    size_t alen[24];
    if (nargs > 18)
        return -1;
    argv[0] = "FCALL", alen[0] = 5;
    argv[1] = fn, alen[1] = strlen(fn);
    argv[2] = "1", alen[2] = 1;
    argv[3] = key, alen[3] = (size_t)klen;
    argv[4] = svc->channel, alen[4] = strlen(svc->channel);
    argv[5] = num, alen[5] = strlen(num);
    for (int i = 0; i < nargs; i++) {
        argv[6 + i] = args[i];
        alen[6 + i] = lens ? lens[i] : strlen(args[i]);
    }
    return redis_conn_command(svc->rc, key, (size_t)klen, cb, arg, 6 + nargs, argv, alen);
}

int trsvc_lib_gone(struct trsvc *svc, const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ERROR || !strstr(r->str, "Function not found"))
        return 0;
    if (svc->lib_ok) {
        /* FUNCTION FLUSH, or a Redis restarted empty: reconnecting loads it again. */
        svc->lib_ok = 0;
        redis_conn_fail(svc->rc, "the awaitd function library is missing; reloading it");
    }
    return 1;
}

/* ---- the service ------------------------------------------------------------------- */

static void library_ready(struct trsvc *svc) {
    svc->lib_ok = 1;
    redis_conn_ready(svc->rc);
    tfire_claim_all(svc);
    trsvc_awaits_finished(svc, 0, 1); /* a notification may have been missed while away */
}

/* Every master has the library (a cluster's each; loaded there if missing or older). */
static void on_library(void *arg, int loaded, const char *err) {
    struct trsvc *svc = arg;
    if (err) {
        log_error("%s (Redis 7 or later is needed)", err);
        redis_conn_fail(svc->rc, err);
        return;
    }
    if (loaded)
        log_info("redis: loaded the awaitd function library, version %s (timers)", svc->version);
    library_ready(svc);
}

static void on_up(void *ctx) {
    struct trsvc *svc = ctx;
    svc->lib_ok = 0;
    if (redis_lib_ensure(svc->rc, svc->version, svc->lib, on_library, svc) < 0)
        redis_conn_fail(svc->rc, "cannot send FCALL awaitd_version");
}

static void on_down(void *ctx) {
    struct trsvc *svc = ctx;
    svc->lib_ok = 0;
}

/* "d SHARD HEAD NOW" or "f ID". */
static void on_message(void *ctx, const char *msg, size_t len) {
    struct trsvc *svc = ctx;
    char text[96];
    if (len < 3 || len >= sizeof text)
        return;
    memcpy(text, msg, len);
    text[len] = '\0';
    if (text[0] == 'f') {
        uint64_t id = strtoull(text + 2, NULL, 10);
        svc->fin_ring[svc->fin_seq++ % TRSVC_FIN_RING] = id;
        trsvc_awaits_finished(svc, id, 0);
    } else if (text[0] == 'd') {
        char *p = text + 2;
        unsigned shard = (unsigned)strtoul(p, &p, 10);
        long long head = strtoll(p, &p, 10), now = strtoll(p, &p, 10);
        if (shard < TRSVC_SHARDS)
            tfire_head(svc, shard, head, now);
    }
}

struct tsvc *tsvc_redis_new(struct server *s) {
    struct trsvc *svc = calloc(1, sizeof *svc);
    if (!svc)
        return NULL;
    svc->base.ops = &trsvc_ops;
    svc->srv = s;
    list_init(&svc->awaits);
    list_init(&svc->ready);
    const char *prefix = s->cfg->redis_prefix ? s->cfg->redis_prefix : "awaitd:";
    snprintf(svc->prefix, sizeof svc->prefix, "%s", prefix);
    snprintf(svc->channel, sizeof svc->channel, "%stimers", prefix);
    snprintf(svc->qchannel, sizeof svc->qchannel, "%sevents", prefix);
    svc->rng = clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)svc;
    if (!svc->rng)
        svc->rng = 1;
    snprintf(svc->token, sizeof svc->token, "%016" PRIx64 "-%d", trsvc_rand(svc), (int)getpid());
    tfire_init(svc);
    struct redis_conn_hooks hooks = {on_up, on_message, on_down, svc};
    svc->lib = rsvc_library_text(svc->version);
    svc->ready_ev = event_new(s->base, -1, 0, trsvc_on_ready, svc);
    if (!svc->lib || !svc->ready_ev || !(svc->rc = redis_conn_new(s, svc->channel, &hooks))) {
        log_error("out of memory creating the redis timer backend");
        if (svc->ready_ev)
            event_free(svc->ready_ev);
        free(svc->lib);
        free(svc);
        return NULL;
    }
    return &svc->base;
}

static int trsvc_start(void *ctx) {
    struct trsvc *svc = ctx;
    log_info("timers: backend redis, %u shards, channel %s", TRSVC_SHARDS, svc->channel);
    redis_conn_start(svc->rc);
    return 0;
}

static void trsvc_drain(void *ctx) {
    struct trsvc *svc = ctx;
    svc->draining = 1;
    trsvc_end_awaits(svc);
    trsvc_run_ready(svc);
}

static void trsvc_close(void *ctx) {
    struct trsvc *svc = ctx;
    svc->draining = 1;
    svc->lib_ok = 0; /* the answers redis_conn_free() runs arm nothing */
    trsvc_end_awaits(svc);
    trsvc_run_ready(svc);
    tfire_stop(svc);
    redis_conn_free(svc->rc); /* commands in flight get their callbacks with NULL */
    trsvc_run_ready(svc);
    event_free(svc->ready_ev);
    free(svc->lib);
    free(svc);
}

static const uint32_t late_bounds[TRSVC_NLATE] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};

static int trsvc_metrics(void *ctx, struct buf *o) {
    struct trsvc *svc = ctx;
    int r = buf_appendf(o, "# HELP awaitd_redis_timers_up 1 if the Redis timer service is "
                           "connected with its function library loaded.\n"
                           "# TYPE awaitd_redis_timers_up gauge\nawaitd_redis_timers_up %d\n",
                        svc->lib_ok && redis_conn_up(svc->rc));
    r |= buf_appendf(o,
                     "# HELP awaitd_timer_fires_total Timer ticks this node delivered (fired).\n"
                     "# TYPE awaitd_timer_fires_total counter\nawaitd_timer_fires_total %" PRIu64
                     "\n# HELP awaitd_timer_skips_total Timer ticks this node skipped (target "
                     "full or failing, or missed).\n"
                     "# TYPE awaitd_timer_skips_total counter\nawaitd_timer_skips_total %" PRIu64
                     "\n# HELP awaitd_timer_retries_total Timer ticks this node retried (on_full = retry).\n"
                     "# TYPE awaitd_timer_retries_total counter\nawaitd_timer_retries_total %"
                     PRIu64 "\n# HELP awaitd_timer_claims_total Claim calls this node sent to Redis.\n"
                     "# TYPE awaitd_timer_claims_total counter\n"
                     "awaitd_timer_claims_total %" PRIu64 "\n"
                     "# HELP awaitd_timer_claimed_total Due ticks this node's claims took.\n"
                     "# TYPE awaitd_timer_claimed_total counter\nawaitd_timer_claimed_total %"
                     PRIu64 "\n# HELP awaitd_timer_claims_lost_total Claims this node held too "
                     "long: another node settled the tick.\n"
                     "# TYPE awaitd_timer_claims_lost_total counter\n"
                     "awaitd_timer_claims_lost_total %" PRIu64 "\n",
                     svc->fires, svc->skips, svc->retries, svc->claims, svc->claimed, svc->lost);
    r |= metrics_histogram(o, "awaitd_timer_lateness_seconds",
                           "Firing time minus the scheduled time (Redis's clock).", NULL,
                           late_bounds, TRSVC_NLATE, 3, svc->late, svc->late_sum_ms);
    return r ? -1 : 0;
}

void trsvc_late(struct trsvc *svc, int64_t late_ms) {
    if (late_ms < 0)
        late_ms = 0;
    size_t b = 0;
    while (b < TRSVC_NLATE && (uint64_t)late_ms > late_bounds[b])
        b++;
    svc->late[b]++;
    svc->late_sum_ms += (uint64_t)late_ms;
}

static int trsvc_health(void *ctx, char *why, size_t len) {
    struct trsvc *svc = ctx;
    if (svc->lib_ok && redis_conn_up(svc->rc))
        return 0;
    snprintf(why, len, "timer backend redis: %s",
             redis_conn_up(svc->rc) ? "loading the function library" : redis_conn_why(svc->rc));
    return 1;
}

const struct service_ops tsvc_redis_service = {
    .name = "timers (redis)",
    .start = trsvc_start,
    .drain = trsvc_drain,
    .close = trsvc_close,
    .metrics = trsvc_metrics,
    .health = trsvc_health,
};
