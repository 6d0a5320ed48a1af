#include "svc/store.h"

#include "core/buf.h"
#include "core/config.h"
#include "net/service.h"
#include "journal/journal.h"
#include "journal/journal_writer.h"
#include "core/le.h"
#include "core/log.h"
#include "net/server.h"
#include "core/list.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* How often to check whether the journal is worth compacting. */
#define COMPACT_CHECK_MS 1000

struct store {
    struct server *srv;
    struct jw *jw;
    int repair;              /* -r: cut a corrupt journal at start */
    int mode;                /* enum jw_mode */
    struct buf batch;        /* encoded records not yet handed to the writer */
    uint64_t next_seq;       /* sequence number the current batch will carry */
    struct event flush_ev;   /* hands the batch over at the end of the loop turn */
    int flush_armed;
    struct list waits;       /* struct store_wait, oldest first */
    struct store_client clients[STORE_MAX_CLIENTS];
    size_t nclients;
    struct timer compact_t;
    uint64_t replayed;
    uint64_t refused;        /* batches the writer would not take */
};

struct batch_ctx {
    struct store *st;
    uint64_t seq;
};

static int status_of(int jw_status) {
    return jw_status == JW_OK ? STORE_OK : jw_status == JW_ENOSPC ? STORE_NOSPACE : STORE_UNAVAILABLE;
}

static void batch_done(struct store *st, uint64_t seq, int status) {
    struct list *n;
    while ((n = list_first(&st->waits))) {
        struct store_wait *w = container_of(n, struct store_wait, node);
        if (w->seq > seq)
            break;
        list_unlink(n);
        w->done(w->arg, status_of(status), status == JW_OK ? NULL : jw_status_str(status));
    }
}

static void on_batch_complete(void *arg, int status) {
    struct batch_ctx *b = arg;
    struct store *st = b->st;
    uint64_t seq = b->seq;
    free(b);
    batch_done(st, seq, status);
    server_timers_sync(st->srv);
}

