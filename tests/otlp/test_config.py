"""OTEL_* variables and the collector-style YAML -> OtlpConfig: values, precedence, one warning per bad value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar.otlp.config import load_otlp_config


def load(env, files=None, default=None, grpc=False):
    files = files or {}
    return load_otlp_config(env, read_file=files.get, default_config_path=default, grpc_available=grpc)


def test_defaults_follow_the_spec_with_gzip_and_delta():
    cfg, warnings = load({})
    assert warnings == []
    assert cfg.traces.endpoint == "http://localhost:4318/v1/traces"
    assert cfg.metrics.endpoint == "http://localhost:4318/v1/metrics"
    assert cfg.logs.endpoint == "http://localhost:4318/v1/logs"
    assert (cfg.traces.protocol, cfg.traces.compression, cfg.traces.timeout_s) == ("http/protobuf", "gzip", 10.0)
    assert cfg.temporality == "delta"
    assert not cfg.disabled


@pytest.mark.parametrize("base, expected", [
    ("http://collector:4318", "http://collector:4318/v1/traces"),
    ("http://collector:4318/", "http://collector:4318/v1/traces"),
    ("https://otlp.example.com/prefix", "https://otlp.example.com/prefix/v1/traces"),
])
def test_base_endpoint_gets_the_signal_path(base, expected):
    cfg, _ = load({"OTEL_EXPORTER_OTLP_ENDPOINT": base})
    assert cfg.traces.endpoint == expected


def test_signal_endpoint_is_used_as_is_and_wins():
    cfg, _ = load({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
                   "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:9999/custom/path",
                   "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c:4318"})
    assert cfg.traces.endpoint == "http://b:9999/custom/path"
    assert cfg.logs.endpoint == "http://c:4318/"          # empty path -> "/" (no /v1/logs appended)
    assert cfg.metrics.endpoint == "http://a:4318/v1/metrics"


def test_headers_are_parsed_decoded_and_hidden_from_repr():
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr3t%3D,x-team=obs",
                          "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-team=metrics"})
    assert warnings == []
    assert dict(cfg.traces.headers) == {"x-api-key": "s3cr3t=", "x-team": "obs"}
    assert dict(cfg.metrics.headers) == {"x-api-key": "s3cr3t=", "x-team": "metrics"}
    assert "s3cr3t" not in repr(cfg)


def test_bad_header_entry_is_reported_without_its_value():
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_HEADERS": "good=1,bad key=topsecret,novalue"})
    assert dict(cfg.traces.headers) == {"good": "1"}
    assert len(warnings) == 1          # one line per variable, each entry named by position
    assert "OTEL_EXPORTER_OTLP_HEADERS" in warnings[0] and "entry 2" in warnings[0] and "entry 3" in warnings[0]
    assert "topsecret" not in warnings[0] and "novalue" not in warnings[0] and "bad key" not in warnings[0]


def test_timeout_is_milliseconds_per_spec_with_a_hint_for_seconds():
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"})
    assert cfg.traces.timeout_s == 2.5 and warnings == []
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_TIMEOUT": "10"})
    assert cfg.traces.timeout_s == 0.01
    assert len(warnings) == 1 and "milliseconds" in warnings[0] and "10000" in warnings[0]
    cfg, _ = load({"OTEL_EXPORTER_OTLP_TIMEOUT": "5000", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1000"})
    assert (cfg.traces.timeout_s, cfg.logs.timeout_s) == (5.0, 1.0)


@pytest.mark.parametrize("var, value, fallback", [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "localhost:4318"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "'gzip'"),
    ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "brotli", "'gzip'"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "'http/protobuf'"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift", "'http/protobuf'"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "'10000ms'"),
    ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-5", "'10000ms'"),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes", "'delta'"),
    ("OTEL_SDK_DISABLED", "maybe", "False"),
    ("OTEL_TRACES_EXPORTER", "zipkin", "otlp"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x", "localhost:4318"),
    ("SIDECAR_OTLP_MAX_QUEUE", "-3", "2048"),
    ("SIDECAR_OTLP_SAMPLING", "sometimes", "always"),
    ("OTEL_TRACES_SAMPLER", "traceidratio", "always_on"),
    ("OTEL_RESOURCE_ATTRIBUTES", "team", "the other attributes"),
])
def test_every_bad_value_gives_one_warning_naming_variable_value_and_fallback(var, value, fallback):
    cfg, warnings = load({var: value})
    assert len(warnings) == 1, warnings
    assert var in warnings[0] and repr(value) in warnings[0] and fallback in warnings[0]
    assert cfg.traces.compression == "gzip" and cfg.traces.protocol == "http/protobuf"
    assert cfg.traces.endpoint == "http://localhost:4318/v1/traces" and cfg.temporality == "delta"


def test_grpc_without_the_grpc_exporter_warns_once_and_falls_back():
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert [cfg.traces.protocol, cfg.metrics.protocol, cfg.logs.protocol] == ["http/protobuf"] * 3
    assert len(warnings) == 1 and "grpc" in warnings[0]
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, grpc=True)
    assert cfg.traces.protocol == "grpc" and cfg.traces.endpoint == "http://localhost:4317" and warnings == []


def test_protocol_json_and_per_signal_compression():
    cfg, _ = load({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "none"})
    assert cfg.traces.protocol == "http/json" and cfg.logs.compression == "none" and cfg.traces.compression == "gzip"


def test_service_name_resource_attributes_disabled_and_exporter_none():
    cfg, warnings = load({"OTEL_SERVICE_NAME": "checkout", "OTEL_RESOURCE_ATTRIBUTES": "team=obs,env=prod%20eu",
                          "OTEL_SDK_DISABLED": "true", "OTEL_LOGS_EXPORTER": "none",
                          "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Cumulative"})
    assert warnings == []
    assert cfg.service_name == "checkout"
    assert dict(cfg.resource_attributes) == {"team": "obs", "env": "prod eu"}
    assert cfg.disabled and not cfg.logs.enabled and cfg.traces.enabled
    assert cfg.temporality == "cumulative"


YAML = """
receivers:
  telemetryapi: {}
