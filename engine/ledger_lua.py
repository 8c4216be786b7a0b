"""The ledger's Lua scripts (engine/ledger.py runs them): one per operation.

Each validates everything before its first write (a Redis script is atomic but
does not roll back on a runtime error), then moves the balances, appends the double-entry journal
entry and records the operation's id with its result.
"""

from __future__ import annotations

# Each script: the idempotency record first (so a replay answers the same even
# when the live has ended since), then every check, then the writes.
# The record is "fingerprint\nresult"; the fingerprint is the operation's parameters.
# GIFTS does the same per gift, for many gifts in one call.
REPLAY = """
local fp = ARGV[1]
local done = redis.call('GET', KEYS[1])
if done then
  local sep = string.find(done, '\\n', 1, true)
  if string.sub(done, 1, sep - 1) ~= fp then return {'conflict'} end
  return {'replay', string.sub(done, sep + 1)}
end
"""

# GIFTS: many gifts in one call, each checked and taken on its own, in order, as if
# sent one by one; all checks of the whole call before its first write.
# KEYS: 1 wallet:@platform, 2 wallet:@exchange, 3 journal; then 7 per creator: live,
# bans, blocks:creator, user:creator, followers:creator, wallet:creator,
# entries:creator; then 5 per gift: op, blocks:sender, user:sender, wallet:sender,
# entries:sender (keys.wallet_entries).
# ARGV: 1 adult cutoff, 2 min followers, 3 max count, 4 creators C, 5 coins per diamond;
# then C creator ids; then 9 per gift: fingerprint "sender|creator|live|gift|count",
# sender, its creator's number 1..C, live, count, coins, coins to convert (coins minus
# the commission), platform coins (the commission), the journal entry (JSON, built by
# ledger._gift_call, with string.format's %d where the script puts, in order: creator
# diamonds, carry change, exchange coins, minus the diamonds, diamonds, carry after).
# The diamonds come from the creator's carry (wallet field `carry`: coins toward their
# next diamond) plus the coins to convert, as ledger_rules.carry_gift: the carry is read
# once per call and moves gift by gift, in order, so nothing is lost to rounding.
# Answers one string per gift: "ok|replay <entry id> <sender coins> <creator diamonds>
# <coins> <diamonds> <creator carry>", "funds <have>" or the refusal's name.
#
# Why many per call (`golive bench ledger`, ledger.py has the figures): each EVALSHA
# costs Redis ~5 us before its first redis.call, and the balances every gift moves
# (the platform's, the exchange's, the creator's, the creator's entry list) are written
# once per call with the sums; facts about the creator (live, birthdate, followers)
# are read once per call.
GIFTS = """
local cutoff, minf, maxc, nc = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local per = tonumber(ARGV[5])
local GA, GK = 5 + nc, 3 + 7 * nc
local ng = (#ARGV - GA) / 9
local live, born, fans = {}, {}, {}  -- per creator number, read when first needed
local coins, left = {}, {}           -- sender wallet -> coins after the gifts taken so far
local taken, go, out = {}, {}, {}    -- op key -> gift number; gift numbers taken; answers

local function check(a, k)
  local sender, c = ARGV[a + 2], tonumber(ARGV[a + 3])
  local ck = 3 + 7 * (c - 1)
  if sender == ARGV[5 + c] then return 'self' end
  local n = tonumber(ARGV[a + 5])
  if n < 1 or n > maxc then return 'count' end
  if live[c] == nil then live[c] = redis.call('HGET', KEYS[ck + 1], 'live_id') end
  if live[c] ~= ARGV[a + 4] then return 'not_live' end
  local sb = redis.call('HGET', KEYS[k + 3], 'birthdate')
  if not sb then return 'no_sender' end
  if born[c] == nil then born[c] = redis.call('HGET', KEYS[ck + 4], 'birthdate') end
  local cb = born[c]
  if not cb then return 'no_creator' end
  if redis.call('SISMEMBER', KEYS[ck + 2], sender) == 1 then return 'banned' end
  if redis.call('SISMEMBER', KEYS[k + 2], ARGV[5 + c]) == 1 then return 'blocking' end
  if redis.call('SISMEMBER', KEYS[ck + 3], sender) == 1 then return 'blocked_by' end
  if sb > cutoff then return 'sender_minor' end
  if cb > cutoff then return 'creator_minor' end
  if fans[c] == nil then fans[c] = redis.call('ZCARD', KEYS[ck + 5]) end
  if fans[c] < minf then return 'followers' end
  local w = KEYS[k + 4]
  local have = coins[w]
  if have == nil then have = tonumber(redis.call('HGET', w, 'coins') or '0') end
  coins[w] = have
  local cost = tonumber(ARGV[a + 6])
  if have < cost then return 'funds ' .. have end
  coins[w] = have - cost
  return nil
end

-- 1: every check. A transfer id already taken in this call is a replay of that gift
-- (a number here until its answer exists) or a conflict.
for i = 1, ng do
  local a, k = GA + 9 * (i - 1), GK + 5 * (i - 1)
  local fp, op = ARGV[a + 1], KEYS[k + 1]
  local first = taken[op]
  if first then
    if ARGV[GA + 9 * (first - 1) + 1] == fp then out[i] = first else out[i] = 'conflict' end
  else
    local done = redis.call('GET', op)
    if done then
      local sep = string.find(done, '\\n', 1, true)
      if string.sub(done, 1, sep - 1) ~= fp then out[i] = 'conflict'
      else out[i] = 'replay ' .. string.sub(done, sep + 1) end
    else
      local refused = check(a, k)
      if refused then out[i] = refused
      else taken[op] = i; go[#go + 1] = i; left[i] = coins[KEYS[k + 4]] end
    end
  end
end
if #go == 0 then return out end

-- 2: the writes. Journal entries and records per gift; balances and entry lists once
-- per key with the sums (Lua tables keep no order: lists of keys keep it).
local spent, senders = {}, {}
local earned, have, creators = {}, {}, {}
local carry, carried = {}, {}        -- creator number -> carry now; carry at the start
local ids, lists = {}, {}
local function push(key, id)
  local l = ids[key]
  if not l then l = {}; ids[key] = l; lists[#lists + 1] = key end
  l[#l + 1] = id
end
local platform, exchange, minted = 0, 0, 0
for _, i in ipairs(go) do
  local a, k = GA + 9 * (i - 1), GK + 5 * (i - 1)
  local c = tonumber(ARGV[a + 3])
  local ck = 3 + 7 * (c - 1)
  local cost, conv, p = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
  local w = KEYS[k + 4]
  if not spent[w] then spent[w] = 0; senders[#senders + 1] = w end
  spent[w] = spent[w] + cost
  if not earned[c] then
    earned[c] = 0; creators[#creators + 1] = c
    local h = redis.call('HMGET', KEYS[ck + 6], 'diamonds', 'carry')
    have[c] = tonumber(h[1] or '0')
    carry[c] = tonumber(h[2] or '0')
    carried[c] = carry[c]
  end
  local total = carry[c] + conv
  local d = math.floor(total / per)
  local after = total - d * per
  local moved = after - carry[c]
  carry[c] = after
  earned[c] = earned[c] + d
  have[c] = have[c] + d
  platform, exchange, minted = platform + p, exchange + d * per, minted + d
  local id = redis.call('XADD', KEYS[3], '*', 'e',
                        string.format(ARGV[a + 9], d, moved, d * per, 0 - d, d, after))
  push(KEYS[k + 5], id)
  push(KEYS[ck + 7], id)
  local result = id .. ' ' .. left[i] .. ' ' .. have[c] .. ' ' .. ARGV[a + 6] .. ' ' .. d ..
                 ' ' .. after
  redis.call('SET', KEYS[k + 1], ARGV[a + 1] .. '\\n' .. result)
  out[i] = 'ok ' .. result
end
-- 0 - x, not -x: -0 would reach Redis as '-0', not an integer
for _, w in ipairs(senders) do redis.call('HINCRBY', w, 'coins', 0 - spent[w]) end
for _, c in ipairs(creators) do
  redis.call('HINCRBY', KEYS[3 + 7 * (c - 1) + 6], 'diamonds', earned[c])
  if carry[c] ~= carried[c] then
    redis.call('HINCRBY', KEYS[3 + 7 * (c - 1) + 6], 'carry', carry[c] - carried[c])
  end
end
redis.call('HINCRBY', KEYS[1], 'coins', platform)
redis.call('HINCRBY', KEYS[2], 'coins', exchange)
redis.call('HINCRBY', KEYS[2], 'diamonds', 0 - minted)
for _, key in ipairs(lists) do redis.call('RPUSH', key, unpack(ids[key])) end
for i = 1, ng do
  if type(out[i]) == 'number' then out[i] = 'replay ' .. string.sub(out[out[i]], 4) end
end
return out
"""

