-- wrk script of ./pwg bench: prints the run's figures as one JSON line
-- ("WRK_JSON {...}") with exact percentiles (wrk's --latency table rounds and
-- has no p99.9), and optionally stops each thread after a number of
-- responses (WRK_MAX_REQUESTS, per thread): wrk itself only runs for a time.
local limit = tonumber(os.getenv("WRK_MAX_REQUESTS") or "0") or 0
local responses = 0

-- Defined only when a limit is asked for: wrk parses the responses of a
-- script that has a response() function, which costs throughput.
if limit > 0 then
  function response(status, headers, body)
    responses = responses + 1
    if responses >= limit then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local function ms(p) return latency:percentile(p) / 1000.0 end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_s": %.6f, "bytes": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "mean_ms": %.3f, "p50_ms": %.3f, '
      .. '"p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean / 1000.0, ms(50), ms(90), ms(99), latency.max / 1000.0))
end
