#include "svc/tsvc.h"

#include <string.h>

void tsvc_call_init(struct tsvc_call *call, tsvc_done_fn done, void *arg) {
    memset(call, 0, sizeof *call);
    call->done = done;
    call->arg = arg;
}

const char *tsvc_spec_error(const struct tsvc_spec *s, int *status) {
    *status = TSVC_INVALID;
    if (!s->queue_len)
        return "queue: required (the queue the timer puts its payload into)";
    if (s->queue_len > TSVC_QUEUE_MAX)
        return "queue: a name is at most " CRON_STR(QUEUE_NAME_MAX) " bytes";
    if (s->kind == TSVC_CRON && s->cron_len > TSVC_CRON_MAX)
        return "cron: longer than " CRON_STR(CRON_TEXT_MAX) " bytes";
    if ((s->kind == TSVC_AFTER || s->kind == TSVC_AT) && (s->count || s->jitter_ms))
        return "count and jitter: only for every and cron timers";
    if (s->payload_len > TSVC_PAYLOAD_MAX) {
        *status = TSVC_TOOBIG;
        return "payload: longer than " CRON_STR(TSVC_PAYLOAD_MAX) " bytes";
    }
    return NULL;
}

int tsvc_create(struct tsvc *svc, struct tsvc_call *call, const struct tsvc_spec *spec) {
    return svc->ops->create(svc, call, spec);
}

int tsvc_get(struct tsvc *svc, struct tsvc_call *call, uint64_t id, uint64_t wait_ms) {
    return svc->ops->get(svc, call, id, wait_ms);
}

int tsvc_list(struct tsvc *svc, struct tsvc_call *call, uint64_t after, struct tsvc_timer *out,
              size_t max) {
    return svc->ops->list(svc, call, after, out, max);
}

int tsvc_cancel(struct tsvc *svc, struct tsvc_call *call, uint64_t id) {
    return svc->ops->cancel(svc, call, id);
}

void tsvc_call_cancel(struct tsvc_call *call) {
    if (call->svc)
        call->svc->ops->call_cancel(call);
}
