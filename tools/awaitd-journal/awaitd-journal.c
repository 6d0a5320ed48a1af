/*
 * awaitd-journal: print or check an awaitd journal file, like Redis's
 * redis-check-aof. Read-only: it never changes the file (awaitd -r repairs).
 *
 *   awaitd-journal [-c|--check] [-q] FILE
 *
 * Prints the header, then each batch (offset, sequence number, bytes) and
 * each record in it (offset, type, queue, job or timer id, sizes), then
 * what awaitd would do at start: nothing (clean), cut a torn last batch
 * (with a warning), or refuse, naming the first damaged offset and what
 * awaitd -r would cut. --check prints only that verdict; -q prints nothing.
 *
 * Exit status: 0 awaitd starts on the file as it is or after cutting a torn
 * last batch; 1 awaitd refuses it (corruption, damaged header, not a
 * journal); 2 usage, or the file cannot be read.
 *
 * The classification is journal_scan()'s, the same code awaitd runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "journal/journal.h"
#include "journal/queue_journal.h"
#include "journal/records.h"
#include "journal/task_journal.h"

static const char *const queue_ev[] = {"queue.create", "queue.update", "queue.delete",
                                       "job.put",      "job.ack",      "job.release",
                                       "job.dead",     "job.requeue",  "job.drop",
                                       "queue.shutdown", "job.result"};
static const char *const task_ev[] = {"timer.create",   "timer.fire", "timer.cancel",
                                      "timer.complete", "timer.fail", "timer.remove"};

static int quiet, check_only;

static void print_record(uint8_t type, const char *p, size_t len, uint64_t off) {
    struct queue_event qe;
    struct task_event te;
    struct task_spec spec;
    struct qj_clock clk = {0};
    uint64_t v;
    printf("  %-10" PRIu64 " ", off);
    if (type >= REC_QUEUE_FIRST && type <= REC_QUEUE_LAST) {
        if (qj_decode(type, p, len, &clk, &qe) < 0) {
            printf("%-15s (malformed, %zu bytes)\n", queue_ev[type - REC_QUEUE_FIRST], len);
            return;
        }
        printf("%-15s queue=%.*s", queue_ev[qe.type], (int)qe.queue_len, qe.queue);
        if (qe.type >= QUEUE_EV_PUT && qe.type != QUEUE_EV_SHUTDOWN)
            printf(" id=%" PRIu64, qe.id);
        if (qe.type == QUEUE_EV_PUT) {
            printf(" payload=%zu priority=%" PRId32, qe.len, qe.priority);
            if (qe.key)
                printf(" key=%.*s", (int)qe.key_len, qe.key);
        }
        if (qe.type == QUEUE_EV_DEAD)
            printf(" reason=%s", queue_dead_reason_name(qe.reason));
        if (qe.type == QUEUE_EV_RESULT) {
            printf(" outcome=%s result=%zu attempt=%" PRId32,
                   qe.immediate == QUEUE_OUTCOME_ACKED ? "acked" : "dead", qe.len, qe.priority);
            if (qe.immediate == QUEUE_OUTCOME_DEAD)
                printf(" reason=%s", queue_dead_reason_name(qe.reason));
            if (qe.key)
                printf(" type=%.*s", (int)qe.key_len, qe.key);
        }
        if (qe.type == QUEUE_EV_CREATE || qe.type == QUEUE_EV_UPDATE)
            printf(" result_ttl=%" PRIu64 "ms", qe.settings.result_ttl_ms);
        printf(" (%zu bytes)\n", len);
    } else if (type >= REC_TASK_FIRST && type <= REC_TASK_LAST) {
        if (tj_decode(type, p, len, 0, &te, &spec) < 0)
            printf("%-15s (malformed, %zu bytes)\n", task_ev[type - REC_TASK_FIRST], len);
        else
            printf("%-15s id=%" PRIu64 " fires=%" PRIu32 " (%zu bytes)\n", task_ev[te.type], te.id,
                   te.fires, len);
    } else if ((type == REC_QUEUE_NEXT_ID || type == REC_TASK_NEXT_ID) && len == 8) {
        memcpy(&v, p, 8); /* little-endian, as x86 and arm64 are */
        printf("%-15s %" PRIu64 "\n", type == REC_QUEUE_NEXT_ID ? "queue.next_id" : "timer.next_id",
               v);
    } else {
        printf("type 0x%02x       (unknown to this awaitd-journal, %zu bytes)\n", type, len);
    }
}

