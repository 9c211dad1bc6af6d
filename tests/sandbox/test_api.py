"""Runtime and Extensions API status codes, headers and error bodies (lambda-apis.md 1-3), over HTTP."""

from __future__ import annotations

import http.client
import json
import threading

import pytest
from lambda_sandbox.api import ApiServer, Control, Invocation


class FakeHub:
    def __init__(self):
        self.calls = []

    def subscribe(self, name, body):
        self.calls.append((name, body))
        return 200, "OK"


@pytest.fixture
def api():
    control = Control("fn", "$LATEST", "app.handler", "123456789012", hub=FakeHub())
    server = ApiServer(control).start()
    yield server
    server.stop()


def call(server, method, path, body=None, headers=None):
    host, port = server.address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def error_of(data: bytes):
    doc = json.loads(data)
    return doc["errorType"], doc["errorMessage"]


def register(server, name="ext", events=("INVOKE", "SHUTDOWN"), feature=None):
    headers = {"Lambda-Extension-Name": name}
    if feature:
        headers["Lambda-Extension-Accept-Feature"] = feature
    return call(server, "POST", "/2020-01-01/extension/register", json.dumps({"events": list(events)}), headers)


def test_register_binds_an_external_extension_and_returns_identifier(api):
    with api.control.cv:
        api.control.add_external("ext")
    status, headers, data = register(api, feature="accountId, other")
    assert status == 200 and headers["content-type"] == "application/json"
    assert len(headers["lambda-extension-identifier"]) == 36
    assert list(json.loads(data)) == ["accountId", "functionName", "functionVersion", "handler"]
    assert json.loads(data)["accountId"] == "123456789012"
    status, _, data = register(api)
    assert status == 403 and error_of(data) == (
        "Extension.InvalidExtensionState",
        "State transition from Registered to Registered failed for extension ext. "
        "Error: State transition is not allowed")


@pytest.mark.parametrize("name, body, expected", [
    ("", b'{"events":[]}', ("Extension.InvalidExtensionName", "Empty extension name")),
    ("x", b"", "InvalidRequestFormat"),
    ("x", b'{"configurationKeys":["a"]}', ("InvalidRequestFormat",
                                           "configurationKeys are deprecated; use environment variables instead")),
    ("x", b'{"events":["BOGUS"]}', ("Extension.InvalidEventType", "BOGUS: ErrorInvalidEventType")),
    ("x", b'{"events":["SHUTDOWN"]}', ("Extension.InvalidEventType",
                                       "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension")),
])
def test_register_validation(api, name, body, expected):
    status, _, data = call(api, "POST", "/2020-01-01/extension/register", body, {"Lambda-Extension-Name": name})
    assert status == 403
    got = error_of(data)
    assert (got[0] if isinstance(expected, str) else got) == expected


def test_internal_registration_closes_at_the_runtimes_first_next(api):
    assert register(api, name="internal", events=["INVOKE"])[0] == 200
    with api.control.cv:
        api.control.runtime.state = "Started"
    t = threading.Thread(target=lambda: call(api, "GET", "/2018-06-01/runtime/invocation/next"), daemon=True)
    t.start()
    with api.control.cv:
        assert api.control.cv.wait_for(lambda: not api.control.registration_open, timeout=5)
    status, _, data = register(api, name="late", events=["INVOKE"])
    assert status == 403 and error_of(data) == ("Extension.RegistrationClosed", "Extension registration closed already")


@pytest.mark.parametrize("ident, expected", [
    (None, ("Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")),
    ("nope", ("Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier")),
    ("0b0f7b9e-7a4c-4b8e-9d9c-3e2f1a0b5c6d", ("Extension.UnknownExtensionIdentifier",
                                              "Unknown extension 0b0f7b9e-7a4c-4b8e-9d9c-3e2f1a0b5c6d")),
])
def test_identifier_checks_on_next_and_telemetry(api, ident, expected):
    headers = {"Lambda-Extension-Identifier": ident} if ident else {}
    for method, path in (("GET", "/2020-01-01/extension/event/next"), ("PUT", "/2022-07-01/telemetry")):
        status, _, data = call(api, method, path, b"{}", headers)
        assert status == 403 and error_of(data) == expected


def test_init_error_requires_the_error_type_header_and_sets_the_fatal_error(api):
    ident = register(api, name="internal", events=["INVOKE"])[1]["lambda-extension-identifier"]
    status, _, data = call(api, "POST", "/2020-01-01/extension/init/error", b"",
                           {"Lambda-Extension-Identifier": ident})
    assert status == 403 and error_of(data) == ("Extension.MissingHeader",
                                                "Lambda-Extension-Function-Error-Type not found")
    hdrs = {"Lambda-Extension-Identifier": ident, "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid"}
    status, _, data = call(api, "POST", "/2020-01-01/extension/init/error", b"", hdrs)
    assert (status, json.loads(data)) == (202, {"status": "OK"})
    assert api.control.fatal == "Extension.InitError"
    assert api.control.extensions[0].error_type == "Extension.ConfigInvalid"
    status, _, data = call(api, "GET", "/2020-01-01/extension/event/next", None, hdrs)
    assert status == 403 and error_of(data)[0] == "Extension.InvalidExtensionState"


