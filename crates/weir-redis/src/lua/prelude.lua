-- weir-redis: one rate-limit decision, atomic. Shared prelude of every algorithm's script.
-- KEYS: one key per quota of the tier (all in one Cluster slot: they share a hash tag).
-- ARGV[1]: "" to use the server's TIME, or "<seconds> <nanoseconds>" (an explicit time: tests).
-- ARGV[2]: cost; ARGV[3]: longest wait in ns (0: reject mode); ARGV[4]: "1" decide, "0" give back,
-- "2" read (no write).
-- ARGV[5..]: three numbers per quota, meaning per algorithm.
-- Times are kept relative to now, so every number stays below 2^53 (exact in Lua's doubles).
if redis.replicate_commands then pcall(redis.replicate_commands) end
local S, N
if ARGV[1] == '' then
  local t = redis.call('TIME')
  S = tonumber(t[1])
  N = tonumber(t[2]) * 1000
else
  local a, b = string.match(ARGV[1], '^(%d+) (%d+)$')
  S = tonumber(a)
  N = tonumber(b)
end
local US = S * 1000000 + math.floor(N / 1000)
local SUB = N % 1000
local cost = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local function fmt(x)
  return string.format('%.0f', x)
end
-- The index of the window of P microseconds holding now, and the nanoseconds since it began.
local function window(P)
  local w = math.floor(US / P)
  if w * P > US then w = w - 1 end
  return w, (US - w * P) * 1000 + SUB
end
-- An absolute time `rel` nanoseconds from now, as one decimal number of nanoseconds.
local function absolute(rel)
  local total = N + rel
  local s = math.floor(total / 1000000000)
  return fmt(S + s) .. string.format('%09.0f', total - s * 1000000000)
end
-- The nanoseconds from now to an absolute time written by `absolute`.
local function relative(v)
  local ts = tonumber(string.sub(v, 1, -10)) or 0
  local tn = tonumber(string.sub(v, -9)) or 0
  return (ts - S) * 1000000000 + (tn - N)
end
-- Stores `value` until it is at rest, `life` ns from now (rounded up to a millisecond).
local function keep(key, value, life)
  if life <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'PX', fmt(math.ceil(life / 1000000)))
  end
end
