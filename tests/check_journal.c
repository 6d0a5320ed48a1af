/*
 * Unit tests for the journal format (encode, scan, torn tails, corruption,
 * repair) and the writer thread (completions on a real libevent loop, group
 * commit, modes, injected EIO/ENOSPC with recovery, backpressure,
 * compaction under load). Faults come through jw_options' seams; every
 * test ends by replaying the file and checking what a restart would see.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/clock.h"
#include "journal/journal.h"
#include "journal/journal_writer.h"
#include "check_main.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum { T_PUT = 1, T_ACK = 2, PAYLOAD = 100, MAXSEQ = 1 << 16 };

static char dir[64], jpath[128];

static void setup(void) {
    strcpy(dir, "/tmp/check_journal.XXXXXX");
    EXPECT(mkdtemp(dir) != NULL);
    snprintf(jpath, sizeof jpath, "%s/j", dir);
}

static void teardown(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void file_put(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    EXPECT(fd >= 0 && write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static char *file_get(const char *path, size_t *len) {
    struct stat st;
    EXPECT(stat(path, &st) == 0);
    char *p = malloc((size_t)st.st_size + 1);
    int fd = open(path, O_RDONLY);
    EXPECT(fd >= 0 && read(fd, p, (size_t)st.st_size) == st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* A test payload: the sequence number, then filler. */
static void payload_make(char *p, uint64_t seq) {
    memset(p, 'a' + (int)(seq % 26), PAYLOAD);
    memcpy(p, &seq, sizeof seq);
}

/* Append the records in r as one batch (header, then r), and empty r. */
static void batch_add(struct buf *b, uint64_t seq, struct buf *r) {
    unsigned char h[JOURNAL_BATCH_HEADER];
    journal_batch_header(h, seq, r->len);
    EXPECT(buf_append(b, h, sizeof h) == 0 && buf_append(b, buf_start(r), r->len) == 0);
    buf_reset(r);
}

/* An image of header + n batches of one record each (type 1, payloads of
 * varying length), seq 1..n; offs[i] = the batch's offset. v1: version 1's
 * format instead (records without batches; offs[i] = the record's). */
static void image_make_v(struct buf *b, int n, size_t *offs, int v1) {
    struct buf r = BUF_INIT;
    EXPECT(journal_header_encode(b, 1700000000) == 0);
    if (v1)
        buf_start(b)[4] = 1;
    for (int i = 0; i < n; i++) {
        char p[PAYLOAD + 64] = {0};
        payload_make(p, (uint64_t)i);
        offs[i] = b->len;
        EXPECT(journal_encode(v1 ? b : &r, T_PUT, p, PAYLOAD - 40 + (size_t)(i * 7) % 64) == 0);
        if (!v1)
            batch_add(b, (uint64_t)i + 1, &r);
    }
    offs[n] = b->len;
    buf_free(&r);
}

static void image_make(struct buf *b, int n, size_t *offs) {
    image_make_v(b, n, offs, 0);
}

/* Replay collector: sequence numbers and types in file order. */
struct coll {
    size_t n;
    uint64_t seq[MAXSEQ];
    uint8_t type[MAXSEQ];
};
static struct coll C;

static int collect(void *arg, uint8_t type, const char *p, size_t len, uint64_t off) {
    struct coll *c = arg;
    EXPECT(len >= 8 && c->n < MAXSEQ);
    memcpy(&c->seq[c->n], p, 8);
    c->type[c->n++] = type;
    return 0;
}

/* Replay as a restart would; it must find a clean journal. */
static void replay_all(void) {
    struct journal_info info;
    char err[512];
    memset(&C, 0, sizeof C);
    int fd = journal_open_replay(jpath, collect, &C, 0, &info, err, sizeof err);
    ck_assert_msg(fd >= 0, "replay: %s", err);
    EXPECT(!info.truncated && !info.repaired);
    close(fd);
}

