-- wrk script: every request is a POST of a 16 KiB body (bench/apps.py:echo
-- reads it from wsgi.input and sends it back). wrk adds Content-Length.
wrk.method = "POST"
wrk.body = string.rep("abcdefghijklmnop", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
