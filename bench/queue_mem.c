/*
 * Memory and speed of the queue engine (not run by the tests).
 *
 * Build: gcc -O2 -Isrc src/queue.c src/queue_job.c src/queue_heap.c src/queue_tab.c \
 *            src/timer.c bench/queue_mem.c -o /tmp/queue_mem && /tmp/queue_mem
 *
 * 1. Memory: N puts of 100-byte jobs into one queue. Reports the growth of
 *    the process's RSS and of malloc's in-use bytes per job, minus the
 *    100-byte payload, against the target of 100 bytes.
 * 2. Speed: put -> reserve -> ack cycles, the engine's share of a
 *    producer/consumer round trip. It runs with an empty queue, and again
 *    behind a backlog of ready jobs so that the heap has depth. An
 *    on_event hook that only counts stands in for the journal. The best
 *    of ROUNDS is printed.
 */
#define _GNU_SOURCE
#include "engine/queue.h"
#include "core/timer.h"
#include "bench_util.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 1000000
#define PAYLOAD 100
#define CYCLES 5000000
#define ROUNDS 5
#define BACKLOG 10000

static struct timer_wheel wheel;
static unsigned long events;

static void count_event(void *ctx, const struct queue_event *ev) {
    (void)ctx;
    (void)ev;
    events++;
}

static struct queue *make_queue(struct queue_engine *e, const char *name) {
    struct queue *q;
    if (queue_create(e, name, strlen(name), NULL, &q) != QUEUE_OK) {
        fprintf(stderr, "queue_create failed\n");
        exit(1);
    }
    return q;
}

static void check(int rc, const char *what) {
    if (rc != QUEUE_OK) {
        fprintf(stderr, "%s: %s\n", what, queue_strerror(rc));
        exit(1);
    }
}

static void bench_memory(void) {
    static char payload[PAYLOAD];
    memset(payload, 'x', sizeof payload);
    struct queue_engine_config cfg = {.on_event = count_event};
    struct queue_engine *e = queue_engine_new(&wheel, &cfg);
    struct queue *q = make_queue(e, "mem");
    struct queue_put p = {payload, sizeof payload, 0, 0, NULL, 0};
    uint64_t id;

    /* Fault in the payload source and stdio before the baseline. */
    printf("memory: %d puts of %d-byte jobs\n", N, PAYLOAD);
    long rss0 = rss_bytes();
    size_t mal0 = malloc_in_use();
    double t0 = now_ns();
    for (int i = 0; i < N; i++)
        check(queue_put(q, &p, &id, NULL), "put");
    double t1 = now_ns();
    long rss1 = rss_bytes();
    size_t mal1 = malloc_in_use();
    struct queue_engine_stats es;
    queue_engine_stats(e, &es);

    double rss_per = (double)(rss1 - rss0) / N - PAYLOAD;
    double mal_per = (double)(mal1 - mal0) / N - PAYLOAD;
    printf("  RSS growth      %8.1f MiB  -> %6.1f bytes/job beyond the payload (target <= 100)\n",
           (rss1 - rss0) / 1048576.0, rss_per);
    printf("  malloc in use   %8.1f MiB  -> %6.1f bytes/job beyond the payload\n",
           (double)(mal1 - mal0) / 1048576.0, mal_per);
    printf("  charged (mem_used) %.1f bytes/job beyond the payload\n",
           (double)es.mem_used / N - PAYLOAD);
    printf("  put             %6.1f ns/job (filling an empty engine)\n", (t1 - t0) / N);

    /* Drain it all: reserve + ack from a 1M-job heap. */
    struct queue_job_info info;
    unsigned n;
    t0 = now_ns();
    for (int i = 0; i < N; i++) {
        check(queue_reserve(q, 1, 0, &info, &n), "reserve");
        check(queue_ack(q, info.id, info.attempt), "ack");
    }
    t1 = now_ns();
    printf("  reserve+ack     %6.1f ns/job (draining 1M, first pop melds 1M roots)\n",
           (t1 - t0) / N);
    queue_engine_free(e);
}

static double cycle_round(struct queue *q, const struct queue_put *p) {
    struct queue_job_info info;
    unsigned n;
    uint64_t id;
    double t0 = now_ns();
    for (int i = 0; i < CYCLES; i++) {
        queue_put(q, p, &id, NULL);
        queue_reserve(q, 1, 0, &info, &n);
        queue_ack(q, info.id, info.attempt);
    }
    return (now_ns() - t0) / CYCLES;
}

static void bench_cycle(int backlog) {
    static char payload[PAYLOAD];
    struct queue_engine_config cfg = {.on_event = count_event};
    struct queue_engine *e = queue_engine_new(&wheel, &cfg);
    struct queue *q = make_queue(e, "cycle");
    struct queue_put p = {payload, sizeof payload, 0, 0, NULL, 0};
    uint64_t id;
    for (int i = 0; i < backlog; i++)
        check(queue_put(q, &p, &id, NULL), "put");
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double ns = cycle_round(q, &p);
        best = ns < best ? ns : best;
    }
    struct queue_stats st;
    queue_stats(q, &st);
    if (st.size != (uint64_t)backlog || st.reserved) {
        fprintf(stderr, "cycle left the queue in a wrong state\n");
        exit(1);
    }
    printf("  backlog %6d: %6.1f ns per put -> reserve -> ack (best of %d x %d)\n", backlog, best,
           ROUNDS, CYCLES);
    queue_engine_free(e);
}

int main(void) {
    timer_wheel_init(&wheel, 1000);
    bench_memory();
    printf("cycle: %d-byte payload, lease timer armed and cancelled each time\n", PAYLOAD);
    bench_cycle(0);
    bench_cycle(BACKLOG);
    printf("(%lu events reported)\n", events);
    return 0;
}
