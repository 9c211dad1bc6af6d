"""`network="private"`: the environment's own network namespace, as Lambda's (environment.md 5): the Runtime API
on 169.254.100.1:9001, its own localhost, this machine's loopback reachable only at forwarded ports, outbound
through slirp4netns."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading

import pytest
from lambda_sandbox import OtlpReceiver, Sandbox, SandboxConfig
from lambda_sandbox.config import ConfigError
from lambda_sandbox.isolation import namespace_possible

from tests.fixtures.extensions import parse_lines
from tests.helpers import SIDECAR_NAME, dev_layer, wait_for
from tests.sandbox.conftest import FUNCTIONS

pytestmark = pytest.mark.skipif(namespace_possible() is not None, reason=f"namespace isolation: {namespace_possible()}")

PRIVATE = {"isolation": "namespace", "network": "private"}


class PongServer:
    """A TCP server on this machine that answers b"pong" to anything (bounded: one accept thread, closed)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.served = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(100)
                    conn.sendall(b"pong")
                    self.served += 1
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def pong():
    made = []

    def factory(host: str = "127.0.0.1") -> PongServer:
        made.append(PongServer(host))
        return made[-1]

    yield factory
    for srv in made:
        srv.close()


def machine_address() -> str:
    """This machine's first non-loopback IPv4 address (what a function reaches through the NAT)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         timeout=5).stdout.split()
    addrs = [out[i + 1].split("/")[0] for i, word in enumerate(out) if word == "inet"]
    if not addrs:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return addrs[0]


def test_the_runtime_api_is_on_lambdas_address_and_telemetry_reaches_the_listener(make_sandbox):
    sb = make_sandbox("net_probe.handler", recorder=True, **PRIVATE)
    assert sb.api_address == "169.254.100.1:9001"
    result = sb.invoke({})
    assert result.outcome == "success"
    assert result.response["runtime_api"] == "169.254.100.1:9001"       # what the runtime and extensions read
    sb.shutdown()       # the report reaches the listener once the environment is thawed again
    # the extension registered through that address and got the invoke's platform events at its listener on
    # sandbox.localdomain, inside the environment's network
    got = wait_for(lambda: [ev for b in parse_lines(sb.log_lines()) if b["recorder"] == "batch"
                            for ev in b["events"] if ev["type"] == "platform.report"
                            and ev["record"]["requestId"] == result.request_id], what="the report delivered")
    assert got[0]["record"]["status"] == "success"
    registered = [b for b in parse_lines(sb.log_lines()) if b["recorder"] == "registered"]
    assert registered and registered[0]["status"] == 200


def test_api_port_moves_the_runtime_api_on_lambdas_address(make_sandbox):
    sb = make_sandbox("net_probe.handler", api_port=9100, **PRIVATE)
    assert sb.api_address == "169.254.100.1:9100"
    assert sb.invoke({}).response["runtime_api"] == "169.254.100.1:9100"


def test_this_machines_loopback_is_reachable_only_at_forwarded_ports(make_sandbox, pong):
    shut, opened = pong(), pong()
    sb = make_sandbox("net_probe.handler", forward_ports=[opened.port], **PRIVATE)
    results = sb.invoke({"connect": [["127.0.0.1", shut.port], ["127.0.0.1", opened.port]]}).response["results"]
    assert results[0] == {"target": f"127.0.0.1:{shut.port}", "error": "ConnectionRefusedError"}
    assert results[1] == {"target": f"127.0.0.1:{opened.port}", "answer": "pong"}
    assert shut.served == 0 and opened.served == 1
    assert any(f"port(s) {opened.port} reachable" in n for n in sb.notes)


def test_the_host_network_mode_still_reaches_this_machines_loopback(make_sandbox, pong):
    srv = pong()
    sb = make_sandbox("net_probe.handler", isolation="namespace")
    assert sb.api_address.startswith("127.0.0.1:")
    assert sb.invoke({"connect": [["127.0.0.1", srv.port]]}).response["results"][0]["answer"] == "pong"


@pytest.mark.skipif(shutil.which("slirp4netns") is None and not os.environ.get("CI"),
                    reason="slirp4netns is not installed (.ci/run installs it)")
def test_outbound_goes_through_the_nat_to_this_machines_network(make_sandbox, pong):
    addr = machine_address()
    srv = pong("0.0.0.0")
    sb = make_sandbox("net_probe.handler", **PRIVATE)
    assert any("outbound through slirp4netns" in n for n in sb.notes), sb.notes
    results = sb.invoke({"connect": [[addr, srv.port]]}).response["results"]
    assert results == [{"target": f"{addr}:{srv.port}", "answer": "pong"}]


def test_the_sidecar_exports_to_the_sandbox_receiver_from_a_private_network(tmp_path):
    """The whole product in Lambda's network shape: the sidecar reads 169.254.100.1:9001, subscribes, and its
    OTLP export reaches the receiver on this machine through the forwarded port."""
    with OtlpReceiver() as rx:
        cfg = SandboxConfig(code_dir=FUNCTIONS, handler="hello.handler", layers=[dev_layer(tmp_path)],
                            otlp_receiver=rx, **PRIVATE)
        with Sandbox(cfg) as sb:
            results = [sb.invoke({}) for _ in range(2)]
            sb.shutdown()
            lines = sb.extension_lines(SIDECAR_NAME)
        assert [r.outcome for r in results] == ["success", "success"]
        spans = wait_for(lambda: [s for s in rx.spans() if s["kind"] == "SERVER"], what="the sidecar's spans")
        assert sorted(s["attributes"]["faas.invocation_id"] for s in spans) == sorted(r.request_id for r in results)
        assert [ln for ln in lines if "ERROR" in ln or "degraded" in ln] == []


@pytest.mark.parametrize("kwargs, field", [
    ({"network": "private", "isolation": "dirs"}, "network='private'"),
    ({"network": "bridge"}, "network='bridge'"),
    ({"forward_ports": [4318]}, "forward_ports=[4318]"),
    ({"network": "private", "forward_ports": [0]}, "forward_ports=[0] has 0"),
])
def test_bad_network_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        SandboxConfig(code_dir=FUNCTIONS, handler="hello.handler", **kwargs)


def test_the_cli_names_the_flag_of_a_bad_forward_port(capsys):
    from lambda_sandbox import cli

    args = ["run", "--code", str(FUNCTIONS), "--handler", "hello.handler", "--network", "private"]
    assert cli.main(args + ["--forward-port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "--forward-port" in err and "70000" in err and "forward_ports" not in err


def test_the_cli_runs_on_a_private_network_and_says_where_the_api_is(capsys, tmp_path):
    from lambda_sandbox import cli

    report = tmp_path / "report.json"
    args = ["run", "--code", str(FUNCTIONS), "--handler", "hello.handler", "--network", "private", "--quiet",
            "--report", str(report)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "network private (Runtime API 169.254.100.1:9001)" in out
    import json

    env = json.loads(report.read_text())["environment"]
    assert (env["network"], env["apiAddress"], env["forwardedPorts"]) == ("private", "169.254.100.1:9001", [])
