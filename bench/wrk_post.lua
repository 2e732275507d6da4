-- wrk script: POST the body file(s) named in BENCH_BODY_FILES (colon-separated; several are sent
-- in turn) with the headers in BENCH_HEADERS (a flat JSON object), and print one machine-readable
-- summary line that bench/rig.py parses. When BENCH_BODY_REPLIES is set (one entry per body file,
-- colon-separated, "-" for none), each body is sent with the header BENCH_REPLY_HEADER set to its
-- entry: the upstream picks its reply by it.

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

-- BENCH_HEADERS is written by rig.py as {"Name": "value", ...} with plain ASCII strings only.
local function parse_headers(json)
  local headers = {}
  for name, value in string.gmatch(json or "", '"([^"]+)"%s*:%s*"([^"]*)"') do
    headers[name] = value
  end
  return headers
end

local requests = {}
local next_request = 0

function init(args)
  wrk.method = "POST"
  for name, value in pairs(parse_headers(os.getenv("BENCH_HEADERS"))) do
    wrk.headers[name] = value
  end
  local replies = {}
  for reply in string.gmatch(os.getenv("BENCH_BODY_REPLIES") or "", "[^:]+") do
    replies[#replies + 1] = reply
  end
  local reply_header = os.getenv("BENCH_REPLY_HEADER")
  for path in string.gmatch(os.getenv("BENCH_BODY_FILES") or "", "[^:]+") do
    local headers = nil
    local reply = replies[#requests + 1]
    if reply_header and reply and reply ~= "-" then
      headers = {}
      for name, value in pairs(wrk.headers) do
        headers[name] = value
      end
      headers[reply_header] = reply
    end
    requests[#requests + 1] = wrk.format(nil, nil, headers, read_file(path))
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
    e.connect, e.read, e.write, e.status, e.timeout))
end
