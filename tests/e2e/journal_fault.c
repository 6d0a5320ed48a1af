/*
 * An LD_PRELOAD shim for tests/e2e/test_journal_failure.py: while the file
 * named by AWAITD_TEST_FAULT_FILE exists, fdatasync() fails with EIO (the
 * write reached the page cache, the disk refused it: "fsyncgate"). The
 * journal writer calls fdatasync through jw_options' seam, which defaults
 * to the libc symbol this interposes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *f = getenv("AWAITD_TEST_FAULT_FILE");
    struct stat st;
    if (f && stat(f, &st) == 0) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}