void store_flush(struct store *st) {
    if (st->batch.len == 0)
        return;
    uint64_t seq = st->next_seq++;
    struct batch_ctx *b = NULL;
    /* fsync = off: nothing waits for the write, so the loop writes the
     * batch itself when the writer thread is idle (jw_write_now), instead of
     * waking it and taking its completion back (issue 19). */
    int rc = st->mode == JW_FSYNC_OFF ? jw_write_now(st->jw, buf_start(&st->batch), st->batch.len)
                                      : JW_BUSY;
    if (rc == JW_BUSY && (b = malloc(sizeof *b)) == NULL)
        rc = JW_NOMEM;
    if (b) {
        b->st = st;
        b->seq = seq;
        rc = jw_submit(st->jw, buf_start(&st->batch), st->batch.len, on_batch_complete, b);
        if (rc != JW_OK)
            free(b);
    }
    buf_reset(&st->batch);
    if (rc != JW_OK) {
        st->refused++;
        log_error("journal: a batch of records could not be queued (%s); the changes stay in "
                  "memory but are not durable",
                  jw_status_str(rc));
        batch_done(st, seq, rc);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
    struct store *st = arg;
    st->flush_armed = 0;
    store_flush(st);
}

struct buf *store_batch(struct store *st) {
    return &st->batch;
}

void store_added(struct store *st) {
    if (!st->flush_armed && st->batch.len > 0) {
        st->flush_armed = 1;
        event_active(&st->flush_ev, EV_TIMEOUT, 0);
    }
}

int store_check(struct store *st, char *why, size_t len) {
    int e = jw_health(st->jw); /* no lock: every change asks */
    if (e == 0 && jw_backlogged(st->jw)) {
        /* Refused before the change is made: a batch the writer refused
         * would leave it in memory only (never journaled, in off mode with
         * a 201 already sent). */
        snprintf(why, len, "the journal's writer is behind the disk; retry later");
        return STORE_UNAVAILABLE;
    }
    if (e == 0)
        return STORE_OK;
    if (e == ENOSPC || e == EDQUOT) {
        snprintf(why, len, "the journal's disk is full; retry later");
        return STORE_NOSPACE;
    }
    snprintf(why, len, "the journal cannot write (%s); retry later", strerror(e));
    return STORE_UNAVAILABLE;
}

int store_when_durable(struct store *st, struct store_wait *w, store_done_fn done, void *arg) {
    if (st->mode == JW_FSYNC_OFF || st->batch.len == 0)
        return 0;
    w->seq = st->next_seq;
    w->done = done;
    w->arg = arg;
    list_push(&st->waits, &w->node);
    return 1;
}

void store_wait_cancel(struct store_wait *w) {
    if (w->node.next && list_linked(&w->node))
        list_unlink(&w->node);
}

/* ---- compaction ---------------------------------------------------------------- */

static int snapshot_all(void *arg, struct buf *out) {
    struct store *st = arg;
    for (size_t i = 0; i < st->nclients; i++)
        if (st->clients[i].snapshot && st->clients[i].snapshot(st->clients[i].ctx, out) < 0)
            return -1;
    return 0;
}

static void on_compacted(void *arg, int status) {
    if (status == JW_OK)
        log_info("journal compacted");
    else
        log_warnx("journal compaction failed (%s); the old journal goes on", jw_status_str(status));
}

/* Every second: rewrite the journal once it is past [journal] compact_min and
 * more than four times the live state's size (mostly acked or dropped records). */
static void on_compact_check(struct timer *t) {
    struct store *st = container_of(t, struct store, compact_t);
    struct jw_stats js;
    jw_stats(st->jw, &js);
    uint64_t live = 0;
    for (size_t i = 0; i < st->nclients; i++)
        if (st->clients[i].live_bytes)
            live += st->clients[i].live_bytes(st->clients[i].ctx);
    if (!js.compacting && js.healthy && js.file_bytes > st->srv->cfg->journal_compact_min &&
        js.file_bytes > 4 * live) {
        store_flush(st); /* the snapshot must come after every record handed over */
        int rc = jw_compact(st->jw, snapshot_all, on_compacted, st);
        if (rc != JW_OK)
            log_warnx("journal compaction not started: %s", jw_status_str(rc));
        else
            log_info("journal is %" PRIu64 " bytes for %" PRIu64 " bytes of live state: compacting",
                     js.file_bytes, live);
    }
    server_timer_in(st->srv, &st->compact_t, COMPACT_CHECK_MS);
}

/* ---- open, close, metrics --------------------------------------------------------- */

static int replay_record(void *arg, uint8_t type, const char *payload, size_t len, uint64_t off) {
    struct store *st = arg;
    for (size_t i = 0; i < st->nclients; i++) {
        int r = st->clients[i].replay(st->clients[i].ctx, type, payload, len, off);
        if (r < 0)
            return -1;
        if (r > 0) {
            st->replayed++;
            return 0;
        }
    }
    log_error("journal: record at offset %" PRIu64 " has an unknown type %u", off, type);
    return -1;
}

static int mkdir_parent(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

struct store *store_new(struct server *s, int repair) {
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->srv = s;
    st->repair = repair;
    st->next_seq = 1;
    list_init(&st->waits);
    event_assign(&st->flush_ev, s->base, -1, 0, on_flush, st);
    timer_init(&st->compact_t, on_compact_check);
    return st;
}

int store_add_client(struct store *st, const struct store_client *client) {
    if (st->nclients == STORE_MAX_CLIENTS)
        return -1;
    st->clients[st->nclients++] = *client;
    return 0;
}

static int store_start(void *ctx) {
    struct store *st = ctx;
    struct server *s = st->srv;
    struct config *cfg = s->cfg;
    char err[512];
    if (journal_path_check(cfg->journal_path, err, sizeof err) < 0) {
        log_error("%s", err); /* a directory, no permission, a read-only file system */
        return -1;
    }
    if (mkdir_parent(cfg->journal_path) < 0) {
        log_error("journal %s: cannot create its directory: %s", cfg->journal_path, strerror(errno));
        return -1;
    }
    struct journal_info info;
    int fd = journal_open_replay(cfg->journal_path, replay_record, st, st->repair ? JOURNAL_REPAIR : 0,
                                 &info, err, sizeof err);
    if (fd < 0) {
        log_error("%s", err); /* names the offset, and what -r would do if it can help */
        return -1;
    }
    if (info.header_repaired)
        log_warnx("journal %s: repaired: damaged file header rewritten; the original is kept "
                  "as %s", cfg->journal_path, info.saved_to);
    if (info.truncated)
        log_warnx("journal %s: torn last batch at offset %" PRIu64 " (%s): %" PRIu64
                  " bytes of an unacknowledged write cut, start-up goes on",
                  cfg->journal_path, info.bad_offset, info.reason, info.dropped_bytes);
    if (info.repaired)
        log_warnx("journal %s: repaired: damage at offset %" PRIu64 ", cut at offset %" PRIu64
                  " (%s), %" PRIu64
                  " bytes and %" PRIu64 " good records after the damage dropped; the original "
                  "is kept as %s",
                  cfg->journal_path, info.damaged_at, info.bad_offset, info.reason,
                  info.dropped_bytes, info.dropped_records, info.saved_to);
    if (info.upgraded)
        log_info("journal %s: upgraded from format version 1 to %u (batches)", cfg->journal_path,
                 JOURNAL_VERSION);
    struct jw_options opt;
    jw_options_init(&opt);
    opt.mode = cfg->fsync == FSYNC_ALWAYS  ? JW_FSYNC_ALWAYS
               : cfg->fsync == FSYNC_BATCH ? JW_FSYNC_BATCH
                                           : JW_FSYNC_OFF;
    opt.interval_ms = (unsigned)cfg->fsync_interval_ms;
    st->mode = opt.mode;
    st->jw = jw_open(s->base, cfg->journal_path, fd, info.end, info.last_seq, &opt, err, sizeof err);
    if (!st->jw) {
        log_error("journal %s: %s", cfg->journal_path, err);
        return -1;
    }
    log_info("journal %s: %" PRIu64 " records replayed (fsync %s)", cfg->journal_path,
             st->replayed,
             cfg->fsync == FSYNC_ALWAYS ? "always" : cfg->fsync == FSYNC_BATCH ? "batch" : "off");
    server_timer_in(s, &st->compact_t, COMPACT_CHECK_MS);
    return 0;
}

static void store_close(void *ctx) {
    struct store *st = ctx;
    timer_cancel(&st->srv->wheel, &st->compact_t);
    if (st->jw) {
        store_flush(st);
        event_del(&st->flush_ev);
        if (jw_close(st->jw) < 0)
            log_error("journal: some records could not be made durable at shutdown");
    }
    /* Waits still listed belong to connections already closed. */
    buf_free(&st->batch);
    free(st);
}

static int store_metrics(void *ctx, struct buf *o) {
    struct store *st = ctx;
    if (!st->jw)
        return 0;
    struct jw_stats js;
    jw_stats(st->jw, &js);
    return buf_appendf(o,
                       "# HELP awaitd_journal_records_total Records written to the journal and acknowledged.\n"
                       "# TYPE awaitd_journal_records_total counter\nawaitd_journal_records_total %" PRIu64
                       "\n# HELP awaitd_journal_fsyncs_total Successful fdatasyncs of the journal file."
                       "\n# TYPE awaitd_journal_fsyncs_total counter\nawaitd_journal_fsyncs_total %" PRIu64
                       "\n# HELP awaitd_journal_bytes_total Bytes written to the journal, compaction rewrites included."
                       "\n# TYPE awaitd_journal_bytes_total counter\nawaitd_journal_bytes_total %" PRIu64
                       "\n# HELP awaitd_journal_file_bytes Size of the journal file now."
                       "\n# TYPE awaitd_journal_file_bytes gauge\nawaitd_journal_file_bytes %" PRIu64
                       "\n# HELP awaitd_journal_compactions_total Journal compactions completed."
                       "\n# TYPE awaitd_journal_compactions_total counter\nawaitd_journal_compactions_total %" PRIu64
                       "\n# HELP awaitd_journal_healthy 1 while journal writes and fsyncs succeed, 0 while they fail."
                       "\n# TYPE awaitd_journal_healthy gauge\nawaitd_journal_healthy %d"
                       "\n# HELP awaitd_journal_fork_seconds The loop's pause to fork the last "
                       "compaction's snapshot child.\n# TYPE awaitd_journal_fork_seconds gauge"
                       "\nawaitd_journal_fork_seconds %.6f\n",
                       js.records, js.fsyncs, js.bytes, js.file_bytes, js.compactions, js.healthy,
                       (double)js.last_fork_us / 1e6);
}


const struct service_ops store_service = {
    .name = "journal",
    .start = store_start,
    .close = store_close,
    .metrics = store_metrics,
};

int store_encode_u64(struct buf *out, uint8_t type, uint64_t v) {
    char rec[8], *p = rec;
    le_put(&p, v, 8);
    return journal_encode(out, type, rec, sizeof rec);
}

int store_decode_u64(const char *payload, size_t len, uint64_t *v) {
    if (len != 8)
        return -1;
    struct le_reader r = le_reader(payload, len);
    *v = le_get(&r, 8);
    return 0;
}

