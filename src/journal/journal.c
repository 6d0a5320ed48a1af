/*
 * journal: record format, CRC-32C and the start-up scan. See journal.h for
 * the format and the torn-versus-corrupt rule.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* ---- CRC-32C ----------------------------------------------------------- */

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, reflected */

static uint32_t crc_table[8][256];

struct journal_scan_result;
static void scan_v1(const char *data, size_t len, journal_record_fn cb, void *arg,
                    struct journal_scan_result *res);

static inline uint32_t get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const unsigned char *p) {
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void put_le64(unsigned char *p, uint64_t v) {
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

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

static void header_fill(unsigned char h[JOURNAL_HEADER_SIZE], uint64_t created) {
    memcpy(h, JOURNAL_MAGIC, 4);
    put_le32(h + 4, JOURNAL_VERSION);
    put_le64(h + 8, created);
}

int journal_header_encode(struct buf *b, uint64_t created) {
    unsigned char h[JOURNAL_HEADER_SIZE];
    header_fill(h, created);
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

/*
 * CRC work the search after a bad record may do. In random bytes (a cut
 * binary payload) an offset whose length field fits in the remaining r
 * bytes turns up about once per 2^32 / r offsets and costs up to r bytes
 * of CRC, so the work grows with the cube of the tail: ~50 MB for 1 MiB,
 * ~23 GB for 8 MiB, ~200 GB for 16 MiB. (Text payloads cost nothing: their
 * bytes read as lengths far above JOURNAL_RECORD_MAX.) Past the budget a
 * tail cannot be proven torn, and it is reported as corruption: refusing
 * is safe, guessing is not.
 */
#define RESYNC_BUDGET (8ull << 30) /* about a second with SSE4.2 */
#define RESYNC_GAVE_UP SIZE_MAX

/* The first offset in [from, len) where a valid record starts; len if
 * none; RESYNC_GAVE_UP when the budget ran out first. */
static size_t scan_resync(const char *data, size_t len, size_t from, uint64_t *budget) {
    struct journal_record rec;
    for (size_t q = from; q + JOURNAL_RECORD_OVERHEAD <= len; q++) {
        uint32_t n = get_le32((const unsigned char *)data + q);
        if (n > len - q - JOURNAL_RECORD_OVERHEAD)
            continue; /* cannot fit: no CRC to compute */
        if (*budget < (uint64_t)n + 1)
            return RESYNC_GAVE_UP;
        *budget -= (uint64_t)n + 1;
        if (journal_record_parse(data + q, len - q, &rec) == JOURNAL_PARSE_OK)
            return q;
    }
    return len;
}

/* ---- version 2: batches ------------------------------------------------ */

/* The start of the longest all-zero suffix of data[0..len). */
static size_t zero_suffix(const char *data, size_t len) {
    size_t z = len;
    while (z > 0 && data[z - 1] == 0)
        z--;
    return z;
}

/*
 * Do lost pages explain damage whose first bad byte lies before `upto`, in
 * the batch starting at `from`? Pages of the last write that never reached
 * the disk read as zeros from a page boundary on, or from the old end of
 * file (the batch's start) on, to EOF.
 */
static int pages_lost(size_t zs, size_t from, size_t upto, size_t len) {
    size_t z = zs <= from ? from : (zs + JOURNAL_PAGE - 1) / JOURNAL_PAGE * JOURNAL_PAGE;
    return z < len && z < upto;
}

/* A destroyed header's surviving bytes [0, n) say what it had to say. */
static int header_prefix_ok(const unsigned char *p, size_t n, uint64_t expect) {
    unsigned char want[JOURNAL_BATCH_HEADER];
    journal_batch_header(want, expect, 0);
    for (size_t i = 0; i < n && i < 17; i++) {
        if (i >= 4 && i < 8)
            continue; /* the crc covers the length we do not know */
        if (i >= 9 && !expect)
            break; /* first batch of the file: any sequence number */
        if (p[i] != want[i])
            return 0;
    }
    return 1;
}

/* Walk the records of a complete batch [from, end): the first bad one's
 * offset and the end of its bytes (*bad_end), or end when all are good. */
static size_t batch_check(const char *data, size_t from, size_t end, size_t *bad_end,
                          enum journal_parse *why) {
    size_t p = from;
    while (p < end) {
        struct journal_record rec;
        *why = journal_record_parse(data + p, end - p, &rec);
        if (*why == JOURNAL_PARSE_OK && rec.type == JOURNAL_TYPE_BATCH)
            *why = JOURNAL_PARSE_BAD_TYPE; /* a batch header inside a batch */
        if (*why != JOURNAL_PARSE_OK) {
            uint32_t n = end - p >= 4 ? get_le32((const unsigned char *)data + p) : 0;
            *bad_end = *why == JOURNAL_PARSE_BAD_CRC || *why == JOURNAL_PARSE_BAD_TYPE
                           ? p + JOURNAL_RECORD_OVERHEAD + n
                           : end;
            if (*bad_end > end)
                *bad_end = end;
            return p;
        }
        p += rec.size;
    }
    return end;
}

/* Count the valid batches (and their records) from the first good batch
 * header after `from`: what a repair would drop. */
static void count_after(const char *data, size_t len, size_t from,
                        struct journal_scan_result *res) {
    for (size_t q = from; q + JOURNAL_BATCH_HEADER <= len; q++) {
        uint64_t seq, blen;
        if ((unsigned char)data[q + 8] != JOURNAL_TYPE_BATCH ||
            !journal_batch_parse(data + q, len - q, &seq, &blen) ||
            blen > len - q - JOURNAL_BATCH_HEADER)
            continue;
        size_t end = q + JOURNAL_BATCH_HEADER + (size_t)blen, bad_end;
        enum journal_parse why;
        if (batch_check(data, q + JOURNAL_BATCH_HEADER, end, &bad_end, &why) != end)
            continue;
        if (!res->next_good)
            res->next_good = q;
        res->dropped_batches++;
        for (size_t p = q + JOURNAL_BATCH_HEADER; p < end;) {
            struct journal_record rec;
            journal_record_parse(data + p, end - p, &rec);
            res->dropped_records++;
            p += rec.size;
        }
        q = end - 1;
    }
}

static void scan_v2(const char *data, size_t len, journal_record_fn cb, void *arg,
                    struct journal_scan_result *res) {
    size_t off = JOURNAL_HEADER_SIZE, zs = zero_suffix(data, len);
    uint64_t expect = 0; /* the next batch's sequence number; 0: any (the first) */
    for (;;) {
        res->end = res->bad = off;
        if (off == len) {
            res->status = JOURNAL_SCAN_CLEAN;
            return;
        }
        size_t left = len - off;
        uint64_t seq, blen;
        if (left < JOURNAL_BATCH_HEADER) {
            res->status = JOURNAL_SCAN_TORN;
            res->reason = "incomplete batch header";
            return;
        }
        if (!journal_batch_parse(data + off, left, &seq, &blen)) {
            size_t z = zs <= off ? off : zs;
            if (pages_lost(zs, off, off + JOURNAL_BATCH_HEADER, len) && left <= JOURNAL_TORN_MAX &&
                header_prefix_ok((const unsigned char *)data + off, z - off, expect)) {
                res->status = JOURNAL_SCAN_TORN;
                res->reason = "last batch's header never reached the disk (zeros)";
                return;
            }
            res->status = JOURNAL_SCAN_CORRUPT;
            res->reason = "damaged batch header";
            count_after(data, len, off + 1, res);
            return;
        }
        if (expect && seq != expect) {
            res->status = JOURNAL_SCAN_CORRUPT;
            res->reason = "batch out of sequence";
            count_after(data, len, off + 1, res);
            return;
        }
        if (blen > left - JOURNAL_BATCH_HEADER) {
            res->status = JOURNAL_SCAN_TORN;
            res->reason = "incomplete last batch";
            return;
        }
        size_t from = off + JOURNAL_BATCH_HEADER, end = from + (size_t)blen, bad_end = end;
        enum journal_parse why = JOURNAL_PARSE_OK;
        size_t bad = batch_check(data, from, end, &bad_end, &why);
        if (bad != end) {
            res->bad = bad;
            res->reason = journal_parse_str(why);
            if (end == len && pages_lost(zs, off, bad_end, len)) {
                res->status = JOURNAL_SCAN_TORN;
                res->reason = "last batch's pages never reached the disk (zeros)";
                return;
            }
            res->status = JOURNAL_SCAN_CORRUPT;
            count_after(data, len, bad + 1, res);
            return;
        }
        for (size_t p = from; p < end;) {
            struct journal_record rec;
            journal_record_parse(data + p, end - p, &rec);
            if (cb && cb(arg, rec.type, rec.payload, rec.len, p) != 0) {
                res->status = JOURNAL_SCAN_STOPPED;
                res->bad = p;
                return;
            }
            res->records++;
            p += rec.size;
        }
        res->batches++;
        res->last_seq = seq;
        expect = seq + 1;
        off = end;
    }
}

/* Does the body after a damaged header read as a journal's? 2, 1 or 0. */
static int body_version(const char *data, size_t len) {
    uint64_t seq, blen;
    struct journal_record rec;
    if (len == JOURNAL_HEADER_SIZE)
        return 2; /* nothing to lose */
    if (journal_batch_parse(data + JOURNAL_HEADER_SIZE, len - JOURNAL_HEADER_SIZE, &seq, &blen))
        return 2;
    if (journal_record_parse(data + JOURNAL_HEADER_SIZE, len - JOURNAL_HEADER_SIZE, &rec) ==
            JOURNAL_PARSE_OK &&
        rec.type != JOURNAL_TYPE_BATCH)
        return 1;
    return 0;
}

void journal_scan(const char *data, size_t len, journal_record_fn cb, void *arg,
                  struct journal_scan_result *res) {
    memset(res, 0, sizeof *res);
    if (len == 0) {
        res->status = JOURNAL_SCAN_EMPTY;
        return;
    }
    const unsigned char *h = (const unsigned char *)data;
    if (len < JOURNAL_HEADER_SIZE) {
        res->status = JOURNAL_SCAN_BAD_HEADER;
        res->reason = "truncated file header";
        res->repairable = 2; /* a header is written atomically: nothing was ever after it */
        return;
    }
    res->version = get_le32(h + 4);
    res->created = get_le64(h + 8);
    if (memcmp(h, JOURNAL_MAGIC, 4) != 0) {
        res->status = JOURNAL_SCAN_BAD_HEADER;
        res->repairable = body_version(data, len);
        res->reason = res->repairable ? "damaged file header (bad magic)"
                                      : "not an awaitd journal (bad magic)";
        return;
    }
    if (res->version == JOURNAL_VERSION)
        scan_v2(data, len, cb, arg, res);
    else if (res->version == JOURNAL_VERSION_V1)
        scan_v1(data, len, cb, arg, res);
    else {
        res->status = JOURNAL_SCAN_BAD_HEADER;
        res->repairable = body_version(data, len);
        res->reason = res->repairable ? "damaged file header (bad version)"
                                      : "unsupported journal version (a newer awaitd's?)";
    }
}

/* Version 1: records without batches (see journal.h). */
static void scan_v1(const char *data, size_t len, journal_record_fn cb, void *arg,
                    struct journal_scan_result *res) {
    size_t off = JOURNAL_HEADER_SIZE;
    enum journal_parse why = JOURNAL_PARSE_OK;
    while (off < len) {
        struct journal_record rec;
        why = journal_record_parse(data + off, len - off, &rec);
        if (why != JOURNAL_PARSE_OK)
            break;
        if (cb && cb(arg, rec.type, rec.payload, rec.len, off) != 0) {
            res->status = JOURNAL_SCAN_STOPPED;
            res->end = res->bad = off;
            return;
        }
        res->records++;
        off += rec.size;
    }
    res->end = res->bad = off;
    if (off == len) {
        res->status = JOURNAL_SCAN_CLEAN;
        return;
    }
    res->reason = journal_parse_str(why);
    uint64_t budget = RESYNC_BUDGET;
    size_t next = scan_resync(data, len, off + 1, &budget);
    if (next == len) {
        res->status = JOURNAL_SCAN_TORN;
        return;
    }
    res->status = JOURNAL_SCAN_CORRUPT;
    if (next == RESYNC_GAVE_UP) {
        res->unproven = 1;
        return;
    }
    res->next_good = next;
    /* Count what a repair would drop: walk good records, resyncing past bad ones. */
    while (next < len) {
        struct journal_record rec;
        if (journal_record_parse(data + next, len - next, &rec) == JOURNAL_PARSE_OK) {
            res->dropped_records++;
            next += rec.size;
        } else {
            next = scan_resync(data, len, next + 1, &budget); /* a lower bound if it gives up */
        }
    }
}


/* ---- files -------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int journal_fsync_dir(const char *path) {
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    int saved = errno;
    close(dfd);
    errno = saved;
    return rc;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off) {
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int tmp_path(char *out, size_t outlen, const char *path, const char *suffix) {
    int n = snprintf(out, outlen, "%s%s", path, suffix);
    if (n < 0 || (size_t)n >= outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int journal_rewrite_begin(const char *path, char *err, size_t errlen) {
    char tmp[PATH_MAX];
    if (tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) < 0) {
        set_err(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    flock(fd, LOCK_EX | LOCK_NB); /* once renamed, it is the journal: hold its lock */
    unsigned char h[JOURNAL_HEADER_SIZE];
    header_fill(h, (uint64_t)time(NULL));
    if (write_all(fd, h, sizeof h, 0) < 0 || lseek(fd, JOURNAL_HEADER_SIZE, SEEK_SET) < 0) {
        int saved = errno;
        set_err(err, errlen, "%s: cannot write header: %s", tmp, strerror(saved));
        close(fd);
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return fd;
}

int journal_rewrite_commit(const char *path, int tmpfd, int *renamed, char *err, size_t errlen) {
    char tmp[PATH_MAX];
    *renamed = 0;
    if (tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) < 0) {
        set_err(err, errlen, "%s: path too long", path);
        return -1;
    }
    if (fsync(tmpfd) < 0) {
        int saved = errno;
        set_err(err, errlen, "%s: fsync: %s", tmp, strerror(saved));
        errno = saved;
        return -1;
    }
    if (rename(tmp, path) < 0) {
        int saved = errno;
        set_err(err, errlen, "%s: rename to %s: %s", tmp, path, strerror(saved));
        errno = saved;
        return -1;
    }
    *renamed = 1;
    if (journal_fsync_dir(path) < 0) {
        int saved = errno;
        set_err(err, errlen, "%s: fsync of its directory: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    return 0;
}

void journal_rewrite_abort(const char *path, int tmpfd) {
    char tmp[PATH_MAX];
    if (tmpfd >= 0)
        close(tmpfd);
    if (tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) == 0)
        unlink(tmp);
}

/* Read the whole file: replay needs every byte anyway, and the resync
 * search after a bad record needs random access to the rest. */
static char *read_whole(int fd, size_t *lenp) {
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    size_t len = (size_t)st.st_size;
    char *data = malloc(len ? len : 1);
    if (!data)
        return NULL;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, data + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO; /* shrank under us: someone else writes the file */
            free(data);
            return NULL;
        }
        got += (size_t)r;
    }
    *lenp = len;
    return data;
}

/* Copy the whole original file beside the journal (path.damaged-OFF), so a
 * repair destroys nothing. */
static int save_copy(const char *path, uint64_t off, const char *data, size_t n, char *out,
                     size_t outlen) {
    char suffix[40];
    snprintf(suffix, sizeof suffix, ".damaged-%llu", (unsigned long long)off);
    if (tmp_path(out, outlen, path, suffix) < 0)
        return -1;
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, data, n, 0) < 0 || fsync(fd) < 0 ? -1 : 0;
    int saved = errno;
    close(fd);
    if (rc == 0)
        rc = journal_fsync_dir(path);
    errno = saved;
    return rc;
}

