"""Our HTTP servers stay quiet when a client resets its connection (issue 15: two tracebacks ending in
ConnectionResetError read as the tool crashing)."""

from __future__ import annotations

import pytest
from lambda_sandbox import api, otlp_receiver


@pytest.mark.parametrize("exc", [ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "x")])
@pytest.mark.parametrize("make", [
    lambda: api._Server(("127.0.0.1", 0), control=None),
    lambda: otlp_receiver._QuietServer(("127.0.0.1", 0), otlp_receiver._Handler),
])
def test_a_client_reset_prints_no_traceback(make, exc, capsys):
    server = make()
    try:
        try:
            raise exc
        except OSError:
            server.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.server_close()
    assert capsys.readouterr().err == ""
    assert getattr(server, "errors", []) == []


def test_any_other_api_error_is_one_line_in_api_errors(capsys):
    server = api._Server(("127.0.0.1", 0), control=None)
    try:
        try:
            raise KeyError("boom")
        except KeyError:
            server.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.server_close()
    assert capsys.readouterr().err == "" and server.errors == ["KeyError: 'boom'"]
