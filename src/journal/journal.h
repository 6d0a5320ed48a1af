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
 *   header, 16 bytes:  "AWJ1" | u32 version (2) | u64 created (unix seconds)
 *   record, 9 + n:     u32 n | u32 crc | u8 type | n bytes of payload
 *   batch header:      a record of type JOURNAL_TYPE_BATCH (0xF0) whose
 *                      16-byte payload is u64 seq | u64 len
 *   version 2 body:    batch header, len bytes of records, batch header, ...
 *
 * n is the payload length (the type byte is not counted), at most
 * JOURNAL_RECORD_MAX. crc is CRC-32C (Castagnoli) of the type byte followed
 * by the payload. Type 0 is invalid so that a zero-filled tail never parses
 * as a record; types >= JOURNAL_TYPE_RESERVED belong to the journal itself.
 * Offsets are file offsets.
 *
 * Batches (version 2). The writer writes each group commit as one batch
 * with one pwrite(): a 25-byte batch header naming its sequence number
 * (one more than the batch before it in the file) and the byte length of
 * the records after it, then those records. Replay applies a batch only
 * when all of it is there and every record in it is good.
 *
 * Torn tail versus corruption (version 2). A crash can only damage what
 * was being written when it happened, the last batch: it leaves a prefix
 * of it (the file ends inside it), or its full length with pages that
 * never reached the disk (zeros, from a page boundary, or from the batch's
 * start, the old end of file, on). So, batch by batch from the header on:
 *   - torn, cut at the batch's start with a warning: fewer bytes than a
 *     batch header are left; or a good header whose length runs past the
 *     end of the file; or the last batch (its length ends exactly at EOF)
 *     or a destroyed header whose first bad byte lies in a zero-filled
 *     suffix of the file beginning at a page boundary or at the batch's
 *     start (and a destroyed header's surviving bytes match what it must
 *     say, and at most JOURNAL_TORN_MAX bytes follow it).
 *   - corruption, start refused naming the offset: anything else: a
 *     complete record with a bad crc (a flipped byte), a bad batch that is
 *     not the last one (bytes follow its end: damage reaching into earlier
 *     batches, such as a zeroed stretch across several batches), a batch
 *     out of sequence, a destroyed header followed by anything but zeros.
 * Nothing acknowledged is cut: a batch is acknowledged only after its
 * fsync, and the batch after it is written only after that. The limits,
 * both documented: zeros that begin exactly at a batch's start stand for
 * a lost last write (cut when at most JOURNAL_TORN_MAX long), since the
 * bytes cannot tell them apart; and pages lost out of order inside the
 * last write (rare on Linux, whose writeback goes in file order) read as
 * corruption, which fails safe.
 *
 * Version 1 files (records without batches, before this format) are read
 * with version 1's rules (the resync search below) and upgraded at once
 * to version 2: the surviving records become one batch in a new file that
 * replaces the old one atomically (like a compaction).
 *
 * Version 1's rule. Records are read from the header on; the first one that
 * is not a complete good record is "bad" at offset B. If no valid record
 * starts anywhere in (B, EOF) (every offset is tried, within a CRC budget),
 * the tail is torn and cut at B; else it is corruption.
 *
 * Repair (JOURNAL_REPAIR, awaitd -r): corruption is cut at the end of the
 * last good batch, and a damaged file header is rewritten when the bytes
 * after it are a journal's; either way a copy of the original file is kept
 * first as path.damaged-OFFSET (OFFSET is where it was cut; 0 for a header).
 */
#ifndef AWAITD_JOURNAL_H
#define AWAITD_JOURNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define JOURNAL_MAGIC "AWJ1"
#define JOURNAL_VERSION 2u              /* batches; 1 = records only (read and upgraded) */
#define JOURNAL_VERSION_V1 1u
#define JOURNAL_TYPE_BATCH 0xF0u          /* the batch header record */
#define JOURNAL_BATCH_HEADER 25u          /* 9 + u64 seq + u64 len */
#define JOURNAL_PAGE 4096u                /* lost pages start at multiples of this */
#define JOURNAL_TORN_MAX (128u << 20)     /* longest zero fill that may stand for a lost write */
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

/* Fill a batch header: seq, and len bytes of records after it. Pure. */
void journal_batch_header(unsigned char out[JOURNAL_BATCH_HEADER], uint64_t seq, uint64_t len);
/* 1 and *seq, *len set when data[0..avail) starts with a good batch header, else 0. */
int journal_batch_parse(const char *data, size_t avail, uint64_t *seq, uint64_t *len);

