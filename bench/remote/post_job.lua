-- wrk script: POST /api/jobs with a no-op job (the URL given to wrk must end in /api/jobs).
wrk.method = "POST"
wrk.body = '{"task":"noop"}'
wrk.headers["Content-Type"] = "application/json"
