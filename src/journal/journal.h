/*
 * journal: the on-disk format of awaitd's append-only journal and the
 * start-up scan. The journal stores opaque records (a type byte and bytes)
 * produced by the queue engine; it knows nothing of queues or jobs. No
 * threads and no logging here: encode and scan are pure (unit-tested and
 * fuzzable), and the file functions only make syscalls and fill an error
 * buffer, so the caller decides what to log. The writer thread that appends
 * records at run time is journal_writer.h.
 *
 * File format (all integers little-endian, no padding):
 *
 *   header, 16 bytes:  "AWJ1" | u32 version (1) | u64 created (unix seconds)
 *   record, 9 + n:     u32 n | u32 crc | u8 type | n bytes of payload
 *
 * n is the payload length (the type byte is not counted), at most
 * JOURNAL_RECORD_MAX. crc is CRC-32C (Castagnoli) of the type byte followed
 * by the payload. Type 0 is invalid so that a zero-filled tail (what some
 * filesystems show after a crash that extended the file but lost its data)
 * never parses as a record; types >= JOURNAL_TYPE_RESERVED are kept for the
 * journal's own future use. Record offsets are file offsets.
 *
 * Torn tail versus corruption. Records are read from the header on; the
 * first one that is not a complete record with a good crc, a legal type and
 * a legal length is "bad" at offset B. Then every byte offset after B is
 * tried as the start of a record:
 *   - no valid record starts anywhere in (B, EOF): a torn tail, what a crash
 *     in the middle of an append leaves (a cut header, a cut payload, a
 *     complete-looking last record whose crc fails, zeros). The file is
 *     truncated at B with a warning and start-up goes on. Nothing durable
 *     is lost: an append is acknowledged only after its fsync, and a later
 *     append could only have been made after it.
 *   - a valid record starts at some offset V > B: corruption. Bytes were
 *     damaged inside the journal, not at its growing end, and cutting at B
 *     would silently drop the records that follow, so start-up is refused
 *     with a message naming the file and B, unless JOURNAL_REPAIR is given.
 * Searching every offset (not just B + 9 + n) matters because the damaged
 * field may be the length itself: a flipped high bit in n makes the record
 * seem to run past EOF, and without the search a mid-file bit flip would
 * pass for a torn tail and drop everything after it. The prices, both
 * failing safe (refused, JOURNAL_REPAIR cuts): a torn tail that happens to
 * contain a valid record inside its cut payload (a job whose body is itself
 * a journal record) is refused rather than cut; and the search does at
 * most 8 GiB of CRC work (about a second with SSE4.2), enough for a cut
 * record of about 6 MiB of random binary bytes, beyond which the tail is
 * reported as corruption ("unproven").
 * A crash that loses a page in the middle of the last unsynced write while
 * a later page of it reached the disk also reads as corruption: rare on
 * Linux, whose writeback goes in file order, and it fails safe too.
 */
#ifndef AWAITD_JOURNAL_H
#define AWAITD_JOURNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define JOURNAL_MAGIC "AWJ1"
#define JOURNAL_VERSION 1u
#define JOURNAL_HEADER_SIZE 16u
#define JOURNAL_RECORD_OVERHEAD 9u        /* length + crc + type */
#define JOURNAL_RECORD_MAX (64u << 20)    /* payload bytes; larger lengths are damage */
#define JOURNAL_TYPE_RESERVED 0xF0u       /* types 0xF0..0xFF belong to the journal */
#define JOURNAL_TMP_SUFFIX ".compact.tmp" /* compaction's temporary file: path + suffix */

/* CRC-32C, continuing from crc (pass 0 to start). Uses SSE4.2 when the CPU
 * has it (checked once at start-up), else slicing-by-8 tables. */
uint32_t journal_crc32c(uint32_t crc, const void *data, size_t len);
/* The table-driven version, always: for tests comparing the two. */
uint32_t journal_crc32c_sw(uint32_t crc, const void *data, size_t len);

/* Append the 16-byte file header to b. 0, or -1 on ENOMEM. */
int journal_header_encode(struct buf *b, uint64_t created);

/*
 * Append one record to b. 0, or -1 with errno EINVAL (type 0 or
 * >= JOURNAL_TYPE_RESERVED, or len > JOURNAL_RECORD_MAX) or ENOMEM; b is
 * unchanged on error.
 */
int journal_encode(struct buf *b, uint8_t type, const void *payload, size_t len);

/* What journal_record_parse found at the start of a byte range. */
enum journal_parse {
    JOURNAL_PARSE_OK = 0,    /* a complete, valid record */
    JOURNAL_PARSE_SHORT_HDR, /* fewer than 9 bytes left */
    JOURNAL_PARSE_SHORT,     /* the length runs past the end of the data */
    JOURNAL_PARSE_TOO_LONG,  /* length > JOURNAL_RECORD_MAX */
    JOURNAL_PARSE_BAD_TYPE,  /* type 0 or reserved */
    JOURNAL_PARSE_BAD_CRC,   /* complete, but the crc does not match */
};

struct journal_record {
    uint8_t type;
    const char *payload; /* points into the parsed data */
    size_t len;          /* payload length */
    size_t size;         /* whole record: JOURNAL_RECORD_OVERHEAD + len */
};

/* Parse the record at data[0..avail). Pure. */
enum journal_parse journal_record_parse(const char *data, size_t avail, struct journal_record *rec);
/* A short phrase for messages: "crc mismatch", "incomplete record", ... */
const char *journal_parse_str(enum journal_parse p);