START_TEST(crc_vectors) {
    EXPECT_EQ(journal_crc32c(0, "123456789", 9), 0xE3069283u);
    EXPECT_EQ(journal_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    char z[32] = {0};
    EXPECT_EQ(journal_crc32c(0, z, 32), 0x8A9136AAu);
    unsigned char r[512];
    for (size_t i = 0; i < sizeof r; i++)
        r[i] = (unsigned char)(i * 2654435761u >> 13);
    for (size_t a = 0; a < 8; a++)
        for (size_t n = 0; n + a <= 300; n += 7) {
            uint32_t hw = journal_crc32c(0, r + a, n), sw = journal_crc32c_sw(0, r + a, n);
            EXPECT_EQ(hw, sw);
            EXPECT_EQ(journal_crc32c(journal_crc32c(0, r + a, n / 3), r + a + n / 3, n - n / 3),
                      hw);
        }
}
END_TEST

static int rt_cb(void *arg, uint8_t type, const char *p, size_t len, uint64_t off) {
    static const size_t lens[] = {0, 1, 7, 8, 9, 100, 4096, 70000};
    size_t *i = arg;
    EXPECT_EQ(type, *i + 1);
    EXPECT_EQ(len, lens[*i]);
    for (size_t k = 0; k < len; k++)
        EXPECT_EQ((unsigned char)p[k], (unsigned char)(k + *i));
    (*i)++;
    return 0;
}

START_TEST(encode_scan_roundtrip) {
    static const size_t lens[] = {0, 1, 7, 8, 9, 100, 4096, 70000};
    struct buf b = BUF_INIT, rb = BUF_INIT;
    EXPECT(journal_header_encode(&b, 42) == 0);
    char *p = malloc(70000);
    for (size_t i = 0; i < 8; i++) {
        for (size_t k = 0; k < lens[i]; k++)
            p[k] = (char)(k + i);
        EXPECT(journal_encode(&rb, (uint8_t)(i + 1), p, lens[i]) == 0);
        if (i == 2 || i == 7)
            batch_add(&b, i == 2 ? 7 : 8, &rb);
    }
    size_t before = rb.len;
    errno = 0;
    EXPECT(journal_encode(&rb, 0, p, 1) < 0 && errno == EINVAL);
    EXPECT(journal_encode(&rb, JOURNAL_TYPE_RESERVED, p, 1) < 0 && errno == EINVAL);
    EXPECT(journal_encode(&rb, 1, p, JOURNAL_RECORD_MAX + 1) < 0 && errno == EINVAL);
    EXPECT_EQ(rb.len, before);
    buf_free(&rb);
    struct journal_scan_result r;
    size_t i = 0;
    journal_scan(buf_start(&b), b.len, rt_cb, &i, &r);
    EXPECT_EQ(r.status, JOURNAL_SCAN_CLEAN);
    EXPECT_EQ(r.records, 8);
    EXPECT_EQ(r.batches, 2);
    EXPECT_EQ(r.last_seq, 8);
    EXPECT_EQ(i, 8);
    EXPECT_EQ(r.end, b.len);
    EXPECT_EQ(r.created, 42);
    EXPECT_EQ(r.version, JOURNAL_VERSION);
    /* Headers that are not ours. */
    journal_scan(buf_start(&b), 0, NULL, NULL, &r);
    EXPECT_EQ(r.status, JOURNAL_SCAN_EMPTY);
    journal_scan(buf_start(&b), 10, NULL, NULL, &r);
    EXPECT_EQ(r.status, JOURNAL_SCAN_BAD_HEADER);
    buf_start(&b)[4] = 3; /* a damaged version field: the body is a journal's */
    journal_scan(buf_start(&b), b.len, NULL, NULL, &r);
    EXPECT(r.status == JOURNAL_SCAN_BAD_HEADER && strstr(r.reason, "version"));
    EXPECT_EQ(r.repairable, 2);
    buf_start(&b)[0] = 'X';
    journal_scan(buf_start(&b), b.len, NULL, NULL, &r);
    EXPECT(r.status == JOURNAL_SCAN_BAD_HEADER && strstr(r.reason, "magic"));
    EXPECT_EQ(r.repairable, 2);
    journal_scan("not a journal at all, not at all", 33, NULL, NULL, &r);
    EXPECT(r.status == JOURNAL_SCAN_BAD_HEADER && r.repairable == 0);
    free(p);
    buf_free(&b);
}
END_TEST

/* Every single-bit flip in a middle batch is corruption there, and so is
 * one in the complete last batch (a flip is no torn write). Random garbage
 * never crashes. */
START_TEST(flipped_bits) {
    struct buf b = BUF_INIT;
    size_t off[6];
    image_make(&b, 5, off);
    char *d = buf_start(&b);
    struct journal_scan_result r;
    for (size_t bit = off[2] * 8; bit < off[3] * 8; bit++) {
        d[bit / 8] ^= (char)(1 << bit % 8);
        journal_scan(d, b.len, NULL, NULL, &r);
        ck_assert_msg(r.status == JOURNAL_SCAN_CORRUPT, "bit %zu: %d", bit, r.status);
        EXPECT(r.bad == off[2] || r.bad == off[2] + JOURNAL_BATCH_HEADER);
        EXPECT_EQ(r.end, off[2]);
        EXPECT_EQ(r.records, 2);
        EXPECT_EQ(r.next_good, off[3]);
        EXPECT_EQ(r.dropped_records, 2);
        EXPECT_EQ(r.dropped_batches, 2);
        d[bit / 8] ^= (char)(1 << bit % 8);
    }
    struct journal_record rec;
    d[off[2] + 45] ^= 4;
    EXPECT_EQ(journal_record_parse(d + off[2] + JOURNAL_BATCH_HEADER, b.len - off[2] - 25, &rec),
              JOURNAL_PARSE_BAD_CRC);
    d[off[2] + 45] ^= 4;
    for (size_t bit = off[4] * 8; bit < off[5] * 8; bit++) {
        d[bit / 8] ^= (char)(1 << bit % 8);
        journal_scan(d, b.len, NULL, NULL, &r);
        ck_assert_msg(r.status == JOURNAL_SCAN_CORRUPT, "bit %zu: %d", bit, r.status);
        EXPECT_EQ(r.end, off[4]);
        EXPECT_EQ(r.records, 4);
        d[bit / 8] ^= (char)(1 << bit % 8);
    }
    char g[JOURNAL_HEADER_SIZE + 600];
    memcpy(g, d, JOURNAL_HEADER_SIZE);
    srand(7);
    for (int round = 0; round < 300; round++) {
        size_t n = JOURNAL_HEADER_SIZE + (size_t)rand() % 600;
        for (size_t k = JOURNAL_HEADER_SIZE; k < n; k++)
            g[k] = (char)(rand() % 4 ? rand() : 0);
        journal_scan(g, n, NULL, NULL, &r);
        EXPECT(r.end <= n);
    }
    buf_free(&b);
}
END_TEST

/* A crash mid-append, at every byte of the last record: cut, warned, the rest kept. */
START_TEST(torn_tail_every_offset) {
    struct buf b = BUF_INIT;
    size_t off[5];
    image_make(&b, 4, off);
    for (size_t cut = off[3]; cut < off[4]; cut++) {
        file_put(jpath, buf_start(&b), cut);
        struct journal_info info;
        char err[512];
        memset(&C, 0, sizeof C);
        int fd = journal_open_replay(jpath, collect, &C, 0, &info, err, sizeof err);
        ck_assert_msg(fd >= 0, "cut %zu: %s", cut, err);
        EXPECT_EQ(info.records, 3);
        EXPECT_EQ(C.n, 3);
        EXPECT_EQ(C.seq[2], 2);
        EXPECT_EQ(info.truncated, cut > off[3]);
        if (cut > off[3]) {
            EXPECT_EQ(info.bad_offset, off[3]);
            EXPECT_EQ(info.dropped_bytes, cut - off[3]);
            EXPECT(info.reason != NULL);
        }
        EXPECT_EQ(info.end, off[3]);
        EXPECT_EQ(lseek(fd, 0, SEEK_CUR), off[3]);
        EXPECT_EQ(file_size(jpath), off[3]);
        close(fd);
        replay_all();
        EXPECT_EQ(C.n, 3);
    }
    /* Whole length but a bad crc: a flipped byte, not a torn write. */
    buf_start(&b)[off[4] - 1] ^= 1;
    file_put(jpath, buf_start(&b), off[4]);
    struct journal_info info;
    char err[512];
    int fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
    EXPECT_EQ(fd, -1);
    buf_start(&b)[off[4] - 1] ^= 1;
    /* A zero-filled tail past the last batch (the file grew, the write was lost): torn. */
    EXPECT(buf_reserve(&b, 4096) == 0);
    memset(buf_start(&b) + b.len, 0, 4096);
    file_put(jpath, buf_start(&b), b.len + 4096);
    fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
    EXPECT(fd >= 0 && info.truncated && info.bad_offset == off[4] && info.records == 4);
    EXPECT_EQ(info.dropped_bytes, 4096);
    close(fd);
    buf_free(&b);
}
END_TEST

/* A cut 2 MiB binary payload: every offset is tried, within the CRC budget. */
START_TEST(torn_random_tail) {
    struct buf b = BUF_INIT;
    size_t off[5], n = 2u << 20;
    image_make(&b, 4, off);
    EXPECT(buf_reserve(&b, n) == 0);
    char *t = buf_start(&b) + b.len;
    srand(11);
    for (size_t k = 0; k < n; k++)
        t[k] = (char)rand();
    journal_batch_header((unsigned char *)t, 5, 3u << 20); /* a 3 MiB batch, cut at 2 */
    struct journal_scan_result r;
    uint64_t t0 = clock_now_ms();
    journal_scan(buf_start(&b), b.len + n, NULL, NULL, &r);
    EXPECT_EQ(r.status, JOURNAL_SCAN_TORN);
    EXPECT_EQ(r.bad, off[4]);
    EXPECT(clock_now_ms() - t0 < 20000);
    buf_free(&b);
}
END_TEST

/* Damage before the tail refuses to start, naming the offset; nothing is changed. */
START_TEST(corruption_refused_and_repaired) {
    struct buf b = BUF_INIT;
    size_t off[11];
    image_make(&b, 10, off);
    char *d = buf_start(&b);
    char want[64], err[512];
    snprintf(want, sizeof want, "offset %zu", off[3]);
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 0)
            d[off[3] + 30] ^= 0x10; /* payload */
        else
            d[off[3] + 2] = 0x7f; /* length: now runs past EOF, yet not torn */
        file_put(jpath, d, b.len);
        struct journal_info info;
        int fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
        EXPECT_EQ(fd, -1);
        ck_assert_msg(strstr(err, jpath) && strstr(err, want), "%s", err);
        size_t len;
        char *now = file_get(jpath, &len);
        EXPECT(len == b.len && memcmp(now, d, len) == 0);
        free(now);
    }
    struct journal_info info;
    int fd = journal_open_replay(jpath, NULL, NULL, JOURNAL_REPAIR, &info, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    EXPECT(info.repaired && !info.truncated);
    EXPECT_EQ(info.bad_offset, off[3]);
    EXPECT_EQ(info.records, 3);
    EXPECT_EQ(info.dropped_records, 6);
    EXPECT_EQ(info.dropped_bytes, b.len - off[3]);
    EXPECT_EQ(file_size(info.saved_to), b.len); /* the original, whole */
    EXPECT(strstr(info.saved_to, ".damaged-") != NULL);
    EXPECT_EQ(file_size(jpath), off[3]);
    close(fd);
    replay_all();
    EXPECT_EQ(C.n, 3);
    file_put(jpath, "not a journal at all", 20);
    EXPECT_EQ(journal_open_replay(jpath, NULL, NULL, JOURNAL_REPAIR, &info, err, sizeof err), -1);
    EXPECT(strstr(err, "magic") != NULL && strstr(err, "does not touch") != NULL);
    buf_free(&b);
}
END_TEST


