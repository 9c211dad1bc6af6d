"""otel-sidecar: an external AWS Lambda extension that turns the Telemetry API into EMF metrics and OTLP."""

__version__ = "0.1.0"
