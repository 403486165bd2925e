-- guardrail: one GCRA token bucket, consume only: the single-bucket hot path, kept as lean as the
-- general script (gcra.lua) allows; same maths, same stored value, same TTL rule.
--
-- KEYS[1]   the bucket; its value is the theoretical arrival time (TAT, seconds) as a string
-- ARGV[1]   now in seconds, or "" to read the server's clock (TIME)
-- ARGV[2]   rate (tokens/s); ARGV[3] burst (tokens); ARGV[4] cost (tokens)
-- Reply     one string "allowed remaining retry_after reset_after"
local now
if ARGV[1] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local interval = 1.0 / rate
local tolerance = burst * interval
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + cost * interval
if cost <= burst and new_tat - now <= tolerance + 1e-9 then
  local ttl = math.ceil((new_tat - now) * 1000)
  if ttl > 0 then
    redis.call("SET", KEYS[1], string.format("%.17g", new_tat), "PX", ttl + 1000)
  end
  return string.format("1 %.17g 0 %.17g", math.max(0.0, burst - (new_tat - now) * rate), new_tat - now)
end
local retry = new_tat - tolerance - now
if cost > burst then
  retry = math.huge
end
return string.format("0 %.17g %.17g %.17g", math.max(0.0, burst - (tat - now) * rate), retry, tat - now)
