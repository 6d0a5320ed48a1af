/*
 * journal_compact: jw_compact, the journal rewritten as snapshot + tail
 * (the design is in journal_writer.h). The loop forks a child that encodes
 * the snapshot from its copy-on-write image and streams it into a pipe (or
 * encodes it itself when fork fails or opt.snapshot_inline asks); a helper
 * thread writes header + snapshot to the temp file and fdatasyncs it; the
 * writer thread, between two batches, appends the tail, renames the file
 * over the journal and goes on there (jw_compact_finish_locked).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal_writer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "journal/journal.h"

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
            if (jw_write_all(jw, fd, chunk, have, *off) < 0)
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
        if (jw_write_all(jw, fd, buf_start(&jw->snap), jw->snap.len, end) < 0)
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
void jw_compact_finish_locked(struct jw *jw) {
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
        if (jw_write_all(jw, jw->cfd, (const char *)sh, sizeof sh, JOURNAL_HEADER_SIZE) < 0 ||
            (tail.len &&
             (jw_write_all(jw, jw->cfd, (const char *)th, sizeof th, jw->cend) < 0 ||
              jw_write_all(jw, jw->cfd, buf_start(&tail), tail.len, jw->cend + sizeof th) < 0)) ||
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
        jw_set_unhealthy_locked(jw, e, "directory fsync after compaction");
    jw->cstate = C_IDLE;
    jw->st.compacting = 0;
    jw_push_done_locked(jw, jw->cdone, jw->carg, e ? jw_status_of(e) : JW_OK, 0);
    jw_publish_locked(jw);
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
             : jw->err              ? jw_status_of(jw->err)
                                    : JW_OK;
    pthread_mutex_unlock(&jw->mu);
    if (rc == JW_OK && jw_ensure_writer(jw) < 0) /* it switches the files */
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
    rc = jw_start_thread(&jw->cthread, compact_main, jw);
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

