-- guardrail: several GCRA token buckets decided together, all or nothing, in one round trip.
-- The maths of guardrail/limiter/_gcra.py, in whole microseconds: the server's TIME is integral there,
-- a stored TAT is an integer (rounded up, so rounding never under-charges) and the reply is integers.
-- The client derives allowed / remaining / retry_after / reset_after from each bucket's reply with
-- _gcra.from_ahead.
--
-- KEYS[i]      bucket i; its value is the theoretical arrival time (TAT) in microseconds since the epoch
-- ARGV[1]      the struct format of ARGV[3]: ">" and one "d" per number (2n + 1 of them)
-- ARGV[2]      mode: "c" (consume) | "p" (peek) | "s" (settle); upper case when a key is named twice
--              (the second naming then sees the first one's TAT: it is charged twice)
-- ARGV[3]      the numbers, as big-endian IEEE doubles (one struct.unpack instead of a string-to-number
--              conversion per argument, the largest share of this script's own work):
--              [1]    now in microseconds, or NaN to read the server's clock (TIME): app clocks are never
--                     trusted
--              [2i]   for bucket i, step: cost x interval, microseconds, where interval = 1e6 / rate (signed
--                     for settle; 1e308 for a consume or peek whose cost exceeds the burst: it never fits)
--              [2i+1] for bucket i, tolerance: burst x interval, microseconds (the whole bucket as time)
--              (the client computes both in double precision, so they arrive bit for bit)
-- Reply        an array of integers, one per bucket: ahead = TAT - now after the decision (microseconds;
--              how far the bucket is from full) when the bucket allows, and -1 - ahead when it refuses (for
--              settle: when it is in debt). The decision is allowed iff every bucket allows. When some
--              value is too large for a 64-bit integer reply (a debt of ~300,000 years), every value comes
--              as a decimal string instead.
-- Expiry       a full bucket equals a missing key, so keys expire: at the end of the 10-second slot (of
--              the server's clock) that holds TAT + 1 s. The extra second keeps a nearly full bucket alive
--              across a round trip when callers pass their own "now" (tests, offline replay). Because the
--              expiry is a function of the stored TAT, a write that keeps the TAT in the same slot (most
--              writes to a busy bucket) leaves the expiry alone and is an INCRBY of the difference, which
--              Redis applies in place: a SET with an expiry costs about twice as much. A debt of more than
--              ~30 years is kept ~30 years.
-- Cost         this script is priced against a bare INCRBY: the client sends each bucket's step and
--              tolerance ready to add, as doubles, the reply is integers (no formatting), integers written
--              are formatted with %d (%.0f only beyond 64 bits; INCRBY only below 2^53, where doubles are
--              exact), the state lives in the tables the script gets anyway (the new TATs overwrite the
--              steps they came from, the stored TATs the strings they were read from), and a full bucket
--              that was not stored is not deleted. A decision naming a key twice always SETs the expiry
--              (its key may have been deleted by the first naming), which is rare enough not to matter.
-- Needs Redis >= 5 (effects replication by default, so writes may follow TIME).
local EPSILON = 0.001 -- one nanosecond, in microseconds: rounding must not refuse an exact fit
local BIG = 9e18 -- beyond this, %d (a C long) and an integer reply overflow
local call, ceil, format = redis.call, math.ceil, string.format
local v = { struct.unpack(ARGV[1], ARGV[3]) } -- now, then step and tolerance per bucket
local mode = ARGV[2]
local now = v[1]
if now ~= now then -- NaN: the server's clock
  local t = call("TIME")
  now = t[1] * 1000000 + t[2]
end

local n = #KEYS
local stored = call("MGET", unpack(KEYS)) -- then: the TAT each bucket had before its step (false: none)
local settle = mode == "s" or mode == "S"
local seen = nil -- key -> index of its latest naming, only when a key is named twice
if mode == "C" or mode == "P" or mode == "S" then
  seen = {}
end
local out = {}
local all_ok = true
local big = false

for i = 1, n do
  local k = i + i -- v[k]: this bucket's step, then the TAT to store (false: unchanged)
  local tat
  local j = seen and seen[KEYS[i]]
  if j then
    tat = v[j + j] or stored[j] -- the key's TAT after its previous naming
  else
    tat = tonumber(stored[i]) or false
  end
  stored[i] = tat
  if not tat or tat < now then
    tat = now
  end
  local new_tat = tat + v[k]
  local ok = true
  if settle then
    if new_tat < now then
      new_tat = now
    end
    new_tat = ceil(new_tat - EPSILON)
    ok = new_tat - now <= v[k + 1] + EPSILON
    tat = new_tat
    v[k] = new_tat
  elseif new_tat - now <= v[k + 1] + EPSILON then
    new_tat = ceil(new_tat - EPSILON)
    tat = new_tat
    v[k] = new_tat
  else
    ok = false
    v[k] = false
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
    local tat = v[i + i]
    local was = stored[i]
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
if big then
  for i = 1, n do
    out[i] = format("%.0f", out[i])
  end
end
return out
