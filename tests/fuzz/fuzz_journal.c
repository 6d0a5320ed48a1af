/*
 * libFuzzer target for journal replay: the bytes of a journal file go
 * through journal_scan() and every record it accepts through the record
 * codecs (qj_decode, tj_decode) into fresh queue and task engines, as the
 * store does at start-up. Beyond "no crash, no leak, no UB":
 *  - no record with a bad checksum is ever accepted: the harness reads the
 *    stored crc at the record's offset and recomputes CRC-32C with its own
 *    bitwise code (not the journal's);
 *  - accepted records are contiguous from the header to .end (batch
 *    headers between them, version 2), and lie inside [header, .end);
 *  - CLEAN covers every byte; version 1: TORN and CORRUPT point at a
 *    record that is bad by the harness's own reading, TORN means no valid
 *    record starts anywhere after it, CORRUPT names one that does;
 *    version 2: TORN means no complete, valid batch (a good batch header
 *    whose records are all valid and fill its length) starts after the
 *    cut, so a cut never drops an acknowledged batch.
 * The first byte steers: even = the rest is a journal file as is; odd = the
 * rest is a list of (u8 type, u8 length, bytes) that the harness frames
 * with good crcs into batches of up to four records behind a header, so that mutations reach the codecs and
 * the engines, then cuts the image or flips a byte in it (the second
 * byte says which, where), as a crash or a bad disk would.
 */
#include "fuzz.h"