processors:
  batch:
    send_batch_size: 100
exporters:
  otlphttp/backend:
    endpoint: ${env:BACKEND_URL}
    headers:
      x-api-key: ${env:API_KEY}
    compression: none
    timeout: 2s
    logs_endpoint: http://logs:4318/ingest
service:
  pipelines:
    traces:
      receivers: [telemetryapi]
      processors: [batch]
      exporters: [otlphttp/backend]
    logs:
      receivers: [telemetryapi]
      exporters: [otlphttp/backend]
"""


def test_yaml_pipeline_with_env_substitution():
    env = {"SIDECAR_COLLECTOR_CONFIG": "/cfg.yaml", "BACKEND_URL": "http://backend:4318", "API_KEY": "k"}
    cfg, warnings = load(env, {"/cfg.yaml": YAML})
    assert warnings == []
    assert cfg.config_file == "/cfg.yaml"
    assert cfg.traces.endpoint == "http://backend:4318/v1/traces"
    assert cfg.logs.endpoint == "http://logs:4318/ingest"
    assert dict(cfg.traces.headers) == {"x-api-key": "k"}
    assert (cfg.traces.compression, cfg.traces.timeout_s, cfg.batch_size) == ("none", 2.0, 100)
    assert not cfg.metrics.enabled          # no metrics pipeline in the file


def test_env_vars_take_precedence_over_yaml():
    env = {"OPENTELEMETRY_COLLECTOR_CONFIG_URI": "file:/cfg.yaml", "BACKEND_URL": "http://backend:4318",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://override:4318", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
    cfg, _ = load(env, {"/cfg.yaml": YAML})
    assert cfg.traces.endpoint == "http://override:4318/v1/traces"
    assert cfg.traces.compression == "gzip"


def test_default_yaml_is_used_when_no_variable_names_one():
    cfg, warnings = load({"BACKEND_URL": "http://backend:4318"}, {"/opt/collector-config/config.yaml": YAML},
                         default="/opt/collector-config/config.yaml")
    assert cfg.traces.endpoint == "http://backend:4318/v1/traces" and warnings == []
    cfg, warnings = load({}, {}, default="/missing.yaml")
    assert warnings == [] and cfg.traces.endpoint == "http://localhost:4318/v1/traces"


def _twin(parsed_from: str, made_for: str) -> str:
    """A twin holding `parsed_from` parsed, claiming to be made from the text `made_for`."""
    import hashlib
    import json

    import yaml

    return json.dumps({"sourceSha256": hashlib.sha256(made_for.encode()).hexdigest(),
                       "config": yaml.safe_load(parsed_from)})


NO_PIPELINES = "service: {pipelines: {}}\n"


def test_the_layers_default_config_is_read_from_its_parsed_twin_without_yaml(monkeypatch):
    files = {"/opt/collector-config/config.yaml": YAML, "/opt/collector-config/config.json": _twin(YAML, YAML)}
    env = {"BACKEND_URL": "http://backend:4318", "API_KEY": "k"}
    want = load(env, {"/opt/collector-config/config.yaml": YAML}, default="/opt/collector-config/config.yaml")
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)      # importing yaml now fails
    got = load(env, files, default="/opt/collector-config/config.yaml")
    assert got == want and got[0].traces.endpoint == "http://backend:4318/v1/traces"


def test_a_stale_twin_or_a_file_named_by_a_variable_is_parsed_as_yaml():
    env = {"BACKEND_URL": "http://backend:4318"}
    stale = {"/d/config.yaml": YAML, "/d/config.json": _twin(NO_PIPELINES, made_for=NO_PIPELINES)}
    cfg, _ = load(env, stale, default="/d/config.yaml")
    assert cfg.traces.endpoint == "http://backend:4318/v1/traces"
    # next to the user's own file even a matching twin is not trusted: the text is what they wrote
    users = {"/u/config.yaml": YAML, "/u/config.json": _twin(NO_PIPELINES, made_for=YAML)}
    cfg, _ = load(dict(env, SIDECAR_COLLECTOR_CONFIG="/u/config.yaml"), users)
    assert cfg.traces.enabled and cfg.traces.endpoint == "http://backend:4318/v1/traces"


def test_unsupported_yaml_keys_are_named_and_ignored():
    text = """
