/*
 * journal_file: the journal's file operations other than replay: the
 * compaction rewrite (a temp file, fsynced and renamed over the journal,
 * then the directory fsynced), the directory fsync, and the start-up
 * check that a path can be the journal (journal_path_check). Syscalls
 * only: errors go into the caller's buffer, nothing is logged. Also the
 * small helpers the other journal files share (journal_int.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal.h"
#include "journal/journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void journal_set_err(char *err, size_t errlen, const char *fmt, ...) {
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

int journal_write_all(int fd, const void *p, size_t n, uint64_t off) {
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

int journal_tmp_path(char *out, size_t outlen, const char *path, const char *suffix) {
    int n = snprintf(out, outlen, "%s%s", path, suffix);
    if (n < 0 || (size_t)n >= outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int journal_rewrite_begin(const char *path, char *err, size_t errlen) {
    char tmp[PATH_MAX];
    if (journal_tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) < 0) {
        journal_set_err(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        journal_set_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    flock(fd, LOCK_EX | LOCK_NB); /* once renamed, it is the journal: hold its lock */
    unsigned char h[JOURNAL_HEADER_SIZE];
    journal_header_fill(h, (uint64_t)time(NULL));
    if (journal_write_all(fd, h, sizeof h, 0) < 0 || lseek(fd, JOURNAL_HEADER_SIZE, SEEK_SET) < 0) {
        int saved = errno;
        journal_set_err(err, errlen, "%s: cannot write header: %s", tmp, strerror(saved));
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
    if (journal_tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) < 0) {
        journal_set_err(err, errlen, "%s: path too long", path);
        return -1;
    }
    if (fsync(tmpfd) < 0) {
        int saved = errno;
        journal_set_err(err, errlen, "%s: fsync: %s", tmp, strerror(saved));
        errno = saved;
        return -1;
    }
    if (rename(tmp, path) < 0) {
        int saved = errno;
        journal_set_err(err, errlen, "%s: rename to %s: %s", tmp, path, strerror(saved));
        errno = saved;
        return -1;
    }
    *renamed = 1;
    if (journal_fsync_dir(path) < 0) {
        int saved = errno;
        journal_set_err(err, errlen, "%s: fsync of its directory: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    return 0;
}

void journal_rewrite_abort(const char *path, int tmpfd) {
    char tmp[PATH_MAX];
    if (tmpfd >= 0)
        close(tmpfd);
    if (journal_tmp_path(tmp, sizeof tmp, path, JOURNAL_TMP_SUFFIX) == 0)
        unlink(tmp);
}

int journal_path_check(const char *path, char *err, size_t errlen) {
    struct stat st;
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof dir) {
        journal_set_err(err, errlen, "%s: [journal] path: empty or too long", path);
        return -1;
    }
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            journal_set_err(err, errlen,
                            "%s: [journal] path is a directory; it names the journal file "
                            "(e.g. %s%sawaitd.journal)",
                            path, path, path[n - 1] == '/' ? "" : "/");
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            journal_set_err(err, errlen, "%s: [journal] path is not a regular file", path);
            return -1;
        }
        int fd = open(path, O_RDWR | O_CLOEXEC); /* opened, not changed */
        if (fd < 0) {
            journal_set_err(err, errlen, "%s: [journal] path: the journal cannot be written: %s",
                            path, strerror(errno));
            return -1;
        }
        close(fd);
    } else if (errno != ENOENT) {
        journal_set_err(err, errlen, "%s: [journal] path: %s", path, strerror(errno));
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
                journal_set_err(err, errlen, "%s: [journal] path: %s is not a directory", path,
                                dir);
                return -1;
            }
            /* Try it: permissions say nothing of root, a read-only mount, /proc. */
            char probe[PATH_MAX + 40];
            snprintf(probe, sizeof probe, "%s/.awaitd-check-%ld", dir, (long)getpid());
            int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                journal_set_err(err, errlen, "%s: [journal] path: cannot create files in %s: %s",
                                path, dir, strerror(errno));
                return -1;
            }
            close(fd);
            unlink(probe);
            return 0;
        }
        if (errno != ENOENT || strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0) {
            journal_set_err(err, errlen, "%s: [journal] path: %s: %s", path, dir, strerror(errno));
            return -1;
        }
    }
}
