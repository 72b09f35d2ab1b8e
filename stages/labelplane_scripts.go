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
//   - early-label:<id>   a parked (early) label (see below), ending with
//     the reference of the label batch that parked it;
//   - early-batch:<ref>  the set of the label batch's parked labels' keys
//     (neither joined, expired nor evicted);
//   - early-batches      the label batches with parked labels by expiry
//     (unix ms): one member per batch, not per label;
//   - early-parked       how many labels are parked, for labels.max_parked;
//   - early-label-index  the previous version's index of parked labels, a
//     member per label (see "Upgrade" below);
//   - early-held:<partition>:g<generation>, early-held:<partition>:ghw
//     early labels puts joined, held until their rows' offsets are
//     committed, and the partition's high-water mark of them;
//   - put-taken:<partition>:<offset>  a chunk's put marks (putBatch);
//   - label-taken:<partition>:g<generation>  a label batch's taken marks,
//     and the marks of its labels that puts took from the park;
//   - pred-joined:<id>, early-ready  log mode's marks and early-label stream.
//
// A script reaches a batch's set and, when it evicts, the evicted
// predictions by names it builds from the prefixes it is given (the batch
// references are only known inside Redis). They share the prefix, and so
// the slot, of the keys it is given.
//
// Every script begins with the same keys and arguments: KEYS[1] the
// batches' index, KEYS[2] the label batches' index, KEYS[3] the pending
// count, KEYS[4] the parked count, KEYS[5] the previous version's early
// index; ARGV[1] the expiry of what is written (ms, twice labels.ttl:
// see "Expiry"), ARGV[2] the bound (max parked or max pending), ARGV[3]
// the prediction key prefix, ARGV[4] the batch key prefix, ARGV[5] the
// label batch key prefix.
//
// Expiry is on Redis's clock: a script reads TIME (luaNow) and indexes
// what it writes at that time plus ARGV[1], whatever the clients' clocks
// say. Outside log mode a cached prediction's key and a parked label's
// have no TTL of their own: their batch's index entry is their expiry.
// The put that finds a batch expired (putBatch's sweep) counts what it
// still holds, missing or orphans, and deletes their keys in the same
// script; until then a script that reads one of them treats it as gone
// (dropExpired), so that one past its expiry is never joined, and a label
// delivered again parks anew. One TTL per key cost Redis an expiry entry
// per event and each script a call per row (a bulk MSET cannot set one):
// miniredis, the demo's, pays a fixed cost per call. In log mode the keys
// keep the TTL ARGV[1]: a joined row and an early label stay, out of their
// batch, until ReleaseJoined, and the TTL bounds them if that never comes.
//
// A label batch is safe to run twice (a client that timed out and sent it
// again, or the pipeline retrying the batch): see joinBatch.
//
// Upgrade. The previous version indexed each parked label in
// early-label-index (a sorted set, member: the label's key, score: its
// expiry) and its value had no batch reference. This version reads that
// index too, so that labels parked before an upgrade, or by a process of
// the previous version still running during a rolling one, are joined or
// counted as orphans: a put that takes such a label takes it out of the
// old index, joinBatch counts the old index's labels against
// labels.max_parked, and putBatch's sweep counts its expired ones as
// orphans. While it is empty, that costs a ZCARD per label batch call
// and a ZRANGEBYSCORE per put. What this version parks, the previous one
// does not index: a put of the previous version takes a label parked by
// this one only while its own index holds labels, and this one's sweep
// then counts the label (its key gone) as an orphan too, so that it is
// counted twice (joined there, an orphan here); otherwise the previous
// version's put caches the prediction, and the label expires an orphan
// (the prediction missing): a rolling upgrade should be short. (A
// process of an earlier version, which relied on the keys' TTLs, may also
// join a prediction or a parked label of this version past its batch's
// expiry, until a sweep deletes it.) Reading the
// old index can go in a later version, once no process of the previous
// one runs and twice labels.ttl has passed since.

import "github.com/redis/go-redis/v9"

// luaNow's now() is Redis's clock in unix ms.
const luaNow = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// luaGroups' group adds item to groups[ref]'s list, and forgetGroups
// does what the lists gathered, one SREM per group: set <prefix><ref>
// forgets the group's items, countKey drops by the items it held (and
// goes at 0 when dropAtZero), and a set left empty leaves the sorted set
// indexKey. The lists are the caller's to reset.
const luaGroups = luaNow + `
local function group(groups, ref, item)
  local l = groups[ref]
  if not l then
    l = {}
    groups[ref] = l
  end
  l[#l + 1] = item
end
local function forgetGroups(groups, prefix, countKey, indexKey, dropAtZero)
  for ref, l in pairs(groups) do
    local bk = prefix .. ref
    local gone = 0
    for s = 1, #l, 500 do
      gone = gone + redis.call('SREM', bk, unpack(l, s, math.min(s + 499, #l)))
    end
    if gone > 0 then
      local left = redis.call('DECRBY', countKey, gone)
      if dropAtZero and left <= 0 then redis.call('DEL', countKey) end
      if redis.call('EXISTS', bk) == 0 then redis.call('ZREM', indexKey, ref) end
    end
  end
end
`

