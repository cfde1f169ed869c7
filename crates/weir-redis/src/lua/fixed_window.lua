-- Fixed window aligned on the Unix epoch. Per quota: rate, period (us), unused.
-- State: "<window> <count> <period us>". A quota applied at run time with another period
-- counts the old window's units in the new period's window that holds the old one's start: a
-- change never frees room.
local function load(key, P)
  local w, el = window(P)
  local v = redis.call('GET', key)
  local cur = 0
  if v then
    local a, b, c = string.match(v, '^(-?%d+) (%d+) ?(%d*)$')
    local sw = tonumber(a)
    if c ~= '' and tonumber(c) ~= P then sw = math.floor(sw * tonumber(c) / P) end
    if sw == w then cur = tonumber(b) end
  end
  return w, el, cur
end

local function step(key, rate, P, _)
  local w, el, cur = load(key, P)
  local until_end = P * 1000 - el
  if cost > rate then
    return {2, 0, math.max(rate - cur, 0), until_end, 0}
  end
  if cur + cost > rate then
    return {0, 0, math.max(rate - cur, 0), until_end, until_end}
  end
  cur = cur + cost
  return {1, 0, rate - cur, until_end, 0, fmt(w) .. ' ' .. fmt(cur) .. ' ' .. fmt(P), until_end}
end

local function release(key, rate, P, _)
  local w, el, cur = load(key, P)
  cur = math.max(cur - cost, 0)
  keep(key, fmt(w) .. ' ' .. fmt(cur), P * 1000 - el)
end