/* The version 2 tail rules (journal.h): only the last batch may be torn. */
START_TEST(tail_rules) {
    struct buf b = BUF_INIT, r = BUF_INIT;
    size_t off[7];
    image_make(&b, 6, off);
    /* A last batch of 40 records of 300 bytes (12 KiB: several pages). */
    size_t last = b.len, recs[41];
    char p[300];
    for (int i = 0; i < 40; i++) {
        memset(p, 'A' + i % 26, sizeof p);
        recs[i] = last + JOURNAL_BATCH_HEADER + r.len;
        EXPECT(journal_encode(&r, T_PUT, p, sizeof p - JOURNAL_RECORD_OVERHEAD) == 0);
    }
    recs[40] = last + JOURNAL_BATCH_HEADER + r.len;
    batch_add(&b, 7, &r);
    char *d = buf_start(&b);
    size_t len = b.len;
    char *save = malloc(len);
    memcpy(save, d, len);
    struct journal_scan_result res;
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT(res.status == JOURNAL_SCAN_CLEAN && res.batches == 7 && res.last_seq == 7);

    /* Zeros over the end of batch 3 through the end of the file: several
     * batches, damage reaching past a batch's end: corruption, at batch 3. */
    memset(d + off[3] + 30, 0, len - off[3] - 30);
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT_EQ(res.status, JOURNAL_SCAN_CORRUPT);
    EXPECT_EQ(res.end, off[3]);
    EXPECT_EQ(res.bad, off[3] + JOURNAL_BATCH_HEADER);
    memcpy(d, save, len);

    /* The last 4,096 bytes zeroed, from wherever they start: the batch
     * before the last one is damaged too when they reach it: corruption. */
    memset(d + off[5] + 20, 0, len - off[5] - 20);
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT(res.status == JOURNAL_SCAN_CORRUPT && res.end == off[5]);
    memcpy(d, save, len);

    /* Inside the last batch, zeros from a page boundary on: lost pages of the
     * last write: torn, cut at its start; nothing before it is touched. */
    size_t page = (recs[10] / JOURNAL_PAGE + 1) * JOURNAL_PAGE;
    EXPECT(page < len);
    memset(d + page, 0, len - page);
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT_EQ(res.status, JOURNAL_SCAN_TORN);
    EXPECT_EQ(res.end, last);
    EXPECT_EQ(res.records, 6);
    memcpy(d, save, len);

    /* Zeros inside the last batch from a record boundary that is no page
     * boundary, so the bad record ends before the next page: corruption. */
    size_t k = 11;
    while (recs[k] % JOURNAL_PAGE == 0 || recs[k] / JOURNAL_PAGE != (recs[k + 1] - 1) / JOURNAL_PAGE)
        k++;
    memset(d + recs[k], 0, recs[k + 1] - recs[k]);
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT_EQ(res.status, JOURNAL_SCAN_CORRUPT);
    EXPECT_EQ(res.bad, recs[k]);
    memcpy(d, save, len);

    /* A batch out of sequence (one lost in the middle of the file). */
    journal_batch_header((unsigned char *)d + off[4], 9, off[5] - off[4] - JOURNAL_BATCH_HEADER);
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT(res.status == JOURNAL_SCAN_CORRUPT && res.bad == off[4] && strstr(res.reason, "sequence"));
    memcpy(d, save, len);

    /* A destroyed header with a zero tail after it (the old end of file on):
     * torn; the same with anything but zeros after it: corruption. */
    memset(d + last, 0, len - last);
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT(res.status == JOURNAL_SCAN_TORN && res.end == last && res.records == 6);
    d[len - 1] = 1;
    journal_scan(d, len, NULL, NULL, &res);
    EXPECT(res.status == JOURNAL_SCAN_CORRUPT && res.bad == last);
    memcpy(d, save, len);

    /* Cut at every offset of the last batch: torn, the six before kept. */
    for (size_t cut = last + 1; cut < len; cut += 37) {
        journal_scan(d, cut, NULL, NULL, &res);
        EXPECT(res.status == JOURNAL_SCAN_TORN && res.end == last && res.records == 6);
    }
    free(save);
    buf_free(&r);
    buf_free(&b);
}
END_TEST

