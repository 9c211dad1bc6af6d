"""OTLP headers from Secrets Manager / SSM: the hand-made SigV4 signer against botocore's, the parsing of a
secret's text, and the fetch against a real local AWS emulator (moto in server mode, started here)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar import aws_secrets
from otel_sidecar.aws_sigv4 import Credentials, sign
from otel_sidecar.otlp.transport import HttpSender

botocore = pytest.importorskip("botocore")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials as BotoCredentials  # noqa: E402

SECRET = "s3cr3t-Value-42"
SECRET_ARN_VAR = aws_secrets.SECRET_VAR
SSM_VAR = aws_secrets.SSM_VAR


# ---- the signer --------------------------------------------------------------------------------------------
_seg = st.text(alphabet="abcXYZ019-_.~ %", min_size=1, max_size=8)
_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["POST", "GET"]),
       host=st.sampled_from(["secretsmanager.eu-west-1.amazonaws.com", "127.0.0.1:4566", "ssm.us-east-1.amazonaws.com:443"]),
       scheme=st.sampled_from(["https", "http"]),
       path=st.lists(_seg, max_size=3), trailing=st.booleans(),
       query=st.dictionaries(st.text(alphabet="abc-_", min_size=1, max_size=4),      # already URI-encoded
                             st.lists(st.sampled_from(["x", "Y", "1", "%2F", "%20", "~"]), max_size=4).map("".join),
                             max_size=3),
       extra=st.dictionaries(st.sampled_from(["X-Amz-Target", "Content-Type", "X-Custom", "User-Agent"]), _value,
                             max_size=4),
       body=st.binary(max_size=64), token=st.one_of(st.none(), st.text(alphabet="abcABC123+/=", min_size=1, max_size=30)),
       region=st.sampled_from(["us-east-1", "eu-central-1", "cn-north-1"]),
       service=st.sampled_from(["secretsmanager", "ssm"]))
def test_signatures_match_botocore(method, host, scheme, path, trailing, query, extra, body, token, region, service):
    url = f"{scheme}://{host}/" + "/".join(path) + ("/" if trailing and path else "")
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    headers = {k: v.strip() or "x" for k, v in extra.items()}
    req = AWSRequest(method, url, data=body, headers=dict(headers))
    SigV4Auth(BotoCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), service, region).add_auth(req)
    mine = sign(method, url, headers, body, region, service,
                Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), req.headers["X-Amz-Date"])
    assert mine["Authorization"] == req.headers["Authorization"]
    assert mine.get("X-Amz-Security-Token") == req.headers.get("X-Amz-Security-Token")


def test_the_request_for_a_source_is_signed_as_botocore_signs_it(monkeypatch):
    import datetime

    import botocore.auth

    env = {SECRET_ARN_VAR: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:otlp-AbCdEf",
           "AWS_REGION": "us-east-1"}
    (source,), problems = aws_secrets.plan(env)
    assert problems == [] and source.region == "eu-west-1"            # the ARN's region wins
    assert source.url == "https://secretsmanager.eu-west-1.amazonaws.com/"
    now = 1_780_000_000.0
    headers = aws_secrets.request_headers(source, Credentials("AK", "SK", "TOKEN"), now)
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda: datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(tzinfo=None))
    req = AWSRequest("POST", source.url, data=source.body,
                     headers={k: v for k, v in headers.items()
                              if k not in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")})
    SigV4Auth(BotoCredentials("AK", "SK", "TOKEN"), "secretsmanager", "eu-west-1").add_auth(req)
    assert headers["Authorization"] == req.headers["Authorization"]
    assert "x-amz-target" in headers["Authorization"] and "x-amz-security-token" in headers["Authorization"]


# ---- the secret's text -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, headers", [
    (f"x-api-key={SECRET},x-team=obs", {"x-api-key": SECRET, "x-team": "obs"}),
    (f"x-api-key={SECRET}\n", {"x-api-key": SECRET}),                       # a trailing newline
    (f"x-api-key={SECRET}\nx-team=obs\n", {"x-api-key": SECRET, "x-team": "obs"}),
    (json.dumps({"Authorization": f"Bearer {SECRET}", "x-n": 7}), {"Authorization": f"Bearer {SECRET}", "x-n": "7"}),
    (json.dumps({"x-api-key": f"{SECRET}\n"}), {"x-api-key": SECRET}),       # a value ending with a newline
    ("x-api-key=s3%2Ccr%3Dt", {"x-api-key": "s3,cr=t"}),
])
def test_both_forms_of_the_secret_give_headers(text, headers):
    out = aws_secrets.parse_secret(text)
    assert out.headers == headers and out.error is None


@pytest.mark.parametrize("text", [
    f"Authorization Bearer {SECRET}",                                       # no '='
    json.dumps({"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"}),    # header injection
    json.dumps({"Authorization": f"Bearer {SECRET}é€"}),                   # not ASCII
    json.dumps([SECRET]),
    "{" + SECRET,
    "",
])
def test_an_unusable_secret_is_an_error_that_never_quotes_it(text):
    out = aws_secrets.parse_secret(text)
    assert out.headers == {} and out.error
    assert SECRET not in out.error and "Bearer" not in out.error


def test_entries_that_cannot_be_sent_are_named_by_key_or_position_the_rest_is_used():
    out = aws_secrets.parse_secret(f"x-good=1,Authorization Bearer {SECRET},x-bad=a%0Ab")
    assert out.headers == {"x-good": "1"}
    assert "entry 2" in out.error and "'x-bad'" in out.error and SECRET not in out.error


def test_endpoint_overrides_follow_the_sdk_variables_and_plain_http_is_loopback_only():
    base = {"AWS_REGION": "us-west-2", SECRET_ARN_VAR: "name", SSM_VAR: "/p"}
    sources, problems = aws_secrets.plan(dict(base, AWS_ENDPOINT_URL="http://127.0.0.1:4566",
                                              AWS_ENDPOINT_URL_SSM="http://localhost:9999"))
    assert [s.url for s in sources] == ["http://127.0.0.1:4566/", "http://localhost:9999/"] and problems == []
    sources, problems = aws_secrets.plan(dict(base, AWS_ENDPOINT_URL_SECRETS_MANAGER="http://evil.example.com"))
    assert sources[0].url == "https://secretsmanager.us-west-2.amazonaws.com/"
    assert len(problems) == 1 and "AWS_ENDPOINT_URL_SECRETS_MANAGER" in problems[0] and "loopback" in problems[0]
    sources, _ = aws_secrets.plan({SSM_VAR: "arn:aws:ssm:cn-north-1:123456789012:parameter/otlp"})
    assert sources[0].url == "https://ssm.cn-north-1.amazonaws.com.cn/"


# ---- against moto in server mode ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server_mod = pytest.importorskip("moto.server")
    srv = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto keeps its state per process, not per server: start from an empty account
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"),
                           timeout=10).read()
    try:
        yield f"http://{host}:{port}"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def aws(moto_server) -> Dict[str, Any]:
    boto3 = pytest.importorskip("boto3")
    kw = dict(endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")
    sm, ssm, iam = boto3.client("secretsmanager", **kw), boto3.client("ssm", **kw), boto3.client("iam", **kw)
    out = {
        "kv": sm.create_secret(Name="otlp-kv", SecretString=f"x-api-key={SECRET},x-team=obs\n")["ARN"],
        "json": sm.create_secret(Name="otlp-json", SecretString=json.dumps({"Authorization": f"Bearer {SECRET}"}))["ARN"],
        "url": moto_server,
    }
    ssm.put_parameter(Name="/otlp/headers", Value=f"x-api-key={SECRET}", Type="SecureString")
    iam.create_user(UserName="no-policy")
    out["denied_key"] = iam.create_access_key(UserName="no-policy")["AccessKey"]
    return out


def env_for(aws: Dict[str, Any], **extra: str) -> Dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "session",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": aws["url"], **extra}


def run_fetch(env: Dict[str, str], caplog, post: Any = aws_secrets.http_post) -> aws_secrets.HeaderFetch:
    caplog.set_level(logging.INFO, logger="otel_sidecar")
    fetch = aws_secrets.start(env, post)
    try:
        assert fetch is not None and fetch.wait(15)
    finally:
        aws_secrets.stop()
    return fetch


def lines(caplog) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("otel_sidecar")]


@pytest.mark.parametrize("form, want", [
    ("kv", {"x-api-key": SECRET, "x-team": "obs"}),
    ("json", {"Authorization": f"Bearer {SECRET}"}),
])
def test_a_secrets_manager_secret_in_either_form(aws, caplog, form, want):
    fetch = run_fetch(env_for(aws, **{SECRET_ARN_VAR: aws[form]}), caplog)
    assert not fetch.failed and fetch.headers == want
    out = lines(caplog)
    assert any(SECRET_ARN_VAR in ln and "values not shown" in ln for ln in out)
    assert not any(SECRET in ln for ln in out)


def test_an_ssm_securestring_and_both_sources_together(aws, caplog):
    fetch = run_fetch(env_for(aws, **{SSM_VAR: "/otlp/headers"}), caplog)
    assert not fetch.failed and fetch.headers == {"x-api-key": SECRET}
    fetch = run_fetch(env_for(aws, **{SSM_VAR: "/otlp/headers", SECRET_ARN_VAR: aws["json"]}), caplog)
    assert fetch.headers == {"x-api-key": SECRET, "Authorization": f"Bearer {SECRET}"}
    assert not any(SECRET in ln for ln in lines(caplog))


@pytest.mark.parametrize("var, value, code", [
    (SECRET_ARN_VAR, "arn:aws:secretsmanager:us-east-1:123456789012:secret:nothere-AbCdEf", "ResourceNotFoundException"),
    (SSM_VAR, "/otlp/nothere", "ParameterNotFound"),
])
def test_a_missing_secret_gives_one_line_with_the_variable_and_the_aws_code(aws, caplog, var, value, code):
    fetch = run_fetch(env_for(aws, **{var: value}), caplog)
    assert fetch.failed and fetch.headers == {} and var in fetch.reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and var in warnings[0] and code in warnings[0] and "EMF goes on" in warnings[0]


def test_access_denied_is_reported_with_its_code(aws, caplog, moto_server):
    import requests

    env = env_for(aws, **{SECRET_ARN_VAR: aws["kv"]})
    env.update(AWS_ACCESS_KEY_ID=aws["denied_key"]["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=aws["denied_key"]["SecretAccessKey"])
    env.pop("AWS_SESSION_TOKEN")
    requests.post(f"{moto_server}/moto-api/reset-auth", data=b"0")       # moto now checks IAM and signatures
    try:
        fetch = run_fetch(env, caplog)
        wrong = run_fetch(dict(env, AWS_SECRET_ACCESS_KEY="not-the-key"), caplog)
    finally:
        requests.post(f"{moto_server}/moto-api/reset-auth", data=b"inf")
    assert fetch.failed and "AccessDenied" in lines(caplog)[0]
    assert wrong.failed and "SignatureDoesNotMatch" in lines(caplog)[1]
    assert not any(SECRET in ln or "not-the-key" in ln for ln in lines(caplog))


class _Throttler:
    """A stub endpoint (moto does not throttle): answers 400 ThrottlingException `throttle` times, then the secret."""

    def __init__(self, throttle: int) -> None:
        self.throttle = throttle
        self.calls = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.calls += 1
                if owner.calls <= owner.throttle:
                    body, status = b'{"__type":"ThrottlingException","message":"Rate exceeded"}', 400
                else:
                    body, status = json.dumps({"SecretString": f"x-api-key={SECRET}"}).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("throttle, ok", [(1, True), (10, False)])
def test_throttling_is_retried_within_bounds_then_reported(caplog, throttle, ok):
    stub = _Throttler(throttle)
    try:
        env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL_SECRETS_MANAGER": stub.url, SECRET_ARN_VAR: "otlp"}
        fetch = run_fetch(env, caplog)
    finally:
        stub.close()
    if ok:
        assert fetch.headers == {"x-api-key": SECRET} and stub.calls == 2
    else:
        assert fetch.failed and stub.calls == aws_secrets.MAX_ATTEMPTS
        assert "ThrottlingException" in lines(caplog)[0] and SECRET_ARN_VAR in lines(caplog)[0]


def test_no_credentials_or_no_region_fail_once_without_a_request(caplog):
    calls: List[Any] = []
    fetch = run_fetch({SECRET_ARN_VAR: "otlp", "AWS_REGION": "us-east-1"}, caplog, post=lambda *a: calls.append(a))
    assert fetch.failed and "AWS_ACCESS_KEY_ID" in lines(caplog)[0]
    fetch = run_fetch({SSM_VAR: "/p", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, caplog,
                      post=lambda *a: calls.append(a))
    assert fetch.failed and "AWS_REGION" in lines(caplog)[1] and calls == []


# ---- the senders wait for the fetch ---------------------------------------------------------------------------
class _Pending:
    """A fetch under test control."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.headers: Dict[str, str] = {}
        self.failed = False
        self.reason = ""
        self.names = SECRET_ARN_VAR

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def finish(self, headers: Dict[str, str], failed: bool = False) -> None:
        self.headers, self.failed = headers, failed
        self.reason = f"{SECRET_ARN_VAR} could not be read" if failed else ""
        self._done.set()