#include "core/buf.h"
#include "core/timer.h"
#include "engine/queue.h"
#include "engine/task.h"
#include "journal/journal.h"
#include "journal/queue_journal.h"
#include "journal/records.h"
#include "journal/task_journal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CRC-32C, bit by bit: slow and obviously right. */
static uint32_t crc32c_ref(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Is there a valid record at img[off..len), by the format alone? */
static int valid_at(const uint8_t *img, size_t len, size_t off) {
    if (off > len || len - off < JOURNAL_RECORD_OVERHEAD)
        return 0;
    uint32_t n = le32(img + off);
    uint8_t type = img[off + 8];
    if (n > JOURNAL_RECORD_MAX || type == 0 || type >= JOURNAL_TYPE_RESERVED ||
        n > len - off - JOURNAL_RECORD_OVERHEAD)
        return 0;
    return crc32c_ref(0, img + off + 8, 1 + (size_t)n) == le32(img + off + 4);
}

/* Is there a complete, valid batch at img[off..len), by the format alone? */
static int valid_batch_at(const uint8_t *img, size_t len, size_t off) {
    uint64_t seq, blen;
    if (off > len || !journal_batch_parse((const char *)img + off, len - off, &seq, &blen))
        return 0;
    size_t p = off + JOURNAL_BATCH_HEADER;
    if (blen > len - p)
        return 0;
    size_t end = p + (size_t)blen;
    while (p < end) {
        if (!valid_at(img, end, p))
            return 0;
        p += JOURNAL_RECORD_OVERHEAD + le32(img + p);
    }
    return 1;
}

/* Skip batch headers at next_off (version 2) up to the record at off. */
static uint64_t skip_batch_headers(const uint8_t *img, size_t len, uint64_t next_off, uint64_t off) {
    uint64_t seq, blen;
    while (next_off < off && next_off < len &&
           journal_batch_parse((const char *)img + next_off, len - next_off, &seq, &blen))
        next_off += JOURNAL_BATCH_HEADER;
    return next_off;
}

struct replay {
    const uint8_t *img;
    size_t len;
    uint64_t next_off; /* where the next accepted record must start */
    uint64_t last_off; /* where the last one started */
    uint64_t records;
    struct queue_engine *qe;
    struct task_engine *te;
};

static int fire_n; /* fire results cycle through OK, FULL, transient, permanent */
static int some_fire(void *ctx, struct task *t, int64_t tick) {
    (void)ctx, (void)t, (void)tick;
    static const int results[] = {TASK_FIRE_OK, TASK_FIRE_FULL, 2, -1};
    return results[fire_n++ % 4];
}

static int decode_u64(const char *p, size_t len, uint64_t *v) {
    if (len != 8)
        return -1;
    *v = 0;
    for (int i = 7; i >= 0; i--)
        *v = *v << 8 | (uint8_t)p[i];
    return 0;
}

/* What store.c + qsvc_local_svc.c + tsvc_local.c do with a record; nonzero stops. */
static int on_record(void *arg, uint8_t type, const char *payload, size_t len, uint64_t off) {
    struct replay *r = arg;
    /* The record the scan accepted, checked against the bytes themselves. */
    CHECK(skip_batch_headers(r->img, r->len, r->next_off, off) == off);
    CHECK(off + JOURNAL_RECORD_OVERHEAD + len <= r->len);
    const uint8_t *rec = r->img + off;
    CHECK(le32(rec) == len && rec[8] == type);
    CHECK((const uint8_t *)payload == rec + JOURNAL_RECORD_OVERHEAD);
    CHECK(crc32c_ref(0, rec + 8, 1 + len) == le32(rec + 4)); /* never a bad checksum */
    CHECK(type != 0 && type < JOURNAL_TYPE_RESERVED && len <= JOURNAL_RECORD_MAX);
    r->last_off = off;
    r->next_off = off + JOURNAL_RECORD_OVERHEAD + len;
    r->records++;

    uint64_t id;
    if (type == REC_QUEUE_NEXT_ID && decode_u64(payload, len, &id) == 0) {
        queue_engine_set_next_id(r->qe, id);
        return 0;
    }
    if (type == REC_TASK_NEXT_ID && decode_u64(payload, len, &id) == 0) {
        task_engine_set_next_id(r->te, id);
        return 0;
    }
    if (type >= REC_QUEUE_FIRST && type <= REC_QUEUE_LAST) {
        struct qj_clock clk = {1700000000000};
        struct queue_event ev;
        if (qj_decode(type, payload, len, &clk, &ev) < 0)
            return 1;
        int st = queue_engine_replay(r->qe, &ev);
        return st != QUEUE_OK && st != QUEUE_ERR_NOTFOUND && st != QUEUE_ERR_EXISTS;
    }
    if (type >= TJ_TYPE_BASE && type <= TJ_TYPE_LAST) {
        struct task_event ev;
        struct task_spec spec;
        if (tj_decode(type, payload, len, 1700000000000, &ev, &spec) < 0)
            return 1;
        int st = task_engine_replay(r->te, &ev);
        return st != TASK_OK && st != TASK_ERR_NOTFOUND && st != TASK_ERR_EXISTS;
    }
    return 1; /* unknown type: the daemon refuses to start */
}

static void replay_image(const uint8_t *img, size_t len) {
    struct timer_wheel wheel;
    timer_wheel_init(&wheel, 1000);
    struct queue_engine_config qc = {.mem_limit = 1 << 20, .hash_seed = 42};
    struct task_engine_config tc;
    task_engine_config_default(&tc);
    tc.fire = some_fire;
    tc.max_tasks = 10000;
    tc.wall_minus_wheel = 1700000000000;
    struct replay r = {img, len, JOURNAL_HEADER_SIZE, 0, 0, queue_engine_new(&wheel, &qc),
                       task_engine_new(&wheel, &tc)};
    CHECK(r.qe && r.te);

    struct journal_scan_result res;
    memset(&res, 0, sizeof res);
    journal_scan((const char *)img, len, on_record, &r, &res);

    /* The record the callback stopped at is not counted as replayed. */
    CHECK(res.records == r.records - (res.status == JOURNAL_SCAN_STOPPED));
    int v1 = res.version == 1;
    switch (res.status) {
    case JOURNAL_SCAN_EMPTY:
        CHECK(len == 0 && r.records == 0);
        break;
    case JOURNAL_SCAN_BAD_HEADER:
        CHECK(r.records == 0 && res.reason);
        break;
    case JOURNAL_SCAN_CLEAN:
        CHECK(res.end == len && r.next_off <= len);
        break;
    case JOURNAL_SCAN_STOPPED:
        CHECK(r.records > 0 && res.bad == r.last_off);
        break;
    case JOURNAL_SCAN_TORN:
    case JOURNAL_SCAN_CORRUPT:
        CHECK(res.reason && res.bad < len && res.end <= res.bad && r.next_off <= res.end);
        if (v1) {
            CHECK(res.end == res.bad && res.bad == r.next_off);
            CHECK(!valid_at(img, len, (size_t)res.bad));
        }
        if (res.status == JOURNAL_SCAN_TORN) {
            CHECK(res.end == res.bad);
            for (size_t off = (size_t)res.bad + 1; off < len; off++)
                CHECK(v1 ? !valid_at(img, len, off) /* else a cut would drop a good record */
                         : !valid_batch_at(img, len, off)); /* ... or an acknowledged batch */
        } else if (v1 && !res.unproven) {
            CHECK(res.next_good > res.bad && valid_at(img, len, (size_t)res.next_good));
        }
        break;
    default:
        CHECK(!"unknown scan status");
    }

    /* Arm what replay rebuilt, as the daemon does, let a few hours pass in
     * steps (each advance moves a slice of timers down), then tear down. */
    task_engine_resume(r.te);
    for (uint64_t t = 1000; t < 4 * 3600 * 1000; t += 60 * 1000)
        timer_wheel_advance(&wheel, t);
    queue_engine_reap(r.qe, SIZE_MAX);
    task_engine_free(r.te);
    queue_engine_free(r.qe);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    if (!(data[0] & 1)) {
        /* An exact-size copy, so ASan catches any read past the end. */
        uint8_t *img = malloc(size - 1);
        CHECK(img);
        memcpy(img, data + 1, size - 1);
        replay_image(img, size - 1);
        free(img);
        return 0;
    }
    uint8_t damage = data[1];
    struct buf b = BUF_INIT, recs = BUF_INIT;
    CHECK(journal_header_encode(&b, 1700000000) == 0);
    uint64_t seq = 1;
    int nrec = 0;
    for (size_t i = 2; i + 2 <= size;) {
        uint8_t type = data[i];
        size_t n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = size - i;
        if (type && type < JOURNAL_TYPE_RESERVED) {
            CHECK(journal_encode(&recs, type, data + i, n) == 0);
            nrec++;
        }
        i += n;
        if (nrec == 4 || (i + 2 > size && nrec)) { /* a batch, as the writer frames one */
            unsigned char h[JOURNAL_BATCH_HEADER];
            journal_batch_header(h, seq++, recs.len);
            CHECK(buf_append(&b, h, sizeof h) == 0 && buf_append(&b, buf_start(&recs), recs.len) == 0);
            buf_reset(&recs);
            nrec = 0;
        }
    }
    buf_free(&recs);
    size_t len = b.len;
    uint8_t *img = malloc(len);
    CHECK(img);
    memcpy(img, buf_start(&b), len);
    buf_free(&b);
    /* damage: 0..63 none; 64..127 cut at a point; 128..255 flip a byte. */
    size_t at = len > JOURNAL_HEADER_SIZE
                    ? JOURNAL_HEADER_SIZE + (size_t)(damage & 63) * (len - JOURNAL_HEADER_SIZE) / 64
                    : len;
    if (damage >= 64 && damage < 128)
        len = at;
    else if (damage >= 128 && at < len)
        img[at] ^= (uint8_t)(1u << (damage & 7));
    replay_image(img, len);
    free(img);
    return 0;
}
