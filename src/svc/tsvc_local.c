/*
 * tsvc_local: the timer service on this loop (svc/tsvc.h). The task engine
 * (engine/task.h) holds the timers; its events go to the journal through
 * task_journal and the store; a firing puts the payload into a queue of
 * the local queue engine. Awaits keep their waiter and deadline in the
 * caller's struct tsvc_call.
 */
#include "svc/qsvc.h"
#include "svc/tsvc.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "engine/queue.h"
#include "engine/task.h"
#include "journal/task_journal.h"
#include "net/metrics.h"
#include "net/server.h"
#include "net/service.h"
#include "svc/store.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)TSVC_AFTER == TASK_ONCE && (int)TSVC_AT == TASK_AT &&
                   (int)TSVC_EVERY == TASK_EVERY && (int)TSVC_CRON == TASK_CRON,
               "tsvc kinds are the engine's");
_Static_assert((int)TSVC_SCHEDULED == TASK_SCHEDULED && (int)TSVC_COMPLETED == TASK_COMPLETED &&
                   (int)TSVC_CANCELLED == TASK_CANCELLED && (int)TSVC_FAILED == TASK_FAILED,
               "tsvc states are the engine's");
/* The action blob keeps the queue name's length in 8 bits and the cron
 * text's in 16, and must fit a journal record with the rest of CREATE. */
_Static_assert(TSVC_QUEUE_MAX <= 0xff && TSVC_CRON_MAX <= 0xffff, "action blob length fields");
#define ACTION_MAX (3 + TSVC_QUEUE_MAX + TSVC_CRON_MAX + (size_t)TSVC_PAYLOAD_MAX)
_Static_assert(ACTION_MAX <= TJ_ACTION_MAX, "a timer's CREATE must fit one journal record");

#define FIRE_TRANSIENT 2 /* fire(): out of memory, skip this tick only */
#define LIST_CHUNK 64    /* task pointers looked up per task_list() */

/* Lateness histogram bounds (us, inclusive): firing time minus the time the
 * tick was armed for. Printed in seconds, so le="0.00025" is 250 us. */
static const uint32_t late_bounds[] = {100,   250,   500,   1000,   2000,  5000,
                                       10000, 20000, 50000, 100000, 1000000};
#define NLATE (sizeof late_bounds / sizeof late_bounds[0])

struct tsvc_local {
    struct tsvc base;
    struct server *srv;
    struct store *store;      /* the journal, shared with queues */
    struct qsvc *queues;      /* where a timer's action puts its payload */
    struct task_engine *eng;
    struct store *st;         /* NULL while replaying */
    struct list waiting;      /* awaits in progress (struct tsvc_call.link) */
    struct list ready;        /* calls to complete from the loop */
    struct event *ready_ev;   /* zero-timeout: completes the ready calls */
    uint64_t late[NLATE + 1]; /* firings per lateness bucket; the last is over 1 s */
    uint64_t late_sum_us;
    uint64_t replayed;
};

static struct tsvc_local *local_of(struct tsvc *svc) {
    return container_of(svc, struct tsvc_local, base);
}

/*
 * The action blob stored in each task: u8 queue length, queue name, u16
 * cron text length, cron text (for GET; empty for other kinds), payload.
 */
struct action {
    const char *queue;
    size_t queue_len;
    const char *cron;
    size_t cron_len;
    const char *payload;
    size_t len;
};

static int action_parse(const void *blob, size_t n, struct action *a) {
    const unsigned char *p = blob;
    if (n < 3)
        return -1;
    a->queue_len = p[0];
    if (n < 3 + a->queue_len)
        return -1;
    a->queue = (const char *)p + 1;
    a->cron_len = (size_t)p[1 + a->queue_len] | (size_t)p[2 + a->queue_len] << 8;
    size_t off = 3 + a->queue_len;
    if (n < off + a->cron_len)
        return -1;
    a->cron = (const char *)p + off;
    off += a->cron_len;
    a->payload = (const char *)p + off;
    a->len = n - off;
    return 0;
}

