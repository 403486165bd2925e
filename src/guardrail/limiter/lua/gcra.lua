-- guardrail: several GCRA token buckets decided together, all or nothing, in one round trip.
-- The maths of guardrail/limiter/_gcra.py, in whole microseconds: the server's TIME is integral there,
-- a stored TAT is an integer (rounded up, so rounding never under-charges) and the reply is integers.
-- The client derives allowed / remaining / retry_after / reset_after from each bucket's reply with
-- _gcra.from_ahead.
--
-- KEYS[i]      bucket i; its value is the theoretical arrival time (TAT) in microseconds since the epoch
-- ARGV[1]      mode: "c" (consume) | "p" (peek) | "s" (settle); upper case when a key is named twice
--              (the second naming then sees the first one's TAT: it is charged twice)
-- ARGV[2]      now in microseconds, or "" to read the server's clock (TIME): app clocks are never trusted
-- ARGV[2i+1]   for bucket i, step: cost x interval, microseconds, where interval = 1e6 / rate (signed for
--              settle; 1e308 for a consume or peek whose cost exceeds the burst: it never fits)
-- ARGV[2i+2]   for bucket i, tolerance: burst x interval, microseconds (the whole bucket as time)
--              (the client computes both with the same double arithmetic the script would use)
-- Reply        one string of space-separated integers, one per bucket: ahead = TAT - now after the
--              decision (microseconds; how far the bucket is from full) when the bucket allows, and
--              -1 - ahead when it refuses (for settle: when it is in debt). The decision is allowed iff
--              every bucket allows.
-- Expiry       a full bucket equals a missing key, so keys expire: at the end of the 10-second slot (of
--              the server's clock) that holds TAT + 1 s. The extra second keeps a nearly full bucket alive
--              across a round trip when callers pass their own "now" (tests, offline replay). Because the
--              expiry is a function of the stored TAT, a write that keeps the TAT in the same slot (most
--              writes to a busy bucket) leaves the expiry alone and is an INCRBY of the difference, which
--              Redis applies in place: a SET with an expiry costs about twice as much. A debt of more than
--              ~30 years is kept ~30 years.
-- Cost         this script is priced against a bare INCRBY: the client sends each bucket's step and
--              tolerance ready to add, integers are formatted with %d (%.0f only beyond 64 bits; INCRBY only
--              below 2^53, where doubles are exact), per-bucket state lives in arrays, and a full bucket
--              that was not stored is not deleted. A decision naming a key twice always SETs the expiry
--              (its key may have been deleted by the first naming), which is rare enough not to matter.
-- Needs Redis >= 5 (effects replication by default, so writes may follow TIME).
local EPSILON = 0.001 -- one nanosecond, in microseconds: rounding must not refuse an exact fit
local BIG = 9e18 -- beyond this, %d (a C long) overflows
local call, tonumber, ceil, format = redis.call, tonumber, math.ceil, string.format
local mode = ARGV[1]
local now
if ARGV[2] == "" then
  local t = call("TIME")
  now = t[1] * 1000000 + t[2]
else
  now = tonumber(ARGV[2])
end

local n = #KEYS
local stored = call("MGET", unpack(KEYS))
local settle = mode == "s" or mode == "S"
local seen = nil -- key -> index of its latest naming, only when a key is named twice
if mode == "C" or mode == "P" or mode == "S" then
  seen = {}
end
local old = {} -- the TAT each bucket had before this step (false: not stored)
local new = {} -- the TAT to store (nil: unchanged)
local out = {}
local all_ok = true
local big = false

for i = 1, n do
  local step = tonumber(ARGV[2 * i + 1])
  local tolerance = ARGV[2 * i + 2] + EPSILON
  local tat
  local j = seen and seen[KEYS[i]]
  if j then
    tat = new[j] or old[j] -- the key's TAT after its previous naming
  else
    tat = tonumber(stored[i]) or false
  end
  old[i] = tat
  if not tat or tat < now then
    tat = now
  end
  local new_tat = tat + step
  local ok = true
  if settle then
    if new_tat < now then
      new_tat = now
    end
    new_tat = ceil(new_tat - EPSILON)
    ok = new_tat - now <= tolerance
    tat = new_tat
    new[i] = new_tat
  elseif new_tat - now <= tolerance then
    new_tat = ceil(new_tat - EPSILON)
    tat = new_tat
    new[i] = new_tat
  else
    ok = false
  end
  if seen then
    seen[KEYS[i]] = i
  end
  local ahead = tat - now
  if ok then
    out[i] = ahead
  else
    out[i] = -1 - ahead
    all_ok = false
  end
  if ahead >= BIG then
    big = true
  end
end

if settle or ((mode == "c" or mode == "C") and all_ok) then
  for i = 1, n do
    local tat = new[i]
    local was = old[i]
    if tat > now then
      local slot = ceil((tat + 1000000) / 10000000)
      if was and not seen and slot == ceil((was + 1000000) / 10000000) and tat < 9e15 and was % 1 == 0 then
        if tat ~= was then
          call("INCRBY", KEYS[i], format("%d", tat - was))
        end
      else
        local value = tat < BIG and format("%d", tat) or format("%.0f", tat)
        call("SET", KEYS[i], value, "PX", math.min(slot * 10000 - math.floor(now / 1000), 1e12))
      end
    elseif was then
      call("DEL", KEYS[i])
    end
  end
end
return format(string.rep(big and "%.0f " or "%d ", n), unpack(out))