// luaUnpend's entryRef is the reference of the batch a cached entry names
// (nil for an entry cached by an older version, which names none); unpend
// takes event id out of the pending batch its cached entry names, and
// flushUnpend does what unpend gathered (forgetGroups):
// the batch forgets the ids, the pending count drops, and a batch left
// empty leaves the index. An entry without a batch reference (cached by an
// older version) is left alone.
const luaUnpend = luaGroups + `
local pend = {}
local function entryRef(entry)
  local len = #entry
  if len < 3 then return nil end
  local n, tag = string.byte(entry, len - 1, len)
  if tag ~= 183 then return nil end
  return string.sub(entry, len - 1 - n, len - 2)
end
local function unpend(entry, id)
  local ref = entryRef(entry)
  if ref then group(pend, ref, id) end
end
local function flushUnpend()
  forgetGroups(pend, ARGV[4], KEYS[3], KEYS[1], false)
  pend = {}
end
`

// A parked label's value is the label's 4 bytes (a float32) followed by
// the position of the label record that parked it ("<partition>:<offset>"
// of the labels topic), so that a retried batch knows its own, a space,
// and the reference of the label batch that parked it (its set
// early-batch:<ref>). A value of the previous version has no space after
// the label: its label is in early-label-index.
//
// luaPark's parkedRef and parkedPos read a parked label's value;
// dropExpired(vals, n, refOf, index, t) sets vals[1..n] to false where the
// value's batch (refOf(v), nil or empty for none) has expired by t in
// index (its score is at most t), the batches' expiry sweep not yet run
// (see "Expiry" above); unpark takes a parked label (its key ek, its
// value v) out of its index, and flushUnpark does what unpark gathered
// (forgetGroups): the label batch forgets the keys, the parked count drops
// (and goes, at 0), and a batch left empty leaves the index; a label of
// the previous version leaves its index. The label's key is the caller's
// to delete or keep.
const luaPark = luaUnpend + `
local function parkedRef(v)
  local sp = string.find(v, ' ', 5, true)
  if not sp then return '' end
  return string.sub(v, sp + 1)
end
local function parkedPos(v)
  local sp = string.find(v, ' ', 5, true)
  if not sp then return string.sub(v, 5) end
  return string.sub(v, 5, sp - 1)
end
local function dropExpired(vals, n, refOf, index, t)
  -- Most calls find every batch unexpired (each put sweeps).
  if #redis.call('ZRANGEBYSCORE', index, '-inf', t, 'LIMIT', 0, 1) == 0 then return end
  local refs, list = {}, {}
  for i = 1, n do
    local v = vals[i]
    if v then
      local ref = refOf(v)
      if ref and ref ~= '' and not refs[ref] then
        refs[ref] = true
        list[#list + 1] = ref
      end
    end
  end
  local gone, any = {}, false
  for s = 1, #list, 500 do
    local e = math.min(s + 499, #list)
    local sc = redis.call('ZMSCORE', index, unpack(list, s, e))
    for k = 1, e - s + 1 do
      if sc[k] and tonumber(sc[k]) <= t then
        gone[list[s + k - 1]] = true
        any = true
      end
    end
  end
  if not any then return end
  for i = 1, n do
    local v = vals[i]
    if v and gone[refOf(v)] then vals[i] = false end
  end
end
local unparked = {}
local function unpark(ek, v)
  group(unparked, parkedRef(v), ek)
end
local function flushUnpark()
  local legacy = unparked['']
  if legacy then
    unparked[''] = nil
    for s = 1, #legacy, 500 do
      redis.call('ZREM', KEYS[5], unpack(legacy, s, math.min(s + 499, #legacy)))
    end
  end
  forgetGroups(unparked, ARGV[5], KEYS[4], KEYS[2], true)
  unparked = {}
end
`

