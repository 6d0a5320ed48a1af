/*
 * journal_bench: acknowledged durable puts per second through the journal
 * writer's group commit. Each simulated producer submits a 100-byte record
 * and waits for its completion (after the fdatasync that covers it, with
 * fsync = always) before the next, like an HTTP client waiting for its 201.
 * Runs 100 producers, then 1, and prints records/s, records per fsync and
 * completion latency. The target is >= 10,000/s with 100 producers.
 *
 * Build (from the source root):
 *   gcc -O2 -D_GNU_SOURCE -Isrc bench/journal_bench.c src/journal/journal*.c src/core/buf.c \
 *       src/core/log.c $(pkg-config --cflags --libs libevent_core) -lpthread -o /tmp/journal_bench
 * (or make bench/journal_bench)
 * Run: /tmp/journal_bench [seconds=5] [dir=/tmp] [mode=always|batch|off]
 * The journal is a file in a fresh directory under dir, removed afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <event2/event.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/clock.h"
#include "journal/journal.h"
#include "journal/journal_writer.h"

#define RECORD_BYTES 100
#define MAX_SAMPLES (1u << 22)

struct producer {
    uint64_t seq;
    uint64_t sent_us;
};

static struct event_base *base;
static struct jw *jw;
static int stopping, inflight;
static uint64_t acked, failed;
static uint32_t *lat_us; /* completion latency samples */
static size_t nlat;

static void submit(struct producer *p);

static void on_done(void *arg, int status) {
    struct producer *p = arg;
    inflight--;
    if (status == JW_OK) {
        acked++;
        if (nlat < MAX_SAMPLES)
            lat_us[nlat++] = (uint32_t)(clock_now_us() - p->sent_us);
    } else {
        failed++;
    }
    if (!stopping)
        submit(p);
    else if (inflight == 0)
        event_base_loopbreak(base);
}

static void submit(struct producer *p) {
    char payload[RECORD_BYTES - JOURNAL_RECORD_OVERHEAD];
    memset(payload, 'x', sizeof payload);
    memcpy(payload, &p->seq, sizeof p->seq);
    p->seq++;
    p->sent_us = clock_now_us();
    int rc = jw_submit_record(jw, 1, payload, sizeof payload, on_done, p);
    if (rc != JW_OK) {
        fprintf(stderr, "submit: %s\n", jw_status_str(rc));
        exit(1);
    }
    inflight++;
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
    stopping = 1;
    if (inflight == 0)
        event_base_loopbreak(base);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static const char *fs_name(const char *dir) {
    struct statfs sf;
    if (statfs(dir, &sf) < 0)
        return "?";
    switch ((unsigned long)sf.f_type) {
    case EXT4_SUPER_MAGIC:
        return "ext4 (or ext2/3)";
    case TMPFS_MAGIC:
        return "tmpfs (fsync is free: not a disk)";
    case XFS_SUPER_MAGIC:
        return "xfs";
    case BTRFS_SUPER_MAGIC:
        return "btrfs";
    case OVERLAYFS_SUPER_MAGIC:
        return "overlayfs";
    }
    return "other";
}

static void run(const char *dir, int producers, int seconds, enum jw_mode mode) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/journal", dir);
    unlink(path);
    struct journal_info info;
    int fd = journal_open_replay(path, NULL, NULL, 0, &info, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    struct jw_options o;
    jw_options_init(&o);
    o.mode = mode;
    base = event_base_new();
    jw = jw_open(base, path, fd, info.end, info.last_seq, &o, err, sizeof err);
    if (!jw) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    struct producer *p = calloc((size_t)producers, sizeof *p);
    stopping = inflight = 0;
    acked = failed = 0;
    nlat = 0;
    struct timeval tv = {seconds, 0};
    struct event *stop = evtimer_new(base, on_stop, NULL);
    evtimer_add(stop, &tv);
    uint64_t t0 = clock_now_us();
    for (int i = 0; i < producers; i++)
        submit(&p[i]);
    event_base_dispatch(base);
    double secs = (double)(clock_now_us() - t0) / 1e6;
    struct jw_stats st;
    jw_stats(jw, &st);
    qsort(lat_us, nlat, sizeof *lat_us, cmp_u32);
    printf("%3d producers: %9.0f acknowledged records/s  %6.1f records/fsync  "
           "(%llu records, %llu fsyncs, %llu failed)  latency p50 %u us, p99 %u us\n",
           producers, (double)acked / secs,
           st.fsyncs ? (double)st.records / (double)st.fsyncs : 0.0, (unsigned long long)st.records,
           (unsigned long long)st.fsyncs, (unsigned long long)failed, nlat ? lat_us[nlat / 2] : 0,
           nlat ? lat_us[nlat * 99 / 100] : 0);
    if (jw_close(jw) < 0)
        fprintf(stderr, "jw_close failed\n");
    event_free(stop);
    event_base_free(base);
    free(p);
    unlink(path);
}

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 5;
    const char *where = argc > 2 ? argv[2] : "/tmp";
    const char *m = argc > 3 ? argv[3] : "always";
    enum jw_mode mode = strcmp(m, "batch") == 0 ? JW_FSYNC_BATCH
                        : strcmp(m, "off") == 0 ? JW_FSYNC_OFF
                                                : JW_FSYNC_ALWAYS;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/journal_bench.XXXXXX", where);
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    lat_us = malloc(MAX_SAMPLES * sizeof *lat_us);
    printf("journal in %s on %s, fsync = %s, %d s per run, %d-byte records\n", dir, fs_name(dir), m,
           seconds, RECORD_BYTES);
    run(dir, 100, seconds, mode);
    run(dir, 1, seconds, mode);
    rmdir(dir);
    free(lat_us);
    return 0;
}