# KEYS: 1 op, 2 user, 3 wallet:user, 4 wallet:@world, 5 journal, 6 log:user
# ARGV: 1 fingerprint, 2 coins, 3.. journal fields
PURCHASE = REPLAY + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'no_user'} end
local coins = tonumber(ARGV[2])
local balance = redis.call('HINCRBY', KEYS[3], 'coins', coins)
redis.call('HINCRBY', KEYS[4], 'coins', 0 - coins)
local id = redis.call('XADD', KEYS[5], '*', unpack(ARGV, 3))
redis.call('RPUSH', KEYS[6], id)
local result = id .. ' ' .. balance
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. result)
return {'ok', result}
"""

# A payment refused before it was credited (the buyer's age): recorded under the
# payment's id like a credit, so a replay answers the same refusal and a credit after
# it (the buyer has turned 18 since) is refused too, and the other way round.
# KEYS: 1 op. ARGV: 1 fingerprint (as PURCHASE's), 2 the result "refused <JSON error>"
REFUSE_PURCHASE = REPLAY + """
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2])
return {'ok', ARGV[2]}
"""

# KEYS: 1 op, 2 user, 3 wallet:user, 4 cashout day, 5 payout, 6 payouts, 7 journal, 8 log
# ARGV: 1 fingerprint, 2 diamonds, 3 daily cap, 4 payout id, 5 now ms, 6 adult cutoff,
# 7 user id, 8 day ttl s, 9.. journal fields
CASHOUT = REPLAY + """
local born = redis.call('HGET', KEYS[2], 'birthdate')
if not born then return {'no_user'} end
if born > ARGV[6] then return {'minor'} end
local want = tonumber(ARGV[2])
local have = tonumber(redis.call('HGET', KEYS[3], 'diamonds') or '0')
if have < want then return {'funds', tostring(have)} end
local today = tonumber(redis.call('GET', KEYS[4]) or '0')
if today + want > tonumber(ARGV[3]) then return {'cap', tostring(ARGV[3] - today)} end
redis.call('HINCRBY', KEYS[3], 'diamonds', 0 - want)
redis.call('HINCRBY', KEYS[3], 'pending', want)
redis.call('INCRBY', KEYS[4], want)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[8]))
local id = redis.call('XADD', KEYS[7], '*', unpack(ARGV, 9))
redis.call('HSET', KEYS[5], 'user', ARGV[7], 'diamonds', want, 'status', 'pending',
           'requested_at', ARGV[5], 'entry', id)
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[4])
redis.call('RPUSH', KEYS[8], id)
local result = id .. ' ' .. ARGV[4]
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. result)
return {'ok', result}
"""

# KEYS: 1 payout, 2 wallet:user, 3 journal, 4 log
# ARGV: 1 outcome (paid|returned), 2 diamonds, 3 now ms, 4 the field credited
# (paid|diamonds), 5.. journal fields
SETTLE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found'} end
if status == ARGV[1] then return {'replay'} end
if status ~= 'pending' then return {'conflict', status} end
if redis.call('HGET', KEYS[1], 'diamonds') ~= ARGV[2] then return {'changed'} end
local amount = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[2], 'pending') or '0') < amount then
  return {'corrupt'}
end
redis.call('HINCRBY', KEYS[2], 'pending', 0 - amount)
redis.call('HINCRBY', KEYS[2], ARGV[4], amount)
local id = redis.call('XADD', KEYS[3], '*', unpack(ARGV, 5))
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'settled_at', ARGV[3], 'settle_entry', id)
redis.call('RPUSH', KEYS[4], id)
return {'ok', id}
"""

