/*
 * journal_writer: the writer thread, group commit, completions through an
 * eventfd, failure recovery and compaction. The design and the caller's
 * contract are in journal_writer.h.
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
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal_writer.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "journal/journal.h"
#include "core/log.h"

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

static int status_of(int e) {
    return e == ENOSPC || e == EDQUOT ? JW_ENOSPC : e == ENOMEM ? JW_NOMEM : JW_EIO;
}

static void wait_until(struct jw *jw, uint64_t deadline_ms) {
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&jw->cond, &jw->mu, &ts);
}

static void publish_locked(struct jw *jw) {
    int compacting = jw->st.compacting;
    jw->st = jw->wst;
    jw->st.compacting = compacting;
    jw->st.file_bytes = jw->base_off + jw->written;
}

/* Queue a completion; wake the loop if the list was empty (else it is awake). */
static void push_done_locked(struct jw *jw, jw_done_fn cb, void *arg, int status, int counted) {
    jw->done[jw->ndone++] = (struct jw_req){cb, arg, status, counted};
    uint64_t one = 1;
    while (jw->ndone == 1 && write(jw->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void set_unhealthy_locked(struct jw *jw, int e, const char *what) {
    if (!jw->err)
        log_warnx("journal %s: %s failed: %s; puts and acks get %d until it recovers", jw->path,
                  what, strerror(e), status_of(e) == JW_ENOSPC ? 507 : 503);
    jw->err = e;
    atomic_store_explicit(&jw->err_pub, e, memory_order_release);
    jw->wst.errors++;
    jw->wst.last_errno = e;
    jw->wst.healthy = 0;
    jw->retry_at = clock_now_ms() + jw->opt.retry_ms;
    publish_locked(jw);
}

static int write_all(struct jw *jw, int fd, const char *p, size_t n, uint64_t off) {
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
static int write_pending(struct jw *jw) {
    size_t n = jw->unsynced.len - jw->written;
    if (n == 0)
        return 0;
    jw->dirty = 1;
    if (write_all(jw, jw->fd, buf_start(&jw->unsynced) + jw->written, n,
                  jw->base_off + jw->written) < 0)
        return -1;
    jw->written += n;
    jw->wst.bytes += n;
    return 0;
}

/* Bytes up to `written` become confirmed: nothing before base_off is kept. */
static void settle(struct jw *jw) {
    jw->base_off += jw->written;
    buf_reset(&jw->unsynced);
    jw->written = 0;
}

static int sync_now(struct jw *jw) {
    if (jw->opt.fdatasync(jw->fd) < 0)
        return -1;
    jw->wst.fsyncs++;
    jw->dirty = 0;
    jw->sync_due = 0;
    settle(jw);
    return 0;
}

/* sync_now without holding the lock; a failure makes the journal unhealthy. */
static void sync_locked(struct jw *jw) {
    pthread_mutex_unlock(&jw->mu);
    int rc = sync_now(jw), e = errno;
    pthread_mutex_lock(&jw->mu);
    if (rc < 0)
        set_unhealthy_locked(jw, e, "fdatasync");
    publish_locked(jw);
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
    int rc = write_pending(jw), e = errno;
    const char *what = "write";
    if (rc == 0 && jw->opt.mode == JW_FSYNC_ALWAYS) {
        rc = sync_now(jw);
        e = errno;
        what = "fdatasync";
    } else if (rc == 0 && jw->opt.mode == JW_FSYNC_OFF) {
        settle(jw); /* nothing to confirm: the kernel decides */
    } else if (rc == 0 && !jw->sync_due) {
        jw->sync_due = clock_now_ms() + jw->opt.interval_ms;
    }
    pthread_mutex_lock(&jw->mu);
    jw->wst.batches++;
    if (rc < 0)
        set_unhealthy_locked(jw, e, what);
    for (size_t i = 0; i < jw->wn; i++)
        push_done_locked(jw, jw->wreqs[i].cb, jw->wreqs[i].arg, rc < 0 ? status_of(e) : JW_OK, 1);
    jw->wst.records += rc < 0 ? 0 : jw->wn;
    jw->wst.avg_batch = (double)jw->wst.records / (double)jw->wst.batches;
    jw->wn = 0;
    publish_locked(jw);
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
    if (write_pending(jw) < 0)
        goto out;
    what = "fdatasync";
    rc = sync_now(jw);
out:;
    int e = errno;
    pthread_mutex_lock(&jw->mu);
    if (rc < 0) {
        set_unhealthy_locked(jw, e, what);
        return -1;
    }
    jw->err = 0;
    atomic_store_explicit(&jw->err_pub, 0, memory_order_release);
    jw->wst.healthy = 1;
    publish_locked(jw);
    log_info("journal %s: healthy again (rewrote %zu unconfirmed bytes)", jw->path, n);
    return 0;
}

/*
 * A write by the loop (jw_write_now) that sleeps in the kernel (a
 * voluntary context switch during it: dirty-page throttling, a file system
 * waiting on its own journal) and takes this long sends the batches of the
 * next JW_INLINE_BACKOFF_MS to the writer thread again, so a slow disk
 * stalls the loop at most once a second. A write that was only preempted
 * does not count: the loop would have lost that time anywhere (on a
 * machine shared with other work, wall time alone fell back several times
 * a second, even at a 5 ms threshold).
 */
#define JW_INLINE_SLOW_US 1000
#define JW_INLINE_BACKOFF_MS 1000

/* Bytes read from the child and written per pwrite (the last may be less). */
#define SNAP_CHUNK (256u << 10)
/* Child exit codes besides 0. */
enum { CHILD_SNAPSHOT_FAILED = 1, CHILD_PIPE_FAILED = 2 };

static int stopping(struct jw *jw) {
    pthread_mutex_lock(&jw->mu);
    int s = jw->stopping;
    pthread_mutex_unlock(&jw->mu);
    return s;
}

/*
 * Reap the snapshot's child (killing it first if asked: the pid stays ours
 * until waitpid, so the kill cannot hit another process) and close its
 * pipe. Returns 0 if it exited 0, else the errno that fails the compaction.
 */
static int child_end(struct jw *jw, int kill_it) {
    if (kill_it)
        kill(jw->cpid, SIGKILL);
    int status = 0;
    while (waitpid(jw->cpid, &status, 0) < 0 && errno == EINTR)
        ;
    close(jw->cpipe);
    jw->cpipe = -1;
    jw->cpid = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (!kill_it)
        log_warnx("journal %s: the snapshot child %s %d", jw->path,
                  WIFEXITED(status) ? "exited with" : "was killed by signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SNAPSHOT_FAILED ? ENOMEM : EIO;
}

/*
 * Copy the child's snapshot from its pipe into fd from *off on. Returns 0
 * or an errno; jw_close (stopping) gives ECANCELED.
 */
static int copy_from_child(struct jw *jw, int fd, uint64_t *off) {
    char *chunk = malloc(SNAP_CHUNK);
    int e = chunk ? 0 : ENOMEM, eof = 0;
    while (!e && !eof) {
        size_t have = 0;
        while (!e && have < SNAP_CHUNK) {
            struct pollfd pfd = {.fd = jw->cpipe, .events = POLLIN};
            if (stopping(jw)) {
                e = ECANCELED;
                break;
            }
            if (poll(&pfd, 1, 100) <= 0)
                continue; /* timeout (look at stopping again) or EINTR */
            ssize_t n = read(jw->cpipe, chunk + have, SNAP_CHUNK - have);
            if (n > 0)
                have += (size_t)n;
            else if (n == 0)
                eof = 1;
            else if (errno != EINTR && errno != EAGAIN)
                e = errno;
            if (eof)
                break;
        }
        if (!e && have) {
            if (write_all(jw, fd, chunk, have, *off) < 0)
                e = errno;
            else
                *off += have;
        }
    }
    free(chunk);
    return e;
}

/* Helper thread: header + snapshot into the temp file, fsynced. */
static void *compact_main(void *p) {
    struct jw *jw = p;
    int e = 0;
    uint64_t end = JOURNAL_HEADER_SIZE + JOURNAL_BATCH_HEADER; /* the writer frames it */
    int fd = journal_rewrite_begin(jw->path, NULL, 0);
    if (fd < 0)
        e = errno;
    if (jw->cpid > 0) {
        if (!e)
            e = copy_from_child(jw, fd, &end);
        int ce = child_end(jw, e != 0);
        if (!e)
            e = ce;
    } else if (!e) {
        if (write_all(jw, fd, buf_start(&jw->snap), jw->snap.len, end) < 0)
            e = errno;
        end += jw->snap.len;
    }
    if (!e && jw->opt.fdatasync(fd) < 0)
        e = errno;
    pthread_mutex_lock(&jw->mu);
    jw->cfd = fd;
    jw->cerr = e;
    jw->cend = end;
    jw->cstate = e ? C_FAILED : C_READY;
    pthread_cond_broadcast(&jw->cond);
    pthread_mutex_unlock(&jw->mu);
    return NULL;
}

/*
 * Writer thread, between batches (nothing in flight, nothing queued from
 * before the snapshot): append the tail to the temp file and swap files.
 * No submit can reach the tail meanwhile: only the writer takes from the
 * queue, and it is here.
 */
static void compact_finish_locked(struct jw *jw) {
    int state = jw->cstate, e = jw->cerr ? jw->cerr : jw->tail_failed ? ENOMEM : 0;
    struct buf tail = jw->tail;
    jw->tail = (struct buf)BUF_INIT;
    jw->cstate = C_SWITCHING;
    pthread_mutex_unlock(&jw->mu);
    pthread_join(jw->cthread, NULL);
    jw->cthread_live = 0;
    buf_free(&jw->snap);

    int renamed = 0;
    char msg[256] = "";
    /* The snapshot is the new file's first batch, the tail its second. */
    uint64_t snap_len = jw->cend - JOURNAL_HEADER_SIZE - JOURNAL_BATCH_HEADER, tail_end = jw->cend;
    unsigned char sh[JOURNAL_BATCH_HEADER], th[JOURNAL_BATCH_HEADER];
    journal_batch_header(sh, jw->seq + 1, snap_len);
    journal_batch_header(th, jw->seq + 2, tail.len);
    if (state == C_READY && !e) {
        if (write_all(jw, jw->cfd, (const char *)sh, sizeof sh, JOURNAL_HEADER_SIZE) < 0 ||
            (tail.len && (write_all(jw, jw->cfd, (const char *)th, sizeof th, jw->cend) < 0 ||
                          write_all(jw, jw->cfd, buf_start(&tail), tail.len,
                                    jw->cend + sizeof th) < 0)) ||
            jw->opt.fdatasync(jw->cfd) < 0)
            e = errno;
        else if (journal_rewrite_commit(jw->path, jw->cfd, &renamed, msg, sizeof msg) < 0)
            e = errno;
    }
    if (tail.len)
        tail_end += sizeof th + tail.len;
    if (renamed) {
        close(jw->fd);
        jw->fd = jw->cfd;
        jw->seq += tail.len ? 2 : 1;
        jw->base_off = tail_end;
        buf_reset(&jw->unsynced); /* all in the new file, fsynced */
        jw->written = 0;
        jw->dirty = 0;
        jw->sync_due = 0;
        jw->wst.compactions++;
        jw->wst.bytes += tail_end;
        jw->wst.bytes_since_compact = tail_end - jw->cend;
        jw->need_dirsync = e != 0;
    } else {
        if (e)
            log_warnx("journal %s: compaction abandoned, the old journal goes on: %s", jw->path,
                      msg[0] ? msg : strerror(e));
        journal_rewrite_abort(jw->path, jw->cfd);
    }
    jw->cfd = -1;
    buf_free(&tail);
    pthread_mutex_lock(&jw->mu);
    if (renamed && e)
        set_unhealthy_locked(jw, e, "directory fsync after compaction");
    jw->cstate = C_IDLE;
    jw->st.compacting = 0;
    push_done_locked(jw, jw->cdone, jw->carg, e ? status_of(e) : JW_OK, 0);
    publish_locked(jw);
}

static void *writer_main(void *p) {
    struct jw *jw = p;
    pthread_mutex_lock(&jw->mu);
    jw->parked = 0;
    for (;;) {
        uint64_t now = clock_now_ms();
        if (jw->cstate == C_FAILED) {
            compact_finish_locked(jw);
        } else if (jw->err && jw->qn) {
            /* Unhealthy: answer queued requests at once; their bytes wait in qbytes. */
            for (size_t i = 0; i < jw->qn; i++)
                push_done_locked(jw, jw->qreqs[i].cb, jw->qreqs[i].arg, status_of(jw->err), 1);
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
            compact_finish_locked(jw);
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
    publish_locked(jw);
    pthread_mutex_unlock(&jw->mu);
    return NULL;
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
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
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
static int ensure_writer(struct jw *jw) {
    if (jw->started)
        return 0;
    if (start_thread(&jw->thread, writer_main, jw) != 0) {
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
    jw->parked = 1; /* the writer thread starts when it is first needed (ensure_writer) */
    return jw;
fail:
    jw_free(jw);
    return NULL;
}

/* type < 0: rec is already encoded; else encode rec as its payload. */
static int enqueue(struct jw *jw, const void *rec, size_t len, int type, jw_done_fn cb, void *arg) {
    if (ensure_writer(jw) < 0)
        return JW_NOMEM;
    pthread_mutex_lock(&jw->mu);
    int rc = len > jw->opt.max_bytes ? JW_EINVAL
             : jw->stopping          ? JW_CLOSED
             : jw->err               ? status_of(jw->err)
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

/*
 * Off mode: the loop thread writes the batch itself (see the top comment
 * for when it may). The same steps as take_locked + process_batch_locked
 * for one request, without a completion: the bytes go through unsynced, so
 * a failed write leaves them there for the writer's recovery, as if the
 * writer had failed to write them.
 */
int jw_write_now(struct jw *jw, const void *recs, size_t len) {
    if (len == 0)
        return JW_EINVAL;
    if (jw->inline_after && clock_now_ms() < jw->inline_after)
        return JW_BUSY; /* a recent write was slow: the writer thread takes them for now */
    jw->inline_after = 0;
    pthread_mutex_lock(&jw->mu);
    int rc = len > jw->opt.max_bytes ? JW_EINVAL
             : jw->stopping          ? JW_CLOSED
             : jw->err               ? status_of(jw->err)
             : jw->opt.mode != JW_FSYNC_OFF || !jw->parked || jw->qn || jw->qbytes.len ||
                     jw->wn || jw->unsynced.len || jw->cstate != C_IDLE
                 ? JW_BUSY
                 : JW_OK;
    if (rc == JW_OK && (buf_reserve(&jw->unsynced, JOURNAL_BATCH_HEADER + len) < 0))
        rc = JW_NOMEM;
    if (rc != JW_OK) {
        pthread_mutex_unlock(&jw->mu);
        return rc;
    }
    unsigned char *h = (unsigned char *)buf_start(&jw->unsynced);
    journal_batch_header(h, ++jw->seq, len);
    jw->unsynced.len = JOURNAL_BATCH_HEADER;
    buf_append(&jw->unsynced, recs, len); /* reserved above: cannot fail */
    jw->wst.bytes_since_compact += JOURNAL_BATCH_HEADER + len;
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    uint64_t t0 = clock_now_us();
    int wrc = write_pending(jw), e = errno;
    if (clock_now_us() - t0 >= JW_INLINE_SLOW_US && getrusage(RUSAGE_THREAD, &r1) == 0 &&
        r1.ru_nvcsw != r0.ru_nvcsw) /* it slept in the kernel: not just preempted */
        jw->inline_after = clock_now_ms() + JW_INLINE_BACKOFF_MS;
    errno = e;
    if (wrc < 0) {
        /* Kept in unsynced: the writer rewrites it when it recovers. */
        set_unhealthy_locked(jw, errno, "write");
        pthread_cond_signal(&jw->cond);
    } else {
        settle(jw); /* off mode: nothing to confirm */
        jw->wst.records++;
    }
    jw->wst.batches++;
    jw->wst.avg_batch = (double)jw->wst.records / (double)jw->wst.batches;
    publish_locked(jw);
    pthread_mutex_unlock(&jw->mu);
    if (wrc < 0)
        ensure_writer(jw); /* it recovers (rewrites unsynced); a failed start: the next submit */
    return JW_OK;
}

/*
 * In the forked child: only this thread exists, holding a copy-on-write
 * image of the loop's memory. Close every inherited descriptor but the
 * pipe (the parent's sockets must end when the parent closes them), take
 * the default signal actions (SIGTERM ends it; a closed pipe too), encode,
 * stream, and leave without running anything of the parent's (_exit).
 */
static void child_snapshot(int wfd, jw_snapshot_fn snapshot_fn, void *arg) {
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if ((wfd > 3 && close_range(3, (unsigned)wfd - 1, 0) < 0) ||
        close_range((unsigned)wfd + 1, ~0u, 0) < 0) { /* before Linux 5.9 */
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = 3; fd < (max > 0 ? max : 65536); fd++)
            if (fd != wfd)
                close(fd);
    }
    struct buf b = BUF_INIT;
    if (snapshot_fn(arg, &b) < 0)
        _exit(CHILD_SNAPSHOT_FAILED);
    const char *p = buf_start(&b);
    size_t n = b.len;
    while (n) {
        ssize_t w = write(wfd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(CHILD_PIPE_FAILED);
        p += w;
        n -= (size_t)w;
    }
    _exit(0);
}

/* Fork the snapshot's child; 0, or -1 (the caller snapshots inline). */
static int fork_snapshot(struct jw *jw, jw_snapshot_fn snapshot_fn, void *arg) {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    uint64_t t0 = clock_now_us();
    pid_t pid = fork();
    if (pid == 0)
        child_snapshot(pfd[1], snapshot_fn, arg); /* does not return */
    uint64_t took = clock_now_us() - t0;
    close(pfd[1]);
    if (pid < 0) {
        log_warn("journal %s: fork for the compaction snapshot (encoding it on the loop instead)",
                 jw->path);
        close(pfd[0]);
        return -1;
    }
    jw->cpid = pid;
    jw->cpipe = pfd[0];
    jw->last_fork_us = took;
    return 0;
}

int jw_compact(struct jw *jw, jw_snapshot_fn snapshot_fn, jw_done_fn done, void *arg) {
    pthread_mutex_lock(&jw->mu);
    int rc = jw->stopping           ? JW_CLOSED
             : jw->cstate != C_IDLE ? JW_BUSY
             : jw->err              ? status_of(jw->err)
                                    : JW_OK;
    pthread_mutex_unlock(&jw->mu);
    if (rc == JW_OK && ensure_writer(jw) < 0) /* it switches the files */
        rc = JW_NOMEM;
    if (rc != JW_OK)
        return rc;
    /* The sequence point: submits also run on this thread, so none interleaves. */
    struct buf snap = BUF_INIT;
    if ((jw->opt.snapshot_inline || fork_snapshot(jw, snapshot_fn, arg) < 0) &&
        snapshot_fn(arg, &snap) < 0) {
        buf_free(&snap);
        return JW_EINVAL;
    }
    pthread_mutex_lock(&jw->mu);
    jw->cstate = C_RUNNING;
    jw->cpre = jw->qbytes.len; /* queued but untaken: from before the snapshot */
    buf_reset(&jw->tail);
    jw->tail_failed = 0;
    jw->snap = snap;
    jw->cdone = done;
    jw->carg = arg;
    jw->cerr = 0;
    jw->st.compacting = 1;
    rc = start_thread(&jw->cthread, compact_main, jw);
    if (rc != 0) {
        jw->cstate = C_IDLE;
        jw->st.compacting = 0;
        jw->snap = (struct buf)BUF_INIT;
        buf_free(&snap);
        if (jw->cpid > 0)
            child_end(jw, 1);
    } else {
        jw->cthread_live = 1;
    }
    pthread_mutex_unlock(&jw->mu);
    return rc ? JW_NOMEM : JW_OK;
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
        writer_main(jw); /* never needed until now: its closing fdatasync on this thread */
    if (jw->cthread_live) {
        /* Abandoned: the old journal has every record; the temp file goes. */
        pthread_join(jw->cthread, NULL);
        journal_rewrite_abort(jw->path, jw->cfd);
        jw->cfd = -1;
        push_done_locked(jw, jw->cdone, jw->carg, JW_CLOSED, 0);
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
