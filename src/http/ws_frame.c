/*
 * ws_frame: the WebSocket frame reader (see ws_frame.h). A frame's head is
 * gathered in the reader (it may arrive a byte at a time); payloads are
 * unmasked where they lie and reported as they arrive, so a message never
 * has to be whole in the input; control frames (at most 125 bytes) are
 * gathered in the reader and reported whole.
 */
#include "http/ws_frame.h"

#include <string.h>

void ws_reader_init(struct ws_reader *r, uint64_t max_fragment, uint64_t max_message) {
    memset(r, 0, sizeof *r);
    r->max_fragment = max_fragment;
    r->max_message = max_message;
}

/* UTF-8, one byte at a time: the state is the continuation bytes still
 * expected (low byte) and the range the next one must be in (RFC 3629's
 * table: it excludes overlongs, surrogates and code points past 10FFFF).
 * -1 when b cannot come next. */
static int utf8_step(uint32_t *st, unsigned char b) {
    uint32_t need = *st & 0xff, lo = (*st >> 8) & 0xff, hi = (*st >> 16) & 0xff;
    if (need) {
        if (b < lo || b > hi)
            return -1;
        need--;
        *st = need ? need | 0x80u << 8 | 0xBFu << 16 : 0;
        return 0;
    }
    if (b < 0x80)
        return 0;
    if (b >= 0xC2 && b <= 0xDF)
        need = 1, lo = 0x80, hi = 0xBF;
    else if (b == 0xE0)
        need = 2, lo = 0xA0, hi = 0xBF;
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
        need = 2, lo = 0x80, hi = 0xBF;
    else if (b == 0xED)
        need = 2, lo = 0x80, hi = 0x9F;
    else if (b == 0xF0)
        need = 3, lo = 0x90, hi = 0xBF;
    else if (b >= 0xF1 && b <= 0xF3)
        need = 3, lo = 0x80, hi = 0xBF;
    else if (b == 0xF4)
        need = 3, lo = 0x80, hi = 0x8F;
    else
        return -1;
    *st = need | lo << 8 | hi << 16;
    return 0;
}

int ws_utf8_valid(const unsigned char *s, size_t n) {
    uint32_t st = 0;
    for (size_t i = 0; i < n; i++)
        if (utf8_step(&st, s[i]) < 0)
            return 0;
    return st == 0;
}

static size_t fail(struct ws_reader *r, struct ws_event *ev, size_t used, int code,
                   const char *why) {
    r->failed = 1;
    ev->kind = WS_EV_ERROR;
    ev->code = code;
    ev->why = why;
    return used;
}

/* Close codes a peer may send (RFC 6455 7.4, IANA registry): 1000-1003,
 * 1007-1014, 3000-4999. */
static int close_code_ok(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* The head gathered in r->head: its length once known (0: more needed). */
static size_t head_need(const struct ws_reader *r) {
    if (r->head_have < 2)
        return 2;
    size_t n = 2 + ((r->head[1] & 0x80) ? 4 : 0);
    unsigned l7 = r->head[1] & 0x7f;
    return n + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
}

/* Check a complete head and start its frame; 0, or the close code. */
static int head_start(struct ws_reader *r, const char **why) {
    const unsigned char *h = r->head;
    int fin = h[0] >> 7, opcode = h[0] & 0x0f;
    unsigned l7 = h[1] & 0x7f;
    uint64_t len = l7;
    size_t at = 2;
    if (l7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len >> 63)
            return *why = "frame length has its most significant bit set", WS_CLOSE_PROTOCOL;
    }
    if (h[0] & 0x70)
        return *why = "reserved bits set (no extension was negotiated)", WS_CLOSE_PROTOCOL;
    if (!(h[1] & 0x80))
        return *why = "client frames must be masked", WS_CLOSE_PROTOCOL;
    memcpy(r->mask, h + at, 4);
    switch (opcode) {
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!fin)
            return *why = "control frames must not be fragmented", WS_CLOSE_PROTOCOL;
        if (len > 125)
            return *why = "control frame payload over 125 bytes", WS_CLOSE_PROTOCOL;
        break;
    case WS_OP_CONT:
        if (!r->in_message)
            return *why = "continuation frame without a message", WS_CLOSE_PROTOCOL;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (r->in_message)
            return *why = "new message before the last one ended", WS_CLOSE_PROTOCOL;
        break;
    default:
        return *why = "unknown opcode", WS_CLOSE_PROTOCOL;
    }
    if (opcode < WS_OP_CLOSE) {
        /* The message first: a frame larger than the whole message may be
         * is a message too big (1009), not merely a large fragment. */
        if (len > r->max_message - (opcode == WS_OP_CONT ? r->message_len : 0))
            return *why = "message over max_message_size", WS_CLOSE_TOO_BIG;
        if (len > r->max_fragment)
            return *why = "frame over max_fragment_size", WS_CLOSE_PROTOCOL;
        if (opcode != WS_OP_CONT) {
            r->in_message = 1;
            r->message_binary = opcode == WS_OP_BINARY;
            r->message_len = 0;
            r->utf8 = 0;
        }
    }
    r->in_frame = 1;
    r->fin = fin;
    r->opcode = opcode;
    r->frame_len = len;
    r->frame_done = 0;
    r->control_len = 0;
    return 0;
}

