/*
 * queue_journal: queue engine events <-> journal records. Pure: encode a
 * struct queue_event into bytes and decode them back.
 *
 * Times: the engine's clock is the wheel's monotonic milliseconds, which
 * restart at boot, so times are stored as wall-clock (unix) milliseconds:
 * encode adds (wall_now - wheel_now), decode subtracts it again. A delayed
 * job whose time passed while the daemon was down is simply ready.
 *
 * Record type = event type + 1 (the journal reserves type 0). Payload,
 * little-endian: u8 queue name length, name, u64 now, u64 id, i32 priority,
 * u64 visible_at, u8 immediate, u8 reason, settings (u64 maxsize, u64 lease,
 * u32 max_attempts, u32 max_payload, u64 key window), u8 key length, key,
 * u32 payload length, payload; CREATE and UPDATE then u64 result ttl (ms;
 * absent in journals written before results, read as the default 300000).
 * RESULT (type 0x0B) uses the same layout: immediate = outcome, reason,
 * priority = attempt, visible_at = expiry, key = content type, payload =
 * body. An awaitd older than results refuses a journal holding either.
 */
#ifndef AWAITD_QUEUE_JOURNAL_H
#define AWAITD_QUEUE_JOURNAL_H

#include "engine/queue.h"

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Offset to add to a wheel time to get unix ms (wall_now - wheel_now). */
struct qj_clock {
    int64_t wall_minus_wheel;
};

/* Append ev as one journal record (framing and crc included). 0 or -1 (ENOMEM). */
int qj_encode(struct buf *out, const struct queue_event *ev, const struct qj_clock *clk);

/*
 * Decode a record's (type, payload) into ev; pointers in ev point into
 * payload. Wall times are converted to wheel times with clk (never below
 * zero). 0, or -1 when the record is not a queue event or is malformed.
 */
int qj_decode(uint8_t type, const char *payload, size_t len, const struct qj_clock *clk,
              struct queue_event *ev);

#endif
