-- guardrail: one GCRA token bucket, consume only: the single-bucket hot path, as lean as gcra.lua allows
-- (same maths in whole microseconds, same stored value, same expiry rule; gcra.lua explains both).
--
-- KEYS[1]   the bucket; its value is the theoretical arrival time (TAT) in microseconds since the epoch
-- ARGV[1]   step: cost x interval, microseconds (interval = 1e6 / rate); 1e308 when cost > burst
-- ARGV[2]   tolerance: burst x interval, microseconds
-- ARGV[3]   optional: now in microseconds (tests, offline replay); absent = the server's clock (TIME)
-- Reply     one integer: ahead (TAT - now after the decision, microseconds, >= 0) when allowed, and
--           -1 - ahead when refused. An integer reply needs no formatting on the server and no second read
--           on the client. A value too large for a 64-bit reply comes back as a decimal string instead.
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call("TIME")
  now = t[1] * 1000000 + t[2]
end
-- MGET, not GET: a key of another type reads as absent (and is overwritten), as in gcra.lua, so a foreign or
-- corrupted value under the prefix costs one fresh bucket, never an error on every call.
local stored = tonumber(redis.call("MGET", KEYS[1])[1])
local tat = stored or now
if tat < now then
  tat = now
end
local new_tat = tat + ARGV[1]
local reply
if new_tat - now <= ARGV[2] + 0.001 then
  new_tat = math.ceil(new_tat - 0.001)
  reply = new_tat - now
  if reply > 0 then
    local slot = math.ceil((new_tat + 1000000) / 10000000)
    if stored and slot == math.ceil((stored + 1000000) / 10000000) and new_tat < 9e15 and stored % 1 == 0 then
      if new_tat ~= stored then
        redis.call("INCRBY", KEYS[1], string.format("%d", new_tat - stored))
      end
    else
      local value = new_tat < 9e18 and string.format("%d", new_tat) or string.format("%.0f", new_tat)
      redis.call("SET", KEYS[1], value, "PX", math.min(slot * 10000 - math.floor(now / 1000), 1e12))
    end
  end
else
  reply = -1 - (tat - now)
end
if reply > -9e18 and reply < 9e18 then
  return reply
end
return string.format("%.0f", reply)
