/*
 * journal: the record format's bytes: CRC-32C (SSE4.2 or slicing-by-8),
 * the file header, batch headers and records, encoded and parsed. Pure: no
 * I/O, no allocation beyond the caller's buf, no logging; the format is
 * described in journal.h. The scan over a whole file is journal_scan.c,
 * the files themselves journal_file.c and journal_replay.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal.h"
#include "journal/journal_int.h"

#include <errno.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* ---- CRC-32C ----------------------------------------------------------- */

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, reflected */

static uint32_t crc_table[8][256];

uint32_t journal_crc32c_sw(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = data;
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    /* Slicing-by-8: eight table lookups per 8 bytes instead of a loop per byte. */
    while (len >= 8) {
        uint32_t lo = get_le32(p) ^ crc, hi = get_le32(p + 4);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
              crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
              crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
                                                            size_t len) {
    const unsigned char *p = data;
    uint64_t c = ~crc & 0xffffffffu;
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* x86 is little-endian, which is what the crc wants */
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

static uint32_t (*crc_impl)(uint32_t, const void *, size_t) = journal_crc32c_sw;

/*
 * Tables are built before main() so that no thread ever races to build
 * them, and the CPU is asked once, not per call.
 */
__attribute__((constructor)) static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc_table[k][i] = crc_table[0][crc_table[k - 1][i] & 0xff] ^ (crc_table[k - 1][i] >> 8);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        crc_impl = crc32c_hw;
#endif
}

uint32_t journal_crc32c(uint32_t crc, const void *data, size_t len) {
    return crc_impl(crc, data, len);
}

/* ---- encode and parse --------------------------------------------------- */

void journal_header_fill(unsigned char h[JOURNAL_HEADER_SIZE], uint64_t created) {
    memcpy(h, JOURNAL_MAGIC, 4);
    put_le32(h + 4, JOURNAL_VERSION);
    put_le64(h + 8, created);
}

int journal_header_encode(struct buf *b, uint64_t created) {
    unsigned char h[JOURNAL_HEADER_SIZE];
    journal_header_fill(h, created);
    return buf_append(b, h, sizeof h);
}

void journal_batch_header(unsigned char out[JOURNAL_BATCH_HEADER], uint64_t seq, uint64_t len) {
    put_le32(out, 16);
    out[8] = JOURNAL_TYPE_BATCH;
    put_le64(out + 9, seq);
    put_le64(out + 17, len);
    put_le32(out + 4, journal_crc32c(0, out + 8, 17));
}

int journal_batch_parse(const char *data, size_t avail, uint64_t *seq, uint64_t *len) {
    const unsigned char *p = (const unsigned char *)data;
    if (avail < JOURNAL_BATCH_HEADER || get_le32(p) != 16 || p[8] != JOURNAL_TYPE_BATCH ||
        get_le32(p + 4) != journal_crc32c(0, p + 8, 17))
        return 0;
    *seq = get_le64(p + 9);
    *len = get_le64(p + 17);
    return 1;
}

int journal_encode(struct buf *b, uint8_t type, const void *payload, size_t len) {
    if (type == 0 || type >= JOURNAL_TYPE_RESERVED || len > JOURNAL_RECORD_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (buf_reserve(b, JOURNAL_RECORD_OVERHEAD + len) < 0) {
        errno = ENOMEM;
        return -1;
    }
    unsigned char *p = (unsigned char *)buf_start(b) + b->len;
    uint32_t crc = journal_crc32c(0, &type, 1);
    crc = journal_crc32c(crc, payload, len);
    put_le32(p, (uint32_t)len);
    put_le32(p + 4, crc);
    p[8] = type;
    if (len)
        memcpy(p + JOURNAL_RECORD_OVERHEAD, payload, len);
    b->len += JOURNAL_RECORD_OVERHEAD + len;
    return 0;
}

char *journal_encode_begin(struct buf *b, uint8_t type, size_t len) {
    if (type == 0 || type >= JOURNAL_TYPE_RESERVED || len > JOURNAL_RECORD_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (buf_reserve(b, JOURNAL_RECORD_OVERHEAD + len) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    return buf_start(b) + b->len + JOURNAL_RECORD_OVERHEAD;
}

void journal_encode_end(struct buf *b, uint8_t type, size_t len) {
    unsigned char *p = (unsigned char *)buf_start(b) + b->len;
    uint32_t crc = journal_crc32c(0, &type, 1);
    crc = journal_crc32c(crc, p + JOURNAL_RECORD_OVERHEAD, len);
    put_le32(p, (uint32_t)len);
    put_le32(p + 4, crc);
    p[8] = type;
    b->len += JOURNAL_RECORD_OVERHEAD + len;
}

enum journal_parse journal_record_parse(const char *data, size_t avail,
                                        struct journal_record *rec) {
    const unsigned char *p = (const unsigned char *)data;
    if (avail < JOURNAL_RECORD_OVERHEAD)
        return JOURNAL_PARSE_SHORT_HDR;
    uint32_t n = get_le32(p);
    if (n > JOURNAL_RECORD_MAX)
        return JOURNAL_PARSE_TOO_LONG;
    uint8_t type = p[8];
    if (type == 0 || type >= JOURNAL_TYPE_RESERVED)
        return JOURNAL_PARSE_BAD_TYPE;
    if (n > avail - JOURNAL_RECORD_OVERHEAD)
        return JOURNAL_PARSE_SHORT;
    uint32_t crc = journal_crc32c(0, &type, 1);
    crc = journal_crc32c(crc, p + JOURNAL_RECORD_OVERHEAD, n);
    if (crc != get_le32(p + 4))
        return JOURNAL_PARSE_BAD_CRC;
    rec->type = type;
    rec->payload = data + JOURNAL_RECORD_OVERHEAD;
    rec->len = n;
    rec->size = JOURNAL_RECORD_OVERHEAD + (size_t)n;
    return JOURNAL_PARSE_OK;
}

const char *journal_parse_str(enum journal_parse p) {
    static const char *const names[] = {"ok",
                                        "incomplete record header",
                                        "incomplete record",
                                        "record length too large",
                                        "invalid record type",
                                        "crc mismatch"};
    return (unsigned)p < sizeof names / sizeof *names ? names[p] : "?";
}
