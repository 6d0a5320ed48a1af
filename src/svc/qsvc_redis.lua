#!lua name=awaitd
-- awaitd's queue operations as one Redis Functions library (docs/REDIS.md).
-- Loaded by src/svc/qsvc_redis_svc.c with FUNCTION LOAD REPLACE when the
-- version below differs from the one in Redis (the daemon puts a hash of
-- this text in place of @VERSION@).
--
-- Every function works on one queue: KEYS[1] is its settings hash B:m, where
-- B, the base key, is "{PREFIX}QUEUE" wrapped in a hash tag, so all of a
-- queue's keys live in one cluster slot. (KEYS[1] is a key that exists while
-- the queue does, so a cluster moving the queue's slot sends the call, ASK,
-- to the new master once the keys are there.) The keys:
--   B:m  hash   settings, counters, next_id (also the count of puts: total_put),
--               epoch, dseq, shutdown, pdue, gw (below), np (meta()), rwait
--               (qsvc_redis_results.lua); total_acked is derived by stats()
--   B:r  zset   ready jobs: score priority, member the 16-digit id (FIFO among equals)
--   B:d  zset   delayed jobs: score visible_at (Redis ms)
--   B:l  zset   reserved jobs: score lease deadline (Redis ms)
--   B:x  zset   dead letters: score the order they died in
--   B:p  hash   id -> payload      B:n  hash  id -> priority (absent: 0)
--   B:t  hash   id -> attempts (deliveries so far)
--   B:k:EPOCH:KEY  string  an idempotency key -> the first job's id, PX key_window
--   B:e, B:w, B:rs, B:res:*, B:out:*  results and dead reasons (qsvc_redis_results.lua)
-- ARGV[1] is the notification channel, ARGV[2] the queue's name; the rest
-- belong to the operation. Replies are arrays whose first element is a
-- status (0, or the negative codes of svc/qsvc.h). Time is Redis's TIME.
-- Notifications ("KIND N QUEUE"): r N jobs became ready; s N room freed;
-- j unfinished reached 0; t N a job becomes ready in N ms; z shutdown;
-- x deleted. Nodes use them to wake their waiters (and re-check).
--
-- pdue in B:m is a lower bound of every score in B:d and B:l (absent: 0, so
-- the next operation looks): an operation moves due jobs only once Redis's
-- time reaches it, so the usual put, reserve or ack does not scan both sets
-- for nothing. Every ZADD into B:d or B:l goes through lower() to keep the
-- bound; promote() sets it again to the earliest score after moving.
--
-- gw in B:m (Redis ms; absent: 0) is when the last getter that may be waiting
-- gives up at the latest: a reserve that finds nothing sets it to now plus its
-- wait= (ARGV[5]) plus GW_GRACE, so a put publishes its 'r' or 't' only while
-- someone can be listening. (A waiter re-checks with another reserve after a
-- wake, a reconnect or its safety tick, each of which moves gw on.)

local VERSION = '@VERSION@'
local OK, FULL, EMPTY, NOTFOUND, INVALID, TOOBIG, STATE, SHUTDOWN, NOQUEUE =
    0, -2, -4, -5, -7, -8, -9, -10, -12
local SLICE = 1000 -- due jobs moved per operation
local R = {} -- results, listings, dead reasons: filled by qsvc_redis_results.lua (appended)

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The base key from KEYS[1]: "B:m" -> "B" (a caller that passes the base
-- key itself, "{PREFIXq}" ending in '}', is served the same).
local function base(keys)
    local k = keys[1]
    if string.sub(k, -2) == ':m' then return string.sub(k, 1, -3) end
    return k
end

local function jid(id) return string.format('%016d', id) end

-- The settings an operation needs (the counters are read by stats only).
-- meta() reads the ones every put, reserve and ack may need (MFIELDS: small,
-- so that the one HMGET is cheap); the rest it reads when first used (LAZY:
-- settings that no queue operation writes, so reading them later in a call
-- gives what an HMGET at its start would have). np (absent on queues made
-- before it: nil) is 0 while no job of the queue ever had a priority, so an
-- ack need not HDEL from B:n.
local MFIELDS = {'maxsize', 'lease', 'max_payload', 'shutdown', 'pdue', 'gw', 'rwait', 'np'}
local LAZY = {max_attempts = true, key_window = true, epoch = true, result_ttl = true}
local NEVER = 1e15 -- pdue with B:d and B:l empty (Redis ms, year 33658)
local GW_GRACE = 3000 -- ms beyond a getter's wait= that gw covers (gw is moved on only
                      -- when it gains a second, so it is always 2 s beyond)
local LAZY_MT = {__index = function(t, k)
    if not LAZY[k] then return nil end
    local v = redis.call('HGET', rawget(t, 1) .. ':m', k)
    v = tonumber(v) or v
    rawset(t, k, v)
    return v
end}
local function meta(b)
    local f = redis.call('HMGET', b .. ':m', unpack(MFIELDS))
    if not f[1] then return nil end
    local m = {}
    for i, k in ipairs(MFIELDS) do m[k] = tonumber(f[i]) or f[i] end
    m.pdue = m.pdue or 0
    m.gw = m.gw or 0
    m[1] = b -- for LAZY_MT
    return setmetatable(m, LAZY_MT)
