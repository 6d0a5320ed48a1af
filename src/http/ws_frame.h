/*
 * ws_frame: the WebSocket frame reader of a server (RFC 6455 5), pure: no
 * I/O, no allocation. It is fed the bytes a client sends, in any pieces,
 * unmasks payloads in place, and reports one event at a time: a piece of a
 * data message's payload, the end of a message, a ping, a pong, a close,
 * or the protocol error that ends the connection (with the close code to
 * send: 1002 protocol error, 1007 bad UTF-8 in text, 1009 too large).
 * Control frames may come between the fragments of a message; text
 * messages are checked to be UTF-8 across fragment boundaries.
 * ws_head_write writes the head of a frame the server sends (unmasked).
 */
#ifndef AWAITD_WS_FRAME_H
#define AWAITD_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_NO_STATUS = 1005, /* a close without a code (never sent) */
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_TOO_BIG = 1009,
};

enum ws_event_kind {
    WS_EV_NONE,    /* more bytes are needed */
    WS_EV_DATA,    /* data, len: the next payload bytes of the current message */
    WS_EV_END,     /* the current message is complete (binary tells its kind) */
    WS_EV_PING,    /* data, len: the ping's payload (answer with a pong of it) */
    WS_EV_PONG,    /* data, len: an unsolicited or answering pong (ignore) */
    WS_EV_CLOSE,   /* code (WS_CLOSE_NO_STATUS if none), data, len: the reason */
    WS_EV_ERROR,   /* code: the close code to send; why: what was wrong. Final. */
};

struct ws_event {
    enum ws_event_kind kind;
    const unsigned char *data; /* inside the buffer given to ws_read */
    size_t len;
    int binary;   /* WS_EV_DATA, WS_EV_END: the message is binary (else text) */
    int code;     /* WS_EV_CLOSE, WS_EV_ERROR */
    const char *why;
};

struct ws_reader {
    /* limits: set before the first ws_read */
    uint64_t max_fragment; /* a data frame's payload (larger: 1002, as go-httpbin) */
    uint64_t max_message;  /* a message's payload (larger: 1009) */
    /* state */
    unsigned char head[14];
    size_t head_have;
    int in_frame, fin, opcode;
    unsigned char mask[4];
    uint64_t frame_len, frame_done;
    int in_message, message_binary;
    uint64_t message_len;
    uint32_t utf8; /* the text message's UTF-8 decoder state (0: at a boundary) */
    unsigned char control[125];
    size_t control_len;
    int end_pending; /* a message's last payload was reported: WS_EV_END next */
    int failed, closed;
};

/* A reader with these limits. */
void ws_reader_init(struct ws_reader *r, uint64_t max_fragment, uint64_t max_message);

/* Read from p[0..n) (modified: payloads are unmasked in place): returns the
 * bytes consumed and fills ev with one event (WS_EV_NONE when all n bytes
 * were consumed without completing one). Call again with the rest. After
 * WS_EV_ERROR or WS_EV_CLOSE nothing more is read (0, WS_EV_NONE). */
size_t ws_read(struct ws_reader *r, unsigned char *p, size_t n, struct ws_event *ev);

/* The head of a server frame (FIN set unless more fragments follow) into
 * out (at most 10 bytes); its length. */
size_t ws_head_write(unsigned char *out, int fin, int opcode, uint64_t len);

/* Is s[0..n) UTF-8 (RFC 3629: no surrogates, no overlongs)? */
int ws_utf8_valid(const unsigned char *s, size_t n);

#endif
