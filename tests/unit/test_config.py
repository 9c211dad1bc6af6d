"""load_settings: defaults, Lambda environment, and one clear warning per invalid value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar.config import PRICE_PER_GB_S, VARIABLES, Settings, load_settings, parse_flush


def test_defaults_from_an_empty_environment():
    s, warnings = load_settings({})
    assert warnings == []
    assert s == Settings()
    assert (s.emf_enabled, s.emf_namespace, s.coldstart_idle_ms, s.buffer_timeout_ms, s.listener_port) == \
        (True, "OtelSidecar", 10000, 25, 0)
    assert s.telemetry_types == ("platform", "function") and s.flush_mode == "adaptive" and s.flush_budget_ms == 30
    assert s.otlp_logs and s.price_per_gb_s == PRICE_PER_GB_S["x86_64"]


def test_lambda_environment_and_fallbacks():
    env = {"AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "7", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
           "AWS_REGION": "eu-west-1", "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"}
    s, w = load_settings(env)
    assert w == [] and (s.function_name, s.function_version, s.memory_mb, s.region) == ("fn", "7", 512, "eu-west-1")
    assert s.service == "fn" and s.initialization_type == "provisioned-concurrency"
    s, _ = load_settings({**env, "OTEL_SERVICE_NAME": "otel-svc"})
    assert s.service == "otel-svc"
    s, _ = load_settings({**env, "OTEL_SERVICE_NAME": "otel-svc", "POWERTOOLS_SERVICE_NAME": "pt-svc"})
    assert s.service == "pt-svc"


def test_namespace_precedence():
    assert load_settings({"POWERTOOLS_METRICS_NAMESPACE": "Shop"})[0].emf_namespace == "Shop"
    assert load_settings({"POWERTOOLS_METRICS_NAMESPACE": "Shop", "SIDECAR_EMF_NAMESPACE": "Side car/1"})[0] \
        .emf_namespace == "Side car/1"


def test_architecture_from_machine_and_override():
    assert load_settings({}, machine="aarch64")[0].architecture == "arm64"
    s, _ = load_settings({}, machine="aarch64")
    assert s.price_per_gb_s == PRICE_PER_GB_S["arm64"]
    assert load_settings({"SIDECAR_ARCHITECTURE": "x86_64"}, machine="aarch64")[0].architecture == "x86_64"


@pytest.mark.parametrize("var,value,field,used", [
    ("SIDECAR_LOG_LEVEL", "loud", "log_level", "INFO"),
    ("SIDECAR_EMF", "maybe", "emf_enabled", True),
    ("SIDECAR_EMF_NAMESPACE", "AWS/Lambda", "emf_namespace", "OtelSidecar"),
    ("SIDECAR_EMF_NAMESPACE", "bad*chars", "emf_namespace", "OtelSidecar"),
    ("POWERTOOLS_METRICS_NAMESPACE", "x" * 300, "emf_namespace", "OtelSidecar"),
    ("SIDECAR_EMF_DIMENSIONS", "FunctionVersion,RequestId", "emf_dimensions", ("FunctionVersion",)),
    ("SIDECAR_COLDSTART_IDLE_MS", "ten", "coldstart_idle_ms", 10000),
    ("SIDECAR_COLDSTART_IDLE_MS", "-5", "coldstart_idle_ms", 10000),
    ("SIDECAR_ARCHITECTURE", "sparc", "architecture", "x86_64"),
    ("SIDECAR_PRICE_PER_GB_S", "free", "price_per_gb_s", PRICE_PER_GB_S["x86_64"]),
    ("SIDECAR_PRICE_PER_GB_S", "nan", "price_per_gb_s", PRICE_PER_GB_S["x86_64"]),
    ("SIDECAR_PRICE_PER_REQUEST", "-1", "price_per_request", 0.0000002),
    ("SIDECAR_THROTTLE_PATTERNS", "Throttl(,ok", "throttle_patterns", ("ok",)),
    ("SIDECAR_TELEMETRY_TYPES", "platform,metrics", "telemetry_types", ("platform",)),
    ("SIDECAR_LISTENER_PORT", "70000", "listener_port", 0),
    ("SIDECAR_BUFFER_TIMEOUT_MS", "5", "buffer_timeout_ms", 25),
    ("SIDECAR_BUFFER_MAX_ITEMS", "10", "buffer_max_items", 10000),
    ("SIDECAR_BUFFER_MAX_BYTES", "1e6", "buffer_max_bytes", 1048576),
    ("SIDECAR_QUEUE_MAX", "0", "queue_max", 10000),
    ("SIDECAR_FLUSH", "sometimes", "flush_mode", "adaptive"),
    ("SIDECAR_FLUSH", "periodic:10", "flush_mode", "adaptive"),
    ("SIDECAR_FLUSH", "end:500", "flush_mode", "adaptive"),
    ("SIDECAR_FLUSH_BUDGET_MS", "lots", "flush_budget_ms", 30),
    ("SIDECAR_FLUSH_MARGIN_MS", "-1", "flush_margin_ms", 100),
    ("SIDECAR_SHUTDOWN_DRAIN_MS", "5000", "shutdown_drain_ms", 300),
    ("SIDECAR_OTLP_LOGS", "2", "otlp_logs", True),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "big", "memory_mb", None),
])
def test_each_invalid_value_gives_one_warning_naming_variable_value_and_fallback(var, value, field, used):
    s, warnings = load_settings({var: value})
    assert getattr(s, field) == used
    assert len(warnings) == 1
    w = warnings[0]
    assert w.startswith(f"{var}={value!r} is invalid")
    assert f"using {used!r} instead" in w or (var == "SIDECAR_THROTTLE_PATTERNS" and "using 'ok' instead" in w) \
        or (var == "SIDECAR_EMF_DIMENSIONS" and "using 'FunctionVersion' instead" in w) \
        or (var == "SIDECAR_TELEMETRY_TYPES" and "using 'platform' instead" in w)


@pytest.mark.parametrize("var,value,field,expected", [
    ("SIDECAR_EMF", "off", "emf_enabled", False),
    ("SIDECAR_EMF", "ON", "emf_enabled", True),
    ("SIDECAR_LOG_LEVEL", "warning", "log_level", "WARN"),
    ("SIDECAR_EMF_DIMENSIONS", "functionversion, Service ,FunctionName", "emf_dimensions",
     ("FunctionVersion", "Service")),
    ("SIDECAR_TELEMETRY_TYPES", "function,extension", "telemetry_types", ("platform", "function", "extension")),
    ("SIDECAR_LISTENER_PORT", "4243", "listener_port", 4243),
    ("SIDECAR_BUFFER_TIMEOUT_MS", "100", "buffer_timeout_ms", 100),
    ("SIDECAR_COLDSTART_IDLE_MS", "0", "coldstart_idle_ms", 0),
    ("SIDECAR_THROTTLE_PATTERNS", "+Quota,Busy", "throttle_patterns", ("Quota", "Busy")),
    ("SIDECAR_OTLP_LOGS", "false", "otlp_logs", False),
    ("SIDECAR_ARCHITECTURE", "aarch64", "architecture", "arm64"),
])
def test_valid_values(var, value, field, expected):
    s, warnings = load_settings({var: value})
    assert warnings == [] and getattr(s, field) == expected


def test_several_bad_values_give_one_warning_each():
    _, warnings = load_settings({"SIDECAR_EMF": "x", "SIDECAR_FLUSH": "x", "SIDECAR_QUEUE_MAX": "x"})
    assert sorted(w.split("=")[0] for w in warnings) == ["SIDECAR_EMF", "SIDECAR_FLUSH", "SIDECAR_QUEUE_MAX"]


def test_telemetry_types_without_platform_get_platform_added_with_a_warning():
    s, warnings = load_settings({"SIDECAR_TELEMETRY_TYPES": "function"})
    assert s.telemetry_types == ("platform", "function") and warnings == []


@pytest.mark.parametrize("value,expected", [
    ("adaptive", ("adaptive", None)), ("END", ("end", None)), ("periodic", ("periodic", None)),
    ("periodic:5000", ("periodic", 5000)), ("periodically,60000", ("periodic", 60000)),
    ("continuous:250", ("continuous", 250)), ("continuous", ("continuous", None)),
    ("periodic:abc", None), ("periodic:99", None), ("burst", None), ("adaptive:100", None),
])
def test_parse_flush(value, expected):
    assert parse_flush(value) == expected


def test_flush_interval_explicit_flag():
    s, _ = load_settings({"SIDECAR_FLUSH": "continuous"})
    assert s.flush_mode == "continuous" and not s.flush_interval_explicit
    s, _ = load_settings({"SIDECAR_FLUSH": "continuous:2000"})
    assert s.flush_interval_ms == 2000 and s.flush_interval_explicit


def test_throttle_patterns_off():
    s, w = load_settings({"SIDECAR_THROTTLE_PATTERNS": "off"})
    assert w == [] and s.throttle_patterns == ("(?!)",)


def test_every_sidecar_variable_read_is_documented_in_the_table():
    import pathlib
    import re

    from otel_sidecar import config
    source = pathlib.Path(config.__file__).read_text()
    read = set(re.findall(r'"(SIDECAR_[A-Z_]+)"', source))
    documented = {name for name, _, _ in config.VARIABLES}
    assert read == documented



_NAMES = [n for n, _, _ in VARIABLES] + ["POWERTOOLS_METRICS_NAMESPACE", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(_NAMES), st.text(max_size=20), max_size=8))
def test_load_settings_never_raises_and_warns_at_most_once_per_variable(env):
    s, warnings = load_settings(env)
    assert isinstance(s, Settings)
    assert len(warnings) <= len(env)
    for w in warnings:
        assert w.split("=", 1)[0] in env and " instead" in w