end

-- A score about to go into B:d or B:l: keep pdue at or below it.
local function lower(b, m, score)
    if score < m.pdue then
        m.pdue = score
        redis.call('HSET', b .. ':m', 'pdue', score)
    end
end

local function meta_all(b)
    local f = redis.call('HGETALL', b .. ':m')
    local m = {}
    for i = 1, #f, 2 do m[f[i]] = tonumber(f[i + 1]) or f[i + 1] end
    return m
end

-- redis.call(cmd, key, t...) in slices of 2000 values (unpack's limit is a few
-- thousand; pairs stay whole).
local function call_many(cmd, key, t)
    for i = 1, #t, 2000 do
        redis.call(cmd, key, unpack(t, i, math.min(i + 1999, #t)))
    end
end

local function notify(a, kind, n)
    redis.call('PUBLISH', a[1], kind .. ' ' .. n .. ' ' .. a[2])
end

-- 'r' or 't' for the getters, if one may be waiting (gw above).
local function wake_getters(a, m, now, kind, n)
    if now < m.gw then notify(a, kind, n) end
end

-- Whether jobs are unfinished: 0 when none, else a positive count (not the
-- exact one: callers only compare it with 0, and under load the leased set
-- alone answers).
local function unfinished(b)
    local n = redis.call('ZCARD', b .. ':l')
    if n > 0 then return n end
    return redis.call('ZCARD', b .. ':r') + redis.call('ZCARD', b .. ':d')
end

local function forget(b, j)
    redis.call('HDEL', b .. ':p', j)
    redis.call('HDEL', b .. ':n', j)
    redis.call('HDEL', b .. ':t', j)
end

local function to_dead(b, j)
    local seq = redis.call('HINCRBY', b .. ':m', 'dseq', 1)
    redis.call('ZADD', b .. ':x', seq, j)
    redis.call('HINCRBY', b .. ':m', 'total_dead', 1)
end

local function to_ready(b, j)
    redis.call('ZADD', b .. ':r', tonumber(redis.call('HGET', b .. ':n', j)) or 0, j)
end

-- A job leaving a lease (expiry or nack): dead after max_attempts, dropped
-- after an immediate shutdown, else ready (delay 0) or delayed.
-- Returns 'dead', 'drop', 'ready' or 'delayed'.
local function release(b, m, j, now, delay)
    redis.call('ZREM', b .. ':l', j)
    local att = tonumber(redis.call('HGET', b .. ':t', j)) or 0
    if m.max_attempts > 0 and att >= m.max_attempts then
        to_dead(b, j)
        return 'dead'
    end
    if m.shutdown == 2 then
        forget(b, j)
        redis.call('HINCRBY', b .. ':m', 'total_dropped', 1)
        return 'drop'
    end
    if delay > 0 then
        lower(b, m, now + delay)
        redis.call('ZADD', b .. ':d', now + delay, j)
        return 'delayed'
    end
    to_ready(b, j)
    return 'ready'
end

-- The earliest score in B:d and B:l, or NEVER.
local function earliest(b)
    local best = NEVER
    for _, k in ipairs({':d', ':l'}) do
        local f = redis.call('ZRANGE', b .. k, 0, 0, 'WITHSCORES')
        if #f > 0 and tonumber(f[2]) < best then best = tonumber(f[2]) end
    end
    return best
end

-- Due delayed jobs become ready; expired leases come back (or die). Nothing
-- is due before pdue.
local function promote(b, a, m, now)
    if now < m.pdue then return end
    local ready, gone = 0, 0
    local due = redis.call('ZRANGEBYSCORE', b .. ':d', '-inf', now, 'LIMIT', 0, SLICE)
    for _, j in ipairs(due) do
        redis.call('ZREM', b .. ':d', j)
        to_ready(b, j)
        ready = ready + 1
    end
    local exp = redis.call('ZRANGEBYSCORE', b .. ':l', '-inf', now, 'LIMIT', 0, SLICE)
    for _, j in ipairs(exp) do
        local r = release(b, m, j, now, 0)
        if r == 'ready' then ready = ready + 1 else gone = gone + 1 end
        if r ~= 'ready' then R.left(b, a, m, j, now, r, 2) end
    end
    m.pdue = earliest(b) -- at or below now again when a slice left due jobs behind
    redis.call('HSET', b .. ':m', 'pdue', m.pdue)
    if ready > 0 then notify(a, 'r', ready) end
    if gone > 0 and unfinished(b) == 0 then notify(a, 'j', 0) end
end

-- ms until the next delayed job or lease end, or -1.
local function next_due(b, now)
    local best = -1
    for _, k in ipairs({':d', ':l'}) do
        local f = redis.call('ZRANGE', b .. k, 0, 0, 'WITHSCORES')
        if #f > 0 then
            local d = math.max(0, tonumber(f[2]) - now)
            if best < 0 or d < best then best = d end
        end
    end
    return best
end

-- The queue, promoted to now; nil when it does not exist.
local function open(b, a)
    local m = meta(b)
    if not m then return nil end
    local now = now_ms()
    promote(b, a, m, now)
    return m, now
end

local function stats(b, m)
    local mm = meta_all(b)
    local size, delayed = redis.call('ZCARD', b .. ':r'), redis.call('ZCARD', b .. ':d')
    local reserved, dead = redis.call('ZCARD', b .. ':l'), redis.call('ZCARD', b .. ':x')
    local function n(k) return tonumber(mm[k]) or 0 end
    -- total_acked is not counted: every job put (next_id) is still in a set, or
    -- left acked, dropped or purged from the dead letters (the only ways out)
    local acked = n('next_id') - size - delayed - reserved - dead - n('total_dropped') - n('total_dead_purged')
    return {size, n('maxsize'), reserved, delayed, dead, size + delayed + reserved,
            n('next_id'), acked, n('total_redelivered'), n('total_dead'),
            n('shutdown'), n('lease'), n('max_attempts'), n('max_payload'), n('key_window'),
            n('total_requeued'), n('total_dropped'), n('total_dead_purged'), R.figures(b, mm)}
end

local function with_status(st, t)
    local out = {st}
    for _, v in ipairs(t) do out[#out + 1] = v end
    return out
end

-- ---- queues -------------------------------------------------------------------

-- ARGV[3..9]: mask (1 maxsize 2 lease 4 max_attempts 8 max_payload 16 key_window 32 result_ttl),
-- then the values (for a new queue, the unmasked ones are the defaults).
local function declare(keys, a)
    local b = base(keys)
    local mask = tonumber(a[3])
    local names = {'maxsize', 'lease', 'max_attempts', 'max_payload', 'key_window', 'result_ttl'}
    local m = meta(b)
    local created = 0
    if not m then
        created = 1
        local t = redis.call('TIME')
        -- The fields every operation reads (MFIELDS) first, then the counter a put
        -- bumps: a small hash is a list that HMGET and HINCRBY walk from the front.
        redis.call('HSET', b .. ':m', 'maxsize', a[4], 'lease', a[5], 'max_payload', a[7], 'shutdown', 0,
            'pdue', NEVER, 'gw', 0, 'rwait', 0, 'np', 0, 'next_id', 0, 'max_attempts', a[6],
            'key_window', a[8], 'epoch', t[1] .. '.' .. t[2], 'dseq', 0, 'total_redelivered', 0,
            'total_dead', 0, 'total_requeued', 0, 'total_dropped', 0, 'total_dead_purged', 0)
    end
    for i, name in ipairs(names) do
        if created == 1 or math.floor(mask / 2 ^ (i - 1)) % 2 == 1 then
            redis.call('HSET', b .. ':m', name, a[3 + i])
        end
    end
    if created == 0 then notify(a, 's', 1) end -- a larger maxsize may make room
    return with_status(OK, {created, unpack(stats(b, meta(b)))})
end

local function delete(keys, a)
    local b = base(keys)
    local m = meta(b)
    if not m then return {NOQUEUE} end
    local st = stats(b, m)
    redis.call('UNLINK', b .. ':m', b .. ':r', b .. ':d', b .. ':l', b .. ':x', b .. ':p',
        b .. ':n', b .. ':t', b .. ':e', b .. ':w', b .. ':rs')
    notify(a, 'x', 0)
    return with_status(OK, st)
end

local function qstats(keys, a)
    local b = base(keys)
    local m = open(b, a)
    if not m then return {NOQUEUE} end
    return with_status(OK, stats(b, m))
end

-- ---- jobs ---------------------------------------------------------------------

local function put_one(b, a, m, now, payload, prio, delay)
    local id = redis.call('HINCRBY', b .. ':m', 'next_id', '1') -- also total_put
    local j = jid(id)
    redis.call('HSET', b .. ':p', j, payload)
    if prio ~= 0 then
        redis.call('HSET', b .. ':n', j, prio)
        if m.np == 0 then m.np = 1; redis.call('HSET', b .. ':m', 'np', 1) end
    end
    if delay > 0 then
        lower(b, m, now + delay)
        redis.call('ZADD', b .. ':d', now + delay, j)
    else
        redis.call('ZADD', b .. ':r', prio, j)
    end
    return id
end

-- ARGV[3..6]: payload, priority, delay ms, idempotency key ('' = none).
-- {0, id, duplicate} | {FULL, maxsize} | {TOOBIG, max_payload} | {SHUTDOWN} | {NOQUEUE}
local function put(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    if m.shutdown > 0 then return {SHUTDOWN} end
    local payload, prio, delay, key = a[3], tonumber(a[4]), tonumber(a[5]), a[6]
    if #payload > m.max_payload then return {TOOBIG, m.max_payload} end
    local kk
    if key ~= '' then
        kk = b .. ':k:' .. m.epoch .. ':' .. key
        local first = redis.call('GET', kk)
        if first then return {OK, tonumber(first), 1} end
    end
    if m.maxsize > 0 and redis.call('ZCARD', b .. ':r') + redis.call('ZCARD', b .. ':d') >= m.maxsize then
        return {FULL, m.maxsize}
    end
    local id = put_one(b, a, m, now, payload, prio, delay)
    if kk then redis.call('SET', kk, id, 'PX', m.key_window) end
    if delay > 0 then wake_getters(a, m, now, 't', delay) else wake_getters(a, m, now, 'r', 1) end
    return {OK, id, 0}
end

-- ARGV[3..5]: priority, delay ms, n; then n payloads. All or nothing.
-- {0, id...} | {TOOBIG, max_payload, index} | {TOOBIG, maxsize, -1} (never
-- fits) | {FULL, room} | ...
local function put_batch(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    if m.shutdown > 0 then return {SHUTDOWN} end
    local prio, delay, n = tonumber(a[3]), tonumber(a[4]), tonumber(a[5])
    for i = 1, n do
        if #a[5 + i] > m.max_payload then return {TOOBIG, m.max_payload, i - 1} end
    end
    if m.maxsize > 0 and n > m.maxsize then return {TOOBIG, m.maxsize, -1} end
    if m.maxsize > 0 then
        local queued = redis.call('ZCARD', b .. ':r') + redis.call('ZCARD', b .. ':d')
        if queued + n > m.maxsize then
            return {FULL, queued >= m.maxsize and 0 or m.maxsize - queued}
        end
    end
    -- One command per key for the whole batch: ids last-n+1 .. last.
    local last = redis.call('HINCRBY', b .. ':m', 'next_id', n) -- also total_put
    local out, pay, pri, sc = {OK}, {}, {}, {}
    local score = delay > 0 and now + delay or prio
    for i = 1, n do
        local id = last - n + i
        local j = jid(id)
        out[#out + 1] = id
        pay[#pay + 1], pay[#pay + 2] = j, a[5 + i]
        pri[#pri + 1], pri[#pri + 2] = j, prio
        sc[#sc + 1], sc[#sc + 2] = score, j
    end
    call_many('HSET', b .. ':p', pay)
    if prio ~= 0 then
        call_many('HSET', b .. ':n', pri)
        if m.np == 0 then m.np = 1; redis.call('HSET', b .. ':m', 'np', 1) end
    end
    if delay > 0 then lower(b, m, score) end
    call_many('ZADD', b .. (delay > 0 and ':d' or ':r'), sc)
    if delay > 0 then wake_getters(a, m, now, 't', delay) else wake_getters(a, m, now, 'r', n) end
    return out
end

-- ARGV[3..5]: count, lease ms (0: the queue's), wait ms (how long the caller
-- waits if nothing is ready; absent: as long as any wait).
-- {0, n, (id, priority, attempt, deadline, payload) * n} | {EMPTY, next_due} | {SHUTDOWN} | ...
local function reserve(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    local count, lease = tonumber(a[3]), tonumber(a[4])
    if lease == 0 then lease = m.lease end
    local popped = redis.call('ZPOPMIN', b .. ':r', a[3])
    local n = #popped / 2
    if n == 0 then
        -- shut down: immediate refuses at once; otherwise once nothing can come back
        if m.shutdown == 2 or (m.shutdown > 0 and unfinished(b) == 0) then return {SHUTDOWN} end
        local wait = tonumber(a[5]) or 86400000
        if wait > 0 and now + wait + GW_GRACE > m.gw + 1000 then
            redis.call('HSET', b .. ':m', 'gw', now + wait + GW_GRACE)
        end
        return {EMPTY, next_due(b, now)}
    end
    local out = {OK, n}
    local redelivered = 0
    local deadline = now + lease
    local ids, sc = {}, {}
    for i = 1, #popped, 2 do
        ids[#ids + 1] = popped[i]
        sc[#sc + 1], sc[#sc + 2] = deadline, popped[i]
    end
    lower(b, m, deadline)
    call_many('ZADD', b .. ':l', sc) -- one command each for all the jobs (count <= 100)
    local pay, atts = nil, {}
    if n == 1 then
        pay = {redis.call('HGET', b .. ':p', ids[1])}
        atts[1] = redis.call('HINCRBY', b .. ':t', ids[1], '1')
    else -- the attempts of all the jobs in two commands instead of one per job
        pay = redis.call('HMGET', b .. ':p', unpack(ids))
        local tt, set = redis.call('HMGET', b .. ':t', unpack(ids)), {}
        for k, j in ipairs(ids) do
            atts[k] = (tonumber(tt[k]) or 0) + 1
            set[#set + 1], set[#set + 2] = j, atts[k]
        end
        call_many('HSET', b .. ':t', set)
    end
    for k, j in ipairs(ids) do
        local att = atts[k]
        if att > 1 then redelivered = redelivered + 1 end
        out[#out + 1] = tonumber(j)
        out[#out + 1] = tonumber(popped[2 * k])
        out[#out + 1] = att
        out[#out + 1] = deadline
        out[#out + 1] = pay[k]
    end
    if redelivered > 0 then redis.call('HINCRBY', b .. ':m', 'total_redelivered', redelivered) end
    if (m.rwait or 0) > now then R.reserved(b, a, m, now, popped) end
    if m.maxsize > 0 and redis.call('ZCARD', b .. ':r') + redis.call('ZCARD', b .. ':d') + n >= m.maxsize then
        notify(a, 's', n)
    end
    return out
end

-- A reserved job with the given attempt (0: any): its id string, or nil and the status.
-- (A leased job always has its payload: only a job not leased needs the HEXISTS.)
local function leased(b, id, attempt)
    local j = jid(id)
    if not redis.call('ZSCORE', b .. ':l', j) then
        if redis.call('HEXISTS', b .. ':p', j) == 0 then return nil, NOTFOUND end
        return nil, STATE
    end
    if attempt ~= 0 and tonumber(redis.call('HGET', b .. ':t', j)) ~= attempt then return nil, STATE end
    return j
end

-- ARGV[3..4]: id, attempt; [5..6] content type, result (when it carries one).
-- Unless a result too big is to be refused after the lease checks (leased()
-- first), the ZREM itself tells whether the job was leased: no ZSCORE. With an
-- attempt, HGET :t first: a job whose attempt differs is refused, STATE or
-- NOTFOUND, whether or not it is leased, as leased() would refuse it.
local function ack(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    local id, attempt = tonumber(a[3]), tonumber(a[4])
    local j
    if a[6] and #a[6] > m.max_payload then
        local st
        j, st = leased(b, id, attempt)
        if not j then return {st} end
        return R.ack(b, a, m, j, now) -- TOOBIG
    end
    j = jid(id)
    if (attempt ~= 0 and tonumber(redis.call('HGET', b .. ':t', j)) ~= attempt)
            or redis.call('ZREM', b .. ':l', j) == 0 then
        return {redis.call('HEXISTS', b .. ':p', j) == 0 and NOTFOUND or STATE}
    end
    if a[6] or (m.rwait or 0) > now then R.ack(b, a, m, j, now) end -- refuses nothing here
    redis.call('HDEL', b .. ':p', j)
    if m.np ~= 0 then redis.call('HDEL', b .. ':n', j) end
    redis.call('HDEL', b .. ':t', j)
    if unfinished(b) == 0 then notify(a, 'j', 0) end
    return {OK}
end

-- A batch ack (POST /queues/{q}/acks): each job acked or refused on its
-- own, in order, as that many aw_ack calls would. ARGV[3]: n; then n pairs
-- id, attempt. {0, acked, status * n}
local function ack_batch(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    local n = tonumber(a[3]) -- at most 1000 (the node's bound): unpack takes them whole
    local ids, att, any_att = {}, {}, false
    for i = 1, n do
        ids[i] = jid(tonumber(a[2 + 2 * i]))
        att[i] = tonumber(a[3 + 2 * i])
        if att[i] ~= 0 then any_att = true end
    end
    -- The batch's state before it: a later id of the batch sees the earlier acks
    -- (done[]), the only change the batch makes.
    local sc = redis.call('ZMSCORE', b .. ':l', unpack(ids))
    local tt = any_att and redis.call('HMGET', b .. ':t', unpack(ids)) or {}
    local out, acked, done = {OK, 0}, {}, {}
    for i = 1, n do
        local j, st = ids[i], OK
        if done[j] then
            st = NOTFOUND
        elseif not sc[i] then
            st = redis.call('HEXISTS', b .. ':p', j) == 0 and NOTFOUND or STATE
        elseif att[i] ~= 0 and tonumber(tt[i]) ~= att[i] then
            st = STATE
        else
            done[j] = true
            acked[#acked + 1] = j
        end
        out[#out + 1] = st
    end
    out[2] = #acked
    if (m.rwait or 0) > now then -- result waits: as aw_ack without a result does
        local plain = {a[1], a[2]}
        for _, j in ipairs(acked) do R.ack(b, plain, m, j, now) end
    end
    if #acked > 0 then
        call_many('ZREM', b .. ':l', acked)
        call_many('HDEL', b .. ':p', acked)
        if m.np ~= 0 then call_many('HDEL', b .. ':n', acked) end
        call_many('HDEL', b .. ':t', acked)
        if unfinished(b) == 0 then notify(a, 'j', 0) end
    end
    return out
end

-- ARGV[3..5]: id, attempt, delay ms; [6] an error text, kept if it dies. {0, dead}
local function nack(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    local j, st = leased(b, tonumber(a[3]), tonumber(a[4]))
    if not j then return {st} end
    local delay = tonumber(a[5])
    local r = release(b, m, j, now, delay)
    if r == 'dead' or r == 'drop' then R.left(b, a, m, j, now, r, 1, a[6]) end
    if r == 'ready' then notify(a, 'r', 1)
    elseif r == 'delayed' then notify(a, 't', delay)
    elseif unfinished(b) == 0 then notify(a, 'j', 0) end
    return {OK, r == 'dead' and 1 or 0}
end

-- ARGV[3..5]: id, attempt, lease ms (0: the queue's). {0, deadline}
local function touch(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    local j, st = leased(b, tonumber(a[3]), tonumber(a[4]))
    if not j then return {st} end
    local lease = tonumber(a[5])
    if lease == 0 then lease = m.lease end
    lower(b, m, now + lease) -- a shorter lease than before may end first
    redis.call('ZADD', b .. ':l', now + lease, j)
    return {OK, now + lease}
end

-- A delivery the daemon could not hand over (its client left): ready again,
-- its attempt count as before. ARGV[3..4]: id, attempt.
local function unreserve(keys, a)
    local b = base(keys)
    local m = meta(b)
    if not m then return {NOQUEUE} end
    local j, st = leased(b, tonumber(a[3]), tonumber(a[4]))
    if not j then return {st} end
    redis.call('ZREM', b .. ':l', j)
    redis.call('HINCRBY', b .. ':t', j, -1)
    to_ready(b, j)
    notify(a, 'r', 1)
    return {OK}
end

-- ARGV[3]: id. {0, id, priority, attempt, state, deadline, payload}
local function peek(keys, a)
    local b = base(keys)
    local m = open(b, a)
    if not m then return {NOQUEUE} end
    local j = jid(tonumber(a[3]))
    local payload = redis.call('HGET', b .. ':p', j)
    if not payload then return {NOTFOUND} end
    local state, deadline = 0, 0
    local s = redis.call('ZSCORE', b .. ':d', j)
    if s then state, deadline = 1, tonumber(s)
    else
        s = redis.call('ZSCORE', b .. ':l', j)
        if s then state, deadline = 2, tonumber(s)
        elseif redis.call('ZSCORE', b .. ':x', j) then state = 3 end
    end
    return {OK, tonumber(j), tonumber(redis.call('HGET', b .. ':n', j)) or 0,
            tonumber(redis.call('HGET', b .. ':t', j)) or 0, state, deadline, payload}
end

-- Drop every job of zset k; returns how many.
local function drop_all(b, k)
    local ids = redis.call('ZRANGE', b .. k, 0, -1)
    for _, j in ipairs(ids) do forget(b, j) end
    redis.call('UNLINK', b .. k)
    return #ids
end

-- ARGV[3..4]: op (0 purge, 1 shutdown, 2 dead requeue, 3 dead purge), arg. {0, n}
local function bulk(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    local op, arg = tonumber(a[3]), tonumber(a[4])
    local n = 0
    if op == 0 or (op == 1 and arg == 1) then
        if op == 1 then redis.call('HSET', b .. ':m', 'shutdown', 2) end
        R.purge(b, a, m, now, op == 1 and 's' or 'p')
        n = drop_all(b, ':r') + drop_all(b, ':d')
        redis.call('HINCRBY', b .. ':m', 'total_dropped', n)
        if n > 0 then notify(a, 's', n) end
    elseif op == 1 then
        if m.shutdown == 0 then redis.call('HSET', b .. ':m', 'shutdown', 1) end
    elseif op == 2 or op == 3 then
        if op == 2 and m.shutdown > 0 then return {SHUTDOWN} end
        local ids
        if arg > 0 then
            if not redis.call('ZSCORE', b .. ':x', jid(arg)) then return {NOTFOUND} end
            ids = {jid(arg)}
        else
            ids = redis.call('ZRANGE', b .. ':x', 0, -1)
        end
        for _, j in ipairs(ids) do
            redis.call('ZREM', b .. ':x', j)
            R.dead_out(b, a, m, j, now, op)
            if op == 2 then
                redis.call('HSET', b .. ':t', j, 0)
                to_ready(b, j)
            else
                forget(b, j)
            end
        end
        n = #ids
        if op == 2 then
            redis.call('HINCRBY', b .. ':m', 'total_requeued', n)
            if n > 0 then notify(a, 'r', n) end
        else
            redis.call('HINCRBY', b .. ':m', 'total_dead_purged', n)
        end
    else
        return {INVALID}
    end
    if op == 1 then notify(a, 'z', 0) end
    if unfinished(b) == 0 then notify(a, 'j', 0) end
    return {OK, n}
end

-- no-writes: a node that just became a replica answers it too (a cluster's
-- map changing under a version check).
redis.register_function{function_name = 'awaitd_version', callback = function() return VERSION end,
                        flags = {'no-writes'}}
redis.register_function('aw_declare', declare)
redis.register_function('aw_delete', delete)
redis.register_function('aw_stats', qstats)
redis.register_function('aw_put', put)
redis.register_function('aw_put_batch', put_batch)
redis.register_function('aw_reserve', reserve)
redis.register_function('aw_ack', ack)
redis.register_function('aw_nack', nack)
redis.register_function('aw_ack_batch', ack_batch)
redis.register_function('aw_touch', touch)
redis.register_function('aw_unreserve', unreserve)
redis.register_function('aw_peek', peek)
redis.register_function('aw_bulk', bulk)

-- ---- timers (src/svc/tsvc_redis*.c, docs/REDIS.md "Timers") -------------------
-- Timers are spread over shards, each its own hash tag: KEYS[1] is the
-- shard's base key "{PREFIXtimers:N}" (':' never occurs in a queue name, so
-- no queue shares it):
--   B:m    hash  seq (the shard's id counter)
--   B:h:ID hash  one timer (fields below)
--   B:due  zset  scheduled timers: score the Redis ms they fire (or a claim ends)
--   B:ids  zset  every timer kept, by id (listing)
--   B:fin  zset  finished timers: score when they finished (removed after KEEP)
--   B:cl   hash  claimed timers: id -> the claiming node's token
-- ARGV[1] is the timer channel, ARGV[2] the shard number. Notifications:
-- "d SHARD HEAD NOW" the shard's earliest due time changed (HEAD -1: none;
-- NOW: Redis ms, so a node arms HEAD-NOW ms from now), "f ID" a timer
-- finished (completed, failed, cancelled). A timer's tick is fired by the
-- node that claims it (aw_timer_claim: atomic, so exactly one node does),
-- which puts the payload with aw_put (idempotency key "awaitd-timer:ID:TICK",
-- TICK the claimed tick: a node that takes over an expired claim, or takes
-- back its own after a lost connection, cannot put the tick twice) and
-- reports with aw_timer_settle.
local TKEEP = 3600000 -- finished timers stay visible this long (ms)
local TFIELDS = {'kind', 'state', 'queue', 'cron', 'fires', 'skips', 'count', 'every', 'jitter',
                 'due', 'finished', 'full', 'missed', 'retrying', 'err'}
local SCHEDULED, COMPLETED, CANCELLED, FAILED = 0, 1, 2, 3

local function thead(b)
    local f = redis.call('ZRANGE', b .. ':due', 0, 0, 'WITHSCORES')
    if #f == 0 then return -1 end
    return tonumber(f[2])
end

local function tnotify_head(b, a, before, now)
    local h = thead(b)
    if h ~= before then redis.call('PUBLISH', a[1], 'd ' .. a[2] .. ' ' .. h .. ' ' .. now) end
    return h
end

-- The timer as a reply: id then TFIELDS in order (numbers as numbers).
local function tview(b, id)
    local f = redis.call('HMGET', b .. ':h:' .. id, unpack(TFIELDS))
    if not f[1] then return nil end
    local out = {tonumber(id)}
    for i, v in ipairs(f) do
        if TFIELDS[i] == 'queue' or TFIELDS[i] == 'cron' or TFIELDS[i] == 'err' then
            out[#out + 1] = v or ''
        else
            out[#out + 1] = tonumber(v) or 0
        end
    end
    return out
end

local function tappend(out, t)
    for _, v in ipairs(t) do out[#out + 1] = v end
    return out
end

-- Finished timers older than TKEEP go.
local function tprune(b, now)
    local old = redis.call('ZRANGEBYSCORE', b .. ':fin', '-inf', now - TKEEP, 'LIMIT', 0, 100)
    for _, id in ipairs(old) do
        redis.call('UNLINK', b .. ':h:' .. id)
        redis.call('ZREM', b .. ':ids', id)
        redis.call('ZREM', b .. ':fin', id)
    end
end

local function tfinish(b, a, id, state, now)
    local h = b .. ':h:' .. id
    redis.call('HSET', h, 'state', state, 'finished', now, 'retrying', 0)
    redis.call('HDEL', h, 'payload', 'claim')
    redis.call('HDEL', b .. ':cl', id)
    redis.call('ZREM', b .. ':due', id)
    redis.call('ZADD', b .. ':fin', now, id)
    redis.call('PUBLISH', a[1], 'f ' .. id)
end

-- ARGV[3..]: nshards, kind (0 after 1 at 2 every 3 cron), after ms, at ms, every ms,
-- cron text, cron candidates ("t1,t2,..": the node's next ticks around now; the
-- first after Redis's now is taken), count, jitter, jitter drawn, on_full, on_missed,
-- queue, payload. {0, now, timer...} | {INVALID} (no cron candidate after now)
local function tcreate(keys, a)
    local b = keys[1]
    local now = now_ms()
    local kind = tonumber(a[4])
    local tick
    if kind == 0 then tick = now + tonumber(a[5])
    elseif kind == 1 then tick = tonumber(a[6])
    elseif kind == 2 then tick = now + tonumber(a[7])
    else
        for c in string.gmatch(a[9], '[^,]+') do
            if tonumber(c) > now then tick = tonumber(c) break end
        end
        if not tick then return {INVALID} end
    end
    tprune(b, now)
    local before = thead(b)
    local seq = redis.call('HINCRBY', b .. ':m', 'seq', 1)
    local id = seq * tonumber(a[3]) + tonumber(a[2])
    local due = tick + tonumber(a[12])
    redis.call('HSET', b .. ':h:' .. id, 'kind', kind, 'state', SCHEDULED, 'queue', a[15],
        'cron', a[8], 'payload', a[16], 'every', a[7], 'count', a[10], 'jitter', a[11],
        'full', a[13], 'missed', a[14], 'fires', 0, 'skips', 0, 'tick', tick, 'due', due,
        'finished', 0, 'retrying', 0, 'err', '')
    redis.call('ZADD', b .. ':ids', id, id)
    redis.call('ZADD', b .. ':due', due, id)
    tnotify_head(b, a, before, now)
    return tappend({OK, now}, tview(b, id))
end

-- ARGV[3]: id. {0, now, timer...} | {NOTFOUND}
local function tget(keys, a)
    local b = keys[1]
    local t = tview(b, a[3])
    if not t then return {NOTFOUND} end
    return tappend({OK, now_ms()}, t)
end

-- ARGV[3..4]: after, max. {0, n, timer... * n} (by id)
local function tlist(keys, a)
    local b = keys[1]
    tprune(b, now_ms())
    local ids = redis.call('ZRANGEBYSCORE', b .. ':ids', '(' .. a[3], '+inf', 'LIMIT', 0, tonumber(a[4]))
    local out = {OK, 0}
    for _, id in ipairs(ids) do
        local t = tview(b, id)
        if t then
            tappend(out, t)
            out[2] = out[2] + 1
        end
    end
    return out
end

-- ARGV[3]: id. {0, cancelled, timer...} | {NOTFOUND}
local function tcancel(keys, a)
    local b = keys[1]
    local id = a[3]
    local state = redis.call('HGET', b .. ':h:' .. id, 'state')
    if not state then return {NOTFOUND} end
    local cancelled = 0
    if tonumber(state) == SCHEDULED then
        local now = now_ms()
        local before = thead(b)
        tfinish(b, a, id, CANCELLED, now)
        tnotify_head(b, a, before, now)
        cancelled = 1
    end
    return tappend({OK, cancelled}, tview(b, id))
end

-- Claim the due timers (up to max) for lease ms: nobody else fires them meanwhile.
-- ARGV[3..6]: token, lease ms, max, reclaim (1: the node lost its connection, so its
-- earlier claims are void: they are due again at once instead of when their lease ends).
-- {0, now, head, n, (id, kind, tick, every, cron, count, jitter, full, missed, fires, skips,
--  due, retrying, queue, payload) * n}; retrying: 1 a retry of a full queue, 2 the tick was
-- claimed before and not settled (tsvc_redis_fire.c puts it again, never as missed)
local function tclaim(keys, a)
    local b = keys[1]
    local now = now_ms()
    tprune(b, now)
    if a[6] == '1' then
        local cl = redis.call('HGETALL', b .. ':cl')
        for i = 1, #cl, 2 do
            if cl[i + 1] == a[3] then redis.call('ZADD', b .. ':due', now, cl[i]) end
        end
    end
    local before = thead(b)
    local ids = redis.call('ZRANGEBYSCORE', b .. ':due', '-inf', now, 'LIMIT', 0, tonumber(a[5]))
    local out = {OK, now, 0, #ids}
    for _, id in ipairs(ids) do
        local h = b .. ':h:' .. id
        local f = redis.call('HMGET', h, 'kind', 'tick', 'every', 'cron', 'count', 'jitter', 'full',
            'missed', 'fires', 'skips', 'due', 'retrying', 'queue', 'payload', 'claim')
        -- a claim never settled (its node died, or lost its connection: it may have put the
        -- tick's job) makes retrying 2: the tick is put again with its own key, never missed
        if f[15] then f[12] = 2 end
        redis.call('HSET', h, 'claim', a[3])
        redis.call('HSET', b .. ':cl', id, a[3])
        redis.call('ZADD', b .. ':due', now + tonumber(a[4]), id)
        out[#out + 1] = tonumber(id)
        for i = 1, 12 do
            if i == 4 then out[#out + 1] = f[i] or '' else out[#out + 1] = tonumber(f[i]) or 0 end
        end
        out[#out + 1] = f[13] or ''
        out[#out + 1] = f[14] or ''
    end
    -- a claim that took ticks announces the shard's new head, so that the nodes that lost
    -- the race to it and wait a few ms (tsvc_redis_fire.c) re-arm instead of claiming
    if #ids > 0 then out[3] = tnotify_head(b, a, before, now) else out[3] = before end
    return out
end

-- The claimer's outcome for a tick. ARGV[3..11]: id, token, fired (0/1), skips to add,
-- last error ('' keeps it), state (0 stays scheduled, 1 completed, 3 failed), next tick,
-- next fire (Redis ms; -1: now + retry ms), retry ms (> 0: a retry of the same tick).
-- {0, state} | {NOTFOUND} | {STATE} (the claim is not ours any more)
local function tsettle(keys, a)
    local b = keys[1]
    local id = a[3]
    local h = b .. ':h:' .. id
    local f = redis.call('HMGET', h, 'state', 'claim')
    if not f[1] then return {NOTFOUND} end
    if f[2] ~= a[4] then return {STATE} end
    local now = now_ms()
    local before = thead(b)
    redis.call('HDEL', h, 'claim')
    redis.call('HDEL', b .. ':cl', id)
    if tonumber(a[5]) == 1 then redis.call('HINCRBY', h, 'fires', 1) end
    if tonumber(a[6]) > 0 then redis.call('HINCRBY', h, 'skips', tonumber(a[6])) end
    if a[7] ~= '' then redis.call('HSET', h, 'err', a[7]) end
    local state = tonumber(f[1])
    if state ~= SCHEDULED then return {OK, state} end -- cancelled while firing: counted, no more
    local ns = tonumber(a[8])
    if ns ~= SCHEDULED then
        tfinish(b, a, id, ns, now)
    else
        local retry = tonumber(a[11])
        local due = tonumber(a[10])
        if due < 0 then due = now + retry end
        redis.call('HSET', h, 'tick', a[9], 'due', due, 'retrying', retry > 0 and 1 or 0)
        redis.call('ZADD', b .. ':due', due, id)
    end
    tnotify_head(b, a, before, now)
    return {OK, ns}
end

redis.register_function('aw_timer_create', tcreate)
redis.register_function('aw_timer_get', tget)
redis.register_function('aw_timer_list', tlist)
redis.register_function('aw_timer_cancel', tcancel)
redis.register_function('aw_timer_claim', tclaim)
redis.register_function('aw_timer_settle', tsettle)
