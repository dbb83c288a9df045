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
