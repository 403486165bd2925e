-- guardrail engine: read the published cluster table as one consistent snapshot.
-- KEYS  1 {p}:clu:ver  2 {p}:clu:acct  3 {p}:clu:part  4 {p}:clu:info
-- Reply version, HGETALL of the three hashes
return { redis.call("GET", KEYS[1]) or "0", redis.call("HGETALL", KEYS[2]), redis.call("HGETALL", KEYS[3]),
  redis.call("HGETALL", KEYS[4]) }
