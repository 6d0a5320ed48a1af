/*
 * The engine benchmarks' clock and memory readings (queue_mem.c,
 * task_bench.c, timer_bench.c). Header-only, so that each benchmark still
 * builds from its one .c file and the engine's sources.
 */
#ifndef AWAITD_BENCH_UTIL_H
#define AWAITD_BENCH_UTIL_H

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The process's resident set, from /proc/self/statm; exits when unreadable. */
static inline long rss_bytes(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        perror("/proc/self/statm");
        exit(1);
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* Bytes malloc has handed out: heap chunks in use + mmapped blocks. */
static inline size_t malloc_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#endif
