-- Tollgate's fleet ledger: the budgets and rate limits every replica shares.
--
-- One script, one round trip per call. ARGV[1] names the operation, ARGV[2] is the
-- clock of the caller (Unix ms) and ARGV[3] a JSON payload built by the host
-- (host/src/ledger/fleet/mod.rs), which also builds every key name: all of one call's
-- keys share the tenant's hash tag, "tg:{tenant}:".
--
-- Counters: a calendar window is a hash {r, t, c} (requests, tokens, nano-USD) per
-- bucket; a rolling window is, per metric ("<key>:<metric>"), a hash of its sub-buckets
-- by index (at most sixty-one count, older ones are pruned);
-- an exact rate limit is a sorted set of admissions (member: reservation id, score:
-- admission ms). Reservations: the limited scopes' reserved totals ("v:" hashes, one
-- field per metric a limit reads), the held record in the tenant's "res" hash and its
-- lease in the tenant's "leases" sorted set.

local op, now = ARGV[1], tonumber(ARGV[2])
local arg = cjson.decode(ARGV[3])

local function num(v)
  return tonumber(v) or 0
end

-- Takes a reservation out: its estimate leaves the reserved totals; with `unlog`
-- (the request never ran) its admissions leave the exact logs too. Returns whether
-- it was still held (a lease that expired has already been taken out).
local function release(prefix, id, unlog)
  redis.call('ZREM', prefix .. 'leases', id)
  local raw = redis.call('HGET', prefix .. 'res', id)
  if not raw then
    return false
  end
  redis.call('HDEL', prefix .. 'res', id)
  local hold = cjson.decode(raw)
  for _, r in ipairs(hold.r) do
    if redis.call('HINCRBY', r[1], r[2], -r[3]) <= 0 then
      redis.call('HDEL', r[1], r[2])
    end
  end
  if unlog then
    for _, x in ipairs(hold.x) do
      redis.call('ZREM', x, id)
    end
  end
  return true
end

-- Reservations whose replica stopped renewing them: released, so a dead replica's
-- estimates do not hold a budget forever. Bounded per call; every admission runs it.
local function purge(prefix)
  local dead = redis.call('ZRANGEBYSCORE', prefix .. 'leases', '-inf', now, 'LIMIT', 0, 256)
  for _, id in ipairs(dead) do
    release(prefix, id, true)
  end
end

-- Settled usage of a limit's window, in the metric's unit.
local function settled(l)
  if l.k == 'c' then
    return num(redis.call('HGET', l.key, l.m))
  elseif l.k == 'r' then
    local sum, low = 0, l.cur - 60
    local buckets = redis.call('HGETALL', l.key .. ':' .. l.m)
    for i = 1, #buckets, 2 do
      if num(buckets[i]) >= low then
        sum = sum + num(buckets[i + 1])
      end
    end
    return sum
  else
    return redis.call('ZCOUNT', l.key, '(' .. (now - l.len), '+inf')
  end
end

-- Usage held against a limit: settled plus reserved (an exact log already holds
-- in-flight admissions).
local function current(l)
  local s = settled(l)
  if l.k == 'x' then
    return s
  end
  return s + num(redis.call('HGET', l.v, l.m))
end

