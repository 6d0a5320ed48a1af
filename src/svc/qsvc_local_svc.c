/*
 * qsvc_local_svc: the local queue backend's life as a service: the engine
 * and its journal glue (every engine event is encoded into the store's
 * batch), replay and snapshot as a client of the store, the config's
 * queues, the reaper that finishes bulk removals a slice per loop turn,
 * drain, reload, close and metrics.
 */
#include "svc/qsvc_local.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "journal/records.h"
#include "net/server.h"
#include "net/service.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void qsvc_local_clock(struct qsvc_local *svc) {
    /* Once per wheel millisecond, not per operation: at tens of thousands
     * of operations a second, the wall clock's read was one of three
     * clock_gettime calls per operation (issue 19). */
    uint64_t now = svc->srv->wheel.now;
    if (now == svc->clk_at && now)
        return;
    svc->clk_at = now;
    svc->clk.wall_minus_wheel = (int64_t)clock_wall_ms() - (int64_t)now;
}

/* ---- journal glue ------------------------------------------------------------------ */

static void on_engine_event(void *ctx, const struct queue_event *ev) {
    struct qsvc_local *svc = ctx;
    if (!svc->st)
        return; /* replaying */
    if (ev->type == QUEUE_EV_DEAD) /* an operator hears of every dead letter, and why */
        log_info("queue %.*s: job %" PRIu64 " moved to the dead letters (%s)", (int)ev->queue_len,
                 ev->queue, ev->id,
                 ev->reason == QUEUE_DEAD_NACKED
                     ? "nacked on its last attempt"
                     : "its last lease ran out: max_attempts deliveries, no ack");
    if (qj_encode(store_batch(svc->st), ev, &svc->clk) < 0) {
        log_error("journal: out of memory encoding a record; it is lost");
        return;
    }
    store_added(svc->st);
    qsvc_local_result_event(svc, ev); /* answers result waits once this record is durable */
}

struct snap_ctx {
    struct qsvc_local *svc;
    struct buf *out;
    int err;
};

static void snap_event(void *arg, const struct queue_event *ev) {
    struct snap_ctx *sc = arg;
    if (qj_encode(sc->out, ev, &sc->svc->clk) < 0)
        sc->err = 1;
}

/* The live state as records (compaction, in the forked child). */
static int snapshot(void *arg, struct buf *out) {
    struct qsvc_local *svc = arg;
    struct snap_ctx sc = {svc, out, 0};
    qsvc_local_clock(svc);
    queue_engine_snapshot(svc->eng, snap_event, &sc);
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    if (sc.err || store_encode_u64(out, REC_QUEUE_NEXT_ID, es.next_id) < 0)
        return -1;
    return 0;
}

static uint64_t live_bytes(void *arg) {
    struct qsvc_local *svc = arg;
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    return es.mem_used;
}

static int replay_record(void *arg, uint8_t type, const char *payload, size_t len, uint64_t off) {
    struct qsvc_local *svc = arg;
    struct queue_event ev;
    uint64_t id;
    if (type == REC_QUEUE_NEXT_ID && store_decode_u64(payload, len, &id) == 0) {
        queue_engine_set_next_id(svc->eng, id); /* a lower one is refused: fine */
        svc->replayed++;
        return 1;
    }
    if (type < REC_QUEUE_FIRST || type > REC_QUEUE_LAST)
        return 0; /* not a queue record */
    if (qj_decode(type, payload, len, &svc->clk, &ev) < 0) {
        log_error("journal: queue record at offset %" PRIu64 " is malformed", off);
        return -1;
    }
    int st = queue_engine_replay(svc->eng, &ev);
    if (st != QUEUE_OK && st != QUEUE_ERR_NOTFOUND && st != QUEUE_ERR_EXISTS) {
        log_error("journal: record at offset %" PRIu64 " cannot be applied: %s", off,
                  queue_strerror(st));
        return -1;
    }
    svc->replayed++;
    return 1;
}

