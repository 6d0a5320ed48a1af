/*
 * auth: the bearer token ([auth] token / token_file) that the queue and
 * timer endpoints, and /metrics unless [metrics] public = on, require when
 * one is configured. With mutual TLS, a
 * configured client certificate subject stands in for the token.
 */
#ifndef AWAITD_AUTH_H
#define AWAITD_AUTH_H

struct conn;
struct http_request;

/* 1 allowed, or 0 after answering 401 with WWW-Authenticate. The token is
 * compared in constant time. */
int api_authorized(struct conn *c, const struct http_request *req);

#endif