receivers: {otlp: {}}
processors: {memory_limiter: {}}
exporters:
  otlphttp: {endpoint: "http://x:4318", retry_on_failure: {enabled: true}}
  kafka: {}
service:
  pipelines:
    traces: {exporters: [otlphttp, kafka]}
bogus: 1
"""
    cfg, warnings = load({"SIDECAR_COLLECTOR_CONFIG": "/c.yaml"}, {"/c.yaml": text})
    joined = "\n".join(warnings)
    for key in ("receivers.otlp", "processors.memory_limiter", "retry_on_failure", "exporters.kafka", "'bogus'"):
        assert key in joined
    assert cfg.traces.endpoint == "http://x:4318/v1/traces"


@pytest.mark.parametrize("text", ["receivers: [unclosed", "- just\n- a list\n"])
def test_invalid_yaml_gives_one_message_and_env_only(text):
    cfg, warnings = load({"SIDECAR_COLLECTOR_CONFIG": "/c.yaml"}, {"/c.yaml": text})
    assert len(warnings) == 1 and "/c.yaml" in warnings[0]
    assert cfg.traces.endpoint == "http://localhost:4318/v1/traces" and cfg.traces.enabled


def test_named_config_file_missing_or_remote_uri_is_reported():
    _, warnings = load({"SIDECAR_COLLECTOR_CONFIG": "/nope.yaml"})
    assert len(warnings) == 1 and "SIDECAR_COLLECTOR_CONFIG" in warnings[0] and "no such file" in warnings[0]
    _, warnings = load({"OPENTELEMETRY_COLLECTOR_CONFIG_URI": "s3://bucket/config.yaml"})
    assert len(warnings) == 1 and "s3://bucket/config.yaml" in warnings[0]


def test_fallback_named_in_a_warning_is_the_value_really_used():
    env = {"SIDECAR_COLLECTOR_CONFIG": "/cfg.yaml", "BACKEND_URL": "http://backend:4318",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "soon", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}
    cfg, warnings = load(env, {"/cfg.yaml": YAML})
    assert cfg.traces.timeout_s == 2.0 and cfg.traces.compression == "none"
    assert any("'soon'" in w and "'2000ms'" in w for w in warnings)
    assert any("'zstd'" in w and "'none'" in w for w in warnings)


def test_tls_files_per_signal_override_the_base():
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem", "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE": "/logs-ca.pem",
                          "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/c.pem", "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/k.pem"})
    assert warnings == []
    assert (cfg.traces.certificate, cfg.logs.certificate) == ("/ca.pem", "/logs-ca.pem")
    assert (cfg.metrics.client_certificate, cfg.metrics.client_key) == ("/c.pem", "/k.pem")


# ---- secrets and hostile input (issue 9) -------------------------------------------------------------------
SECRET = "pa55w0rd-S3cret"


def test_an_endpoint_without_a_scheme_names_the_variable_and_the_value_really_used():
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
                         {"/opt/collector-config/config.yaml": open("collector-config/config.yaml").read()},
                         default="/opt/collector-config/config.yaml")
    assert cfg.traces.endpoint == "http://localhost:4318/v1/traces"
    assert len(warnings) == 1, warnings                       # not a second one blaming the default config file
    w = warnings[0]
    assert w.startswith("OTEL_EXPORTER_OTLP_ENDPOINT='localhost:4318' is invalid")
    assert "'http://localhost:4318' (the default)" in w and "config.yaml" not in w and "next configured" not in w


def test_userinfo_becomes_basic_auth_and_leaves_the_endpoint():
    import base64

    cfg, warnings = load({"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{SECRET}@otlp.example.com"})
    assert warnings == [] and cfg.traces.endpoint == "https://otlp.example.com/v1/traces"
    assert dict(cfg.traces.headers)["Authorization"] == "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{SECRET}@otlp.example.com",
                          "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer abc"})
    assert dict(cfg.traces.headers) == {"authorization": "Bearer abc"}
    assert len(warnings) == 1 and "OTEL_EXPORTER_OTLP_ENDPOINT" in warnings[0] and SECRET not in warnings[0]


def test_an_invalid_url_with_userinfo_is_reported_without_it():
    _, warnings = load({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"https://user:{SECRET}@host:99999/"})
    assert len(warnings) == 1 and "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in warnings[0]
    assert SECRET not in warnings[0] and "user" not in warnings[0]


@pytest.mark.parametrize("raw, kept, named", [
    (f"Authorization Bearer {SECRET}", {}, "entry 1"),
    (f"x-ok=1,x-api-key={SECRET}%0D%0AX-Evil: 1", {"x-ok": "1"}, "'x-api-key'"),
    (f"x-api-key={SECRET}%E2%82%AC", {}, "'x-api-key'"),                 # a euro sign: not Latin-1
    (f"x-api-key={SECRET}%0A", {"x-api-key": SECRET}, None),             # surrounding whitespace trimmed
    (f"x-api-key={SECRET}%FF", {}, "'x-api-key'"),                       # not UTF-8 once decoded
])
def test_header_values_are_checked_at_load_and_never_printed(raw, kept, named):
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_HEADERS": raw})
    assert dict(cfg.traces.headers) == kept
    if named:
        assert len(warnings) == 1 and named in warnings[0] and "OTEL_EXPORTER_OTLP_HEADERS" in warnings[0]
    else:
        assert warnings == []
    assert not any(SECRET in w or "Bearer" in w for w in warnings)


def test_a_yaml_block_scalar_header_is_trimmed_and_bad_ones_named_by_key():
    text = f"""