/* Lengths within tsvc_spec_error()'s bounds (the static asserts above). */
static int action_encode(struct buf *b, const struct tsvc_spec *s) {
    size_t cl = s->kind == TSVC_CRON ? s->cron_len : 0;
    unsigned char ql = (unsigned char)s->queue_len;
    unsigned char hdr[2] = {(unsigned char)cl, (unsigned char)(cl >> 8)};
    return buf_append(b, &ql, 1) | buf_append(b, s->queue, s->queue_len) |
           buf_append(b, hdr, 2) | buf_append(b, s->cron_text, cl) |
           buf_append(b, s->payload, s->payload_len);
}

/* The offset the engine plans with (it ignores drift under wall_slack_ms):
 * rendering and journaling with the same one keeps "at 12:00" at 12:00. */
static int64_t wall_minus_wheel(const struct tsvc_local *l) {
    if (l->eng) {
        struct task_engine_stats es;
        task_engine_stats(l->eng, &es);
        return es.wall_minus_wheel;
    }
    return (int64_t)clock_wall_ms() - (int64_t)l->srv->wheel.now;
}

/* The real clock's offset, to keep the engine's current. */
static int64_t wall_minus_wheel_now(const struct tsvc_local *l) {
    return (int64_t)clock_wall_ms() - (int64_t)l->srv->wheel.now;
}

/* Every operation sees the wheel and the wall clock as of now. */
static void sync_clock(struct tsvc_local *l) {
    server_wheel_catch_up(l->srv);
    task_engine_set_wall_offset(l->eng, wall_minus_wheel_now(l));
}

static const char *error_text(int e) {
    if (e == 0)
        return NULL;
    if (e == TASK_FIRE_FULL)
        return "queue full";
    if (e == FIRE_TRANSIENT)
        return "out of memory";
    if (e == QUEUE_ERR_NOTFOUND)
        return "queue not found";
    return queue_strerror(e);
}

/* t as a result; its strings are copied to text (a pending call's own) or,
 * with text NULL, point into the engine (valid until the loop runs). */
static void timer_of(const struct tsvc_local *l, const struct task *t, struct tsvc_timer *o,
                     char *text) {
    struct task_info i;
    struct action a;
    task_info(t, &i);
    if (action_parse(i.action, i.action_len, &a) < 0)
        memset(&a, 0, sizeof a);
    if (text && a.queue_len + a.cron_len <= TSVC_QUEUE_MAX + TSVC_CRON_MAX) {
        memcpy(text, a.queue, a.queue_len);
        memcpy(text + a.queue_len, a.cron, a.cron_len);
        a.queue = text;
        a.cron = text + a.queue_len;
    }
    int64_t off = wall_minus_wheel(l);
    *o = (struct tsvc_timer){.id = i.id,
                             .kind = i.kind,
                             .state = i.state,
                             .queue = a.queue ? a.queue : "",
                             .queue_len = a.queue_len,
                             .cron = i.kind == TASK_CRON ? (a.cron ? a.cron : "") : NULL,
                             .cron_len = i.kind == TASK_CRON ? a.cron_len : 0,
                             .fires = i.fires,
                             .skips = i.skips,
                             .count = i.count,
                             .every_ms = i.every_ms,
                             .jitter_ms = i.jitter_ms,
                             .next_fire_ms = i.fire_at + off,
                             .finished_ms = i.finished + off,
                             .full_policy = i.full_policy,
                             .missed_policy = i.missed_policy,
                             .retrying = i.retrying,
                             .last_error = error_text(i.last_error)};
}

/* ---- calls ------------------------------------------------------------------------- */

static int fail(struct tsvc_call *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct tsvc_call *call, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->why, sizeof call->why, fmt, ap);
    va_end(ap);
    return call->status = status;
}

static void on_wake(struct task_waiter *w, int status);
static void on_deadline(struct timer *t);

