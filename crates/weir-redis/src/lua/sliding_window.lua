-- Sliding-window counter (the previous window weighted by its open overlap, rounded down). Per quota: rate,
-- period (us), unused. State: "<window> <count> <previous count> <period us>". A quota applied
-- at run time with another period counts the old windows' units in the new period's window
-- that holds the old current window's start: a change never frees room.
local function load(key, P)
  local w, el = window(P)
  local v = redis.call('GET', key)
  local cur, prev = 0, 0
  if v then
    local a, b, c, d = string.match(v, '^(-?%d+) (%d+) (%d+) ?(%d*)$')
    local sw = tonumber(a)
    if d ~= '' and tonumber(d) ~= P then sw = math.floor(sw * tonumber(d) / P) end
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
  -- The sliding window is (now - p, now]: the previous window overlaps it by p - 1 - el whole
  -- nanoseconds, and its count is taken as spread evenly over them, rounded down.
  local used = math.floor(prev * (p - 1 - el) / p) + cur
  local remaining = math.max(rate - used, 0)
  local reset = rest(cur, prev)
  if cost > rate then
    return {2, 0, remaining, reset, 0}
  end
  if used + cost <= rate then
    cur = cur + cost
    local r = rest(cur, prev)
    local state = fmt(w) .. ' ' .. fmt(cur) .. ' ' .. fmt(prev) .. ' ' .. fmt(P)
    return {1, 0, remaining - cost, r, 0, state, r}
  end
  -- When it fits: later in this window as the previous window's weight fades, or in the next
  -- one, where this window's count is the weighted one. A weighted count
  -- floor(n x (p - 1 - e) / p) is at most `room` from e = p - ceil((room + 1) x p / n).
  local function fits_from(room, n)
    return math.max(p - math.ceil((room + 1) * p / n), 0)
  end
  local at
  if cur + cost <= rate then
    at = fits_from(rate - cost - cur, prev)
  else
    at = p + fits_from(rate - cost, cur)
  end
  return {0, 0, remaining, reset, math.max(at - el, 1)}
end

local function release(key, rate, P, _)
  local w, el, p, cur, prev, rest = load(key, P)
  cur = math.max(cur - cost, 0)
  keep(key, fmt(w) .. ' ' .. fmt(cur) .. ' ' .. fmt(prev) .. ' ' .. fmt(P), rest(cur, prev))
end