exporters:
  otlphttp:
    endpoint: http://x:4318
    headers:
      x-api-key: |
        {SECRET}
      x-bad: "a\\nb{SECRET}"
      x-list: [1, 2]
service: {{pipelines: {{traces: {{exporters: [otlphttp]}}}}}}
"""
    cfg, warnings = load({"SIDECAR_COLLECTOR_CONFIG": "/c.yaml"}, {"/c.yaml": text})
    assert dict(cfg.traces.headers) == {"x-api-key": SECRET}
    assert len(warnings) == 1 and "'x-bad'" in warnings[0] and "'x-list'" in warnings[0]
    assert SECRET not in warnings[0]


LAUGHS = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
          + "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi")))


@pytest.mark.parametrize("text, why", [
    (LAUGHS, "expands to more than 10000 nodes"),
    ("exporters: {otlphttp: {headers: " + LAUGHS.replace("\n", " ") + "}}", "not used"),
    ("[" * 20000 + "]" * 20000, "nested deeper than 100"),
    ("- " * 20000 + "x", "nested deeper than 100"),
    ("a: &x [*x]", "recursive"),
    ("x: " + "y" * 70000, "more than the 65536 allowed"),
    (f"a: 'unterminated {SECRET}", "line 1"),
])
def test_hostile_yaml_is_refused_with_one_short_line(text, why):
    cfg, warnings = load({"SIDECAR_COLLECTOR_CONFIG": "/c.yaml"}, {"/c.yaml": text})
    assert len(warnings) == 1 and why in warnings[0] and len(warnings[0]) <= 300, warnings
    assert SECRET not in warnings[0]
    assert cfg.traces.endpoint == "http://localhost:4318/v1/traces"


def test_aliases_within_the_bounds_still_work():
    text = """
