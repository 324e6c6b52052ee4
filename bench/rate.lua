-- wrk script: pre-signed POSTs from a file, at a constant rate (or as fast as possible).
--
--   wrk -t T -c C -d D --latency --timeout 30s -s bench/rate.lua URL -- FILE RATE T PATH
--
-- FILE has one request per line: "<X-Smarttalk-Signature value>\t<JSON body>" (bench/load.py
-- writes it right before the run, so the timestamps are inside the 300 s replay window). Thread k
-- of T takes lines k, k+T, k+2T, ... and cycles through them.
--
-- RATE > 0 makes the load open-loop in the way wrk2 does it: each thread keeps a schedule of send
-- times RATE/T apart, and a connection that becomes free waits (delay()) until the next slot of
-- that schedule. A slot taken more than 1 ms after its time means every connection was busy: it is
-- counted as "late", and a run with late slots is reported as such (its latencies would be
-- coordinated-omission optimistic). RATE = 0 is wrk's usual closed loop.
--
-- done() prints one line "BENCH_JSON {...}" with the latency percentiles (microseconds, from
-- wrk's own histogram), the status codes seen and the late count.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- main state: count threads, keep them for done()
local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

-- thread state
local reqs = {}
local idx = 0
local interval = nil
local next_at = nil
local verified = true
codes = {}
late = 0
sent = 0

function init(args)
  local file, rate, nthreads, path = args[1], tonumber(args[2]), tonumber(args[3]), args[4] or "/"
  local line_no = 0
  for line in io.lines(file) do
    if line_no % nthreads == tid then
      local tab = string.find(line, "\t", 1, true)
      local sig, body = string.sub(line, 1, tab - 1), string.sub(line, tab + 1)
      local headers = { ["Content-Type"] = "application/json" }
      if sig ~= "" then headers["X-Smarttalk-Signature"] = sig end
      reqs[#reqs + 1] = wrk.format("POST", path, headers, body)
    end
    line_no = line_no + 1
  end
  if #reqs == 0 then reqs[1] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, "{}") end
  verified = tid ~= 0
  if rate > 0 then interval = 1000.0 * nthreads / rate end
end

function delay()
  if interval == nil then return 0 end
  local now = now_ms()
  if next_at == nil then next_at = now + interval * tid / 2 end
  local wait = next_at - now
  next_at = next_at + interval
  if wait < -1 then late = late + 1 end
  if wait < 0 then return 0 end
  return wait
end

function request()
  if not verified then
    -- wrk calls request() once on thread 0's state before the run (script_verify_request) and
    -- never sends that one: do not use up a line for it.
    verified = true
    return reqs[1]
  end
  idx = idx % #reqs + 1
  sent = sent + 1
  return reqs[idx]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local all_codes, all_late, all_sent = {}, 0, 0
  for _, t in ipairs(threads) do
    local c = t:get("codes") or {}
    for k, v in pairs(c) do all_codes[k] = (all_codes[k] or 0) + v end
    all_late = all_late + (t:get("late") or 0)
    all_sent = all_sent + (t:get("sent") or 0)
  end
  local code_parts = {}
  for k, v in pairs(all_codes) do code_parts[#code_parts + 1] = string.format('"%d":%d', k, v) end
  local pct = {}
  for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
    pct[#pct + 1] = string.format('"p%s":%d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"sent":%d,"duration_us":%d,"late":%d,"codes":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{%s,"min":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, all_sent, summary.duration, all_late, table.concat(code_parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(pct, ","), latency.min, latency.max, latency.mean))
end
