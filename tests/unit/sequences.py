"""Reusable Telemetry API inputs: the example records of lambda-apis.md 5.5 (verbatim) and the reference
sequences of 5.7 as delivery-ordered steps. Pure data + tiny builders; importable by any test.

A sequence is a list of steps:
  ("batch", [envelope, ...])          a Telemetry API POST body (json.dumps(list) gives the bytes)
  ("invoke", Invoke, now)             an INVOKE from /next at `now` (epoch s)
  ("shutdown", Shutdown, now)         a SHUTDOWN from /next
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from otel_sidecar.events import Invoke, Shutdown, parse_batch

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"
TRACE_VALUE = "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"
SPAN_ID = "24cd7d670fa455f0"

# ---- 5.5 example records, verbatim ---------------------------------------------------------------------
EXAMPLES: Dict[str, dict] = {name: json.loads(text) for name, text in {
    "initStart": '{"time":"2025-01-07T19:49:07.089Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init","runtimeVersion":"python:3.12.v29","runtimeVersionArn":"arn:aws:lambda:us-east-1::runtime:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","functionName":"my-function","functionVersion":"$LATEST","instanceId":"2025/01/07/[$LATEST]002cf7829acf404ea7f6995e1910b96b","instanceMaxMemory":134217728}}',
    "initRuntimeDone": '{"time":"2024-07-01T08:54:54.106Z","type":"platform.initRuntimeDone","record":{"initializationType":"on-demand","phase":"init","status":"success"}}',
    "initRuntimeDone_error": '{"time":"2024-07-01T08:54:54.106Z","type":"platform.initRuntimeDone","record":{"initializationType":"on-demand","phase":"init","status":"error","errorType":"Extension.Crash"}}',
    "initReport": '{"time":"2024-07-01T08:54:54.107Z","type":"platform.initReport","record":{"initializationType":"on-demand","status":"success","phase":"init","metrics":{"durationMs":234.766}}}',
    "initReport_timeout": '{"time":"2024-07-01T08:54:54.107Z","type":"platform.initReport","record":{"initializationType":"on-demand","phase":"init","status":"timeout","metrics":{"durationMs":10000.12}}}',
    "restoreStart": '{"time":"2022-10-12T00:00:15.064Z","type":"platform.restoreStart","record":{"runtimeVersion":"java:21.v27","runtimeVersionArn":"arn:aws:lambda:us-east-1::runtime:...","functionName":"my-function","functionVersion":"3","instanceId":"2025/01/07/[3]abcdef0123456789abcdef0123456789","instanceMaxMemory":536870912}}',
    "restoreRuntimeDone": '{"time":"2022-10-12T00:00:15.064Z","type":"platform.restoreRuntimeDone","record":{"status":"success"}}',
    "restoreRuntimeDone_error": '{"time":"2022-10-12T00:00:15.064Z","type":"platform.restoreRuntimeDone","record":{"status":"error","errorType":"Runtime.ExitError"}}',
    "restoreReport": '{"time":"2022-10-12T00:00:15.064Z","type":"platform.restoreReport","record":{"status":"success","metrics":{"durationMs":15.19}}}',
    "start_traced": '{"time":"2022-10-21T14:05:03.165Z","type":"platform.start","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","version":"$LATEST","tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"}}}',
    "start": '{"time":"2024-07-01T08:54:54.108Z","type":"platform.start","record":{"requestId":"b2de8fdb-259d-476f-9546-0b4822dce67a","version":"$LATEST"}}',
    "runtimeDone": '{"time":"2024-07-01T08:54:54.125Z","type":"platform.runtimeDone","record":{"requestId":"b2de8fdb-259d-476f-9546-0b4822dce67a","status":"success","metrics":{"durationMs":17.12,"producedBytes":50},"spans":[{"durationMs":1.613,"name":"responseLatency","start":"2024-07-01T08:54:54.108Z"},{"durationMs":0.064,"name":"responseDuration","start":"2024-07-01T08:54:54.109Z"},{"durationMs":15.246,"name":"runtimeOverhead","start":"2024-07-01T08:54:54.110Z"}]}}',
    "runtimeDone_handled_error": '{"time":"2023-06-11T17:03:14.843Z","type":"platform.runtimeDone","record":{"requestId":"777ff55f-e84c-41f8-ae9f-53f541f01a60","status":"success","metrics":{"durationMs":78.656,"producedBytes":0}}}',
    "runtimeDone_timeout": '{"time":"2024-07-01T08:55:04.110Z","type":"platform.runtimeDone","record":{"requestId":"b2de8fdb-259d-476f-9546-0b4822dce67a","status":"timeout","metrics":{"durationMs":3000.51,"producedBytes":0}}}',
    "runtimeDone_crash": '{"time":"2024-07-01T08:55:04.110Z","type":"platform.runtimeDone","record":{"requestId":"b2de8fdb-259d-476f-9546-0b4822dce67a","status":"error","errorType":"Runtime.ExitError","metrics":{"durationMs":120.4,"producedBytes":0}}}',
    "report": '{"time":"2024-07-01T08:54:54.127Z","type":"platform.report","record":{"requestId":"b2de8fdb-259d-476f-9546-0b4822dce67a","status":"success","metrics":{"durationMs":17.493,"billedDurationMs":18,"memorySizeMB":128,"maxMemoryUsedMB":75,"initDurationMs":235.086}}}',
    "report_traced": '{"time":"2022-10-21T14:05:05.766Z","type":"platform.report","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","status":"success","metrics":{"durationMs":2599.4,"billedDurationMs":2600,"memorySizeMB":128,"maxMemoryUsedMB":94},"spans":[{"name":"extensionOverhead","start":"2022-10-21T14:05:05.764Z","durationMs":0.38}],"tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"}}}',
    "report_timeout": '{"time":"2024-07-01T08:55:04.200Z","type":"platform.report","record":{"requestId":"527cb862-4f5e-49a9-9ae4-a7edc90f0fda","status":"timeout","metrics":{"durationMs":3016.78,"billedDurationMs":3101,"memorySizeMB":128,"maxMemoryUsedMB":31,"initDurationMs":84.0}}}',
    "report_crash": '{"time":"2024-07-01T08:55:04.200Z","type":"platform.report","record":{"requestId":"5b866fb1-7154-4af6-8078-6ef6ca4c2ddd","status":"error","errorType":"Runtime.ExitError","metrics":{"durationMs":133.61,"billedDurationMs":214,"memorySizeMB":128,"maxMemoryUsedMB":31,"initDurationMs":80.0}}}',
    "extension": '{"time":"2024-07-01T08:54:54.106Z","type":"platform.extension","record":{"name":"go-example-extension","state":"Ready","events":["INVOKE","SHUTDOWN"]}}',
    "extension_error": '{"time":"2024-07-01T08:54:54.106Z","type":"platform.extension","record":{"name":"my-ext","state":"InitError","events":["INVOKE"],"errorType":"Extension.ConfigInvalid"}}',
    "telemetrySubscription": '{"time":"2024-07-01T08:54:53.932Z","type":"platform.telemetrySubscription","record":{"name":"go-example-extension","state":"Subscribed","types":["platform"]}}',
    "logsDropped": '{"time":"2022-10-12T00:02:35.000Z","type":"platform.logsDropped","record":{"droppedBytes":12345,"droppedRecords":123,"reason":"Some logs were dropped because the downstream consumer is slower than the logs production rate"}}',
    "function_text": '{"time":"2022-10-12T00:03:50.000Z","type":"function","record":"2022-10-12T00:03:50.000Z\\t79b4f56e-95b1-4643-9700-2807f4e68189\\tINFO\\tHello world\\n"}',
    "extension_text": '{"time":"2022-09-13T15:42:46.948Z","type":"extension","record":"Starting the Telemetry API Extension\\n"}',
    "function_json": '{"time":"2022-10-12T00:03:50.000Z","type":"function","record":{"timestamp":"2022-10-12T00:03:50.000Z","level":"INFO","requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","message":"Hello world, I am a function!"}}',
    "extension_json": '{"time":"2022-10-12T00:03:50.000Z","type":"extension","record":{"timestamp":"2022-10-12T00:03:50.000Z","level":"INFO","message":"Hello world, I am an extension!"}}',
}.items()}


def body(envelopes: Sequence[dict]) -> bytes:
    return json.dumps(list(envelopes)).encode()


# ---- builders (times in epoch seconds) ------------------------------------------------------------------
def iso(t: float) -> str:
    ms = int(round(t * 1000))
    d = _dt.datetime.fromtimestamp(ms // 1000, tz=_dt.timezone.utc)
    return f"{d.strftime('%Y-%m-%dT%H:%M:%S')}.{ms % 1000:03d}Z"


def env(type_: str, record: Any, t: float) -> dict:
    return {"time": iso(t), "type": type_, "record": record}


def tracing(value: str = TRACE_VALUE, span_id: Optional[str] = SPAN_ID) -> dict:
    out: Dict[str, Any] = {"type": "X-Amzn-Trace-Id", "value": value}
    if span_id:
        out["spanId"] = span_id
    return out


def init_start(t: float, itype: str = "on-demand", phase: str = "init") -> dict:
    return env("platform.initStart", {"initializationType": itype, "phase": phase, "runtimeVersion": "python:3.11.v1",
                                      "runtimeVersionArn": "arn:aws:lambda:us-east-1::runtime:abc",
                                      "functionName": "my-function", "functionVersion": "$LATEST",
                                      "instanceId": "2026/01/01/[$LATEST]0123456789abcdef",
                                      "instanceMaxMemory": 134217728}, t)


def init_runtime_done(t: float, itype: str = "on-demand", phase: str = "init", status: str = "success",
                      error_type: Optional[str] = None) -> dict:
    rec: Dict[str, Any] = {"initializationType": itype, "phase": phase, "status": status}
    if error_type:
        rec["errorType"] = error_type
    return env("platform.initRuntimeDone", rec, t)


def init_report(t: float, duration_ms: float, itype: str = "on-demand", phase: str = "init",
                status: str = "success", error_type: Optional[str] = None) -> dict:
    rec: Dict[str, Any] = {"initializationType": itype, "phase": phase, "status": status,
                           "metrics": {"durationMs": duration_ms}}
    if error_type:
        rec["errorType"] = error_type
    return env("platform.initReport", rec, t)


def start(t: float, rid: str, trace: Optional[dict] = None) -> dict:
    rec: Dict[str, Any] = {"requestId": rid, "version": "$LATEST"}
    if trace:
        rec["tracing"] = trace
    return env("platform.start", rec, t)


def runtime_done(t: float, rid: str, duration_ms: float, status: str = "success", error_type: Optional[str] = None,
                 produced_bytes: int = 50, spans: bool = True, trace: Optional[dict] = None) -> dict:
    rec: Dict[str, Any] = {"requestId": rid, "status": status}
    if error_type:
        rec["errorType"] = error_type
    rec["metrics"] = {"durationMs": duration_ms, "producedBytes": produced_bytes}
    if spans:
        t0 = t - duration_ms / 1000.0
        rec["spans"] = [{"name": "responseLatency", "start": iso(t0), "durationMs": round(duration_ms * 0.8, 3)},
                        {"name": "responseDuration", "start": iso(t0 + duration_ms * 0.0008),
                         "durationMs": round(duration_ms * 0.05, 3)},
                        {"name": "runtimeOverhead", "start": iso(t0 + duration_ms * 0.00085),
                         "durationMs": round(duration_ms * 0.15, 3)}]
    if trace:
        rec["tracing"] = trace
    return env("platform.runtimeDone", rec, t)


def report(t: float, rid: str, duration_ms: float, status: str = "success", error_type: Optional[str] = None,
           memory_mb: int = 128, max_used_mb: int = 60, init_ms: Optional[float] = None,
           restore_ms: Optional[float] = None, ext_overhead_ms: Optional[float] = None,
           billed_ms: Optional[int] = None, trace: Optional[dict] = None) -> dict:
    import math
    metrics: Dict[str, Any] = {"durationMs": duration_ms,
                               "billedDurationMs": billed_ms if billed_ms is not None
                               else math.ceil(duration_ms + (init_ms or 0.0)),
                               "memorySizeMB": memory_mb, "maxMemoryUsedMB": max_used_mb}
    if init_ms is not None:
        metrics["initDurationMs"] = init_ms
    if restore_ms is not None:
        metrics["restoreDurationMs"] = restore_ms
    rec: Dict[str, Any] = {"requestId": rid, "status": status}
    if error_type:
        rec["errorType"] = error_type
    rec["metrics"] = metrics
    if ext_overhead_ms is not None:
        rec["spans"] = [{"name": "extensionOverhead", "start": iso(t - ext_overhead_ms / 1000.0),
                         "durationMs": ext_overhead_ms}]
    if trace:
        rec["tracing"] = trace
    return env("platform.report", rec, t)


def flog(t: float, text: str, rid: Optional[str] = None, level: str = "INFO") -> dict:
    """A function log line as the Python runtime writes it (Text format)."""
    if rid is None:
        return env("function", text + "\n", t)
    return env("function", f"[{level}]\t{iso(t)}\t{rid}\t{text}\n", t)


def invoke(rid: str, now: float, timeout_s: float = 3.0, trace_value: Optional[str] = None) -> Tuple[str, Invoke, float]:
    return ("invoke", Invoke(request_id=rid, deadline_ms=int((now + timeout_s) * 1000), invoked_arn=ARN,
                             tracing_value=trace_value), now)


def shutdown(reason: str, now: float) -> Tuple[str, Shutdown, float]:
    return ("shutdown", Shutdown(reason=reason, deadline_ms=int((now + 2.0) * 1000)), now)


def batch(*envelopes: dict) -> Tuple[str, List[dict]]:
    return ("batch", list(envelopes))


R1 = "11111111-1111-4111-8111-111111111111"
R2 = "22222222-2222-4222-8222-222222222222"
R3 = "33333333-3333-4333-8333-333333333333"


def seq_a_cold_then_warm(t0: float = T0, init_ms: float = 250.0) -> list:
    """5.7 A: cold start, two warm invokes, spindown (report of N delivered during N+1 / shutdown)."""
    ti = t0
    tr = ti + init_ms / 1000.0
    t1 = tr + 0.002
    t2 = t1 + 5.0
    return [
        batch(init_start(ti), env("extension", "sidecar starting\n", ti + 0.01),
              env("platform.telemetrySubscription", {"name": "otel-sidecar", "state": "Subscribed",
                                                     "types": ["platform", "function"]}, ti + 0.02)),
        batch(flog(ti + 0.1, "static init line"), init_runtime_done(tr),
              env("platform.extension", {"name": "otel-sidecar", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]},
                  tr), init_report(tr + 0.0005, init_ms)),
        invoke(R1, t1),
        batch(start(t1, R1), flog(t1 + 0.005, "handling r1", R1), runtime_done(t1 + 0.02, R1, 20.0)),
        invoke(R2, t2),
        batch(report(t1 + 0.021, R1, 21.0, init_ms=init_ms, ext_overhead_ms=0.9), start(t2, R2),
              flog(t2 + 0.003, "handling r2", R2), runtime_done(t2 + 0.01, R2, 10.0)),
        invoke(R3, t2 + 3.0),
        batch(report(t2 + 0.0112, R2, 11.2), start(t2 + 3.0, R3), runtime_done(t2 + 3.012, R3, 12.0)),
        shutdown("spindown", t2 + 60.0),
        batch(report(t2 + 3.013, R3, 13.0)),
    ]


def seq_b_timeout(t0: float = T0) -> list:
    """5.7 B: a timeout, SHUTDOWN timeout, then (new process) a suppressed init inside the next invoke."""
    tr = t0 + 0.2
    t1 = tr + 0.01
    return [
        batch(init_start(t0), init_runtime_done(tr), init_report(tr, 200.0)),
        invoke(R1, t1, timeout_s=3.0),
        batch(start(t1, R1), flog(t1 + 0.1, "working on r1", R1)),
        batch(runtime_done(t1 + 3.0, R1, 3000.51, status="timeout", produced_bytes=0, spans=False),
              report(t1 + 3.01, R1, 3010.0, status="timeout", init_ms=200.0)),
        shutdown("timeout", t1 + 3.02),
    ]


def seq_b_reinit(t0: float = T0 + 100) -> list:
    """5.7 B, second half: the new sidecar process sees the suppressed init (phase=invoke) then the invoke."""
    return [
        batch(init_start(t0, phase="invoke"), init_runtime_done(t0 + 0.3, phase="invoke"),
              init_report(t0 + 0.3, 300.0, phase="invoke")),
        invoke(R2, t0 + 0.301),
        batch(start(t0 + 0.301, R2), runtime_done(t0 + 0.32, R2, 19.0)),
        shutdown("spindown", t0 + 100),
        batch(report(t0 + 0.321, R2, 320.0, billed_ms=320)),
    ]


def seq_c_crash(t0: float = T0) -> list:
    """5.7 C: runtime crash -> error Runtime.ExitError, SHUTDOWN failure."""
    tr = t0 + 0.08
    t1 = tr + 0.01
    return [
        batch(init_start(t0), init_runtime_done(tr), init_report(tr, 80.0)),
        invoke(R1, t1),
        batch(start(t1, R1), runtime_done(t1 + 0.12, R1, 120.4, status="error", error_type="Runtime.ExitError",
                                          produced_bytes=0, spans=False),
              report(t1 + 0.134, R1, 133.61, status="error", error_type="Runtime.ExitError", init_ms=80.0,
                     max_used_mb=31)),
        shutdown("failure", t1 + 0.14),
    ]


def seq_d_extension_crash_init(t0: float = T0) -> list:
    """5.7 D: an extension crashes during init (only records delivered before the reset reach us)."""
    return [
        batch(init_start(t0), init_runtime_done(t0 + 0.5, status="error", error_type="Extension.Crash"),
              env("platform.extension", {"name": "bad-ext", "state": "Ready", "events": ["INVOKE"]}, t0 + 0.5),
              init_report(t0 + 0.5, 500.0, status="error", error_type="Extension.Crash")),
        shutdown("failure", t0 + 0.6),
    ]


def run(engine, steps: Sequence) -> list:
    """Feed steps to a SignalEngine (batches go through parse_batch) and return every output, finish() last."""
    out: list = []
    last = T0
    for step in steps:
        if step[0] == "batch":
            parsed = parse_batch(body(step[1]))
            if parsed.events:
                last = max(last, max(e.time for e in parsed.events))
            out += engine.on_batch(parsed, last)
        elif step[0] == "invoke":
            last = max(last, step[2])
            out += engine.on_invoke(step[1], step[2])
        elif step[0] == "shutdown":
            last = max(last, step[2])
            out += engine.on_shutdown(step[1], step[2])
    out += engine.finish(last + 1.0)
    return out
