/*
 * journal_int: what the journal format's files share (journal.c,
 * journal_scan.c, journal_file.c, journal_replay.c): little-endian access,
 * the file header's bytes, and the small file helpers. Not for use
 * outside src/journal/journal*.c (the writer has its own,
 * journal_writer_int.h); journal.h is the contract.
 */
#ifndef AWAITD_JOURNAL_INT_H
#define AWAITD_JOURNAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "journal/journal.h"

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

/* The 16-byte file header (current version) into h. Pure (journal.c). */
void journal_header_fill(unsigned char h[JOURNAL_HEADER_SIZE], uint64_t created);

/* journal_file.c: */
/* vsnprintf into err when err is given (errlen > 0); else nothing. */
void journal_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* pwrite all n bytes at off, retrying EINTR and short writes. 0, or -1 with errno. */
int journal_write_all(int fd, const void *p, size_t n, uint64_t off);
/* out = path + suffix; -1 with errno ENAMETOOLONG when it does not fit. */
int journal_tmp_path(char *out, size_t outlen, const char *path, const char *suffix);

#endif
