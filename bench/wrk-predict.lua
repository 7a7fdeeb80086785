-- wrk script for modelwatch's load benchmark: POST /v1/predict with varied bodies
-- (customers, terminals and amounts from the simulated population's id ranges).
-- Bodies are built once in init so Lua costs wrk as little as possible.
local bodies = {}
local n = 4096
local i = 0

init = function(args)
  local seed = tonumber(args[1] or "1")
  for k = 1, n do
    -- wrk runs LuaJIT (Lua 5.1): no integer division operator, floats only.
    local x = (k * 2654435761 + seed) % 4294967296
    local customer = math.floor(x % 5000)
    local terminal = math.floor(x / 5000) % 10000
    local amount = math.floor(x % 25000) / 100 + 1
    local body = string.format(
      '{"customer_id":"C%06d","terminal_id":"T%05d","amount":%.2f}',
      customer, terminal, amount)
    bodies[k] = wrk.format("POST", "/v1/predict",
      { ["Content-Type"] = "application/json" }, body)
  end
end

request = function()
  i = i % n + 1
  return bodies[i]
end
