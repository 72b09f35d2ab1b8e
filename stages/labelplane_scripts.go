package stages

// The label plane's Redis scripts. Each takes a whole batch (of
// predictions, of labels, of early-label stream entries) in one call, so
// that the label plane costs one script call per batch, not one per event.
//
// Keys (all under spec.Redis.Prefix(); on a Cluster the prefix is a hash
// tag, redis.hash_tag, so that they all map to one slot — as the per-label
// scripts before them needed):
//
//   - pred:<id>          a cached prediction (encodeEntry), ending with the
//     reference of the batch it was cached with (see entryBatchRef);
//   - pred-batch:<ref>   the set of the batch's event ids still pending
//     (neither joined, expired nor evicted);
//   - pred-batches       the pending batches by expiry (unix ms): one
//     member per batch, not per event;
//   - pred-pending       how many predictions are pending, for
//     labels.max_pending;
//   - early-label:<id>, early-label-index  parked (early) labels by expiry;
//   - pred-joined:<id>, early-ready  log mode's marks and early-label stream.
//
// A script reaches a batch's set and, when it evicts, the evicted
// predictions by names it builds from the prefixes it is given (the batch
// references are only known inside Redis). They share the prefix, and so
// the slot, of the keys it is given.
//
// Every script begins with the same keys and arguments: KEYS[1] the
// batches' index, KEYS[2] the early index, KEYS[3] the pending count;
// ARGV[1] the TTL of keys written (ms, twice labels.ttl), ARGV[2] the
// expiry of what is indexed now (unix ms), ARGV[3] the bound (max parked
// or max pending), ARGV[4] the prediction key prefix, ARGV[5] the batch
// key prefix.

import "github.com/redis/go-redis/v9"

// luaUnpend's unpend takes event id out of the pending batch its cached
// entry names, and flushUnpend does what unpend gathered, one SREM per
// batch: the batch forgets the ids, the pending count drops, and a batch
// left empty leaves the index. An entry without a batch reference (cached
// by an older version) is left alone.
const luaUnpend = `
local pend = {}
local function unpend(entry, id)
  local len = #entry
  if len < 3 or string.byte(entry, len) ~= 183 then return end
  local n = string.byte(entry, len - 1)
  local ref = string.sub(entry, len - 1 - n, len - 2)
  local l = pend[ref]
  if not l then
    l = {}
    pend[ref] = l
  end
  l[#l + 1] = id
end
local function flushUnpend()
  for ref, l in pairs(pend) do
    local bk = ARGV[5] .. ref
    local gone = 0
    for s = 1, #l, 500 do
      gone = gone + redis.call('SREM', bk, unpack(l, s, math.min(s + 499, #l)))
    end
    if gone > 0 then
      redis.call('DECRBY', KEYS[3], gone)
      if redis.call('EXISTS', bk) == 0 then redis.call('ZREM', KEYS[1], ref) end
    end
  end
  pend = {}
end
`