/*
 * Called for each good record in file order. Return 0 to go on; anything
 * else stops the scan (JOURNAL_SCAN_STOPPED), e.g. when the engine rejects
 * a record. The payload pointer is valid only during the call.
 */
typedef int (*journal_record_fn)(void *arg, uint8_t type, const char *payload, size_t len,
                                 uint64_t offset);

enum journal_scan_status {
    JOURNAL_SCAN_CLEAN = 0,  /* every byte belongs to a good record */
    JOURNAL_SCAN_EMPTY,      /* zero bytes: a new file, no header yet */
    JOURNAL_SCAN_TORN,       /* torn tail at .bad: truncate to .end (== .bad) */
    JOURNAL_SCAN_CORRUPT,    /* bad record at .bad, valid records from .next_good on */
    JOURNAL_SCAN_BAD_HEADER, /* not a journal, an unknown version, or a cut header */
    JOURNAL_SCAN_STOPPED,    /* the callback returned nonzero for the record at .bad */
};

struct journal_scan_result {
    enum journal_scan_status status;
    uint64_t end;             /* just past the last good record: keep [0, end) */
    uint64_t bad;             /* TORN/CORRUPT/STOPPED: offset of the first bad record */
    const char *reason;       /* TORN/CORRUPT/BAD_HEADER: why (static string) */
    uint64_t records;         /* good records passed to the callback */
    uint64_t next_good;       /* CORRUPT: first valid record after .bad */
    uint64_t dropped_records; /* CORRUPT: valid records found in [bad, EOF) */
    int unproven;             /* CORRUPT: the tail was too large to search (see below) */
    uint32_t version;         /* from the header */
    uint64_t created;         /* from the header */
};

/*
 * Scan a whole journal image (header included) and classify it as the file
 * comment above says. cb (may be NULL) sees exactly the records in
 * [header, end): the records that survive whatever the caller does next.
 * Pure: the same bytes always give the same answer.
 */
void journal_scan(const char *data, size_t len, journal_record_fn cb, void *arg,
                  struct journal_scan_result *res);

/* journal_open_replay flags */
#define JOURNAL_REPAIR 1 /* on corruption, cut at the first bad record instead of refusing */

struct journal_info {
    uint64_t records;         /* records replayed */
    uint64_t end;             /* file size after opening: appends start here */
    uint64_t created_at;      /* the header's creation time (unix seconds) */
    int created;              /* 1: the file was missing or empty and was created */
    int truncated;            /* 1: a torn tail was cut (log a warning) */
    int repaired;             /* 1: corruption was cut under JOURNAL_REPAIR (log a warning) */
    int stale_tmp_removed;    /* 1: a leftover compaction temp file was removed */
    uint64_t bad_offset;      /* truncated/repaired: where the file was cut */
    uint64_t dropped_bytes;   /* truncated/repaired: bytes cut */
    uint64_t dropped_records; /* repaired: valid records that were in the cut bytes */
    const char *reason;       /* truncated/repaired: why the record at bad_offset was bad */
    char saved_to[PATH_MAX];  /* repaired: the cut bytes were copied here first ("" if not) */
};

/*
 * Open the journal at path for appending, creating it if missing (the
 * header is written to a temporary file that is fsynced and renamed into
 * place, then the directory is fsynced, so a crash never leaves a
 * half-written header). Every good record is passed to cb in order. A torn
 * tail is truncated (ftruncate + fsync) and reported in info; corruption
 * makes it fail with err naming the file and the offset, unless flags has
 * JOURNAL_REPAIR: then the bytes from the first bad record on are copied to
 * path.dropped-OFFSET (so nothing is destroyed) and cut. A leftover
 * path.compact.tmp from a crash during compaction is removed: until its
 * rename, the old journal is the complete one.
 *
 * The fd holds an exclusive flock(), so a second daemon pointed at the same
 * journal fails here ("in use by another process") instead of interleaving
 * its records; compaction's temp file is locked too, so the lock follows
 * the rename.
 *
 * Returns an fd (O_RDWR, O_CLOEXEC, positioned at info->end) or -1 with a
 * one-line message in err. When cb stops the scan, returns -1 and err says
 * at which offset. On -1, discard whatever cb built: the daemon must not
 * start. No logging: the caller logs from info (a warning naming
 * bad_offset, dropped_bytes and reason when truncated or repaired).
 */
int journal_open_replay(const char *path, journal_record_fn cb, void *arg, int flags,
                        struct journal_info *info, char *err, size_t errlen);

/*
 * Compaction, in two steps around the caller's writes. begin creates (or
 * truncates) path.compact.tmp with a fresh header and returns its fd, at
 * offset JOURNAL_HEADER_SIZE; the caller writes ordinary records to it.
 * commit fsyncs it, renames it over path and fsyncs the directory: the
 * journal is replaced atomically, old or new, never a mix. abort closes and
 * unlinks the temporary file. See journal_writer.h for how records that
 * arrive while the snapshot is written reach the new file.
 *
 * commit returns 0, or -1 with errno set and err filled; on -1 with
 * *renamed == 1 the new file is in place but the directory fsync failed,
 * so the rename may not survive a crash: keep the fd (the new journal) and
 * retry journal_fsync_dir before acknowledging anything else.
 */
int journal_rewrite_begin(const char *path, char *err, size_t errlen);
int journal_rewrite_commit(const char *path, int tmpfd, int *renamed, char *err, size_t errlen);
void journal_rewrite_abort(const char *path, int tmpfd);

/* fsync the directory holding path: makes a create or rename durable. */
int journal_fsync_dir(const char *path);

#endif