static void call_begin(struct tsvc_local *l, struct tsvc_call *call) {
    call->svc = &l->base;
    call->status = TSVC_OK;
    call->why[0] = '\0';
    list_init(&call->link);
    task_waiter_init(&call->waiter, on_wake, call);
    timer_init(&call->deadline, on_deadline);
    sync_clock(l);
}

/* Complete a pending call from the loop: never inside the handler (or the
 * firing) that caused it, which may belong to another request. */
static void complete_later(struct tsvc_call *call, int status) {
    struct tsvc_local *l = local_of(call->svc);
    call->status = status;
    list_unlink(&call->link);
    if (list_empty(&l->ready))
        event_active(l->ready_ev, EV_TIMEOUT, 0);
    list_push(&l->ready, &call->link);
}

static void run_ready(struct tsvc_local *l) {
    struct list *n;
    while ((n = list_first(&l->ready))) {
        struct tsvc_call *call = container_of(n, struct tsvc_call, link);
        list_unlink(n);
        call->done(call);
    }
    server_timers_sync(l->srv);
}

static void on_ready(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    run_ready(arg);
}

static void on_durable(void *arg, int status, const char *why) {
    struct tsvc_call *call = arg;
    if (status != STORE_OK)
        snprintf(call->why, sizeof call->why, "the journal could not make this durable: %s", why);
    complete_later(call, status == STORE_OK      ? TSVC_OK
                         : status == STORE_NOSPACE ? TSVC_NOSPACE
                                                   : TSVC_UNAVAILABLE);
}

/* A change is done once this loop turn's records are as durable as configured. */
static int durable(struct tsvc_local *l, struct tsvc_call *call) {
    return store_when_durable(l->store, &call->durable, on_durable, call) ? TSVC_PENDING : TSVC_OK;
}

/* Will the journal take a change? */
static int writable(struct tsvc_local *l, struct tsvc_call *call) {
    int st = store_check(l->store, call->why, sizeof call->why);
    if (st == STORE_OK)
        return TSVC_OK;
    return call->status = st == STORE_NOSPACE ? TSVC_NOSPACE : TSVC_UNAVAILABLE;
}

/* Why task_create() refused: the limits name their setting. */
static int create_failed(struct tsvc_local *l, struct tsvc_call *call, int st, size_t cost) {
    const struct config *cfg = l->srv->cfg;
    if (st == TASK_ERR_LIMIT)
        return fail(call, TSVC_LIMIT, "too many timers: [timers] max_timers is %" PRIu64
                    " scheduled timers", cfg->timers_max);
    if (st == TASK_ERR_MEMORY) {
        struct task_engine_stats es;
        task_engine_stats(l->eng, &es);
        return fail(call, TSVC_MEMORY,
                    "memory limit reached: this timer takes %zu bytes, [queues] mem_limit is %"
                    PRIu64 " bytes for queued jobs and timers together (timers hold %zu)",
                    cost, cfg->queue_mem_limit, es.mem_used);
    }
    return fail(call, st == TASK_ERR_NOMEM ? TSVC_NOMEM : st == TASK_ERR_TOOBIG ? TSVC_TOOBIG
                                                                             : TSVC_INVALID,
                "%s", task_strerror(st));
}

