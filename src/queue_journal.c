#include "queue_journal.h"

#include "buf.h"
#include "journal.h"

#include <string.h>

static void put_u8(char **p, uint8_t v) {
    *(*p)++ = (char)v;
}

static void put_u32(char **p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        *(*p)++ = (char)(v >> (8 * i));
}

static void put_u64(char **p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        *(*p)++ = (char)(v >> (8 * i));
}

static void put_bytes(char **p, const void *s, size_t n) {
    if (n)
        memcpy(*p, s, n);
    *p += n;
}

/* Wheel time -> wall time; 0 stays 0 (it means "now" / "none"). */
static uint64_t to_wall(uint64_t t, const struct qj_clock *clk) {
    return t ? (uint64_t)((int64_t)t + clk->wall_minus_wheel) : 0;
}

static uint64_t to_wheel(uint64_t t, const struct qj_clock *clk) {
    if (t == 0)
        return 0;
    int64_t w = (int64_t)t - clk->wall_minus_wheel;
    return w > 1 ? (uint64_t)w : 1;
}

#define FIXED_SIZE (8 + 8 + 4 + 8 + 1 + 1 + 8 + 8 + 4 + 4 + 8)

int qj_encode(struct buf *out, const struct queue_event *ev, const struct qj_clock *clk) {
    size_t qlen = ev->queue_len > 255 ? 255 : ev->queue_len;
    size_t klen = ev->key ? (ev->key_len > 255 ? 255 : ev->key_len) : 0;
    size_t plen = ev->type == QUEUE_EV_PUT ? ev->len : 0;
    size_t n = 1 + qlen + FIXED_SIZE + 1 + klen + 4 + plen;
    char small[512];
    char *rec = n <= sizeof small ? small : NULL;
    struct buf tmp = BUF_INIT;
    if (!rec) {
        if (buf_reserve(&tmp, n) < 0)
            return -1;
        rec = buf_start(&tmp);
    }
    char *p = rec;
    put_u8(&p, (uint8_t)qlen);
    put_bytes(&p, ev->queue, qlen);
    put_u64(&p, to_wall(ev->now, clk));
    put_u64(&p, ev->id);
    put_u32(&p, (uint32_t)ev->priority);
    put_u64(&p, to_wall(ev->visible_at, clk));
    put_u8(&p, (uint8_t)ev->immediate);
    put_u8(&p, (uint8_t)ev->reason);
    put_u64(&p, ev->settings.maxsize);
    put_u64(&p, ev->settings.lease_ms);
    put_u32(&p, ev->settings.max_attempts);
    put_u32(&p, ev->settings.max_payload);
    put_u64(&p, ev->settings.key_window_ms);
    put_u8(&p, (uint8_t)klen);
    put_bytes(&p, ev->key, klen);
    put_u32(&p, (uint32_t)plen);
    put_bytes(&p, ev->payload, plen);
    int r = journal_encode(out, (uint8_t)(ev->type + 1), rec, n);
    buf_free(&tmp);
    return r;
}

struct reader {
    const unsigned char *p, *end;
    int bad;
};

static uint64_t get_n(struct reader *r, int bytes) {
    if (r->end - r->p < bytes) {
        r->bad = 1;
        r->p = r->end;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    return v;
}

static const char *get_bytes(struct reader *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        r->p = r->end;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n;
    return s;
}

int qj_decode(uint8_t type, const char *payload, size_t len, const struct qj_clock *clk,
              struct queue_event *ev) {
    if (type < 1 || type > QUEUE_EV_SHUTDOWN + 1)
        return -1;
    struct reader r = {(const unsigned char *)payload, (const unsigned char *)payload + len, 0};
    memset(ev, 0, sizeof *ev);
    ev->type = type - 1;
    ev->queue_len = (size_t)get_n(&r, 1);
    ev->queue = get_bytes(&r, ev->queue_len);
    ev->now = to_wheel(get_n(&r, 8), clk);
    ev->id = get_n(&r, 8);
    ev->priority = (int32_t)(uint32_t)get_n(&r, 4);
    ev->visible_at = to_wheel(get_n(&r, 8), clk);
    ev->immediate = (int)get_n(&r, 1);
    ev->reason = (int)get_n(&r, 1);
    ev->settings.maxsize = get_n(&r, 8);
    ev->settings.lease_ms = get_n(&r, 8);
    ev->settings.max_attempts = (uint32_t)get_n(&r, 4);
    ev->settings.max_payload = (uint32_t)get_n(&r, 4);
    ev->settings.key_window_ms = get_n(&r, 8);
    ev->key_len = (size_t)get_n(&r, 1);
    ev->key = ev->key_len ? get_bytes(&r, ev->key_len) : NULL;
    ev->len = (size_t)get_n(&r, 4);
    ev->payload = get_bytes(&r, ev->len);
    if (r.bad || r.p != r.end)
        return -1;
    return 0;
}
