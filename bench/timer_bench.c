/*
 * Micro-benchmark for the timing wheel (not run by the tests).
 *
 * Build: gcc -O2 -Isrc src/timer.c bench/timer_bench.c -o /tmp/timer_bench
 *
 * Phases, each over N timers with random expiries in 1..3600 s (ms units):
 *   insert + cancel  - the cost of arming and disarming a deadline;
 *   move             - re-adding a pending timer at a later expiry, which is
 *                      what a connection deadline does on every request;
 *   fire             - advancing time, as an event loop would (following
 *                      timer_wheel_next()) and in a single jump.
 * Expiries are precomputed so the random generator is not measured. Each
 * phase runs ROUNDS times; the best round is printed.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 1000000
#define ROUNDS 5
#define RANGE_MS 3600000u

static struct timer_wheel wheel;
static size_t fired;

static void on_fire(struct timer *t) {
    (void)t;
    fired++;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double best(double a, double b) {
    return a < b ? a : b;
}

int main(void) {
    struct timer *timers = malloc(N * sizeof *timers);
    uint64_t *expiry = malloc(N * sizeof *expiry);
    uint64_t *later = malloc(N * sizeof *later);
    if (!timers || !expiry || !later)
        return 1;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < N; i++) {
        expiry[i] = 1 + xorshift(&seed) % RANGE_MS;
        later[i] = expiry[i] + 1 + xorshift(&seed) % 30000; /* a 0..30 s push */
        timer_init(&timers[i], on_fire);
    }

    double ins = 1e30, can = 1e30, mov = 1e30, fire_loop = 1e30, fire_jump = 1e30;
    size_t loop_calls = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t0, t1, t2;

        timer_wheel_init(&wheel, 0);
        t0 = now_ns();
        for (size_t i = 0; i < N; i++)
            timer_add(&wheel, &timers[i], expiry[i]);
        t1 = now_ns();
        for (size_t i = 0; i < N; i++)
            timer_cancel(&wheel, &timers[i]);
        t2 = now_ns();
        ins = best(ins, t1 - t0);
        can = best(can, t2 - t1);

        /* Move every pending timer later, then fire them all following
         * timer_wheel_next(), one advance() per wake-up. */
        for (size_t i = 0; i < N; i++)
            timer_add(&wheel, &timers[i], expiry[i]);
        t0 = now_ns();
        for (size_t i = 0; i < N; i++)
            timer_add(&wheel, &timers[i], later[i]);
        t1 = now_ns();
        mov = best(mov, t1 - t0);

        fired = 0;
        loop_calls = 0;
        uint64_t at;
        t0 = now_ns();
        while ((at = timer_wheel_next(&wheel)) != UINT64_MAX) {
            timer_wheel_advance(&wheel, at);
            loop_calls++;
        }
        t1 = now_ns();
        if (fired != N)
            return fprintf(stderr, "fired %zu of %d\n", fired, N), 1;
        fire_loop = best(fire_loop, t1 - t0);

        /* The same expiries fired by one advance() across the whole hour. */
        timer_wheel_init(&wheel, 0);
        for (size_t i = 0; i < N; i++)
            timer_add(&wheel, &timers[i], expiry[i]);
        fired = 0;
        t0 = now_ns();
        timer_wheel_advance(&wheel, RANGE_MS);
        t1 = now_ns();
        if (fired != N)
            return fprintf(stderr, "fired %zu of %d\n", fired, N), 1;
        fire_jump = best(fire_jump, t1 - t0);
    }

    printf("timers: %d, expiries uniform over 0..%u s, best of %d rounds\n", N, RANGE_MS / 1000,
           ROUNDS);
    printf("insert:            %6.1f ns/timer\n", ins / N);
    printf("cancel:            %6.1f ns/timer\n", can / N);
    printf("move (re-add):     %6.1f ns/timer\n", mov / N);
    printf("fire (event loop): %6.1f ns/timer  (%zu advance calls)\n", fire_loop / N, loop_calls);
    printf("fire (one jump):   %6.1f ns/timer\n", fire_jump / N);
    printf("memory:            %6.2f bytes/timer  (%zu node + %zu wheel / %d)\n",
           (double)sizeof(struct timer) + (double)sizeof(struct timer_wheel) / N,
           sizeof(struct timer), sizeof(struct timer_wheel), N);
    free(timers);
    free(expiry);
    free(later);
    return 0;
}
