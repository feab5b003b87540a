-- batch.lua - wrk script: NDJSON batch publish.
-- Each request carries BATCH_MSGS lines (default 100) of
-- {"body":"<BATCH_BYTES characters>"} (default 100), sent as
-- application/x-ndjson to the URL given to wrk. Messages per second are
-- req/s x BATCH_MSGS; done() prints the count of answers other than 201.
local msgs = tonumber(os.getenv("BATCH_MSGS") or "100")
local bytes = tonumber(os.getenv("BATCH_BYTES") or "100")
local threads = {}

local line = '{"body":"' .. string.rep("m", bytes) .. '"}\n'
wrk.method = "POST"
wrk.body = string.rep(line, msgs)
wrk.headers["Content-Type"] = "application/x-ndjson"

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	not201 = 0
end

function response(status, headers, body)
	if status ~= 201 then
		not201 = not201 + 1
	end
end

function done(summary, latency, requests)
	local bad = 0
	for _, t in ipairs(threads) do
		bad = bad + t:get("not201")
	end
	io.write(string.format("batch: %d messages per request, %d answers not 201\n",
		msgs, bad))
end