/* A version 1 journal replays with its rules and is rewritten as version 2. */
START_TEST(v1_upgraded) {
    struct buf b = BUF_INIT;
    size_t off[6];
    image_make_v(&b, 5, off, 1);
    file_put(jpath, buf_start(&b), b.len + 0);
    struct journal_info info;
    char err[512];
    memset(&C, 0, sizeof C);
    int fd = journal_open_replay(jpath, collect, &C, 0, &info, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    EXPECT(info.upgraded && info.records == 5 && C.n == 5 && info.last_seq == 1);
    EXPECT_EQ(info.end, b.len + JOURNAL_BATCH_HEADER);
    EXPECT_EQ(lseek(fd, 0, SEEK_CUR), (off_t)info.end);
    close(fd);
    replay_all();
    EXPECT(C.n == 5 && C.seq[4] == 4);
    size_t len;
    char *now = file_get(jpath, &len);
    EXPECT(now[4] == 2 && len == b.len + JOURNAL_BATCH_HEADER);
    free(now);
    /* A torn version 1 tail is cut by version 1's rule, then upgraded. */
    file_put(jpath, buf_start(&b), off[4] + 20);
    fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
    EXPECT(fd >= 0 && info.truncated && info.upgraded && info.records == 4);
    close(fd);
    replay_all();
    EXPECT_EQ(C.n, 4);
    buf_free(&b);
}
END_TEST

/* A damaged header: refused with the advice, and -r does what it says. */
START_TEST(header_repair) {
    struct buf b = BUF_INIT;
    size_t off[6];
    image_make(&b, 5, off);
    char *d = buf_start(&b);
    d[1] ^= 0x40;
    file_put(jpath, d, b.len);
    struct journal_info info;
    char err[512];
    EXPECT_EQ(journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "offset 0") && strstr(err, "-r rewrites the header"), "%s", err);
    int fd = journal_open_replay(jpath, NULL, NULL, JOURNAL_REPAIR, &info, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    EXPECT(info.header_repaired && info.records == 5 && info.last_seq == 5);
    EXPECT_EQ(file_size(info.saved_to), b.len);
    close(fd);
    replay_all();
    EXPECT_EQ(C.n, 5);
    /* A header cut short (nothing after it could exist): -r starts empty. */
    file_put(jpath, d, 9);
    EXPECT_EQ(journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err), -1);
    fd = journal_open_replay(jpath, NULL, NULL, JOURNAL_REPAIR, &info, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    EXPECT(info.header_repaired && info.records == 0);
    close(fd);
    replay_all();
    buf_free(&b);
}
END_TEST

START_TEST(create_and_stale_tmp) {
    struct journal_info info;
    char err[512], tmp[256];
    int fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
    EXPECT(fd >= 0 && info.created && info.end == JOURNAL_HEADER_SIZE);
    EXPECT_EQ(file_size(jpath), JOURNAL_HEADER_SIZE);
    EXPECT_EQ(journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err), -1);
    EXPECT(strstr(err, "in use") != NULL); /* a second daemon on the same journal */
    close(fd);
    snprintf(tmp, sizeof tmp, "%s%s", jpath, JOURNAL_TMP_SUFFIX);
    file_put(tmp, "half a snapshot", 15);
    fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
    EXPECT(fd >= 0 && !info.created && info.stale_tmp_removed && info.records == 0);
    EXPECT_EQ(file_size(tmp), -1);
    close(fd);
    file_put(jpath, "", 0); /* an empty file gets a header */
    fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
    EXPECT(fd >= 0 && info.created && file_size(jpath) == JOURNAL_HEADER_SIZE);
    close(fd);
}
END_TEST

/* ---- the writer ---------------------------------------------------------- */

/* Fault seams, driven from the test thread, run on the writer's. */
static struct {
    atomic_int fsyncs, fail_fsync, fail_write, fail_errno, partial, block, lose_pages;
    atomic_int big_delay_ms, big_fail; /* compaction's snapshot write: offset 16, > 4 KiB */
    atomic_int fsync_delay_us;
    atomic_int write_delay_ms; /* every pwrite sleeps this long first */
    atomic_llong synced;    /* largest file size a good fsync covered */
    atomic_llong good[256]; /* per fd: size at its last good fsync */
} F;

static ssize_t f_pwrite(int fd, const void *p, size_t n, off_t off) {
    if (F.write_delay_ms)
        usleep((useconds_t)F.write_delay_ms * 1000);
    if (off == JOURNAL_HEADER_SIZE + JOURNAL_BATCH_HEADER && n > 4096) {
        usleep((useconds_t)F.big_delay_ms * 1000);
        if (F.big_fail) {
            errno = EIO;
            return -1;
        }
    }
    if (F.fail_write > 0) {
        if (F.partial && n > 1) {
            F.partial = 0;
            return pwrite(fd, p, n / 2, off);
        }
        F.fail_write--;
        errno = F.fail_errno;
        return -1;
    }
    return pwrite(fd, p, n, off);
}

static int f_fdatasync(int fd) {
    while (F.block)
        usleep(1000);
    if (F.fsync_delay_us)
        usleep((useconds_t)F.fsync_delay_us);
    struct stat st;
    fstat(fd, &st);
    if (F.fail_fsync > 0) {
        F.fail_fsync--;
        if (F.lose_pages && st.st_size > F.good[fd]) {
            /* fsyncgate: the kernel dropped the dirty pages and calls them clean. */
            size_t n = (size_t)(st.st_size - F.good[fd]);
            char *z = calloc(1, n);
            EXPECT(pwrite(fd, z, n, (off_t)F.good[fd]) == (ssize_t)n);
            free(z);
        }
        errno = F.fail_errno;
        return -1;
    }
    F.fsyncs++;
    F.good[fd] = st.st_size;
    if (st.st_size > F.synced)
        F.synced = st.st_size;
    return fdatasync(fd);
}

