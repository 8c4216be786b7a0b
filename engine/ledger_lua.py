"""The ledger's Lua scripts (engine/ledger.py runs them): one per operation.

Each validates everything before its first write (Lua does not roll back:
FIELD-NOTES, Redis), then moves the balances, appends the double-entry journal
entry and records the operation's id with its result.
"""

from __future__ import annotations


# Each script: the idempotency record first (so a replay answers the same even
# when the live has ended since), then every check, then the writes.
# The record is "fingerprint\nresult"; the fingerprint is the operation's parameters.
# With flat=True the script answers one string "status rest..." rather than a list:
# one RESP item to parse instead of three (the gift, on the hot path).
def replay_check(fingerprint: str, flat: bool = False) -> str:
    conflict = "'conflict'" if flat else "{'conflict'}"
    replay = ("'replay ' .. string.sub(done, sep + 1)" if flat
              else "{'replay', string.sub(done, sep + 1)}")
    return f"""
local fp = {fingerprint}
local done = redis.call('GET', KEYS[1])
if done then
  local sep = string.find(done, '\\n', 1, true)
  if string.sub(done, 1, sep - 1) ~= fp then return {conflict} end
  return {replay}
end
"""


REPLAY = replay_check("ARGV[1]")

# KEYS: 1 op, 2 live, 3 bans, 4 blocks:sender, 5 blocks:creator, 6 user:sender,
# 7 user:creator, 8 followers:creator, 9 wallet:sender, 10 wallet:creator,
# 11 wallet:@platform, 12 wallet:@exchange, 13 journal, 14 entries:sender,
# 15 entries:creator (keys.wallet_entries)
# ARGV: 1 fingerprint "sender|creator|live|gift|count", 2 sender, 3 creator, 4 live,
# 5 count, 6 coins, 7 diamonds, 8 platform coins, 9 adult cutoff, 10 min followers,
# 11 max count, 12 the journal entry (JSON, built by ledger._gift_call from the same values).
# Separate arguments, not one packed string split here with gmatch (~1.7 us more per
# call in Redis): PackedScript packs many arguments as cheaply as one.
GIFT = replay_check("ARGV[1]", flat=True) + """
local sender, creator, cost, diamonds = ARGV[2], ARGV[3], ARGV[6], ARGV[7]
if sender == creator then return 'self' end
local n = tonumber(ARGV[5])
if n < 1 or n > tonumber(ARGV[11]) then return 'count' end
if redis.call('HGET', KEYS[2], 'live_id') ~= ARGV[4] then return 'not_live' end
local sb = redis.call('HGET', KEYS[6], 'birthdate')
if not sb then return 'no_sender' end
local cb = redis.call('HGET', KEYS[7], 'birthdate')
if not cb then return 'no_creator' end
if redis.call('SISMEMBER', KEYS[3], sender) == 1 then return 'banned' end
if redis.call('SISMEMBER', KEYS[4], creator) == 1 then return 'blocking' end
if redis.call('SISMEMBER', KEYS[5], sender) == 1 then return 'blocked_by' end
local cutoff = ARGV[9]
if sb > cutoff then return 'sender_minor' end
if cb > cutoff then return 'creator_minor' end
if redis.call('ZCARD', KEYS[8]) < tonumber(ARGV[10]) then return 'followers' end
local c = tonumber(cost)
local have = tonumber(redis.call('HGET', KEYS[9], 'coins') or '0')
if have < c then return 'funds ' .. have end
local d, p = tonumber(diamonds), tonumber(ARGV[8])
-- 0 - x, not -x: -0 would reach Redis as '-0', not an integer
local sc = redis.call('HINCRBY', KEYS[9], 'coins', 0 - c)
local cd = redis.call('HINCRBY', KEYS[10], 'diamonds', d)
redis.call('HINCRBY', KEYS[11], 'coins', p)
redis.call('HINCRBY', KEYS[12], 'coins', c - p)
redis.call('HINCRBY', KEYS[12], 'diamonds', 0 - d)
local id = redis.call('XADD', KEYS[13], '*', 'e', ARGV[12])
redis.call('RPUSH', KEYS[14], id)
redis.call('RPUSH', KEYS[15], id)
local result = id .. ' ' .. sc .. ' ' .. cd .. ' ' .. cost .. ' ' .. diamonds
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. result)
return 'ok ' .. result
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
