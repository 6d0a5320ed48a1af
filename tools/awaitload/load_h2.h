/*
 * load_h2: awaitload --h2 (issue 15): HTTP/2 with prior knowledge, --streams
 * requests in flight per connection, as a load_worker driver (load_h2.c).
 */
#ifndef AWAITD_LOAD_H2_H
#define AWAITD_LOAD_H2_H

#include <nghttp2/nghttp2.h>

struct load_driver;

/* What every worker shares: the request's fields (pointing at strings the
 * caller keeps for the run) and the streams per connection. */
struct load_h2_plan {
    nghttp2_nv nva[4];
    size_t nvlen;
    unsigned streams;
};

extern const struct load_driver load_h2_driver;

int load_h2_plan_init(struct load_h2_plan *p, const char *method, const char *scheme,
                      const char *authority, const char *path, unsigned streams);

#endif