static int local_create(struct tsvc *svc, struct tsvc_call *call, const struct tsvc_spec *s) {
    struct tsvc_local *l = local_of(svc);
    call_begin(l, call);
    int st;
    const char *why = tsvc_spec_error(s, &st);
    if (why)
        return fail(call, st, "%s", why);
    struct queue_engine *qe = qsvc_engine(l->queues);
    struct queue *q = qe ? queue_find(qe, s->queue, s->queue_len) : NULL;
    if (!q)
        return fail(call, TSVC_INVALID, "queue: no queue named '%.*s' (create it first)",
                    (int)s->queue_len, s->queue);
    if (s->payload_len > queue_settings_of(q)->max_payload)
        return fail(call, TSVC_TOOBIG, "payload: %zu bytes is over the queue's max_payload of %u",
                    s->payload_len, (unsigned)queue_settings_of(q)->max_payload);
    struct task_spec spec = {.kind = s->kind,
                             .every_ms = s->every_ms,
                             .count = s->count,
                             .jitter_ms = s->jitter_ms,
                             .full_policy = s->full_policy,
                             .missed_policy = s->missed_policy};
    if (s->kind == TSVC_AFTER)
        spec.at = (int64_t)l->srv->wheel.now + s->after_ms;
    else if (s->kind == TSVC_AT)
        spec.at = s->at_ms;
    else if (s->kind == TSVC_CRON)
        spec.cron = s->cron;
    struct buf blob = BUF_INIT;
    if (action_encode(&blob, s)) {
        buf_free(&blob);
        return fail(call, TSVC_NOMEM, "out of memory");
    }
    spec.action = buf_start(&blob);
    spec.action_len = blob.len;
    struct task *t = NULL;
    if ((why = task_spec_error(l->eng, &spec)))
        st = fail(call, TSVC_INVALID, "%s", why);
    else if ((st = writable(l, call)) == TSVC_OK && (st = task_create(l->eng, &spec, &t)) != TASK_OK)
        st = create_failed(l, call, st, task_cost(spec.kind, spec.action_len));
    buf_free(&blob);
    if (!t)
        return st;
    timer_of(l, t, &call->timer, call->text);
    return durable(l, call);
}

static int local_get(struct tsvc *svc, struct tsvc_call *call, uint64_t id, uint64_t wait_ms) {
    struct tsvc_local *l = local_of(svc);
    call_begin(l, call);
    struct task *t = task_find(l->eng, id);
    if (!t)
        return fail(call, TSVC_NOTFOUND, "no timer %" PRIu64, id);
    if (wait_ms > l->srv->cfg->queue_max_wait_ms)
        wait_ms = l->srv->cfg->queue_max_wait_ms;
    if (wait_ms == 0 || task_await(t, &call->waiter) != TASK_WAIT) {
        timer_of(l, t, &call->timer, call->text);
        return TSVC_OK;
    }
    list_push(&l->waiting, &call->link);
    server_timer_in(l->srv, &call->deadline, wait_ms);
    return TSVC_PENDING;
}

/* The awaited timer finished (fired its last tick, failed, was cancelled). */
static void on_wake(struct task_waiter *w, int status) {
    struct tsvc_call *call = w->arg;
    struct tsvc_local *l = local_of(call->svc);
    timer_cancel(&l->srv->wheel, &call->deadline);
    if (status == TASK_ERR_DELETED) {
        snprintf(call->why, sizeof call->why, "the server is shutting down");
        complete_later(call, TSVC_DRAINING);
        return;
    }
    timer_of(l, w->task, &call->timer, call->text);
    complete_later(call, TSVC_OK);
}

static void on_deadline(struct timer *t) {
    struct tsvc_call *call = container_of(t, struct tsvc_call, deadline);
    task_waiter_cancel(&call->waiter);
    complete_later(call, TSVC_TIMEOUT);
}

static int local_list(struct tsvc *svc, struct tsvc_call *call, uint64_t after,
                      struct tsvc_timer *out, size_t max) {
    struct tsvc_local *l = local_of(svc);
    call_begin(l, call);
    struct task *ts[LIST_CHUNK];
    size_t n = 0, got;
    do {
        size_t want = max - n < LIST_CHUNK ? max - n : LIST_CHUNK;
        got = task_list(l->eng, after, ts, want);
        for (size_t k = 0; k < got; k++)
            timer_of(l, ts[k], &out[n++], NULL);
        if (got)
            after = task_id(ts[got - 1]);
        if (got < want)
            break;
    } while (n < max);
    call->nlisted = n;
    call->next_after = n == max && n ? out[n - 1].id : 0;
    return TSVC_OK;
}

