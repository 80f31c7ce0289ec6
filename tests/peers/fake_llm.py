#!/usr/bin/env python3
"""A fake OpenAI-compatible model server: a test peer for the OpenClaw end-to-end test.

Stdlib only. Serves `POST /v1/chat/completions` (SSE when `"stream": true`, JSON
otherwise) and Anthropic's `POST /v1/messages` (same scripting, Anthropic's shapes)
over HTTPS (or plain HTTP without --cert), records every request it gets as one JSON
line (method, path, headers, raw body) and prints `PORT <n>` on stdout once it listens.

Scripting, by markers in the latest user message that carries one:
  CALL_EXEC:<command>      answer with a tool call to OpenClaw's `exec` tool running
                           <command> (up to the end of the line); once a `tool` message
                           follows that user message, answer with a final text.
  CALL_TOOL:<name> <json>  the same with any tool and JSON arguments (to the end of
                           the line), e.g. CALL_TOOL:web_fetch {"url": "https://…"}.
  HTTP_ERROR:<status>      answer with that status and a ClawGuard-style error envelope
                           {"error": {"type": "clawguard_blocked", "message": ...}}
                           (to see what OpenClaw prints for a proxy block).
  CALL_EXEC_PLACEHOLDERS:<file>
                           answer with an `exec` tool call writing every ClawGuard
                           placeholder (CG_<ENTITY>_<13 letters>) of that user message
                           into <file>, one per line, streamed in 5-byte fragments (so
                           each placeholder is split across events); once the tool ran,
                           a final text quoting the placeholders, in 4-byte fragments.
Otherwise it answers with a plain text `FAKE_REPLY: ok`.
"""

import argparse
import json
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXEC_RE = re.compile(r"CALL_EXEC:([^\r\n]+)")
TOOL_RE = re.compile(r"CALL_TOOL:(\w+) (\{[^\r\n]*\})")
ERROR_RE = re.compile(r"HTTP_ERROR:(\d{3})")
PLACEHOLDERS_RE = re.compile(r"CALL_EXEC_PLACEHOLDERS:(\S+)")
PLACEHOLDER_RE = re.compile(r"CG_[A-Z]{2,12}_[a-z]{13}")

LOG_LOCK = threading.Lock()


def message_text(msg):
    """The text of a chat message whose content is a string or a list of parts."""
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def anthropic_messages(body):
    """Anthropic's messages as chat-completions-like ones: text blocks of a user turn stay
    a user message, its tool_result blocks become `tool` messages."""
    out = []
    for m in body.get("messages") or []:
        content = m.get("content")
        if isinstance(content, str) or m.get("role") != "user":
            out.append(m)
            continue
        texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            out.append({"role": "user", "content": "\n".join(texts)})
        for b in content:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                c = b.get("content")
                if isinstance(c, list):
                    c = "\n".join(x.get("text", "") for x in c if isinstance(x, dict))
                out.append({"role": "tool", "content": c or ""})
    return out