/* ---- the reaper ---------------------------------------------------------------------- */

/*
 * Purge, immediate shutdown, dead-letter purge and delete return at once;
 * the engine's reaper emits the DROP records and frees the jobs a slice
 * per loop turn (a zero timeout: one slice, then the loop polls again).
 */
void qsvc_local_reap_kick(struct qsvc_local *svc) {
    static const struct timeval now = {0, 0};
    if (svc->reap_ev && !evtimer_pending(svc->reap_ev, NULL))
        evtimer_add(svc->reap_ev, &now);
}

static void on_reap(evutil_socket_t fd, short what, void *arg) {
    struct qsvc_local *svc = arg;
    (void)fd;
    (void)what;
    size_t left = queue_engine_reap(svc->eng, QSVC_REAP_SLICE);
    qsvc_local_purges_answer(svc);
    if (left)
        qsvc_local_reap_kick(svc);
}

/* ---- the service ------------------------------------------------------------------- */

/* Create the queues the config declares; existing ones take its settings. */
static void declare_queues(struct qsvc_local *svc, const struct config *cfg) {
    for (size_t i = 0; i < cfg->nqueues; i++) {
        const struct config_queue *cq = &cfg->queues[i];
        struct queue_settings s;
        queue_settings_default(&s);
        s.maxsize = cq->maxsize;
        s.lease_ms = cq->lease_ms;
        s.max_attempts = (uint32_t)cq->max_attempts;
        s.max_payload = (uint32_t)cq->max_payload;
        s.key_window_ms = cfg->queue_key_window_ms;
        s.result_ttl_ms = cq->result_ttl_ms;
        struct queue *q = queue_find(svc->eng, cq->name, strlen(cq->name));
        int st = q ? queue_update(q, &s) : queue_create(svc->eng, cq->name, strlen(cq->name), &s, NULL);
        if (st != QUEUE_OK)
            log_error("queue %s from the config: %s", cq->name, queue_strerror(st));
    }
}

struct qsvc *qsvc_new(struct server *s, struct store *store) {
    struct qsvc_local *svc = calloc(1, sizeof *svc);
    if (!svc)
        return NULL;
    svc->srv = s;
    svc->store = store;
    list_init(&svc->waiting);
    list_init(&svc->purging);
    list_init(&svc->listing);
    qsvc_local_clock(svc);
    struct queue_engine_config ec = {0};
    ec.mem_limit = s->cfg->queue_mem_limit;
    ec.on_event = on_engine_event;
    ec.event_ctx = svc;
    if (getrandom(&ec.hash_seed, sizeof ec.hash_seed, GRND_NONBLOCK) != sizeof ec.hash_seed)
        ec.hash_seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    svc->eng = queue_engine_new(&s->wheel, &ec);
    struct store_client client = {replay_record, snapshot, live_bytes, svc};
    if (!svc->eng || qsvc_init(&svc->base, &qsvc_local_ops, s->base) < 0 ||
        store_add_client(store, &client) < 0) {
        log_error("out of memory creating the queue engine");
        qsvc_fini(&svc->base);
        queue_engine_free(svc->eng);
        free(svc);
        return NULL;
    }
    return &svc->base;
}

struct queue_engine *qsvc_engine(struct qsvc *base) {
    return base->ops == &qsvc_local_ops ? ((struct qsvc_local *)base)->eng : NULL;
}

static int local_start(void *ctx) {
    struct qsvc_local *svc = ctx;
    struct server *s = svc->srv;
    svc->st = svc->store;
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    log_info("queues: %zu queues, %zu jobs after replay", es.queues, es.jobs);
    queue_engine_totals_reset(svc->eng); /* totals count since start (docs/QUEUES.md) */
    declare_queues(svc, s->cfg);
    svc->reap_ev = evtimer_new(s->base, on_reap, svc);
    if (!svc->reap_ev)
        log_warnx("out of memory for the queue reaper: purges free their jobs at shutdown");
    return 0;
}

