"""A function with its OWN opentelemetry-sdk (from its layer's python/) and its own PYTHONPATH module."""

import importlib.util
import sys


def handler(event, context):
    try:
        import fnlib  # from the customer's PYTHONPATH
    except ImportError as exc:
        return {"error": repr(exc), "sys_path": sys.path}
    import google.protobuf
    import opentelemetry.proto.version
    import opentelemetry.sdk.trace
    import opentelemetry.version
    from opentelemetry.sdk.trace import TracerProvider

    TracerProvider().get_tracer("fn").start_span("work").end()
    return {
        "otel_version": opentelemetry.version.__version__,
        "otel_sdk_file": opentelemetry.sdk.trace.__file__,
        "proto_version": opentelemetry.proto.version.__version__,
        "protobuf_version": google.protobuf.__version__,
        "protobuf_file": google.protobuf.__file__,
        "sys_path": sys.path,
        "fnlib": fnlib.MARK,
        "sidecar_importable": importlib.util.find_spec("otel_sidecar") is not None,
    }
