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

-- int is integer n as a command argument or reply. redis.call formats a
-- Lua number argument with printf("%.17g"): ~3,700 instructions, where a
-- whole ZADD takes ~5,300 (callgrind); string.format's integer
-- conversion takes ~2,000. Constants and values that came as arguments
-- are passed as the strings they are.
local function int(n)
  return string.format('%d', n)
end

-- wake is the wakeup channel of the keys' deployment: their prefix, then
-- ":wake" (keys[S] is "<prefix>:{<tag>}:s"). The last channel made is
-- kept with the keys[S] it came from (wakeOf): a call on the same tag as
-- the one before, as most are, matches no pattern and builds no string.
local wakeOf, wakeChannel
local function wake(keys)
  if keys[S] ~= wakeOf then
    wakeOf, wakeChannel = keys[S], string.match(keys[S], '^(.*):{') .. ':wake'
  end
  return wakeChannel
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

-- routes are a session's routes ({c = channel, to = number}); a record
-- written before routes existed has the one route {sms, to}.
local function routes(s)
  if s.rt and #s.rt > 0 then return s.rt end
  return {{c = 'sms', to = s.to}}
end

-- repeated: does route i of rs go to a number an earlier one goes to?
-- finish walks a session's numbers this way, building no list.
local function repeated(rs, i)
  for j = 1, i - 1 do
    if rs[j].to == rs[i].to then return true end
  end
  return false
end

