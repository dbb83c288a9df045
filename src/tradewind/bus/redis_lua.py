"""Server-side scripts of the Redis bus.

A script runs atomically on the server: nothing (an ack, a new group, a
delivery) can happen between what it reads and what it writes, which a
client-side read-then-write could not promise without WATCH and retries.
"""

from __future__ import annotations

from typing import Final

TRIM_CONSUMED: Final = """
-- KEYS[1]: a stream. ARGV[1]: keep entries younger than this many ms (0: none).
-- ARGV[2..]: groups that must exist, or nothing is trimmed.
-- Trims below the oldest entry any group still needs and returns how many went.
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', key)
if #groups == 0 then return 0 end

-- Stream ids compared as decimal strings: exact for any ms and seq, unlike
-- Lua numbers (doubles) beyond 2^53. Redis writes ids without leading zeros.
local function split(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms, seq
end
local function num_lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function lt(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  if am ~= bm then return num_lt(am, bm) end
  return num_lt(as, bs)
end

local present = {}
local floor = nil
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  present[f['name']] = true
  local need
  if tonumber(f['pending']) > 0 then
    -- Its oldest unacknowledged entry must survive: a crashed consumer's
    -- successor claims it from the stream.
    need = redis.call('XPENDING', key, f['name'])[2]
  else
    -- Everything up to its last delivered entry is acknowledged.
    local last = f['last-delivered-id']
    local ms, seq = split(last)
    if #seq <= 15 then
      need = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
    else
      need = last
    end
  end
  if floor == nil or lt(need, floor) then floor = need end
end
for i = 2, #ARGV do
  if not present[ARGV[i]] then return 0 end
end

local keep_ms = tonumber(ARGV[1])
if keep_ms > 0 then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local cut = string.format('%.0f', now_ms - keep_ms) .. '-0'
  if now_ms - keep_ms < 0 then return 0 end
  if lt(cut, floor) then floor = cut end
end
return redis.call('XTRIM', key, 'MINID', floor)
"""

COMMIT: Final = """
-- One commit in one round trip, atomically and exactly once.
-- KEYS[1]: the transaction's token key; KEYS[2..]: every other key it touches.
-- ARGV[1]: token TTL (ms); ARGV[2]: N, the number of reads to make after the
-- commit (0: none), then N read specs, each: R, group, consumer, count, then R
-- key indexes (XREADGROUP GROUP group consumer COUNT count STREAMS … > in the
-- same round trip: the committing consumer's next batch, or a hand-off to a
-- downstream consumer of what this commit published; a script cannot BLOCK, so
-- an empty read is answered nil, and a read that fails (NOGROUP) answers nil
-- instead of failing a commit already applied); then F, the number of fence
-- pairs, and F pairs (key index, value the key must hold); then operations up
-- to the end:
--   A idx maxlen payload      XADD KEYS[idx] [MAXLEN ~ maxlen] * e payload (maxlen 0: none)
--   S idx px value            SET KEYS[idx] value [PX px] (px 0: no TTL)
--   K idx group n id1 .. idn  XACK KEYS[idx] group id1 .. idn
--   R idx member              SADD KEYS[idx] member (the stream registry)
--   O gidx px idx payload     XADD KEYS[idx] * e payload only if SET KEYS[gidx] NX PX px
--                             succeeds (a dead letter several groups find, added once)
-- Returns 1 when applied, 0 when the token shows it was applied before (a retry
-- after a lost reply), -1 when a fence key holds another value (nothing applied);
-- when N > 0, {that status, read 1, …, read N}, and the reads happen only on 1.
local i = 3
local nread = tonumber(ARGV[2])
local reads = {}
for s = 1, nread do
  local r = tonumber(ARGV[i])
  local spec = {'XREADGROUP', 'GROUP', ARGV[i + 1], ARGV[i + 2], 'COUNT', ARGV[i + 3], 'STREAMS'}
  for k = 1, r do
    spec[7 + k] = KEYS[tonumber(ARGV[i + 3 + k])]
    spec[7 + r + k] = '>'
  end
  reads[s] = spec
  i = i + 4 + r
end
local function done(status)
  if nread == 0 then return status end
  local out = {status}
  for s = 1, nread do
    local got = false
    if status == 1 then
      got = redis.pcall(unpack(reads[s]))
      if type(got) == 'table' and got.err then got = false end
    end
    out[s + 1] = got
  end
  return out
end
if redis.call('EXISTS', KEYS[1]) == 1 then return done(0) end
local nfence = tonumber(ARGV[i])
i = i + 1
for _ = 1, nfence do
  if redis.call('GET', KEYS[tonumber(ARGV[i])]) ~= ARGV[i + 1] then return done(-1) end
  i = i + 2
end
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  if op == 'A' then
    if ARGV[i + 2] == '0' then
      redis.call('XADD', key, '*', 'e', ARGV[i + 3])
    else
      redis.call('XADD', key, 'MAXLEN', '~', ARGV[i + 2], '*', 'e', ARGV[i + 3])
    end
    i = i + 4
  elseif op == 'S' then
    if ARGV[i + 2] == '0' then
      redis.call('SET', key, ARGV[i + 3])
    else
      redis.call('SET', key, ARGV[i + 3], 'PX', ARGV[i + 2])
    end
    i = i + 4
  elseif op == 'K' then
    local group = ARGV[i + 2]
    local last = i + 3 + tonumber(ARGV[i + 3])
    local j = i + 4
    while j <= last do
      -- unpack in slices: Lua's C stack holds a few thousand values at most
      local k = math.min(j + 499, last)
      redis.call('XACK', key, group, unpack(ARGV, j, k))
      j = k + 1
    end
    i = last + 1
  elseif op == 'O' then
    if redis.call('SET', key, '1', 'NX', 'PX', ARGV[i + 2]) then
      redis.call('XADD', KEYS[tonumber(ARGV[i + 3])], '*', 'e', ARGV[i + 4])
    end
    i = i + 5
  elseif op == 'R' then
    redis.call('SADD', key, ARGV[i + 2])
    i = i + 3
  else
    return redis.error_reply('tradewind commit: unknown operation ' .. tostring(op))
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return done(1)
"""