// putBatch caches one chunk of a batch's predictions and indexes them as
// one batch, picks up their early labels when any label is parked or held
// at all, and trims the cache: batches past their expiry count their
// pending predictions as missing (and delete them), label batches past
// theirs their parked labels as orphans (and delete them), and the oldest pending predictions
// beyond ARGV[2] (labels.max_pending) are evicted.
//
// KEYS[6] the batch's set, KEYS[7] the early-label stream (log mode),
// KEYS[8] the chunk's put marks (a hash named after the partition and the
// source offset of its first row), KEYS[9 .. 8+ARGV[8]] the put marks of
// the partition's puts done with and its held labels' generations done
// with (deleted), then per row: prediction, early label. ARGV[6] "1" in
// log mode, ARGV[7] the batch reference, ARGV[9] "1" when the client
// consumed the reply of an earlier run of this chunk, ARGV[10] the chunk's
// fingerprint (its rows' ids and offsets), ARGV[11] one byte per row, "1"
// where this process's puts that succeeded covered the row's offset
// already, ARGV[12] the name of the partition's held labels' hashes but
// the generation, ARGV[13] the offsets per generation, ARGV[14] the rows'
// offsets (decimal, space-separated), ARGV[15] the name of the taken
// marks' hashes but the partition and generation, ARGV[16] the labels'
// offsets per generation (takenSpan), then per row: the entry.
//
// Outside log mode, a row whose label is parked is joined at once: its
// prediction is not cached, the parked label is deleted (and leaves its
// label batch), and the reply names it. In log mode the prediction is
// cached and the event announced on the early-label stream. A parked
// label taken so is marked in the map of its generation of taken marks
// (the hash's field "", one byte per labels-topic offset of the
// generation, "1" where a put took the label at that offset), where the
// map exists: joinBatch makes it when it parks a label there, and the
// label side deletes the hash once no run again of its labels can come.
// A label batch run again, or delivered again after a restart, so finds
// that its label was joined and does not park it again (see joinBatch).
// Reply:
// {missing, orphaned, evicted, then per early-joined row: its index (from
// 0), its label (4 bytes)}.
//
// A label joined so is held until the row's offset is committed, so that
// the row delivered again after a restart, in a chunk cut any way, joins
// it again. A hash per generation of the partition's offsets (ARGV[13]
// offsets, PredictionCache.heldOf) keeps, per put chunk that held labels
// there (field: its batch reference), one string of its held labels: per
// label the event id, the label and the row's offset. It lives ARGV[1]
// after the last put that wrote or joined it; the partition's high-water
// mark (ARGV[12] .. 'hw') is the last offset of a chunk that held labels,
// and outlives them. A row at or below it whose label is not parked looks
// for its event id at its own offset there: found, it joins the held label
// again: not cached, replied — or, where ARGV[11] says this process put
// the row already (and taught its label), neither cached nor replied. The
// event delivered again at another offset (a duplicate) does not find it:
// it is cached. Rows above the mark (every row of a partition's puts
// but after a restart or a rebalance) read nothing. The client deletes a
// generation once its offsets are committed (or, without commits, once
// the partition's puts have left it). Held labels are not parked: out of
// the label batches, never orphans (they were counted joined), and a label
// of the event that comes later is parked as before.
//
// A chunk is idempotent: run again (its reply lost to a timeout, the
// deferred write retried, the batch handed in again), it changes nothing
// the earlier run did, and replies what that run replied. The put marks
// keep, until the partition's next put deletes them, the chunk's
// fingerprint ('#sum') and what the run replied: the counts ('#counts')
// and the early labels it joined ('#joined'). When the fingerprint is the
// chunk's, no row is cached again (it was cached then, and may have been
// joined, expired or evicted since) nor announced again, and the reply is
// the earlier one (plus what this run's trim found). With ARGV[9] "1" the
// client has consumed the earlier reply already: it is not replied again.
// Marks with another fingerprint (other rows at the same first offset, or
// the same rows cut otherwise) are dropped; their rows' held labels stay.
var putBatch = redis.NewScript(luaPark + `
local keep = ARGV[6] == '1'
local consumed = ARGV[9] == '1'
local covered = ARGV[11]
local span = tonumber(ARGV[13])
local plen = #ARGV[3]
local k0 = 8 + tonumber(ARGV[8])
local n = (#KEYS - k0) / 2
local t = now()
local mk = KEYS[8]
for s = 9, k0, 500 do redis.call('DEL', unpack(KEYS, s, math.min(s + 499, k0))) end
local function idOf(i) return string.sub(KEYS[k0 + 2 * i - 1], plen + 1) end
-- What an earlier run of the same rows replied: its counts and, 6 bytes
-- per early label joined, the row (2 bytes) and the label (4).
local rerun, prior, joined = false, {0, 0, 0}, {}
local h = redis.call('HMGET', mk, '#sum', '#counts', '#joined')
if h[1] and h[1] ~= ARGV[10] then
  redis.call('DEL', mk)
elseif h[1] then
  rerun = true
  if not consumed then
    local a, b, c = string.match(h[2] or '', '^(%d+) (%d+) (%d+)$')
    prior = {tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0}
    joined[1] = h[3]
  end
end
local out = {0, 0, 0}
local ids, cache = {}, {}
-- Outside log mode a parked or held label is taken once (taken), by the
-- first row of its event; a parked one is deleted (consumedKeys) and
-- held in its row's generation (gens: per generation its hash, rows,
-- what to hold, and whether a row joined there).
local taken, consumedKeys, gens, offs, hw, hwKey = {}, {}, {}, {}, -1, nil
-- The labels taken from the park, per generation of their positions
-- (earlyTaken: hash of taken marks → the positions' indexes in it).
local earlyTaken, tspan, lastPart, lastGen, lastList = {}, tonumber(ARGV[16]), nil, nil, nil
local listOf = {}
-- markEarly(v) splits the position parkedPos reads, "<partition>:<offset>",
-- with a plain find (string.match compiles its pattern at every call in
-- gopher-lua; a byte loop costs Lua a C call per byte).
local function markEarly(v)
  local pos = parkedPos(v)
  local c = string.find(pos, ':', 1, true)
  if not c or c == 1 then return end
  local off = tonumber(string.sub(pos, c + 1))
  if not off then return end
  local part = string.sub(pos, 1, c)
  local r = off % tspan
  local gen = (off - r) / tspan
  if part ~= lastPart or gen ~= lastGen then
    -- The labels' partitions alternate from row to row: the lists are
    -- found by partition and generation, the hash's name built once.
    local pg = listOf[part]
    if not pg then
      pg = {}
      listOf[part] = pg
    end
    lastList = pg[gen]
    if not lastList then
      lastList = {}
      pg[gen] = lastList
      earlyTaken[ARGV[15] .. part .. 'g' .. string.format('%d', gen)] = lastList
    end
    lastPart, lastGen = part, gen
  end
  lastList[#lastList + 1] = r
end
-- be16(n) is n, under 65536, in two bytes, high byte first.
local function be16(n)
  local lo = n % 256
  return string.char((n - lo) / 256, lo)
end
local function join(i, label)
  out[#out + 1] = i - 1
  out[#out + 1] = label
  joined[#joined + 1] = be16(i - 1) .. label
end
if rerun then
  local j = joined[1] or ''
  for s = 1, #j - 5, 6 do
    out[#out + 1] = string.byte(j, s) * 256 + string.byte(j, s + 1)
    out[#out + 1] = string.sub(j, s + 2, s + 5)
  end
else
  -- The rows' parked labels, read only while any label is parked, and
  -- their held ones, read only for rows at or below the partition's
  -- high-water mark (the last offset a put held labels up to: a row above
  -- it cannot have been put before).
  local early, held, genOf = {}, {}, {}
  if redis.call('EXISTS', KEYS[4], KEYS[5]) > 0 then
    for s = 1, n, 500 do
      local ks = {}
      for i = s, math.min(s + 499, n) do ks[#ks + 1] = KEYS[k0 + 2 * i] end
      local vs = redis.call('MGET', unpack(ks))
      for k = 1, #vs do early[s + k - 1] = vs[k] end
    end
    if not keep then dropExpired(early, n, parkedRef, KEYS[2], t) end
  end
  if not keep then
    hwKey = ARGV[12] .. 'hw'
    hw = tonumber(redis.call('GET', hwKey) or '-1')
    local mayHold = tonumber(string.match(ARGV[14], '^%d+')) <= hw
    local k = 0
    if mayHold or next(early) then
      for o in string.gmatch(ARGV[14], '%d+') do
        k = k + 1
        offs[k] = o
      end
    end
    local lo, hi, g, byKey = 0, -1, nil, {}
    for i = 1, k do
      local look = mayHold and not early[i] and tonumber(offs[i]) <= hw
      if early[i] or look then
        local off = tonumber(offs[i])
        if off < lo or off >= hi then
          local gn = math.floor(off / span)
          lo, hi = gn * span, (gn + 1) * span
          local key = ARGV[12] .. string.format('%d', gn)
          g = byKey[key]
          if not g then
            g = {key = key, look = {}, parts = {}}
            byKey[key] = g
            gens[#gens + 1] = g
          end
        end
        genOf[i] = g
        if look then g.look[#g.look + 1] = i end
      end
    end
    -- A generation's held labels: per put chunk that held some (field: its
    -- batch reference), per label: the id's length (2 bytes), the id, the
    -- label (4 bytes), the offset's length (1 byte), the offset.
    for _, g in ipairs(gens) do
      if #g.look > 0 then
        local m = {}
        local f = redis.call('HGETALL', g.key)
        for x = 2, #f, 2 do
          local b, p = f[x], 1
          while p + 7 <= #b do
            local l = string.byte(b, p) * 256 + string.byte(b, p + 1)
            local ol = string.byte(b, p + 6 + l)
            m[string.sub(b, p + 2, p + 1 + l) .. ' ' .. string.sub(b, p + 7 + l, p + 6 + l + ol)] = string.sub(b, p + 2 + l, p + 5 + l)
            p = p + 7 + l + ol
          end
        end
        for _, i in ipairs(g.look) do held[i] = m[idOf(i) .. ' ' .. offs[i]] end
      end
    end
  end
  for i = 1, n do
    local pk, ek = KEYS[k0 + 2 * i - 1], KEYS[k0 + 2 * i]
    local id = idOf(i)
    local label = early[i] or false
    local own = false
    if not keep then
      if taken[ek] then
        label = false
      elseif label then
        taken[ek] = true
        consumedKeys[#consumedKeys + 1] = ek
        unpark(ek, label)
        markEarly(label)
      elseif held[i] then
        taken[ek] = true
        own = true
      end
    end
    if label and not keep and #label >= 4 then
      local g = genOf[i]
      label = string.sub(label, 1, 4)
      if #id < 65536 then
        local o = offs[i]
        g.parts[#g.parts + 1] = be16(#id) .. id .. label .. string.char(#o) .. o
      end
      g.joined = true
      join(i, label)
    elseif own then
      genOf[i].joined = true
      if string.byte(covered, i) ~= 49 then join(i, held[i]) end
    elseif keep then
      local old = redis.call('SET', pk, ARGV[16 + i], 'PX', ARGV[1], 'GET')
      if old then unpend(old, id) end
      ids[#ids + 1] = id
      if label and #label >= 4 then
        redis.call('XADD', KEYS[7], '*', 'id', id)
      end
    else
      ids[#ids + 1] = id
      cache[#cache + 1] = i
    end
  end
  -- Outside log mode the rows are cached in a few calls (500 rows each),
  -- their keys without a TTL (see "Expiry"); an event cached before (a
  -- batch handed in again) leaves its earlier batch.
  for s = 1, #cache, 500 do
    local e = math.min(s + 499, #cache)
    local ks, kv = {}, {}
    for c = s, e do
      local i = cache[c]
      ks[#ks + 1] = KEYS[k0 + 2 * i - 1]
      kv[#kv + 1] = ks[#ks]
      kv[#kv + 1] = ARGV[16 + i]
    end
    local olds = redis.call('MGET', unpack(ks))
    for c = s, e do
      local old = olds[c - s + 1]
      if old then unpend(old, idOf(cache[c])) end
    end
    redis.call('MSET', unpack(kv))
  end
end
for s = 1, #consumedKeys, 500 do
  redis.call('DEL', unpack(consumedKeys, s, math.min(s + 499, #consumedKeys)))
end
flushUnpark()
-- In a generation the label side still keeps (joinBatch made its map
-- when it parked there), the taken labels' bytes in the map are set.
for hk, l in pairs(earlyTaken) do
  local m = redis.call('HGET', hk, '')
  if m then
    local b = {string.byte(m, 1, -1)}
    for _, x in ipairs(l) do
      for y = #b + 1, x do b[y] = 48 end
      b[x + 1] = 49
    end
    redis.call('HSET', hk, '', string.char(unpack(b)))
    redis.call('PEXPIRE', hk, ARGV[1])
  end
end
local holding = false
for _, g in ipairs(gens) do
  if #g.parts > 0 then redis.call('HSET', g.key, ARGV[7], table.concat(g.parts)) end
  if g.joined then
    redis.call('PEXPIRE', g.key, ARGV[1])
    holding = true
  end
end
-- The high-water mark outlives the labels held below it.
if holding then
  -- The chunk's last offset: a row joined there, so offs holds them all.
  local last = tonumber(offs[#offs])
  if last > hw then
    redis.call('SET', hwKey, last, 'PX', ARGV[1])
  else
    redis.call('PEXPIRE', hwKey, ARGV[1])
  end
end
-- Re-cached events (a batch handed in again) leave their earlier batch
-- first, this one included.
flushUnpend()
local added = 0
for s = 1, #ids, 500 do
  added = added + redis.call('SADD', KEYS[6], unpack(ids, s, math.min(s + 499, #ids)))
end
if added > 0 then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[1]), ARGV[7])
  redis.call('INCRBY', KEYS[3], added)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t)
if #expired > 0 then
  for _, ref in ipairs(expired) do
    -- Their keys (outside log mode, without a TTL; in log mode, theirs
    -- may outlive them by a little, the index and the TTLs rounding
    -- differently) are deleted, so that one counted missing is never
    -- joined.
    local bk = ARGV[4] .. ref
    local left = redis.call('SMEMBERS', bk)
    for s = 1, #left, 500 do
      local ks = {}
      for k = s, math.min(s + 499, #left) do ks[#ks + 1] = ARGV[3] .. left[k] end
      redis.call('DEL', unpack(ks))
    end
    out[1] = out[1] + #left
    redis.call('DEL', bk)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
  redis.call('DECRBY', KEYS[3], out[1])
end
-- Parked labels past their expiry are orphans: deleted with their index
-- entries, so that a prediction cached later cannot join one counted.
-- Each label a batch still holds is one: its key is deleted here (in log
-- mode it may be gone already: expired, or released). A key that names
-- another batch was parked again, after it expired, by that batch (a
-- label delivered again), which holds it and counts it in turn: it is
-- kept. dropOwn(ks, ref) deletes the keys of ks that are ref's.
local function dropOwn(ks, ref)
  for s = 1, #ks, 500 do
    local e = math.min(s + 499, #ks)
    local vs = redis.call('MGET', unpack(ks, s, e))
    local del = {}
    for k = 1, #vs do
      if vs[k] and parkedRef(vs[k]) == ref then del[#del + 1] = ks[s + k - 1] end
    end
    if #del > 0 then redis.call('DEL', unpack(del)) end
  end
end
local expiredLabels = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', t)
if #expiredLabels > 0 then
  for _, ref in ipairs(expiredLabels) do
    local bk = ARGV[5] .. ref
    local left = redis.call('SMEMBERS', bk)
    dropOwn(left, ref)
    out[2] = out[2] + #left
    redis.call('DEL', bk)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', t)
  if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('DECRBY', KEYS[4], out[2]) <= 0 then
    redis.call('DEL', KEYS[4])
  end
end
-- The previous version's index (see "Upgrade").
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', t)
if #old > 0 then
  dropOwn(old, '')
  out[2] = out[2] + #old
  for s = 1, #old, 500 do redis.call('ZREM', KEYS[5], unpack(old, s, math.min(s + 499, #old))) end
end
local over = tonumber(redis.call('GET', KEYS[3]) or '0') - tonumber(ARGV[2])
while over > 0 do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #oldest == 0 then
    redis.call('SET', KEYS[3], 0)
    break
  end
  local bk = ARGV[4] .. oldest[1]
  local gone = redis.call('SPOP', bk, over)
  for s = 1, #gone, 500 do
    local ks = {}
    for k = s, math.min(s + 499, #gone) do ks[#ks + 1] = ARGV[3] .. gone[k] end
    redis.call('DEL', unpack(ks))
  end
  out[3] = out[3] + #gone
  over = over - #gone
  redis.call('DECRBY', KEYS[3], #gone)
  if redis.call('EXISTS', bk) == 0 then redis.call('ZREM', KEYS[1], oldest[1]) end
end
for k = 1, 3 do out[k] = out[k] + prior[k] end
redis.call('HSET', mk, '#sum', ARGV[10], '#counts', out[1] .. ' ' .. out[2] .. ' ' .. out[3], '#joined', table.concat(joined))
redis.call('PEXPIRE', mk, ARGV[1])
return out
`)