-- numbers are the distinct numbers of a session's routes: each indexes it
-- (in its home tag, the tag of s.to) as s.to alone did before routes.
local function numbers(s)
  local out, rs = {}, routes(s)
  for i, r in ipairs(rs) do
    if not repeated(rs, i) then out[#out + 1] = r.to end
  end
  return out
end

local function hasRoute(s, c, to)
  for _, r in ipairs(routes(s)) do
    if r.c == c and r.to == to then return true end
  end
  return false
end

-- Index entries name the receiving number too: two numbers whose tags
-- collide share the keys, never a match.
local function pairMember(s, to)
  return to .. '\0' .. s.num .. '\0' .. string.format('%016d', s.seq) .. '\0' .. s.id
end

-- Links tell a route number's tag that sessions homed in other tags have a
-- route on it: links field "p\0<to>\0<sender>" or "c\0<to>\0<code>" ->
-- JSON {home tag: expiry ms}; linkexp scores each field by its latest
-- expiry, for the sweep. A link outlives a session that finished early:
-- it only costs a look at the home tag.
local function linkHomes(keys, field, now, out)
  local v = redis.call('HGET', keys[LINKS], field)
  if not v then return out end
  for h, exp in pairs(cjson.decode(v)) do
    if exp > now then out[h] = true end
  end
  return out
end

-- linkHomesOf is linkHomes of several fields, read in one HMGET.
local function linkHomesOf(keys, fields, now, out)
  for _, v in ipairs(redis.call('HMGET', keys[LINKS], unpack(fields))) do
    if v then
      for h, exp in pairs(cjson.decode(v)) do
        if exp > now then out[h] = true end
      end
    end
  end
  return out
end

local function addLink(keys, field, home, exp, now)
  local v = redis.call('HGET', keys[LINKS], field)
  local m, top = {}, exp
  if v then
    for h, e in pairs(cjson.decode(v)) do
      if e > now then
        m[h] = e
        if e > top then top = e end
      end
    end
  end
  if (m[home] or 0) < exp then m[home] = exp end
  redis.call('HSET', keys[LINKS], field, cjson.encode(m))
  redis.call('ZADD', keys[LINKEXP], top, field)
end

-- sortedKeys lists a set's members in order (deterministic replies).
local function sortedKeys(set)
  local out = {}
  for h in pairs(set) do out[#out + 1] = h end
  table.sort(out)
  return out
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

-- finish gives s its final status, drops it from the index of every route
-- number, and records its event, due now. The reason
-- (matcher.Reason*) of expired follows from the status, and of failed
-- unless the caller set line_type_rejected; a cancelling caller sets s.rs
-- (superseded or cancelled_by_api) first. nows is now as the caller
-- passed it (ARGV), if it has it: no number formatted again.
local function finish(keys, s, st, at, now, nows)
  s.st, s.fin = st, at
  if st == EXPIRED then
    s.rs = 'expired'
  elseif st == FAILED and s.rs ~= 'line_type_rejected' then
    s.rs = 'max_attempts'
  end
  local rs = routes(s)
  for i, r in ipairs(rs) do
    local to = r.to
    if not repeated(rs, i) then
      if redis.call('HINCRBY', keys[PEND], to, '-1') <= 0 then
        redis.call('HDEL', keys[PEND], to)
      end
      if s.num == '' then
        local f = codeField(to, s.norm)
        if redis.call('HGET', keys[CODES], f) == s.id then
          redis.call('HDEL', keys[CODES], f)
        end
      else
        redis.call('ZREM', keys[PAIRS], pairMember(s, to))
      end
    end
  end
  redis.call('ZREM', keys[EXP], s.id)
  nows = nows or int(now)
  redis.call('ZADD', keys[DONE], at == now and nows or int(at), s.id)
  redis.call('ZADD', keys[EV], nows, 's:' .. s.id)
  local enc = save(keys, s)
  redis.call('PUBLISH', wake(keys), s.id)
  return enc
end

-- contains: is code the concatenation of consecutive chunks of one group?
local function contains(chunks, groups, code)
  local n, lc = #chunks, #code
  for i = 1, n do
    local c = chunks[i]
    if string.find(code, c, 1, true) == 1 then
      local cat, j = c, i
      while #cat < lc do
        j = j + 1
        if j > n or string.byte(groups, j) == 49 then break end -- '1'
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
  redis.call('PEXPIRE', key, int(period))
  return ok
end

local HOUR = 3600000

-- codeTaken: is a live capture session of this tag, or a link to one
-- homed elsewhere, holding code norm on number to?
local function codeTaken(keys, to, norm, now)
  if live(load(keys, redis.call('HGET', keys[CODES], codeField(to, norm)) or ''), now) then return true end
  return next(linkHomes(keys, 'c\0' .. to .. '\0' .. norm, now, {})) ~= nil
end

-- supersede cancels this tag's live sessions of API key key for sender num
-- with a route on one of tos, but session id: a sender keeps one pending
-- session per API key on a number. Returns how many it cancelled.
local function supersede(keys, key, num, tos, id, now)
  local n = 0
  for _, to in ipairs(tos) do
    for _, oid in ipairs(pairIDs(keys, to, num)) do
      local o = load(keys, oid)
      if oid ~= id and live(o, now) and o.key == key then
        o.rs = 'superseded'
        finish(keys, o, CANCELLED, now, now)
        n = n + 1
      end
    end
  end
  return n
end

-- create: ARGV the session's record (JSON, as the caller encoded it,
-- without seq), now, then the plain values this function reads: id, API
-- key, sender (num, '' for capture), normalized code, page token, expiry
-- (ms), and the distinct numbers of its routes, first route first. The
-- record sent is stored as given, never decoded here; an expected-sender
-- session gets its creation counter appended as "seq". The routes may
-- name numbers of other tags: every number indexes the session here, its
-- home, and the caller links the others (link). Returns {status, the
-- record already stored under id ('' when created), superseded count,
-- JSON of the other home tags with sessions of the same sender on a
-- number of this tag, seq}; for an existing session still pending
-- ('exists'), those tags again, read from the stored record, so that a
-- retry cancels there what a first try that stopped after this step did
-- not.
-- The record is stored first, with HSETNX: one command both stores a new
-- session and finds an existing one (a retry), where a read and a write
-- took two. A retry then only spends a creation counter, and a capture
-- code in use takes the record back out. Redis does not undo a function
-- that stops on an error: a corrupt links or session value read after the
-- HSETNX (nothing mogate writes) would leave the record without its
-- indexes, where before it left indexes without their record.
local function create(keys, args)
  local rec, now = args[1], tonumber(args[2])
  local s = {id = args[3], key = args[4], num = args[5], norm = args[6], pt = args[7], exp = args[8]}
  local seq = '0'
  if s.num == '' then
    s.seq = 0
  else
    s.seq = redis.call('INCR', keys[SEQ])
    seq = int(s.seq)
    rec = string.sub(rec, 1, -2) .. ',"seq":' .. seq .. '}'
  end
  if redis.call('HSETNX', keys[S], s.id, rec) == 0 then
    local old = redis.call('HGET', keys[S], s.id)
    local o, homes = cjson.decode(old), {}
    if o.num ~= '' and live(o, now) then
      for _, to in ipairs(numbers(o)) do linkHomes(keys, 'p\0' .. to .. '\0' .. o.num, now, homes) end
    end
    return {'exists', old, '0', cjson.encode(sortedKeys(homes)), '0'}
  end
  local tos = {}
  for i = 9, #args do tos[#tos + 1] = args[i] end
  local superseded, homes = 0, {}
  if s.num == '' then
    for _, to in ipairs(tos) do
      if codeTaken(keys, to, s.norm, now) then
        redis.call('HDEL', keys[S], s.id)
        return {'code_in_use', '', '0', '[]', '0'}
      end
    end
    for _, to in ipairs(tos) do
      redis.call('HSET', keys[CODES], codeField(to, s.norm), s.id)
    end
  else
    superseded = supersede(keys, s.key, s.num, tos, s.id, now)
    for _, to in ipairs(tos) do
      linkHomes(keys, 'p\0' .. to .. '\0' .. s.num, now, homes)
    end
    for _, to in ipairs(tos) do
      redis.call('ZADD', keys[PAIRS], '0', pairMember(s, to))
    end
  end
  redis.call('HSET', keys[TOK], s.pt, s.id)
  redis.call('ZADD', keys[EXP], s.exp, s.id)
  for _, to in ipairs(tos) do
    redis.call('HINCRBY', keys[PEND], to, '1')
  end
  local n, h = '0', '[]'
  if superseded > 0 then n = int(superseded) end
  if next(homes) ~= nil then h = cjson.encode(sortedKeys(homes)) end
  return {'ok', '', n, h, seq}
end

-- link runs in a tag other than a new session's home: ARGV JSON {home,
-- id, key, num, norm, exp, now, tos: the session's numbers of this tag,
-- all: all its numbers}. It refuses a capture code in use on one of tos,
-- links tos to the home, and cancels this tag's sessions the new one
-- supersedes (on any of all). With tos empty it only supersedes: a tag
-- homing sessions linked from a number of the new one. Returns {status,
-- superseded count, JSON of further home tags with sessions of the
-- sender on tos}.
local function link(keys, args)
  local a = cjson.decode(args[1])
  local homes = {}
  if a.num == '' then
    for _, to in ipairs(a.tos) do
      if codeTaken(keys, to, a.norm, a.now) then return {'code_in_use', '0', '[]'} end
    end
    for _, to in ipairs(a.tos) do
      addLink(keys, 'c\0' .. to .. '\0' .. a.norm, a.home, a.exp, a.now)
    end
    return {'ok', '0', '[]'}
  end
  local n = supersede(keys, a.key, a.num, a.all, a.id, a.now)
  for _, to in ipairs(a.tos) do
    local f = 'p\0' .. to .. '\0' .. a.num
    linkHomes(keys, f, a.now, homes)
    addLink(keys, f, a.home, a.exp, a.now)
  end
  homes[a.home] = nil
  return {'ok', tostring(n), cjson.encode(sortedKeys(homes))}
