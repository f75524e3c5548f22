-- load.lua: the request mix wrk sends to ebb-demo.
--   wrk -s demo/load.lua http://127.0.0.1:PORT -- PHASE_SECONDS KEY_SPACE REPORT_EVERY
--
-- Mix: 35% POST /ingest (a quarter of them long-lived), 40% GET /item,
-- 25% GET /search, and 1 in REPORT_EVERY requests (default 20000, about one
-- every 2 s here) a GET /report that holds a 16-64 MiB working set.
-- The size mix changes every PHASE_SECONDS: phase A sends small bodies and
-- asks for small searches, phase B large ones (fragmentation shows at the
-- change: holes left between small long-lived records do not fit big ones).

local threads = {}

function setup(thread)
  thread:set("thread_number", #threads + 1)
  table.insert(threads, thread)
end

local form_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

-- Any substring of this pool is a plausible form body ("name=value&...").
local function build_pool(bytes)
  local parts, size, i = {}, 0, 0
  while size < bytes do
    i = i + 1
    local part = "field" .. (i % 997) .. "=" .. string.rep(string.char(97 + i % 26), 1 + (i * 7) % 60) .. "&"
    parts[#parts + 1] = part
    size = size + #part
  end
  return table.concat(parts)
end

function init(args)
  phase_seconds = tonumber(args[1]) or 30
  key_space = tonumber(args[2]) or 50000
  report_share = 1 / (tonumber(args[3]) or 20000)
  math.randomseed(thread_number * 7919 + os.time())
  pool = build_pool(600 * 1024)
  started = os.time()
end

-- log-uniform in [lo, hi]: as many small values as large ones per doubling
local function log_uniform(lo, hi)
  return math.floor(lo * (hi / lo) ^ math.random())
end

function request()
  local phase_b = math.floor((os.time() - started) / phase_seconds) % 2 == 1
  if math.random() < report_share then
    return wrk.format("GET", "/report?mb=" .. math.random(16, 64))
  end
  local r = math.random()
  if r < 0.35 then
    local len = phase_b and log_uniform(8192, 262144) or log_uniform(256, 8192)
    local offset = math.random(1, #pool - len)
    local path
    if math.random() < 0.25 then
      -- long-lived keys live in their own range so short inserts never replace them
      path = "/ingest/" .. (key_space + math.random(key_space)) .. "?tier=long"
    else
      path = "/ingest/" .. math.random(key_space) .. "?tier=short"
    end
    return wrk.format("POST", path, form_headers, pool:sub(offset, offset + len - 1))
  elseif r < 0.75 then
    return wrk.format("GET", "/item/" .. math.random(2 * key_space))
  else
    local n = phase_b and log_uniform(100, 3000) or log_uniform(5, 300)
    return wrk.format("GET", "/search?n=" .. n)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d errors=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
