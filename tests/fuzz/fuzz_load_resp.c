/*
 * libFuzzer target for awaitload's response reader (load_resp.c): a byte
 * stream of pipelined responses is read twice, whole and in pieces whose
 * sizes a tiny PRNG picks (as reads would deliver it), keeping unconsumed
 * bytes as awaitload does. Beyond "no crash, no UB": both readings find the
 * same responses (statuses, keep-alive) and fail or not at the same one,
 * and a call never consumes more than it was given. The first byte steers:
 * bit 0 = the first request was HEAD, the rest seeds the split sizes.
 */
#include "fuzz.h"

#include "load_resp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESP 64

struct outcome {
    int n;              /* responses read */
    int status[MAX_RESP];
    int keep[MAX_RESP];
    int failed;         /* a malformed response */
    int open;           /* the last response is unfinished */
    int eof_ok;         /* load_resp_eof at the end */
};

static struct http_response scratch;

/* Feed the bytes at buf[0..*len) (a connection's unconsumed bytes) until no
 * more progress; drops what was consumed. */
static void pump(struct load_resp *r, char *buf, size_t *len, struct outcome *o, int head) {
    for (;;) {
        if (o->failed || o->n >= MAX_RESP)
            return;
        const char *why = NULL;
        ssize_t n = load_resp_feed(r, buf, *len, &scratch, &why);
        if (n < 0) {
            CHECK(why && why[0]);
            o->failed = 1;
            return;
        }
        CHECK((size_t)n <= *len);
        memmove(buf, buf + n, *len - (size_t)n);
        *len -= (size_t)n;
        if (r->state != LOAD_RESP_DONE)
            return;
        CHECK(r->status >= 200 && r->status <= 599);
        o->status[o->n] = r->status;
        o->keep[o->n] = r->keep_alive;
        o->n++;
        load_resp_begin(r, head);
        if (*len == 0)
            return;
    }
}

static void finish(struct load_resp *r, struct outcome *o) {
    o->open = r->state != LOAD_RESP_HEAD;
    o->eof_ok = load_resp_eof(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    int head = data[0] & 1;
    data++, size--;
    struct outcome whole = {0}, split = {0};
    struct load_resp r;

    /* Whole: one read of everything (an exact-size copy for ASan). */
    char *buf = malloc(size ? size : 1);
    CHECK(buf);
    memcpy(buf, data, size);
    size_t len = size;
    load_resp_begin(&r, head);
    pump(&r, buf, &len, &whole, head);
    finish(&r, &whole);
    free(buf);

    /* Split: pieces of 1..64 bytes appended to what is left. */
    buf = malloc(size ? size : 1);
    CHECK(buf);
    len = 0;
    load_resp_begin(&r, head);
    uint32_t x = (uint32_t)size * 2654435761u + data[-1];
    for (size_t off = 0; off < size && !split.failed && split.n < MAX_RESP;) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t n = x & 0x80 ? 1 + (x >> 8) % 64 : 1 + (x >> 8) % 4;
        if (n > size - off)
            n = size - off;
        memcpy(buf + len, data + off, n);
        len += n;
        off += n;
        pump(&r, buf, &len, &split, head);
    }
    finish(&r, &split);
    free(buf);

    CHECK(whole.failed == split.failed);
    CHECK(whole.n == split.n);
    for (int i = 0; i < whole.n; i++)
        CHECK(whole.status[i] == split.status[i] && whole.keep[i] == split.keep[i]);
    if (!whole.failed && whole.n < MAX_RESP)
        CHECK(whole.open == split.open && whole.eof_ok == split.eof_ok);
    return 0;
}
