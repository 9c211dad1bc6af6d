"""The un-instrumented handler of the in-process OpenTelemetry variant."""


def handler(event, context):
    return {"ok": True, "n": event.get("n") if isinstance(event, dict) else None}