# A page of a user's journal entry ids (keys.wallet_entries, oldest first): the `limit`
# newest ids older than `before` ('' for the newest), oldest first. `before` is mostly
# the last page's oldest id, found by LPOS from the tail (as far as the pages went);
# any other id by a binary search over the list (its ids ascend).
# KEYS: 1 wallet_entries:user; ARGV: 1 before ('' or a canonical "ms-seq"), 2 limit
HISTORY = """
local function num_less(a, b)  -- decimal strings without leading zeros
  if #a ~= #b then return #a < #b end
  return a < b
end
local function older(a, b)  -- stream id a before stream id b
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if ams ~= bms then return num_less(ams, bms) end
  return num_less(aseq, bseq)
end
local hi = redis.call('LLEN', KEYS[1])
local before = ARGV[1]
if before ~= '' and hi > 0 then
  local pos = redis.call('LPOS', KEYS[1], before, 'RANK', -1)
  if pos then
    hi = pos
  else
    local lo = 0
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if older(redis.call('LINDEX', KEYS[1], mid), before) then lo = mid + 1 else hi = mid end
    end
  end
end
if hi == 0 then return {} end
local lo = math.max(0, hi - tonumber(ARGV[2]))
return redis.call('LRANGE', KEYS[1], lo, hi - 1)
"""
