#!/usr/bin/env python3
"""A local origin for the README's quick start: answers every request with what it
received (method, path, body), so you can see what ClawGuard let through. Standard
library only; listens on loopback.

    python3 examples/echo_origin.py [PORT]      # default 8000
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def handle_one(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = f"origin received: {self.command} {self.path} {body.decode('utf-8', 'replace')}\n"
        data = reply.encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = handle_one

    def log_message(self, fmt, *args):  # one short line per request on stderr
        sys.stderr.write("echo_origin: " + (fmt % args) + "\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
