/*
 * The WebSocket frame reader (http/ws_frame.c): messages whole, fragmented
 * and fed a byte at a time, control frames between fragments, the close
 * frame's code and reason, every protocol error with its close code, the
 * limits, UTF-8 across fragment boundaries, and the server's frame heads.
 */
#include "check_main.h"

#include "http/ws_frame.h"

#include <string.h>

/* A masked client frame into out: its length. */
static size_t frame(unsigned char *out, int fin, int opcode, const void *payload, size_t len) {
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = ws_head_write(out, fin, opcode, len);
    out[1] |= 0x80;
    memcpy(out + h, mask, 4);
    for (size_t i = 0; i < len; i++)
        out[h + 4 + i] = ((const unsigned char *)payload)[i] ^ mask[i & 3];
    return h + 4 + len;
}

struct seen {
    unsigned char msg[70000];
    size_t msg_len;
    int messages, binary, pings, pongs, closes, close_code, error;
    char reason[126];
};

/* Feed buf in pieces of step bytes (0: all at once), collecting events. */
static void feed(struct ws_reader *r, unsigned char *buf, size_t n, size_t step, struct seen *s) {
    size_t off = 0;
    while (off < n && !s->error && !s->closes) {
        size_t piece = step && n - off > step ? step : n - off;
        size_t done = 0;
        for (;;) {
            struct ws_event ev;
            size_t k = ws_read(r, buf + off + done, piece - done, &ev);
            done += k;
            EXPECT(done <= piece);
            if (ev.kind == WS_EV_NONE) {
                EXPECT_EQ(done, piece);
                break;
            }
            switch (ev.kind) {
            case WS_EV_DATA:
                EXPECT(ev.data >= buf && ev.data + ev.len <= buf + n);
                memcpy(s->msg + s->msg_len, ev.data, ev.len);
                s->msg_len += ev.len;
                break;
            case WS_EV_END:
                s->messages++;
                s->binary = ev.binary;
                break;
            case WS_EV_PING: s->pings++; break;
            case WS_EV_PONG: s->pongs++; break;
            case WS_EV_CLOSE:
                s->closes++;
                s->close_code = ev.code;
                memcpy(s->reason, ev.data, ev.len);
                s->reason[ev.len] = 0;
                break;
            case WS_EV_ERROR:
                s->error = ev.code;
                EXPECT(ev.why != NULL);
                break;
            default: break;
            }
            if (s->error || s->closes)
                break;
        }
        off += piece;
    }
}

static struct seen run(unsigned char *buf, size_t n, size_t step, uint64_t max_frag,
                       uint64_t max_msg) {
    struct ws_reader r;
    ws_reader_init(&r, max_frag, max_msg);
    struct seen s;
    memset(&s, 0, sizeof s);
    feed(&r, buf, n, step, &s);
    return s;
}

START_TEST(test_messages_any_pieces) {
    static unsigned char buf[80000], copy[80000];
    static unsigned char big[66000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    size_t n = 0;
    n += frame(buf + n, 1, WS_OP_TEXT, "hello", 5);
    n += frame(buf + n, 1, WS_OP_BINARY, big, sizeof big); /* 64-bit length */
    n += frame(buf + n, 1, WS_OP_TEXT, "", 0);
    size_t steps[] = {0, 1, 2, 3, 7, 125, 4096};
    for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
        memcpy(copy, buf, n);
        struct ws_reader r;
        ws_reader_init(&r, 1 << 20, 1 << 20);
        struct seen s;
        memset(&s, 0, sizeof s);
        feed(&r, copy, n, steps[si], &s);
        EXPECT_EQ(s.error, 0);
        EXPECT_EQ(s.messages, 3);
        EXPECT_EQ(s.msg_len, 5 + sizeof big);
        EXPECT(memcmp(s.msg, "hello", 5) == 0);
        EXPECT(memcmp(s.msg + 5, big, sizeof big) == 0);
    }
}
END_TEST

