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
  GET  /stats           JSON {"requests": N, "connections": N,
                        "open": N, "active": N, "max_active": N,
                        "methods": {...},
                        "paths": {...}} (not counted itself)
  POST /stats/reset     zeroes requests, max_active, methods, paths
  POST /fail?mode=...   how every request that is not a control request
                        (/stats*, /fail, /health/*, /healthz) is served
                        from now on: mode=off (normally), status&code=N
                        (answer N), reset (read the request, then reset
                        the connection), close (read it, then close
                        without answering), hang (read it, never
                        answer), delay&ms=N (answer normally after N ms)
  POST /idle?ms=N       close a kept-alive connection after N ms without
                        a request (0: keep it until the peer closes)
  GET  /count?key=K     the number of requests seen with ?key=K, or with
                        header X-Key: K (not counted itself)
Every response carries X-Backend: NAME. Each response goes out in one
write with TCP_NODELAY, so a test never waits on Nagle and delayed ACKs
and a process killed mid-answer has sent all of a response or none.
"""
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NAME = "origin"
LOCK = threading.Lock()
STATE = {"requests": 0, "connections": 0, "open": 0, "healthy": True, "active": 0,
         "max_active": 0, "methods": {}, "paths": {}}
FAIL = {"mode": "off", "code": 500, "ms": 0}
IDLE = {"ms": 0}  # close a keep-alive connection idle this long; 0: never
KEYS = {}
CONTROL = ("/stats", "/stats/reset", "/fail", "/idle", "/health/down",
           "/health/up", "/healthz", "/count")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    reset_on_finish = False

    def finish(self):
        with LOCK:
            STATE["open"] -= 1
        if self.reset_on_finish:
            # SO_LINGER 0: close() sends RST instead of FIN.
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            except OSError:
                pass
            for f in (self.wfile, self.rfile):
                try:
                    f.close()
                except OSError:
                    pass
            self.connection.close()
            return
        super().finish()

    def setup(self):
        super().setup()
        with LOCK:
            STATE["connections"] += 1
            STATE["open"] += 1
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
        # Head and body in one write (see the module comment).
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        if self.command != "HEAD":
            data += body
        self.wfile.write(data)

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
        path = urlparse(self.path).path
        if path not in ("/stats", "/stats/reset", "/fail", "/idle", "/count"):
            with LOCK:
                STATE["requests"] += 1
                STATE["methods"][self.command] = STATE["methods"].get(self.command, 0) + 1
                STATE["paths"][path] = STATE["paths"].get(path, 0) + 1
                key = parse_qs(urlparse(self.path).query).get("key", [None])[0] \
                    or self.headers.get("X-Key")
                if key:
                    KEYS[key] = KEYS.get(key, 0) + 1

    def handle_one_request(self):
        # Waiting for the next request on a kept-alive connection: close it
        # after IDLE ms, as servers with a short keep-alive timeout do.
        self.connection.settimeout(IDLE["ms"] / 1000 if IDLE["ms"] else None)
        super().handle_one_request()

    def tracked(self, fn):
        """Runs fn, counting it in active/max_active unless it is a
        control request."""
        if urlparse(self.path).path in CONTROL:
            return fn()
        with LOCK:
            STATE["active"] += 1
            STATE["max_active"] = max(STATE["max_active"], STATE["active"])
        try:
            return fn()
        finally:
            with LOCK:
                STATE["active"] -= 1

    def failing(self):
        """Applies the failure mode to a non-control request; True when
        the request has been dealt with."""
        if urlparse(self.path).path in CONTROL or FAIL["mode"] == "off":
            return False
        mode = FAIL["mode"]
        if mode == "delay":
            time.sleep(FAIL["ms"] / 1000)
            return False
        if self.command in ("POST", "PUT", "PATCH"):
            self.read_body()
        if mode == "status":
            self.send(FAIL["code"], '{"failing":true}')
        elif mode == "reset":
            self.reset_on_finish = True
            self.close_connection = True
        elif mode == "close":
            self.close_connection = True
        elif mode == "hang":
            time.sleep(3600)
        return True

    def do_GET(self):
        self.tracked(self.get)

    def do_POST(self):
        self.tracked(self.post)

    do_HEAD = do_GET
    do_OPTIONS = do_GET
    do_PUT = do_POST
    do_DELETE = do_POST
    do_PATCH = do_POST

    def get(self):
        self.count()
        if self.failing():
            return
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/count":
            key = q.get("key", [""])[0]
            with LOCK:
                self.send(200, json.dumps({"key": key, "count": KEYS.get(key, 0)}))
            return
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
        elif u.path == "/slow" or u.path.endswith("/slow"):
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

    def post(self):
        self.count()
        if self.failing():
            return
        u = urlparse(self.path)
        q = parse_qs(u.query)
        body = self.read_body()
        if u.path == "/idle":
            IDLE["ms"] = int(q.get("ms", ["0"])[0])
            self.send(200, json.dumps(IDLE))
        elif u.path == "/fail":
            FAIL["mode"] = q.get("mode", ["off"])[0]
            FAIL["code"] = int(q.get("code", ["500"])[0])
            FAIL["ms"] = int(q.get("ms", ["0"])[0])
            self.send(200, json.dumps(FAIL))
        elif u.path == "/stats/reset":
            with LOCK:
                STATE.update(requests=0, max_active=STATE["active"], methods={},
                             paths={})
                KEYS.clear()
            self.send(200, "{}")
        elif u.path == "/upload":
            self.send(200, json.dumps({"length": len(body),
                                       "sha256": hashlib.sha256(body).hexdigest()}))
        elif u.path == "/health/down":
            STATE["healthy"] = False
            self.send(200, "{}")
        elif u.path == "/health/up":
            STATE["healthy"] = True
            self.send(200, "{}")
        else:
            with LOCK:
                seq = STATE["requests"]
            self.send(200, json.dumps({"backend": NAME, "method": self.command,
                                       "path": self.path, "length": len(body),
                                       "order": f"{NAME}-{seq}"}))


def main():
    global NAME
    port = int(sys.argv[1])
    NAME = sys.argv[2] if len(sys.argv) > 2 else "origin"
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
