#include "api/auth.h"

#include "core/config.h"
#include "http/http_parse.h"
#include "net/http_reply.h"
#include "net/server.h"

#include <string.h>
#include <strings.h>

int api_authorized(struct conn *c, const struct http_request *req) {
    const char *token = c->srv->cfg->auth_token;
    if (!token)
        return 1;
    /* With mutual TLS, a configured client certificate subject stands in for the token. */
    const char *subj = c->srv->cfg->auth_client_subject;
    char have[512];
    if (subj && conn_tls_subject(c, have, sizeof have) >= 0 && strcmp(have, subj) == 0)
        return 1;
    const struct http_header *h = http_find_header(req->headers, req->nheaders, "authorization");
    size_t tl = strlen(token);
    int ok = 0;
    if (h && h->value_len == 7 + tl && strncasecmp(h->value, "Bearer ", 7) == 0) {
        /* Constant time in the token's bytes: no early exit on the first difference. */
        unsigned char diff = 0;
        for (size_t i = 0; i < tl; i++)
            diff |= (unsigned char)(h->value[7 + i] ^ token[i]);
        ok = diff == 0;
    }
    if (!ok)
        reply_error_hdr(c, 401, "WWW-Authenticate: Bearer realm=\"awaitd\"\r\n",
                        h ? "invalid bearer token" : "this endpoint needs Authorization: Bearer <token>");
    return ok;
}
