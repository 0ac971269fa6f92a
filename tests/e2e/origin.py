"""A scriptable HTTP/1.1 origin for the end-to-end tests.

Run as `python3 origin.py PORT NAME`. Keep-alive, and a few endpoints
that let a test check exactly what storekeep forwarded:

  GET  /info            JSON: method, path, headers as received, the
                        connection's sequence number on this server
  POST /upload          reads the body (Content-Length or chunked) and
                        answers JSON {"length": N, "sha256": HEX}
  GET  /chunked?n=&size=  a chunked response of n chunks of size bytes
                        (byte i of the body is i % 251)
  GET  /slow?ms=        answers after ms milliseconds
  GET  /status?code=    answers with that status
  GET  /healthz         200, or 503 after POST /health/down
  POST /health/down|up  switch /healthz
  GET  /stats           JSON {"requests": N, "connections": N}
                        (not counted itself)
Every response carries X-Backend: NAME.
"""
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NAME = "origin"
LOCK = threading.Lock()
STATE = {"requests": 0, "connections": 0, "healthy": True}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with LOCK:
            STATE["connections"] += 1
            self.conn_no = STATE["connections"]

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", NAME)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            data = bytearray()
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def count(self):
        if urlparse(self.path).path != "/stats":
            with LOCK:
                STATE["requests"] += 1

    def do_GET(self):
        self.count()
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/info":
            self.send(200, json.dumps({
                "method": self.command, "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "connection": self.conn_no, "backend": NAME}))
        elif u.path == "/chunked":
            n = int(q.get("n", ["10"])[0])
            size = int(q.get("size", ["1000"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Backend", NAME)
            self.end_headers()
            pos = 0
            for _ in range(n):
                chunk = bytes((pos + i) % 251 for i in range(size))
                pos += size
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif u.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            self.send(200, '{"slow":true}')
        elif u.path == "/status":
            self.send(int(q.get("code", ["200"])[0]), "{}")
        elif u.path == "/healthz":
            self.send(200 if STATE["healthy"] else 503, "ok\n", "text/plain")
        elif u.path == "/stats":
            with LOCK:
                self.send(200, json.dumps(STATE))
        else:
            self.send(200, json.dumps({"backend": NAME, "path": self.path}))

    do_HEAD = do_GET

    def do_POST(self):
        self.count()
        u = urlparse(self.path)
        body = self.read_body()
        if u.path == "/upload":
            self.send(200, json.dumps({"length": len(body),
                                       "sha256": hashlib.sha256(body).hexdigest()}))
        elif u.path == "/health/down":
            STATE["healthy"] = False
            self.send(200, "{}")
        elif u.path == "/health/up":
            STATE["healthy"] = True
            self.send(200, "{}")
        else:
            self.send(200, json.dumps({"backend": NAME, "length": len(body)}))


def main():
    global NAME
    port = int(sys.argv[1])
    NAME = sys.argv[2] if len(sys.argv) > 2 else "origin"
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