START_TEST(test_fragments_with_control_between) {
    unsigned char buf[512];
    size_t n = 0;
    n += frame(buf + n, 0, WS_OP_TEXT, "frag", 4);
    n += frame(buf + n, 1, WS_OP_PING, "p", 1);
    n += frame(buf + n, 0, WS_OP_CONT, "", 0);
    n += frame(buf + n, 1, WS_OP_PONG, "", 0);
    n += frame(buf + n, 1, WS_OP_CONT, "ment", 4);
    n += frame(buf + n, 1, WS_OP_CLOSE, "\x03\xe8" "bye", 5);
    for (size_t step = 0; step < 4; step++) {
        unsigned char copy[512];
        memcpy(copy, buf, n);
        struct seen s = run(copy, n, step, 100, 100);
        EXPECT_EQ(s.error, 0);
        EXPECT_EQ(s.messages, 1);
        EXPECT_EQ(s.binary, 0);
        EXPECT_EQ(s.msg_len, 8);
        EXPECT(memcmp(s.msg, "fragment", 8) == 0);
        EXPECT_EQ(s.pings, 1);
        EXPECT_EQ(s.pongs, 1);
        EXPECT_EQ(s.closes, 1);
        EXPECT_EQ(s.close_code, 1000);
        EXPECT(strcmp(s.reason, "bye") == 0);
    }
}
END_TEST

START_TEST(test_close_forms) {
    unsigned char buf[256];
    size_t n = frame(buf, 1, WS_OP_CLOSE, "", 0);
    struct seen s = run(buf, n, 0, 100, 100);
    EXPECT_EQ(s.closes, 1);
    EXPECT_EQ(s.close_code, WS_CLOSE_NO_STATUS);
    const struct {
        const char *payload;
        size_t len;
        int error;
    } cases[] = {
        {"\x0f\xa0", 2, 0},         /* 4000: an application's code */
        {"\x03\xf3", 2, 0},         /* 1011 */
        {"\x03", 1, WS_CLOSE_PROTOCOL},
        {"\x03\xed", 2, WS_CLOSE_PROTOCOL}, /* 1005 may not be sent */
        {"\x03\xee", 2, WS_CLOSE_PROTOCOL}, /* 1006 */
        {"\x03\xe7", 2, WS_CLOSE_PROTOCOL}, /* 999 */
        {"\x0b\xb7", 2, WS_CLOSE_PROTOCOL}, /* 2999 */
        {"\x13\x88", 2, WS_CLOSE_PROTOCOL}, /* 5000 */
        {"\x03\xe8\xff", 3, WS_CLOSE_BAD_DATA},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = frame(buf, 1, WS_OP_CLOSE, cases[i].payload, cases[i].len);
        s = run(buf, n, 0, 100, 100);
        EXPECT_EQ(s.error, cases[i].error);
        EXPECT_EQ(s.closes, cases[i].error ? 0 : 1);
    }
    /* Nothing is read after a close. */
    n = frame(buf, 1, WS_OP_CLOSE, "", 0);
    n += frame(buf + n, 1, WS_OP_TEXT, "x", 1);
    struct ws_reader r;
    ws_reader_init(&r, 100, 100);
    struct ws_event ev;
    size_t k = ws_read(&r, buf, n, &ev);
    EXPECT_EQ(ev.kind, WS_EV_CLOSE);
    EXPECT_EQ(k, 6);
    EXPECT_EQ(ws_read(&r, buf + k, n - k, &ev), 0);
    EXPECT_EQ(ev.kind, WS_EV_NONE);
}
END_TEST

