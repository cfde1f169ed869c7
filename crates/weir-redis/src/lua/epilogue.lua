-- Shared epilogue: check every quota, then charge every quota (or give back, for a cancel).
-- Reply: {admitted, policy index, wait ns, remaining, reset ns, retry-after ns}; admitted is
-- 1 (admitted), 0 (refused) or 2 (never admissible: the cost is above what the quota can ever
-- admit, its burst or, for the windows, its rate; no retry-after). A reservation (admitted
-- with a wait) adds the value it wrote in each quota's key: a cancel passes them back after
-- the quotas' numbers (ARGV[5 + 3n ..]), and GCRA and the token bucket give back only in a key
-- that still holds it.
local n = #KEYS
local function args(i)
  local b = 4 + (i - 1) * 3
  return tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
end
-- A read (ARGV[4] == "2", an admin's): every quota's verdict on a request of `cost`, four
-- numbers per quota {admitted, remaining, reset ns, retry-after ns}; nothing is written.
if ARGV[4] == '2' then
  local reply = {}
  for i = 1, n do
    local a, b, c = args(i)
    local v = step(KEYS[i], a, b, c)
    local k = (i - 1) * 4
    reply[k + 1] = v[1]
    reply[k + 2] = v[3]
    reply[k + 3] = v[4]
    reply[k + 4] = v[5]
  end
  return reply
end
if ARGV[4] ~= '1' then
  for i = 1, n do
    local a, b, c = args(i)
    release(KEYS[i], a, b, c, ARGV[4 + 3 * n + i])
  end
  return {}
end
local verdicts = {}
for i = 1, n do
  local a, b, c = args(i)
  local v = step(KEYS[i], a, b, c)
  if v[1] ~= 1 then
    return {v[1], i - 1, 0, v[3], v[4], v[5]}
  end
  verdicts[i] = v
end
local report, wait = 1, 0
for i = 1, n do
  local v = verdicts[i]
  keep(KEYS[i], v[6], v[7])
  if v[2] > wait then wait = v[2] end
  if v[3] < verdicts[report][3] then report = i end
end
local r = verdicts[report]
local reply = {1, report - 1, wait, r[3], r[4], 0}
if wait > 0 then
  for i = 1, n do reply[6 + i] = verdicts[i][6] end
end
return reply
