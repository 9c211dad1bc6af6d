"""Helpers for the sandbox unit tests: a scriptable Telemetry listener and a bounded poll."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional


class Listener:
    """A Telemetry API listener on 127.0.0.1 (ephemeral port) that records every POSTed batch.

    `delay_s` / `status` may be changed while running; `started` counts POSTs that began.
    """

    def __init__(self, port: int = 0) -> None:
        self.batches: List[list] = []
        self.times: List[float] = []
        self.raw_sizes: List[int] = []
        self.delay_s = 0.0
        self.status = 200
        self.started = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                with owner.lock:
                    owner.started += 1
                    delay, status = owner.delay_s, owner.status
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if delay:
                    time.sleep(delay)
                if 200 <= status < 300:
                    with owner.lock:
                        owner.batches.append(json.loads(body))
                        owner.times.append(time.time())
                        owner.raw_sizes.append(len(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def events(self, type_: Optional[str] = None) -> list:
        with self.lock:
            evs = [e for b in self.batches for e in b]
        return [e for e in evs if type_ is None or e["type"] == type_]

    def body(self, types=("platform", "function", "extension"), schema="2022-12-13", path="/t", **buffering) -> bytes:
        doc = {"schemaVersion": schema, "types": list(types),
               "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{self.port}{path}"}}
        if buffering:
            doc["buffering"] = buffering
        return json.dumps(doc).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