static struct event_base *B;
static struct jw *W;
static pthread_t main_thread;

/* Producers: each submits a record and waits for its completion. */
struct prod {
    int busy;
    uint64_t seq;
    int type;
};
static struct prod P[100];
static int nprod, pump_on, last_refusal;
static uint64_t next_seq, nacked, nfailed, nsubmits;
static unsigned char acked[MAXSEQ], live[MAXSEQ];
static int fail_status, check_durable;

static void on_done(void *arg, int status) {
    struct prod *p = arg;
    EXPECT(pthread_equal(pthread_self(), main_thread));
    EXPECT(p->busy);
    p->busy = 0;
    if (status == JW_OK) {
        acked[p->seq] = 1;
        nacked++;
        /* Records are 109 bytes, completed in file order: the k-th ends at 16 + 109k. */
        EXPECT(!check_durable ||
               (uint64_t)F.synced >=
                   JOURNAL_HEADER_SIZE + nacked * (PAYLOAD + JOURNAL_RECORD_OVERHEAD));
    } else {
        fail_status = status;
        nfailed++;
    }
}

/* Submit for every idle producer. Compaction tests ack every put not divisible by 3. */
static void pump(void) {
    for (int i = 0; pump_on && i < nprod; i++) {
        struct prod *p = &P[i];
        if (p->busy)
            continue;
        char pl[PAYLOAD];
        int ack = p->type == T_PUT && p->seq % 3 != 0 && acked[p->seq];
        uint64_t seq = ack ? p->seq : next_seq;
        EXPECT(seq < MAXSEQ);
        payload_make(pl, seq);
        int rc = jw_submit_record(W, ack ? T_ACK : T_PUT, pl, PAYLOAD, on_done, p);
        if (rc != JW_OK) {
            last_refusal = rc;
            continue;
        }
        p->busy = 1;
        nsubmits++;
        p->seq = seq;
        p->type = ack ? T_ACK : T_PUT;
        live[seq] = !ack; /* journal first, then apply */
        next_seq += !ack;
    }
}

static int run_until(int (*done)(void), int timeout_ms) {
    uint64_t deadline = clock_now_ms() + (uint64_t)timeout_ms;
    while (!done() && clock_now_ms() < deadline) {
        pump();
        event_base_loop(B, EVLOOP_NONBLOCK);
        if (!done())
            usleep(200);
    }
    return done();
}

