/*
 * journal_inline: jw_write_now, off mode's write of a batch on the loop
 * thread itself, with one pwrite and no completion, while the writer
 * thread is idle (journal_writer.h says when; journal_writer_int.h why it
 * is safe). A failed write leaves the bytes for the writer's recovery; a
 * write that slept in the kernel sends the next second's batches to the
 * writer thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal_writer_int.h"

#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>

#include "core/clock.h"
#include "journal/journal.h"

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

/*
 * Off mode: the loop thread writes the batch itself (journal_writer_int.h
 * says when it may). The same steps as take_locked + process_batch_locked
 * (journal_writer_thread.c) for one request, without a completion: the
 * bytes go through unsynced, so a failed write leaves them there for the
 * writer's recovery, as if the writer had failed to write them.
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
             : jw->err               ? jw_status_of(jw->err)
             : jw->opt.mode != JW_FSYNC_OFF || !jw->parked || jw->qn || jw->qbytes.len || jw->wn ||
                     jw->unsynced.len || jw->cstate != C_IDLE
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
    int wrc = jw_write_pending(jw), e = errno;
    if (clock_now_us() - t0 >= JW_INLINE_SLOW_US && getrusage(RUSAGE_THREAD, &r1) == 0 &&
        r1.ru_nvcsw != r0.ru_nvcsw) /* it slept in the kernel: not just preempted */
        jw->inline_after = clock_now_ms() + JW_INLINE_BACKOFF_MS;
    errno = e;
    if (wrc < 0) {
        /* Kept in unsynced: the writer rewrites it when it recovers. */
        jw_set_unhealthy_locked(jw, errno, "write");
        pthread_cond_signal(&jw->cond);
    } else {
        jw_settle(jw); /* off mode: nothing to confirm */
        jw->wst.records++;
    }
    jw->wst.batches++;
    jw->wst.avg_batch = (double)jw->wst.records / (double)jw->wst.batches;
    jw_publish_locked(jw);
    pthread_mutex_unlock(&jw->mu);
    if (wrc < 0)
        jw_ensure_writer(jw); /* it recovers (rewrites unsynced); a failed start: the next submit */
    return JW_OK;
}
