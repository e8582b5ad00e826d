"""The Lua scripts `RedisStore` runs: each is one atomic step on the server, and none decides what the store's rules
decide (`_rules`): a claim, a cancel or a delete is read first, decided in Python, and applied by a script that
refuses (``retry``) if the thread moved in between (its version ``v`` changed).

What the scripts do decide is mechanical: whether a write's lease is still current (the fencing check every store
makes in its ``WHERE``), and which of the indexes a thread belongs in now (`reindex`, the one place that keeps them).

Keys, under the store's prefix ``P`` (``ARGV[1]``; every script gets it and touches only keys below it):

- ``P t:<thread id>``: hash of the thread: ``id``, ``tid``, ``owner``, ``exp`` (lease expiry, server seconds),
  ``fence``, ``last`` (its latest run's number), ``nonce``, ``v`` (bumped by every change a claim must not miss), and
  the ``i_*`` fields that record which indexes hold it;
- ``P r:<tid>:<run>``: hash of a run (``id``, ``ep``, ``status``, ``input``, ``prev``, ``started``, ...);
- ``P j:<tid>:<run>``: list of the run's journal rows (encoded by `_redis_ops`); ``P s:<tid>:<run>``: set of their
  slots (``attempt:key``), so no slot is written twice;
- indexes (sorted sets of thread ids): ``P started``, ``P started:<status>`` and ``P started:e:<entrypoint>`` by the
  latest run's start (listing), ``P fin:<status>`` by its finish (pruning), ``P queue:<entrypoint>`` of unleased
  running runs by wake time (0: now; what workers reserve) and of paused runs that have one (a question's deadline,
  or answers journaled for a worker), ``P leased:<entrypoint>`` of leased ones by lease
  expiry (those whose executor died, once it passes);
- ``P meta`` (the schema version), ``P tids`` (the last thread number), channel ``P work`` (wake-ups for workers).

A version is ``<tid>:<v>``: tids are never reused, so a thread deleted and created again between a read and its
write is not mistaken for the one that was read.

Server times are seconds as text with six decimals (`fmt`): a Lua number prints only 14 digits.
Redis compares strings by the server's locale, so ids are compared byte by byte (`before`).
"""

from __future__ import annotations

PRELUDE = r"""
local P = ARGV[1]
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.6f', x) end
local function run_key(tid, n) return P .. 'r:' .. tid .. ':' .. n end
local function held(tkey, tid, owner, fence)
  local h = redis.call('HMGET', tkey, 'tid', 'owner', 'fence')
  return h[1] == tid and h[2] == owner and h[3] == fence
end
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function version(tkey)
  local h = redis.call('HMGET', tkey, 'tid', 'v')
  if not h[1] then return '' end
  return h[1] .. ':' .. h[2]
end
local function unindex(tkey, id)
  local old = redis.call('HMGET', tkey, 'i_st', 'i_q', 'i_f', 'i_l', 'i_ep')
  if old[1] then
    redis.call('ZREM', P .. 'started', id)
    redis.call('ZREM', P .. 'started:' .. old[1], id)
    redis.call('ZREM', P .. 'started:e:' .. old[5], id)
  end
  if old[2] then redis.call('ZREM', old[2], id) end
  if old[3] then redis.call('ZREM', old[3], id) end
  if old[4] then redis.call('ZREM', old[4], id) end
  redis.call('HDEL', tkey, 'i_st', 'i_ep', 'i_q', 'i_f', 'i_l')
end
local function reindex(tkey, id)
  unindex(tkey, id)
  redis.call('HINCRBY', tkey, 'v', 1)
  local t = redis.call('HMGET', tkey, 'tid', 'owner', 'exp', 'last')
  if t[4] == '0' then return end
  local r = redis.call('HMGET', run_key(t[1], t[4]), 'status', 'ep', 'started', 'finished', 'wake')
  if not r[1] then return end
  redis.call('ZADD', P .. 'started', r[3], id)
  redis.call('ZADD', P .. 'started:' .. r[1], r[3], id)
  redis.call('ZADD', P .. 'started:e:' .. r[2], r[3], id)
  redis.call('HSET', tkey, 'i_st', r[1], 'i_ep', r[2])
  local due = r[1] == 'running' or (r[1] == 'interrupted' and r[5])  -- work a worker may hold, or be owed
  if t[2] and due then
    local k = P .. 'leased:' .. r[2]
    redis.call('ZADD', k, t[3], id)
    redis.call('HSET', tkey, 'i_l', k)
  end
  if r[4] then
    local k = P .. 'fin:' .. r[1]
    redis.call('ZADD', k, r[4], id)
    redis.call('HSET', tkey, 'i_f', k)
  end
  if due and not t[2] then
    local k = P .. 'queue:' .. r[2]
    redis.call('ZADD', k, r[5] or '0', id)
    redis.call('HSET', tkey, 'i_q', k)
  end
end
local function push(cmd, key, from, to)
  for i = from, to, 1000 do redis.call(cmd, key, unpack(ARGV, i, math.min(i + 999, to))) end
end
local function opt(x) if string.sub(x, 1, 1) == 'b' then return string.sub(x, 2) end return nil end
"""

