"""The measurements: each phase drives real Sandboxes and returns plain dicts (raw samples kept for plots)."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from . import procstat
from .stats import delta, median, ratio, summarize
from .variants import BY_KEY, SIDECAR, VARIANTS, Variant, sandbox_config

Log = Callable[[str], None]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """How much to measure (quick or full)."""

    memories: Sequence[int] = (128, 1024)
    cpu_quota: bool = True
    rounds: int = 2
    invokes: int = 150            # per variant per round (interleaved)
    warmup: int = 20
    init_reps: int = 3
    soak: int = 1000              # invocations for RSS growth / CPU
    soak_memory: int = 1024
    log_steps: Sequence[int] = (1000, 2000, 5000, 10000, 20000, 50000, 100000)
    ingest_rates: Sequence[Optional[int]] = (20000, 50000, 100000, None)   # records/s posted; None: flat out
    ingest_s: float = 2.0
    variants: Sequence[str] = ("a", "b", "c", "d", "e", "f", "g")
    seed: int = 7
    # traffic phase: Poisson arrivals per mean gap (s) -> invocations; (gap, budget ms) runs with the budget
    # below the gap show the end-of-invocation flush
    traffic: Sequence[Any] = ((0.2, 200, None), (1.0, 100, None), (5.0, 40, None), (1.0, 60, 1000))


TRAFFIC_QUICK = ((0.2, 40, None), (1.0, 15, None), (5.0, 5, None), (1.0, 10, 1000))
QUICK = Plan(soak=5000, traffic=TRAFFIC_QUICK)
FULL = Plan(rounds=5, invokes=500, warmup=50, init_reps=7, soak=5000,
            log_steps=(1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 400000),
            ingest_rates=(20000, 50000, 100000, 200000, None), ingest_s=3.0)


# ---- telemetry helpers (pure over sb.events) ---------------------------------------------------------
def _records(events: Iterable[Any], type_: str) -> List[Dict[str, Any]]:
    out = []
    for ge in events:
        ev = getattr(ge, "event", ge)
        if ev.get("type") == type_ and isinstance(ev.get("record"), dict):
            out.append(ev["record"])
    return out


def post_runtime_ms(events: Sequence[Any]) -> Dict[str, float]:
    """Per request id: report.durationMs - runtimeDone.durationMs (the time extensions kept the invoke open)."""
    done = {r.get("requestId"): r.get("metrics", {}).get("durationMs") for r in _records(events, "platform.runtimeDone")}
    out: Dict[str, float] = {}
    for rep in _records(events, "platform.report"):
        rid = rep.get("requestId")
        total = rep.get("metrics", {}).get("durationMs")
        if rid in done and done[rid] is not None and total is not None and rep.get("status", "success") == "success":
            out[rid] = max(0.0, float(total) - float(done[rid]))
    return out


def logs_dropped(events: Sequence[Any]) -> int:
    return sum(int(r.get("droppedRecords", 0) or 0) for r in _records(events, "platform.logsDropped"))


# ---- phases ----------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, plan: Plan, layers: Dict[str, Path], out_dir: Path, say: Log = log) -> None:
        self.plan = plan
        self.layers = layers
        self.out_dir = out_dir
        self.say = say
        self.rng = random.Random(plan.seed)
        self.applied: Dict[str, Any] = {}

    def _receiver(self, kind: Optional[str]) -> Any:
        if kind is None:
            return None
        from lambda_sandbox import OtlpReceiver

        return OtlpReceiver(fault=None if kind == "ok" else kind).start()

    def _start(self, variant: Variant, memory_mb: int, receiver: Any, function: Optional[str] = None) -> Any:
        from lambda_sandbox import Sandbox

        cfg = sandbox_config(variant, memory_mb=memory_mb, cpu_quota=self.plan.cpu_quota, layers=self.layers,
                             receiver=receiver, function=function)
        return Sandbox(cfg).start()

    # -- latency: all variants alive at once, invoked in shuffled order each step --
    def latency(self, memory_mb: int) -> Dict[str, Any]:
        plan = self.plan
        variants = [BY_KEY[k] for k in plan.variants]
        samples: Dict[str, List[float]] = {v.key: [] for v in variants}
        post: Dict[str, List[float]] = {v.key: [] for v in variants}
        failures: Dict[str, Dict[str, int]] = {v.key: {} for v in variants}
        shutdowns: Dict[str, List[Dict[str, Any]]] = {v.key: [] for v in variants}
        otlp: Dict[str, Dict[str, int]] = {v.key: {"requests": 0, "bytes": 0, "invocations": 0, "spans": 0}
                                           for v in variants}
        per_round_p50: Dict[str, List[float]] = {v.key: [] for v in variants}
        for rnd in range(plan.rounds):
            receivers = {v.key: self._receiver(v.receiver) for v in variants}
            boxes: Dict[str, Any] = {}
            try:
                for v in variants:
                    boxes[v.key] = self._start(v, memory_mb, receivers[v.key])
                self.say(f"latency {memory_mb} MB round {rnd + 1}/{plan.rounds}: init {len(boxes)} environments")
                with ThreadPoolExecutor(max_workers=3) as pool:
                    inits = dict(zip(boxes, pool.map(lambda sb: sb.init(), boxes.values())))
                for k, outcome in inits.items():
                    if outcome.status != "success":
                        self.say(f"  variant {k}: init {outcome.status} {outcome.error_type}")
                self.applied[str(memory_mb)] = dict(next(iter(boxes.values())).applied)
                for i in range(plan.warmup):
                    for k in boxes:
                        boxes[k].invoke({"n": -1 - i})
                for rx in receivers.values():
                    if rx is not None:
                        rx.clear()
                round_ids: Dict[str, List[str]] = {k: [] for k in boxes}
                round_lat: Dict[str, List[float]] = {k: [] for k in boxes}
                keys = list(boxes)
                t0 = time.monotonic()
                for i in range(plan.invokes):
                    self.rng.shuffle(keys)
                    for k in keys:
                        r = boxes[k].invoke({"n": i})
                        if r.outcome != "success":
                            failures[k][r.outcome] = failures[k].get(r.outcome, 0) + 1
                            continue
                        round_lat[k].append(r.latency_ms)
                        round_ids[k].append(r.request_id)
                    if (i + 1) % max(1, plan.invokes // 5) == 0:
                        self.say(f"  {memory_mb} MB round {rnd + 1}: {i + 1}/{plan.invokes} x {len(keys)} variants "
                                 f"({time.monotonic() - t0:.0f} s)")
                for k, sb in boxes.items():
                    res = sb.shutdown()
                    deadline = getattr(sb.cfg, "shutdown_budget_ms", 2000) if BY_KEY[k].sidecar else None
                    shutdowns[k].append({"durationMs": round(res.duration_ms, 3), "budgetMs": deadline,
                                         "extensions": dict(res.extensions), "killed": list(res.killed)})
                    pr = post_runtime_ms(sb.events)
                    post[k].extend(pr[rid] for rid in round_ids[k] if rid in pr)
                    samples[k].extend(round_lat[k])
                    per_round_p50[k].append(round(median(round_lat[k]) or 0.0, 3))
                    rx = receivers[k]
                    if rx is not None:
                        for path_counts in rx.requests.values():
                            otlp[k]["requests"] += path_counts["count"]
                            otlp[k]["bytes"] += path_counts["bytes"]
                        otlp[k]["invocations"] += len(round_ids[k])
                        otlp[k]["spans"] += len(rx.spans())
            finally:
                for sb in boxes.values():
                    sb.close()
                for rx in receivers.values():
                    if rx is not None:
                        rx.stop()
        base = summarize(samples.get("a", []))
        null = summarize(samples.get("g", []))
        out: Dict[str, Any] = {"variants": {}, "samples": samples}
        for v in variants:
            s = summarize(samples[v.key])
            s.update({"ratio_p50_to_bare": ratio(s["p50"], base["p50"]), "ratio_p99_to_bare": ratio(s["p99"], base["p99"]),
                      "delta_p50_ms": delta(s["p50"], base["p50"]), "delta_p99_ms": delta(s["p99"], base["p99"]),
                      "per_round_p50": per_round_p50[v.key],
                      "ratio_p50_to_null_extension": ratio(s["p50"], null["p50"]),
                      "delta_p99_to_null_extension_ms": delta(s["p99"], null["p99"])})
            out["variants"][v.key] = {
                "name": v.name, "description": v.description, "latency_ms": s,
                "post_runtime_ms": summarize(post[v.key]), "failures": failures[v.key],
                "shutdown": shutdowns[v.key],
                "otlp_per_100": ({"requests": round(100 * otlp[v.key]["requests"] / otlp[v.key]["invocations"], 2),
                                  "bytes": round(100 * otlp[v.key]["bytes"] / otlp[v.key]["invocations"]),
                                  "spans_received": otlp[v.key]["spans"], "invocations": otlp[v.key]["invocations"]}
                                 if otlp[v.key]["invocations"] and v.receiver == "ok" else None),
            }
        return out

    # -- init duration added by the extension --
    def init(self, memory_mb: int) -> Dict[str, Any]:
        keys = [k for k in ("a", "b", "g") if k in self.plan.variants or k == "a"]
        combos = [(fn, key) for fn in ("trivial", "init300") for key in keys]
        got: Dict[str, List[float]] = {f"{fn}/{key}": [] for fn, key in combos}
        first_latency: Dict[str, List[float]] = {f"{fn}/{key}": [] for fn, key in combos}
        for rep in range(self.plan.init_reps):
            order = list(combos)
            self.rng.shuffle(order)
            for fn, key in order:
                v = BY_KEY[key]
                rx = self._receiver(v.receiver)
                try:
                    with self._start(v, memory_mb, rx, function=fn) as sb:
                        outcome = sb.init()
                        if outcome.status == "success" and outcome.duration_ms is not None:
                            got[f"{fn}/{key}"].append(outcome.duration_ms)
                        r = sb.invoke({"n": 0})
                        if r.outcome == "success":
                            first_latency[f"{fn}/{key}"].append(r.latency_ms)
                finally:
                    if rx is not None:
                        rx.stop()
            self.say(f"init {memory_mb} MB: repetition {rep + 1}/{self.plan.init_reps}")
        out: Dict[str, Any] = {"samples": got}
        for fn in ("trivial", "init300"):
            bare, side = summarize(got[f"{fn}/a"]), summarize(got.get(f"{fn}/b", []))
            null = summarize(got.get(f"{fn}/g", []))
            out[fn] = {"bare_ms": bare, "sidecar_ms": side, "added_p50_ms": delta(side["p50"], bare["p50"]),
                       "null_extension_ms": null, "null_added_p50_ms": delta(null["p50"], bare["p50"]),
                       "first_invoke_latency_ms": {"bare": summarize(first_latency[f"{fn}/a"]),
                                                   "sidecar": summarize(first_latency.get(f"{fn}/b", []))}}
        return out

    # -- sidecar memory and CPU over a long run; OTLP volume at steady state --
    def resources(self, key: str = "b") -> Dict[str, Any]:
        plan, mem = self.plan, self.plan.soak_memory
        v = BY_KEY[key]
        rx = self._receiver(v.receiver)
        out: Dict[str, Any] = {"memory_mb": mem, "invocations": plan.soak, "variant": key, "name": v.name}
        try:
            with self._start(v, mem, rx) as sb:
                sb.init()
                for i in range(max(200, plan.warmup)):
                    sb.invoke({"n": i})
                pid = procstat.find_sidecar()
                if pid is None:
                    out["error"] = "sidecar process not found under this process in /proc"
                    return out
                rss0 = procstat.rss_kb(pid)
                cpu0 = procstat.cpu_seconds(pid)
                req0 = {p: dict(c) for p, c in rx.requests.items()}
                series = [(0, rss0)]
                t0 = time.monotonic()
                failures = 0
                step = max(1, plan.soak // 20)
                for i in range(plan.soak):
                    if sb.invoke({"n": i}).outcome != "success":
                        failures += 1
                    if (i + 1) % step == 0:
                        series.append((i + 1, procstat.rss_kb(pid)))
                    if (i + 1) % max(1, plan.soak // 5) == 0:
                        self.say(f"  soak ({key}) {i + 1}/{plan.soak} ({time.monotonic() - t0:.0f} s), sidecar RSS "
                                 f"{series[-1][1]} kB")
                rss1 = procstat.rss_kb(pid)
                cpu1 = procstat.cpu_seconds(pid)
                req1 = rx.requests
                n_req = sum(req1[p]["count"] - req0[p]["count"] for p in req1)
                n_bytes = sum(req1[p]["bytes"] - req0[p]["bytes"] for p in req1)
                res = sb.shutdown()
                out.update({
                    "pid_found": True, "failures": failures,
                    "rss_after_warmup_mb": round(rss0 / 1024, 2) if rss0 else None,
                    "rss_end_mb": round(rss1 / 1024, 2) if rss1 else None,
                    "rss_growth_mb": round((rss1 - rss0) / 1024, 3) if rss0 and rss1 else None,
                    "rss_growth_per_10k_mb": (round((rss1 - rss0) / 1024 * 10000 / plan.soak, 3)
                                              if rss0 and rss1 else None),
                    "rss_series_kb": series,
                    # leak rate: the slope over the second half of the soak (after one-off steps such as the
                    # sender thread starting when traffic turns busy)
                    **_second_half_growth(series, plan.soak),
                    "cpu_s_per_1000": (round((sum(cpu1) - sum(cpu0)) * 1000 / plan.soak, 3) if cpu0 and cpu1 else None),
                    "cpu_user_s": round(cpu1[0] - cpu0[0], 3) if cpu0 and cpu1 else None,
                    "cpu_sys_s": round(cpu1[1] - cpu0[1], 3) if cpu0 and cpu1 else None,
                    "wall_s": round(time.monotonic() - t0, 2),
                    "otlp_per_100": ({"requests": round(100 * n_req / plan.soak, 2),
                                      "bytes": round(100 * n_bytes / plan.soak)} if v.receiver == "ok" else None),
                    "post_runtime_ms": summarize(list(post_runtime_ms(sb.events).values())),
                    "shutdown_ms": round(res.duration_ms, 3),
                })
        finally:
            rx.stop()
        return out

    # -- traffic: Poisson arrivals at several mean gaps; bare, sidecar and null extension side by side --
    def traffic(self, memory_mb: int) -> Dict[str, Any]:
        """Per (mean gap, budget): post-runtime, billed duration against bare, caller latency against the null
        extension, and staleness (the caller's end of an invocation -> its SERVER span at the receiver)."""
        runs = []
        for gap, n, budget_ms in self.plan.traffic:
            keys = ("a", "b", "g")
            rx = self._receiver("ok")
            boxes: Dict[str, Any] = {}
            lat: Dict[str, List[float]] = {k: [] for k in keys}
            billed: Dict[str, List[float]] = {k: [] for k in keys}
            ends: Dict[str, float] = {}
            try:
                for k in keys:
                    v = BY_KEY[k]
                    extra = {"SIDECAR_MAX_EXPORT_DELAY_MS": str(budget_ms)} if (budget_ms and v.sidecar) else None
                    cfg = sandbox_config(v, memory_mb=memory_mb, cpu_quota=self.plan.cpu_quota, layers=self.layers,
                                         receiver=rx if v.sidecar else None, extra_env=extra)
                    from lambda_sandbox import Sandbox

                    boxes[k] = Sandbox(cfg).start()
                    boxes[k].init()
                label = f"gap {gap} s" + (f", budget {budget_ms} ms" if budget_ms else "")
                self.say(f"traffic {memory_mb} MB {label}: {n} Poisson arrivals")
                first_post: Optional[float] = None
                order = list(keys)
                for i in range(n):
                    time.sleep(self.rng.expovariate(1.0 / gap))
                    self.rng.shuffle(order)
                    for k in order:
                        r = boxes[k].invoke({"n": i})
                        if r.outcome != "success":
                            continue
                        lat[k].append(r.latency_ms)
                        if r.billed_duration_ms is not None:
                            billed[k].append(float(r.billed_duration_ms))
                        if k == "b":
                            ends[r.request_id] = time.time()
                shut_at = time.time()
                for sb in boxes.values():
                    sb.shutdown()
                pr = post_runtime_ms(boxes["b"].events)
                first_rid = next(iter(ends), None)
                if first_rid is not None:
                    first_post = pr.get(first_rid)
                arrived: Dict[str, float] = {}
                for rec in rx.received:
                    if rec.path != "/v1/traces":
                        continue
                    from lambda_sandbox.otlp_receiver import flatten_spans

                    for span in flatten_spans(rec.message):
                        rid = span.get("attributes", {}).get("faas.invocation_id")
                        if span.get("kind") == "SERVER" and rid in ends and rid not in arrived:
                            arrived[rid] = rec.time
                stale = [max(0.0, arrived[rid] - end) for rid, end in ends.items() if rid in arrived]
                stale_before_shutdown = [max(0.0, arrived[rid] - end) for rid, end in ends.items()
                                         if rid in arrived and arrived[rid] < shut_at]
                post = [pr[rid] for rid in ends if rid in pr and rid != first_rid]
                base, null, side = summarize(lat["a"]), summarize(lat["g"]), summarize(lat["b"])
                runs.append({
                    "gap_s": gap, "budget_ms": budget_ms or 30000, "invocations": len(ends),
                    "post_runtime_ms": summarize(post), "first_post_runtime_ms": first_post,
                    "billed_ms": {k: summarize(billed[k]) for k in keys},
                    "billed_mean_to_bare": ratio(summarize(billed["b"])["mean"], summarize(billed["a"])["mean"]),
                    "caller_ms": {"bare": base, "sidecar": side, "null": null},
                    "caller_p50_to_null": ratio(side["p50"], null["p50"]),
                    "caller_p99_minus_null_ms": delta(side["p99"], null["p99"]),
                    "staleness_s": summarize(stale), "staleness_before_shutdown_s": summarize(stale_before_shutdown),
                    "spans_received": len(arrived), "lost": len(ends) - len(arrived),
                })
            finally:
                for sb in boxes.values():
                    sb.close()
                rx.stop()
        return {"runs": runs}

    # -- the sidecar's own ingest capacity: batches posted straight to its listener --
    def listener_ingest(self) -> Dict[str, Any]:
        """Function-log batches posted to the sidecar's Telemetry listener while a handler sleeps (the
        environment thawed), at stepped rates, a fresh environment per step. Measures what the sandbox's own
        log capture (the function-driven ladder) cannot: how fast the sidecar accepts batches (what
        Lambda's logsDropped depends on) and how fast it processes them (parse, signals, EMF, OTLP logs)."""
        mem = self.plan.soak_memory
        body = _ingest_body()
        steps: List[Dict[str, Any]] = []
        for rate in self.plan.ingest_rates:
            rx = self._receiver("ok")
            try:
                with self._start(BY_KEY["b"], mem, rx, function="logs") as sb:
                    sb.init()
                    sb.invoke({"lines": 1})                  # the sidecar is set up (after its first response)
                    port = sb.hub.subscribers[SIDECAR].port
                    hold = self.plan.ingest_s + 3.0          # time for the worker to catch up, still thawed
                    invoke = threading.Thread(target=sb.invoke, args=({"sleep_s": hold},))
                    invoke.start()
                    time.sleep(0.3)                          # the handler is running: the environment is thawed
                    step = post_batches(port, body, rate, self.plan.ingest_s)
                    invoke.join(hold + 30)
                    sb.shutdown()
                    lines = sb.extension_lines(SIDECAR)
                    received = _emf_total(lines, "SidecarRecordsReceived")
                    dropped = _emf_total(lines, "SidecarDropped")
                    step.update(rate=rate, records_received=received, sidecar_dropped=dropped,
                                logs_dropped=logs_dropped(sb.events),
                                all_seen=bool(received >= step["posted_records"]),
                                processed_all=bool(received >= step["posted_records"] and not dropped))
                    steps.append(step)
                    self.say(f"  ingest {'flat out' if rate is None else f'{rate}/s'}: accepted "
                             f"{step['accepted_per_s']}/s ({step['posted_records']} records, slowest answer "
                             f"{step['slowest_answer_ms']} ms), received {received:.0f}, dropped {dropped:.0f}")
            finally:
                rx.stop()
        clean = [s for s in steps if s["processed_all"] and not s["failed_posts"]]
        seen = [s for s in steps if s["all_seen"] and not s["failed_posts"]]
        return {"memory_mb": mem, "batch_records": INGEST_BATCH, "seconds": self.plan.ingest_s, "steps": steps,
                "max_accepted_per_s": max((s["accepted_per_s"] or 0) for s in steps) if steps else None,
                "max_seen_rate": max((s["accepted_per_s"] or 0) for s in seen) if seen else None,
                "max_processed_rate": max((s["accepted_per_s"] or 0) for s in clean) if clean else None}

    # -- the highest rate of function log records ingested without platform.logsDropped --
    def log_ingest(self) -> Dict[str, Any]:
        mem = self.plan.soak_memory
        v = BY_KEY["b"]
        rx = self._receiver("ok")
        steps: List[Dict[str, Any]] = []
        try:
            with self._start(v, mem, rx, function="logs") as sb:
                sb.init()
                sb.invoke({"lines": 10})
                for n in self.plan.log_steps:
                    before_events = len(sb.events)
                    r = sb.invoke({"lines": n})
                    sb.invoke({"lines": 0})       # lets the batches of the step reach the sidecar
                    new = sb.events[before_events:]
                    dropped = logs_dropped(new)
                    delivered = sum(1 for ge in new if ge.event.get("type") == "function"
                                    and SIDECAR in (ge.deliveries or {}))
                    done = [rec for rec in _records(new, "platform.runtimeDone") if rec.get("requestId") == r.request_id]
                    dur_ms = done[0].get("metrics", {}).get("durationMs") if done else r.duration_ms
                    rate = round(n / (dur_ms / 1000.0)) if dur_ms else None
                    steps.append({"lines": n, "outcome": r.outcome, "runtime_ms": dur_ms, "records_per_s": rate,
                                  "delivered_to_sidecar": delivered, "logs_dropped": dropped})
                    self.say(f"  logs: {n} lines at {rate} records/s, delivered {delivered}, dropped {dropped}")
                    if dropped or r.outcome != "success":
                        break
                sb.shutdown()
        finally:
            rx.stop()
        clean = [s for s in steps if not s["logs_dropped"] and s["outcome"] == "success" and s["records_per_s"]]
        # small steps fit in the subscription's buffer whatever the consumer does: the sustained figure is the
        # rate of the LARGEST step that went through without drops
        return {"memory_mb": mem, "steps": steps,
                "max_rate_without_drops": clean[-1]["records_per_s"] if clean else None,
                "largest_clean_step": clean[-1]["lines"] if clean else None,
                "peak_rate_without_drops": max(s["records_per_s"] for s in clean) if clean else None,
                "drops_seen": any(s["logs_dropped"] for s in steps)}


INGEST_BATCH = 1000   # records per POST, as Lambda batches them (well under our maxItems 10,000 / 1 MiB)


def _ingest_body(n: int = INGEST_BATCH) -> bytes:
    """One Telemetry API batch of n function log records (text format, ~100 bytes each)."""
    t = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"
    return json.dumps([{"time": stamp, "type": "function",
                        "record": f"{stamp}\tbench-ingest\tINFO\tingest line {i:06d} {'x' * 40}\n"}
                       for i in range(n)]).encode()


def post_batches(port: int, body: bytes, rate: Optional[float], seconds: float) -> Dict[str, Any]:
    """POST body to the listener on one keep-alive connection, paced to `rate` records/s (None: as fast as it
    answers) for `seconds`; what was accepted, how fast, and the slowest answer."""
    import http.client

    per = INGEST_BATCH
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    ok = failed = 0
    slowest = 0.0
    t0 = time.monotonic()
    end = t0 + seconds
    try:
        while time.monotonic() < end:
            if rate:
                due = t0 + (ok + failed) * per / rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
            a = time.monotonic()
            try:
                conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                ok += resp.status == 200
                failed += resp.status != 200
            except OSError:
                failed += 1
                conn.close()
            slowest = max(slowest, time.monotonic() - a)
    finally:
        conn.close()
    elapsed = time.monotonic() - t0
    return {"posted_records": ok * per, "failed_posts": failed, "elapsed_s": round(elapsed, 3),
            "accepted_per_s": round(ok * per / elapsed) if elapsed else None,
            "slowest_answer_ms": round(slowest * 1000, 2)}


def _emf_total(lines: Sequence[Any], metric: str) -> float:
    total = 0.0
    for line in lines:
        text = str(getattr(line, "text", line)).strip()
        if not text.startswith("{") or '"_aws"' not in text:
            continue
        try:
            v = json.loads(text).get(metric)
        except ValueError:
            continue
        total += sum(v) if isinstance(v, list) else (v or 0)
    return int(total) if total == int(total) else total


def _second_half_growth(series: List[Any], soak: int) -> Dict[str, Optional[float]]:
    pts = [(i, kb) for i, kb in series if kb is not None]
    half = [(i, kb) for i, kb in pts if i >= soak // 2]
    if len(half) < 2 or half[-1][0] == half[0][0]:
        return {"rss_growth_second_half_mb": None, "rss_slope_per_10k_mb": None}
    grow_kb = half[-1][1] - half[0][1]
    return {"rss_growth_second_half_mb": round(grow_kb / 1024, 3),
            "rss_slope_per_10k_mb": round(grow_kb / 1024 * 10000 / (half[-1][0] - half[0][0]), 3)}


def layer_size(path: Path) -> Dict[str, Any]:
    """Zip size and unpacked size of the layer (or the dev layer's directory)."""
    if path.suffix == ".zip" and path.exists():
        import zipfile

        with zipfile.ZipFile(path) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())
        return {"path": str(path), "zip_bytes": path.stat().st_size, "unpacked_bytes": unpacked}
    return {"path": str(path), "zip_bytes": None, "unpacked_bytes": None, "note": "no built zip (dev layer used)"}


__all__ = ["Bench", "Plan", "QUICK", "FULL", "VARIANTS", "post_runtime_ms", "logs_dropped", "layer_size", "log"]