static void unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset) {
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

/* The current data message ends: its event (or the error). */
static size_t message_end(struct ws_reader *r, struct ws_event *ev, size_t used) {
    r->end_pending = 0;
    r->in_message = 0;
    if (!r->message_binary && r->utf8 != 0)
        return fail(r, ev, used, WS_CLOSE_BAD_DATA, "text message is not UTF-8");
    ev->kind = WS_EV_END;
    ev->binary = r->message_binary;
    ev->len = (size_t)r->message_len;
    return used;
}

size_t ws_read(struct ws_reader *r, unsigned char *p, size_t n, struct ws_event *ev) {
    memset(ev, 0, sizeof *ev);
    ev->kind = WS_EV_NONE;
    if (r->failed || r->closed)
        return 0;
    if (r->end_pending)
        return message_end(r, ev, 0);
    size_t used = 0;
    for (;;) {
        if (!r->in_frame) {
            size_t need;
            while ((need = head_need(r)) > r->head_have && r->head_have < 2 + 8 + 4) {
                if (used == n)
                    return used;
                r->head[r->head_have++] = p[used++];
            }
            r->head_have = 0;
            const char *why = NULL;
            int code = head_start(r, &why);
            if (code)
                return fail(r, ev, used, code, why);
        }
        if (r->opcode >= WS_OP_CLOSE) {
            size_t k = (size_t)(r->frame_len - r->frame_done);
            if (k > n - used)
                k = n - used;
            memcpy(r->control + r->control_len, p + used, k);
            unmask(r->control + r->control_len, k, r->mask, r->frame_done);
            r->control_len += k;
            r->frame_done += k;
            used += k;
            if (r->frame_done < r->frame_len)
                return used;
            r->in_frame = 0;
            ev->data = r->control;
            ev->len = r->control_len;
            if (r->opcode == WS_OP_PING) {
                ev->kind = WS_EV_PING;
                return used;
            }
            if (r->opcode == WS_OP_PONG) {
                ev->kind = WS_EV_PONG;
                return used;
            }
            /* close */
            if (r->control_len == 1)
                return fail(r, ev, used, WS_CLOSE_PROTOCOL, "close payload of one byte");
            ev->code = WS_CLOSE_NO_STATUS;
            if (r->control_len >= 2) {
                ev->code = r->control[0] << 8 | r->control[1];
                if (!close_code_ok(ev->code))
                    return fail(r, ev, used, WS_CLOSE_PROTOCOL, "close code not allowed");
                if (!ws_utf8_valid(r->control + 2, r->control_len - 2))
                    return fail(r, ev, used, WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
                ev->data = r->control + 2;
                ev->len = r->control_len - 2;
            }
            r->closed = 1;
            ev->kind = WS_EV_CLOSE;
            return used;
        }
        /* a data frame's payload */
        size_t k = (size_t)(r->frame_len - r->frame_done);
        if (k > n - used)
            k = n - used;
        if (k == 0 && r->frame_len > 0)
            return used; /* more needed */
        unsigned char *d = p + used;
        unmask(d, k, r->mask, r->frame_done);
        if (!r->message_binary)
            for (size_t i = 0; i < k; i++)
                if (utf8_step(&r->utf8, d[i]) < 0)
                    return fail(r, ev, used + i, WS_CLOSE_BAD_DATA, "text message is not UTF-8");
        r->frame_done += k;
        r->message_len += k;
        used += k;
        int frame_end = r->frame_done == r->frame_len;
        if (frame_end)
            r->in_frame = 0;
        if (k > 0) {
            ev->kind = WS_EV_DATA;
            ev->data = d;
            ev->len = k;
            ev->binary = r->message_binary;
            if (frame_end && r->fin)
                r->end_pending = 1;
            return used;
        }
        if (r->fin)
            return message_end(r, ev, used); /* an empty last frame */
    }
}

size_t ws_head_write(unsigned char *out, int fin, int opcode, uint64_t len) {
    out[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}
