"""THE list of every metric the sidecar emits, for EMF and OTLP alike. Pure data.

Each entry says which output signal and which field it comes from, so that emf.py, the OTLP sink and the
dashboards (checked against this list by a test) can never disagree on a name or a unit.

Conversions from the signal's field to the OTLP value use `otlp_scale` (ms -> s, MB -> By, ...).
EMF values keep the signal's unit (milliseconds, megabytes, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

# CloudWatch units allowed by the EMF schema (conventions.md 1.3)
CLOUDWATCH_UNITS = frozenset((
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
))

# signal names (the Output type a metric is derived from)
INVOCATION = "invocation"
INIT = "init"
SHUTDOWN = "shutdown"
HEALTH = "health"

# kinds: counter (a sum, one increment per true flag or the value), histogram (a distribution of
# per-event values), gauge (the latest value)
COUNTER = "counter"
HISTOGRAM = "histogram"
GAUGE = "gauge"

MS_TO_S = 0.001
MB_TO_BY = 1024.0 * 1024.0  # Lambda's MB are MiB (memorySizeMB 128 = 134217728 bytes of instanceMaxMemory)


@dataclass(frozen=True)
class Metric:
    key: str                 # stable internal id
    emf_name: str            # CloudWatch metric name
    emf_unit: str            # CloudWatch unit
    otlp_name: str           # OTLP instrument name
    otlp_unit: str           # UCUM unit
    kind: str                # COUNTER | HISTOGRAM | GAUGE
    signal: str              # INVOCATION | INIT | SHUTDOWN | HEALTH
    field: str               # attribute of the signal (bool -> count 1 when true) or health counter key
    source: str              # the platform event / lifecycle input it comes from
    description: str
    otlp_scale: float = 1.0  # signal value * otlp_scale = OTLP value
    when: Optional[str] = None  # with `equals`: count only signals whose `when` attribute equals `equals`
    equals: Optional[str] = None
    otlp_field: Optional[str] = None  # the OTLP instrument reads this field instead of `field` when set
    sparse: bool = False     # EMF: an invocation counter printed only when non-zero (a mode most functions lack)

    @property
    def otlp_source_field(self) -> str:
        return self.otlp_field or self.field


METRICS: Tuple[Metric, ...] = (
    # ---- invocations (InvocationSignal, one per request id) ------------------------------------------------
    Metric("invocations", "Invocations", "Count", "faas.invocations", "{invocation}", COUNTER, INVOCATION,
           "request_id", "platform.report (or finish() for an invocation whose report never came)",
           "EMF: every invocation (as AWS/Lambda Invocations). OTLP faas.invocations: successful invocations, "
           "as the semantic conventions define it (field `succeeded`).", otlp_field="succeeded"),
    Metric("errors", "Errors", "Count", "faas.errors", "{error}", COUNTER, INVOCATION, "error",
           "report/runtimeDone status error|failure|timeout, handled function errors",
           "Invocations that did not succeed."),
    Metric("function_errors", "FunctionErrors", "Count", "aws.lambda.function_errors", "{error}", COUNTER,
           INVOCATION, "function_error", "runtimeDone success with no response (the runtime posted /error)",
           "Handled function errors (the handler raised, the runtime reported it)."),
    Metric("timeouts", "Timeouts", "Count", "faas.timeouts", "{timeout}", COUNTER, INVOCATION, "timeout",
           "runtimeDone/report status timeout, SHUTDOWN reason timeout",
           "Invocations that hit the function timeout (once per request id)."),
    Metric("oom", "OutOfMemory", "Count", "aws.lambda.out_of_memory", "{invocation}", COUNTER, INVOCATION, "oom",
           "errorType Runtime.OutOfMemory, maxMemoryUsedMB >= memorySizeMB, runtime OOM log lines",
           "Invocations that ran out of memory (once per request id)."),
    Metric("downstream_throttles", "DownstreamThrottles", "Count", "aws.lambda.downstream_throttles",
           "{throttle}", COUNTER, INVOCATION, "throttles", "function log lines matching throttle patterns",
           "Throttle errors the function got from downstream services (not Lambda's own throttles)."),
    Metric("duration", "Duration", "Milliseconds", "aws.lambda.duration", "s", HISTOGRAM, INVOCATION,
           "duration_ms", "platform.report metrics.durationMs",
           "Invoke phase duration including extensions.", MS_TO_S),
    Metric("invoke_duration", "RuntimeDuration", "Milliseconds", "faas.invoke_duration", "s", HISTOGRAM,
           INVOCATION, "runtime_duration_ms", "platform.runtimeDone metrics.durationMs",
           "Duration of the function's own work (runtime until its next /next).", MS_TO_S),
    Metric("billed_duration", "BilledDuration", "Milliseconds", "aws.lambda.billed_duration", "s", HISTOGRAM,
           INVOCATION, "billed_duration_ms", "platform.report metrics.billedDurationMs",
           "Billed duration.", MS_TO_S),
    Metric("post_runtime_duration", "PostRuntimeDuration", "Milliseconds", "aws.lambda.post_runtime_duration",
           "s", HISTOGRAM, INVOCATION, "post_runtime_ms",
           "platform.report extensionOverhead span, else report.durationMs - runtimeDone.durationMs",
           "Time extensions kept the invocation busy after the runtime finished.", MS_TO_S),
    Metric("response_latency", "ResponseLatency", "Milliseconds", "aws.lambda.response_latency", "s", HISTOGRAM,
           INVOCATION, "response_latency_ms", "platform.runtimeDone responseLatency span",
           "From invoke to the first response byte.", MS_TO_S),
    Metric("response_duration", "ResponseDuration", "Milliseconds", "aws.lambda.response_duration", "s",
           HISTOGRAM, INVOCATION, "response_duration_ms", "platform.runtimeDone responseDuration span",
           "Time to send the response.", MS_TO_S),
    Metric("produced_bytes", "ProducedBytes", "Bytes", "aws.lambda.produced_bytes", "By", HISTOGRAM, INVOCATION,
           "produced_bytes", "platform.runtimeDone metrics.producedBytes", "Response size."),
    Metric("max_memory_used", "MaxMemoryUsed", "Megabytes", "faas.mem_usage", "By", HISTOGRAM, INVOCATION,
           "max_memory_used_mb", "platform.report metrics.maxMemoryUsedMB",
           "Maximum memory used by the environment during the invocation.", MB_TO_BY),
    Metric("memory_utilization", "MemoryUtilization", "Percent", "aws.lambda.memory_utilization", "%",
           HISTOGRAM, INVOCATION, "memory_utilization", "report maxMemoryUsedMB / memorySizeMB",
           "Maximum memory used as a percentage of the memory size."),
    Metric("estimated_cost", "EstimatedCost", "None", "aws.lambda.estimated_cost", "{USD}", COUNTER, INVOCATION,
           "estimated_cost_usd", "report billedDurationMs x memorySizeMB x price per GB-s + price per request",
           "Estimated compute + request cost in USD (list prices per architecture and region class, "
           "pricing.py; billed init and SnapStart restore included; none on Lambda Managed Instances)."),
    Metric("durable_invocations", "DurableInvocations", "Count", "aws.lambda.durable.invocations",
           "{invocation}", COUNTER, INVOCATION, "durable",
           "platform.initStart runtimeVersion naming DurableFunction, or an executionArn in JSON log records",
           "Invocations of a durable function (every replay of an execution is one).", sparse=True),
    # ---- inits (InitSignal, one per init) -----------------------------------------------------------------
    Metric("coldstarts", "ColdStart", "Count", "faas.coldstarts", "{coldstart}", COUNTER, INIT, "cold_start",
           "platform.initStart/initReport on-demand + first invoke within the idle threshold",
           "Cold starts: invocations that waited for an on-demand init (counted once per init)."),
    Metric("proactive_inits", "ProactiveInit", "Count", "aws.lambda.proactive_inits", "{init}", COUNTER, INIT,
           "proactive", "on-demand init followed by an idle gap longer than SIDECAR_COLDSTART_IDLE_MS",
           "Inits Lambda ran ahead of demand (not cold starts)."),
    Metric("inits", "Inits", "Count", "aws.lambda.inits", "{init}", COUNTER, INIT, "kind",
           "platform.initReport / restoreReport", "Every init of an environment (any kind and phase)."),
    Metric("init_errors", "InitErrors", "Count", "aws.lambda.init_errors", "{init}", COUNTER, INIT, "failed",
           "platform.initReport / restoreReport status error|failure|timeout", "Inits that failed."),
    Metric("restores", "Restores", "Count", "aws.lambda.snapstart.restores", "{init}", COUNTER, INIT,
           "restored", "platform.restoreStart / restoreReport",
           "SnapStart restores: environments started from the snapshot (not cold starts; the snapshot's own "
           "init, run at publish time, is not counted)."),
    Metric("init_duration", "InitDuration", "Milliseconds", "faas.init_duration", "s", HISTOGRAM, INIT,
           "duration_ms", "platform.initReport metrics.durationMs (fallback report.initDurationMs)",
           "Init duration.", MS_TO_S),
    Metric("restore_duration", "RestoreDuration", "Milliseconds", "aws.lambda.snapstart.restore_duration", "s",
           HISTOGRAM, INIT, "restore_duration_ms",
           "platform.restoreReport metrics.durationMs (fallback report.restoreDurationMs)",
           "SnapStart restore duration.", MS_TO_S),
    # ---- shutdown (ShutdownSignal) -------------------------------------------------------------------------
    Metric("shutdowns", "Shutdowns", "Count", "aws.lambda.shutdowns", "{shutdown}", COUNTER, SHUTDOWN, "reason",
           "SHUTDOWN event (OTLP attribute `reason`)", "Environment shutdowns, any reason."),
    Metric("shutdowns_spindown", "ShutdownsSpindown", "Count", "aws.lambda.shutdowns", "{shutdown}", COUNTER,
           SHUTDOWN, "reason", "SHUTDOWN shutdownReason spindown", "Shutdowns of idle environments.",
           when="reason", equals="spindown"),
    Metric("shutdowns_timeout", "ShutdownsTimeout", "Count", "aws.lambda.shutdowns", "{shutdown}", COUNTER,
           SHUTDOWN, "reason", "SHUTDOWN shutdownReason timeout", "Shutdowns after a timeout.",
           when="reason", equals="timeout"),
    Metric("shutdowns_failure", "ShutdownsFailure", "Count", "aws.lambda.shutdowns", "{shutdown}", COUNTER,
           SHUTDOWN, "reason", "SHUTDOWN shutdownReason failure", "Shutdowns after a failure (crash, OOM).",
           when="reason", equals="failure"),
    # ---- the sidecar's own health (HealthSignal counters, cumulative; EMF prints deltas) -------------------
    Metric("records_received", "SidecarRecordsReceived", "Count", "otel_sidecar.records_received", "{record}",
           COUNTER, HEALTH, "records_received", "Telemetry API batches", "Telemetry records received."),
    Metric("malformed", "SidecarMalformed", "Count", "otel_sidecar.malformed", "{record}", COUNTER, HEALTH,
           "malformed", "Telemetry API batches", "Malformed batches and records (dropped)."),
    Metric("unknown_records", "SidecarUnknownRecords", "Count", "otel_sidecar.unknown_records", "{record}",
           COUNTER, HEALTH, "unknown_types", "Telemetry API batches", "Records of unknown types (ignored)."),
    Metric("unknown_fields", "SidecarUnknownFields", "Count", "otel_sidecar.unknown_fields", "{field}", COUNTER,
           HEALTH, "unknown_fields", "Telemetry API batches", "Unknown fields in known records (ignored)."),
    Metric("platform_logs_dropped", "SidecarPlatformLogsDropped", "Count", "otel_sidecar.platform_logs_dropped",
           "{record}", COUNTER, HEALTH, "logs_dropped_records", "platform.logsDropped droppedRecords",
           "Records Lambda dropped because the sidecar fell behind."),
    Metric("dropped", "SidecarDropped", "Count", "otel_sidecar.dropped", "{item}", COUNTER, HEALTH, "dropped",
           "the sidecar's own bounded buffers (listener queue, sinks)", "Items the sidecar dropped itself."),
    Metric("export_failures", "SidecarExportFailures", "Count", "otel_sidecar.export_failures", "{export}",
           COUNTER, HEALTH, "export_failures", "OTLP exporter", "Failed exports."),
    Metric("function_otlp_received", "SidecarFunctionOtlpReceived", "Count", "otel_sidecar.function_otlp.received",
           "{item}", COUNTER, HEALTH, "local_otlp_received", "the local OTLP endpoint (local_otlp.py)",
           "Spans, metric data points and log records the function posted to the local endpoint (OTLP: per signal)."),
    Metric("function_otlp_forwarded", "SidecarFunctionOtlpForwarded", "Count",
           "otel_sidecar.function_otlp.forwarded", "{item}", COUNTER, HEALTH, "local_otlp_forwarded",
           "the local OTLP endpoint (local_otlp.py)",
           "Of those, the ones the backend accepted (OTLP: per signal; the dropped ones are in SidecarDropped)."),
    Metric("tenant_overflow", "SidecarTenantOverflow", "Count", "otel_sidecar.tenant_overflow", "{signal}",
           COUNTER, HEALTH, "tenant_overflow", "EMF tenant dimension (SIDECAR_TENANT_DIMENSION)",
           "Signals put under TenantId=other because the minute already had SIDECAR_TENANT_DIMENSION_MAX tenants."),
    Metric("time_to_first_next", "SidecarTimeToFirstNext", "Milliseconds", "otel_sidecar.time_to_first_next",
           "s", GAUGE, HEALTH, "time_to_first_next_ms", "process start -> first /next",
           "How long the sidecar took to finish its init.", MS_TO_S),
)

BY_KEY: Dict[str, Metric] = {m.key: m for m in METRICS}
BY_EMF_NAME: Dict[str, Metric] = {m.emf_name: m for m in METRICS}
HEALTH_KEYS: Tuple[str, ...] = tuple(m.field for m in METRICS if m.signal == HEALTH)


def for_signal(signal: str) -> Tuple[Metric, ...]:
    return tuple(m for m in METRICS if m.signal == signal)


def otlp_instruments() -> Tuple[Metric, ...]:
    """One entry per distinct OTLP instrument name (the per-reason shutdown rows share `aws.lambda.shutdowns`)."""
    seen: Dict[str, Metric] = {}
    for m in METRICS:
        seen.setdefault(m.otlp_name, m)
    return tuple(seen.values())
