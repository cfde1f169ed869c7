-- Sliding-window counter (the previous window weighted by its overlap). Per quota: rate,
-- period (us), unused. State: "<window> <count> <previous count>".
local function load(key, P)
  local w, el = window(P)
  local v = redis.call('GET', key)
  local cur, prev = 0, 0
  if v then
    local a, b, c = string.match(v, '^(-?%d+) (%d+) (%d+)$')
    local sw = tonumber(a)
    if sw == w then
      cur = tonumber(b)
      prev = tonumber(c)
    elseif sw + 1 == w then
      prev = tonumber(b)
    end
  end
  local p = P * 1000
  local function rest(cu, pr)
    if cu > 0 then return 2 * p - el elseif pr > 0 then return p - el else return 0 end
  end
  return w, el, p, cur, prev, rest
end

local function step(key, rate, P, _)
  local w, el, p, cur, prev, rest = load(key, P)
  local used = prev * (p - el) + cur * p
  local remaining = math.floor(math.max(rate * p - used, 0) / p)
  local reset = rest(cur, prev)
  if cost > rate then
    return {0, 0, remaining, reset, p}
  end
  if used + cost * p <= rate * p then
    cur = cur + cost
    used = used + cost * p
    local r = rest(cur, prev)
    local state = fmt(w) .. ' ' .. fmt(cur) .. ' ' .. fmt(prev)
    return {1, 0, math.floor(math.max(rate * p - used, 0) / p), r, 0, state, r}
  end
  local at
  if cur + cost <= rate then
    at = p - math.floor((rate - cost - cur) * p / prev)
  else
    local e = 0
    if cur > 0 then e = p - math.min(math.floor((rate - cost) * p / cur), p) end
    at = p + e
  end
  return {0, 0, remaining, reset, math.max(at - el, 1)}
end

local function release(key, rate, P, _)
  local w, el, p, cur, prev, rest = load(key, P)
  cur = math.max(cur - cost, 0)
  keep(key, fmt(w) .. ' ' .. fmt(cur) .. ' ' .. fmt(prev), rest(cur, prev))
end
