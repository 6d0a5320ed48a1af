/*
 * journal_writer_int: what the journal writer's files share
 * (journal_writer.c, journal_writer_thread.c, journal_compact.c,
 * journal_inline.c): struct jw, the small steps every path takes on the
 * writer's bytes (inline here, as they were in one file), and the
 * functions one file calls in another. Not for use outside those files;
 * journal_writer.h is the contract.
 *
 * Threads and what they own:
 *   loop      jw_submit/jw_compact/deliver; `outstanding` and `ldone`
 *   writer    the fd and everything between base_off and the file's end
 *             (unsynced, written, dirty, seq), the `wst` counters
 *   compactor one per compaction: writes the snapshot to the temp file
 * Everything else is under `mu`. One exception: jw_write_now (off mode)
 * lets the loop thread do the writer's work for one batch, holding `mu`
 * throughout, and only while the writer is parked in its condition wait
 * with nothing queued, nothing unsynced, no compaction and no failure, so
 * the writer cannot run (it needs `mu` to leave the wait) and has nothing
 * of its own in flight. The request arrays are allocated once,
 * with room for max_records + 1 (one compaction completion), and a record
 * counts against max_records from submit until its completion is
 * delivered, so the writer never allocates to complete a request.
 */
#ifndef AWAITD_JOURNAL_WRITER_INT_H
#define AWAITD_JOURNAL_WRITER_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "journal/journal_writer.h"

struct jw_req {
    jw_done_fn cb;
    void *arg;
    int status;
    int counted; /* a submitted record (1) or a compaction completion (0) */
};

enum { C_IDLE, C_RUNNING, C_READY, C_FAILED, C_SWITCHING };

struct jw {
    /* Set by jw_open, then read-only. */
    struct event_base *base;
    struct event *ev;
    int efd;
    char *path;
    struct jw_options opt;
    pthread_t thread;
    struct jw_req *reqs; /* one block for qreqs, wreqs, done and ldone */

    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Under mu. */
    struct buf qbytes;    /* submitted bytes not yet taken by the writer */
    struct jw_req *qreqs; /* their requests */
    size_t qn;
    struct jw_req *done; /* completed, not yet delivered */
    size_t ndone;
    int err; /* 0 healthy, else the errno that made it unhealthy */
    _Atomic int err_pub; /* err, for jw_health without the lock (written under mu) */
    int stopping;
    struct jw_stats st; /* published copy of wst */
    int cstate;         /* C_*: compaction */
    size_t cpre;        /* bytes at the front of qbytes from before the snapshot */
    struct buf tail;    /* records submitted after the snapshot, taken by the writer */
    int tail_failed;    /* ENOMEM growing tail: the compaction is abandoned */
    struct buf snap;    /* the snapshot, until the compactor wrote it (inline mode) */
    pid_t cpid;         /* the child encoding the snapshot, or 0 (inline) */
    int cpipe;          /* the read end of its pipe, or -1 */
    int cfd, cerr;      /* the temp file, and the compactor's errno */
    uint64_t cend;      /* temp file size after header + snapshot */
    int cthread_live;
    pthread_t cthread;
    jw_done_fn cdone;
    void *carg;

    /* Writer thread only. */
    int fd;
    uint64_t base_off;    /* confirmed by fdatasync below here; unsynced[0] goes here */
    struct buf unsynced;  /* every byte after base_off, kept to rewrite after a failure */
    size_t written;       /* bytes of unsynced already written */
    int dirty;            /* written since the last successful fdatasync */
    struct jw_req *wreqs; /* the batch being written */
    size_t wn;
    uint64_t sync_due; /* batch mode: when the next fdatasync is due, 0 = none */
    uint64_t retry_at; /* unhealthy: next recovery attempt */
    int need_dirsync;  /* a compaction's rename is not yet durable */
    uint64_t seq;      /* the last batch's sequence number in the file */
    struct jw_stats wst;
    int parked;        /* under mu: the writer waits in pthread_cond_wait with nothing to do,
                          or has not been started */

    /* Loop thread only. */
    int started; /* the writer thread runs (started at the first thing it has to do) */
    size_t outstanding;
    size_t qbytes_seen;    /* qbytes.len at the last submit or delivery (jw_backlogged) */
    uint64_t inline_after; /* jw_write_now hands batches over until then (ms), 0: none */
    uint64_t last_fork_us;
    struct jw_req *ldone;
};

/* The JW_ status a failure's errno gives: 507 for a full disk, else 503. */
static inline int jw_status_of(int e) {
    return e == ENOSPC || e == EDQUOT ? JW_ENOSPC : e == ENOMEM ? JW_NOMEM : JW_EIO;
}

/* Under mu: the writer's counters become what jw_stats reports. */
static inline void jw_publish_locked(struct jw *jw) {
    int compacting = jw->st.compacting;
    jw->st = jw->wst;
    jw->st.compacting = compacting;
    jw->st.file_bytes = jw->base_off + jw->written;
}

/* pwrite (through the fault-injection seam) all n bytes at off. 0, or -1 with errno. */
static inline int jw_write_all(struct jw *jw, int fd, const char *p, size_t n, uint64_t off) {
    while (n) {
        ssize_t w = jw->opt.pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Write the not-yet-written part of unsynced. */
static inline int jw_write_pending(struct jw *jw) {
    size_t n = jw->unsynced.len - jw->written;
    if (n == 0)
        return 0;
    jw->dirty = 1;
    if (jw_write_all(jw, jw->fd, buf_start(&jw->unsynced) + jw->written, n,
                     jw->base_off + jw->written) < 0)
        return -1;
    jw->written += n;
    jw->wst.bytes += n;
    return 0;
}

/* Bytes up to `written` become confirmed: nothing before base_off is kept. */
static inline void jw_settle(struct jw *jw) {
    jw->base_off += jw->written;
    buf_reset(&jw->unsynced);
    jw->written = 0;
}

/* journal_writer_thread.c */
/* Queue a completion; wake the loop if the list was empty (else it is awake). */
void jw_push_done_locked(struct jw *jw, jw_done_fn cb, void *arg, int status, int counted);
/* Record a failed write, fsync or truncate: refuse submits until recovery. */
void jw_set_unhealthy_locked(struct jw *jw, int e, const char *what);
/* The writer thread's loop (jw_close runs it on its own thread when never started). */
void *jw_writer_main(void *p);

/* journal_compact.c: the writer's switch to the compacted file (or its abandonment). */
void jw_compact_finish_locked(struct jw *jw);

/* journal_writer.c */
/* Start a thread with every signal blocked (they are the loop thread's). */
int jw_start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
/* Start the writer thread if it has not started: 0, or -1 (logged). */
int jw_ensure_writer(struct jw *jw);

#endif
