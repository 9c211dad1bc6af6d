"""Platform modes of 2025-2026 (platform-2025.md): Lambda Managed Instances, SnapStart, tenant isolation,
durable functions and the cost of a billed INIT, from lists of Telemetry API events to signals and EMF."""

from __future__ import annotations

import json
import random

import pytest
from otel_sidecar import emf, modes, pricing
from otel_sidecar import signals as sg
from otel_sidecar.config import VARIABLES, load_settings
from otel_sidecar.events import parse_batch

from tests.unit import sequences as s
from tests.unit.sequences import T0, env

LMI_ENV = {"AWS_LAMBDA_FUNCTION_NAME": "orders", "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances"}
SNAP_ENV = {"AWS_LAMBDA_FUNCTION_NAME": "orders", "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}


def settings_of(**environ: str):
    settings, warnings = load_settings(environ)
    assert warnings == []
    return settings


def feed(e: sg.SignalEngine, envelopes, now: float = T0) -> list:
    return e.on_batch(parse_batch(s.body(envelopes)), now)


def of(outputs, cls):
    return [o for o in outputs if isinstance(o, cls)]


def rid(i: int) -> str:
    return f"{i:08d}-0000-4000-8000-000000000000"


# ---- detection and registration ------------------------------------------------------------------------
def test_lmi_is_detected_from_the_initialization_type_and_registers_shutdown_only():
    assert modes.detect(LMI_ENV) == (modes.MANAGED_INSTANCES, None)
    assert modes.detect({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}) == (modes.DEFAULT, None)
    assert modes.register_events(modes.MANAGED_INSTANCES) == ("SHUTDOWN",)
    assert modes.register_events(modes.DEFAULT) == ("INVOKE", "SHUTDOWN")
    # AWS_LAMBDA_MAX_CONCURRENCY is the runtime's only: it never makes an LMI
    assert modes.detect({"AWS_LAMBDA_MAX_CONCURRENCY": "8"}) == (modes.DEFAULT, None)


def test_platform_mode_override_and_a_bad_value_named():
    assert modes.detect({"SIDECAR_PLATFORM_MODE": "managed-instances"})[0] == modes.MANAGED_INSTANCES
    assert modes.detect({**LMI_ENV, "SIDECAR_PLATFORM_MODE": "default"})[0] == modes.DEFAULT
    assert modes.detect({"SIDECAR_PLATFORM_MODE": "lmi"})[0] == modes.MANAGED_INSTANCES
    mode, warning = modes.detect({**LMI_ENV, "SIDECAR_PLATFORM_MODE": "turbo"})
    assert mode == modes.MANAGED_INSTANCES      # auto is used instead
    assert "SIDECAR_PLATFORM_MODE='turbo'" in warning and "'auto'" in warning


def test_refused_invoke_registration_reveals_lmi():
    body = '{"errorMessage":"INVOKE: ErrorInvalidEventType","errorType":"Extension.InvalidEventType"}'
    assert modes.refused_invoke(403, body)
    assert not modes.refused_invoke(400, body)
    assert not modes.refused_invoke(403, '{"errorType":"Extension.Unauthorized"}')


def test_schema_versions():
    assert modes.schema_version(modes.MANAGED_INSTANCES) == "2025-01-29"
    assert modes.schema_version(modes.DEFAULT) == "2022-12-13"
    assert modes.schema_version(modes.DEFAULT, "2025-01-29") == "2025-01-29"
    assert modes.fallback_schema("2025-01-29") == "2022-12-13"
    assert modes.fallback_schema("2022-12-13") == "2025-01-29"


def test_lmi_settings_flush_in_the_background_and_keep_an_explicit_interval():
    st = settings_of(**LMI_ENV)
    assert st.managed_instances and st.platform_mode == modes.MANAGED_INSTANCES
    assert st.flush_mode == "periodic" and st.flush_interval_ms == 20000
    assert settings_of(**LMI_ENV, SIDECAR_FLUSH="end").flush_mode == "periodic"
    st = settings_of(**LMI_ENV, SIDECAR_FLUSH="continuous:500")
    assert (st.flush_mode, st.flush_interval_ms) == ("continuous", 500)
    assert settings_of(AWS_LAMBDA_FUNCTION_NAME="f").flush_mode == "adaptive"


@pytest.mark.parametrize("name, value, used", [
    ("SIDECAR_TELEMETRY_SCHEMA", "2024-01-01", "'auto'"),
    ("SIDECAR_TENANT_DIMENSION", "maybe", "False"),
    ("SIDECAR_TENANT_DIMENSION_MAX", "0", "20"),
    ("SIDECAR_PRICE_REGION_CLASS", "mars", "'standard'"),
    ("SIDECAR_INIT_BILLING", "sometimes", "'reported'"),
])
def test_bad_mode_settings_are_named_with_the_value_used_instead(name, value, used):
    _, warnings = load_settings({name: value})
    assert len(warnings) == 1 and warnings[0].startswith(f"{name}={value!r} is invalid") and used in warnings[0]


def test_the_new_variables_are_in_the_readme_table():
    names = {v[0] for v in VARIABLES}
    assert {"SIDECAR_PLATFORM_MODE", "SIDECAR_TELEMETRY_SCHEMA", "SIDECAR_TENANT_DIMENSION",
            "SIDECAR_TENANT_DIMENSION_MAX", "SIDECAR_PRICE_REGION_CLASS", "SIDECAR_INIT_BILLING"} <= names


# ---- Lambda Managed Instances: concurrency, no runtimeDone, JSON logs ------------------------------------
def lmi_events(n: int, seed: int = 7):
    """n overlapping invocations as LMI delivers them: init (initRuntimeDone before extensions), then starts,
    JSON log records (with requestId) and reports in a shuffled interleaving; no platform.runtimeDone."""
    rng = random.Random(seed)
    init = [s.init_start(T0, "lambda-managed-instances"),
            s.init_runtime_done(T0 + 0.3, "lambda-managed-instances"),
            env("platform.extension", {"name": "otel-sidecar", "state": "Ready", "events": ["SHUTDOWN"]}, T0 + 0.31),
            s.init_report(T0 + 0.32, 320.0, "lambda-managed-instances")]
    per = []
    for i in range(n):
        t = T0 + 5 + i * 0.01
        r = rid(i)
        report = env("platform.report", {"requestId": r, "status": "error" if i == 3 else "success",
                                         **({"errorType": "Function.Unknown"} if i == 3 else {}),
                                         "metrics": {"durationMs": 40.0 + i},
                                         "spans": [{"name": "responseLatency", "start": s.iso(t + 0.001),
                                                    "durationMs": 30.0},
                                                   {"name": "responseDuration", "start": s.iso(t + 0.031),
                                                    "durationMs": 1.0}]}, t + 0.2)
        per.append([env("platform.start", {"requestId": r, "version": "$LATEST.PUBLISHED",
                                           "functionArn": "arn:aws:lambda:us-east-1:1:function:orders"}, t),
                    env("function", {"timestamp": s.iso(t + 0.01), "level": "INFO", "requestId": r,
                                     "message": f"working on {i}"}, t + 0.01),
                    report])
    # interleave: keep each invocation's own order, shuffle across invocations
    stream = []
    cursors = [0] * n
    while any(c < 3 for c in cursors):
        i = rng.choice([k for k in range(n) if cursors[k] < 3])
        stream.append(per[i][cursors[i]])
        cursors[i] += 1
    stream.insert(rng.randrange(len(stream)), env("function", {"timestamp": s.iso(T0 + 5), "level": "INFO",
                                                                "message": "a print() without a request id"},
                                                  T0 + 5.05))
    return init, stream


def test_lmi_concurrency_8_every_invocation_once_attributed_by_request_id():
    e = sg.SignalEngine(settings_of(**LMI_ENV))
    init_events, stream = lmi_events(8)
    out = feed(e, init_events)
    for k in range(0, len(stream), 5):        # several batches, as delivery would cut them
        out += feed(e, stream[k:k + 5])
    out += e.finish(T0 + 60)
    invs = of(out, sg.InvocationSignal)
    assert sorted(i.request_id for i in invs) == [rid(i) for i in range(8)]      # exactly once each
    assert all(i.complete and i.log_lines == 1 for i in invs)                   # its own line, no other's
    assert not any(i.cold_start for i in invs) and {i.start_kind for i in invs} == {"warm"}
    assert all(i.init is None and i.managed_instances for i in invs)
    by = {i.request_id: i for i in invs}
    assert by[rid(3)].error and by[rid(3)].error_type == "Function.Unknown"
    assert by[rid(0)].response_latency_ms == 30.0 and by[rid(0)].runtime_duration_ms is None
    assert by[rid(0)].estimated_cost_usd is None         # no per-ms billing on LMI, no billed duration
    # the init: one, standalone, never a cold start nor proactive
    (init,) = sg.inits_in(out)
    assert (init.kind, init.cold_start, init.proactive, init.first_request_id) == \
        ("managed_instances", False, False, None)
    logs = of(out, sg.LogSignal)
    assert {lg.request_id for lg in logs if lg.message.startswith("working on")} == {rid(i) for i in range(8)}
    for lg in logs:
        if lg.message.startswith("working on"):
            assert lg.request_id == rid(int(lg.message.split()[-1]))
    (bare,) = [lg for lg in logs if lg.message.startswith("a print()")]
    assert bare.request_id is None          # never given to "the current invocation"
    assert e.health["unattributed_logs"] == 1


def test_lmi_pending_invocations_stay_bounded():
    e = sg.SignalEngine(settings_of(**LMI_ENV))
    n = sg.MAX_PENDING + 50
    out = feed(e, [env("platform.start", {"requestId": rid(i)}, T0 + i * 0.001) for i in range(n)])
    assert len(e._pending) == sg.MAX_PENDING
    assert len(of(out, sg.InvocationSignal)) == 50 and e.health["pending_evicted"] == 50


def test_default_mode_still_marks_the_first_invocation_cold():
    e = sg.SignalEngine(settings_of(AWS_LAMBDA_FUNCTION_NAME="f"))
    out = sg_run(e, s.seq_a_cold_then_warm())
    assert [i.cold_start for i in of(out, sg.InvocationSignal)] == [True, False, False]


def sg_run(e, steps):
    return s.run(e, steps)


# ---- SnapStart ---------------------------------------------------------------------------------------
def snapstart_events(publish_t: float = T0 - 86400.0, t: float = T0):
    """A restored environment: restore records, then the snapshot's init records (dated at publish time,
    delivered late), then the first invoke's start/report with restore durations."""
    r = rid(1)
    return [
        env("platform.restoreStart", {"runtimeVersion": "python:3.13.v31", "functionName": "orders",
                                      "functionVersion": "7", "instanceId": "2026/01/01/[7]abc",
                                      "instanceMaxMemory": 536870912}, t),
        env("platform.restoreRuntimeDone", {"status": "success"}, t + 0.311),
        env("platform.restoreReport", {"status": "success", "metrics": {"durationMs": 312.0}}, t + 0.312),
        s.init_start(publish_t, "snap-start"), s.init_runtime_done(publish_t + 2.0, "snap-start"),
        s.init_report(publish_t + 2.001, 2001.0, "snap-start"),
        env("platform.start", {"requestId": r, "version": "7"}, t + 0.4),
        env("platform.report", {"requestId": r, "status": "success",
                                "metrics": {"durationMs": 147.156, "billedDurationMs": 201, "memorySizeMB": 512,
                                            "maxMemoryUsedMB": 91, "restoreDurationMs": 500.795,
                                            "billedRestoreDurationMs": 53}}, t + 0.6),
    ]


def test_snapstart_restore_is_the_start_and_the_snapshot_init_is_not_a_cold_start():
    e = sg.SignalEngine(settings_of(**SNAP_ENV))
    out = feed(e, snapstart_events())
    out += e.finish(T0 + 60)
    inits = sg.inits_in(out)
    assert len(inits) == 1
    (init,) = inits
    assert (init.kind, init.phase, init.restored, init.cold_start) == ("snap_start", "restore", True, False)
    assert init.restore_duration_ms == 312.0 and init.first_request_id == rid(1)
    (inv,) = of(out, sg.InvocationSignal)
    assert inv.start_kind == "snap_start" and not inv.cold_start and inv.init_duration_ms is None
    assert inv.restore_duration_ms == 500.795 and inv.billed_restore_duration_ms == 53
    # billed duration + billed restore duration, at 512 MB
    assert inv.estimated_cost_usd == pytest.approx((201 + 53) / 1000 * 0.5 * 0.0000166667 + 0.0000002)
    assert e.health["snapshot_inits_discarded"] == 1 and e.health["inits"] == 1


def test_snapshot_init_records_before_the_restore_are_discarded_too():
    e = sg.SignalEngine(settings_of(**SNAP_ENV))
    events = snapstart_events()
    out = feed(e, events[3:6] + events[:3] + events[6:]) + e.finish(T0 + 60)
    assert [i.kind for i in sg.inits_in(out)] == ["snap_start"]
    assert not any(i.cold_start for i in of(out, sg.InvocationSignal))


# ---- tenant isolation --------------------------------------------------------------------------------
def tenant_events(tenant: str = "BlueTenant"):
    r = rid(5)
    return [s.init_start(T0), s.init_runtime_done(T0 + 0.1), s.init_report(T0 + 0.1, 100.0),
            env("platform.start", {"requestId": r, "version": "$LATEST", "tenantId": tenant,
                                   "functionArn": "arn:aws:lambda:us-east-1:1:function:f"}, T0 + 0.11),
            env("function", {"timestamp": s.iso(T0 + 0.12), "level": "INFO", "requestId": r, "tenantId": tenant,
                             "message": "custom log line1"}, T0 + 0.12),
            env("function", "a plain print\n", T0 + 0.13),
            env("platform.runtimeDone", {"requestId": r, "status": "success", "tenantId": tenant,
                                         "metrics": {"durationMs": 20.0, "producedBytes": 4}}, T0 + 0.14),
            s.report(T0 + 0.15, r, 30.0, init_ms=100.0) | {}]


def test_tenant_id_on_the_invocation_and_every_log_of_the_environment():
    events = tenant_events()
    events[-1]["record"]["tenantId"] = "BlueTenant"
    e = sg.SignalEngine(settings_of(AWS_LAMBDA_FUNCTION_NAME="f", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128"))
    out = feed(e, events) + e.finish(T0 + 60)
    (inv,) = of(out, sg.InvocationSignal)
    assert inv.tenant_id == "BlueTenant"
    assert [lg.tenant_id for lg in of(out, sg.LogSignal)] == ["BlueTenant", "BlueTenant"]


def test_no_tenant_without_tenant_isolation():
    e = sg.SignalEngine(settings_of(AWS_LAMBDA_FUNCTION_NAME="f"))
    out = sg_run(e, s.seq_a_cold_then_warm())
    assert {i.tenant_id for i in of(out, sg.InvocationSignal)} == {None}
    assert {lg.tenant_id for lg in of(out, sg.LogSignal)} == {None}


def emf_docs(outputs, **environ):
    st = settings_of(AWS_LAMBDA_FUNCTION_NAME="f", **environ)
    docs, _ = emf.documents(outputs, st)
    return docs


def tenant_invocations(tenants):
    e = sg.SignalEngine(settings_of(AWS_LAMBDA_FUNCTION_NAME="f"))
    out = []
    for i, tenant in enumerate(tenants):
        r = rid(100 + i)
        out += feed(e, [env("platform.start", {"requestId": r, "tenantId": tenant}, T0 + 1 + i * 0.01),
                        s.report(T0 + 1.005 + i * 0.01, r, 5.0)])
    return out


def test_the_tenant_dimension_is_off_by_default():
    docs = emf_docs(tenant_invocations(["a", "b"]))
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FunctionName"]] for d in docs)
    assert not any("TenantId" in d for d in docs)
    assert sum(d.get("Invocations", 0) for d in docs) == 2


def test_the_tenant_dimension_adds_a_set_and_keeps_the_function_rollup():
    docs = emf_docs(tenant_invocations(["a", "b", "a"]), SIDECAR_TENANT_DIMENSION="on")
    inv_docs = [d for d in docs if "Invocations" in d]
    assert {d["TenantId"]: d["Invocations"] for d in inv_docs} == {"a": 2, "b": 1}
    for d in inv_docs:
        assert d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FunctionName"], ["FunctionName", "TenantId"]]


def test_the_tenant_dimension_is_bounded_per_minute_and_counts_the_overflow():
    tenants = [f"t{i}" for i in range(7)]
    st = settings_of(AWS_LAMBDA_FUNCTION_NAME="f", SIDECAR_TENANT_DIMENSION="on", SIDECAR_TENANT_DIMENSION_MAX="3")
    sink = emf.EmfSink(st, stream=_Lines())
    sink.accept(tenant_invocations(tenants))
    sink.flush(float("inf"))
    docs = [json.loads(x) for x in sink.stream.lines]
    values = {d["TenantId"]: d["Invocations"] for d in docs if "Invocations" in d}
    assert values == {"t0": 1, "t1": 1, "t2": 1, "other": 4}
    assert sink.health()["tenant_overflow"] == 4


class _Lines:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines += [x for x in text.split("\n") if x]

    def flush(self):
        pass


# ---- durable functions -------------------------------------------------------------------------------
def test_durable_function_detected_from_the_runtime_version_and_the_execution_arn():
    arn = "arn:aws:lambda:us-east-1:1:function:orders:$LATEST/durable-execution/order-42/0f1e2d3c"
    start = s.init_start(T0)
    start["record"]["runtimeVersion"] = "python:3.14.DurableFunction.v6"
    r1, r2 = rid(1), rid(2)
    e = sg.SignalEngine(settings_of(AWS_LAMBDA_FUNCTION_NAME="orders"))
    out = feed(e, [start, s.init_runtime_done(T0 + 0.1), s.init_report(T0 + 0.1, 100.0),
                   env("platform.start", {"requestId": r1}, T0 + 0.2),
                   env("function", {"timestamp": s.iso(T0 + 0.21), "level": "INFO", "requestId": r1,
                                    "executionArn": arn, "message": "step 1"}, T0 + 0.21),
                   s.report(T0 + 0.3, r1, 50.0, init_ms=100.0),
                   env("platform.start", {"requestId": r2}, T0 + 5.0), s.report(T0 + 5.1, r2, 50.0)])
    by = {i.request_id: i for i in of(out, sg.InvocationSignal)}
    assert by[r1].durable and by[r1].durable_execution_arn == arn
    assert by[r2].durable and by[r2].durable_execution_arn is None     # a replay: a new request id
    assert sg.inits_in(out)[0].durable
    docs = emf_docs(out)
    assert sum(d.get("DurableInvocations", 0) for d in docs) == 2


def test_durable_invocations_are_not_printed_for_other_functions():
    e = sg.SignalEngine(settings_of(AWS_LAMBDA_FUNCTION_NAME="f"))
    docs = emf_docs(sg_run(e, s.seq_a_cold_then_warm()))
    assert not any("DurableInvocations" in d for d in docs)
    assert sum(d.get("Invocations", 0) for d in docs) == 3


def test_a_restore_counts_in_restores_and_no_cold_start():
    e = sg.SignalEngine(settings_of(**SNAP_ENV))
    docs = emf_docs(feed(e, snapstart_events()) + e.finish(T0 + 60))
    assert sum(d.get("Restores", 0) for d in docs) == 1
    assert sum(d.get("ColdStart", 0) for d in docs) == 0
    assert [v for d in docs for v in d.get("RestoreDuration", [])] == [312.0]


# ---- cost: the billed init ---------------------------------------------------------------------------
def test_cost_includes_the_billed_init_as_lambda_reports_it():
    # after an on-demand init since 2025-08-01: billedDurationMs = ceil(durationMs + initDurationMs)
    e = sg.SignalEngine(settings_of(AWS_LAMBDA_FUNCTION_NAME="f", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128"))
    out = sg_run(e, s.seq_a_cold_then_warm(init_ms=250.0))
    first = of(out, sg.InvocationSignal)[0]
    assert first.billed_duration_ms == 271         # 21 + 250
    assert first.estimated_cost_usd == pytest.approx(0.271 * 0.125 * 0.0000166667 + 0.0000002)


@pytest.mark.parametrize("mode, billed, expected", [
    ("reported", 22, 22.0),          # a report that left the init out: as reported
    ("add", 22, 272.0),              # ... or with the init added
    ("add", 271, 271.0),             # already included: never twice
    ("exclude", 271, 21.0),          # the pre-2025-08 rule
    ("exclude", 22, 22.0),
])
def test_init_billing_modes(mode, billed, expected):
    assert pricing.billed_ms(billed, 21.0, 250.0, mode) == expected


def test_price_table_per_architecture_and_region_class():
    assert pricing.region_class("eu-west-1") == "standard" and pricing.region_class("cn-north-1") == "china"
    arm = settings_of(AWS_REGION="us-east-1", SIDECAR_ARCHITECTURE="arm64")
    assert (arm.price_per_gb_s, arm.price_per_request) == (0.0000133334, 0.0000002)
    china = settings_of(AWS_REGION="cn-north-1")
    assert china.price_per_gb_s is None
    assert pricing.estimate(100, 128, china.price_per_gb_s, china.price_per_request) is None
    own = settings_of(AWS_REGION="cn-north-1", SIDECAR_PRICE_PER_GB_S="0.0001", SIDECAR_PRICE_PER_REQUEST="0.000001")
    assert pricing.estimate(1000, 1024, own.price_per_gb_s, own.price_per_request) == pytest.approx(0.000101)
