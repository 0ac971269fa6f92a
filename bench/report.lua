-- report.lua - makes wrk print its summary as one JSON line for bench/run.
--
-- Only the done() hook is set: hooks that run per request or per response
-- would slow wrk down, and wrk shares its CPU with the origin.
-- Latencies are in microseconds, as wrk measures them.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,' ..
    '"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    math.floor(latency.max),
    e.connect, e.read, e.write, e.status, e.timeout))
end