static void local_drain(void *ctx) {
    struct qsvc_local *svc = ctx;
    qsvc_local_waits_end(svc, QSVC_ERR_DRAINING);
    qsvc_local_results_end(svc, QSVC_ERR_DRAINING);
    /* Finish the reaper's work now, so its records reach the journal
     * before it closes and pending purges get their answer. */
    queue_engine_reap(svc->eng, SIZE_MAX);
    qsvc_local_purges_answer(svc);
}

static void local_reload(void *ctx) {
    struct qsvc_local *svc = ctx;
    struct server *s = svc->srv;
    server_wheel_catch_up(s);
    qsvc_local_clock(svc);
    queue_engine_set_mem_limit(svc->eng, s->cfg->queue_mem_limit);
    declare_queues(svc, s->cfg);
}

static void local_close(void *ctx) {
    struct qsvc_local *svc = ctx;
    svc->st = NULL; /* engine events from here on (freeing) are not journaled */
    if (svc->reap_ev)
        event_free(svc->reap_ev);
    queue_engine_free(svc->eng);
    qsvc_local_results_end(svc, 0);
    qsvc_fini(&svc->base);
    free(svc->listed);
    free(svc);
}

/* A queue picked for per-queue series: its ready jobs and its place in name order. */
struct pick {
    uint64_t size;
    size_t idx;
};

/* Does a rank below b (fewer ready jobs, or as many and later by name)? */
static int pick_less(const struct pick *a, const struct pick *b) {
    return a->size < b->size || (a->size == b->size && a->idx > b->idx);
}

static void pick_sift(struct pick *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && pick_less(&h[l], &h[m]))
            m = l;
        if (l + 1 < n && pick_less(&h[l + 1], &h[m]))
            m = l + 1;
        if (m == i)
            return;
        struct pick t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int idx_cmp(const void *a, const void *b) {
    size_t x = ((const struct pick *)a)->idx, y = ((const struct pick *)b)->idx;
    return x < y ? -1 : x > y;
}

/*
 * The queues that get series of their own ([metrics] per_queue), in name
 * order: every queue, none, or the top N by ready jobs (a min-heap of N:
 * O(queues log N), 1-2 ms for 50,000 queues). *n gets how many; NULL with
 * *n 0 for none, or (no memory) -1.
 */
static struct pick *pick_queues(struct queue_engine *eng, uint64_t per_queue, size_t *n, int *err) {
    size_t nq = queue_count(eng), want = per_queue < nq ? (size_t)per_queue : nq;
    *n = 0;
    if (!want)
        return NULL;
    struct pick *h = malloc(want * sizeof *h);
    if (!h) {
        *err = 1;
        return NULL;
    }
    struct queue_stats st;
    for (size_t i = 0; i < nq; i++) {
        queue_stats(queue_at(eng, i), &st);
        struct pick p = {st.size, i};
        if (*n < want) {
            h[(*n)++] = p;
            if (*n == want) /* heapify once full */
                for (size_t k = want / 2 + 1; k-- > 0;)
                    pick_sift(h, want, k);
        } else if (pick_less(&h[0], &p)) {
            h[0] = p;
            pick_sift(h, want, 0);
        }
    }
    qsort(h, *n, sizeof *h, idx_cmp);
    return h;
}

