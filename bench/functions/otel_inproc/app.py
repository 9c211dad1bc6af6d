"""Bench function instrumented in-process the way the OpenTelemetry Lambda layer does it.

opentelemetry-instrumentation-aws-lambda wraps the real handler (named by ORIG_HANDLER, as the
layer's otel-instrument wrapper sets it) and force-flushes the tracer provider before the handler
returns, so the export sits on the caller's path. Spans go over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT.
"""

import os

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

os.environ["ORIG_HANDLER"] = "real_app.handler"
# BENCH_OTLP_ENDPOINT: the sidecar's local endpoint (variant h); else the receiver the sandbox injected
_endpoint = (os.environ.get("BENCH_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
             or "http://127.0.0.1:4318").rstrip("/")
provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "bench")}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_endpoint + "/v1/traces")))
AwsLambdaInstrumentor().instrument(tracer_provider=provider)

from real_app import handler  # noqa: E402,F401 - imported after instrumenting, as the wrapper does
