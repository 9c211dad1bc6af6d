"""`lambda-sandbox`: run a function (plus extension layers) in a local execution environment.

Exit codes: 0 every invoke succeeded; 1 at least one invoke failed (handled error, timeout, crash,
failed init such as Runtime.HandlerNotFound, or an extension failure after the response); 2 usage
error (a bad flag or value, a missing file) or the sandbox could not start.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .config import ConfigError, LogLine, SandboxConfig
from .isolation import IsolationError


def _env_pair(text: str) -> tuple:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--env {text!r}: expected KEY=VALUE")
    key, value = text.split("=", 1)
    if not key:
        raise argparse.ArgumentTypeError(f"--env {text!r}: the key is empty")
    return key, value


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--payload {text!r} is not JSON ({exc})") from exc


EXIT_OK, EXIT_INVOKE_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES_HELP = ("exit codes: 0 every invoke succeeded; 1 at least one invoke failed (error, timeout, crash, "
                   "init_error such as Runtime.HandlerNotFound, or an extension failure after the response); "
                   "2 usage error (bad flag or value, missing file) or the sandbox could not start")

# SandboxConfig field -> the flag a user typed (errors name the flag, not the field)
FLAGS: Dict[str, str] = {
    "code_dir": "--code", "handler": "--handler", "layers": "--layer", "memory_mb": "--memory",
    "timeout_s": "--timeout", "env": "--env", "function_name": "--function-name", "tracing": "--tracing",
    "init_type": "--init-type", "log_format": "--log-format", "isolation": "--isolation", "freeze": "--freeze",
    "cpu_quota": "--cpu-quota", "enforce_memory": "--enforce-memory", "api_port": "--api-port",
    "ephemeral_storage_mb": "--ephemeral-storage", "network": "--network", "forward_ports": "--forward-port",
    "runtime": "--runtime", "host_interpreters": "--host-interpreters",
    # platform modes
    "mode": "--mode", "concurrency": "--concurrency", "snapstart": "--snapstart", "tenant_id": "--tenant-id",
    "logs_api": "--logs-api", "lmi_error_status": "--lmi-error-status",
}
_FIELD = re.compile(r"\b(" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")(=|\[)")


def flag_message(message: str) -> str:
    """A ConfigError message with the config field names replaced by the CLI flags (`memory_mb=50` ->
    `--memory 50`)."""
    return _FIELD.sub(lambda m: FLAGS[m.group(1)] + (" " if m.group(2) == "=" else m.group(2)), message)


def check_paths(args: argparse.Namespace) -> None:
    """Usage errors a user can fix, found before anything starts: they name the flag and the value."""
    code = Path(args.code)
    if not code.exists():
        raise ConfigError(f"--code {args.code}: the directory does not exist")
    if not code.is_dir():
        raise ConfigError(f"--code {args.code}: not a directory (give the folder that holds the handler's module)")
    for layer in args.layer:
        p = Path(layer)
        if not p.exists():
            hint = " (build the otel-sidecar layer first: ./build.sh)" if p.suffix == ".zip" else ""
            raise ConfigError(f"--layer {layer}: the file does not exist{hint}")
        if p.is_file() and not zipfile.is_zipfile(p):
            raise ConfigError(f"--layer {layer}: not a zip file (give a layer .zip or an unpacked layer directory)")
    if args.payload_file and not Path(args.payload_file).is_file():
        raise ConfigError(f"--payload-file {args.payload_file}: the file does not exist")


def exit_code(results: Sequence[Any]) -> int:
    """0 when every invoke succeeded, 1 when at least one failed (see EXIT_CODES_HELP)."""
    failed = [r for r in results if r.outcome != "success" or r.status != "success"]
    return EXIT_INVOKE_FAILED if failed else EXIT_OK


# ---- platform modes (platform-2025.md): flags, config, tenant routing, concurrent dispatch -------------

def add_mode_flags(run: argparse.ArgumentParser) -> None:
    modes = run.add_argument_group("platform modes (docs/sandbox-fidelity.md, docs/sandbox-telemetry.md)")
    modes.add_argument("--mode", choices=["default", "managed-instances"], default="default",
                       help="managed-instances: a Lambda Managed Instances environment (concurrent invokes, never "
                            "frozen, extensions may register for SHUTDOWN only, Telemetry schema 2025-01-29, JSON "
                            "logs, no platform.runtimeDone, version $LATEST.PUBLISHED) (default: default)")
    modes.add_argument("--concurrency", type=int, default=None, metavar="N",
                       help="with --mode managed-instances: AWS_LAMBDA_MAX_CONCURRENCY, 1..64 runtime workers; "
                            "the payloads are dispatched with up to N invokes in flight (default 1)")
    modes.add_argument("--snapstart", action="store_true",
                       help="SnapStart: init at publish (before-snapshot hooks, INIT_REPORT), then restore before "
                            "the first invoke (platform.restoreStart/restoreRuntimeDone/restoreReport, "
                            "after-restore hooks); version 1")
    modes.add_argument("--tenant-id", default=None, metavar="ID",
                       help="tenant isolation: the tenant of every invoke (1..256 printable characters). A "
                            "--payload-file line {\"tenantId\": ID, \"payload\": {...}} (exactly these keys) "
                            "sets the tenant of that invoke; each tenant gets its own environment")
    modes.add_argument("--logs-api", choices=["enabled", "stub"], default="enabled",
                       help="the legacy Logs API (PUT /2020-08-15/logs): enabled (default), or stub: answer as "
                            "the RIE does (202 Logs.NotSupported)")
    modes.add_argument("--lmi-error-status", choices=["error", "success"], default="error",
                       help="with --mode managed-instances: platform.report status of a handled function error "
                            "(error as RIE-LMI, the default; success as default functions)")
    modes.add_argument("--lmi-any-schema", action="store_true",
                       help="with --mode managed-instances: accept every Telemetry schemaVersion instead of "
                            "refusing all but 2025-01-29")


def mode_config(args: argparse.Namespace) -> Dict[str, Any]:
    """The SandboxConfig fields of the mode flags (validated by SandboxConfig, errors name the flag)."""
    if args.concurrency is not None and args.mode != "managed-instances":
        raise ConfigError(f"--concurrency {args.concurrency} needs --mode managed-instances")
    out: Dict[str, Any] = {"mode": args.mode, "snapstart": args.snapstart, "tenant_id": args.tenant_id,
                           "logs_api": args.logs_api, "lmi_error_status": args.lmi_error_status,
                           "lmi_strict_schema": not args.lmi_any_schema}
    if args.concurrency is not None:
        out["concurrency"] = args.concurrency
    return out


def split_tenants(items: List[Any], default: Optional[str]) -> tuple:
    """Payloads and per-invoke tenants: a line {"tenantId": ID, "payload": P} (exactly these keys) is P for
    tenant ID; any other payload goes to the --tenant-id tenant (or none)."""
    payloads, tenants = [], []
    for n, item in enumerate(items, 1):
        if isinstance(item, dict) and set(item) == {"tenantId", "payload"}:
            tenant = item["tenantId"]
            if not isinstance(tenant, str):
                raise ConfigError(f"--payload-file line {n}: tenantId {tenant!r} must be a string")
            payloads.append(item["payload"])
            tenants.append(tenant)
        else:
            payloads.append(item)
            tenants.append(default)
    return payloads, tenants


def make_environment(cfg: SandboxConfig, on_log: Any, tenants: List[Optional[str]]) -> Any:
    """A Sandbox, or a TenantPool (one environment per tenant) when invokes carry tenants."""
    from .environment import Sandbox

    if any(t is not None for t in tenants):
        from .tenancy import TenantPool

        return TenantPool(cfg, on_log=on_log)
    return Sandbox(cfg, on_log=on_log)


def invoke_all(env: Any, payloads: List[Any], tenants: List[Optional[str]], args: argparse.Namespace,
               cfg: SandboxConfig) -> List[Any]:
    """Invoke in order; on LMI with up to --concurrency invokes in flight."""
    if cfg.mode == "managed-instances":
        from .managed_instances import dispatch

        return dispatch(env, payloads, cfg.concurrency, args.interval, tenants)
    results = []
    for i, payload in enumerate(payloads):
        if i and args.interval > 0:
            time.sleep(args.interval)
        kw = {"tenant_id": tenants[i]} if tenants[i] is not None else {}
        results.append(env.invoke(payload, **kw))
    return results


def build_parser() -> argparse.ArgumentParser:
    # Over 60 lines on purpose: one flat, ordered list of `run` flags (--help shows them in this order).
    parser = argparse.ArgumentParser(prog="lambda-sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="init a function, invoke it, shut it down, write a report",
                         description="Init a function (plus extension layers) in a local Lambda execution "
                                     "environment, invoke it, shut it down, print the CloudWatch-style lines "
                                     "and optionally write a JSON report (docs/sandbox-report.md).",
                         epilog=EXIT_CODES_HELP)
    run.add_argument("--code", required=True, help="function code directory")
    run.add_argument("--handler", required=True, help="module.function (provided runtimes: any name)")
    run.add_argument("--runtime", default=None,
                     help="python3.9 ... python3.13, nodejs18.x, nodejs20.x, nodejs22.x, provided.al2023, "
                          "provided.al2 (default: the Python of the sandbox's interpreter)")
    run.add_argument("--host-interpreters", action=argparse.BooleanOptionalAction, default=None,
                     help="--no-host-interpreters: the environment sees no Python/Node executable of the host "
                          "but the runtime's own under /var/lang/bin (namespace isolation; the default on "
                          "non-Python runtimes)")
    run.add_argument("--layer", action="append", default=[], help="layer zip or directory (repeatable, in order)")
    run.add_argument("--memory", type=int, default=128, help="memory size in MB (default 128)")
    run.add_argument("--timeout", type=float, default=3.0, help="function timeout in seconds (default 3)")
    run.add_argument("--env", action="append", type=_env_pair, default=[], help="KEY=VALUE (repeatable)")
    payload = run.add_mutually_exclusive_group()
    payload.add_argument("--payload", type=_json_arg, help="JSON payload of every invoke (default {})")
    payload.add_argument("--payload-file", help="JSON lines file: one payload per line, in order")
    run.add_argument("--count", type=int, default=None, help="number of invokes (default 1, or one per line)")
    run.add_argument("--interval", type=float, default=0.0, help="seconds between invokes")
    run.add_argument("--init-delay", type=float, default=None,
                     help="init proactively, then wait this many seconds before the first invoke")
    run.add_argument("--init-type", choices=["on-demand", "provisioned-concurrency"], default="on-demand",
                     help="AWS_LAMBDA_INITIALIZATION_TYPE and initStart's initializationType; provisioned "
                          "concurrency inits before the first invoke and bills no init (default on-demand)")
    run.add_argument("--tracing", choices=["Active", "PassThrough"], default="PassThrough",
                     help="X-Ray tracing mode. PassThrough (default; Lambda's mode when tracing is off): each "
                          "invoke gets an unsampled trace header (Sampled=0) in the runtime's "
                          "Lambda-Runtime-Trace-Id and the extensions' INVOKE `tracing` field, so a sidecar "
                          "following the sampling flag exports no invocation spans, as in Lambda. Active: "
                          "every invoke is sampled (Sampled=1) with Lambda's segment id as Parent")
    run.add_argument("--log-format", choices=["Text", "JSON"], default="Text",
                     help="the function's log format (AWS_LAMBDA_LOG_FORMAT): Text or JSON records (default Text)")
    run.add_argument("--function-name", default="my-function",
                     help="AWS_LAMBDA_FUNCTION_NAME and the ARN's name, [A-Za-z0-9_-]{1,64} (default my-function)")
    run.add_argument("--isolation", choices=["auto", "namespace", "dirs"], default="auto",
                     help="namespace: a root of its own, read-only but for a private /tmp, run as sbx_user1051 (993:990); "
                          "dirs: per-run directories passed through the environment; auto: namespace when "
                          "possible, else dirs (default auto)")
    run.add_argument("--freeze", choices=["auto", "cgroup", "signal", "none"], default="auto",
                     help="how the environment is frozen between invokes: cgroup (v1 freezer), signal "
                          "(SIGSTOP/SIGCONT), none; auto: cgroup when possible, else signal (default auto)")
    run.add_argument("--ephemeral-storage", type=int, default=512, metavar="MB",
                     help="size of the environment's private /tmp in namespace mode (Lambda: 512..10240)")
    run.add_argument("--api-port", type=int, default=None, metavar="PORT",
                     help="Runtime API port (AWS_LAMBDA_RUNTIME_API): on 127.0.0.1 with --network host "
                          "(default 9001 in namespace mode when free, else any), on 169.254.100.1 with "
                          "--network private (default 9001)")
    run.add_argument("--network", choices=["host", "private"], default="host",
                     help="host: the environment shares this machine's network (the Runtime API on "
                          "127.0.0.1, your local collector at localhost reachable); private (namespace "
                          "isolation): a network namespace of its own, as in Lambda: the Runtime API on "
                          "169.254.100.1:9001, its own localhost, outbound through slirp4netns when "
                          "installed, this machine's loopback only at --forward-port ports (default host)")
    run.add_argument("--forward-port", type=int, action="append", default=[], metavar="PORT",
                     dest="forward_port",
                     help="with --network private: the environment's 127.0.0.1:PORT reaches this machine's "
                          "127.0.0.1:PORT (e.g. a local collector); repeatable; the --otlp-receiver's port "
                          "is forwarded without asking")
    run.add_argument("--cpu-quota", action="store_true", help="CPU in proportion to memory (1769 MB = 1 vCPU)")
    run.add_argument("--enforce-memory", action="store_true", help="OOM-kill the runtime above --memory")
    run.add_argument("--otlp-receiver", action="store_true",
                     help="start the embedded OTLP/HTTP receiver and point OTEL_EXPORTER_OTLP_ENDPOINT at it")
    run.add_argument("--report", help="write the JSON report to this file (schema: docs/sandbox-report.md)")
    run.add_argument("--quiet", action="store_true", help="print only the summary, not the log lines")
    add_mode_flags(run)
    sub.add_parser("demo", help="the guided demo (when installed)", add_help=False)
    return parser


def _payloads(args: argparse.Namespace) -> List[Any]:
    if args.payload_file:
        lines = [ln for ln in Path(args.payload_file).read_text().splitlines() if ln.strip()]
        items = []
        for n, ln in enumerate(lines, 1):
            try:
                items.append(json.loads(ln))
            except ValueError as exc:
                raise ConfigError(f"--payload-file {args.payload_file} line {n} is not JSON ({exc})") from exc
        if not items:
            raise ConfigError(f"--payload-file {args.payload_file} holds no payload")
        count = args.count if args.count is not None else len(items)
        return [items[i % len(items)] for i in range(count)]
    count = args.count if args.count is not None else 1
    return [args.payload if args.payload is not None else {} for _ in range(count)]


def _sandbox_config(args: argparse.Namespace, env: Dict[str, str], receiver: Any) -> SandboxConfig:
    return SandboxConfig(code_dir=args.code, handler=args.handler, layers=args.layer, memory_mb=args.memory,
                         timeout_s=args.timeout, env=env, function_name=args.function_name, tracing=args.tracing,
                         init_type=args.init_type, log_format=args.log_format, isolation=args.isolation,
                         freeze=args.freeze, cpu_quota=args.cpu_quota, enforce_memory=args.enforce_memory,
                         otlp_receiver=receiver, ephemeral_storage_mb=args.ephemeral_storage,
                         api_port=args.api_port, network=args.network, forward_ports=tuple(args.forward_port),
                         runtime=args.runtime, host_interpreters=args.host_interpreters,
                         **mode_config(args))


def _print_summary(results: Sequence[Any], report: Dict[str, Any], out: Any) -> None:
    """One line per invoke, then the shutdown and the environment (with the isolation warning, if any)."""
    print("", file=out)
    for n, r in enumerate(results, 1):
        print(f"invoke {n}: {r.outcome:<10} latency {r.latency_ms:8.2f} ms  request {r.request_id}"
              + (f"  {r.error_type}" if r.error_type else ""), file=out)
    shut = report["shutdown"] or {}
    print(f"shutdown: {shut.get('reason')} in {shut.get('durationMs')} ms, extensions {shut.get('extensions')}",
          file=out)
    env = report["environment"]
    print(f"isolation {env['isolation']}, network {env.get('network')} (Runtime API {env.get('apiAddress')}), "
          f"freeze {env['freeze']}, cpu quota {'applied' if env['cpuQuotaApplied'] else 'not applied'}", file=out)
    for note in env.get("notes", []):
        if note.startswith("isolation 'dirs'") or "NO outbound network" in note or "no outbound network" in note:
            print(f"WARNING {note}", file=out)


def run(args: argparse.Namespace, out: Optional[Any] = None) -> int:
    out = sys.stdout if out is None else out
    from .report import console_line

    if args.count is not None and args.count < 0:
        raise ConfigError(f"--count {args.count}: must be >= 0")
    if args.interval < 0:
        raise ConfigError(f"--interval {args.interval}: must be >= 0")
    check_paths(args)
    payloads, tenants = split_tenants(_payloads(args), args.tenant_id)
    receiver = None
    env = dict(args.env)
    if args.otlp_receiver:
        from .otlp_receiver import OtlpReceiver

        receiver = OtlpReceiver()
        receiver.start()
        print(f"OTLP receiver listening at {receiver.endpoint}", file=out)
    cfg = _sandbox_config(args, env, receiver)
    lock = threading.Lock()

    def show(line: LogLine) -> None:
        if not args.quiet:
            with lock:
                print(console_line(line), file=out, flush=True)

    try:
        with make_environment(cfg, show, tenants) as sb:
            if args.init_delay is not None:
                sb.init()
                time.sleep(max(0.0, args.init_delay))   # the idle gap of a proactive init, by request
            results = invoke_all(sb, payloads, tenants, args, cfg)
            sb.shutdown()
            report = sb.report()
        if receiver is not None and hasattr(receiver, "summary"):
            report["otlpReceiver"] = receiver.summary()
    finally:
        if receiver is not None:
            receiver.stop()
    with lock:
        _print_summary(results, report, out)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"report written to {args.report}", file=out)
    code = exit_code(results)
    if code:
        failed = sum(1 for r in results if r.outcome != "success" or r.status != "success")
        print(f"{failed} of {len(results)} invokes failed: exit code {code}", file=out)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        if importlib.util.find_spec("lambda_sandbox.demo") is None:
            print("lambda-sandbox demo: the demo module (lambda_sandbox.demo) is not installed", file=sys.stderr)
            return 2
        return int(importlib.import_module("lambda_sandbox.demo").main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ImportError as exc:
        print(f"lambda-sandbox: error: a component is not installed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, ValueError, OSError, IsolationError) as exc:
        print(f"lambda-sandbox: error: {flag_message(str(exc))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
