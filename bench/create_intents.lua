-- wrk script of bench/create_intents.py: POST /v1/payment_intents as Stripe's SDKs send it (form body, Bearer key).
--
--   wrk ... -s bench/create_intents.lua http://127.0.0.1:PORT -- <secret key> <idempotency 0|1> <run tag>
--
-- Every request carries a unique metadata[order_id] (<run tag>-<thread>-<counter>); with idempotency 1 it also
-- sends a unique Idempotency-Key (the same string), as the SDKs do on every POST. `done` prints one line,
-- "BENCH sent=N", the number of requests written: sent - completed = requests still in flight when wrk stopped.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  key = args[1]
  idempotent = args[2] == "1"
  tag = args[3] or "run"
  sent = 0
  prefix = tag .. "-" .. tostring(id) .. "-"
  wrk.method = "POST"
  wrk.path = "/v1/payment_intents"
  wrk.headers["Authorization"] = "Bearer " .. key
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  sent = sent + 1
  local order = prefix .. tostring(sent)
  local body = "amount=1234&currency=usd&metadata%5Border_id%5D=" .. order
  -- wrk.format uses the table it is given instead of wrk.headers, so the key goes into wrk.headers itself.
  if idempotent then
    wrk.headers["Idempotency-Key"] = order
  end
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("sent") or 0)
  end
  io.write(string.format("BENCH sent=%d\n", total))
end
