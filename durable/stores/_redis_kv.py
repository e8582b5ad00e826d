"""`RedisStore`'s key-value rows (``Memory``, ``Cache``): the contract of `_base`'s "Key-value rows", on Redis.

Keys under the prefix ``P``: ``P kv:ns`` (namespaces by the order they were opened), ``P kv:lex`` (the same, all at
score 0, so a prefix is a ``ZRANGEBYLEX`` range: Redis orders them byte by byte, which for UTF-8 is code point order),
per namespace ``P kv:k:<ns>`` (its keys by insertion), ``P kv:v:<ns>`` (values) and ``P kv:m:<ns>`` (times:
``created|updated|expires|ttl`` as text, the last two empty without a ttl), and ``P kv:exp`` (rows with a ttl by
expiry, for the sweep). Times are the server's (`TIME`), as for leases.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ._base import KV_SWEEP, KVRow, kv_prefix_end
from ._redis_lua import PRELUDE
from ._redis_ops import Call, Op

KV_PRELUDE = (
    PRELUDE
    + r"""
local function kvk(ns, part) return P .. 'kv:' .. part .. ':' .. ns end
local function exp_member(ns, key) return #ns .. ':' .. ns .. key end
local function meta(ns, key)
  local m = redis.call('HGET', kvk(ns, 'm'), key)
  if not m then return nil end
  local c, u, e, t = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return {created = c, updated = u, expires = e, ttl = t}
end
local function live(m, now) return m and (m.expires == '' or tonumber(m.expires) > now) end
local function set_meta(ns, key, m)
  redis.call('HSET', kvk(ns, 'm'), key, m.created .. '|' .. m.updated .. '|' .. m.expires .. '|' .. m.ttl)
  if m.expires == '' then redis.call('ZREM', P .. 'kv:exp', exp_member(ns, key))
  else redis.call('ZADD', P .. 'kv:exp', m.expires, exp_member(ns, key)) end
end
local function drop(ns, key)
  if redis.call('ZREM', kvk(ns, 'k'), key) == 0 then return end
  redis.call('HDEL', kvk(ns, 'v'), key)
  redis.call('HDEL', kvk(ns, 'm'), key)
  redis.call('ZREM', P .. 'kv:exp', exp_member(ns, key))
  if redis.call('ZCARD', kvk(ns, 'k')) == 0 then
    redis.call('ZREM', P .. 'kv:ns', ns)
    redis.call('ZREM', P .. 'kv:lex', ns)
  end
end
local function refresh(ns, key, m, now)
  if m.ttl ~= '' then
    m.expires = fmt(now + tonumber(m.ttl))
    set_meta(ns, key, m)
  end
end
local function namespaces(prefix, stop)
  local lo = '[' .. prefix
  local hi = stop == '' and '+' or '(' .. stop
  return redis.call('ZRANGEBYLEX', P .. 'kv:lex', lo, hi)
end
local function row(ns, key, m)
  return {ns, key, redis.call('HGET', kvk(ns, 'v'), key), m.created, m.updated, m.expires, m.ttl}
