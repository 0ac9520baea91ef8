-- wrk script for bench/load.py: counts every response by status, checks that
-- each 503 carries Retry-After, and prints one JSON line that load.py parses.
-- Usage: wrk -s bench/wrk_report.lua ... (optional: -- METHOD BODY)

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   statuses = {}
   missing_retry_after = 0
   if args[1] ~= nil then
      wrk.method = args[1]
   end
   if args[2] ~= nil then
      wrk.body = args[2]
      wrk.headers["Content-Type"] = "application/json"
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 503 and headers["Retry-After"] == nil and headers["retry-after"] == nil then
      missing_retry_after = missing_retry_after + 1
   end
end

function done(summary, latency, requests)
   local merged = {}
   local missing = 0
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses") or {}
      for status, n in pairs(counts) do
         merged[status] = (merged[status] or 0) + n
      end
      missing = missing + (thread:get("missing_retry_after") or 0)
   end
   local parts = {}
   for status, n in pairs(merged) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   local pct = {}
   for _, p in ipairs({50, 90, 99, 99.9}) do
      table.insert(pct, string.format('"%g": %d', p, latency:percentile(p)))
   end
   io.write(string.format(
      'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, "percentiles": {%s}}, ' ..
      '"statuses": {%s}, "missing_retry_after": %d}\n',
      summary.duration, summary.requests, summary.bytes,
      summary.errors.connect, summary.errors.read, summary.errors.write,
      summary.errors.status, summary.errors.timeout,
      latency.min, latency.mean, latency.max, latency.stdev, table.concat(pct, ", "),
      table.concat(parts, ", "), missing))
end
