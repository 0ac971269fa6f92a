#!/usr/bin/python3
"""A webhook receiver for test_notify.c: records every request it gets.

usage: webhook_sink.py PORT_FILE LOG_FILE

Listens on 127.0.0.1, on a port the kernel picks, and writes that port
to PORT_FILE (atomically: a temporary file renamed) once it accepts
connections. Every POST is appended to LOG_FILE as one JSON line
{"path", "headers", "body"} before it is answered, so a test that sees
the line knows the request arrived. Answers by path:

  /fail/N/...  500 to the first N requests on that path, then 200
  /reject      400 "no such hook"
  /slow        200 after 3 seconds (longer than the tests' timeouts)
  anything else  200 "ok"
"""
import http.server
import json
import os
import sys
import threading
import time

PORT_FILE, LOG_FILE = sys.argv[1], sys.argv[2]
lock = threading.Lock()
seen = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8", "replace")
        with lock:
            seen[self.path] = seen.get(self.path, 0) + 1
            count = seen[self.path]
            with open(LOG_FILE, "a") as f:
                f.write(json.dumps({"path": self.path,
                                    "headers": dict(self.headers),
                                    "body": body}) + "\n")
        parts = self.path.split("/")
        if len(parts) > 2 and parts[1] == "fail" and count <= int(parts[2]):
            self.answer(500, "try again later")
        elif self.path == "/reject":
            self.answer(400, "no such hook")
        elif self.path == "/slow":
            time.sleep(3)
            self.answer(200, "late")
        else:
            self.answer(200, "ok")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
