-- mogate's Redis function library. redisstore.go's buildLibrary puts its
-- header before this text: the library name (a hash of the code, so that
-- builds with different code never replace each other's functions), LIB
-- (the functions' name prefix) and one constant per key a function takes,
-- its position in KEYS. keys.go's libFuncs lists each function's keys in
-- order: most take the receiving number's keys (keys[S], keys[PAIRS], ...,
-- all in one hash slot), some extra ones, named after the function
-- (keys[INGEST_DEDUPE]). keys are indexed only through these constants,
-- never by a number, and passed whole only to the helpers here;
-- keys_test.go checks that against libFuncs. No key name is built here:
-- every key comes in KEYS, so one Redis serves deployments of any
-- redis_prefix.
-- Times come from the caller's clock (ARGV), never from Redis.

local PENDING, VERIFIED, EXPIRED, CANCELLED, FAILED = 0, 1, 2, 3, 4
local UNMATCHED, MATCHED, ATTEMPTED, EXHAUSTED, PARTSTORED = 0, 1, 2, 3, 4

-- wake is the wakeup channel of the keys' deployment: their prefix, then
-- ":wake" (keys[S] is "<prefix>:{<tag>}:s").
local function wake(keys)
  return string.match(keys[S], '^(.*):{') .. ':wake'
end

local function load(keys, id)
  local v = redis.call('HGET', keys[S], id)
  if not v then return nil end
  return cjson.decode(v)
end

local function save(keys, s)
  local enc = cjson.encode(s)
  redis.call('HSET', keys[S], s.id, enc)
  return enc
end

-- Index entries name the receiving number too: two numbers whose tags
-- collide share the keys, never a match.
local function pairMember(s)
  return s.to .. '\0' .. s.num .. '\0' .. string.format('%016d', s.seq) .. '\0' .. s.id
end

local function codeField(to, norm)
  return to .. '\0' .. norm
end

-- pairIDs returns the pending sessions of sender from on to, oldest first.
local function pairIDs(keys, to, from)
  local ids, p = {}, to .. '\0' .. from .. '\0'
  for i, m in ipairs(redis.call('ZRANGEBYLEX', keys[PAIRS], '[' .. p, '(' .. to .. '\0' .. from .. '\1')) do
    ids[i] = string.sub(m, #p + 18)
  end
  return ids
end

local function live(s, now)
  return s and s.st == PENDING and now < s.exp
end

-- finish gives s its final status and records its event, due now. The
-- reason (matcher.Reason*) of expired and failed follows from the status;
-- a cancelling caller sets s.rs (superseded or cancelled_by_api) first.
local function finish(keys, s, st, at, now)
  s.st, s.fin = st, at
  if st == EXPIRED then s.rs = 'expired' elseif st == FAILED then s.rs = 'max_attempts' end
  if redis.call('HINCRBY', keys[PEND], s.to, -1) <= 0 then
    redis.call('HDEL', keys[PEND], s.to)
  end
  if s.num == '' then
    local f = codeField(s.to, s.norm)
    if redis.call('HGET', keys[CODES], f) == s.id then
      redis.call('HDEL', keys[CODES], f)
    end
  else
    redis.call('ZREM', keys[PAIRS], pairMember(s))
  end
  redis.call('ZREM', keys[EXP], s.id)
  redis.call('ZADD', keys[DONE], at, s.id)
  redis.call('ZADD', keys[EV], now, 's:' .. s.id)
  local enc = save(keys, s)
  redis.call('PUBLISH', wake(keys), s.id)
  return enc
end

-- contains: is code the concatenation of consecutive chunks of one group?
local function contains(chunks, groups, code)
  local n, lc = #chunks, #code
  for i = 1, n do
    local c = chunks[i]
    if string.sub(code, 1, #c) == c then
      local cat, j = c, i
      while #cat < lc do
        j = j + 1
        if j > n or string.sub(groups, j, j) == '1' then break end
        cat = cat .. chunks[j]
      end
      if cat == code then return true end
    end
  end
  return false
end

-- bucket is a token bucket of limit tokens a period (ms), burst limit: it
-- reports whether a token is left and, with spend, takes it. A bucket
-- left alone for a period is full: its key expires then.
local function bucket(key, limit, period, now, spend)
  if limit <= 0 then return true end
  local b = redis.call('HMGET', key, 't', 'a')
  local tokens, at = tonumber(b[1]), tonumber(b[2])
  if not tokens then tokens, at = limit, now end
  if now > at then
    tokens = math.min(limit, tokens + limit * (now - at) / period)
    at = now
  end
  local ok = tokens >= 1
  if ok and spend then tokens = tokens - 1 end
  redis.call('HSET', key, 't', tostring(tokens), 'a', tostring(at))
  redis.call('PEXPIRE', key, period)
  return ok
end

local HOUR = 3600000

-- create: ARGV session JSON, now. Returns {status, session JSON, superseded id}.
local function create(keys, args)
  local s, now = cjson.decode(args[1]), tonumber(args[2])
  local old = redis.call('HGET', keys[S], s.id)
  if old then return {'exists', old, ''} end
  local superseded = ''
  if s.num == '' then
    local f = codeField(s.to, s.norm)
    if live(load(keys, redis.call('HGET', keys[CODES], f) or ''), now) then
      return {'code_in_use', '', ''}
    end
    redis.call('HSET', keys[CODES], f, s.id)
  else
    for _, id in ipairs(pairIDs(keys, s.to, s.num)) do
      local o = load(keys, id)
      if live(o, now) and o.key == s.key then -- a pair keeps one pending session per API key
        o.rs = 'superseded'
        finish(keys, o, CANCELLED, now, now)
        superseded = o.id
        break
      end
    end
    s.seq = redis.call('INCR', keys[SEQ])
    redis.call('ZADD', keys[PAIRS], 0, pairMember(s))
  end
  redis.call('HSET', keys[TOK], s.pt, s.id)
  redis.call('ZADD', keys[EXP], s.exp, s.id)
  redis.call('HINCRBY', keys[PEND], s.to, 1)
  return {'ok', save(keys, s), superseded}
end

-- cancel: ARGV id, now. Returns {status, session JSON}.
local function cancel(keys, args)
  local s, now = load(keys, args[1]), tonumber(args[2])
  if not s then return {'not_found', ''} end
  if not live(s, now) then return {'not_pending', cjson.encode(s)} end
  s.rs = 'cancelled_by_api'
  return {'ok', finish(keys, s, CANCELLED, now, now)}
end

local function verify(keys, s, a)
  s.vn, s.pv, s.mid = a.from, a.pv, a.mid
  finish(keys, s, VERIFIED, a.now, a.now)
end

-- ingest matches one message, once. Keys beside the number's: the dedupe
-- record INGEST_DEDUPE, the sender's capture guesses INGEST_GUESSES and
-- unmatched budget INGEST_UNMATCHED, the multipart message it completes
-- INGEST_PARTS. ARGV: JSON of the scanned message. Returns {duplicate 0/1,
-- outcome JSON}.
local function ingest(keys, args)
  local d = redis.call('GET', keys[INGEST_DEDUPE])
  if d then return {1, d} end
  local a = cjson.decode(args[1])
  local now = a.now
  local function done(out)
    local enc = cjson.encode(out)
    redis.call('SET', keys[INGEST_DEDUPE], enc, 'PX', a.ret)
    return {0, enc}
  end
  if a.parts then
    -- Another part completed the message first: this one only stored itself.
    if redis.call('DEL', keys[INGEST_PARTS]) == 0 then return done({k = PARTSTORED}) end
  end
  -- 1. The sender's own pending sessions: the oldest whose code the text holds.
  local own = {}
  for _, id in ipairs(pairIDs(keys, a.to, a.from)) do
    local s = load(keys, id)
    if live(s, now) then
      if contains(a.chunks, a.groups, s.norm) then
        verify(keys, s, a)
        return done({k = MATCHED, sid = s.id})
      end
      own[#own + 1] = s
    end
  end
  -- 2. Capture sessions: every message that gets here is one guess.
  local out = {k = UNMATCHED}
  if not a.nocap and bucket(keys[INGEST_UNMATCHED], a.uph, HOUR, now, false) then
    if bucket(keys[INGEST_GUESSES], a.gph, HOUR, now, true) then
      out.ct = true
      for _, c in ipairs(a.cands) do
        local id = redis.call('HGET', keys[CODES], codeField(a.to, c))
        local s = id and load(keys, id)
        if live(s, now) then
          verify(keys, s, a)
          return done({k = MATCHED, sid = s.id, ct = true})
        end
      end
    else
      out.cr = true
    end
  end
  -- 3. A wrong code counts an attempt on each of the sender's sessions.
  for i, s in ipairs(own) do
    s.att = s.att + 1
    local kind = ATTEMPTED
    if s.att >= s.max then
      kind, s.pv, s.mid = EXHAUSTED, a.pv, a.mid
      finish(keys, s, FAILED, now, now)
    else
      save(keys, s)
    end
    if i == 1 then out.k, out.sid = kind, s.id end
  end
  if #own > 0 then return done(out) end
  -- 4. Unmatched: one message.unmatched event per key told, and the
  -- sender's unmatched budget.
  for _, ev in ipairs(a.uevs) do
    redis.call('HSET', keys[E], ev.m, ev.j)
    redis.call('ZADD', keys[EV], now, ev.m)
  end
  if #a.uevs > 0 then redis.call('PUBLISH', wake(keys), 'ev') end
  bucket(keys[INGEST_UNMATCHED], a.uph, HOUR, now, true)
  return done(out)
end

-- part stores one part of a multipart message. KEYS: the dedupe record
-- PART_DEDUPE, the parts PART_PARTS.
-- ARGV part, text, parts, retention ms, parts TTL ms. Returns {1, outcome}
-- for a duplicate, {0, outcome} when stored, {2, HGETALL} when complete:
-- the caller then ingests the whole with the parts key (which ingest
-- deletes, so the message is matched once).
local function part(keys, args)
  local d = redis.call('GET', keys[PART_DEDUPE])
  if d then return {1, d} end
  redis.call('HSET', keys[PART_PARTS], args[1], args[2])
  redis.call('PEXPIRE', keys[PART_PARTS], args[5])
  if redis.call('HLEN', keys[PART_PARTS]) < tonumber(args[3]) then
    local enc = cjson.encode({k = PARTSTORED})
    redis.call('SET', keys[PART_DEDUPE], enc, 'PX', args[4])
    return {0, enc}
  end
  return {2, redis.call('HGETALL', keys[PART_PARTS])}
end

-- sweep: ARGV now, retention ms, limit. Expires due pending sessions (one
-- expired event each) and drops sessions finished before the retention.
local function sweep(keys, args)
  local now, ret, limit = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
  local n = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', keys[EXP], '-inf', now, 'LIMIT', 0, limit)) do
    local s = load(keys, id)
    if s and s.st == PENDING then
      finish(keys, s, EXPIRED, s.exp, now)
      n = n + 1
    else
      redis.call('ZREM', keys[EXP], id)
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', keys[DONE], '-inf', now - ret, 'LIMIT', 0, limit)) do
    if redis.call('ZSCORE', keys[EV], 's:' .. id) then
      -- Its event is still undelivered: the session stays (looked at
      -- again a retention later) until the event is acked, delivered or dead.
      redis.call('ZADD', keys[DONE], now, id)
    else
      local s = load(keys, id)
      if s then redis.call('HDEL', keys[TOK], s.pt) end
      redis.call('HDEL', keys[S], id)
      redis.call('ZREM', keys[DONE], id)
      redis.call('HDEL', keys[E], 'a:s:' .. id)
    end
  end
  return n
end

-- claim leases due events: ARGV now, lease end, limit. Returns the members.
local function claim(keys, args)
  local ms = redis.call('ZRANGEBYSCORE', keys[EV], '-inf', args[1], 'LIMIT', 0, args[3])
  for _, m in ipairs(ms) do
    redis.call('ZADD', keys[EV], args[2], m)
  end
  return ms
end

-- ack: ARGV member, notified state (1 delivered, 2 dead). The event is
-- never claimed again; a session records its notified state.
local function ack(keys, args)
  local m = args[1]
  redis.call('ZREM', keys[EV], m)
  redis.call('HDEL', keys[E], m, 'a:' .. m)
  if string.sub(m, 1, 2) == 's:' then
    local s = load(keys, string.sub(m, 3))
    if s then
      s.nt = tonumber(args[2])
      save(keys, s)
    end
  end
  return 1
end

-- defer: ARGV member, lease end or next try (ms), failed attempts. An
-- event still undelivered moves to that time and keeps its attempt count
-- (in e as "a:<member>"); an acked one stays acked.
local function defer(keys, args)
  local m = args[1]
  if not redis.call('ZSCORE', keys[EV], m) then return 0 end
  redis.call('ZADD', keys[EV], args[2], m)
  redis.call('HSET', keys[E], 'a:' .. m, args[3])
  return 1
end

-- idem_release: KEYS the idempotency key IDEM_RELEASE_IDEM; ARGV the
-- value this caller set.
-- Deletes the claim only if it is still the caller's.
local function idem_release(keys, args)
  if redis.call('GET', keys[IDEM_RELEASE_IDEM]) == args[1] then
    return redis.call('DEL', keys[IDEM_RELEASE_IDEM])
  end
  return 0
end

redis.register_function(LIB .. '_create', create)
redis.register_function(LIB .. '_cancel', cancel)
redis.register_function(LIB .. '_ingest', ingest)
redis.register_function(LIB .. '_part', part)
redis.register_function(LIB .. '_sweep', sweep)
redis.register_function(LIB .. '_claim', claim)
redis.register_function(LIB .. '_ack', ack)
redis.register_function(LIB .. '_defer', defer)
redis.register_function(LIB .. '_idem_release', idem_release)