x-common: &common {compression: none, timeout: 2s}
exporters:
  otlphttp: {<<: *common, endpoint: "http://b:4318"}
service: {pipelines: {traces: {exporters: [otlphttp]}}}
"""
    cfg, warnings = load({"SIDECAR_COLLECTOR_CONFIG": "/c.yaml"}, {"/c.yaml": text})
    assert (cfg.traces.compression, cfg.traces.timeout_s, cfg.traces.endpoint) == ("none", 2.0, "http://b:4318/v1/traces")
    assert [w for w in warnings if "x-common" not in w] == []


_VALUE_CHARS = st.sampled_from(list("aZ9 -_.:/+=%\t\r\n\x00\x7f") + ["é", "€", "\u2028", "%0A", "%E2%82%AC", "%FF"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x-api-key", "Authorization", "bad key", "", "k\u00e9y"]),
                          st.lists(_VALUE_CHARS, max_size=6).map("".join), st.booleans()), min_size=1, max_size=5))
def test_no_warning_ever_holds_a_header_value(entries):
    # values hold the marker; commas are the separator, so a value never has one (the format percent-encodes it)
    # an entry without '=' must stay one: "k secret=x" would be a real header named "k secret" (or "secret")
    raw = ",".join(f"{k}={SECRET}{v}" if eq else f"{k} {SECRET}{v.replace('=', '')}" for k, v, eq in entries)
    cfg, warnings = load({"OTEL_EXPORTER_OTLP_HEADERS": raw})
    assert len(warnings) <= 1
    assert not any(SECRET in w for w in warnings)
    for _key, value in cfg.traces.headers:
        assert value == value.strip() and value.replace("\t", " ").isprintable() and isinstance(value.encode("latin-1"), bytes)


@pytest.mark.parametrize("env, expected", [
    ({}, "always"),                                           # Sampled=0 from Lambda must not hide every span
    ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, "parent"),
    ({"OTEL_TRACES_SAMPLER": "ALWAYS_ON"}, "always"),
    ({"OTEL_TRACES_SAMPLER": "parentbased_always_on", "SIDECAR_OTLP_SAMPLING": "always"}, "always"),
    ({"SIDECAR_OTLP_SAMPLING": "parent"}, "parent"),
])
def test_span_sampling_default_and_the_standard_sampler(env, expected):
    cfg, warnings = load(env)
    assert cfg.sampling == expected and warnings == []
