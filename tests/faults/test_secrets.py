"""Secrets in the sandbox: every form of a secret the issue found printed (userinfo, a malformed header entry,
a trailing newline, a non-Latin-1 value) and headers kept in Secrets Manager (moto server, started here).
Each asserts what a user cares about: the invocations succeed, EMF counts them, exports work (or fail once
with one clear line, counted), and no printed line anywhere (sidecar, function, platform, the report)
contains the secret. Plus the hostile YAML configs (billion laughs, 20,000-deep nesting): refused with one
short line, the function unaffected."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import urllib.request
from typing import Any, Dict, List

import pytest

from tests.faults.conftest import FUNCTIONS, assert_no_traceback, invocation_spans, sidecar_text, total
from tests.helpers import SIDECAR_NAME

pytestmark = pytest.mark.sandbox

SECRET = "s3cr3t-Token-7781"
N = 4


def everything_printed(sb: Any) -> str:
    """Every line of the environment (sidecar, function, platform) and the sandbox's report."""
    text = "\n".join(ln.text for ln in sb.logs)
    try:
        text += "\n" + json.dumps(sb.report(), default=str)
    except Exception:  # noqa: BLE001 - the report is extra evidence, its absence is not the point here
        pass
    return text


def run(sb: Any, n: int = N) -> None:
    results = [sb.invoke({"echo": i}) for i in range(n)]
    assert [r.outcome for r in results] == ["success"] * n
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited", sidecar_text(sb)[-2000:]
    assert total(sb, "Invocations") == n
    assert_no_traceback(sb)


def sent_headers(rx: Any) -> List[Dict[str, str]]:
    return [{k.lower(): v for k, v in r.headers} for r in rx.received]


def otlp_warnings(sb: Any, needle: str) -> List[str]:
    return [ln for ln in sidecar_text(sb).splitlines() if needle in ln]


def test_userinfo_is_sent_as_basic_auth_and_never_printed(sidecar_env):
    from lambda_sandbox import OtlpReceiver

    rx = OtlpReceiver().start()
    try:
        host_port = rx.endpoint.split("://", 1)[1]
        sb, _ = sidecar_env(env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://user:{SECRET}@{host_port}"})
        run(sb)
        assert rx.wait_for(lambda r: len(invocation_spans(r)) >= N, timeout=5)
        basic = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
        assert all(h.get("authorization") == basic for h in sent_headers(rx))
        printed = everything_printed(sb)
        assert SECRET not in printed and basic.split()[1] not in printed and "user:" not in printed
        assert f"http://{host_port}" in sidecar_text(sb)           # the "OTLP export on" line, without userinfo
    finally:
        rx.stop()
        sb.close()


@pytest.mark.parametrize("headers, sent, named", [
    (f"Authorization Bearer {SECRET},x-ok=1", {"x-ok": "1"}, "entry 1"),                 # no '='
    (f"x-api-key={SECRET}%0A,x-ok=1", {"x-api-key": SECRET, "x-ok": "1"}, None),         # trailing newline
    (f"x-api-key={SECRET}%0Ax-injected: 1,x-ok=1", {"x-ok": "1"}, "'x-api-key'"),       # a line break inside
    (f"x-api-key={SECRET}\u20ac,x-ok=1", {"x-ok": "1"}, "'x-api-key'"),                  # not Latin-1
])
def test_each_form_of_a_bad_header_fails_once_at_start_and_exports_go_on(sidecar_env, headers, sent, named):
    sb, rx = sidecar_env(env={"OTEL_EXPORTER_OTLP_HEADERS": headers})
    run(sb)
    assert rx.wait_for(lambda r: len(invocation_spans(r)) >= N, timeout=5)   # every invocation exported
    for h in sent_headers(rx):
        assert {k: h.get(k) for k in sent} == sent and "x-injected" not in h
    lines = otlp_warnings(sb, "OTEL_EXPORTER_OTLP_HEADERS")
    if named:
        assert len(lines) == 1 and named in lines[0], sidecar_text(sb)[-2000:]
    else:
        assert lines == []
    assert "export of" not in sidecar_text(sb)                                 # no export failed
    assert SECRET not in everything_printed(sb)


# ---- Secrets Manager, end to end --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_url():
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    srv = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    host, port = srv.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto keeps its state per process, not per server: start from an empty account
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"),
                           timeout=10).read()
    sm = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    sm.create_secret(Name="otlp-headers", SecretString=json.dumps({"x-api-key": SECRET}))
    boto3.client("ssm", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").put_parameter(Name="/otlp/headers", Value=f"x-api-key={SECRET}\n",
                                                                Type="SecureString")
    try:
        yield url
    finally:
        srv.stop()


def _aws_env(url: str, secret: str, var: str = "SIDECAR_OTLP_HEADERS_SECRET_ARN") -> Dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "session",
            "AWS_ENDPOINT_URL": url, var: secret}


@pytest.mark.parametrize("var, name", [("SIDECAR_OTLP_HEADERS_SECRET_ARN", "otlp-headers"),
                                       ("SIDECAR_OTLP_HEADERS_SSM_PARAMETER", "/otlp/headers")])
def test_headers_from_secrets_manager_or_ssm_reach_every_export_and_no_line(sidecar_env, moto_url, var, name):
    sb, rx = sidecar_env(env=_aws_env(moto_url, name, var))
    run(sb)
    assert rx.wait_for(lambda r: len(invocation_spans(r)) >= N, timeout=5)
    sent = sent_headers(rx)
    assert sent and all(h.get("x-api-key") == SECRET for h in sent)
    assert any(var in ln and "x-api-key" in ln for ln in sidecar_text(sb).splitlines())
    assert SECRET not in everything_printed(sb)


def test_a_missing_secret_gives_one_line_emf_goes_on_and_otlp_data_is_dropped_and_counted(sidecar_env, moto_url):
    sb, rx = sidecar_env(env=_aws_env(moto_url, "no-such-secret"))
    run(sb)
    lines = otlp_warnings(sb, "ResourceNotFoundException")
    assert len(lines) == 1 and "SIDECAR_OTLP_HEADERS_SECRET_ARN" in lines[0], sidecar_text(sb)[-2000:]
    assert rx.received == []                               # nothing sent without the headers
    assert total(sb, "SidecarDropped") > 0                   # and what was not sent is counted


# ---- hostile YAML -----------------------------------------------------------------------------------------
LAUGHS = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
          + "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi")))


@pytest.mark.parametrize("text, why", [
    (LAUGHS, "expands to more than"),
    ("[" * 20000 + "]" * 20000, "nested deeper than"),
    ("x: " + "y" * 70000, "more than the 65536 allowed"),
])
def test_a_hostile_yaml_config_is_refused_with_one_short_line(sidecar_env, tmp_path, text, why):
    # shipped with the code, as a user would: the environment sees no host path
    code = tmp_path / "code"
    shutil.copytree(FUNCTIONS, code)
    (code / "collector.yaml").write_text(text)
    sb, rx = sidecar_env(env={"SIDECAR_COLLECTOR_CONFIG": "/var/task/collector.yaml"}, code_dir=code)
    run(sb)
    lines = otlp_warnings(sb, "collector.yaml")
    assert len(lines) == 1 and why in lines[0] and len(lines[0]) < 400, sidecar_text(sb)[-2000:]
    assert rx.wait_for(lambda r: len(invocation_spans(r)) >= N, timeout=5)   # env-only config still exports
