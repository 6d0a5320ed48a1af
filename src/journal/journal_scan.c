/*
 * journal_scan: classify a whole journal image (journal_scan): good
 * batches (version 2) or records (version 1) passed to the caller in file
 * order, then clean, a torn tail to cut, corruption to refuse, or a bad
 * header, by the rules in journal.h. Pure: the same bytes always give the
 * same answer, with no I/O and no allocation (unit-tested and fuzzed).
 */
#include "journal/journal.h"
#include "journal/journal_int.h"

#include <stdint.h>
#include <string.h>

static void scan_v1(const char *data, size_t len, journal_record_fn cb, void *arg,
                    struct journal_scan_result *res);

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
