-- wrk script: POST prepared bodies, one per line of a file, round robin.
--
--   wrk ... -s bench/wrk-bodies.lua URL -- PATH FILE [CONTENT_TYPE]
--
-- Used by bench/collector.py for the collector's observations endpoint (each line a
-- {"events": [...]} batch) and the FastAPI example's /predict (each line one
-- transaction). Requests are formatted once in init, so Lua costs wrk next to nothing.
local requests = {}
local n = 0
local i = 0

function init(args)
  local path, file = args[1], args[2]
  local headers = { ["Content-Type"] = args[3] or "application/json" }
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      requests[n] = wrk.format("POST", path, headers, line)
    end
  end
  if n == 0 then
    error("no bodies in " .. file)
  end
  -- Threads start at different offsets of the same list.
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return requests[i]
end
