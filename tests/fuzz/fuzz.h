/*
 * What every libFuzzer target here shares: the entry point's prototype and
 * CHECK, which reports an invariant the target states and aborts (libFuzzer
 * then saves the input as a crash).
 */
#ifndef AWAITD_FUZZ_H
#define AWAITD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