static void writer_open(struct jw_options *o) {
    struct journal_info info;
    char err[512];
    int fd = journal_open_replay(jpath, NULL, NULL, 0, &info, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    o->pwrite = f_pwrite;
    o->fdatasync = f_fdatasync;
    W = jw_open(B, jpath, fd, info.end, info.last_seq, o, err, sizeof err);
    ck_assert_msg(W != NULL, "%s", err);
}

static void wsetup(void) {
    setup();
    memset(&F, 0, sizeof F);
    memset(P, 0, sizeof P);
    memset(acked, 0, sizeof acked);
    memset(live, 0, sizeof live);
    next_seq = nacked = nfailed = nsubmits = 0;
    nprod = 1;
    pump_on = 1;
    last_refusal = fail_status = check_durable = 0;
    main_thread = pthread_self();
    B = event_base_new();
}

static void wteardown(void) {
    event_base_free(B);
    teardown();
}

static int idle(void) {
    for (int i = 0; i < nprod; i++)
        if (P[i].busy)
            return 0;
    return 1;
}

/* Stop producing, wait for completions, close, and replay: puts in order, none lost. */
static void finish(void) {
    pump_on = 0;
    EXPECT(run_until(idle, 10000));
    EXPECT_EQ(jw_close(W), 0);
    replay_all();
    uint64_t k = 0;
    for (size_t i = 0; i < C.n; i++)
        if (C.type[i] == T_PUT) {
            EXPECT_EQ(C.seq[i], k); /* every submitted put, in order, once */
            k++;
        }
    EXPECT_EQ(k, next_seq);
}

static uint64_t want_acks = 1000;
static int got_want(void) {
    return nacked >= want_acks;
}

START_TEST(writer_group_commit) {
    struct jw_options o;
    jw_options_init(&o);
    F.fsync_delay_us = 1000;
    nprod = 100;
    check_durable = 1; /* no completion before the fsync that covers it */
    writer_open(&o);
    EXPECT(run_until(got_want, 20000));
    struct jw_stats st;
    jw_stats(W, &st);
    EXPECT(st.healthy && st.records >= 1000);
    EXPECT_EQ(st.fsyncs, F.fsyncs);
    ck_assert_msg(st.fsyncs * 10 < st.records, "%llu fsyncs for %llu records",
                  (unsigned long long)st.fsyncs, (unsigned long long)st.records);
    EXPECT(st.avg_batch > 10);
    finish();
    EXPECT_EQ(nfailed, 0);
}
END_TEST

START_TEST(writer_batch_and_off) {
    struct jw_options o;
    jw_options_init(&o);
    o.mode = JW_FSYNC_BATCH;
    o.interval_ms = 200;
    writer_open(&o);
    want_acks = 1;
    EXPECT(run_until(got_want, 5000));
    EXPECT_EQ(F.fsyncs, 0); /* completed after write, before the fsync */
    pump_on = 0;
    usleep(400 * 1000);
    EXPECT_EQ(F.fsyncs, 1);
    pump_on = 1;
    nprod = 10;
    want_acks = 1000;
    EXPECT(run_until(got_want, 20000));
    finish();

    wteardown();
    wsetup();
    o.mode = JW_FSYNC_OFF;
    nprod = 10;
    writer_open(&o);
    EXPECT(run_until(got_want, 20000));
    EXPECT_EQ(F.fsyncs, 0);
    finish();
    EXPECT_EQ(F.fsyncs, 1); /* jw_close */
}
END_TEST

/*
 * Off mode, as the store uses it: the loop thread writes a batch itself
 * (jw_write_now) while the writer thread is idle, else submits it. A put
 * here is one record; returns jw_write_now's status, or jw_submit's after
 * JW_BUSY, and counts the puts written inline.
 */
static int inline_puts;

static int put_now_or_submit(uint64_t seq) {
    char pl[PAYLOAD];
    struct buf b = BUF_INIT;
    payload_make(pl, seq);
    EXPECT(journal_encode(&b, T_PUT, pl, PAYLOAD) == 0);
    int rc = jw_write_now(W, buf_start(&b), b.len);
    if (rc == JW_OK)
        inline_puts++;
    else if (rc == JW_BUSY)
        rc = jw_submit(W, buf_start(&b), b.len, NULL, NULL);
    buf_free(&b);
    return rc;
}

/* One more put; 1 when it went inline (the writer thread was idle). */
static int writer_parked(void) {
    int was = inline_puts;
    EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
    return inline_puts > was;
}

static int healthy(void) {
    struct jw_stats st;
    jw_stats(W, &st);
    return st.healthy;
}

/* The file holds every byte the writer counts as written. */
static int file_complete(void) {
    struct jw_stats st;
    jw_stats(W, &st);
    return file_size(jpath) == (off_t)st.file_bytes;
}

#define ONE_PUT_BATCH (JOURNAL_BATCH_HEADER + PAYLOAD + JOURNAL_RECORD_OVERHEAD)

/* The set-up of the inline-write tests: off mode (retry_ms: the writer's,
 * 0 the default), the puts the test's own (no producers), and back once a
 * put went inline (at first the writer thread may not have reached its
 * wait yet). */
static void inline_begin(int retry_ms) {
    struct jw_options o;
    jw_options_init(&o);
    o.mode = JW_FSYNC_OFF;
    if (retry_ms)
        o.retry_ms = retry_ms;
    writer_open(&o);
    inline_puts = 0;
    pump_on = 0;
    EXPECT(run_until(writer_parked, 5000));
}

START_TEST(writer_off_inline) {
    inline_begin(20);
    EXPECT(file_complete());
    /* Idle writer: each put is its own batch, in the file when jw_write_now returns. */
    int before = inline_puts;
    for (int i = 0; i < 1000; i++) {
        int was = inline_puts;
        off_t size = file_size(jpath);
        EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
        if (inline_puts > was) { /* nothing was queued or in flight */
            EXPECT(file_complete());
            EXPECT_EQ(file_size(jpath), size + ONE_PUT_BATCH);
        }
    }
    ck_assert_msg(inline_puts - before >= 900, "only %d of 1000 puts written inline",
                  inline_puts - before);
    struct jw_stats st;
    jw_stats(W, &st);
    EXPECT(st.healthy && st.records >= (uint64_t)inline_puts);

    /* A busy writer: the loop may not write past it (JW_BUSY), the puts are
     * queued behind the batch in flight and reach the file in order. */
    F.write_delay_ms = 100;
    EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK); /* inline, 100 ms */
    before = inline_puts;
    char pl[PAYLOAD];
    payload_make(pl, next_seq);
    EXPECT_EQ(jw_submit_record(W, T_PUT, pl, PAYLOAD, NULL, NULL), JW_OK);
    next_seq++;
    usleep(20 * 1000); /* the writer takes it and sleeps in pwrite */
    for (int i = 0; i < 100; i++)
        EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
    EXPECT_EQ(inline_puts, before); /* every one went through the writer */
    F.write_delay_ms = 0;
    EXPECT(run_until(writer_parked, 5000)); /* inline again once the writer is idle */
    EXPECT(file_complete());

    /* A failed inline write (half written, then EIO): the batch is kept, the
     * journal unhealthy refuses what follows, the writer's recovery cuts the
     * half and rewrites it, and puts go inline again. */
    F.fail_errno = EIO;
    F.partial = 1;
    F.fail_write = 1;
    EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
    EXPECT(!healthy());
    payload_make(pl, next_seq);
    struct buf b = BUF_INIT;
    EXPECT(journal_encode(&b, T_PUT, pl, PAYLOAD) == 0);
    EXPECT_EQ(jw_write_now(W, buf_start(&b), b.len), JW_EIO); /* refused: not applied */
    buf_free(&b);
    EXPECT(run_until(healthy, 5000));
    jw_stats(W, &st);
    EXPECT(st.errors >= 1 && st.last_errno == EIO);
    EXPECT_EQ(F.fsyncs, 1); /* the recovery's, after the rewrite */
    EXPECT(run_until(writer_parked, 5000));
    EXPECT(file_complete());
    finish(); /* every put once, in order */
    EXPECT_EQ(F.fsyncs, 2); /* jw_close: off mode fdatasyncs at the end too */
}
END_TEST

static int unhealthy_seen_and_2000(void) {
    struct jw_stats st;
    jw_stats(W, &st);
    return nfailed > 0 && last_refusal != 0 && st.healthy && nacked >= 2000;
}

/* Write or fsync failures: errors reported, unhealthy, recovered, nothing lost. */
static void fault_round(int err, int on_fsync, int partial, int want) {
    struct jw_options o;
    jw_options_init(&o);
    o.retry_ms = 20;
    nprod = 20;
    writer_open(&o);
    EXPECT(run_until(got_want, 20000));
    F.fail_errno = err;
    F.lose_pages = 1;
    F.partial = partial;
    if (on_fsync)
        F.fail_fsync = 3; /* the batch, then two recovery attempts */
    else
        F.fail_write = 3;
    ck_assert_msg(run_until(unhealthy_seen_and_2000, 20000), "failed %llu acked %llu refusal %d",
                  (unsigned long long)nfailed, (unsigned long long)nacked, last_refusal);
    EXPECT_EQ(fail_status, want);
    EXPECT_EQ(last_refusal, want);
    struct jw_stats st;
    jw_stats(W, &st);
    EXPECT(st.errors >= 3 && st.last_errno == err);
    finish();
}

START_TEST(writer_eio_fsync_recovers) {
    fault_round(EIO, 1, 0, JW_EIO);
}
END_TEST

START_TEST(writer_enospc_write_recovers) {
    fault_round(ENOSPC, 0, 1, JW_ENOSPC);
}
END_TEST

START_TEST(writer_eio_write_recovers) {
    fault_round(EIO, 0, 0, JW_EIO);
}
END_TEST