static int local_cancel(struct tsvc *svc, struct tsvc_call *call, uint64_t id) {
    struct tsvc_local *l = local_of(svc);
    call_begin(l, call);
    struct task *t = task_find(l->eng, id);
    if (!t)
        return fail(call, TSVC_NOTFOUND, "no timer %" PRIu64, id);
    if (writable(l, call) != TSVC_OK)
        return call->status;
    call->cancelled = task_cancel(t);
    timer_of(l, t, &call->timer, call->text);
    return durable(l, call);
}

static void local_call_cancel(struct tsvc_call *call) {
    struct tsvc_local *l = local_of(call->svc);
    store_wait_cancel(&call->durable);
    task_waiter_cancel(&call->waiter);
    timer_cancel(&l->srv->wheel, &call->deadline);
    list_unlink(&call->link);
}

static const struct tsvc_ops local_ops = {
    .create = local_create,
    .get = local_get,
    .list = local_list,
    .cancel = local_cancel,
    .call_cancel = local_call_cancel,
};

/* ---- the engine's hooks ------------------------------------------------------------ */

/* The action: put the payload into the queue. */
static int on_fire(void *ctx, struct task *t, int64_t tick) {
    struct tsvc_local *l = ctx;
    (void)tick;
    /* Loop lateness: the wheel's time inside a firing is the millisecond the
     * timer was armed for (jitter, retries and catch-ups included), the real
     * clock says when it actually ran. */
    int64_t late = (int64_t)clock_now_us() - (int64_t)l->srv->wheel.now * 1000;
    if (late < 0)
        late = 0;
    size_t b = 0;
    while (b < NLATE && (uint64_t)late > late_bounds[b])
        b++;
    l->late[b]++;
    l->late_sum_us += (uint64_t)late;
    size_t n;
    const void *blob = task_action(t, &n);
    struct action a;
    struct queue_engine *qe = qsvc_engine(l->queues);
    if (action_parse(blob, n, &a) < 0 || !qe)
        return QUEUE_ERR_INVALID;
    struct queue *q = queue_find(qe, a.queue, a.queue_len);
    if (!q)
        return QUEUE_ERR_NOTFOUND; /* permanent: the timer fails */
    struct queue_put put = {a.payload, a.len, 0, 0, NULL, 0};
    uint64_t id;
    int st = queue_put(q, &put, &id, NULL);
    if (st == QUEUE_OK)
        return TASK_FIRE_OK;
    if (st == QUEUE_ERR_FULL || st == QUEUE_ERR_MEMORY)
        return TASK_FIRE_FULL;
    if (st == QUEUE_ERR_NOMEM)
        return FIRE_TRANSIENT;
    return st; /* shut down, payload too big for the queue now, ...: permanent */
}

/* A finished timer keeps its queue name and cron text (GET shows them),
 * not its payload. */
static size_t action_keep(void *ctx, const void *blob, size_t n) {
    (void)ctx;
    struct action a;
    return action_parse(blob, n, &a) < 0 ? n : n - a.len;
}

static void on_task_event(void *ctx, const struct task_event *ev) {
    struct tsvc_local *l = ctx;
    if (ev->type == TASK_EV_FAIL) /* an operator wants to hear of it (issue 16) */
        log_warnx("timer %" PRIu64 " failed after %u fires: %s", ev->id, ev->fires,
                  ev->last_error ? error_text(ev->last_error) : "no reason recorded");
    if (!l->st)
        return;
    if (tj_encode(store_batch(l->st), ev, wall_minus_wheel(l)) < 0) {
        log_error("journal: out of memory encoding a timer record; it is lost");
        return;
    }
    store_added(l->st);
}

/* ---- the store's client ------------------------------------------------------------------ */

