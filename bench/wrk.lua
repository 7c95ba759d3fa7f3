-- One wrk script for every target and mode, driven by environment variables, so the direct,
-- nginx and gateway runs send the same request apart from the path and the key.
--
--   BENCH_METHOD  GET or POST (default GET)
--   BENCH_BODY    request body (optional)
--   BENCH_AUTH    value of the Authorization header (optional)
--   BENCH_IDEM    "" (no Idempotency-Key), "new" (a fresh key per request) or "same" (one key,
--                 so every request after the first is a replay)
--   BENCH_DELAY   milliseconds each connection waits between requests (0 = closed loop)
--   BENCH_LABEL   copied into the result line
--
-- `done` prints one machine-readable line that bench/run collects:
--   RESULT label requests seconds rps p50_us p90_us p99_us p999_us max_us non2xx socket_errors

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local idem = os.getenv("BENCH_IDEM") or ""
local pause = tonumber(os.getenv("BENCH_DELAY") or "0")
local label = os.getenv("BENCH_LABEL") or "-"

wrk.method = method
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
if idem == "same" then
  -- One key for the whole run: the first request writes the record, every other replays it.
  wrk.headers["Idempotency-Key"] = "bench-replay-" .. (os.getenv("BENCH_RUN_ID") or "0")
end

local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

if idem == "new" then
  -- A fresh key per request (run id, thread, counter): every request is a first run, so each
  -- one claims and then completes an idempotency record in the database.
  local run_id = os.getenv("BENCH_RUN_ID") or "0"
  request = function()
    counter = counter + 1
    -- wrk.format does not merge headers, so copy the fixed ones.
    local headers = {}
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    headers["Idempotency-Key"] = "bench-" .. run_id .. "-" .. tostring(tid) .. "-" .. counter
    return wrk.format(nil, nil, headers, nil)
  end
end

if pause > 0 then
  delay = function()
    return pause
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  -- The last field repeats the timeouts alone: a held call that never came back is not a
  -- dropped connection.
  io.write(string.format("RESULT %s %d %.3f %.1f %d %d %d %d %d %d %d %d\n",
    label, summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout, e.timeout))
end
