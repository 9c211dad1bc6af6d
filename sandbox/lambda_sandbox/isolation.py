"""Where the environment's files live: a private mount namespace (/opt, /var/task, /var/runtime,
private /tmp, sandbox.localdomain in /etc/hosts) or plain per-run directories.

Namespace mode (lambda-apis.md 9): a holder process started with `unshare -m --propagation private`
sets up bind mounts in its own namespace and sleeps; every environment process is then started with
`nsenter -t <holder> -m`. Nothing is mounted in the machine's namespace. Host paths under /tmp that
processes still need (this checkout, the interpreter, the dev venv, ...) are re-bound inside the
private /tmp so they stay reachable.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional

from .config import ConfigError
from .layers import unpack_layers

NS_OPT, NS_TASK, NS_RUNTIME = "/opt", "/var/task", "/var/runtime"
HOSTS_LINE = "127.0.0.1\tsandbox.localdomain sandbox\n"
RUNTIME_PACKAGES = ("awslambdaric", "simplejson", "snapshot_restore_py")


class IsolationError(RuntimeError):
    """Namespace mode was requested but cannot be set up."""


def default_run_root() -> Path:
    return Path(os.path.expanduser("~")) / ".cache" / "lambda-sandbox" / "runs"


@functools.lru_cache(maxsize=1)
def namespace_possible() -> Optional[str]:
    """None when namespace mode can work here, else the reason why not (probed once per process)."""
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    try:
        probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True,
                               timeout=5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if probe.returncode != 0:
        return f"unshare failed: {probe.stderr.decode(errors='replace').strip()}"
    return None


def copy_runtime(dest: Path) -> Path:
    """Copy awslambdaric and its dependencies (with native libs) from this interpreter's site-packages."""
    import awslambdaric

    site = Path(awslambdaric.__file__).resolve().parent.parent
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "tests", "*.pyc")
    for entry in site.iterdir():
        stem = entry.name.split(".")[0]
        if entry.name.endswith(".dist-info"):
            continue
        if stem in RUNTIME_PACKAGES or stem == "runtime_client":
            if entry.is_dir():
                shutil.copytree(entry, dest / entry.name, ignore=ignore, dirs_exist_ok=True)
            else:
                shutil.copy2(entry, dest / entry.name)
    return dest


