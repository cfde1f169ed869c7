-- Token bucket, refilled `rate` tokens at the end of each period. Per quota: rate, burst,
-- period (us). State: "<tokens> <tick> <period us>", tick the index of the period of the last
-- refill. A quota applied at run time with another period keeps the tokens (at most the new
-- burst), and its last refill is taken at the start of the new period that held the old one's
-- start: refills come at the new period's edges from there.
local function load(key, rate, burst, P)
  local w, el = window(P)
  local v = redis.call('GET', key)
  local tokens, tick = burst, w
  if v then
    local a, b, c = string.match(v, '^(-?%d+) (-?%d+) ?(%d*)$')
    tokens = tonumber(a)
    tick = tonumber(b)
    if c ~= '' and tonumber(c) ~= P then
      tokens = math.min(tokens, burst)
      tick = math.floor(tick * tonumber(c) / P)
    end
    if w > tick then
      tokens = math.min(tokens + (w - tick) * rate, burst)
      tick = w
    end
  end
  -- Nanoseconds from now until the bucket holding `tk` tokens is full.
  local function full_in(tk)
    local missing = burst - tk
    if missing <= 0 then return 0 end
    return math.max((tick - w + math.ceil(missing / rate)) * P * 1000 - el, 0)
  end
  return tokens, tick, w, el, full_in
end

local function step(key, rate, burst, P)
  local tokens, tick, w, el, full_in = load(key, rate, burst, P)
  local reset = full_in(tokens)
  if cost > burst then
    return {2, 0, math.max(tokens, 0), reset, 0}
  end
  if tokens >= cost then
    tokens = tokens - cost
    local r = full_in(tokens)
    return {1, 0, tokens, r, 0, fmt(tokens) .. ' ' .. fmt(tick) .. ' ' .. fmt(P), r}
  end
  local ticks = math.ceil((cost - tokens) / rate)
  local wait = math.max((tick - w + ticks) * P * 1000 - el, 0)
  if wait > max_wait then
    return {0, 0, math.max(tokens, 0), reset, wait}
  end
  tokens = tokens - cost
  local r = full_in(tokens)
  return {1, wait, 0, r, 0, fmt(tokens) .. ' ' .. fmt(tick) .. ' ' .. fmt(P), r}
end

-- Gives a reservation's tokens back only while the key still holds the state that reservation
-- wrote (`booked`): no later request took tokens after it, so giving back is as if it had
-- never come. Otherwise nothing: a later reservation's wait was computed on those tokens.
local function release(key, rate, burst, P, booked)
  local v = redis.call('GET', key)
  if not v or v ~= booked then return end
  local tokens, tick, w, el, full_in = load(key, rate, burst, P)
  tokens = math.min(tokens + cost, burst)
  keep(key, fmt(tokens) .. ' ' .. fmt(tick) .. ' ' .. fmt(P), full_in(tokens))
end
