"""Bench function: Powertools Metrics writes an EMF document to stdout at the end of every invoke."""

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics(namespace="Bench", service="bench")


@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
    return {"ok": True, "n": event.get("n") if isinstance(event, dict) else None}