end
"""
)

# ARGV: 2 namespace, 3 key, 4 value, 5 ttl ('' for none), 6 rows to sweep.
PUT = r"""
local ns, key = ARGV[2], ARGV[3]
local now = clock()
for _, member in ipairs(redis.call('ZRANGEBYSCORE', P .. 'kv:exp', '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[6]))) do
  local n, rest = string.match(member, '^(%d+):(.*)$')
  n = tonumber(n)
  drop(string.sub(rest, 1, n), string.sub(rest, n + 1))
end
local m = meta(ns, key)
local expires = ARGV[5] == '' and '' or fmt(now + tonumber(ARGV[5]))
if live(m, now) then
  m.updated, m.expires, m.ttl = fmt(now), expires, ARGV[5]
else
  if m then drop(ns, key) end
  if not redis.call('ZSCORE', P .. 'kv:ns', ns) then
    redis.call('ZADD', P .. 'kv:ns', redis.call('INCR', P .. 'kv:seq'), ns)
    redis.call('ZADD', P .. 'kv:lex', 0, ns)
  end
  redis.call('ZADD', kvk(ns, 'k'), redis.call('INCR', P .. 'kv:seq'), key)
  m = {created = fmt(now), updated = fmt(now), expires = expires, ttl = ARGV[5]}
end
redis.call('HSET', kvk(ns, 'v'), key, ARGV[4])
set_meta(ns, key, m)
return 1
"""

# ARGV: 2 refresh ('1'), then namespace/key pairs. Returns {now, row or false, ...}.
GET = r"""
local now = clock()
local out = {fmt(now)}
for i = 3, #ARGV, 2 do
  local ns, key = ARGV[i], ARGV[i + 1]
  local m = meta(ns, key)
  if live(m, now) then
    if ARGV[2] == '1' then refresh(ns, key, m, now) end
    out[#out + 1] = row(ns, key, m)
  else
    out[#out + 1] = false
  end
end
return out
"""

DELETE = r"""
drop(ARGV[2], ARGV[3])
return 1
"""

# ARGV: 2 prefix, 3 its end ('' for none), 4 refresh. Namespaces in the order they were opened, keys by insertion.
SEARCH = r"""
local now = clock()
local out = {fmt(now)}
local found = namespaces(ARGV[2], ARGV[3])
local order = {}
for _, ns in ipairs(found) do order[ns] = tonumber(redis.call('ZSCORE', P .. 'kv:ns', ns)) end
table.sort(found, function(a, b) return order[a] < order[b] end)
for _, ns in ipairs(found) do
  for _, key in ipairs(redis.call('ZRANGE', kvk(ns, 'k'), 0, -1)) do
    local m = meta(ns, key)
    if live(m, now) then
      if ARGV[4] == '1' then refresh(ns, key, m, now) end
      out[#out + 1] = row(ns, key, m)
    end
  end
end
return out
"""

NAMESPACES = r"""
local now = clock()
local out = {}
for _, ns in ipairs(namespaces(ARGV[2], ARGV[3])) do
  for _, key in ipairs(redis.call('ZRANGE', kvk(ns, 'k'), 0, -1)) do
    if live(meta(ns, key), now) then
      out[#out + 1] = ns
      break
    end
  end
end
return out
"""

CLEAR = r"""
local now = clock()
local count = 0
for _, ns in ipairs(namespaces(ARGV[2], ARGV[3])) do
  for _, key in ipairs(redis.call('ZRANGE', kvk(ns, 'k'), 0, -1)) do
    if live(meta(ns, key), now) then count = count + 1 end
    redis.call('ZREM', P .. 'kv:exp', exp_member(ns, key))
  end
  redis.call('DEL', kvk(ns, 'k'), kvk(ns, 'v'), kvk(ns, 'm'))
  redis.call('ZREM', P .. 'kv:ns', ns)
  redis.call('ZREM', P .. 'kv:lex', ns)
end
return count
"""

SCRIPTS = {
    "kv_put": PUT,
    "kv_get": GET,
    "kv_delete": DELETE,
    "kv_search": SEARCH,
    "kv_namespaces": NAMESPACES,
    "kv_clear": CLEAR,
}


def _bound(prefix: str) -> tuple[str, str]:
    return prefix, kv_prefix_end(prefix) or ""


def _row(reply: Sequence[Any], now: float) -> KVRow:
    ns, key, value, created, updated, expires, ttl = reply
    return KVRow(
        ns.decode(),
        key.decode(),
        value,
        float(created),
        float(updated),
        None if not expires else time.time() + float(expires) - now,
        None if not ttl else float(ttl),
    )


def put(namespace: str, key: str, value: bytes, ttl_seconds: float | None) -> Op[None]:
    ttl = "" if ttl_seconds is None else repr(float(ttl_seconds))
    yield Call("kv_put", (namespace, key, value, ttl, KV_SWEEP))


def get(items: Sequence[tuple[str, str]], refresh: bool) -> Op[list[KVRow | None]]:
    reply = yield Call("kv_get", ("1" if refresh else "", *(x for item in items for x in item)))
    now = float(reply[0])
    return [None if r is None else _row(r, now) for r in reply[1:]]


def delete(namespace: str, key: str) -> Op[None]:
    yield Call("kv_delete", (namespace, key))


def search(prefix: str, refresh: bool) -> Op[list[KVRow]]:
    reply = yield Call("kv_search", (*_bound(prefix), "1" if refresh else ""))
    now = float(reply[0])
    return [_row(r, now) for r in reply[1:]]


def namespaces(prefix: str) -> Op[list[str]]:
    reply = yield Call("kv_namespaces", _bound(prefix))
    return [ns.decode() for ns in reply]


def clear(prefix: str) -> Op[int]:
    count = yield Call("kv_clear", _bound(prefix))
    return int(count)
