/*
 * router: method + path -> handler. The table is static and searched in
 * order; a path that matches with the wrong method answers 405 with Allow,
 * an unknown path 404.
 */
#ifndef AWAITD_ROUTER_H
#define AWAITD_ROUTER_H

#include "net/conn.h"

#include <stddef.h>

struct http_request;

typedef enum handler_result (*handler_fn)(struct conn *c, const struct http_request *req,
                                          const char *body, size_t body_len);

enum handler_result router_dispatch(struct conn *c, const struct http_request *req,
                                    const char *body, size_t body_len);

#endif
