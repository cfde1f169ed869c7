-- GCRA. Per quota: emission interval t (ns), capacity t x burst (ns), period (ns).
-- State: the theoretical arrival time, in ns since the Unix epoch.
local function step(key, t, cap, period)
  local v = redis.call('GET', key)
  local backlog = 0
  if v then
    backlog = math.max(relative(v), 0)
  end
  local left = math.floor(math.max(cap - backlog, 0) / t)
  local inc = t * cost
  if inc > cap then
    return {2, 0, left, backlog, 0}
  end
  local new = backlog + inc
  local wait = math.max(new - cap, 0)
  if wait > max_wait then
    return {0, 0, left, backlog, wait}
  end
  local room = 0
  if wait == 0 then room = math.max(cap - new, 0) end
  return {1, wait, math.floor(room / t), new, 0, absolute(new), new}
end

-- Gives a reservation's units back only while the key still holds the time that reservation
-- wrote (`booked`): no later request was booked after it. A turn dropped in the middle of the
-- queue is not given back (the next arrival would be booked on a later one's instant).
local function release(key, t, cap, period, booked)
  local v = redis.call('GET', key)
  if not v or v ~= booked then return end
  local rel = relative(v) - t * cost
  keep(key, absolute(rel), rel)
end