end

-- cancel: ARGV id, now. Returns {status, session JSON}.
local function cancel(keys, args)
  local s, now = load(keys, args[1]), tonumber(args[2])
  if not s then return {'not_found', ''} end
  if not live(s, now) then return {'not_pending', cjson.encode(s)} end
  s.rs = 'cancelled_by_api'
  return {'ok', finish(keys, s, CANCELLED, now, now)}
end

-- senderCounts reads the sessions verified for a message's sender in the
-- 24 h before (its key INGEST_VERIFIED), per API key, and whether the key
-- holds older ones (stale), which a verification then trims: the read
-- takes them too, so that a sender with none costs no trim. Only a
-- message that verifies or fails a session reads them (verify): the
-- others cost no read.
local function senderCounts(keys, now, nows)
  local out, stale, from = {}, false, now - 86400000
  local r = redis.call('ZRANGEBYSCORE', keys[INGEST_VERIFIED], '-inf', nows, 'WITHSCORES')
  for i = 1, #r, 2 do
    if tonumber(r[i + 1]) < from then
      stale = true
    else
      local k = string.match(r[i], '^(.*)%z[^%z]*$')
      if k then out[k] = (out[k] or 0) + 1 end
    end
  end
  return out, stale
end

-- verify verifies s by message a, or, when a carries a reject reason
-- (the line-type policy), fails s with it. Either way s records the
-- route (via) and what the message told of its sender (sig), with the
-- sessions verified for the sender under s's API key in the 24 h before
-- (a.ss, by key: read here with a.vs, else by the caller). Returns the
-- outcome kind.
local function verify(keys, s, a)
  if a.vs then a.ss, a.stale = senderCounts(keys, a.now, a.nows) end
  s.pv, s.mid = a.pv, a.mid
  s.via = {c = a.ch, to = a.to}
  s.sig = {lt = a.lt, ca = a.ca, sc = a.sc, at = a.at, fw = a.fw}
  if a.ss and a.ss[s.key] then s.sig.ss = a.ss[s.key] end
  if a.rej and a.rej ~= '' then
    s.rs = a.rej
    finish(keys, s, FAILED, a.now, a.now, a.nows)
    return EXHAUSTED
  end
  s.vn = a.from
  finish(keys, s, VERIFIED, a.now, a.now, a.nows)
  return MATCHED
