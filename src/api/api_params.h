/*
 * api_params: the query parameters of the queue, result and timer APIs,
 * read one way everywhere: seconds, bounded whole numbers, and the refusal
 * of a parameter the route does not know (issue 16: "?dealy=5" is a 400
 * naming it, not a silently different request).
 */
#ifndef AWAITD_API_PARAMS_H
#define AWAITD_API_PARAMS_H

#include "net/conn.h"

#include <stdint.h>

struct http_request;

/* Each: 1 when valid or absent (*out untouched when absent), -1 when bad. */
/* Seconds, fractions allowed ("0.5"), -> milliseconds. */
int api_param_seconds(const struct http_request *req, const char *key, uint64_t *ms);
/* A whole number in [lo, hi] (a sign allowed). */
int api_param_int(const struct http_request *req, const char *key, int64_t lo, int64_t hi,
                  int64_t *out);
/* A whole number in [0, hi], digits only. */
int api_param_uint(const struct http_request *req, const char *key, uint64_t hi, uint64_t *out);

/* 0 when every query parameter is in names (NULL-terminated); else a 400
 * naming the first unknown one and the known ones, and -1. */
int api_params_known(struct conn *c, const struct http_request *req, const char *const *names);

#endif