START_TEST(writer_busy_when_full) {
    struct jw_options o;
    jw_options_init(&o);
    o.max_records = 8;
    F.block = 1;
    writer_open(&o);
    char pl[PAYLOAD];
    payload_make(pl, 0);
    int i, rc = JW_OK;
    for (i = 0; i < 100 && rc == JW_OK; i++) {
        P[i].busy = 1;
        rc = jw_submit_record(W, T_PUT, pl, PAYLOAD, on_done, &P[i]);
    }
    EXPECT_EQ(rc, JW_BUSY);
    EXPECT_EQ(i, 9);
    EXPECT_EQ(jw_backlogged(W), 1); /* the store refuses changes before this point */
    P[8].busy = 0;
    struct jw_stats st;
    jw_stats(W, &st);
    EXPECT_EQ(st.queued, 8);
    F.block = 0;
    nprod = 8;
    pump_on = 0;
    EXPECT(run_until(idle, 5000));
    EXPECT_EQ(nacked, 8);
    EXPECT_EQ(jw_backlogged(W), 0); /* drained: changes are taken again */
    EXPECT_EQ(jw_close(W), 0);

    wteardown();
    wsetup();
    o.max_records = 1000;
    o.max_bytes = 1000;
    F.block = 1;
    writer_open(&o);
    for (i = 0, rc = JW_OK; i < 100 && rc == JW_OK; i++)
        rc = jw_submit_record(W, T_PUT, pl, PAYLOAD, NULL, NULL);
    EXPECT(rc == JW_BUSY && i <= 21);
    EXPECT_EQ(jw_backlogged(W), 1); /* by bytes */
    F.block = 0;
    EXPECT_EQ(jw_close(W), 0); /* flushes what was queued */
    replay_all();
    EXPECT_EQ(C.n, (size_t)i - 1);
}
END_TEST

/* Completions are delivered inside jw_close when the loop never ran. */
START_TEST(writer_close_flushes) {
    struct jw_options o;
    jw_options_init(&o);
    nprod = 100;
    writer_open(&o);
    pump();
    EXPECT_EQ(next_seq, 100);
    EXPECT_EQ(jw_close(W), 0);
    EXPECT(idle() && nacked == 100);
    replay_all();
    EXPECT_EQ(C.n, 100);
}
END_TEST

/* Compaction while 50 producers go on: snapshot + tail, nothing lost or doubled. */
static int compact_status = -1;
static uint64_t tail_bytes;

static int snapshot(void *arg, struct buf *out) {
    char pl[PAYLOAD];
    for (uint64_t s = 0; s < next_seq; s++)
        if (live[s]) {
            payload_make(pl, s);
            if (journal_encode(out, T_PUT, pl, PAYLOAD) < 0)
                return -1;
        }
    return 0;
}

static void on_compacted(void *arg, int status) {
    EXPECT(pthread_equal(pthread_self(), main_thread));
    struct jw_stats st;
    jw_stats(W, &st);
    tail_bytes = st.bytes_since_compact;
    compact_status = status;
}

static int compacted_plus(void) {
    static uint64_t at;
    if (compact_status < 0)
        return (at = 0);
    if (!at)
        at = nacked;
    return nacked >= at + 1000;
}

static unsigned char replayed[MAXSEQ];

static int apply(void *arg, uint8_t type, const char *p, size_t len, uint64_t off) {
    uint64_t s;
    memcpy(&s, p, 8);
    EXPECT(s < MAXSEQ && replayed[s] == (type == T_ACK)); /* no put twice, no ack of nothing */
    replayed[s] = type == T_PUT;
    return 0;
}

/* After jw_close: no temp file is left, and replaying the journal gives
 * exactly the live puts, each once, whole. */
static void expect_journal_is_live(void) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s%s", jpath, JOURNAL_TMP_SUFFIX);
    EXPECT_EQ(file_size(tmp), -1);
    memset(replayed, 0, sizeof replayed);
    struct journal_info info;
    char err[512];
    int fd = journal_open_replay(jpath, apply, NULL, 0, &info, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    close(fd);
    EXPECT(!info.truncated);
    for (uint64_t s = 0; s < MAXSEQ; s++)
        EXPECT_EQ(replayed[s], live[s]);
}

/* how: 0 compacts, 1 fails writing the snapshot, 2 closes in the middle;
 * in_loop: the snapshot is encoded on the loop thread, not in a child. */
static void compaction_round(int how, int in_loop) {
    int fail = how == 1;
    struct jw_options o;
    jw_options_init(&o);
    o.snapshot_inline = in_loop;
    nprod = 50;
    compact_status = -1;
    writer_open(&o);
    EXPECT(run_until(got_want, 20000));
    F.big_delay_ms = 200; /* the tail fills while the snapshot is written */
    F.big_fail = fail;
    /* Hold the writer in an fsync so that records from before the snapshot
     * wait in the queue: they must reach the new file only through it. */
    F.block = 1;
    uint64_t until = clock_now_ms() + 50;
    while (clock_now_ms() < until) {
        event_base_loop(B, EVLOOP_NONBLOCK);
        pump();
        usleep(1000);
    }
    EXPECT(!idle());
    nprod = 60; /* the writer is stuck in one batch: these ten wait in the queue */
    pump();
    EXPECT_EQ(jw_compact(W, snapshot, on_compacted, NULL), JW_OK);
    F.block = 0;
    EXPECT_EQ(jw_compact(W, snapshot, on_compacted, NULL), JW_BUSY);
    if (how == 2) { /* SIGTERM mid-compaction: abandoned, the old journal is whole */
        pump_on = 0;
        EXPECT(run_until(idle, 10000));
        EXPECT_EQ(jw_close(W), 0);
        EXPECT_EQ(compact_status, JW_CLOSED);
    }
    off_t size = 0;
    if (how < 2) {
        EXPECT(run_until(compacted_plus, 20000));
        EXPECT_EQ(compact_status, fail ? JW_EIO : JW_OK);
        struct jw_stats st;
        jw_stats(W, &st);
        EXPECT(st.healthy && !st.compacting && st.compactions == (fail ? 0u : 1u));
        EXPECT(fail || tail_bytes > 0);
        size = file_size(jpath);
        pump_on = 0;
        EXPECT(run_until(idle, 10000));
        EXPECT_EQ(jw_close(W), 0);
    }
    expect_journal_is_live();
    if (how == 0) /* acked puts left with their acks: smaller than everything submitted */
        EXPECT(size < (off_t)(nsubmits * (PAYLOAD + JOURNAL_RECORD_OVERHEAD)));
}

START_TEST(writer_compaction_under_load) {
    compaction_round(0, _i);
}
END_TEST

START_TEST(writer_compaction_failure_keeps_old) {
    compaction_round(1, _i);
}
END_TEST

START_TEST(writer_close_during_compaction) {
    compaction_round(2, _i);
}
END_TEST

/* The child: a snapshot that takes a while, or fails. */
static int snap_sleep_ms, snap_fail;

