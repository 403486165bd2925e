-- guardrail engine: publish a re-clustering result atomically, unless a newer or equal version is out.
--
-- The caller has written the new table into three staging hashes (with a TTL, so a publisher that dies
-- half-way leaves nothing behind); this script swaps them in with RENAME, so readers (observe.lua,
-- table.lua) see the old table or the new one, never a mix.
-- KEYS  1 {p}:clu:ver  2 {p}:clu:acct  3 {p}:clu:part  4 {p}:clu:info  5-7 the staging hashes (same order)
-- ARGV  1 the new version
-- Reply 1 when published, 0 when a version >= ARGV[1] was already published (staging dropped)
local version = tonumber(ARGV[1])
local current = tonumber(redis.call("GET", KEYS[1]) or "0")
if version <= current then
  redis.call("DEL", KEYS[5], KEYS[6], KEYS[7])
  return 0
end
for i = 2, 4 do
  redis.call("UNLINK", KEYS[i])
  if redis.call("EXISTS", KEYS[i + 3]) == 1 then
    redis.call("RENAME", KEYS[i + 3], KEYS[i])
    redis.call("PERSIST", KEYS[i])
  end
end
redis.call("SET", KEYS[1], ARGV[1])
return 1
