/*
 * libFuzzer target for the WebSocket frame reader (http/ws_frame.c, the
 * /websocket/echo probe). The first byte picks the limits (max_fragment,
 * max_message), the second the size of the pieces the rest is fed in; the
 * rest is what a client sends. Checks: no crash or UB, ws_read never
 * consumes more than it was given and either consumes or reports, every
 * payload pointer inside the input, no data frame over max_fragment and no
 * message over max_message reported, close codes allowed ones, nothing
 * after an error or a close, and the same events and bytes whether the
 * input comes whole or in pieces.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *            tests/fuzz/fuzz_ws_frame.c src/http/ws_frame.c
 */
#include "fuzz.h"

#include "http/ws_frame.h"

#include <string.h>

struct trace {
    unsigned char bytes[8192]; /* data and control payloads, in order */
    size_t len;
    int kinds[4096];
    size_t nkinds;
    int final_code;
};

static void run(const unsigned char *in, size_t n, size_t step, uint64_t maxf, uint64_t maxm,
                struct trace *t) {
    unsigned char *buf = malloc(n ? n : 1);
    memcpy(buf, in, n);
    struct ws_reader r;
    ws_reader_init(&r, maxf, maxm);
    memset(t, 0, sizeof *t);
    uint64_t msg = 0;
    int done = 0;
    size_t off = 0;
    while (off < n && !done) {
        size_t piece = step && n - off > step ? step : n - off;
        size_t used = 0;
        for (int guard = 0;; guard++) {
            CHECK(guard < 100000);
            struct ws_event ev;
            size_t k = ws_read(&r, buf + off + used, piece - used, &ev);
            CHECK(k <= piece - used);
            used += k;
            if (ev.kind == WS_EV_NONE) {
                CHECK(used == piece);
                break;
            }
            if (ev.kind != WS_EV_DATA) { /* data may split differently */
                CHECK(t->nkinds < sizeof t->kinds / sizeof t->kinds[0]);
                t->kinds[t->nkinds++] = ev.kind;
            }
            if (ev.kind == WS_EV_DATA || ev.kind == WS_EV_PING || ev.kind == WS_EV_PONG ||
                ev.kind == WS_EV_CLOSE) {
                if (ev.kind == WS_EV_DATA) {
                    CHECK(ev.data >= buf + off && ev.data + ev.len <= buf + off + used);
                    CHECK(ev.len <= maxf);
                    msg += ev.len;
                    CHECK(msg <= maxm);
                } else {
                    CHECK(ev.len <= 125);
                }
                CHECK(t->len + ev.len <= sizeof t->bytes);
                memcpy(t->bytes + t->len, ev.data, ev.len);
                t->len += ev.len;
            }
            if (ev.kind == WS_EV_END) {
                CHECK(ev.len == msg);
                msg = 0;
            }
            if (ev.kind == WS_EV_CLOSE) {
                CHECK(ev.code == WS_CLOSE_NO_STATUS ||
                      (ev.code >= 1000 && ev.code <= 4999 && ev.code != 1005 && ev.code != 1006));
                t->final_code = ev.code;
                done = 1;
            }
            if (ev.kind == WS_EV_ERROR) {
                CHECK(ev.code == WS_CLOSE_PROTOCOL || ev.code == WS_CLOSE_BAD_DATA ||
                      ev.code == WS_CLOSE_TOO_BIG);
                CHECK(ev.why != NULL);
                t->final_code = -ev.code;
                done = 1;
            }
            if (done) {
                CHECK(ws_read(&r, buf + off + used, piece - used, &ev) == 0);
                CHECK(ev.kind == WS_EV_NONE);
                break;
            }
        }
        off += piece;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    static const uint64_t limits[][2] = {{125, 125}, {16, 64}, {1000, 1000}, {1 << 20, 1 << 20}};
    uint64_t maxf = limits[data[0] & 3][0], maxm = limits[data[0] & 3][1];
    size_t step = data[1] % 17;
    static struct trace whole, pieces;
    run(data + 2, size - 2, 0, maxf, maxm, &whole);
    run(data + 2, size - 2, step, maxf, maxm, &pieces);
    /* The events other than data, the bytes and the ending must agree. */
    CHECK(whole.nkinds == pieces.nkinds);
    CHECK(memcmp(whole.kinds, pieces.kinds, whole.nkinds * sizeof whole.kinds[0]) == 0);
    CHECK(whole.final_code == pieces.final_code);
    /* A text message found not to be UTF-8 may have had more of its valid
     * start reported when it came in pieces: then one is a prefix. */
    size_t common = whole.len < pieces.len ? whole.len : pieces.len;
    CHECK(memcmp(whole.bytes, pieces.bytes, common) == 0);
    CHECK(whole.len == pieces.len || whole.final_code == -WS_CLOSE_BAD_DATA);
    return 0;
}
