-- wrk script: bench/wrk-bodies.lua's bodies at about a fixed rate.
--
--   wrk ... -s bench/wrk-bodies-paced.lua URL -- PATH FILE CONTENT_TYPE RATE CONNECTIONS
--
-- Each connection waits CONNECTIONS / RATE seconds before each request, so the
-- rate is a little under RATE (the answer's own time adds to the wait). Used by
-- bench/collector.py to compare the FastAPI app's CPU per request with and without
-- the client at the same, unsaturated rate. (A file of its own because wrk decides
-- whether a script paces when it loads it.)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk-bodies.lua")

local unpaced_init = init
local wait_ms = 0

init = function(args)
  unpaced_init(args)
  local rate, connections = tonumber(args[4]), tonumber(args[5])
  wait_ms = math.floor(connections * 1000 / rate + 0.5)
end

delay = function()
  return wait_ms
end
