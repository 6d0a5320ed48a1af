/*
 * journal_writer: the loop thread's side of the journal writer: jw_open,
 * submits into the bounded queue, completions delivered from the eventfd,
 * stats, and jw_close. The design and the caller's contract are in
 * journal_writer.h; struct jw and who owns what in journal_writer_int.h.
 * The writer thread is journal_writer_thread.c, compaction
 * journal_compact.c, off mode's inline write journal_inline.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal_writer.h"
#include "journal/journal_writer_int.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "journal/journal.h"
#include "core/log.h"

void jw_options_init(struct jw_options *o) {
    memset(o, 0, sizeof *o);
    o->mode = JW_FSYNC_ALWAYS;
    o->interval_ms = 50;
    o->max_records = 16384;
    o->max_bytes = 64u << 20;
    o->retry_ms = 1000;
}

const char *jw_status_str(int status) {
    static const char *const names[] = {
        "ok",    "busy", "I/O error", "no space left on device", "out of memory", "invalid record",
        "closed"};
    return status >= 0 && status <= JW_CLOSED ? names[status] : "?";
}

/* Loop thread: run the completions the writer queued. */
static void deliver(struct jw *jw) {
    pthread_mutex_lock(&jw->mu);
    struct jw_req *list = jw->done;
    size_t n = jw->ndone;
    jw->done = jw->ldone;
    jw->ndone = 0;
    jw->ldone = list;
    jw->qbytes_seen = jw->qbytes.len;
    pthread_mutex_unlock(&jw->mu);
    for (size_t i = 0; i < n; i++) {
        if (list[i].counted)
            jw->outstanding--;
        if (list[i].cb)
            list[i].cb(list[i].arg, list[i].status);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
    struct jw *jw = arg;
    uint64_t v;
    while (read(jw->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    deliver(jw);
}

/* Threads inherit the creator's mask: keep signals for the loop thread. */
int jw_start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/*
 * The writer thread starts at the first thing only it can do: a submitted
 * batch, a compaction, a failed inline write to recover from. Until then
 * the process is single-threaded (a default config that never journals, or
 * fsync = off with every batch written inline, never starts it), so the
 * kernel skips the file-table refcount atomics on every recv and send.
 * Unstarted, the writer counts as parked: it has nothing in flight.
 */
int jw_ensure_writer(struct jw *jw) {
    if (jw->started)
        return 0;
    if (jw_start_thread(&jw->thread, jw_writer_main, jw) != 0) {
        log_warnx("journal %s: cannot start the writer thread", jw->path);
        return -1;
    }
    jw->started = 1;
    return 0;
}

static void jw_free(struct jw *jw) {
    if (jw->ev)
        event_free(jw->ev);
    if (jw->efd >= 0)
        close(jw->efd);
    if (jw->fd >= 0)
        close(jw->fd);
    buf_free(&jw->qbytes);
    buf_free(&jw->unsynced);
    buf_free(&jw->tail);
    buf_free(&jw->snap);
    if (jw->cpipe >= 0)
        close(jw->cpipe);
    free(jw->reqs);
    free(jw->path);
    free(jw);
}

struct jw *jw_open(struct event_base *base, const char *path, int fd, uint64_t end,
                   uint64_t last_seq, const struct jw_options *opt, char *err, size_t errlen) {
    struct jw_options def;
    jw_options_init(&def);
    struct jw *jw = calloc(1, sizeof *jw);
    if (!jw) {
        snprintf(err, errlen, "journal %s: out of memory", path);
        close(fd);
        return NULL;
    }
    jw->fd = fd;
    jw->efd = jw->cfd = jw->cpipe = -1;
    jw->opt = opt ? *opt : def;
    /* Zero means "the default", so callers may set only what they need. */
    jw->opt.pwrite = jw->opt.pwrite ? jw->opt.pwrite : pwrite;
    jw->opt.fdatasync = jw->opt.fdatasync ? jw->opt.fdatasync : fdatasync;
    jw->opt.ftruncate = jw->opt.ftruncate ? jw->opt.ftruncate : ftruncate;
    jw->opt.max_records = jw->opt.max_records ? jw->opt.max_records : def.max_records;
    jw->opt.max_bytes = jw->opt.max_bytes ? jw->opt.max_bytes : def.max_bytes;
    jw->opt.retry_ms = jw->opt.retry_ms ? jw->opt.retry_ms : def.retry_ms;
    jw->opt.interval_ms = jw->opt.interval_ms ? jw->opt.interval_ms : def.interval_ms;
    size_t cap = jw->opt.max_records + 1;
    jw->path = strdup(path);
    jw->reqs = calloc(4 * cap, sizeof *jw->reqs);
    if (!jw->path || !jw->reqs) {
        snprintf(err, errlen, "journal %s: out of memory", path);
        goto fail;
    }
    jw->qreqs = jw->reqs; /* the four arrays trade places; they never grow */
    jw->wreqs = jw->reqs + cap;
    jw->done = jw->reqs + 2 * cap;
    jw->ldone = jw->reqs + 3 * cap;
    jw->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    jw->base = base;
    jw->ev = jw->efd < 0 ? NULL : event_new(base, jw->efd, EV_READ | EV_PERSIST, on_wake, jw);
    if (!jw->ev || event_add(jw->ev, NULL) < 0) {
        snprintf(err, errlen, "journal %s: cannot set up the loop's wake-up: %s", path,
                 strerror(errno));
        goto fail;
    }
    jw->base_off = end;
    jw->seq = last_seq;
    jw->wst.healthy = 1;
    jw->wst.file_bytes = end;
    jw->st = jw->wst;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wait_until uses clock_now_ms */
    pthread_cond_init(&jw->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&jw->mu, NULL);
    jw->parked = 1; /* the writer thread starts when it is first needed (jw_ensure_writer) */
    return jw;
fail:
    jw_free(jw);
    return NULL;
}

/* type < 0: rec is already encoded; else encode rec as its payload. */
static int enqueue(struct jw *jw, const void *rec, size_t len, int type, jw_done_fn cb, void *arg) {
    if (jw_ensure_writer(jw) < 0)
        return JW_NOMEM;
    pthread_mutex_lock(&jw->mu);
    int rc = len > jw->opt.max_bytes ? JW_EINVAL
             : jw->stopping          ? JW_CLOSED
             : jw->err               ? jw_status_of(jw->err)
             : jw->outstanding >= jw->opt.max_records || jw->qbytes.len + len > jw->opt.max_bytes
                 ? JW_BUSY
                 : JW_OK;
    /* A new batch starts with room for its header (filled when the writer takes it). */
    static const char room[JOURNAL_BATCH_HEADER];
    if (rc == JW_OK && jw->qbytes.len == 0 && buf_append(&jw->qbytes, room, sizeof room) < 0)
        rc = JW_NOMEM;
    if (rc == JW_OK) {
        int e = type < 0 ? buf_append(&jw->qbytes, rec, len)
                         : journal_encode(&jw->qbytes, (uint8_t)type, rec,
                                          len - JOURNAL_RECORD_OVERHEAD);
        if (e < 0) {
            rc = type >= 0 && errno == EINVAL ? JW_EINVAL : JW_NOMEM;
            if (jw->qbytes.len == JOURNAL_BATCH_HEADER)
                buf_reset(&jw->qbytes); /* no batch of nothing */
        }
        else
            jw->qreqs[jw->qn++] = (struct jw_req){cb, arg, 0, 1};
    }
    jw->qbytes_seen = jw->qbytes.len;
    pthread_mutex_unlock(&jw->mu);
    if (rc == JW_OK) {
        jw->outstanding++;
        pthread_cond_signal(&jw->cond);
    }
    return rc;
}

int jw_submit(struct jw *jw, const void *rec, size_t len, jw_done_fn cb, void *arg) {
    return len == 0 ? JW_EINVAL : enqueue(jw, rec, len, -1, cb, arg);
}

int jw_submit_record(struct jw *jw, uint8_t type, const void *payload, size_t len, jw_done_fn cb,
                     void *arg) {
    return len > JOURNAL_RECORD_MAX
               ? JW_EINVAL
               : enqueue(jw, payload, len + JOURNAL_RECORD_OVERHEAD, type, cb, arg);
}
int jw_backlogged(const struct jw *jw) {
    return jw->outstanding >= jw->opt.max_records / 4 * 3 ||
           jw->qbytes_seen >= jw->opt.max_bytes / 4 * 3;
}

int jw_health(struct jw *jw) {
    return atomic_load_explicit(&jw->err_pub, memory_order_acquire);
}

void jw_stats(struct jw *jw, struct jw_stats *out) {
    pthread_mutex_lock(&jw->mu);
    *out = jw->st;
    pthread_mutex_unlock(&jw->mu);
    out->queued = jw->outstanding;
    out->last_fork_us = jw->last_fork_us;
}

int jw_close(struct jw *jw) {
    pthread_mutex_lock(&jw->mu);
    jw->stopping = 1;
    pthread_cond_broadcast(&jw->cond);
    pthread_mutex_unlock(&jw->mu);
    if (jw->started)
        pthread_join(jw->thread, NULL);
    else
        jw_writer_main(jw); /* never needed until now: its closing fdatasync on this thread */
    if (jw->cthread_live) {
        /* Abandoned: the old journal has every record; the temp file goes. */
        pthread_join(jw->cthread, NULL);
        journal_rewrite_abort(jw->path, jw->cfd);
        jw->cfd = -1;
        jw_push_done_locked(jw, jw->cdone, jw->carg, JW_CLOSED, 0);
    }
    deliver(jw);
    int rc = jw->err || jw->qbytes.len ? -1 : 0;
    if (rc < 0)
        log_warnx("journal %s: closed with %zu bytes not durable: %s", jw->path,
                  jw->unsynced.len + jw->qbytes.len, strerror(jw->err ? jw->err : EIO));
    pthread_cond_destroy(&jw->cond);
    pthread_mutex_destroy(&jw->mu);
    jw_free(jw);
    return rc;
}
