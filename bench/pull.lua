-- pull.lua - wrk script: pull by offset from a backlog.
-- Walks offsets across the queues of PULL_TOPIC (default bench-pull):
--   GET /v1/topics/{topic}/queues/{q}/messages?offset=N&max=PULL_BATCH
-- PULL_MAX is the comma-separated maxOffset of queues 0, 1, ...; each
-- thread round-robins the queues from its own starting point and steps N
-- by PULL_BATCH, wrapping to 0 before a request could come back short, so
-- every answer should carry exactly PULL_BATCH messages.
--
-- Verification: every PULL_SAMPLE-th answer (default 16) has its "msgId"
-- occurrences counted; done() prints how many sampled answers were short
-- and how many answers were not 200. Set PULL_SAMPLE=0 to define no
-- response() hook at all (wrk's fast path; bench/run then checks the
-- bytes per answer instead). PULL_EXTRA is appended to every query
-- (bench/run points the script at the reference server with "&bytes=N").
local topic = os.getenv("PULL_TOPIC") or "bench-pull"
local batch = tonumber(os.getenv("PULL_BATCH") or "32")
local sample = tonumber(os.getenv("PULL_SAMPLE") or "16")
local extra = os.getenv("PULL_EXTRA") or ""
local maxes = {}
for v in string.gmatch(os.getenv("PULL_MAX") or "", "%d+") do
	table.insert(maxes, tonumber(v))
end
local threads = {}
local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("id", nthreads)
	table.insert(threads, thread)
end

function init(args)
	cursor = {}
	for q = 1, #maxes do
		-- Threads start a golden-ratio fraction of the queue apart, on a
		-- batch boundary, so they do not read the same pages in step.
		local frac = (id * 0.6180339887) % 1
		cursor[q] = math.floor(maxes[q] * frac / batch) * batch
	end
	nextq = id
	seen, checked, short, not200, msgs = 0, 0, 0, 0, 0
end

function request()
	local q = (nextq - 1) % #maxes + 1
	nextq = nextq + 1
	local off = cursor[q]
	if off + batch > maxes[q] then
		off = 0
	end
	cursor[q] = off + batch
	return wrk.format("GET", string.format(
		"/v1/topics/%s/queues/%d/messages?offset=%d&max=%d%s",
		topic, q - 1, off, batch, extra))
end

local function on_response(status, headers, body)
	seen = seen + 1
	if status ~= 200 then
		not200 = not200 + 1
		return
	end
	if seen % sample ~= 0 then
		return
	end
	local _, n = string.gsub(body, '"msgId"', "")
	checked = checked + 1
	msgs = msgs + n
	if n ~= batch then
		short = short + 1
	end
end

if sample > 0 then
	response = on_response
end

function done(summary, latency, requests)
	local c, s, b, m = 0, 0, 0, 0
	for _, t in ipairs(threads) do
		c = c + t:get("checked")
		s = s + t:get("short")
		b = b + t:get("not200")
		m = m + t:get("msgs")
	end
	io.write(string.format(
		"pull: sampled %d answers, %d messages (%.2f each), %d short, %d not 200\n",
		c, m, c > 0 and m / c or 0, s, b))
end
