-- guardrail engine: statistics of some template parts, as one consistent snapshot (a script rather than a
-- pipeline because Redis Cluster clients refuse PFCOUNT in pipelines).
-- KEYS  1 {p}:tpls (routes the call to the store's hash slot; the parts' keys "{p}:tpl:<hex>" share it)
-- ARGV  1 key prefix "{p}:"  2.. part hexes
-- Reply per part: {requests, first_seen, last_seen, distinct accounts}, or false when absent
local out = {}
for i = 2, #ARGV do
  local key = ARGV[1] .. "tpl:" .. ARGV[i]
  local t = redis.call("HMGET", key, "requests", "first_seen", "last_seen")
  if t[1] then
    out[i - 1] = { t[1], t[2], t[3], redis.call("PFCOUNT", key .. ":hll") }
  else
    out[i - 1] = false
  end
end
return out