/* Print batches and records in [16, end): all good, by journal_scan's word. */
static void print_body(const char *d, size_t end, uint32_t version) {
    size_t off = JOURNAL_HEADER_SIZE;
    while (off < end) {
        uint64_t seq, blen;
        size_t stop = end;
        if (version == JOURNAL_VERSION && journal_batch_parse(d + off, end - off, &seq, &blen)) {
            printf("batch seq %" PRIu64 " at %zu: %" PRIu64 " bytes of records\n", seq, off, blen);
            off += JOURNAL_BATCH_HEADER;
            stop = off + (size_t)blen;
        }
        while (off < stop) {
            struct journal_record rec;
            if (journal_record_parse(d + off, stop - off, &rec) != JOURNAL_PARSE_OK)
                return;
            print_record(rec.type, rec.payload, rec.len, off);
            off += rec.size;
        }
    }
}

static void usage(FILE *f) {
    fprintf(f, "usage: awaitd-journal [-c|--check] [-q] FILE\n"
               "  print an awaitd journal's batches and records, and what awaitd would do with it\n"
               "  -c, --check  only check: print the verdict\n"
               "  -q           print nothing; the exit status says it\n"
               "exit status: 0 awaitd starts on it (clean, or a torn last batch it cuts),\n"
               "             1 awaitd refuses it (corruption, damaged header), 2 usage or I/O error\n");
}

int main(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--check"))
            check_only = 1;
        else if (!strcmp(argv[i], "-q"))
            quiet = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path) {
            usage(stderr);
            return 2;
        } else
            path = argv[i];
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0) {
        fprintf(stderr, "awaitd-journal: %s: %s\n", path, strerror(errno));
        return 2;
    }
    size_t len = (size_t)st.st_size;
    char *d = malloc(len ? len : 1);
    if (!d || fread(d, 1, len, f) != len) {
        fprintf(stderr, "awaitd-journal: %s: cannot read: %s\n", path, strerror(errno));
        return 2;
    }
    fclose(f);
    struct journal_scan_result r;
    journal_scan(d, len, NULL, NULL, &r);
    if (quiet)
        check_only = 1;
    if (!quiet && !check_only && len >= JOURNAL_HEADER_SIZE &&
        r.status != JOURNAL_SCAN_BAD_HEADER) {
        time_t t = (time_t)r.created;
        char when[32] = "?";
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s: awaitd journal version %" PRIu32 ", created %s, %zu bytes\n", path, r.version,
               when, len);
        print_body(d, r.end, r.version);
    }
    int rc = 0;
    FILE *o = quiet ? NULL : stdout;
    switch (r.status) {
    case JOURNAL_SCAN_CLEAN:
    case JOURNAL_SCAN_STOPPED: /* no callback: never */
        if (o)
            fprintf(o, "%s: clean: %" PRIu64 " batches, %" PRIu64 " records, %zu bytes\n", path,
                    r.batches, r.records, len);
        break;
    case JOURNAL_SCAN_EMPTY:
        if (o)
            fprintf(o, "%s: empty (awaitd writes a header at start)\n", path);
        break;
    case JOURNAL_SCAN_TORN:
        if (o)
            fprintf(o,
                    "%s: torn last batch at offset %" PRIu64 " (%s): awaitd cuts these %" PRIu64
                    " bytes of an unacknowledged write at start, with a warning; %" PRIu64
                    " records before it\n",
                    path, r.end, r.reason, (uint64_t)len - r.end, r.records);
        break;
    case JOURNAL_SCAN_CORRUPT:
        rc = 1;
        if (o)
            fprintf(o,
                    "%s: CORRUPT at offset %" PRIu64 " (%s); %" PRIu64 " good records before "
                    "it, %" PRIu64 " good records in %" PRIu64 " batches after it; awaitd "
                    "refuses to start; awaitd -r cuts at offset %" PRIu64 " (%" PRIu64
                    " bytes) and keeps a copy as %s.damaged-%" PRIu64 "\n",
                    path, r.bad, r.reason, r.records, r.dropped_records, r.dropped_batches, r.end,
                    (uint64_t)len - r.end, path, r.end);
        break;
    case JOURNAL_SCAN_BAD_HEADER:
        rc = 1;
        if (o)
            fprintf(o, "%s: BAD HEADER at offset 0 (%s); awaitd refuses to start; %s\n", path,
                    r.reason,
                    r.repairable ? "awaitd -r rewrites the header (keeping a copy as FILE.damaged-0)"
                                 : "-r does not touch it: this is not an awaitd journal");
        break;
    }
    free(d);
    return rc;
}
