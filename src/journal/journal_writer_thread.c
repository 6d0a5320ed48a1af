/*
 * journal_writer_thread: the writer thread. It takes everything queued as
 * one batch (group commit), writes it with one pwrite (and in always mode
 * one fdatasync), and queues the completions for the loop; it runs batch
 * mode's periodic fdatasync, and while unhealthy answers submits at once
 * and retries by rewriting every unconfirmed byte from memory (never an
 * fsync alone, journal_writer.h says why). Between batches it switches a
 * finished compaction in (journal_compact.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal_writer_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "journal/journal.h"

static void wait_until(struct jw *jw, uint64_t deadline_ms) {
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&jw->cond, &jw->mu, &ts);
}

/* Queue a completion; wake the loop if the list was empty (else it is awake). */
void jw_push_done_locked(struct jw *jw, jw_done_fn cb, void *arg, int status, int counted) {
    jw->done[jw->ndone++] = (struct jw_req){cb, arg, status, counted};
    uint64_t one = 1;
    while (jw->ndone == 1 && write(jw->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

void jw_set_unhealthy_locked(struct jw *jw, int e, const char *what) {
    if (!jw->err)
        log_warnx("journal %s: %s failed: %s; puts and acks get %d until it recovers", jw->path,
                  what, strerror(e), jw_status_of(e) == JW_ENOSPC ? 507 : 503);
    jw->err = e;
    atomic_store_explicit(&jw->err_pub, e, memory_order_release);
    jw->wst.errors++;
    jw->wst.last_errno = e;
    jw->wst.healthy = 0;
    jw->retry_at = clock_now_ms() + jw->opt.retry_ms;
    jw_publish_locked(jw);
}

static int sync_now(struct jw *jw) {
    if (jw->opt.fdatasync(jw->fd) < 0)
        return -1;
    jw->wst.fsyncs++;
    jw->dirty = 0;
    jw->sync_due = 0;
    jw_settle(jw);
    return 0;
}

/* sync_now without holding the lock; a failure makes the journal unhealthy. */
static void sync_locked(struct jw *jw) {
    pthread_mutex_unlock(&jw->mu);
    int rc = sync_now(jw), e = errno;
    pthread_mutex_lock(&jw->mu);
    if (rc < 0)
        jw_set_unhealthy_locked(jw, e, "fdatasync");
    jw_publish_locked(jw);
}

/*
 * Move everything queued into the writer's hands. -1 (nothing taken) when
 * unsynced cannot grow; the caller syncs, which empties it, and retries.
 */
static int take_locked(struct jw *jw) {
    size_t at = jw->unsynced.len;
    if (at == 0) {
        struct buf t = jw->unsynced; /* always mode: O(1), no copy */
        jw->unsynced = jw->qbytes;
        jw->qbytes = t;
    } else if (buf_append(&jw->unsynced, buf_start(&jw->qbytes), jw->qbytes.len) < 0) {
        return -1;
    }
    buf_reset(&jw->qbytes);
    /* The batch header enqueue reserved: its sequence number and length. */
    journal_batch_header((unsigned char *)buf_start(&jw->unsynced) + at, ++jw->seq,
                         jw->unsynced.len - at - JOURNAL_BATCH_HEADER);
    if (jw->cstate == C_RUNNING || jw->cstate == C_READY) {
        /* Records after the sequence point also go to the new file (as
         * records: the switch frames them as one batch there). */
        size_t from = at + (jw->cpre > JOURNAL_BATCH_HEADER ? jw->cpre : JOURNAL_BATCH_HEADER),
               to = jw->unsynced.len;
        if (to > from && buf_append(&jw->tail, buf_start(&jw->unsynced) + from, to - from) < 0)
            jw->tail_failed = 1;
        jw->cpre = 0;
    }
    jw->wst.bytes_since_compact += jw->unsynced.len - at;
    struct jw_req *t = jw->wreqs;
    jw->wreqs = jw->qreqs;
    jw->wn = jw->qn;
    jw->qreqs = t;
    jw->qn = 0;
    return 0;
}

/* Write the taken batch (and fsync in always mode) unlocked, then complete it. */
static void process_batch_locked(struct jw *jw) {
    pthread_mutex_unlock(&jw->mu);
    int rc = jw_write_pending(jw), e = errno;
    const char *what = "write";
    if (rc == 0 && jw->opt.mode == JW_FSYNC_ALWAYS) {
        rc = sync_now(jw);
        e = errno;
        what = "fdatasync";
    } else if (rc == 0 && jw->opt.mode == JW_FSYNC_OFF) {
        jw_settle(jw); /* nothing to confirm: the kernel decides */
    } else if (rc == 0 && !jw->sync_due) {
        jw->sync_due = clock_now_ms() + jw->opt.interval_ms;
    }
    pthread_mutex_lock(&jw->mu);
    jw->wst.batches++;
    if (rc < 0)
        jw_set_unhealthy_locked(jw, e, what);
    for (size_t i = 0; i < jw->wn; i++)
        jw_push_done_locked(jw, jw->wreqs[i].cb, jw->wreqs[i].arg, rc < 0 ? jw_status_of(e) : JW_OK,
                            1);
    jw->wst.records += rc < 0 ? 0 : jw->wn;
    jw->wst.avg_batch = (double)jw->wst.records / (double)jw->wst.batches;
    jw->wn = 0;
    jw_publish_locked(jw);
}

/*
 * Unhealthy: cut the file back to the last confirmed offset and rewrite
 * everything after it from memory, then fdatasync. Re-fsyncing alone could
 * "succeed" over pages the kernel dropped after the failed fsync.
 */
static int recover_locked(struct jw *jw) {
    pthread_mutex_unlock(&jw->mu);
    size_t n = jw->unsynced.len;
    const char *what = "directory fsync";
    int rc = -1;
    if (jw->need_dirsync && journal_fsync_dir(jw->path) < 0)
        goto out;
    jw->need_dirsync = 0;
    what = "ftruncate";
    if (jw->opt.ftruncate(jw->fd, (off_t)jw->base_off) < 0)
        goto out;
    jw->written = 0;
    what = "rewrite";
    if (jw_write_pending(jw) < 0)
        goto out;
    what = "fdatasync";
    rc = sync_now(jw);
out:;
    int e = errno;
    pthread_mutex_lock(&jw->mu);
    if (rc < 0) {
        jw_set_unhealthy_locked(jw, e, what);
        return -1;
    }
    jw->err = 0;
    atomic_store_explicit(&jw->err_pub, 0, memory_order_release);
    jw->wst.healthy = 1;
    jw_publish_locked(jw);
    log_info("journal %s: healthy again (rewrote %zu unconfirmed bytes)", jw->path, n);
    return 0;
}
void *jw_writer_main(void *p) {
    struct jw *jw = p;
    pthread_mutex_lock(&jw->mu);
    jw->parked = 0;
    for (;;) {
        uint64_t now = clock_now_ms();
        if (jw->cstate == C_FAILED) {
            jw_compact_finish_locked(jw);
        } else if (jw->err && jw->qn) {
            /* Unhealthy: answer queued requests at once; their bytes wait in qbytes. */
            for (size_t i = 0; i < jw->qn; i++)
                jw_push_done_locked(jw, jw->qreqs[i].cb, jw->qreqs[i].arg, jw_status_of(jw->err),
                                    1);
            jw->qn = 0;
        } else if (jw->err && (jw->stopping || now >= jw->retry_at)) {
            if (recover_locked(jw) < 0 && jw->stopping)
                break;
        } else if (jw->err) {
            wait_until(jw, jw->retry_at);
        } else if (jw->qn || jw->qbytes.len) {
            if (take_locked(jw) == 0)
                process_batch_locked(jw);
            else
                sync_locked(jw); /* ENOMEM: empty unsynced, then take again */
        } else if (jw->cstate == C_READY && !jw->stopping && jw->cpre == 0) {
            jw_compact_finish_locked(jw);
        } else if (jw->unsynced.len && (jw->stopping || now >= jw->sync_due)) {
            sync_locked(jw); /* batch mode's periodic fdatasync */
        } else if (jw->stopping) {
            break;
        } else if (jw->unsynced.len) {
            wait_until(jw, jw->sync_due);
        } else {
            jw->parked = 1;
            pthread_cond_wait(&jw->cond, &jw->mu);
            jw->parked = 0;
        }
    }
    /* Off mode (and anything written since): jw_close promises an fdatasync. */
    if (!jw->err && jw->dirty)
        sync_locked(jw);
    jw_publish_locked(jw);
    pthread_mutex_unlock(&jw->mu);
    return NULL;
}