MIGRATE = r"""
local found = tonumber(redis.call('HGET', P .. 'meta', 'schema') or '0')
if found == 0 and ARGV[3] ~= '1' then redis.call('HSET', P .. 'meta', 'schema', ARGV[2]) end
return found
"""

# A thread as it is now: {now, thread, latest run} (an unknown thread: {now}).
READ = r"""
local now = fmt(clock())
local t = redis.call('HGETALL', P .. 't:' .. ARGV[2])
if #t == 0 then return {now} end
local h = redis.call('HMGET', P .. 't:' .. ARGV[2], 'tid', 'last')
local r = {}
if h[2] ~= '0' then r = redis.call('HGETALL', run_key(h[1], h[2])) end
return {now, t, r}
"""

# The claim its caller decided on, if the thread is still as the caller read it (version ARGV[3], '' for absent).
CLAIM = r"""
local id = ARGV[2]
local tkey = P .. 't:' .. id
local seen = version(tkey)
if seen ~= ARGV[3] then return {'retry'} end
local now = clock()
if seen == '' then
  redis.call('HSET', tkey, 'id', id, 'tid', redis.call('INCR', P .. 'tids'), 'fence', 0, 'last', 0, 'v', 0)
  local nonce = opt(ARGV[6])
  if nonce then redis.call('HSET', tkey, 'nonce', nonce) end
end
local h = redis.call('HMGET', tkey, 'tid', 'last')
local tid, last = h[1], h[2]
local run = {}
if last ~= '0' then run = redis.call('HGETALL', run_key(tid, last)) end
redis.call('HINCRBY', tkey, 'fence', 1)
redis.call('HSET', tkey, 'owner', ARGV[4], 'exp', fmt(now + tonumber(ARGV[5])))
if ARGV[7] == '1' then
  redis.call('HSET', run_key(tid, last), 'status', 'running', 'rec', '0')
  redis.call('HDEL', run_key(tid, last), 'wake')
end
if ARGV[8] ~= '' then
  local rk = run_key(tid, ARGV[8])
  redis.call('DEL', rk)
  redis.call('HSET', rk, 'id', ARGV[8], 'ep', ARGV[9], 'status', 'running', 'input', ARGV[10],
    'started', fmt(now), 'rec', '0')
  local stamp = opt(ARGV[11])
  if stamp then redis.call('HSET', rk, 'stamp', stamp) end
  if last ~= '0' then
    local save = redis.call('HGET', run_key(tid, last), 'save')
    if save then redis.call('HSET', rk, 'prev', save) end
  end
  redis.call('HSET', tkey, 'last', ARGV[8])
  run = redis.call('HGETALL', rk)
end
reindex(tkey, id)
return {'ok', fmt(now), redis.call('HGETALL', tkey), run}
"""

RENEW = r"""
local tkey = P .. 't:' .. ARGV[2]
if not held(tkey, ARGV[3], ARGV[4], ARGV[5]) then return 0 end
local exp = fmt(clock() + tonumber(ARGV[6]))
redis.call('HSET', tkey, 'exp', exp)
redis.call('HINCRBY', tkey, 'v', 1)
local leased = redis.call('HGET', tkey, 'i_l')
if leased then redis.call('ZADD', leased, exp, ARGV[2]) end
return 1
"""

