-- wrk script for modelwatch's load benchmark: POST /v1/predict (or the Open
-- Inference Protocol's infer) with varied bodies. Bodies are built once in init so
-- Lua costs wrk as little as possible.
--
--   wrk ... -s bench/wrk-predict.lua URL -- [MIX] [SEED] [CUSTOMERS] [TERMINALS] [BODIES] [PROTOCOL]
--
-- PROTOCOL (default v1):
--   v1        POST /v1/predict, one transaction
--   v1-batch  POST /v1/predict/batch with that one transaction (the scoring path
--             the v2 infer shares)
--   v2        POST /v2/models/fraud/infer, the same transaction as one tensor row (amount
--             FP64 [1], customer_id and terminal_id BYTES [1]; JSON in and out,
--             every output)
-- The same MIX and SEED give the same transactions in all three.
--
-- Ids are in the store's format (customers C000123, six digits; terminals T00042,
-- five digits). The seeded store holds customers 0 .. CUSTOMERS-1 and terminals
-- 0 .. TERMINALS-1 (the simulated population, default 5,000 and 10,000); an id at or
-- past those is unknown to it.
--
-- MIX (default uniform):
--   uniform    every id known, spread evenly over the population (cache-friendly:
--              the whole population fits in the cache); 4,096 bodies
--   realistic  80% of requests from a hot set (2% of the customers and terminals),
--              19% from the rest of the population, 1% unknown ids
--   unknown    a flood of random ids that are not in the store
local bodies = {}
local n = 0
local i = 0
-- Requests sent, read by bench/wrk-paced.lua.
sent = 0

local protocol = "v1"

local function body(customer, terminal, amount)
  if protocol == "v2" then
    return wrk.format("POST", "/v2/models/fraud/infer", { ["Content-Type"] = "application/json" },
      string.format('{"inputs":[{"name":"amount","datatype":"FP64","shape":[1],"data":[%.2f]},'
        .. '{"name":"customer_id","datatype":"BYTES","shape":[1],"data":["C%06d"]},'
        .. '{"name":"terminal_id","datatype":"BYTES","shape":[1],"data":["T%05d"]}]}',
        amount, customer, terminal))
  end
  local transaction = string.format('{"customer_id":"C%06d","terminal_id":"T%05d","amount":%.2f}',
    customer, terminal, amount)
  if protocol == "v1-batch" then
    return wrk.format("POST", "/v1/predict/batch", { ["Content-Type"] = "application/json" },
      '{"transactions":[' .. transaction .. ']}')
  end
  return wrk.format("POST", "/v1/predict", { ["Content-Type"] = "application/json" }, transaction)
end

init = function(args)
  local mix = args[1] or "uniform"
  local seed = tonumber(args[2] or "1")
  local customers = tonumber(args[3] or "5000")
  local terminals = tonumber(args[4] or "10000")
  n = tonumber(args[5] or (mix == "uniform" and "4096" or "65536"))
  if n == 0 then
    n = mix == "uniform" and 4096 or 65536
  end
  protocol = args[6] or "v1"
  if protocol ~= "v1" and protocol ~= "v1-batch" and protocol ~= "v2" then
    error("unknown protocol " .. protocol .. "; use v1, v1-batch or v2")
  end
  math.randomseed(seed)
  if mix == "uniform" then
    for k = 1, n do
      -- wrk runs LuaJIT (Lua 5.1): no integer division operator, floats only.
      local x = (k * 2654435761 + seed) % 4294967296
      bodies[k] = body(math.floor(x % customers), math.floor(x / customers) % terminals,
        math.floor(x % 25000) / 100 + 1)
    end
  elseif mix == "realistic" then
    local hot_customers, hot_terminals = {}, {}
    for k = 1, math.max(1, math.floor(customers / 50)) do
      hot_customers[k] = math.random(0, customers - 1)
    end
    for k = 1, math.max(1, math.floor(terminals / 50)) do
      hot_terminals[k] = math.random(0, terminals - 1)
    end
    for k = 1, n do
      local r = math.random()
      local customer, terminal
      if r < 0.80 then
        customer = hot_customers[math.random(#hot_customers)]
        terminal = hot_terminals[math.random(#hot_terminals)]
      elseif r < 0.99 then
        customer = math.random(0, customers - 1)
        terminal = math.random(0, terminals - 1)
      else
        customer = math.random(customers, 999999)
        terminal = math.random(terminals, 99999)
      end
      bodies[k] = body(customer, terminal, math.random(100, 25000) / 100)
    end
  elseif mix == "unknown" then
    for k = 1, n do
      bodies[k] = body(math.random(customers, 999999), math.random(terminals, 99999),
        math.random(100, 25000) / 100)
    end
  else
    error("unknown mix " .. mix .. "; use uniform, realistic or unknown")
  end
end

request = function()
  i = i % n + 1
  sent = sent + 1
  return bodies[i]
end