end

-- ownSessions are this tag's live sessions of message a's sender with a
-- route on its channel and number, oldest first.
local function ownSessions(keys, a)
  local own = {}
  for _, id in ipairs(pairIDs(keys, a.to, a.from)) do
    local s = load(keys, id)
    if live(s, a.now) and hasRoute(s, a.ch, a.to) then own[#own + 1] = s end
  end
  return own
end

-- attempts counts a wrong code on each of own; out takes the first's
-- outcome.
local function attempts(keys, own, a, out)
  for i, s in ipairs(own) do
    s.att = s.att + 1
    local kind = ATTEMPTED
    if s.att >= s.max then
      kind, s.pv, s.mid = EXHAUSTED, a.pv, a.mid
      finish(keys, s, FAILED, a.now, a.now, a.nows)
    else
      save(keys, s)
    end
    if i == 1 then out.k, out.sid = kind, s.id end
  end
end

-- flag, opt and json read one of ingest's ARGV: a flag ('1' or ''), an
-- optional string, optional JSON.
local function flag(v) if v == '1' then return true end return nil end
local function opt(v) if v ~= '' then return v end return nil end
local function json(v) if v ~= '' then return cjson.decode(v) end return nil end

-- list reads the list of args at i (its length, then its values): the
-- list and the index after it.
local function list(args, i)
  local n = tonumber(args[i])
  local out = {}
  for j = 1, n do out[j] = args[i + j] end
  return out, i + n + 1
end

-- ingestArgs reads ingest's ARGV, plain values in the order of
-- ingest.go's argv: now, retention, provider, message id, from, to, the
-- text's chunk groups, nocap, capture guesses and unmatched messages per
-- hour, parts, channel, line type, carrier, sender country, attestation,
-- forwarded, reject reason, vs, mode, spend, ct, cr (flags are '1' or ''),
-- the outcome found elsewhere (res), the prior attempt, the sender counts
-- (JSON, or ''), then the chunks, the capture candidates and the
-- unmatched events (member, JSON), each list after its length.
local function ingestArgs(args)
  local a = {now = tonumber(args[1]), nows = args[1], ret = args[2], pv = args[3], mid = args[4], from = args[5], to = args[6],
    groups = args[7], nocap = flag(args[8]), gph = tonumber(args[9]), uph = tonumber(args[10]), parts = flag(args[11]),
    ch = args[12], lt = opt(args[13]), ca = opt(args[14]), sc = opt(args[15]), at = opt(args[16]), fw = flag(args[17]),
    rej = opt(args[18]), vs = flag(args[19]), mode = opt(args[20]), spend = flag(args[21]), ct = flag(args[22]),
    cr = flag(args[23]), res = json(args[24]), prior = json(args[25]), ss = json(args[26])}
  local ev, i
  a.chunks, i = list(args, 27)
  a.cands, i = list(args, i)
  ev = list(args, i)
  a.uevs = ev
  if #ev > 0 then
    a.uevs = {}
    for j = 1, #ev, 2 do a.uevs[#a.uevs + 1] = {m = ev[j], j = ev[j + 1]} end
  end
  return a
end

-- claimParts takes the parts of the multipart message that message a
-- completes: false when they are gone or another message claimed them
-- first. A step of the linked path (keep) marks them claimed by a.mid
-- instead of deleting them, so that a redelivery after a later step
-- failed finds them again; done deletes them with the outcome's record.
local function claimParts(keys, a, keep)
  local c = redis.call('HGET', keys[INGEST_PARTS], 'claim')
  if c then return c == a.mid end
  if redis.call('EXISTS', keys[INGEST_PARTS]) == 0 then return false end
  if keep then redis.call('HSET', keys[INGEST_PARTS], 'claim', a.mid) end
  return true
end

-- done records outcome out of message a (ARGV ingestArgs) as ingest's
-- reply: the sender's verified sessions gain a verification read here
-- (a.vs), the multipart message's parts go, and the dedupe record holds
-- out.
local function done(keys, a, out)
  if a.vs and out.k == MATCHED and out.key and out.sid then
    local vk = keys[INGEST_VERIFIED]
    if a.stale then redis.call('ZREMRANGEBYSCORE', vk, '-inf', int(a.now - 86400000 - 1)) end
    redis.call('ZADD', vk, 'NX', a.nows, out.key .. '\0' .. out.sid)
    redis.call('PEXPIRE', vk, '86400000')
  end
  if a.parts then
    local c = redis.call('HGET', keys[INGEST_PARTS], 'claim')
    if c == a.mid or (not c and not a.mode) then redis.call('DEL', keys[INGEST_PARTS]) end
  end
  local enc = cjson.encode(out)
  redis.call('SET', keys[INGEST_DEDUPE], enc, 'PX', a.ret)
  return {0, enc}
end

-- ingest matches one message, once. Keys beside the number's: the dedupe
-- record INGEST_DEDUPE, the sender's capture guesses INGEST_GUESSES and
-- unmatched budget INGEST_UNMATCHED, the multipart message it completes
-- INGEST_PARTS, and, with a.vs (one server: any slot is at hand), the
-- sender's verified sessions INGEST_VERIFIED, which it reads for the
-- signals and adds a verification to (else the caller does both). ARGV: the scanned message (ingestArgs), with its channel (ch):
-- only sessions with a route {ch, to} count; a call (ch "call") verifies
-- the sender's own session without a code, never a capture session, and
-- counts no attempt; only a call attested A (at) verifies, any other is
-- recorded unmatched and changes nothing else; with two or more such
-- sessions a call verifies none (it cannot say which one the caller
-- meant). Returns {duplicate 0/1, outcome JSON}, or, when the
-- tag links the message's number to sessions homed in other tags, {2,
-- JSON of those tags} having written nothing: the caller then goes through
-- the tags in steps (mode, below), each call deduplicated in its own tag.
-- mode "count": how many sessions a call could verify here (own);
-- "own": the sender's own sessions only; "verify": the sender's own
-- sessions and capture sessions only (with spend, the message's number's
-- tag: its parts and budgets);
-- "attempt": the wrong code's attempts only; "final" (the number's tag):
-- res, the outcome found elsewhere, is recorded, or the attempts and the
-- unmatched events are done here (prior: an attempt made elsewhere).
-- A step that changed nothing answers {3, outcome JSON} and records none.
-- mode "first" (IngestOptions.OwnFirst, sent only for a message capture
-- matching could reach) is no step: the message is matched as without a
-- mode, but stops with {3, ...}, recording nothing, where it would go on
-- to capture sessions.
local function ingest(keys, args)
  local d = redis.call('GET', keys[INGEST_DEDUPE])
  if d then return {1, d} end
  local a = ingestArgs(args)
  local first = a.mode == 'first'
  if first then a.mode = nil end
  local now, mode, call = a.now, a.mode, a.ch == 'call'
  -- A call proves the caller only with attestation A.
  if call and a.at ~= 'A' then return done(keys, a, {k = UNMATCHED}) end
  if not mode then
    local fields = {'p\0' .. a.to .. '\0' .. a.from}
    if not call and not a.nocap and not first then
      for _, c in ipairs(a.cands) do fields[#fields + 1] = 'c\0' .. a.to .. '\0' .. c end
    end
    local homes = linkHomesOf(keys, fields, now, {})
    if next(homes) ~= nil then return {2, cjson.encode(sortedKeys(homes))} end
  end
  if mode == 'final' and a.res then return done(keys, a, a.res) end
  if a.parts and (not mode or a.spend) then
    -- Another part completed the message first: this one only stored itself.
    if not claimParts(keys, a, mode ~= nil) then return done(keys, a, {k = PARTSTORED}) end
  end
  local own = ownSessions(keys, a)
  if mode == 'count' then return {3, cjson.encode({k = UNMATCHED, own = #own})} end
  -- The outcome so far, made once the sender's own sessions took nothing.
  local out
  if mode ~= 'attempt' and mode ~= 'final' then
    -- 1. The sender's own pending sessions: the oldest whose code the text
    -- holds (for a call, the only one: of two it cannot tell).
    if call and #own > 1 then
      if mode then return {3, cjson.encode({k = UNMATCHED, own = #own})} end
      return done(keys, a, {k = UNMATCHED})
    end
    for _, s in ipairs(own) do
      if call or contains(a.chunks, a.groups, s.norm) then
        return done(keys, a, {k = verify(keys, s, a), sid = s.id, key = s.key, ct = a.ct})
      end
    end
    if first then return {3, cjson.encode({k = UNMATCHED})} end
    out = {k = UNMATCHED, ct = a.ct, cr = a.cr}
    -- 2. Capture sessions: every message that gets here is one guess.
    if not call and not a.nocap and mode ~= 'own' then
      local spend = not mode or a.spend
      local try = a.ct
      if spend and bucket(keys[INGEST_UNMATCHED], a.uph, HOUR, now, false) then
        try = bucket(keys[INGEST_GUESSES], a.gph, HOUR, now, true)
        out.ct, out.cr = try or nil, (not try) or nil
      end
      if try then
        for _, c in ipairs(a.cands) do
          local id = redis.call('HGET', keys[CODES], codeField(a.to, c))
          local s = id and load(keys, id)
          if live(s, now) and hasRoute(s, a.ch, a.to) then
            return done(keys, a, {k = verify(keys, s, a), sid = s.id, key = s.key, ct = true})
          end
        end
      end
    end
    if mode == 'verify' or mode == 'own' then
      out.own = #own
      return {3, cjson.encode(out)}
    end
  else
    out = {k = UNMATCHED, ct = a.ct, cr = a.cr}
  end
  -- 3. A wrong code counts an attempt on each of the sender's sessions (a
  -- call never does).
  if call then own = {} end
  attempts(keys, own, a, out)
  if #own > 0 then return done(keys, a, out) end
  if mode == 'attempt' then return {3, cjson.encode(out)} end
  if a.prior then
    out.k, out.sid = a.prior.k, a.prior.sid
    return done(keys, a, out)
  end
  -- 4. Unmatched: one message.unmatched event per key told, and the
  -- sender's unmatched budget.
  for _, ev in ipairs(a.uevs) do
    redis.call('HSET', keys[E], ev.m, ev.j)
    redis.call('ZADD', keys[EV], a.nows, ev.m)
  end
  if #a.uevs > 0 then redis.call('PUBLISH', wake(keys), 'ev') end
  bucket(keys[INGEST_UNMATCHED], a.uph, HOUR, now, true)
  return done(keys, a, out)
end

-- count records that a session was verified for a sender: the sender's
-- key COUNT_VERIFIED gets member ARGV[1] ("<API key>\0<session id>") at
-- ARGV[2] (ms), and loses the members older than ARGV[3] ms.
local function count(keys, args)
  local at, window = tonumber(args[2]), tonumber(args[3])
  redis.call('ZREMRANGEBYSCORE', keys[COUNT_VERIFIED], '-inf', at - window - 1)
  redis.call('ZADD', keys[COUNT_VERIFIED], 'NX', at, args[1])
  redis.call('PEXPIRE', keys[COUNT_VERIFIED], window)
  return 1
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
-- expired event each), drops sessions finished before the retention and
-- links whose sessions have all expired.
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
  for _, f in ipairs(redis.call('ZRANGEBYSCORE', keys[LINKEXP], '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('HDEL', keys[LINKS], f)
    redis.call('ZREM', keys[LINKEXP], f)
  end
  return n
end

-- claim leases due events: ARGV now, lease end, limit. Returns the members.
local function claim(keys, args)
  local ms = redis.call('ZRANGEBYSCORE', keys[EV], '-inf', args[1], 'LIMIT', 0, args[3])
  if #ms == 0 then return ms end
  -- One ZADD for the batch: score, member pairs.
  local zs = {}
  for _, m in ipairs(ms) do
    zs[#zs + 1] = args[2]
    zs[#zs + 1] = m
  end
  redis.call('ZADD', keys[EV], unpack(zs))
  return ms
end

-- notified returns session record v with its notified state st ('1'
-- delivered, '2' dead). A record holds "nt":0 until its event is acked,
-- and the text "nt": only as that key (a quote inside a JSON string is
-- escaped, and no nested object has an "nt"), so the 0 is replaced in the
-- text, one search and one concatenation, where decoding and encoding the
-- whole record took ~8 µs of Redis's thread (docs/performance.md). Any
-- other shape is decoded and encoded again.
local function notified(v, st)
  if st == '1' or st == '2' then
    local i = string.find(v, '"nt":0', 1, true)
    if i then
      local after = string.sub(v, i + 6, i + 6)
      if after == ',' or after == '}' then
        return string.sub(v, 1, i + 4) .. st .. string.sub(v, i + 6)
      end
    end
  end
  local s = cjson.decode(v)
  s.nt = tonumber(st)
  return cjson.encode(s)
end

-- ack: ARGV pairs of member, notified state (1 delivered, 2 dead), one
-- or more (a batch of the outbox's claim: AckEvents). The events are
-- never claimed again; a session records its notified state. One command
-- per key for the whole batch.
local function ack(keys, args)
  local ms, recs, ids, states = {}, {}, {}, {}
  for i = 1, #args - 1, 2 do
    local m = args[i]
    ms[#ms + 1] = m
    recs[#recs + 1] = m
    recs[#recs + 1] = 'a:' .. m
    if string.sub(m, 1, 2) == 's:' then
      ids[#ids + 1] = string.sub(m, 3)
      states[#states + 1] = args[i + 1]
    end
  end
  if #ms == 0 then return 1 end
  redis.call('ZREM', keys[EV], unpack(ms))
  redis.call('HDEL', keys[E], unpack(recs))
  if #ids > 0 then
    local vals, set = redis.call('HMGET', keys[S], unpack(ids)), {}
    for j = 1, #ids do
      if vals[j] then
        set[#set + 1] = ids[j]
        set[#set + 1] = notified(vals[j], states[j])
      end
    end
    if #set > 0 then redis.call('HSET', keys[S], unpack(set)) end
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
redis.register_function(LIB .. '_link', link)
redis.register_function(LIB .. '_count', count)
redis.register_function(LIB .. '_cancel', cancel)
redis.register_function(LIB .. '_ingest', ingest)
redis.register_function(LIB .. '_part', part)
redis.register_function(LIB .. '_sweep', sweep)
redis.register_function(LIB .. '_claim', claim)
redis.register_function(LIB .. '_ack', ack)
redis.register_function(LIB .. '_defer', defer)
redis.register_function(LIB .. '_idem_release', idem_release)