// putBatch caches one batch of predictions and indexes them as one batch,
// picks up their early labels when any label is parked at all, and trims
// the cache: batches past their expiry count their pending predictions as
// missing (and delete them), parked labels past theirs as orphans, and the oldest pending
// predictions beyond ARGV[3] (labels.max_pending) are evicted.
//
// KEYS[4] the batch's set, KEYS[5] the early-label stream (log mode),
// then per row: prediction, early label. ARGV[6] now (unix ms), ARGV[7]
// "1" in log mode, ARGV[8] the batch reference, then per row: the entry.
//
// Outside log mode, a row whose label is parked is joined at once: its
// prediction is not cached, the parked label is deleted, and the reply
// names it. In log mode the prediction is cached and the event announced
// on the early-label stream. Reply: {missing, orphaned, evicted, then per
// early-joined row: its index (from 0), its label}.
var putBatch = redis.NewScript(luaUnpend + `
local keep = ARGV[7] == '1'
local plen = #ARGV[4]
local n = (#KEYS - 5) / 2
-- The rows' parked labels, read only while any label is parked.
local early = {}
if redis.call('ZCARD', KEYS[2]) > 0 then
  for s = 1, n, 500 do
    local ks = {}
    for i = s, math.min(s + 499, n) do ks[#ks + 1] = KEYS[5 + 2 * i] end
    local vs = redis.call('MGET', unpack(ks))
    for k = 1, #vs do early[s + k - 1] = vs[k] end
  end
end
local out = {0, 0, 0}
local ids = {}
-- Outside log mode a parked label is taken once (taken), by the first row
-- of its event, and deleted (consumed).
local taken, consumed = {}, {}
for i = 1, n do
  local pk, ek = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local id = string.sub(pk, plen + 1)
  local label = early[i] or false
  if label and not keep then
    if taken[ek] then
      label = false
    else
      taken[ek] = true
      consumed[#consumed + 1] = ek
    end
  end
  if label and not keep and #label == 4 then
    out[#out + 1] = i - 1
    out[#out + 1] = label
  else
    local old = redis.call('SET', pk, ARGV[8 + i], 'PX', ARGV[1], 'GET')
    if old then unpend(old, id) end
    ids[#ids + 1] = id
    if label and keep and #label == 4 then
      redis.call('XADD', KEYS[5], '*', 'id', id)
    end
  end
end
for s = 1, #consumed, 500 do
  local e = math.min(s + 499, #consumed)
  redis.call('DEL', unpack(consumed, s, e))
  redis.call('ZREM', KEYS[2], unpack(consumed, s, e))
end
-- Re-cached events (a batch handed in again) leave their earlier batch
-- first, this one included.
flushUnpend()
local added = 0
for s = 1, #ids, 500 do
  added = added + redis.call('SADD', KEYS[4], unpack(ids, s, math.min(s + 499, #ids)))
end
if added > 0 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[8])
  redis.call('INCRBY', KEYS[3], added)
end
local now = ARGV[6]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  for _, ref in ipairs(expired) do
    -- Their keys may outlive them by a little (Redis's clock is not the
    -- client's): delete them, so that one counted missing is never joined.
    local bk = ARGV[5] .. ref
    local left = redis.call('SMEMBERS', bk)
    for s = 1, #left, 500 do
      local ks = {}
      for k = s, math.min(s + 499, #left) do ks[#ks + 1] = ARGV[4] .. left[k] end
      redis.call('DEL', unpack(ks))
    end
    out[1] = out[1] + #left
    redis.call('DEL', bk)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('DECRBY', KEYS[3], out[1])
end
out[2] = redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local over = tonumber(redis.call('GET', KEYS[3]) or '0') - tonumber(ARGV[3])
while over > 0 do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #oldest == 0 then
    redis.call('SET', KEYS[3], 0)
    break
  end
  local bk = ARGV[5] .. oldest[1]
  local gone = redis.call('SPOP', bk, over)
  for s = 1, #gone, 500 do
    local ks = {}
    for k = s, math.min(s + 499, #gone) do ks[#ks + 1] = ARGV[4] .. gone[k] end
    redis.call('DEL', unpack(ks))
  end
  out[3] = out[3] + #gone
  over = over - #gone
  redis.call('DECRBY', KEYS[3], #gone)
  if redis.call('EXISTS', bk) == 0 then redis.call('ZREM', KEYS[1], oldest[1]) end
end
return out
`)

