"""cProfile of the sidecar's busy path in process: INVOKE -> parse_batch -> SignalEngine -> EMF + OTLP sinks
(accept only; the export itself is the exporter thread's). `python -m bench.profile_busy [N] [--no-profile]`
(--no-profile: the same loop timed without cProfile's overhead)."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import sys
import time

sys.path.insert(0, "extension")

from otel_sidecar import events  # noqa: E402
from otel_sidecar.config import load_settings  # noqa: E402
from otel_sidecar.emf import EmfSink  # noqa: E402
from otel_sidecar.otlp import create_sink  # noqa: E402
from otel_sidecar.signals import SignalEngine  # noqa: E402


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _batches(i: int, t: float):
    rid = f"00000000-0000-4000-8000-{i:012d}"
    first = [{"time": _iso(t), "type": "platform.start", "record": {"requestId": rid, "version": "$LATEST"}},
             {"time": _iso(t), "type": "function", "record": f"{_iso(t)}\t{rid}\tINFO\thello {i}\n"},
             {"time": _iso(t + 0.002), "type": "platform.runtimeDone", "record": {
                 "requestId": rid, "status": "success", "metrics": {"durationMs": 2.1, "producedBytes": 20},
                 "spans": [{"durationMs": 0.1, "name": "responseLatency", "start": _iso(t)},
                           {"durationMs": 0.05, "name": "responseDuration", "start": _iso(t)}]}}]
    second = [{"time": _iso(t + 0.003), "type": "platform.report", "record": {
        "requestId": rid, "status": "success", "metrics": {"durationMs": 2.5, "billedDurationMs": 3,
                                                           "memorySizeMB": 1024, "maxMemoryUsedMB": 60}}}]
    invoke = {"eventType": "INVOKE", "deadlineMs": int((t + 3) * 1000), "requestId": rid,
              "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:bench"}
    return invoke, json.dumps(first).encode(), json.dumps(second).encode()


def main(n: int = 2000, profile: bool = True) -> None:
    env = {"AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    settings = load_settings(env)[0]
    engine = SignalEngine(settings)
    sinks = [EmfSink(settings), create_sink(settings, env)]
    out = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, out
    t0 = time.time()
    work = [_batches(i, t0 + i * 0.01) for i in range(n)]
    prof = cProfile.Profile()
    cpu0 = time.process_time()
    if profile:
        prof.enable()
    for invoke, b1, b2 in work:
        inv = events.parse_invoke(invoke)
        outs = list(engine.on_invoke(inv, time.time()))
        for b in (b1, b2):
            outs += engine.on_events(events.parse_batch(b).events, time.time())
        for s in sinks:
            s.accept(outs)
    cpu = time.process_time() - cpu0
    if profile:
        prof.disable()
    sys.stdout = real_stdout
    under = "under cProfile" if profile else "no profiler"
    print(f"{n} invocations: {cpu * 1000 / n:.3f} ms CPU per invocation ({under}; accept path only)")
    if profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 2000, profile="--no-profile" not in sys.argv[1:])
