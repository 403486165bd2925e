-- guardrail: several GCRA token buckets decided together, all or nothing, in one round trip.
-- The maths of guardrail/limiter/_gcra.py, in whole microseconds: the server's TIME is integral there,
-- a stored TAT is an integer (rounded up, so rounding never under-charges) and replies need no float
-- formatting, which is most of a script's cost. The client derives remaining / retry_after /
-- reset_after from each bucket's "ahead" with _gcra.from_ahead.
--
-- KEYS[i]      bucket i; its value is the theoretical arrival time (TAT) in microseconds since the epoch
-- ARGV[1]      mode: "consume" | "peek" | "settle"
-- ARGV[2]      now in microseconds, or "" to read the server's clock (TIME): app clocks are never trusted
-- ARGV[3i..]   for bucket i: rate (tokens/s), burst (tokens), cost (tokens; a signed delta for settle)
-- Reply        one string: "allowed_all" then per bucket "allowed ahead", space-separated integers, where
--              ahead = TAT - now after the decision (microseconds; how far the bucket is from full)
-- Needs Redis >= 5 (effects replication by default, so writes may follow TIME).
local EPSILON = 0.001 -- one nanosecond, in microseconds: rounding must not refuse an exact fit
local call, tonumber, format, ceil = redis.call, tonumber, string.format, math.ceil
local mode = ARGV[1]
local now
if ARGV[2] == "" then
  local t = call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end

local stored = call("MGET", unpack(KEYS))
local current = {}
local order = {}
local out = {}
local all_ok = true

for i = 1, #KEYS do
  local key = KEYS[i]
  local base = 3 * i
  local rate = tonumber(ARGV[base])
  local burst = tonumber(ARGV[base + 1])
  local cost = tonumber(ARGV[base + 2])
  local interval = 1000000 / rate
  local tolerance = burst * interval
  local tat = current[key]
  if tat == nil and stored[i] then
    tat = tonumber(stored[i])
  end
  if tat == nil or tat < now then
    tat = now
  end
  local new_tat = tat + cost * interval
  local ok
  if mode == "settle" then
    if new_tat < now then
      new_tat = now
    end
    new_tat = ceil(new_tat - EPSILON)
    ok = new_tat - now <= tolerance + EPSILON
    if current[key] == nil then
      order[#order + 1] = key
    end
    current[key] = new_tat
    tat = new_tat
  elseif cost <= burst and new_tat - now <= tolerance + EPSILON then
    ok = true
    new_tat = ceil(new_tat - EPSILON)
    if current[key] == nil then
      order[#order + 1] = key
    end
    current[key] = new_tat
    tat = new_tat
  else
    ok = false
  end
  if not ok then
    all_ok = false
  end
  out[i] = (ok and "1 " or "0 ") .. format("%d", tat - now)
end

if mode == "settle" or (mode == "consume" and all_ok) then
  for _, key in ipairs(order) do
    local ahead = current[key] - now
    if ahead > 0 then
      -- a full bucket equals a missing key, so it may expire; the extra second keeps a nearly full
      -- bucket alive across a round trip when callers pass their own "now" (tests, offline replay)
      call("SET", key, format("%d", current[key]), "PX", ceil(ahead / 1000) + 1000)
    else
      call("DEL", key)
    end
  end
end
return (all_ok and "1 " or "0 ") .. table.concat(out, " ")
