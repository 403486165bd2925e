-- guardrail engine: the hot path of RedisEngineStore.observe, steps 1-5 of EngineStore.observe in one
-- atomic script. Same semantics as MemoryEngineStore.observe, request for request.
--
-- KEYS  1 {p}:seg       count-min sketch: cell c is the u53 at BITFIELD offset #c, epoch * scale + value
--       2 {p}:seg:n     insertions since the last halving
--       3 {p}:seg:e     halving epoch: a cell written at epoch e reads as value >> (E - e), so halving
--                       every counter is one INCR instead of a pass over the whole sketch
--       4 {p}:tick      recency counter (scores of the two sorted sets: observation order, like the
--                       memory store's OrderedDict.move_to_end, whatever the timestamps say)
--       5 {p}:accts     sorted set account -> tick
--       6 {p}:acct:<a>  the account's profile hash (fields: see PROFILE below, h0..h23, seq,
--                       part:<hex> and pfx:<range> = "count:seq", seq being the insertion order)
--       7 {p}:tpls      sorted set part hex -> tick; {p}:tpl:<hex> hash, {p}:tpl:<hex>:hll HyperLogLog
--       8 {p}:clu:ver   9 {p}:clu:acct   10 {p}:clu:part   11 {p}:clu:info
-- ARGV  1 key prefix "{p}:"   2 account   3 ts   4 UTC hour   5 tokens (>= 0)   6 elicitation or ""
--       7 conversation 0/1    8 has address range 0/1   9 address range
--       10 part_min_count  11 max_parts  12 max_accounts  13 max_templates  14 sketch_width (halving
--       period)  15 sketch_depth  16 TOP_PARTS  17 TOP_PREFIXES  18 scale (a power of two above any
--       counter value)  19 epoch modulus (2^53 / scale)
--       20 the segments, sorted, as concatenated 16-digit hexes
--       21 their cells, sketch_depth per segment, as space-separated BITFIELD offsets "#c" (c from
--          guardrail.engine._sketch.cell_indexes, computed in Python: Lua has no 64-bit integers)
-- Reply 1 the parts (concatenated hexes)  2 the profile: PROFILE values, the 24 hours, then the parts as
--       "hex:count:seq", space-separated  3 {range, "count:seq", ...}  4 profiles held  5 table version
--       6 the account's cluster JSON  7 flagged part hex  8 its cluster JSON (nil when absent)

local P = ARGV[1]
local account = ARGV[2]
local ts = tonumber(ARGV[3])
local min_count = tonumber(ARGV[10])
local max_parts = tonumber(ARGV[11])
local max_accounts = tonumber(ARGV[12])
local max_templates = tonumber(ARGV[13])
local width = tonumber(ARGV[14])
local depth = tonumber(ARGV[15])
local hexes = ARGV[20]
local n = #hexes / 16
local PROFILE = {
  "requests", "tokens", "templated", "conversations", "elicitation_sum", "elicitation_n", "gap_n", "gap_sum",
  "gap_sq", "first_seen", "last_seen",
}

local HOURS = {
  "h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11", "h12", "h13", "h14", "h15", "h16",
  "h17", "h18", "h19", "h20", "h21", "h22", "h23",
}

local function fmt(x)
  return string.format("%.17g", x)
end

local function plus_one(value)
  return string.format("%d", tonumber(value or "0") + 1)
end

