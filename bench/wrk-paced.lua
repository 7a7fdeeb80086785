-- wrk script for bench/soak.py: bench/wrk-predict.lua's bodies at a fixed rate.
--
--   wrk ... -s bench/wrk-paced.lua URL -- MIX SEED CUSTOMERS TERMINALS BODIES PROTOCOL RATE
--
-- RATE is requests/s for this wrk thread. wrk has no rate limit, so each connection
-- waits before its next request. wrk's delay() takes whole milliseconds: the wait is
-- dithered (one more millisecond with probability p) and its mean is corrected once
-- a wall-clock second against the requests sent in that second. The rate holds on
-- average over seconds, not request by request; bench/soak.py reports what it reached.
-- (A separate file because wrk decides whether a script paces when it loads it,
-- before init sees the arguments.)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk-predict.lua")

local unpaced_init = init
local rate = 0
init = function(args)
  unpaced_init(args)
  rate = tonumber(args[7] or "0")
end

-- The mean wait in ms, and the wall-clock second being counted.
local wait, second, counted = 0, 0, 0

delay = function()
  if rate <= 0 then
    return 0
  end
  local now = os.time()
  if now ~= second then
    if second ~= 0 then
      local in_second = sent - counted
      -- Proportional correction: too many requests means longer waits.
      wait = math.max(0, wait + 0.5 * (in_second - rate) / rate * math.max(wait, 0.2))
    end
    second, counted = now, sent
  end
  local whole = math.floor(wait)
  if math.random() < wait - whole then
    return whole + 1
  end
  return whole
end
