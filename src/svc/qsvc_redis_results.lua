
-- ---- job results, job listings, dead reasons (issue 17 on Redis; docs/REDIS.md) ----
-- Appended to qsvc_redis.lua (one library, one chunk: its locals are seen
-- here) by src/svc/qsvc_redis_svc.c; the version hash covers both texts.
-- The functions above call the hooks in R where a job finishes (R.ack in
-- aw_ack, R.left where a job dies or is dropped, R.purge and R.dead_out in
-- aw_bulk); the rest is read by aw_result and aw_jobs. Keys, all under the
-- queue's hash tag B:
--   B:res:EPOCH:ID  hash    a kept outcome: o (1 acked, 2 dead), r (dead reason),
--                           a (attempt), x (expires, Redis ms), t (content type),
--                           v (the result, or the nack's text); PX result_ttl
--   B:rs            zset    kept outcomes by expiry (their count for stats)
--   B:e             hash    id -> why a dead letter died (1 nacked, 2 lease_expired)
--   B:w             zset    jobs a result wait is on -> the latest wait's end (Redis ms);
--                           m.rwait is the latest of all, so aw_ack looks only then
--   B:out:EPOCH:ID  string  how a waited-for job left with nothing kept (a acked,
--                           p purged, s shutdown, P dead purged), for the waiters'
--                           re-check only; PX its wait's end + OUT_SLACK
-- EPOCH (the queue's creation time) keeps a queue deleted and created again
-- from seeing the old queue's outcomes under the same ids.
-- A job a result wait is on publishes "o ID QUEUE" on the channel when it
-- finishes, or is reserved (so that the waits check again when its lease
-- ends: Redis moves an expired lease on only when something calls on the
-- queue); the nodes holding waits for it re-check them (aw_result).

local RESULT_TTL_DEFAULT = 300000 -- queue_settings_default()'s result_ttl, for queues older than it
local OUT_SLACK = 30000
local LIVE = -13 -- aw_result: the job is live (the caller waits, or answers 204)
local OUTCOME_ACKED, OUTCOME_DEAD = 1, 2

local function result_ttl(m)
    return m.result_ttl or RESULT_TTL_DEFAULT
end

local function rkey(b, m, j) return b .. ':res:' .. m.epoch .. ':' .. tonumber(j) end
local function okey(b, m, j) return b .. ':out:' .. m.epoch .. ':' .. tonumber(j) end

-- Keep an outcome for result_ttl (nothing when it is 0).
local function keep(b, m, j, now, outcome, why, att, ctype, body)
    local ttl = result_ttl(m)
    if ttl <= 0 then return false end
    local k = rkey(b, m, j)
    redis.call('HSET', k, 'o', outcome, 'r', why, 'a', att, 'x', now + ttl, 't', ctype, 'v', body)
    redis.call('PEXPIRE', k, ttl)
    redis.call('ZREMRANGEBYSCORE', b .. ':rs', '-inf', now)
    redis.call('ZADD', b .. ':rs', now + ttl, j)
    return true
end

-- Wake the result waits on job j (if any): how it left, when nothing is kept to re-read.
local function wake(b, a, m, j, now, how)
    if (m.rwait or 0) <= now then return end
    local until_ms = redis.call('ZSCORE', b .. ':w', j)
    if not until_ms then return end
    redis.call('ZREM', b .. ':w', j)
    if how then
        redis.call('SET', okey(b, m, j), how, 'PX', math.max(tonumber(until_ms) - now, 0) + OUT_SLACK)
    end
    redis.call('PUBLISH', a[1], 'o ' .. tonumber(j) .. ' ' .. a[2])
end

-- aw_ack, before the job goes: ARGV[5..6] (content type, result) when it carries
-- one. nil, or the refusal to return ({TOOBIG, max_payload}: nothing changed).
function R.ack(b, a, m, j, now)
    local kept = false
    if a[6] then
        if #a[6] > m.max_payload then return {TOOBIG, m.max_payload} end
        local att = tonumber(redis.call('HGET', b .. ':t', j)) or 0
        kept = keep(b, m, j, now, OUTCOME_ACKED, 0, att, a[5], a[6])
    end
    wake(b, a, m, j, now, not kept and 'a' or nil)
    return nil
end

-- A released job died (r 'dead': why 1 nacked, 2 lease expired; err the nack's
-- text or nil) or was dropped by an immediate shutdown (r 'drop').
function R.left(b, a, m, j, now, r, why, err)
    if r == 'dead' then
        redis.call('HSET', b .. ':e', j, why)
        if err and err ~= '' then
            local att = tonumber(redis.call('HGET', b .. ':t', j)) or 0
            keep(b, m, j, now, OUTCOME_DEAD, why, att, '', string.sub(err, 1, m.max_payload))
        end
        wake(b, a, m, j, now, nil) -- the re-check reads the dead letter
    elseif r == 'drop' then
        wake(b, a, m, j, now, 's')
    end
end

-- aw_reserve, when result waits may be on the jobs it leased (popped: id, score, ...):
-- tell them, so that they check again when the lease ends.
function R.reserved(b, a, m, now, popped)
    for i = 1, #popped, 2 do
        if redis.call('ZSCORE', b .. ':w', popped[i]) then
            redis.call('PUBLISH', a[1], 'o ' .. tonumber(popped[i]) .. ' ' .. a[2])
        end
    end
end

-- aw_bulk, before ready and delayed jobs are dropped (how: 'p' purge, 's' shutdown).
function R.purge(b, a, m, now, how)
    if (m.rwait or 0) <= now then return end
    for _, j in ipairs(redis.call('ZRANGE', b .. ':w', 0, -1)) do
        if redis.call('ZSCORE', b .. ':r', j) or redis.call('ZSCORE', b .. ':d', j) then
            wake(b, a, m, j, now, how)
        end
    end
end

-- aw_bulk, a dead letter leaving (op 2 requeue: its kept text is forgotten; 3 purge).
function R.dead_out(b, a, m, j, now, op)
    redis.call('HDEL', b .. ':e', j)
    if op == 2 then
        redis.call('UNLINK', rkey(b, m, j))
        redis.call('ZREM', b .. ':rs', j)
    else
        wake(b, a, m, j, now, 'P')
    end
end

-- The end of stats (mm: the settings hash): result_ttl, and the outcomes kept now.
function R.figures(b, mm)
    redis.call('ZREMRANGEBYSCORE', b .. ':rs', '-inf', now_ms())
    return tonumber(mm.result_ttl) or RESULT_TTL_DEFAULT, redis.call('ZCARD', b .. ':rs')
end

-- The kept outcome of j as a reply tail: outcome, reason, attempt, expires, ctype, body.
local function kept_reply(b, m, j)
    local f = redis.call('HMGET', rkey(b, m, j), 'o', 'r', 'a', 'x', 't', 'v')
    if not f[1] then return nil end
    return {OK, tonumber(f[1]), tonumber(f[2]) or 0, tonumber(f[3]) or 0, tonumber(f[4]) or 0,
            f[5] or '', f[6] or ''}
end

-- ARGV[3..5]: id, wait ms (> 0: a waiter holds it: it is told when the job finishes),
-- rewait (1: a waiter's re-check, which also reads how a job left with nothing kept).
-- {0, outcome, reason, attempt, expires, ctype, body} (dead: body the nack's text, or
-- false) | {0, 0, how} (left with nothing kept: 'a', 'p', 's', 'P') | {LIVE, ms}
-- (ms: until its lease ends, when the job is reserved, else -1) | {NOTFOUND} | {NOQUEUE}
local function result(keys, a)
    local b = base(keys)
    local m, now = open(b, a)
    if not m then return {NOQUEUE} end
    local j = jid(tonumber(a[3]))
    if redis.call('HEXISTS', b .. ':p', j) == 1 then
        if redis.call('ZSCORE', b .. ':x', j) then
            local k = kept_reply(b, m, j)
            local text = k and k[2] == OUTCOME_DEAD and k[7] or false
            return {OK, OUTCOME_DEAD, tonumber(redis.call('HGET', b .. ':e', j)) or 0,
                    tonumber(redis.call('HGET', b .. ':t', j)) or 0, 0, '', text}
        end
        local wait = tonumber(a[4])
        if wait > 0 then
            local until_ms = now + wait
            redis.call('ZREMRANGEBYSCORE', b .. ':w', '-inf', now)
            redis.call('ZADD', b .. ':w', 'GT', until_ms, j)
            if (m.rwait or 0) < until_ms then redis.call('HSET', b .. ':m', 'rwait', until_ms) end
        end
        local lease = redis.call('ZSCORE', b .. ':l', j)
        return {LIVE, lease and math.max(tonumber(lease) - now, 0) or -1}
    end
    local k = kept_reply(b, m, j)
    if k then return k end
    if a[5] == '1' then
        local how = redis.call('GET', okey(b, m, j))
        if how then return {OK, 0, how} end
    end
    return {NOTFOUND}
end

-- ---- listing ----

-- The rank in zset k of the first member after (score s, member j): members of
-- equal score sort by their fixed-width ids.
local function rank_after(k, s, j)
    local at = redis.call('ZSCORE', k, j)
    if at and tonumber(at) == s then return redis.call('ZRANK', k, j) + 1 end
    local lo, hi = 0, redis.call('ZCARD', k)
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        local e = redis.call('ZRANGE', k, mid, mid, 'WITHSCORES')
        local es = tonumber(e[2])
        if es < s or (es == s and e[1] <= j) then lo = mid + 1 else hi = mid end
    end
    return lo
end

-- ARGV[3..8]: state (0 ready, 1 delayed, 2 reserved, 3 dead), has_after, after key,
-- after id, max, preview bytes. {0, more, n, (id, priority, attempt, deadline, len,
-- payload preview, reason, error or false) * n} | {NOTFOUND} (after names no dead
-- letter) | {INVALID} | {NOQUEUE}
local function jobs(keys, a)
    local b = base(keys)
    local m = open(b, a)
    if not m then return {NOQUEUE} end
    local state, has_after = tonumber(a[3]), a[4] == '1'
    local ak, aj, max, preview = tonumber(a[5]), jid(tonumber(a[6])), tonumber(a[7]), tonumber(a[8])
    local ids, deadlines = {}, {}
    if state == 0 or state == 1 then
        local k = b .. (state == 0 and ':r' or ':d')
        local from = has_after and rank_after(k, ak, aj) or 0
        local e = redis.call('ZRANGE', k, from, from + max, 'WITHSCORES')
        for i = 1, #e, 2 do
            ids[#ids + 1] = e[i]
            deadlines[#ids] = state == 1 and tonumber(e[i + 1]) or 0
        end
    elseif state == 2 then
        for _, j in ipairs(redis.call('ZRANGE', b .. ':l', 0, -1)) do
            if not has_after or j > aj then ids[#ids + 1] = j end
        end
        table.sort(ids)
        for i = 1, math.min(#ids, max + 1) do
            deadlines[i] = tonumber(redis.call('ZSCORE', b .. ':l', ids[i]))
        end
    elseif state == 3 then
        local from = '-inf'
        if has_after then
            local s = redis.call('ZSCORE', b .. ':x', aj)
            if not s then return {NOTFOUND} end
            from = '(' .. s
        end
        ids = redis.call('ZRANGEBYSCORE', b .. ':x', from, '+inf', 'LIMIT', 0, max + 1)
    else
        return {INVALID}
    end
    local n = math.min(#ids, max)
    local out = {OK, #ids > max and 1 or 0, n}
    for i = 1, n do
        local j = ids[i]
        local p = redis.call('HGET', b .. ':p', j) or ''
        local why, text = 0, false
        if state == 3 then
            why = tonumber(redis.call('HGET', b .. ':e', j)) or 0
            local k = kept_reply(b, m, j)
            if k and k[2] == OUTCOME_DEAD then text = k[7] end
        end
        out[#out + 1] = tonumber(j)
        out[#out + 1] = tonumber(redis.call('HGET', b .. ':n', j)) or 0
        out[#out + 1] = tonumber(redis.call('HGET', b .. ':t', j)) or 0
        out[#out + 1] = deadlines[i] or 0
        out[#out + 1] = #p
        out[#out + 1] = string.sub(p, 1, preview)
        out[#out + 1] = why
        out[#out + 1] = text
    end
    return out
end

redis.register_function('aw_result', result)
redis.register_function('aw_jobs', jobs)