/*
 * Replace the journal with a version 2 file holding the records in
 * body[0..n) as one batch (seq 1), atomically (temp file, fsync, rename,
 * directory fsync). Returns the new fd (locked), or -1 with err set.
 */
static int upgrade_file(const char *path, const char *body, size_t n, char *err,
                        size_t errlen) {
    int fd = journal_rewrite_begin(path, err, errlen), renamed = 0;
    if (fd < 0)
        return -1;
    unsigned char bh[JOURNAL_BATCH_HEADER];
    journal_batch_header(bh, 1, n);
    if (n && (write_all(fd, bh, sizeof bh, JOURNAL_HEADER_SIZE) < 0 ||
              write_all(fd, body, n, JOURNAL_HEADER_SIZE + sizeof bh) < 0)) {
        set_err(err, errlen, "%s: cannot write the upgraded journal: %s", path, strerror(errno));
        journal_rewrite_abort(path, fd);
        return -1;
    }
    if (journal_rewrite_commit(path, fd, &renamed, err, errlen) < 0) {
        if (!renamed)
            journal_rewrite_abort(path, fd);
        else
            close(fd);
        return -1;
    }
    return fd;
}

static int cut_at(int fd, uint64_t off) {
    return ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0 ? -1 : 0;
}

int journal_path_check(const char *path, char *err, size_t errlen) {
    struct stat st;
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof dir) {
        set_err(err, errlen, "%s: [journal] path: empty or too long", path);
        return -1;
    }
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            set_err(err, errlen, "%s: [journal] path is a directory; it names the journal file "
                    "(e.g. %s%sawaitd.journal)", path, path, path[n - 1] == '/' ? "" : "/");
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            set_err(err, errlen, "%s: [journal] path is not a regular file", path);
            return -1;
        }
        int fd = open(path, O_RDWR | O_CLOEXEC); /* opened, not changed */
        if (fd < 0) {
            set_err(err, errlen, "%s: [journal] path: the journal cannot be written: %s", path,
                    strerror(errno));
            return -1;
        }
        close(fd);
    } else if (errno != ENOENT) {
        set_err(err, errlen, "%s: [journal] path: %s", path, strerror(errno));
        return -1;
    }
    /* The journal is (re)created and compacted through PATH.compact.tmp in
     * its directory: the nearest directory that exists must be writable
     * (the ones missing below it are created at start). */
    memcpy(dir, path, n + 1);
    if (n > 1 && dir[n - 1] == '/')
        dir[n - 1] = '\0';
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            strcpy(dir, ".");
        } else if (slash == dir) {
            dir[1] = '\0';
        } else {
            *slash = '\0';
        }
        if (stat(dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                set_err(err, errlen, "%s: [journal] path: %s is not a directory", path, dir);
                return -1;
            }
            /* Try it: permissions say nothing of root, a read-only mount, /proc. */
            char probe[PATH_MAX + 40];
            snprintf(probe, sizeof probe, "%s/.awaitd-check-%ld", dir, (long)getpid());
            int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                set_err(err, errlen, "%s: [journal] path: cannot create files in %s: %s", path, dir,
                        strerror(errno));
                return -1;
            }
            close(fd);
            unlink(probe);
            return 0;
        }
        if (errno != ENOENT || strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0) {
            set_err(err, errlen, "%s: [journal] path: %s: %s", path, dir, strerror(errno));
            return -1;
        }
    }
}