def _under(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


@dataclass
class Layout:
    """Paths of one environment, both as processes see them and on the host."""

    mode: str                       # "namespace" | "dirs"
    run_dir: Path                   # host
    opt: str                        # as processes see it
    task: str
    runtime: str
    tmp: str
    opt_host: Path
    task_host: Path
    runtime_host: Path
    tmp_host: Path
    hosts_mapped: bool = False
    layers: List[str] = field(default_factory=list)
    holder: Optional[subprocess.Popen] = None
    notes: List[str] = field(default_factory=list)
    keep_run_dir: bool = False

    def to_host(self, path: str) -> Path:
        """Translate a path as processes see it to the host path (for reading files in tests)."""
        for inner, host in ((self.opt, self.opt_host), (self.task, self.task_host),
                            (self.runtime, self.runtime_host), (self.tmp, self.tmp_host)):
            if path == inner or path.startswith(inner.rstrip("/") + "/"):
                return host / os.path.relpath(path, inner)
        return Path(path)

    def ns_prefix(self, cwd: str) -> List[str]:
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-m", f"--wdns={cwd}", "--"]

    def close(self) -> None:
        if self.holder is not None:
            try:
                self.holder.kill()
            except OSError:
                pass
            try:
                self.holder.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (self.holder.stdout, self.holder.stderr):
                if stream is not None:
                    stream.close()
            self.holder = None
        if not self.keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def prepare(code_dir: os.PathLike, layers: Iterable[os.PathLike], isolation: str = "auto",
            run_root: Optional[os.PathLike] = None, keep_paths: Iterable[os.PathLike] = (),
            keep_run_dir: bool = False) -> Layout:
    """Create the per-run directory, unpack layers, copy the runtime and set up the chosen isolation."""
    code = Path(code_dir).resolve()
    if not code.is_dir():
        raise ConfigError(f"code_dir={str(code_dir)!r} is not a directory")
    root = Path(run_root) if run_root else default_run_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        if run_root:
            raise
        # no writable home (e.g. a service user): per-user directory under the temp dir
        root = Path(tempfile.gettempdir()) / f"lambda-sandbox-runs-{os.getuid()}"
        root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{uuid.uuid4().hex[:8]}-", dir=root))
    try:
        opt_host = run_dir / "opt"
        used = unpack_layers(layers, opt_host)
        runtime_host = copy_runtime(run_dir / "runtime")
        tmp_host = run_dir / "tmp"
        tmp_host.mkdir()
        os.chmod(tmp_host, 0o1777)
        mode = isolation
        notes: List[str] = []
        if isolation in ("auto", "namespace"):
            reason = namespace_possible()
            if reason is not None:
                if isolation == "namespace":
                    raise IsolationError(f"isolation='namespace' is not possible here: {reason}")
                notes.append(f"namespace isolation unavailable ({reason}); using per-run directories")
                mode = "dirs"
            else:
                mode = "namespace"
        if mode == "dirs":
            return Layout("dirs", run_dir, str(opt_host), str(code), str(runtime_host), str(tmp_host),
                          opt_host, code, runtime_host, tmp_host, False, used, None, notes, keep_run_dir)
        layout = Layout("namespace", run_dir, NS_OPT, NS_TASK, NS_RUNTIME, "/tmp", opt_host, code,
                        runtime_host, tmp_host, True, used, None, notes, keep_run_dir)
        try:
            _start_holder(layout, keep_paths)
        except (IsolationError, OSError) as exc:
            if isolation == "namespace":
                raise
            notes.append(f"namespace isolation failed ({exc}); using per-run directories")
            return Layout("dirs", run_dir, str(opt_host), str(code), str(runtime_host), str(tmp_host),
                          opt_host, code, runtime_host, tmp_host, False, used, None, notes, keep_run_dir)
        return layout
    except BaseException:
        if not keep_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _default_keep() -> List[Path]:
    here = Path(__file__).resolve()
    return [here.parents[2], Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
            Path(sys._base_executable).resolve().parent if hasattr(sys, "_base_executable") else Path(sys.prefix),
            Path.cwd()]


def _start_holder(layout: Layout, keep_paths: Iterable[os.PathLike]) -> None:
    for mount_point in (NS_TASK, NS_RUNTIME):
        if not os.path.isdir(mount_point):
            # an empty mount point in the host's /var; nothing is mounted on it outside the namespace
            os.makedirs(mount_point, exist_ok=True)
            layout.notes.append(f"created empty mount point {mount_point} on the host")
    hosts = layout.run_dir / "hosts"
    try:
        original = Path("/etc/hosts").read_text()
    except OSError:
        original = "127.0.0.1\tlocalhost\n"
    hosts.write_text(original.rstrip("\n") + "\n" + HOSTS_LINE)
    hosttmp = layout.run_dir / "hosttmp"
    hosttmp.mkdir()
    host_tmp = Path("/tmp").resolve()
    keep: List[Path] = []
    for p in list(keep_paths) + _default_keep() + [layout.run_dir]:
        rp = Path(p).resolve()
        # /tmp itself is never re-bound: that would undo the private /tmp
        if rp != host_tmp and _under(rp, host_tmp) and rp.exists() and rp not in keep:
            keep.append(rp)
    keep.sort(key=lambda p: len(p.parts))
    lines = [
        "set -e",
        f"mount --bind {_q(layout.opt_host)} {NS_OPT}",
        f"mount --bind {_q(layout.task_host)} {NS_TASK}",
        f"mount --bind {_q(layout.runtime_host)} {NS_RUNTIME}",
        f"mount --bind /tmp {_q(hosttmp)}",
        f"mount --bind {_q(layout.tmp_host)} /tmp",
    ]
    for p in keep:
        rel = p.relative_to(host_tmp)
        src = hosttmp / rel
        if p.is_dir():
            lines.append(f"mkdir -p {_q(p)}")
        else:
            lines.append(f"mkdir -p {_q(p.parent)} && touch {_q(p)}")
        lines.append(f"mount --bind {_q(src)} {_q(p)}")
    lines += [f"mount --bind {_q(hosts)} /etc/hosts", "echo ready", "exec sleep 2147483647"]
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", "\n".join(lines)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    layout.holder = holder
    ready = _read_line(holder, timeout=10.0)
    if ready != "ready":
        err = b""
        try:
            holder.kill()
            _, err = holder.communicate(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        layout.holder = None
        raise IsolationError(f"mount namespace setup failed: {err.decode(errors='replace').strip() or ready!r}")
    if keep:
        layout.notes.append("re-bound under the private /tmp: " + ", ".join(str(p) for p in keep))


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    import select

    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace").strip()


def _q(path: os.PathLike) -> str:
    return "'" + str(path).replace("'", "'\"'\"'") + "'"
