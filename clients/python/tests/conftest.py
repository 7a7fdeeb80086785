"""A real collector stand-in: http.server on 127.0.0.1 (ephemeral port) in a thread.

It checks every request against the observations wire contract (docs:
OBSERVATIONS-API) and answers as told by the test: 202 with the contract's body by
default, or a scripted status per request.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, List, Optional

import pytest

EVENT_KEYS = {
    "prediction_id", "score", "value", "decision", "features", "feature_times",
    "stages", "status", "time", "duration",
}
STAGES = {"queue", "feature_fetch", "inference", "postprocess"}


def contract_errors(event) -> List[str]:
    """What in one event breaks the wire contract (empty when nothing does)."""
    if not isinstance(event, dict):
        return ["event is not an object"]
    errors = [f"unknown key {k}" for k in event if k not in EVENT_KEYS]

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for key in ("score", "value", "time", "duration"):
        if key in event and not number(event[key]):
            errors.append(f"{key} is not a finite number")
    if "score" in event and "value" in event:
        errors.append("both score and value")
    for name, v in (event.get("features") or {}).items():
        if v is not None and not number(v):
            errors.append(f"feature {name} is {v!r}")
    for stage, v in (event.get("stages") or {}).items():
        if not number(v) or v < 0:
            errors.append(f"stage {stage} is {v!r}")
    for group, v in (event.get("feature_times") or {}).items():
        if not number(v):
            errors.append(f"feature time {group} is {v!r}")
    if "status" in event and event["status"] not in ("success", "error", "timeout"):
        errors.append("bad status")
    if "decision" in event and not isinstance(event["decision"], str):
        errors.append("decision is not a string")
    pid = event.get("prediction_id")
    if pid is not None and (not isinstance(pid, str) or not pid or len(pid.encode()) > 128):
        errors.append("bad prediction_id")
    return errors


class Collector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.requests: List[dict] = []  # {"path", "content_type", "events"}
        self.violations: List[str] = []
        self.connections = 0
        # answer(request_index, events) -> None for the default 202, or
        # (status, body_dict, headers_dict)
        self.answer: Optional[Callable] = None
        self.hold = threading.Event()  # set: handlers run; cleared: they wait
        self.hold.set()
        self.held_too_long = False
        self.close_after_each = False  # drop keep-alive silently after each answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process_request(self, request, client_address):
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def events(self) -> List[dict]:
        with self.lock:
            return [e for r in self.requests for e in r["events"]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle and delayed ACKs
    # add 40 ms to every answer.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        server: Collector = self.server
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if not server.hold.wait(30):
            server.held_too_long = True
        content_type = self.headers.get("Content-Type", "")
        try:
            body = json.loads(raw)
            events = body["events"]
            assert isinstance(events, list) and 1 <= len(events) <= 1000
        except (ValueError, KeyError, AssertionError, TypeError):
            body, events = None, []
            with server.lock:
                server.violations.append(f"not a batch: {raw[:200]!r}")
        with server.lock:
            index = len(server.requests)
            server.requests.append(
                {"path": self.path, "content_type": content_type, "events": events}
            )
            if content_type != "application/json":
                server.violations.append(f"content type {content_type}")
            for e in events:
                server.violations.extend(contract_errors(e))
        scripted = server.answer(index, events) if server.answer else None
        if scripted is None:
            rejected = [
                {"index": i, "error": {"type": "invalid_event", "message": "refused"}}
                for i, e in enumerate(events)
                if str(e.get("prediction_id", "")).startswith("refuse")
            ]
            scripted = (202, {"accepted": len(events) - len(rejected), "rejected": rejected}, {})
        status, answer, headers = scripted
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        if server.close_after_each:
            self.close_connection = True


@pytest.fixture
def collector():
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.hold.set()
    server.shutdown()
    server.server_close()
    assert not server.violations, server.violations
