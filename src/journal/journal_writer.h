/*
 * journal_writer: appends records to the journal from a writer thread so
 * the event loop never waits for the disk.
 *
 * The loop calls jw_submit(), which copies the record into a bounded
 * in-memory queue and returns at once. The writer thread takes everything
 * queued, writes it with one pwrite() and, in `always` mode, one
 * fdatasync() (group commit: the batch grows while the previous fsync runs,
 * so 100 waiting producers share one fsync). Completions come back on the
 * LOOP thread: the writer pushes them on a list and wakes the loop through
 * an eventfd registered as one libevent event, so callbacks need no locks.
 *
 * Modes (the [journal] fsync setting):
 *   JW_FSYNC_ALWAYS  completion after the fdatasync that covers the record
 *   JW_FSYNC_BATCH   completion after write(); fdatasync every interval_ms
 *                    (a crash loses at most that much acknowledged work)
 *   JW_FSYNC_OFF     completion after write(); the kernel decides
 * jw_close() fdatasyncs in every mode.
 *
 * The writer thread starts when it first has work (a submit, a compaction,
 * an inline write to recover from); jw_close of a journal that never
 * needed it does its closing fdatasync on the calling thread.
 *
 * Contract with the caller (the queue engine), and why:
 *   - Journal first, then apply: call jw_submit() before changing memory; if
 *     it returns nonzero, do not apply the change and answer 503 (507 for
 *     JW_ENOSPC). Once jw_submit() returned JW_OK the record is in the
 *     journal's order for good: it will reach the file, before any record
 *     submitted after it, unless the process dies first.
 *   - Answer the client from the completion: JW_OK means "as durable as the
 *     mode promises" (send the 201 / 2xx); an error status means "not
 *     durable now", so answer 503/507, but do NOT undo the change. The
 *     writer keeps the bytes and writes them when the disk recovers, so the
 *     journal stays equal to memory. The client sees an ambiguous failure
 *     (like a timeout) and may retry: at-least-once, never lost.
 *   - While unhealthy, jw_submit() refuses at once with JW_EIO / JW_ENOSPC.
 *
 * Write and fsync failures ("fsyncgate"): after a failed fdatasync Linux
 * may already have dropped the dirty pages and marked them clean, so a
 * second fdatasync can report success for data that is not on disk. So the
 * writer never retries an fsync alone: it keeps in memory every byte after
 * the last offset confirmed by a successful fdatasync (`base`), and every
 * retry_ms it truncates the file back to `base`, rewrites those bytes from
 * memory, and fdatasyncs. Only when that succeeds is the journal healthy
 * again. No record is acknowledged as durable unless an fdatasync that
 * covers it succeeded (always mode), and records acknowledged in batch mode
 * are rewritten too, so a failed fsync never loses them.
 *
 * Compaction (jw_compact): the caller's snapshot_fn serializes the live
 * state, as ordinary records. jw_compact forks, and the child runs it on
 * its copy-on-write image of the loop thread's memory and streams the
 * bytes into a pipe (Redis's BGREWRITEAOF), so the loop pays for the fork,
 * not for encoding the whole state (which took 50-100 ms for 200,000 jobs
 * and timers). If fork fails, or opt.snapshot_inline asks, snapshot_fn
 * runs on the loop thread into a buf instead. That instant (the fork) is
 * the sequence point: every record submitted before it is reflected in
 * the snapshot, every record submitted after it is not. Then:
 *   1. a helper thread writes header + snapshot (read from the child, or
 *      the buf) to path.compact.tmp and fdatasyncs it; a child that fails
 *      or dies fails the compaction. Meanwhile the writer goes on appending to the old
 *      journal (acknowledging as usual), and also copies, in memory, every
 *      record submitted after the sequence point (the "tail"). Records
 *      still queued at the sequence point were submitted before it: their
 *      byte count is noted then, and the writer skips that many bytes;
 *   2. between two batches, with nothing queued from before the sequence
 *      point and the journal healthy, the writer appends the tail to the
 *      temporary file, fdatasyncs it, renames it over the journal, fsyncs
 *      the directory and continues on the new file. Nothing is in flight at
 *      that moment, so each record after the sequence point is in the tail
 *      exactly once, and every later record goes to the new file.
 * A crash before the rename leaves the old journal, which has everything;
 * after it, the new one, which has snapshot + tail. Nothing lost, nothing
 * twice. If the temporary file cannot be written, compaction is abandoned
 * and the old journal goes on; the completion says so. A directory fsync
 * failing after the rename makes the journal unhealthy until a retry of it
 * succeeds, since the rename might not survive a crash. Only the last
 * step (tail + one fdatasync + rename) delays the writer; the loop never
 * waits. Memory: the child's encoded snapshot and the pages the parent
 * changes while it runs (copy-on-write), and the tail, until the switch.
 * The child closes every inherited descriptor but its pipe first, so a
 * connection the parent closes meanwhile still ends at once; jw_close
 * kills a child still running.
 *
 * Fault injection: jw_options has pwrite/fdatasync/ftruncate pointers that
 * tests replace to make them fail with EIO or ENOSPC, or to count fsyncs
 * (beanstalkd's falloc seam). NULL means the real syscall.
 */
