-- publish.lua - wrk script: one message per request.
-- POST of a BODY_BYTES body (default 1024) to the URL given to wrk, e.g.
-- http://127.0.0.1:PORT/v1/topics/bench/messages. No response() hook, so
-- wrk stays on its fast path; it still counts non-2xx answers itself.
local n = tonumber(os.getenv("BODY_BYTES") or "1024")

wrk.method = "POST"
wrk.body = string.rep("x", n)
wrk.headers["Content-Type"] = "application/octet-stream"