// joinBatch's replies for a label it refuses: 0 when labels.max_parked
// labels are parked already, 1 when another label of the same event is
// parked or took the prediction in the same batch (a duplicate).
const (
	joinRefusedParkedFull = 0
	joinRefusedDuplicate  = 1
)

// joinBatch joins one batch of labels, in order, each as one atomic "take
// the prediction or park the label": a label whose prediction is cached
// takes it (the reply holds the entry), else it is parked (nil) unless
// ARGV[2] (labels.max_parked) labels are parked already, or another label
// of the event is parked or took the prediction in this batch (refused:
// joinRefusedParkedFull, joinRefusedDuplicate). Being one script, it
// cannot interleave with putBatch's "cache the prediction, then look for
// an early label", so no label falls between the two.
//
// KEYS[6] and KEYS[7] are the labels' taken marks (outside log mode: a
// hash shared by the labels of one generation of positions,
// PredictionCache.takenMarks; the labels from the ARGV[8]th on are in
// KEYS[7]'s generation, the others in KEYS[6]'s), KEYS[8 .. 7+ARGV[7]]
// taken marks done with (deleted), then per label: prediction, early
// label, and in log mode its mark. ARGV[6] is "1" in log mode, ARGV[9]
// the reference of the label batch (the call's labels that it parks),
// ARGV[10] the labels' offsets per generation of taken marks
// (takenSpan), then per label (from ARGV[11]): the label's 4 bytes, its
// position.
//
// The labels a call parks are one label batch: a set of their keys
// (early-batch:<ref>), indexed in early-batches by their expiry, and
// counted in early-parked; each parked value names the batch.
//
// A batch is idempotent: run again with the same labels (a client that
// timed out resends it, the pipeline retries it), it replies as it did
// the first time and changes nothing more.
//   - Outside log mode, taking a prediction deletes it and records the
//     entry, under the label's event id, in the taken marks (position and
//     entry, with the TTL of ARGV[1]); a label whose prediction is gone
//     finds its own mark there (the same position) and takes the entry
//     again; another label of the event is parked, as without marks. The
//     caller deletes the marks (KEYS[8..]) once the labels' offsets are
//     committed (LabelJoin.KeepMarksUntilCommitted: a label delivered
//     again after a restart is joined, not parked), or else with the
//     partition's next batch in another generation. A call that parks a
//     label makes its generation's map of labels taken from the park (the
//     hash's field "", which no event id is), where a put that takes the
//     label marks its offset (putBatch): the label run again, its
//     prediction gone and no mark of its own, finds its offset marked
//     and is replied parked, as its first run replied, and not parked
//     again (it would expire an orphan, counted beside the put's join).
//     The marks are read only while the hash holds more than the map.
//   - In log mode, a label takes a prediction that no other label joined
//     (marking it with its position) or whose mark is its own position (a
//     re-join after a restore, or a retry); the entry is kept (see
//     labeljoin_log.go). A label that takes a prediction while its own
//     parked label (parked by an earlier run) waits takes that out of its
//     label batch. A row marked from the early-label stream ("r:<id>")
//     whose parked label is the label's own (same position) was joined
//     by that label: it is replied parked, as it was, not refused.
//   - A parked label whose position is the label's own is its own: parked
//     still (in the label batch of the run that parked it), not a
//     duplicate.
//
// The reply has one element per label, then the number of labels parked.
var joinBatch = redis.NewScript(luaPark + `
local keep = ARGV[6] == '1'
local done = tonumber(ARGV[7])
local ks = 2
if keep then ks = 3 end
local k0 = 7 + done
local n = (#KEYS - k0) / ks
local split = tonumber(ARGV[8])
local function marksOf(i) if i < split then return KEYS[6] end return KEYS[7] end
local plen = #ARGV[3]
local most = tonumber(ARGV[2])
local ref = ARGV[9]
local tspan = tonumber(ARGV[10])
local t = now()
local expiry = t + tonumber(ARGV[1])
for s = 8, k0, 500 do redis.call('DEL', unpack(KEYS, s, math.min(s + 499, k0))) end
local function idOf(i) return string.sub(KEYS[k0 + (i - 1) * ks + 1], plen + 1) end
-- What the labels need is read in a few calls (500 keys each); the loop
-- below then decides label by label, in order, on what was read and what
-- it changed since (took, marked, parkedNow), as a call per label would.
local function readAll(off)
  local vals = {}
  for s = 1, n, 500 do
    local args = {}
    for i = s, math.min(s + 499, n) do args[#args + 1] = KEYS[k0 + (i - 1) * ks + off] end
    local vs = redis.call('MGET', unpack(args))
    for k = 1, #vs do vals[s + k - 1] = vs[k] end
  end
  return vals
end
local entries = readAll(1)
if not keep then dropExpired(entries, n, entryRef, KEYS[1], t) end
local marks, tookBefore, takenMap = {}, {}, {}
if keep then
  marks = readAll(3)
else
  -- The marks of the labels whose prediction is gone, in their
  -- generation's hash, and its map of the labels puts took from the park
  -- (field '').
  for h = 6, 7 do
    local from, to = 1, split - 1
    if h == 7 then from, to = split, n end
    local len = 0
    if from <= to and (h == 6 or KEYS[7] ~= KEYS[6]) then len = redis.call('HLEN', KEYS[h]) end
    if len > 0 then
      local at = {}
      for i = from, to do if not entries[i] then at[#at + 1] = i end end
      if #at > 0 then
        takenMap[h] = redis.call('HGET', KEYS[h], '')
        if takenMap[h] then len = len - 1 end
      end
      for s = 1, len > 0 and #at or 0, 500 do
        local fs = {}
        for k = s, math.min(s + 499, #at) do fs[#fs + 1] = idOf(at[k]) end
        local vs = redis.call('HMGET', KEYS[h], unpack(fs))
        for k = 1, #vs do tookBefore[at[s + k - 1]] = vs[k] end
      end
    end
  end
end
-- takenEarly says whether a put took label i (at pos) from the park.
local function takenEarly(i, pos)
  local m = takenMap[i < split and 6 or 7]
  if not m or m == '' then return false end
  local c = string.find(pos, ':', 1, true)
  local off = c and tonumber(string.sub(pos, c + 1))
  return off ~= nil and string.byte(m, off % tspan + 1) == 49
end
-- The labels parked (this version's count and the previous version's
-- index), and, while any is, the labels' parked values.
local parked = tonumber(redis.call('GET', KEYS[4]) or '0') + redis.call('ZCARD', KEYS[5])
local parkedVal, parkedRead = {}, parked > 0
if parkedRead then
  parkedVal = readAll(2)
  if not keep then dropExpired(parkedVal, n, parkedRef, KEYS[2], t) end
end
local took, marked, parkedNow = {}, {}, {}
local del, park, hset, mapped, parkKV = {}, {}, {}, {}, {}
local out = {}
for i = 1, n do
  local k, a = k0 + (i - 1) * ks, 11 + (i - 1) * 2
  local pk, ek = KEYS[k + 1], KEYS[k + 2]
  local pos = ARGV[a + 1]
  local entry = entries[i]
  local res
  if not keep then
    local mark = tookBefore[i]
    if took[pk] then
      res = 1
    elseif entry then
      took[pk] = true
      del[#del + 1] = pk
      local id, mk = idOf(i), marksOf(i)
      unpend(entry, id)
      local l = hset[mk]
      if not l then
        l = {}
        hset[mk] = l
      end
      l[#l + 1] = id
      l[#l + 1] = pos .. ' ' .. entry
      res = entry
    elseif mark then
      -- Taken by an earlier run of this label (a batch run again, or
      -- delivered again after a restart): its entry again. A mark of
      -- another label of the event is not this one's: it is parked, as
      -- it was before marks were kept.
      local sp = string.find(mark, ' ', 1, true)
      if string.sub(mark, 1, sp - 1) == pos then
        took[pk] = true
        res = string.sub(mark, sp + 1)
      end
    end
    if res == nil and not entry and takenEarly(i, pos) then
      -- Parked by an earlier run, then taken by a put (joined early):
      -- parked, as that run replied, and not parked again.
      took[pk] = true
      res = false
    end
  elseif entry then
    local mk = KEYS[k + 3]
    local by = marked[mk] or marks[i]
    local v = parkedNow[ek] or parkedVal[i]
    if v == nil then v = false end
    if not by then
      redis.call('SET', mk, pos, 'PX', ARGV[1])
      marked[mk] = pos
      unpend(entry, idOf(i))
      -- Its own parked label (parked by an earlier run, the prediction
      -- come since) waits no more: it leaves its label batch, no orphan.
      if v and parkedPos(v) == pos then
        unpark(ek, v)
        parked = parked - 1
      end
      res = entry
    elseif by == pos then
      res = entry
    else
      if not v and not parkedRead then v = redis.call('GET', ek) end
      if v and parkedPos(v) == pos and string.sub(by, 1, 2) == 'r:' then
        -- Its own parked label, joined from the early-label stream: this
        -- label, delivered again, not a duplicate: parked, as it was.
        res = false
      else
        res = 1
      end
    end
  end
  if res == nil then
    local v = parkedNow[ek] or parkedVal[i]
    if v then
      -- Its own (a retried batch) stays parked; another's is kept, and
      -- this one refused.
      if parkedPos(v) == pos then res = false else res = 1 end
    elseif parked >= most then
      res = 0
    else
      v = ARGV[a] .. pos .. ' ' .. ref
      if keep then
        -- GET: the same write, with a bulk reply (ignored) rather than
        -- +OK, which miniredis hands a script as a fresh table per call.
        redis.call('SET', ek, v, 'PX', ARGV[1], 'GET')
      else
        parkKV[#parkKV + 1] = ek
        parkKV[#parkKV + 1] = v
        mapped[marksOf(i)] = true
      end
      parked = parked + 1
      parkedNow[ek] = v
      park[#park + 1] = ek
      res = false
    end
  end
  out[i] = res
end
for s = 1, #del, 500 do redis.call('DEL', unpack(del, s, math.min(s + 499, #del))) end
-- Outside log mode the labels parked are written in a few calls, their
-- keys without a TTL (see "Expiry").
for s = 1, #parkKV, 1000 do redis.call('MSET', unpack(parkKV, s, math.min(s + 999, #parkKV))) end
local added = 0
for s = 1, #park, 500 do
  added = added + redis.call('SADD', ARGV[5] .. ref, unpack(park, s, math.min(s + 499, #park)))
end
if added > 0 then
  redis.call('ZADD', KEYS[2], expiry, ref)
  redis.call('INCRBY', KEYS[4], added)
end
-- A generation where labels are parked has its map, for a put that
-- takes one of them to mark it (putBatch).
for mk in pairs(mapped) do
  redis.call('HSETNX', mk, '', '')
  if not hset[mk] then redis.call('PEXPIRE', mk, ARGV[1]) end
end
for mk, l in pairs(hset) do
  for s = 1, #l, 1000 do redis.call('HSET', mk, unpack(l, s, math.min(s + 999, #l))) end
  redis.call('PEXPIRE', mk, ARGV[1])
end
flushUnpend()
flushUnpark()
out[n + 1] = parked
return out
`)

// joinEarlyBatch joins, in log mode, parked labels whose prediction has
// come, for early-label stream entries, with joinBatch's marking rule.
// Per entry KEYS: prediction, early label, mark; ARGV (from ARGV[6]): the
// entry's position ("r:<id>"). The reply has per entry {entry, label}, or
// nil when the prediction or the label is gone or another label joined the
// row. A label joined leaves its label batch (it waits no more, and is no
// orphan), but its key stays, for a re-join, until ReleaseJoined.
var joinEarlyBatch = redis.NewScript(luaPark + `
local n = (#KEYS - 5) / 3
local plen = #ARGV[3]
local out = {}
for i = 1, n do
  local k = 5 + (i - 1) * 3
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
    if res then unpark(KEYS[k + 2], label) end
  end
  out[i] = res
end
flushUnpend()
flushUnpark()
return out
`)
