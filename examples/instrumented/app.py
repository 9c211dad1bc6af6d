"""A function instrumented with the OpenTelemetry SDK, exporting to the sidecar's local OTLP endpoint.

One span per request (continuing the X-Ray trace Lambda hands the runtime in _X_AMZN_TRACE_ID, so the span
joins the sidecar's invocation span in one trace), a counter, and log records through the SDK's logging
handler. `force_flush` at the end of the handler sends them before the response, as in-handler
instrumentation must (the environment may freeze right after), but to 127.0.0.1:4318: the sidecar answers at
once and forwards them after the response, so the flush costs a local hop, not a round trip to the backend.

Dependencies (in the deployment package or a layer of yours, never in the sidecar's): opentelemetry-sdk,
opentelemetry-exporter-otlp-proto-http, opentelemetry-propagator-aws-xray.

The event may ask for more work (used by the tests and the bench): {"spans": n, "metrics": true, "logs": n}.
"""

import logging
import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# The sidecar's local endpoint. Not OTEL_EXPORTER_OTLP_ENDPOINT: the function and the sidecar share the
# environment, and that variable names the sidecar's backend when it is set. (The SDK's own default,
# http://localhost:4318, is the same endpoint: leaving the exporters without an endpoint works too when
# the backend is given to the sidecar in SIDECAR_COLLECTOR_CONFIG.)
ENDPOINT = os.environ.get("APP_OTLP_ENDPOINT", "http://127.0.0.1:4318").rstrip("/")
TIMEOUT_S = 2.0     # a local hop; the sidecar answers in about a millisecond

resource = Resource.create({"service.name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "instrumented")})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(
    OTLPSpanExporter(endpoint=f"{ENDPOINT}/v1/traces", timeout=TIMEOUT_S), max_queue_size=8192,
    max_export_batch_size=512))
meter_provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=f"{ENDPOINT}/v1/metrics", timeout=TIMEOUT_S), export_interval_millis=3_600_000)])
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(
    OTLPLogExporter(endpoint=f"{ENDPOINT}/v1/logs", timeout=TIMEOUT_S)))

tracer = tracer_provider.get_tracer("examples.instrumented")
requests_counter = meter_provider.get_meter("examples.instrumented").create_counter(
    "app.requests", unit="{request}", description="Requests handled")
log = logging.getLogger("examples.instrumented")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(logger_provider=logger_provider))
log.propagate = False            # the records go to OTLP; print() still reaches CloudWatch Logs
xray = AwsXRayPropagator()


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    # the X-Ray trace of this invocation (tracing Active, or an upstream header in PassThrough); with
    # OTEL_PROPAGATORS=xray the AWS Lambda instrumentation does the same from _X_AMZN_TRACE_ID
    parent = xray.extract({"X-Amzn-Trace-Id": os.environ.get("_X_AMZN_TRACE_ID", "")})
    with tracer.start_as_current_span("handle", context=parent, kind=trace.SpanKind.INTERNAL) as span:
        span.set_attribute("app.request_id", getattr(context, "aws_request_id", ""))
        for i in range(int(event.get("spans", 0) or 0)):
            with tracer.start_as_current_span("work", attributes={"app.step": i}):
                pass
        requests_counter.add(1, {"app.route": str(event.get("route", "/"))})
        for i in range(int(event.get("logs", 1) or 0)):
            log.info("handled request %s (%d)", getattr(context, "aws_request_id", ""), i)
        ctx = span.get_span_context()
        result = {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
    # before the response: the environment may be frozen right after it, with no thread running
    tracer_provider.force_flush()
    logger_provider.force_flush()
    if event.get("metrics", True):
        meter_provider.force_flush()
    return result