def plan(body, messages=None):
    """Decide the answer for a chat request: ("text", str) | ("exec", cmd) | ("error", status)."""
    if messages is None:
        messages = body.get("messages") or []
    # The latest user message with a marker; OpenClaw appends internal-context user
    # messages after the real one, so "the last user message" is not enough.
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") != "user":
            continue
        text = message_text(m)
        e = ERROR_RE.search(text)
        if e:
            return ("error", int(e.group(1)))
        ph = PLACEHOLDERS_RE.search(text)
        if ph:
            found = PLACEHOLDER_RE.findall(text)
            if any(t.get("role") == "tool" for t in messages[i + 1:]):
                return ("text", "FAKE_FINAL: saved " + " ".join(found))
            cmd = "printf '%%s\\n' %s > %s" % (" ".join(found), ph.group(1))
            return ("exec", cmd)
        x = EXEC_RE.search(text) or TOOL_RE.search(text)
        if x:
            tools_after = [t for t in messages[i + 1:] if t.get("role") == "tool"]
            if tools_after:
                seen = message_text(tools_after[-1])
                return ("text", "FAKE_FINAL: the command ran; tool output had %d chars" % len(seen))
            if x.re is TOOL_RE:
                return ("tool", (x.group(1), x.group(2)))
            return ("exec", x.group(1).strip())
    return ("text", "FAKE_REPLY: ok")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm/1"

    timeout = 60  # a stalled client cannot hold a thread forever

    def setup(self):
        super().setup()
        # The TLS handshake runs here, in the connection's thread, not in accept().
        if hasattr(self.request, "do_handshake"):
            self.request.do_handshake()

    def log_message(self, fmt, *args):  # quiet; the JSON log is the record
        pass

    def _record(self, body):
        entry = {
            "ts": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
        }
        with LOG_LOCK:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def _read_body(self):
        n = int(self.headers.get("content-length") or 0)
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        return self.rfile.read(n) if n else b""

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._record(b"")
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": self.server.model, "object": "model"}]})
        else:
            self._json(404, {"error": {"type": "not_found", "message": "fake-llm: no such path"}})

    def _sse(self, chunks):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for c in chunks:
            data = c.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _anthropic(self, body):
        kind, arg = plan(body, anthropic_messages(body))
        if kind == "error":
            self._json(arg, {"type": "error", "error": {"type": "permission_error", "message": "fake-llm: error"}})
            return
        model = body.get("model") or self.server.model
        self.server.counter += 1
        n = self.server.counter
        usage = {"input_tokens": 10, "output_tokens": 5}
        if kind in ("exec", "tool"):
            name, args = (("exec", json.dumps({"title": "fake-llm command", "command": arg}))
                          if kind == "exec" else arg)
            block = {"type": "tool_use", "id": "toolu_fake%d" % n, "name": name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in fragments(args, 5)]
            full = dict(block, input=json.loads(args))
            stop = "tool_use"
        else:
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in fragments(arg, 4)]
            full = {"type": "text", "text": arg}
            stop = "end_turn"
        message = {"id": "msg_fake%d" % n, "type": "message", "role": "assistant", "model": model,
                   "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            self._json(200, dict(message, content=[full], stop_reason=stop))
            return
        events = [("message_start", {"type": "message_start", "message": message}),
                  ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
                  ("ping", {"type": "ping"})]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
        events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": 5}}),
                   ("message_stop", {"type": "message_stop"})]
        self._sse("event: %s\ndata: %s\n\n" % (ev, json.dumps(data)) for ev, data in events)

    def do_POST(self):
        raw = self._read_body()
        self._record(raw)
        if self.path.split("?")[0].rstrip("/").endswith("/messages"):
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad JSON"}})
                return
            self._anthropic(body)
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"type": "not_found", "message": "fake-llm: no such path"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"type": "invalid_request_error", "message": "fake-llm: bad JSON"}})
            return
        kind, arg = plan(body)
        if kind == "error":
            self._json(arg, {"error": {
                "type": "clawguard_blocked",
                "message": "Blocked by ClawGuard: request contains alibaba-access-key-id "
                           "(credential); request id fake-0001",
            }})
            return
        model = body.get("model") or self.server.model
        self.server.counter += 1
        cid = "chatcmpl-fake%d" % self.server.counter
        if kind in ("exec", "tool"):
            name, args = (("exec", json.dumps({"title": "fake-llm command", "command": arg}))
                          if kind == "exec" else arg)
            call = {"id": "call_fake%d" % self.server.counter, "type": "function",
                    "function": {"name": name, "arguments": args}}
            delta, message, finish = ({"role": "assistant", "content": None, "tool_calls": [dict(call, index=0)]},
                                      {"role": "assistant", "content": None, "tool_calls": [call]},
                                      "tool_calls")
        else:
            delta, message, finish = ({"role": "assistant", "content": arg},
                                      {"role": "assistant", "content": arg}, "stop")
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            self._json(200, {"id": cid, "object": "chat.completion", "created": int(time.time()),
                             "model": model,
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": usage})
            return
        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        first = [dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}])]
        if PLACEHOLDER_RE.search(json.dumps(delta)):
            # Placeholders in the answer: fragment it so each one spans several events.
            if kind in ("exec", "tool"):
                call = delta["tool_calls"][0]
                parts = fragments(call["function"]["arguments"], 5)
                head = dict(call, function={"name": call["function"]["name"], "arguments": parts[0]})
                first = [dict(base, choices=[{"index": 0, "delta": dict(delta, tool_calls=[head]),
                                              "finish_reason": None}])]
                first += [dict(base, choices=[{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "function": {"arguments": p}}]}, "finish_reason": None}]) for p in parts[1:]]
            else:
                parts = fragments(delta["content"], 4)
                first = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": p},
                                              "finish_reason": None}]) for p in parts[:1]]
                first += [dict(base, choices=[{"index": 0, "delta": {"content": p},
                                               "finish_reason": None}]) for p in parts[1:]]
        events = first + [
            dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]),
            dict(base, choices=[], usage=usage),
        ]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for ev in [json.dumps(e) for e in events] + ["[DONE]"]:
            chunk = ("data: %s\n\n" % ev).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def fragments(text, n):
    """`text` cut into pieces of `n` characters (at least one piece)."""
    return [text[i:i + n] for i in range(0, len(text), n)] or [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert", help="PEM certificate chain (HTTPS); plain HTTP without it")
    ap.add_argument("--key", help="PEM private key")
    ap.add_argument("--log", required=True, help="file to append one JSON line per request to")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", default="fake-model")
    a = ap.parse_args()
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    srv.log_path = a.log
    srv.model = a.model
    srv.counter = 0
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        ctx.set_alpn_protocols(["http/1.1"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