START_TEST(test_protocol_errors) {
    unsigned char buf[512], payload[200];
    memset(payload, 'a', sizeof payload);
    struct {
        unsigned char b[16];
        size_t n;
        int code;
    } raw[] = {
        {{0x81, 0x01, 'x'}, 3, WS_CLOSE_PROTOCOL},                 /* not masked */
        {{0xc1, 0x80, 1, 2, 3, 4}, 6, WS_CLOSE_PROTOCOL},          /* RSV1 */
        {{0x83, 0x80, 1, 2, 3, 4}, 6, WS_CLOSE_PROTOCOL},          /* opcode 3 */
        {{0x8b, 0x80, 1, 2, 3, 4}, 6, WS_CLOSE_PROTOCOL},          /* opcode 0xB */
        {{0x09, 0x80, 1, 2, 3, 4}, 6, WS_CLOSE_PROTOCOL},          /* fragmented ping */
        {{0x89, 0xfe, 0, 126, 1, 2, 3, 4}, 8, WS_CLOSE_PROTOCOL},  /* ping of 126 */
        {{0x80, 0x80, 1, 2, 3, 4}, 6, WS_CLOSE_PROTOCOL},          /* continuation first */
        {{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 14, WS_CLOSE_PROTOCOL}, /* 2^63 */
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        struct seen s = run(raw[i].b, raw[i].n, 0, 100, 100);
        EXPECT_EQ(s.error, raw[i].code);
    }
    /* A new message inside a fragmented one. */
    size_t n = frame(buf, 0, WS_OP_TEXT, "a", 1);
    n += frame(buf + n, 1, WS_OP_BINARY, "b", 1);
    EXPECT_EQ(run(buf, n, 0, 100, 100).error, WS_CLOSE_PROTOCOL);
    /* Limits: a fragment over max_fragment 1002, a message over max_message 1009. */
    n = frame(buf, 1, WS_OP_BINARY, payload, 60);
    EXPECT_EQ(run(buf, n, 0, 50, 100).error, WS_CLOSE_PROTOCOL);
    EXPECT_EQ(run(buf, n, 0, 60, 60).error, 0);
    n = frame(buf, 1, WS_OP_BINARY, payload, 101);
    EXPECT_EQ(run(buf, n, 0, 50, 100).error, WS_CLOSE_TOO_BIG);
    n = frame(buf, 0, WS_OP_BINARY, payload, 50);
    n += frame(buf + n, 0, WS_OP_CONT, payload, 50);
    n += frame(buf + n, 1, WS_OP_CONT, payload, 1);
    struct seen s = run(buf, n, 0, 50, 100);
    EXPECT_EQ(s.error, WS_CLOSE_TOO_BIG);
    EXPECT_EQ(s.msg_len, 100); /* refused at the head of the frame past the limit */
}
END_TEST

START_TEST(test_utf8) {
    /* é split across fragments is fine; a lone continuation byte, a
     * surrogate, an overlong and a message ending mid-character are not. */
    unsigned char buf[128];
    size_t n = frame(buf, 0, WS_OP_TEXT, "\xc3", 1);
    n += frame(buf + n, 1, WS_OP_CONT, "\xa9", 1);
    struct seen s = run(buf, n, 1, 100, 100);
    EXPECT_EQ(s.error, 0);
    EXPECT_EQ(s.messages, 1);
    const char *bad[] = {"\x80", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "ok\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = frame(buf, 1, WS_OP_TEXT, bad[i], strlen(bad[i]));
        EXPECT_EQ(run(buf, n, 0, 100, 100).error, WS_CLOSE_BAD_DATA);
        n = frame(buf, 1, WS_OP_BINARY, bad[i], strlen(bad[i]));
        EXPECT_EQ(run(buf, n, 0, 100, 100).error, 0);
    }
    EXPECT(ws_utf8_valid((const unsigned char *)"\xf0\x9f\x98\x80 \xe2\x82\xac", 8));
    EXPECT(!ws_utf8_valid((const unsigned char *)"\xf0\x9f\x98", 3));
}
END_TEST

START_TEST(test_head_write) {
    unsigned char h[10];
    EXPECT_EQ(ws_head_write(h, 1, WS_OP_TEXT, 5), 2);
    EXPECT(h[0] == 0x81 && h[1] == 5);
    EXPECT_EQ(ws_head_write(h, 0, WS_OP_BINARY, 126), 4);
    EXPECT(h[0] == 0x02 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    EXPECT_EQ(ws_head_write(h, 1, WS_OP_CONT, 65536), 10);
    EXPECT(h[0] == 0x80 && h[1] == 127 && h[7] == 1 && h[8] == 0 && h[9] == 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("ws_frame");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_messages_any_pieces);
    tcase_add_test(tc, test_fragments_with_control_between);
    tcase_add_test(tc, test_close_forms);
    tcase_add_test(tc, test_protocol_errors);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_head_write);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(suite());
}
