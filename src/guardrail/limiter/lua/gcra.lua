-- guardrail: several GCRA token buckets decided together, all or nothing, in one round trip.
-- Mirrors guardrail/limiter/_gcra.py operation by operation (same doubles, same order).
--
-- KEYS[i]      bucket i; its value is the theoretical arrival time (TAT, seconds) as a string
-- ARGV[1]      mode: "consume" | "peek" | "settle"
-- ARGV[2]      now in seconds, or "" to read the server's clock (TIME): app clocks are never trusted
-- ARGV[3i..]   for bucket i: rate (tokens/s), burst (tokens), cost (tokens; a signed delta for settle)
-- Reply        one string: "allowed_all" then per bucket "allowed remaining retry_after reset_after",
--              space-separated (Lua numbers would be truncated to integers by the reply conversion, and one
--              bulk string is the cheapest reply to build and to parse)
-- Needs Redis >= 5 (effects replication by default, so writes may follow TIME).
local EPSILON = 1e-9
local mode = ARGV[1]
local now
if ARGV[2] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[2])
end

local stored = redis.call("MGET", unpack(KEYS))
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
  local interval = 1.0 / rate
  local tolerance = burst * interval
  local tat = current[key]
  if tat == nil and stored[i] then
    tat = tonumber(stored[i])
  end
  if tat == nil or tat < now then
    tat = now
  end
  local new_tat = tat + cost * interval
  local ok, remaining, retry, reset
  if mode == "settle" then
    if new_tat < now then
      new_tat = now
    end
    local ahead = new_tat - now
    ok = ahead <= tolerance + EPSILON
    retry = 0.0
    if not ok then
      retry = ahead - tolerance
      all_ok = false
    end
    remaining = math.max(0.0, burst - ahead * rate)
    reset = ahead
    if current[key] == nil then
      order[#order + 1] = key
    end
    current[key] = new_tat
  elseif cost <= burst and new_tat - now <= tolerance + EPSILON then
    ok = true
    remaining = math.max(0.0, burst - (new_tat - now) * rate)
    retry = 0.0
    reset = new_tat - now
    if current[key] == nil then
      order[#order + 1] = key
    end
    current[key] = new_tat
  else
    ok = false
    all_ok = false
    remaining = math.max(0.0, burst - (tat - now) * rate)
    if cost > burst then
      retry = math.huge
    else
      retry = new_tat - tolerance - now
    end
    reset = tat - now
  end
  out[i] = string.format("%d %.17g %.17g %.17g", ok and 1 or 0, remaining, retry, reset)
end

if mode == "settle" or (mode == "consume" and all_ok) then
  for _, key in ipairs(order) do
    local ttl = math.ceil((current[key] - now) * 1000)
    if ttl > 0 then
      -- a full bucket equals a missing key, so it may expire; the extra second keeps a nearly full
      -- bucket alive across a round trip when callers pass their own "now" (tests, offline replay)
      redis.call("SET", key, string.format("%.17g", current[key]), "PX", ttl + 1000)
    else
      redis.call("DEL", key)
    end
  end
end
return (all_ok and "1 " or "0 ") .. table.concat(out, " ")
