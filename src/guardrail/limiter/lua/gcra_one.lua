-- guardrail: one GCRA token bucket, consume only: the single-bucket hot path, as lean as gcra.lua allows
-- (same maths in whole microseconds, same stored value, same TTL rule).
--
-- KEYS[1]   the bucket; its value is the theoretical arrival time (TAT) in microseconds since the epoch
-- ARGV[1]   now in microseconds, or "" to read the server's clock (TIME)
-- ARGV[2]   rate (tokens/s); ARGV[3] burst (tokens); ARGV[4] cost (tokens)
-- Reply     one string "allowed ahead" (integers; ahead = TAT - now after the decision, microseconds)
local now
if ARGV[1] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local interval = 1000000 / tonumber(ARGV[2])
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + cost * interval
if cost <= burst and new_tat - now <= burst * interval + 0.001 then
  new_tat = math.ceil(new_tat - 0.001)
  local ahead = new_tat - now
  if ahead > 0 then
    redis.call("SET", KEYS[1], string.format("%d", new_tat), "PX", math.ceil(ahead / 1000) + 1000)
  end
  return string.format("1 %d", ahead)
end
return string.format("0 %d", tat - now)
