-- guardrail: one GCRA token bucket, consume only: the single-bucket hot path, as lean as gcra.lua allows
-- (same maths in whole microseconds, same stored value, same expiry rule).
--
-- KEYS[1]   the bucket; its value is the theoretical arrival time (TAT) in microseconds since the epoch
-- ARGV[1]   rate (tokens/s); ARGV[2] burst (tokens); ARGV[3] cost (tokens)
-- ARGV[4]   optional: now in microseconds (tests, offline replay); absent = the server's clock (TIME)
-- Reply     one integer: ahead (TAT - now after the decision, microseconds, >= 0) when allowed, and
--           -1 - ahead when refused. An integer reply needs no formatting on the server and no second read
--           on the client. A debt too large for a 64-bit reply comes back as a decimal string instead.
-- Expiry    a key expires at the end of the 10-second slot holding TAT + 1 s (gcra.lua explains why):
--           while a write keeps the TAT in the same slot, SET ... KEEPTTL leaves the expiry alone.
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call("TIME")
  now = t[1] * 1000000 + t[2]
end
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local interval = 1000000 / ARGV[1]
local stored = tonumber(redis.call("GET", KEYS[1]))
local tat = stored or now
if tat < now then
  tat = now
end
local new_tat = tat + cost * interval
local reply
if cost <= burst and new_tat - now <= burst * interval + 0.001 then
  new_tat = math.ceil(new_tat - 0.001)
  reply = new_tat - now
  if reply > 0 then
    local slot = math.ceil((new_tat + 1000000) / 10000000)
    if stored and slot == math.ceil((stored + 1000000) / 10000000) then
      redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "KEEPTTL")
    else
      local px = math.min(slot * 10000 - math.floor(now / 1000), 1e12)
      redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", px)
    end
  end
else
  reply = -1 - (tat - now)
end
if reply > -9e15 then
  return reply
end
return string.format("%.0f", reply)