class _Capture:
    def __init__(self) -> None:
        self.seen: List[Dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.seen.append(dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


@pytest.fixture
def capture() -> Iterator[_Capture]:
    cap = _Capture()
    yield cap
    cap.server.shutdown()
    cap.server.server_close()


def test_a_short_flush_does_not_wait_for_the_fetch_a_longer_send_does_and_adds_its_headers(capture):
    late = _Pending()
    sender = HttpSender(capture.url, {"x-api-key": "from-env", "x-team": "obs"}, "none", 5.0, late_headers=late)
    t0 = time.monotonic()
    res = sender.post_once(b"x", "application/x-protobuf", time.monotonic() + 0.03)
    assert not res.ok and res.retryable and res.cut and time.monotonic() - t0 < 0.03 + 0.5
    assert capture.seen == []                                           # nothing was sent without the headers
    threading.Timer(0.2, late.finish, args=({"X-Api-Key": SECRET},)).start()
    res = sender.post_once(b"x", "application/x-protobuf", time.monotonic() + 5)
    assert res.ok
    got = {k.lower(): v for k, v in capture.seen[0].items()}
    assert got["x-api-key"] == SECRET and got["x-team"] == "obs"      # the secret replaced the same name


def test_after_a_failed_fetch_requests_fail_at_once_unsent_naming_the_variable(capture):
    late = _Pending()
    late.finish({}, failed=True)
    sender = HttpSender(capture.url, {}, "none", 5.0, late_headers=late)
    res = sender.post_once(b"x", "application/x-protobuf", time.monotonic() + 5)
    assert not res.ok and not res.retryable and SECRET_ARN_VAR in res.error
    assert capture.seen == []