int journal_open_replay(const char *path, journal_record_fn cb, void *arg, int flags,
                        struct journal_info *info, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    char tmp[PATH_MAX];
    if (tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) < 0) {
        set_err(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC), open_errno = errno;
    /* Two daemons appending to one journal would interleave records. */
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            set_err(err, errlen, "%s: in use by another process (it holds the lock)", path);
        else
            set_err(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* A crash between begin and the rename: the old journal is the whole truth. */
    if (unlink(tmp) == 0)
        info->stale_tmp_removed = 1;
    errno = open_errno; /* not unlink's: a directory (EISDIR) was taken for a missing file */
    if (fd < 0 && errno == ENOENT) {
        int renamed;
        fd = journal_rewrite_begin(path, err, errlen);
        if (fd < 0)
            return -1;
        if (journal_rewrite_commit(path, fd, &renamed, err, errlen) < 0) {
            if (!renamed)
                journal_rewrite_abort(path, fd);
            else
                close(fd);
            return -1;
        }
        info->created = 1;
        info->created_at = (uint64_t)time(NULL);
        info->end = JOURNAL_HEADER_SIZE;
        return fd;
    }
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }

    size_t len = 0;
    char *data = read_whole(fd, &len);
    if (!data) {
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    struct journal_scan_result r;
    journal_scan(data, len, cb, arg, &r);
    if (r.status == JOURNAL_SCAN_BAD_HEADER && r.repairable && (flags & JOURNAL_REPAIR)) {
        /* Keep the original, write a good header in place, and read on. */
        if (save_copy(path, 0, data, len, info->saved_to, sizeof info->saved_to) < 0) {
            set_err(err, errlen, "%s: cannot keep a copy of the original as %s: %s", path,
                    info->saved_to, strerror(errno));
            goto fail;
        }
        unsigned char h[JOURNAL_HEADER_SIZE];
        uint64_t created = len >= JOURNAL_HEADER_SIZE ? r.created : (uint64_t)time(NULL);
        header_fill(h, created);
        put_le32(h + 4, (uint32_t)r.repairable);
        if (len < JOURNAL_HEADER_SIZE) {
            char *d = realloc(data, JOURNAL_HEADER_SIZE);
            if (!d) {
                set_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            data = d;
            len = JOURNAL_HEADER_SIZE;
            if (ftruncate(fd, JOURNAL_HEADER_SIZE) < 0) {
                set_err(err, errlen, "%s: cannot extend: %s", path, strerror(errno));
                goto fail;
            }
        }
        memcpy(data, h, sizeof h);
        if (write_all(fd, h, sizeof h, 0) < 0 || fsync(fd) < 0) {
            set_err(err, errlen, "%s: cannot rewrite the header: %s", path, strerror(errno));
            goto fail;
        }
        info->header_repaired = 1;
        journal_scan(data, len, cb, arg, &r);
    }
    info->records = r.records;
    info->created_at = r.created;
    info->end = r.end;
    info->last_seq = r.last_seq;

    switch (r.status) {
    case JOURNAL_SCAN_CLEAN:
        break;
    case JOURNAL_SCAN_EMPTY: {
        /* An empty file (made by hand, or by an installer): give it a header. */
        unsigned char h[JOURNAL_HEADER_SIZE];
        info->created_at = (uint64_t)time(NULL);
        header_fill(h, info->created_at);
        if (write_all(fd, h, sizeof h, 0) < 0 || fsync(fd) < 0) {
            set_err(err, errlen, "%s: cannot write header: %s", path, strerror(errno));
            goto fail;
        }
        info->created = 1;
        info->end = JOURNAL_HEADER_SIZE;
        break;
    }
    case JOURNAL_SCAN_BAD_HEADER:
        if (r.repairable)
            set_err(err, errlen,
                    "%s: %s at offset 0; refusing to start. awaitd -r rewrites the header and "
                    "replays the records after it (a copy of the original is kept as "
                    "%s.damaged-0)",
                    path, r.reason, path);
        else
            set_err(err, errlen,
                    "%s: %s, and no journal records follow its header; refusing to replay it "
                    "(-r does not touch it: check [journal] path, or move the file aside to "
                    "start empty)",
                    path, r.reason);
        goto fail;
    case JOURNAL_SCAN_STOPPED:
        set_err(err, errlen, "%s: replay stopped at the record at offset %llu", path,
                (unsigned long long)r.bad);
        goto fail;
    case JOURNAL_SCAN_TORN:
        if (cut_at(fd, r.end) < 0) {
            set_err(err, errlen, "%s: cannot truncate torn tail at offset %llu: %s", path,
                    (unsigned long long)r.end, strerror(errno));
            goto fail;
        }
        info->truncated = 1;
        info->bad_offset = r.end;
        info->dropped_bytes = len - r.end;
        info->reason = r.reason;
        break;
    case JOURNAL_SCAN_CORRUPT:
        if (!(flags & JOURNAL_REPAIR)) {
            char what[160] = "";
            if (r.unproven)
                snprintf(what, sizeof what, "the %llu bytes after it are too many to prove a torn "
                         "tail", (unsigned long long)(len - r.bad));
            else if (r.dropped_records || r.dropped_batches)
                snprintf(what, sizeof what, "%llu good %s (%llu records) follow from offset %llu",
                         (unsigned long long)(r.version == JOURNAL_VERSION ? r.dropped_batches
                                                                           : r.dropped_records),
                         r.version == JOURNAL_VERSION ? "batches" : "records",
                         (unsigned long long)r.dropped_records, (unsigned long long)r.next_good);
            else
                snprintf(what, sizeof what, "it is not the last write of the file");
            set_err(err, errlen,
                    "%s: corrupt journal at offset %llu (%s); %s, so this is not a torn tail; "
                    "refusing to start. awaitd -r cuts the journal at offset %llu (the end of "
                    "the last good %s), dropping %llu bytes, and keeps a copy of the original "
                    "as %s.damaged-%llu",
                    path, (unsigned long long)r.bad, r.reason, what, (unsigned long long)r.end,
                    r.version == JOURNAL_VERSION ? "batch" : "record",
                    (unsigned long long)(len - r.end), path, (unsigned long long)r.end);
            goto fail;
        }
        if (save_copy(path, r.end, data, len, info->saved_to, sizeof info->saved_to) < 0) {
            set_err(err, errlen, "%s: cannot keep a copy of the original as %s: %s", path,
                    info->saved_to, strerror(errno));
            goto fail;
        }
        if (cut_at(fd, r.end) < 0) {
            set_err(err, errlen, "%s: cannot truncate at offset %llu: %s", path,
                    (unsigned long long)r.end, strerror(errno));
            goto fail;
        }
        info->repaired = 1;
        info->bad_offset = r.end;
        info->damaged_at = r.bad;
        info->dropped_bytes = len - r.end;
        info->dropped_records = r.dropped_records;
        info->reason = r.reason;
        break;
    }
    if (r.version == JOURNAL_VERSION_V1 && r.status != JOURNAL_SCAN_EMPTY) {
        int nfd = upgrade_file(path, data + JOURNAL_HEADER_SIZE, info->end - JOURNAL_HEADER_SIZE,
                               err, errlen);
        if (nfd < 0)
            goto fail;
        close(fd);
        fd = nfd;
        info->upgraded = 1;
        if (info->end > JOURNAL_HEADER_SIZE) {
            info->end += JOURNAL_BATCH_HEADER;
            info->last_seq = 1;
        }
    }
    free(data);
    if (lseek(fd, (off_t)info->end, SEEK_SET) < 0) {
        set_err(err, errlen, "%s: lseek: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;

fail:
    free(data);
    close(fd);
    return -1;
}