static int slow_snapshot(void *arg, struct buf *out) {
    usleep((useconds_t)snap_sleep_ms * 1000);
    return snap_fail ? -1 : snapshot(arg, out);
}

static int compacted(void) {
    return compact_status >= 0;
}

/*
 * The snapshot is encoded in a forked child, so the loop goes on at once;
 * the child keeps none of the parent's descriptors (a socket the parent
 * closes meanwhile is closed for its peer at once); a child that fails
 * fails the compaction and the old journal goes on.
 */
START_TEST(writer_compaction_child) {
    struct jw_options o;
    jw_options_init(&o);
    nprod = 20;
    compact_status = -1;
    writer_open(&o);
    EXPECT(run_until(got_want, 20000));
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    snap_sleep_ms = 400;
    snap_fail = _i;
    uint64_t t0 = clock_now_ms();
    EXPECT_EQ(jw_compact(W, slow_snapshot, on_compacted, NULL), JW_OK);
    EXPECT(clock_now_ms() - t0 < 200); /* the 400 ms are the child's */
    close(sv[0]);
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 200), 1); /* EOF now, not when the child exits */
    char c;
    ck_assert_int_eq(read(sv[1], &c, 1), 0);
    close(sv[1]);
    EXPECT(compact_status < 0);
    EXPECT(run_until(compacted, 10000));
    EXPECT_EQ(compact_status, snap_fail ? JW_NOMEM : JW_OK);
    struct jw_stats st;
    jw_stats(W, &st);
    EXPECT(st.healthy && !st.compacting && st.compactions == (snap_fail ? 0u : 1u));
    pump_on = 0;
    EXPECT(run_until(idle, 10000));
    EXPECT_EQ(jw_close(W), 0);
    expect_journal_is_live();
}
END_TEST

/*
 * A write by the loop that sleeps 1 ms or more in the kernel (a throttled
 * disk; here the seam's usleep):
 * for the next second the batches go to the writer thread even while it
 * is idle, so a slow disk does not stall the loop again; then inline again.
 */
START_TEST(writer_off_inline_slow_disk) {
    inline_begin(0);
    F.write_delay_ms = 20;
    int before = inline_puts;
    EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
    uint64_t slow_at = clock_now_ms();
    EXPECT_EQ(inline_puts, before + 1); /* written inline, slowly */
    F.write_delay_ms = 0;
    int early = 0;
    for (int i = 0; i < 20; i++) {
        usleep(10 * 1000);
        event_base_loop(B, EVLOOP_NONBLOCK);
        int was = inline_puts;
        uint64_t at = clock_now_ms();
        EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
        if (at - slow_at < 900) { /* within the second: the writer thread's */
            EXPECT_EQ(inline_puts, was);
            early++;
        }
    }
    EXPECT(early > 0);
    EXPECT(run_until(writer_parked, 5000)); /* inline again, after the second */
    EXPECT(clock_now_ms() - slow_at >= 990);
    finish();
}
END_TEST

/*
 * Off mode with the loop writing batches itself (jw_write_now), then a
 * compaction: from jw_compact on the loop hands its batches to the writer
 * (JW_BUSY), which copies them into the tail; once the new file is in
 * place the loop writes inline again. Every put is in the journal once.
 */
START_TEST(writer_off_inline_compaction) {
    compact_status = -1;
    inline_begin(0);
    for (int i = 0; i < 500; i++)
        EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
    for (uint64_t s = 0; s < next_seq; s++)
        live[s] = 1;
    F.big_delay_ms = 200; /* the snapshot's write: puts go on meanwhile */
    EXPECT_EQ(jw_compact(W, snapshot, on_compacted, NULL), JW_OK);
    int before = inline_puts, during = 0;
    while (compact_status < 0 && during < 20000) {
        live[next_seq] = 1;
        EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
        during++;
        event_base_loop(B, EVLOOP_NONBLOCK);
        usleep(100);
    }
    EXPECT_EQ(compact_status, JW_OK);
    /* Inline only after the switch, before its completion reached the loop: a few. */
    int handed = during - (inline_puts - before);
    ck_assert_msg(handed > 10 && handed > during * 9 / 10,
                  "%d puts during the compaction, %d of them inline", during, inline_puts - before);
    uint64_t from = next_seq;
    EXPECT(run_until(writer_parked, 5000)); /* inline again */
    for (uint64_t s = from; s < next_seq; s++)
        live[s] = 1;
    for (int i = 0; i < 500; i++) {
        live[next_seq] = 1;
        EXPECT_EQ(put_now_or_submit(next_seq++), JW_OK);
    }
    struct jw_stats st;
    jw_stats(W, &st);
    EXPECT(st.healthy && st.compactions == 1);
    EXPECT(run_until(idle, 5000));
    EXPECT_EQ(jw_close(W), 0);
    expect_journal_is_live(); /* snapshot + tail + later batches: each put once */
}
END_TEST

int main(void) {
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("format");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, crc_vectors);
    tcase_add_test(tc, encode_scan_roundtrip);
    tcase_add_test(tc, flipped_bits);
    tcase_add_test(tc, torn_tail_every_offset);
    tcase_add_test(tc, torn_random_tail);
    tcase_add_test(tc, corruption_refused_and_repaired);
    tcase_add_test(tc, create_and_stale_tmp);
    tcase_add_test(tc, tail_rules);
    tcase_add_test(tc, v1_upgraded);
    tcase_add_test(tc, header_repair);
    suite_add_tcase(s, tc);
    tc = tcase_create("writer");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, wsetup, wteardown);
    tcase_add_test(tc, writer_group_commit);
    tcase_add_test(tc, writer_batch_and_off);
    tcase_add_test(tc, writer_off_inline);
    tcase_add_test(tc, writer_eio_fsync_recovers);
    tcase_add_test(tc, writer_enospc_write_recovers);
    tcase_add_test(tc, writer_eio_write_recovers);
    tcase_add_test(tc, writer_busy_when_full);
    tcase_add_test(tc, writer_close_flushes);
    tcase_add_loop_test(tc, writer_compaction_under_load, 0, 2);
    tcase_add_loop_test(tc, writer_compaction_failure_keeps_old, 0, 2);
    tcase_add_loop_test(tc, writer_close_during_compaction, 0, 2);
    tcase_add_loop_test(tc, writer_compaction_child, 0, 2);
    tcase_add_test(tc, writer_off_inline_compaction);
    tcase_add_test(tc, writer_off_inline_slow_disk);
    suite_add_tcase(s, tc);
    return check_run(s);
}