# A run let go unfinished (a submit, mostly) is work for a worker: tell the idle ones.
RELEASE = r"""
local tkey = P .. 't:' .. ARGV[2]
if not held(tkey, ARGV[3], ARGV[4], ARGV[5]) then return 0 end
redis.call('HDEL', tkey, 'owner', 'exp')
reindex(tkey, ARGV[2])
if redis.call('HGET', tkey, 'i_q') then redis.call('PUBLISH', P .. 'work', '') end
return 1
"""

# ARGV: 2 thread id, 3 tid, 4 owner, 5 fence, 6 run, 7 n, then n slots, then n encoded rows. The hot path (one
# row per task): it runs without the prelude, and one row's slot is claimed by SADD's own answer.
APPEND = r"""
local P = ARGV[1]
local h = redis.call('HMGET', P .. 't:' .. ARGV[2], 'tid', 'owner', 'fence')
if h[1] ~= ARGV[3] or h[2] ~= ARGV[4] or h[3] ~= ARGV[5] then return 'lost' end
local where = ARGV[3] .. ':' .. ARGV[6]
local slots, n = P .. 's:' .. where, tonumber(ARGV[7])
if n == 1 then
  if redis.call('SADD', slots, ARGV[8]) == 0 then return 'dup' end
  redis.call('RPUSH', P .. 'j:' .. where, ARGV[9])
  return 'ok'
end
local seen = {}
for i = 8, 7 + n do
  if seen[ARGV[i]] or redis.call('SISMEMBER', slots, ARGV[i]) == 1 then return 'dup' end
  seen[ARGV[i]] = true
end
local journal = P .. 'j:' .. where
for i = 8, 7 + n, 1000 do redis.call('SADD', slots, unpack(ARGV, i, math.min(i + 999, 7 + n))) end
for i = 8 + n, 7 + 2 * n, 1000 do redis.call('RPUSH', journal, unpack(ARGV, i, math.min(i + 999, 7 + 2 * n))) end
return 'ok'
"""

# ARGV: 2 thread id, 3 tid, 4 owner, 5 fence, 6 run, 7 forget prior ('1'), 8 n, n field/value pairs, fields to clear.
FINISH = r"""
local tkey = P .. 't:' .. ARGV[2]
if not held(tkey, ARGV[3], ARGV[4], ARGV[5]) then return 'lost' end
local rk = run_key(ARGV[3], ARGV[6])
local n, i = tonumber(ARGV[8]), 9
for _ = 1, n do
  redis.call('HSET', rk, ARGV[i], ARGV[i + 1])
  i = i + 2
end
if i <= #ARGV then redis.call('HDEL', rk, unpack(ARGV, i, #ARGV)) end
redis.call('HSET', rk, 'finished', fmt(clock()))
if ARGV[7] == '1' then
  for back = 1, 2 do
    local k = tonumber(ARGV[6]) - back
    if k > 0 then redis.call('HDEL', run_key(ARGV[3], k), 'output', 'save', 'prev') end
  end
  redis.call('HDEL', rk, 'prev')
end
redis.call('HDEL', tkey, 'owner', 'exp')
reindex(tkey, ARGV[2])
if redis.call('HGET', tkey, 'i_q') then redis.call('PUBLISH', P .. 'work', '') end
return 'ok'
"""

# The cancel its caller decided on. ARGV: 2 thread id, 3 version, 4 run, 5 status, 6 error, 7 error text (opt).
CANCEL = r"""
local tkey = P .. 't:' .. ARGV[2]
if version(tkey) ~= ARGV[3] then return 'retry' end
local rk = run_key(redis.call('HGET', tkey, 'tid'), ARGV[4])
redis.call('HDEL', rk, 'error', 'etext', 'wake')
redis.call('HSET', rk, 'status', ARGV[5], 'finished', fmt(clock()))
local err, text = opt(ARGV[6]), opt(ARGV[7])
if err then redis.call('HSET', rk, 'error', err) end
if text then redis.call('HSET', rk, 'etext', text) end
redis.call('HDEL', tkey, 'owner', 'exp')
redis.call('HINCRBY', tkey, 'fence', 1)
reindex(tkey, ARGV[2])
return 'ok'
"""

