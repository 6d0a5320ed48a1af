/*
 * journal_replay: opening the journal at start (journal_open_replay): read
 * the whole file, scan it (journal_scan.c) while the caller replays each
 * good record, then act on the verdict: create a missing or empty file,
 * cut a torn tail, refuse corruption or a bad header with a message saying
 * what awaitd -r would do, or under JOURNAL_REPAIR keep a copy and cut or
 * rewrite the header; a version 1 file is upgraded to version 2. Syscalls
 * only, no logging: the caller logs from struct journal_info.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal.h"
#include "journal/journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    if (journal_tmp_path(out, outlen, path, suffix) < 0)
        return -1;
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = journal_write_all(fd, data, n, 0) < 0 || fsync(fd) < 0 ? -1 : 0;
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
    if (n && (journal_write_all(fd, bh, sizeof bh, JOURNAL_HEADER_SIZE) < 0 ||
              journal_write_all(fd, body, n, JOURNAL_HEADER_SIZE + sizeof bh) < 0)) {
        journal_set_err(err, errlen, "%s: cannot write the upgraded journal: %s", path,
                        strerror(errno));
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

int journal_open_replay(const char *path, journal_record_fn cb, void *arg, int flags,
                        struct journal_info *info, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    char tmp[PATH_MAX];
    if (journal_tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) < 0) {
        journal_set_err(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC), open_errno = errno;
    /* Two daemons appending to one journal would interleave records. */
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            journal_set_err(err, errlen, "%s: in use by another process (it holds the lock)", path);
        else
            journal_set_err(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
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
        journal_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }

    size_t len = 0;
    char *data = read_whole(fd, &len);
    if (!data) {
        journal_set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    struct journal_scan_result r;
    journal_scan(data, len, cb, arg, &r);
    if (r.status == JOURNAL_SCAN_BAD_HEADER && r.repairable && (flags & JOURNAL_REPAIR)) {
        /* Keep the original, write a good header in place, and read on. */
        if (save_copy(path, 0, data, len, info->saved_to, sizeof info->saved_to) < 0) {
            journal_set_err(err, errlen, "%s: cannot keep a copy of the original as %s: %s", path,
                            info->saved_to, strerror(errno));
            goto fail;
        }
        unsigned char h[JOURNAL_HEADER_SIZE];
        uint64_t created = len >= JOURNAL_HEADER_SIZE ? r.created : (uint64_t)time(NULL);
        journal_header_fill(h, created);
        put_le32(h + 4, (uint32_t)r.repairable);
        if (len < JOURNAL_HEADER_SIZE) {
            char *d = realloc(data, JOURNAL_HEADER_SIZE);
            if (!d) {
                journal_set_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            data = d;
            len = JOURNAL_HEADER_SIZE;
            if (ftruncate(fd, JOURNAL_HEADER_SIZE) < 0) {
                journal_set_err(err, errlen, "%s: cannot extend: %s", path, strerror(errno));
                goto fail;
            }
        }
        memcpy(data, h, sizeof h);
        if (journal_write_all(fd, h, sizeof h, 0) < 0 || fsync(fd) < 0) {
            journal_set_err(err, errlen, "%s: cannot rewrite the header: %s", path,
                            strerror(errno));
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
        journal_header_fill(h, info->created_at);
        if (journal_write_all(fd, h, sizeof h, 0) < 0 || fsync(fd) < 0) {
            journal_set_err(err, errlen, "%s: cannot write header: %s", path, strerror(errno));
            goto fail;
        }
        info->created = 1;
        info->end = JOURNAL_HEADER_SIZE;
        break;
    }
    case JOURNAL_SCAN_BAD_HEADER:
        if (r.repairable)
            journal_set_err(
                err, errlen,
                "%s: %s at offset 0; refusing to start. awaitd -r rewrites the header and "
                "replays the records after it (a copy of the original is kept as "
                "%s.damaged-0)",
                path, r.reason, path);
        else
            journal_set_err(
                err, errlen,
                "%s: %s, and no journal records follow its header; refusing to replay it "
                "(-r does not touch it: check [journal] path, or move the file aside to "
                "start empty)",
                path, r.reason);
        goto fail;
    case JOURNAL_SCAN_STOPPED:
        journal_set_err(err, errlen, "%s: replay stopped at the record at offset %llu", path,
                        (unsigned long long)r.bad);
        goto fail;
    case JOURNAL_SCAN_TORN:
        if (cut_at(fd, r.end) < 0) {
            journal_set_err(err, errlen, "%s: cannot truncate torn tail at offset %llu: %s", path,
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
            journal_set_err(
                err, errlen,
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
            journal_set_err(err, errlen, "%s: cannot keep a copy of the original as %s: %s", path,
                            info->saved_to, strerror(errno));
            goto fail;
        }
        if (cut_at(fd, r.end) < 0) {
            journal_set_err(err, errlen, "%s: cannot truncate at offset %llu: %s", path,
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
        journal_set_err(err, errlen, "%s: lseek: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;

fail:
    free(data);
    close(fd);
    return -1;
}