def test_telemetry_subscribe_is_passed_to_the_hub_and_answers_ok(api):
    ident = register(api, name="internal", events=["INVOKE"])[1]["lambda-extension-identifier"]
    status, _, data = call(api, "PUT", "/2022-07-01/telemetry", b'{"x":1}', {"Lambda-Extension-Identifier": ident})
    assert (status, data) == (200, b'"OK"')
    assert api.control.hub.calls == [("internal", b'{"x":1}')]


def test_runtime_next_headers_response_and_errors(api):
    inv = Invocation(request_id="11111111-2222-3333-4444-555555555555", payload=b'{"a":1}', deadline_ms=1234,
                     invoked_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
                     trace_header="Root=1-00000000-000000000000000000000000;Parent=0000000000000001;Sampled=1",
                     client_context='{"c":1}')
    with api.control.cv:
        api.control.runtime.state = "Started"
        api.control.runtime.pending = inv
    status, headers, data = call(api, "GET", "/2018-06-01/runtime/invocation/next")
    assert status == 200 and data == b'{"a":1}'
    assert headers["lambda-runtime-aws-request-id"] == inv.request_id
    assert headers["lambda-runtime-deadline-ms"] == "1234"
    assert headers["lambda-runtime-invoked-function-arn"] == inv.invoked_arn
    assert headers["lambda-runtime-trace-id"] == inv.trace_header
    assert headers["lambda-runtime-client-context"] == '{"c":1}'
    assert headers["content-type"] == "application/json"          # awslambdaric segfaults without it
    assert "lambda-runtime-cognito-identity" not in headers
    status, _, data = call(api, "POST", "/2018-06-01/runtime/invocation/wrong-id/response", b"{}")
    assert status == 400 and error_of(data) == ("InvalidRequestID", "Invalid request ID")
    path = f"/2018-06-01/runtime/invocation/{inv.request_id}/response"
    status, _, data = call(api, "POST", path, b'{"ok":true}')
    assert (status, json.loads(data)) == (202, {"status": "OK"})
    assert inv.body == b'{"ok":true}' and inv.result == "response"
    status, _, data = call(api, "POST", path, b"{}")
    assert status == 403 and error_of(data) == (
        "InvalidStateTransition", "State transition from RuntimeResponseSentState to InvocationResponse failed "
                                  "for runtime. Error: State transition is not allowed")


def test_runtime_init_error_only_before_first_next(api):
    with api.control.cv:
        api.control.runtime.state = "Started"
    status, _, _ = call(api, "POST", "/2018-06-01/runtime/init/error", b'{"errorType":"x"}',
                        {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
    assert status == 202 and api.control.fatal == "Runtime.ImportModuleError"
    status, _, data = call(api, "POST", "/2018-06-01/runtime/init/error", b"{}",
                           {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
    assert status == 403 and error_of(data)[0] == "InvalidStateTransition"


def test_unknown_path_and_wrong_method(api):
    status, _, data = call(api, "GET", "/2018-06-01/nothing")
    assert (status, data) == (404, b"404 page not found\n")
    assert call(api, "POST", "/2018-06-01/runtime/invocation/next")[0] == 405


def test_legacy_logs_api_answers_like_the_rie_when_unsupported(api):
    ident = register(api, name="internal", events=["INVOKE"])[1]["lambda-extension-identifier"]
    status, _, data = call(api, "PUT", "/2020-08-15/logs", b"{}", {"Lambda-Extension-Identifier": ident})
    assert status == 202 and error_of(data) == ("Logs.NotSupported", "Logs API is not supported")


def test_unknown_response_mode_is_rejected(api):
    inv = Invocation(request_id="11111111-2222-3333-4444-555555555555", payload=b"{}", deadline_ms=1,
                     invoked_arn="arn")
    with api.control.cv:
        api.control.runtime.state = "Running"
        api.control.runtime.current = inv
    status, _, data = call(api, "POST", f"/2018-06-01/runtime/invocation/{inv.request_id}/response", b"{}",
                           {"Lambda-Runtime-Function-Response-Mode": "bogus"})
    assert status == 400 and error_of(data) == ("InvalidFunctionResponseMode", "Invalid function response mode")
    assert (inv.result, inv.error_type) == ("error", "Runtime.InvalidResponseModeHeader")