# The delete its caller decided on (ARGV: 2 thread id, 3 version).
DELETE = r"""
local tkey = P .. 't:' .. ARGV[2]
if version(tkey) ~= ARGV[3] then return 'retry' end
local h = redis.call('HMGET', tkey, 'tid', 'last')
for n = 1, tonumber(h[2]) do
  local where = h[1] .. ':' .. n
  redis.call('DEL', P .. 'r:' .. where, P .. 'j:' .. where, P .. 's:' .. where)
end
unindex(tkey, ARGV[2])
redis.call('DEL', tkey)
return 'ok'
"""

# ARGV: 2 thread id, 3 nonce (opt), 4 runs, then per run: its number, n, n field/value pairs; then rows: run, slot, row.
IMPORT = r"""
local id = ARGV[2]
local tkey = P .. 't:' .. id
if redis.call('EXISTS', tkey) == 1 then return 'exists' end
local tid = redis.call('INCR', P .. 'tids')
local last, i = 0, 5
for _ = 1, tonumber(ARGV[4]) do
  local run, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    redis.call('HSET', run_key(tid, run), ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  if run > last then last = run end
end
for j = i, #ARGV, 3 do
  local where = tid .. ':' .. ARGV[j]
  redis.call('SADD', P .. 's:' .. where, ARGV[j + 1])
  redis.call('RPUSH', P .. 'j:' .. where, ARGV[j + 2])
end
redis.call('HSET', tkey, 'id', id, 'tid', tid, 'fence', 0, 'last', last, 'v', 0)
local nonce = opt(ARGV[3])
if nonce then redis.call('HSET', tkey, 'nonce', nonce) end
reindex(tkey, id)
return 'ok'
"""

# The rewrite its caller decided on. ARGV: 2 thread id, 3 version, 4 nonce, 5 runs, per run: number, n, n
# field/value pairs, m, m fields to clear; then per journal list: run, n, n rows (the list's new contents: as many
# rows as it had when they were read, else an append slipped in, which an executor whose lease ran out unnoticed
# can still make, and the rewrite would drop it).
REWRITE = r"""
local tkey = P .. 't:' .. ARGV[2]
if version(tkey) ~= ARGV[3] then return 'retry' end
local tid = redis.call('HGET', tkey, 'tid')
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  i = i + 2 + 2 * tonumber(ARGV[i + 1])
  i = i + 1 + tonumber(ARGV[i])
end
local journals = i
while i <= #ARGV do
  if redis.call('LLEN', P .. 'j:' .. tid .. ':' .. ARGV[i]) ~= tonumber(ARGV[i + 1]) then return 'retry' end
  i = i + 2 + tonumber(ARGV[i + 1])
end
redis.call('HSET', tkey, 'nonce', ARGV[4])
redis.call('HINCRBY', tkey, 'v', 1)
i = 6
for _ = 1, tonumber(ARGV[5]) do
  local rk = run_key(tid, ARGV[i])
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    redis.call('HSET', rk, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  local m = tonumber(ARGV[i])
  if m > 0 then redis.call('HDEL', rk, unpack(ARGV, i + 1, i + m)) end
  i = i + 1 + m
end
i = journals
while i <= #ARGV do
  local key, n = P .. 'j:' .. tid .. ':' .. ARGV[i], tonumber(ARGV[i + 1])
  redis.call('DEL', key)
  if n > 0 then push('RPUSH', key, i + 2, i + 1 + n) end
  i = i + 2 + n
end
return 'ok'
"""