-- BITFIELD with many sub-commands, in slices that stay well inside Lua's unpack limit.
local function bitfield(ops, out)
  local i = 1
  while i <= #ops do
    local cmd = { "BITFIELD", KEYS[1] }
    local j = i
    while j <= #ops and j < i + 600 do
      cmd[#cmd + 1] = ops[j]
      j = j + 1
    end
    local got = redis.call(unpack(cmd))
    if out then
      for k = 1, #got do
        out[#out + 1] = got[k]
      end
    end
    i = j
  end
end

-- 1. sketch: read every cell, estimate = min + 1, then raise each cell to max(cell, estimate); a cell
-- shared by two segments ends at the largest of their values, as in the memory store's update.
-- A cell is one u53: epoch * scale + value (no counter reaches scale = 4 * sketch_width between
-- halvings; the epoch is kept modulo 2^53 / scale, at least 2^25 halvings).
local parts = {}
if n > 0 then
  local scale = tonumber(ARGV[18])
  local emod = tonumber(ARGV[19])
  local epoch = tonumber(redis.call("GET", KEYS[3]) or "0") % emod
  local reads = {}
  local offs = {}
  local m = 0
  for off in string.gmatch(ARGV[21], "%S+") do
    offs[m + 1] = off
    reads[3 * m + 1] = "GET"
    reads[3 * m + 2] = "u53"
    reads[3 * m + 3] = off
    m = m + 1
  end
  local got = {}
  bitfield(reads, got)
  local values = {}
  local stored = {}
  for k = 1, m do
    local x = got[k]
    local e = math.floor(x / scale)
    local v = x - e * scale
    local age = (epoch - e) % emod
    if age >= 32 then
      v = 0
    elseif age > 0 then
      v = math.floor(v / 2 ^ age)
    end
    values[k] = v
    stored[offs[k]] = v
  end
  local final = {}
  local order = {}
  local k = 0
  for s = 1, n do
    local low = values[k + 1]
    for r = 2, depth do
      if values[k + r] < low then
        low = values[k + r]
      end
    end
    local est = low + 1
    for r = 1, depth do
      local off = offs[k + r]
      if final[off] == nil then
        order[#order + 1] = off
      end
      final[off] = math.max(final[off] or values[k + r], est)
    end
    k = k + depth
    -- 2. parts: segments counted at least min_count times, smallest hashes first (segments arrive sorted)
    if est >= min_count and #parts < max_parts then
      parts[#parts + 1] = string.sub(hexes, 16 * s - 15, 16 * s)
    end
  end
  -- a cell whose value does not change keeps its old epoch: it reads the same either way
  local writes = {}
  for _, off in ipairs(order) do
    if final[off] ~= stored[off] then
      writes[#writes + 1] = "SET"
      writes[#writes + 1] = "u53"
      writes[#writes + 1] = off
      writes[#writes + 1] = string.format("%.0f", epoch * scale + final[off])
    end
  end
  bitfield(writes, nil)
  if redis.call("INCRBY", KEYS[2], n) >= width then
    redis.call("INCR", KEYS[3])
    redis.call("SET", KEYS[2], "0")
  end
end

-- 3. the account profile: the hash is read once, updated in `h`, written once and returned from `h`
local tick = redis.call("INCRBY", KEYS[4], 1 + #parts) - #parts
local pkey = KEYS[6]
local flat = redis.call("HGETALL", pkey)
local h = {}
local entries = { ["part:"] = {}, ["pfx:"] = {} }
local sizes = { ["part:"] = 0, ["pfx:"] = 0 }
for i = 1, #flat, 2 do
  local f, v = flat[i], flat[i + 1]
  h[f] = v
  if string.byte(f, 1) == 112 then -- "p": part:<hex> or pfx:<range>
    local pre = string.sub(f, 1, 5) == "part:" and "part:" or (string.sub(f, 1, 4) == "pfx:" and "pfx:")
    if pre then
      local c, q = string.match(v, "^(%d+):(%d+)$")
      entries[pre][string.sub(f, #pre + 1)] = { tonumber(c), tonumber(q) }
      sizes[pre] = sizes[pre] + 1
    end
  end
end
local requests = tonumber(h.requests or "0")
redis.call("ZADD", KEYS[5], tick, account)
local accounts = redis.call("ZCARD", KEYS[5])
local first, last = ts, ts
if requests == 0 then
  if accounts > max_accounts then
    local old = redis.call("ZPOPMIN", KEYS[5])
    redis.call("DEL", P .. "acct:" .. old[1])
    accounts = accounts - 1
  end
else
  first = tonumber(h.first_seen)
  last = tonumber(h.last_seen)
end
local sets = {}
local function put(field, value)
  sets[#sets + 1] = field
  sets[#sets + 1] = value
  h[field] = value
end
if requests > 0 then
  local gap = ts - last
  if gap >= 0 then
    local g = math.log(1 + gap) / math.log(2)
    put("gap_n", plus_one(h.gap_n))
    put("gap_sum", fmt(tonumber(h.gap_sum or "0") + g))
    put("gap_sq", fmt(tonumber(h.gap_sq or "0") + g * g))
  end
end
put("requests", plus_one(h.requests))
if #parts > 0 then
  put("templated", plus_one(h.templated))
end
if ARGV[7] == "1" then
  put("conversations", plus_one(h.conversations))
end
if ARGV[6] ~= "" then
  put("elicitation_sum", fmt(tonumber(h.elicitation_sum or "0") + tonumber(ARGV[6])))
  put("elicitation_n", plus_one(h.elicitation_n))
end
local hour = "h" .. ARGV[4]
put(hour, plus_one(h[hour]))
if ts < first then
  first = ts
end
if ts > last then
  last = ts
end
put("first_seen", fmt(first))
put("last_seen", fmt(last))

-- space-saving: +1 for a kept key; a newcomer evicts the smallest count (ties: the oldest inserted,
-- which is the first one the memory store's insertion-ordered dict yields) and starts at 1
local seq = tonumber(h.seq or "0")
local dels = {}
local function space_saving(pre, keys, cap)
  local table_ = entries[pre]
  for _, key in ipairs(keys) do
    local e = table_[key]
    if e then
      e[1] = e[1] + 1
    else
      if sizes[pre] >= cap then
        local victim, vc, vq
        for name, ent in pairs(table_) do
          if victim == nil or ent[1] < vc or (ent[1] == vc and ent[2] < vq) then
            victim, vc, vq = name, ent[1], ent[2]
          end
        end
        table_[victim] = nil
        sizes[pre] = sizes[pre] - 1
        dels[#dels + 1] = pre .. victim
      end
      seq = seq + 1
      e = { 1, seq }
      table_[key] = e
      sizes[pre] = sizes[pre] + 1
    end
    put(pre .. key, string.format("%d:%d", e[1], e[2]))
  end
end
space_saving("part:", parts, tonumber(ARGV[16]))
if ARGV[8] == "1" then
  space_saving("pfx:", { ARGV[9] }, tonumber(ARGV[17]))
end
put("seq", string.format("%d", seq))
if #dels > 0 then
  redis.call("HDEL", pkey, unpack(dels))
end
redis.call("HSET", pkey, unpack(sets))
h.tokens = string.format("%.0f", redis.call("HINCRBY", pkey, "tokens", ARGV[5]))

-- 4. template statistics, least recently seen evicted beyond max_templates
local templates = nil
for i, part in ipairs(parts) do
  local tkey = P .. "tpl:" .. part
  if redis.call("ZADD", KEYS[7], tick + i, part) == 1 then
    if templates == nil then
      templates = redis.call("ZCARD", KEYS[7])
    else
      templates = templates + 1
    end
    if templates > max_templates then
      local old = redis.call("ZPOPMIN", KEYS[7])
      redis.call("DEL", P .. "tpl:" .. old[1], P .. "tpl:" .. old[1] .. ":hll")
      templates = templates - 1
    end
    redis.call("DEL", tkey .. ":hll")
    redis.call("HSET", tkey, "requests", "1", "first_seen", fmt(ts), "last_seen", fmt(ts))
  else
    local t = redis.call("HMGET", tkey, "requests", "first_seen", "last_seen")
    local tf, tl = tonumber(t[2]), tonumber(t[3])
    if ts < tf then
      tf = ts
    end
    if ts > tl then
      tl = ts
    end
    redis.call("HSET", tkey, "requests", plus_one(t[1]), "first_seen", fmt(tf), "last_seen", fmt(tl))
  end
  redis.call("PFADD", tkey .. ":hll", account)
end

-- 5. the published picture
local version = redis.call("GET", KEYS[8]) or "0"
local cjson = false
local cid = redis.call("HGET", KEYS[9], account)
if cid then
  cjson = redis.call("HGET", KEYS[11], cid)
end
local flagged, pjson = false, false
if #parts > 0 and redis.call("EXISTS", KEYS[10]) == 1 then
  local found = redis.call("HMGET", KEYS[10], unpack(parts))
  for i = 1, #parts do
    if found[i] then
      flagged = parts[i]
      pjson = redis.call("HGET", KEYS[11], found[i])
      break
    end
  end
end

local out = {}
for _, f in ipairs(PROFILE) do
  out[#out + 1] = h[f] or "0"
end
for _, f in ipairs(HOURS) do
  out[#out + 1] = h[f] or "0"
end
for name, e in pairs(entries["part:"]) do
  out[#out + 1] = name .. ":" .. e[1] .. ":" .. e[2]
end
local ranges = {}
for name, e in pairs(entries["pfx:"]) do
  ranges[#ranges + 1] = name
  ranges[#ranges + 1] = e[1] .. ":" .. e[2]
end
return { table.concat(parts), table.concat(out, " "), ranges, accounts, version, cjson, flagged, pjson }