/*
 * Append one record to b. 0, or -1 with errno EINVAL (type 0 or
 * >= JOURNAL_TYPE_RESERVED, or len > JOURNAL_RECORD_MAX) or ENOMEM; b is
 * unchanged on error.
 */
int journal_encode(struct buf *b, uint8_t type, const void *payload, size_t len);

/*
 * The same in two steps, for a caller that writes the payload in place (no
 * staging copy): journal_encode_begin reserves room for a record of len
 * payload bytes and returns where they go (NULL with errno as above, b
 * unchanged); journal_encode_end, after exactly len bytes were written
 * there, fills the record's header and appends it to b.
 */
char *journal_encode_begin(struct buf *b, uint8_t type, size_t len);
void journal_encode_end(struct buf *b, uint8_t type, size_t len);

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
    JOURNAL_SCAN_BAD_HEADER, /* not a journal, an unknown version, or a cut header
                              * (.repairable: what follows is a journal's) */
    JOURNAL_SCAN_STOPPED,    /* the callback returned nonzero for the record at .bad */
};

struct journal_scan_result {
    enum journal_scan_status status;
    uint64_t end;             /* just past the last good batch (v1: record): keep [0, end) */
    uint64_t bad;             /* TORN/CORRUPT/STOPPED: offset of the first bad byte's unit
                               * (a record or a batch header); TORN: == end */
    const char *reason;       /* TORN/CORRUPT/BAD_HEADER: why (static string) */
    uint64_t records;         /* good records passed to the callback */
    uint64_t next_good;       /* CORRUPT: first valid record after .bad */
    uint64_t dropped_records; /* CORRUPT: valid records found in [bad, EOF) */
    int unproven;             /* CORRUPT: the tail was too large to search (see below) */
    uint64_t batches;         /* good batches (version 2) */
    uint64_t last_seq;        /* the last good batch's sequence number, 0 if none */
    uint64_t dropped_batches; /* CORRUPT: valid batches found in [bad, EOF) */
    int repairable;           /* BAD_HEADER: 2 or 1, the version the body reads as; 0 none */
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
#define JOURNAL_REPAIR 1 /* cut corruption at the last good batch, rewrite a damaged header */

struct journal_info {
    uint64_t records;         /* records replayed */
    uint64_t end;             /* file size after opening: appends start here */
    uint64_t created_at;      /* the header's creation time (unix seconds) */
    int created;              /* 1: the file was missing or empty and was created */
    int upgraded;             /* 1: a version 1 file was rewritten as version 2 */
    int header_repaired;      /* 1: a damaged header was rewritten under JOURNAL_REPAIR */
    uint64_t last_seq;        /* the last batch's sequence number (the writer goes on after it) */
    int truncated;            /* 1: a torn tail was cut (log a warning) */
    int repaired;             /* 1: corruption was cut under JOURNAL_REPAIR (log a warning) */
    int stale_tmp_removed;    /* 1: a leftover compaction temp file was removed */
    uint64_t bad_offset;      /* truncated/repaired: where the file was cut */
    uint64_t damaged_at;      /* repaired: the first damaged record or batch header */
    uint64_t dropped_bytes;   /* truncated/repaired: bytes cut */
    uint64_t dropped_records; /* repaired: valid records that were in the cut bytes */
    const char *reason;       /* truncated/repaired: why the record at bad_offset was bad */
    char saved_to[PATH_MAX];  /* repaired: the original file was copied here first ("" if not) */
};

/* Whether path can be the journal (issue 16; awaitd -t and start call it
 * first): not a directory, a regular file that can be read and written if
 * it exists (opened, not changed), and a file can be created in the
 * nearest existing directory above it (tried: a probe file created and
 * removed; the journal and its compaction's temp file are created there).
 * 0, or -1 with err naming the cause. */
int journal_path_check(const char *path, char *err, size_t errlen);

/*
 * Open the journal at path for appending, creating it if missing (the
 * header is written to a temporary file that is fsynced and renamed into
 * place, then the directory is fsynced, so a crash never leaves a
 * half-written header). Every good record is passed to cb in order. A torn
 * tail is truncated (ftruncate + fsync) and reported in info; corruption
 * makes it fail with err naming the file, the offset, and what a repair
 * would do, unless flags has JOURNAL_REPAIR: then the whole file is copied
 * to path.damaged-OFFSET (so nothing is destroyed) and cut at the end of
 * the last good batch. A damaged header is refused the same way, and
 * rewritten under JOURNAL_REPAIR when the body is a journal's. A version 1
 * file is upgraded (info->upgraded). A leftover
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