#ifndef AWAITD_JOURNAL_WRITER_H
#define AWAITD_JOURNAL_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"

struct event_base;
struct jw;

enum jw_mode { JW_FSYNC_ALWAYS = 0, JW_FSYNC_BATCH, JW_FSYNC_OFF };

/* Results of jw_submit / jw_compact and statuses passed to completions. */
enum jw_status {
    JW_OK = 0,
    JW_BUSY,   /* the queue is full (or a compaction runs): 503 with Retry-After */
    JW_EIO,    /* the journal cannot write or fsync: 503 */
    JW_ENOSPC, /* the disk (or quota) is full: 507 */
    JW_NOMEM,  /* out of memory: 503 */
    JW_EINVAL, /* bad record (empty, too long) */
    JW_CLOSED, /* jw_close has begun */
};

/* A completion, on the loop thread. status is an enum jw_status. */
typedef void (*jw_done_fn)(void *arg, int status);

/*
 * Serialize the live state into out with journal_encode(), without
 * touching the disk or any descriptor: it runs in a forked child (or on
 * the loop thread). Return 0, or -1 to cancel.
 */
typedef int (*jw_snapshot_fn)(void *arg, struct buf *out);

/* Fault-injection seams: same contract as the syscalls. */
typedef ssize_t (*jw_pwrite_fn)(int fd, const void *p, size_t n, off_t off);
typedef int (*jw_sync_fn)(int fd);
typedef int (*jw_truncate_fn)(int fd, off_t len);

struct jw_options {
    enum jw_mode mode;        /* default JW_FSYNC_ALWAYS */
    unsigned interval_ms;     /* batch mode: fdatasync period, default 50 (beanstalkd's) */
    size_t max_records;       /* records submitted and not yet completed, default 16384 */
    size_t max_bytes;         /* bytes queued and not yet taken by the writer, default 64 MiB */
    unsigned retry_ms;        /* unhealthy: time between recovery attempts, default 1000 */
    jw_pwrite_fn pwrite;      /* NULL: pwrite(2) */
    jw_sync_fn fdatasync;     /* NULL: fdatasync(2) */
    jw_truncate_fn ftruncate; /* NULL: ftruncate(2) */
    int snapshot_inline;      /* 1: run snapshot_fn on the loop thread, never fork */
};

/* Numbers for /metrics and for the caller's compaction policy. */
struct jw_stats {
    uint64_t records;             /* records acknowledged with JW_OK */
    uint64_t batches;             /* pwrite batches */
    uint64_t bytes;               /* bytes written to the journal, rewrites included */
    uint64_t fsyncs;              /* successful fdatasyncs */
    uint64_t errors;              /* failed writes, fsyncs and truncates */
    double avg_batch;             /* records per batch */
    int healthy;                  /* 0 while writes or fsyncs fail */
    int last_errno;               /* the last failure's errno, 0 if none */
    uint64_t queued;              /* records submitted whose completion is not delivered */
    uint64_t file_bytes;          /* size of the journal file */
    uint64_t bytes_since_compact; /* appended since open or the last compaction */
    uint64_t compactions;         /* compactions completed */
    int compacting;               /* 1 while one runs */
    uint64_t last_fork_us;        /* the loop's pause in the last compaction's fork, 0 if none */
};