-- When usage would come down to `target` without new traffic, reserved estimates
-- settling now; 0: the host knows (calendar), -1: not within the window.
local function resets_at(l, used, target)
  if l.k == 'c' or target < 0 then
    return target < 0 and -1 or 0
  end
  if l.k == 'x' then
    local k = used - target
    local hit = redis.call('ZRANGEBYSCORE', l.key, '(' .. (now - l.len), '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
    if hit[2] then
      return num(hit[2]) + l.len
    end
    return -1
  end
  local by = {}
  local buckets = redis.call('HGETALL', l.key .. ':' .. l.m)
  for i = 1, #buckets, 2 do
    by[num(buckets[i])] = num(buckets[i + 1])
  end
  local acc = used
  for i = l.cur - 60, l.cur do
    acc = acc - (by[i] or 0)
    if acc <= target then
      return (i + 1) * l.w + l.len
    end
  end
  return -1
end

if op == 'admit' then
  purge(arg.p)
  -- Limits first enforced by this replica: listed for every replica's budget view.
  if #arg.reg > 0 then
    for _, r in ipairs(arg.reg) do
      redis.call('HSET', arg.p .. 'limits', r[1], r[2])
    end
    redis.call('PEXPIRE', arg.p .. 'limits', arg.ttl)
  end
  for i, l in ipairs(arg.limits) do
    local used = current(l)
    local over, target
    if arg.fits then
      over, target = used + l.est > l.cap, l.cap - l.est
    else
      over, target = used >= l.cap, l.cap - 1
    end
    if over then
      return { 0, i, used, resets_at(l, used, target) }
    end
  end
  for _, r in ipairs(arg.r) do
    redis.call('HINCRBY', r[1], r[2], r[3])
  end
  redis.call('HSET', arg.p .. 'res', arg.id, arg.hold)
  redis.call('ZADD', arg.p .. 'leases', arg['until'], arg.id)
  for _, l in ipairs(arg.limits) do
    if l.k == 'x' then
      redis.call('ZREMRANGEBYSCORE', l.key, '-inf', now - l.len)
      redis.call('ZADD', l.key, now, arg.id)
      redis.call('PEXPIRE', l.key, l.len * 2)
    end
  end
  return { 1 }
elseif op == 'settle' then
  -- A settlement retried after a timeout may already have run: count it once.
  if redis.call('ZADD', arg.done, 'NX', arg.seq, arg.seq) == 0 then
    return {}
  end
  redis.call('ZREMRANGEBYRANK', arg.done, 0, -(arg.keep + 1))
  redis.call('PEXPIRE', arg.done, 86400000)
  if arg.id ~= nil and arg.id ~= cjson.null then
    release(arg.p, arg.id, false)
  end
  -- The windows this request's limits read, on their scopes: from now on every
  -- settlement in those scopes counts in them.
  for _, w in ipairs(arg.win) do
    redis.call('HSET', w[1], w[2], w[3])
    redis.call('PEXPIRE', w[1], arg.ttl)
  end
  local a = arg.a
  local fields = { 'r', 't', 'c' }
  -- Usage counts only in the windows some limit reads: a scope no limit reads costs
  -- nothing here.
  for _, s in ipairs(arg.scopes) do
    local windows = redis.call('HGETALL', s.w)
    for i = 1, #windows, 2 do
      local field, w = windows[i], num(windows[i + 1])
      local period = string.match(field, '^c:(.+)$')
      if period then
        local cal = arg.cal[period]
        if cal then
          local key = s.c .. period .. ':' .. cal[1]
          for m = 1, 3 do
            if a[m] ~= 0 then redis.call('HINCRBY', key, fields[m], a[m]) end
          end
          if cal[2] > 0 then
            redis.call('PEXPIRE', key, cal[2])
          end
        end
      elseif w > 0 then
        local cur = math.floor(now / w)
        for m = 1, 3 do
          if a[m] ~= 0 then
            local key = field .. ':' .. fields[m]
            redis.call('HINCRBY', key, cur, a[m])
            redis.call('PEXPIRE', key, w * 122)
            -- Sub-buckets that left the window go, so a read sums at most 61 and a
            -- few.
            if redis.call('HLEN', key) > 64 then
              for _, f in ipairs(redis.call('HKEYS', key)) do
                if num(f) < cur - 60 then
                  redis.call('HDEL', key, f)
                end
              end
            end
          end
        end
      end
    end
  end
  -- Thresholds crossed by this settlement, each fired once per window across the
  -- fleet: the first replica to set the marker sends the alert.
  local fired = {}
  for i, l in ipairs(arg.alerts) do
    local after = settled(l)
    -- An exact log's count includes admissions not settled yet: only `after` decides.
    local before = -1
    if l.k ~= 'x' then
      before = after - l.a
    end
    for _, t in ipairs(l.ts) do
      local line = l.cap * t
      if before * 100 < line and after * 100 >= line then
        local ok
        if l.ttl > 0 then
          ok = redis.call('SET', l.once .. t, '1', 'NX', 'PX', l.ttl)
        else
          ok = redis.call('SET', l.once .. t, '1', 'NX')
        end
        if ok then
          fired[#fired + 1] = { i, t, after }
        end
      end
    end
  end
  return fired
elseif op == 'release' then
  return release(arg.p, arg.id, true) and 1 or 0
elseif op == 'renew' then
  local n = 0
  for i = 1, #arg.ids, 500 do
    local pairs_ = {}
    for j = i, math.min(i + 499, #arg.ids) do
      pairs_[#pairs_ + 1] = arg['until']
      pairs_[#pairs_ + 1] = arg.ids[j]
    end
    n = n + redis.call('ZADD', arg.p .. 'leases', 'XX', 'CH', unpack(pairs_))
  end
  return n
elseif op == 'read' then
  -- A dead replica's expired estimates are not shown as held.
  for _, p in ipairs(arg.purge) do
    purge(p)
  end
  local out = {}
  for i, l in ipairs(arg.limits) do
    local s = settled(l)
    local held = 0
    if l.k ~= 'x' then
      held = num(redis.call('HGET', l.v, l.m))
    end
    out[i] = { s, held }
  end
  return out
elseif op == 'usage' then
  -- A plugin reads a scope's usage (the `usage` host import): the window is registered
  -- on the scope, so from now on every settlement in it counts there, and the reply
  -- says whether it already was (else the fleet's count starts now), then each
  -- metric's {settled, held}.
  purge(arg.p)
  local known = 1
  for _, w in ipairs(arg.win) do
    if redis.call('HSETNX', w[1], w[2], w[3]) == 1 then
      known = 0
    end
    redis.call('PEXPIRE', w[1], arg.ttl)
  end
  local out = { known }
  for i, l in ipairs(arg.limits) do
    local held = 0
    if l.k ~= 'x' then
      held = num(redis.call('HGET', l.v, l.m))
    end
    out[i + 1] = { settled(l), held }
  end
  return out
elseif op == 'seed' then
  -- Windows Redis starts counting late get the usage the request log already holds
  -- in them (host/src/ledger/fleet/history.rs), once: registering a window and adding
  -- its past happen together, so replicas racing to seed it seed it once. Amounts
  -- arrive as text ({index, {requests, tokens, nano-USD}}) to stay exact.
  local fields = { 'r', 't', 'c' }
  local n = 0
  for _, s in ipairs(arg.seeds) do
    if redis.call('HSETNX', s.w, s.f, s.v) == 1 then
      redis.call('PEXPIRE', s.w, arg.ttl)
      n = n + 1
      for _, a in ipairs(s.a) do
        for m = 1, 3 do
          local v = a[2][m]
          if v ~= '0' then
            local key = s.key
            local field = fields[m]
            if s.k == 'r' then
              key = s.key .. ':' .. fields[m]
              field = a[1]
            end
            redis.call('HINCRBY', key, field, v)
            if s.ttl > 0 then
              redis.call('PEXPIRE', key, s.ttl)
            end
          end
        end
      end
    end
  end
  return n
end
return redis.error_reply('unknown ledger operation ' .. tostring(op))
