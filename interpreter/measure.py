"""Start-up of the layer's sidecar to its first /next, and its memory there, per interpreter.

    python interpreter/measure.py LAYER.zip [--runs 20] [--python PATH ...]

Unpacks the layer, then starts its launcher RUNS times under an empty environment (env -i plus the
Runtime API address) against a local stand-in of the Extensions and Telemetry APIs, and reports, for the
bundled interpreter (SIDECAR_INTERPRETER=bundled) and each --python (SIDECAR_PYTHON), the time from the
launcher's start to the first GET /next (min / median ms) and the process's RSS at that moment (median MB).
What Lambda's "init" adds also includes its own work; this is the part the layer controls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple


class _Api:
    """Register and subscribe answer at once; the first /next records the time and RSS, then SHUTDOWN."""

    def __init__(self) -> None:
        self.first_next: Optional[float] = None
        self.pid: Optional[int] = None
        self.rss_kb: Optional[int] = None
        self.seen = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(200)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._reply({"functionName": "f", "functionVersion": "1", "handler": "index.handler"},
                            [("Lambda-Extension-Identifier", "ext-1")])

            def do_PUT(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._reply({})

            def do_GET(self):  # noqa: N802
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                    if api.pid:
                        api.rss_kb = _rss_kb(api.pid)
                    api.seen.set()
                self._reply({"eventType": "SHUTDOWN", "shutdownReason": "spindown",
                             "deadlineMs": int(time.time() * 1000) + 1000})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _rss_kb(pid: int) -> Optional[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def one_start(launcher: Path, extra_env: Dict[str, str]) -> Tuple[float, Optional[float]]:
    api = _Api()
    env = ["env", "-i", f"AWS_LAMBDA_RUNTIME_API={api.address}", "PATH=/usr/bin:/bin",
           *[f"{k}={v}" for k, v in extra_env.items()]]
    started = time.perf_counter()
    proc = subprocess.Popen([*env, str(launcher)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api.pid = proc.pid     # env and the launcher exec: the same pid ends up as the interpreter
    try:
        if not api.seen.wait(30):
            raise SystemExit(f"no /next within 30 s from {launcher} with {extra_env}")
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        api.server.shutdown()
        api.server.server_close()
    assert api.first_next is not None
    return (api.first_next - started) * 1000, (api.rss_kb / 1024 if api.rss_kb else None)


def measure(launcher: Path, extra_env: Dict[str, str], runs: int) -> Dict[str, float]:
    one_start(launcher, extra_env)    # warm the page cache, as a warm Lambda host would have it
    times: List[float] = []
    rss: List[float] = []
    for _ in range(runs):
        ms, mb = one_start(launcher, extra_env)
        times.append(ms)
        if mb:
            rss.append(mb)
    return {"min_ms": min(times), "median_ms": statistics.median(times),
            "rss_mb": statistics.median(rss) if rss else float("nan")}


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layer", help="a layer zip with its own interpreter (dist/otel-sidecar-layer-x86_64.zip)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python", action="append", default=[], help="also measure this interpreter")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.layer) as zf:
            for info in zf.infolist():
                zf.extract(info, tmp)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    os.chmod(Path(tmp) / info.filename, mode)
        launcher = Path(tmp) / "extensions" / "otel-sidecar"
        cases = [("bundled", {"SIDECAR_INTERPRETER": "bundled"})]
        cases += [(p, {"SIDECAR_PYTHON": p}) for p in args.python]
        print(f"{'interpreter':<40} {'first /next ms (min / median)':>30} {'RSS MB':>8}   ({args.runs} runs)")
        for label, env in cases:
            r = measure(launcher, env, args.runs)
            print(f"{label:<40} {r['min_ms']:>14.1f} / {r['median_ms']:<13.1f} {r['rss_mb']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