static int replay_record(void *arg, uint8_t type, const char *payload, size_t len, uint64_t off) {
    struct tsvc_local *l = arg;
    uint64_t id;
    if (type == TJ_TYPE_NEXT_ID && store_decode_u64(payload, len, &id) == 0) {
        task_engine_set_next_id(l->eng, id);
        l->replayed++;
        return 1;
    }
    if (type < TJ_TYPE_BASE || type > TJ_TYPE_LAST)
        return 0;
    struct task_event ev;
    struct task_spec spec;
    if (tj_decode(type, payload, len, wall_minus_wheel(l), &ev, &spec) < 0) {
        log_error("journal: timer record at offset %" PRIu64 " is malformed", off);
        return -1;
    }
    int st = task_engine_replay(l->eng, &ev);
    if (st != TASK_OK && st != TASK_ERR_NOTFOUND && st != TASK_ERR_EXISTS) {
        log_error("journal: timer record at offset %" PRIu64 " cannot be applied: %s", off,
                  task_strerror(st));
        return -1;
    }
    l->replayed++;
    return 1;
}

/* Every task as CREATE (with its counters and pending tick) + its final event. */
static int snapshot(void *arg, struct buf *out) {
    struct tsvc_local *l = arg;
    int64_t off = wall_minus_wheel(l);
    uint64_t after = 0;
    struct task *ts[256];
    size_t got;
    while ((got = task_list(l->eng, after, ts, 256)) > 0) {
        for (size_t k = 0; k < got; k++) {
            struct task_info i;
            task_info(ts[k], &i);
            struct task_spec spec = {.kind = i.kind,
                                     .every_ms = i.every_ms,
                                     .count = i.count,
                                     .jitter_ms = i.jitter_ms,
                                     .full_policy = i.full_policy,
                                     .missed_policy = i.missed_policy,
                                     .action = i.action,
                                     .action_len = i.action_len};
            if (i.cron)
                spec.cron = *i.cron;
            struct task_event ev = {.type = TASK_EV_CREATE,
                                    .id = i.id,
                                    .now = (int64_t)l->srv->wheel.now,
                                    .tick = i.state == TASK_SCHEDULED ? i.tick : i.finished,
                                    .fires = i.fires,
                                    .skips = i.skips,
                                    .last_error = i.last_error,
                                    .spec = &spec};
            if (tj_encode(out, &ev, off) < 0)
                return -1;
            if (i.state != TASK_SCHEDULED) {
                ev.type = i.state == TASK_CANCELLED   ? TASK_EV_CANCEL
                          : i.state == TASK_COMPLETED ? TASK_EV_COMPLETE
                                                      : TASK_EV_FAIL;
                ev.now = i.finished;
                ev.spec = NULL;
                if (tj_encode(out, &ev, off) < 0)
                    return -1;
            }
            after = i.id;
        }
        if (got < 256)
            break;
    }
    struct task_engine_stats es;
    task_engine_stats(l->eng, &es);
    return store_encode_u64(out, TJ_TYPE_NEXT_ID, es.next_id);
}

static uint64_t live_bytes(void *arg) {
    struct tsvc_local *l = arg;
    struct task_engine_stats es;
    task_engine_stats(l->eng, &es);
    return (uint64_t)es.tasks * 160; /* about a record per task */
}

/* ---- the service --------------------------------------------------------------------- */

struct tsvc *tsvc_new(struct server *s, struct store *store, struct qsvc *queues) {
    struct tsvc_local *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->base.ops = &local_ops;
    l->srv = s;
    l->store = store;
    l->queues = queues;
    list_init(&l->waiting);
    list_init(&l->ready);
    struct task_engine_config cfg;
    task_engine_config_default(&cfg);
    cfg.fire = on_fire;
    cfg.fire_ctx = l;
    cfg.on_event = on_task_event;
    cfg.event_ctx = l;
    cfg.max_action = ACTION_MAX;
    cfg.max_tasks = s->cfg->timers_max;
    cfg.action_keep = action_keep;
    /* Timers count against the queues' memory limit, in one budget. */
    struct queue_engine *qe = qsvc_engine(queues);
    cfg.budget = qe ? queue_engine_budget(qe) : NULL;
    cfg.mem_limit = s->cfg->queue_mem_limit;
    cfg.wall_minus_wheel = wall_minus_wheel_now(l);
    cfg.seed = clock_wall_ms() ^ (uint64_t)(uintptr_t)l;
    l->eng = task_engine_new(&s->wheel, &cfg);
    l->ready_ev = event_new(s->base, -1, 0, on_ready, l);
    struct store_client client = {replay_record, snapshot, live_bytes, l};
    if (!l->eng || !l->ready_ev || store_add_client(store, &client) < 0) {
        log_error("out of memory creating the timer engine");
        if (l->ready_ev)
            event_free(l->ready_ev);
        task_engine_free(l->eng);
        free(l);
        return NULL;
    }
    return &l->base;
}

