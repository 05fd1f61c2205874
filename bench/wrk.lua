-- One request shape for wrk, taken from the environment (bench/run.py sets it), and a
-- summary printed as one JSON line so the harness can read exact percentiles.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"

local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["authorization"] = auth
end
local meta = os.getenv("BENCH_META")
if meta and meta ~= "" then
  wrk.headers["x-portkey-metadata"] = meta
end
local extra = os.getenv("BENCH_HEADERS")
if extra and extra ~= "" then
  -- "name: value" pairs separated by "\n" (for the peers' own routing headers)
  for line in string.gmatch(extra, "[^\n]+") do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    if name then
      wrk.headers[name] = value
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
