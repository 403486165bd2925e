-- guardrail engine: take or renew the re-clustering lock.
-- KEYS  1 {p}:lock
-- ARGV  1 owner  2 time to live in milliseconds (0: taken and expired at once, as a zero ttl in memory)
-- Reply 1 if ARGV[1] holds (or held, for a zero ttl) the lock now, 0 if another owner holds it
local owner = redis.call("GET", KEYS[1])
if owner and owner ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
else
  redis.call("DEL", KEYS[1])
end
return 1