void jw_options_init(struct jw_options *o);

/*
 * Start the writer on fd (from journal_open_replay, whose info.end is end
 * and info.last_seq is last_seq: the writer numbers its batches after it);
 * jw owns fd from now on. path is the journal's path, for compaction.
 * Completions are delivered by events on base, which must outlive jw.
 * opt may be NULL; its zero fields take the defaults. NULL with err filled
 * on failure (fd is then closed).
 */
struct jw *jw_open(struct event_base *base, const char *path, int fd, uint64_t end,
                   uint64_t last_seq, const struct jw_options *opt, char *err, size_t errlen);

/*
 * Queue one encoded record (journal_encode output; possibly several
 * records back to back, acknowledged together, e.g. a batch put). Loop
 * thread only; never blocks. JW_OK: cb(arg, status) will be called exactly
 * once, later, on the loop thread (cb may be NULL). Anything else: cb is
 * never called. JW_EINVAL for len 0 or len > max_bytes.
 */
int jw_submit(struct jw *jw, const void *rec, size_t len, jw_done_fn cb, void *arg);

/* Encode and queue in one step (no intermediate copy). */
int jw_submit_record(struct jw *jw, uint8_t type, const void *payload, size_t len, jw_done_fn cb,
                     void *arg);

/*
 * Off mode only (JW_FSYNC_OFF): write one batch of encoded records now, on
 * this (the loop) thread, with one pwrite: no copy into the queue, no
 * wake-up of the writer thread and no completion, which cost a futex wake,
 * two thread switches and an eventfd round trip per batch even though off
 * mode has nothing to wait for. Only while the writer thread is idle
 * (nothing queued or in flight, no compaction, healthy) and none of the
 * loop's writes slept 1 ms or more in the kernel in the last second (the
 * loop must not wait on a slow disk): otherwise JW_BUSY, and the caller uses jw_submit, which
 * keeps the order. JW_OK: the batch is
 * the journal's, exactly as if jw_submit had taken it and the writer had
 * written it: in the file now (the page cache: the kernel decides, as off
 * mode says), or, when the write failed, kept in memory and rewritten by
 * the writer's recovery, the journal unhealthy meanwhile (logged, counted
 * in jw_stats) so later submits are refused. Refusals as jw_submit's
 * (JW_CLOSED, JW_EIO, JW_ENOSPC while unhealthy, JW_NOMEM, JW_EINVAL).
 */
int jw_write_now(struct jw *jw, const void *recs, size_t len);

/*
 * Rewrite the journal as snapshot + later records (see the top comment).
 * snapshot_fn runs now, in a forked child (or on this, the loop, thread);
 * done(arg, status) later, on the loop thread. JW_BUSY if a compaction is
 * running; nonzero returns mean done is never called.
 */
int jw_compact(struct jw *jw, jw_snapshot_fn snapshot_fn, jw_done_fn done, void *arg);

/* Loop thread (queued is the loop's own count). */
void jw_stats(struct jw *jw, struct jw_stats *out);

/* 0 while writes and fsyncs succeed, else the errno of the failure that
 * made the journal unhealthy (jw_stats' healthy and last_errno, without
 * the lock and the copy: every put and ack asks). Any thread. */
int jw_health(struct jw *jw);

/*
 * Loop thread: 1 when the writer is three quarters of the way to refusing
 * submits (max_records or max_bytes queued and not yet written). The store
 * refuses new changes then (503), so no change is ever made in memory that
 * the journal would refuse: refusals happen before the change, not after.
 */
int jw_backlogged(const struct jw *jw);

/*
 * Flush everything queued, fdatasync (in every mode), join the threads,
 * deliver the remaining completions on this thread, close the file and free
 * jw. A running compaction is abandoned (the old journal is complete).
 * Returns 0, or -1 when some records could not be made durable (their
 * completions said so). Loop thread; not from inside a completion.
 */
int jw_close(struct jw *jw);

/* "ok", "busy", "I/O error", "no space", ... for logs. */
const char *jw_status_str(int status);

#endif