// joinBatch joins one batch of labels, in order, each as one atomic "take
// the prediction or park the label": a label whose prediction is cached
// takes it (the reply holds the entry), else it is parked (nil) unless
// ARGV[3] (labels.max_parked) labels are parked already (0: refused).
// Being one script, it cannot interleave with putBatch's "cache the
// prediction, then look for an early label", so no label falls between
// the two. ARGV[6] is "1" in log mode.
//
// Outside log mode, per label KEYS: prediction, early label; ARGV: label
// bytes. Taking a prediction deletes it.
//
// In log mode, per label KEYS: prediction, early label, mark; ARGV: label
// bytes, position. A label takes a prediction that no other label joined
// (marking it with its position) or whose mark is its own position (a
// re-join after a restore); the entry is kept (see labeljoin_log.go).
//
// The reply has one element per label, then the number of labels parked.
var joinBatch = redis.NewScript(luaUnpend + `
local keep = ARGV[6] == '1'
local ks, as = 2, 1
if keep then ks, as = 3, 2 end
local n = (#KEYS - 3) / ks
local plen = #ARGV[4]
local most = tonumber(ARGV[3])
-- What the labels need is read in a few calls (500 keys each); the loop
-- below then decides label by label, in order, on what was read and what
-- it changed since (taken, marked, parkedNow), as a call per label would.
local function readAll(cmd, key, off)
  local vals = {}
  for s = 1, n, 500 do
    local args = {}
    for i = s, math.min(s + 499, n) do args[#args + 1] = KEYS[3 + (i - 1) * ks + off] end
    local vs
    if key then vs = redis.call(cmd, key, unpack(args)) else vs = redis.call(cmd, unpack(args)) end
    for k = 1, #vs do vals[s + k - 1] = vs[k] end
  end
  return vals
end
local entries = readAll('MGET', nil, 1)
local marks = {}
if keep then marks = readAll('MGET', nil, 3) end
local parked = redis.call('ZCARD', KEYS[2])
local indexed = {}
if parked > 0 then indexed = readAll('ZMSCORE', KEYS[2], 2) end
local taken, marked, parkedNow = {}, {}, {}
local del, zadd = {}, {}
local out = {}
for i = 1, n do
  local k, a = 3 + (i - 1) * ks, 6 + (i - 1) * as
  local pk, ek = KEYS[k + 1], KEYS[k + 2]
  local res
  local entry = entries[i]
  if entry and not taken[pk] then
    local id = string.sub(pk, plen + 1)
    if not keep then
      taken[pk] = true
      del[#del + 1] = pk
      unpend(entry, id)
      res = entry
    else
      local mk, pos = KEYS[k + 3], ARGV[a + 2]
      local by = marked[mk] or marks[i]
      if not by then
        redis.call('SET', mk, pos, 'PX', ARGV[1])
        marked[mk] = pos
        unpend(entry, id)
        res = entry
      elseif by == pos then
        res = entry
      end
    end
  end
  if res == nil then
    if parked >= most then
      res = 0
    else
      redis.call('SET', ek, ARGV[a + 1], 'PX', ARGV[1])
      if not indexed[i] and not parkedNow[ek] then parked = parked + 1 end
      parkedNow[ek] = true
      zadd[#zadd + 1] = ARGV[2]
      zadd[#zadd + 1] = ek
      res = false
    end
  end
  out[i] = res
end
for s = 1, #del, 500 do redis.call('DEL', unpack(del, s, math.min(s + 499, #del))) end
for s = 1, #zadd, 1000 do redis.call('ZADD', KEYS[2], unpack(zadd, s, math.min(s + 999, #zadd))) end
flushUnpend()
out[n + 1] = parked
return out
`)

// joinEarlyBatch joins, in log mode, parked labels whose prediction has
// come, for early-label stream entries, with joinBatch's marking rule.
// Per entry KEYS: prediction, early label, mark; ARGV (from ARGV[6]): the
// entry's position ("r:<id>"). The reply has per entry {entry, label}, or
// nil when the prediction or the label is gone or another label joined the
// row.
var joinEarlyBatch = redis.NewScript(luaUnpend + `
local n = (#KEYS - 3) / 3
local plen = #ARGV[4]
local out = {}
for i = 1, n do
  local k = 3 + (i - 1) * 3
  local pk, pos = KEYS[k + 1], ARGV[5 + i]
  local entry = redis.call('GET', pk)
  local label = redis.call('GET', KEYS[k + 2])
  local res = false
  if entry and label then
    local by = redis.call('GET', KEYS[k + 3])
    if not by then
      redis.call('SET', KEYS[k + 3], pos, 'PX', ARGV[1])
      unpend(entry, string.sub(pk, plen + 1))
      res = {entry, label}
    elseif by == pos then
      res = {entry, label}
    end
  end
  out[i] = res
end
flushUnpend()
return out
`)