# ARGV: 2 owner, 3 lease seconds, 4 due (the caller's clock), 5 limit, 6.. entrypoints.
# Returns {now, thread, run, thread, run, ...}. Runs left for a worker first, then runs whose executor died.
RESERVE = r"""
local now = clock()
local exp, limit, due = fmt(now + tonumber(ARGV[3])), tonumber(ARGV[5]), tonumber(ARGV[4])
local out = {fmt(now)}
local taken = 0
local function take(id, recovered)
  local tkey = P .. 't:' .. id
  redis.call('HINCRBY', tkey, 'fence', 1)
  redis.call('HSET', tkey, 'owner', ARGV[2], 'exp', exp)
  local h = redis.call('HMGET', tkey, 'tid', 'last')
  local rk = run_key(h[1], h[2])
  if recovered then redis.call('HINCRBY', rk, 'rec', 1) end
  reindex(tkey, id)
  out[#out + 1] = redis.call('HGETALL', tkey)
  out[#out + 1] = redis.call('HGETALL', rk)
  taken = taken + 1
end
for i = 6, #ARGV do
  if taken >= limit then break end
  local ids = redis.call('ZRANGEBYSCORE', P .. 'queue:' .. ARGV[i], '-inf', ARGV[4], 'LIMIT', 0, limit - taken)
  for _, id in ipairs(ids) do take(id, false) end
end
for i = 6, #ARGV do
  -- Every entry here is a running run of this entrypoint (or a due paused one); one sleeping past ``due`` is skipped.
  local offset = 0
  while taken < limit do
    local ids = redis.call('ZRANGEBYSCORE', P .. 'leased:' .. ARGV[i], '-inf', fmt(now), 'LIMIT', offset, limit - taken)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      local h = redis.call('HMGET', P .. 't:' .. id, 'tid', 'last')
      local wake = redis.call('HGET', run_key(h[1], h[2]), 'wake')
      if not wake or tonumber(wake) <= due then take(id, true) else offset = offset + 1 end
    end
  end
end
return out
"""

# ARGV: 2 status, 3 entrypoint, 4 since, 5 until, 6 after's start, 7 after's id, 8 limit ('' for no filter).
# Returns {now, then per thread: id, owner, exp, run, ep, status, started, finished, wake, rec, error text}.
LIST = r"""
-- The index that holds fewest others: by status, by entrypoint (the other filter is checked row by row), or all.
local key = P .. 'started'
if ARGV[2] ~= '' then key = P .. 'started:' .. ARGV[2] end
local by_ep = P .. 'started:e:' .. ARGV[3]
if ARGV[3] ~= '' and (ARGV[2] == '' or redis.call('ZCARD', by_ep) < redis.call('ZCARD', key)) then key = by_ep end
local hi = ARGV[5] == '' and '+inf' or '(' .. ARGV[5]
if ARGV[6] ~= '' and (ARGV[5] == '' or tonumber(ARGV[6]) < tonumber(ARGV[5])) then hi = ARGV[6] end
local lo = ARGV[4] == '' and '-inf' or ARGV[4]
local after = ARGV[6] ~= '' and tonumber(ARGV[6])
local out, found, offset, limit = {fmt(clock())}, 0, 0, tonumber(ARGV[8])
while found < limit do
  local batch = redis.call('ZREVRANGEBYSCORE', key, hi, lo, 'WITHSCORES', 'LIMIT', offset, 200)
  if #batch == 0 then break end
  offset = offset + #batch / 2
  for i = 1, #batch, 2 do
    local id = batch[i]
    local tkey = P .. 't:' .. id
    local t = redis.call('HMGET', tkey, 'owner', 'exp', 'tid', 'last', 'i_ep', 'i_st')
    local skip = (after and tonumber(batch[i + 1]) == after and not before(id, ARGV[7]))
      or (ARGV[3] ~= '' and t[5] ~= ARGV[3]) or (ARGV[2] ~= '' and t[6] ~= ARGV[2])
    if not skip and found < limit then
      local r = redis.call('HMGET', run_key(t[3], t[4]), 'ep', 'status', 'started', 'finished', 'wake', 'rec', 'etext')
      out[#out + 1] = {id, t[1], t[2], t[4], r[1], r[2], r[3], r[4], r[5], r[6], r[7]}
      found = found + 1
    end
  end
end
return out
"""

# Every run of a thread: {run, run, ...} (an unknown thread: {}).
RUNS = r"""
local h = redis.call('HMGET', P .. 't:' .. ARGV[2], 'tid', 'last')
local out = {}
if not h[1] then return out end
for n = 1, tonumber(h[2]) do
  local r = redis.call('HGETALL', run_key(h[1], n))
  if #r > 0 then out[#out + 1] = r end
end
return out
"""

# The scripts that define what they need themselves (the rest run after `PRELUDE`).
STANDALONE = {"append"}

SCRIPTS = {
    "migrate": MIGRATE,
    "read": READ,
    "claim": CLAIM,
    "renew": RENEW,
    "release": RELEASE,
    "append": APPEND,
    "finish": FINISH,
    "cancel": CANCEL,
    "delete": DELETE,
    "import": IMPORT,
    "rewrite": REWRITE,
    "reserve": RESERVE,
    "list": LIST,
    "runs": RUNS,
}