static int local_metrics(void *ctx, struct buf *o) {
    struct qsvc_local *svc = ctx;
    static const char *const names[] = {"size", "reserved", "delayed", "dead", "unfinished",
                                        "getters", "putters", "put_total", "acked_total",
                                        "redelivered_total", "dead_total"};
    static const char *const helps[] = {
        "Jobs ready in the queue.", "Jobs reserved (leased) and not yet acked.",
        "Jobs delayed, not yet ready.", "Jobs in the queue's dead letters.",
        "Jobs put and not yet acked (ready, reserved, delayed).",
        "Reserve requests waiting for a job.", "Put requests waiting for room (maxsize).",
        "Jobs put into the queue.", "Jobs acked.", "Jobs delivered again (lease expired or nacked).",
        "Jobs moved to the dead letters."};
    size_t nq = queue_count(svc->eng), np = 0;
    int r = 0;
    /* Totals over every queue, whatever per_queue says. */
    uint64_t sum[4] = {0, 0, 0, 0};
    struct queue_stats st;
    for (size_t i = 0; i < nq; i++) {
        queue_stats(queue_at(svc->eng, i), &st);
        sum[0] += st.size;
        sum[1] += st.reserved;
        sum[2] += st.delayed;
        sum[3] += st.dead;
    }
    r |= buf_appendf(o,
                     "# HELP awaitd_queues Queues.\n# TYPE awaitd_queues gauge\nawaitd_queues %zu\n"
                     "# HELP awaitd_queue_jobs Jobs in every queue, by state.\n"
                     "# TYPE awaitd_queue_jobs gauge\n"
                     "awaitd_queue_jobs{state=\"ready\"} %" PRIu64 "\n"
                     "awaitd_queue_jobs{state=\"reserved\"} %" PRIu64 "\n"
                     "awaitd_queue_jobs{state=\"delayed\"} %" PRIu64 "\n"
                     "awaitd_queue_jobs{state=\"dead\"} %" PRIu64 "\n",
                     nq, sum[0], sum[1], sum[2], sum[3]);
    /* Per-queue series for the queues [metrics] per_queue picks, so that
     * 50,000 queues do not make a 23 MB answer. */
    struct pick *pk = pick_queues(svc->eng, svc->srv->cfg->metrics_per_queue, &np, &r);
    for (size_t k = 0; k < sizeof names / sizeof names[0] && np; k++) {
        r |= buf_appendf(o, "# HELP awaitd_queue_%s %s\n# TYPE awaitd_queue_%s %s\n", names[k],
                         helps[k], names[k], k < 7 ? "gauge" : "counter");
        for (size_t i = 0; i < np; i++) {
            struct queue *q = queue_at(svc->eng, pk[i].idx);
            size_t nl;
            const char *name = queue_name(q, &nl);
            queue_stats(q, &st);
            uint64_t v[] = {st.size,       st.reserved,    st.delayed,           st.dead,
                            st.unfinished, st.getters,     st.putters,           st.total_put,
                            st.total_acked, st.total_redelivered, st.total_dead};
            r |= buf_appendf(o, "awaitd_queue_%s{queue=\"%.*s\"} %" PRIu64 "\n", names[k],
                             (int)nl, name, v[k]);
        }
    }
    free(pk);
    struct queue_engine_stats es;
    queue_engine_stats(svc->eng, &es);
    r |= buf_appendf(o, "# HELP awaitd_queue_reaping Jobs of deleted or purged queues not yet freed.\n"
                        "# TYPE awaitd_queue_reaping gauge\nawaitd_queue_reaping %" PRIu64 "\n",
                     es.reaping);
    r |= buf_appendf(o,
                     "# HELP awaitd_queue_memory_bytes Bytes queued jobs are charged against "
                     "[queues] mem_limit.\n# TYPE awaitd_queue_memory_bytes gauge\n"
                     "awaitd_queue_memory_bytes %zu\n"
                     "# HELP awaitd_memory_limit_bytes [queues] mem_limit (jobs and timers); 0 = none.\n"
                     "# TYPE awaitd_memory_limit_bytes gauge\nawaitd_memory_limit_bytes %zu\n",
                     es.mem_used, es.mem_limit);
    return r ? -1 : 0;
}

const struct service_ops qsvc_service = {
    .name = "queues",
    .start = local_start,
    .reload = local_reload,
    .drain = local_drain,
    .close = local_close,
    .metrics = local_metrics,
};