static int tsvc_start(void *ctx) {
    struct tsvc_local *l = local_of(ctx);
    l->st = l->store;
    task_engine_set_wall_offset(l->eng, wall_minus_wheel_now(l));
    size_t armed = task_engine_resume(l->eng);
    struct task_engine_stats es;
    task_engine_stats(l->eng, &es);
    log_info("timers: %zu after replay, %zu scheduled", es.tasks, armed);
    return 0;
}

static void tsvc_reload(void *ctx) {
    struct tsvc_local *l = local_of(ctx);
    task_engine_set_limits(l->eng, l->srv->cfg->timers_max, l->srv->cfg->queue_mem_limit);
}

/* Runs from the signal's event, so the awaits are answered at once, before
 * the server closes the connections that are idle by then. */
static void tsvc_drain(void *ctx) {
    struct tsvc_local *l = local_of(ctx);
    struct list *n;
    while ((n = list_first(&l->waiting))) {
        struct tsvc_call *call = container_of(n, struct tsvc_call, link);
        task_waiter_cancel(&call->waiter);
        timer_cancel(&l->srv->wheel, &call->deadline);
        snprintf(call->why, sizeof call->why, "the server is shutting down");
        complete_later(call, TSVC_DRAINING);
    }
    run_ready(l);
}

static void tsvc_close(void *ctx) {
    struct tsvc_local *l = local_of(ctx);
    l->st = NULL;
    task_engine_free(l->eng);
    event_free(l->ready_ev);
    free(l);
}

static int tsvc_metrics(void *ctx, struct buf *o) {
    static const char *const state_names[] = {"scheduled", "completed", "cancelled", "failed"};
    struct tsvc_local *l = local_of(ctx);
    struct task_engine_stats es;
    task_engine_stats(l->eng, &es);
    int r = buf_appends(o, "# HELP awaitd_timers Timers, by state.\n# TYPE awaitd_timers gauge\n");
    for (int i = 0; i < 4; i++)
        r |= buf_appendf(o, "awaitd_timers{state=\"%s\"} %zu\n", state_names[i], es.by_state[i]);
    /* Prometheus histogram of firing lateness, in seconds (le is inclusive, as ours). */
    r |= metrics_histogram(o, "awaitd_timer_lateness_seconds",
                           "Firing time minus the scheduled time.", NULL, late_bounds, NLATE, 6,
                           l->late, l->late_sum_us);
    r |= buf_appendf(o,
                     "# HELP awaitd_timer_fires_total Timer ticks delivered (fired).\n"
                     "# TYPE awaitd_timer_fires_total counter\nawaitd_timer_fires_total %" PRIu64
                     "\n# HELP awaitd_timer_skips_total Timer ticks skipped (target full or failing, or missed).\n"
                     "# TYPE awaitd_timer_skips_total counter\nawaitd_timer_skips_total %" PRIu64
                     "\n",
                     es.total_fires, es.total_skips);
    r |= buf_appendf(o,
                     "# HELP awaitd_timer_memory_bytes Bytes timers are charged against "
                     "[queues] mem_limit.\n# TYPE awaitd_timer_memory_bytes gauge\n"
                     "awaitd_timer_memory_bytes %zu\n",
                     es.mem_used);
    return r ? -1 : 0;
}

const struct service_ops tsvc_service = {
    .name = "timers",
    .start = tsvc_start,
    .reload = tsvc_reload,
    .drain = tsvc_drain,
    .close = tsvc_close,
    .metrics = tsvc_metrics,
};
