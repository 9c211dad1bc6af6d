"""Processes of one environment: launching, log capture, freeze, memory, cpu quota, killing the tree.

cgroup v1 controllers (freezer, memory, cpu) are used when /sys/fs/cgroup/<controller> is writable;
every launched process joins the sandbox's own child cgroups before it execs (a tiny /bin/sh prefix),
so even its own children are frozen, measured and killed with it.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import signal
import subprocess
import termios
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set

from . import logs

CGROUP_ROOT = Path("/sys/fs/cgroup")
# $0 holds the space-separated cgroup.procs files; the shell joins them, then becomes the real command.
_JOIN = 'for f in $0; do echo $$ > "$f" || exit 125; done; exec "$@"'


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None


class Cgroups:
    """This sandbox's own cgroups. cgroup v1 (one child per controller hierarchy) where the v1
    controllers are mounted, else cgroup v2 (one child of the unified root). Each controller is
    optional: `paths` holds the ones that work, `errors` says why the others do not."""

    def __init__(self, name: str, controllers: Iterable[str], root: Path = CGROUP_ROOT,
                 unified_root: Optional[Path] = None) -> None:
        self.name = name
        self.paths: Dict[str, Path] = {}
        self.errors: Dict[str, str] = {}
        wanted = list(controllers)
        v1 = any((root / ctl / "cgroup.procs").exists() for ctl in wanted)
        unified = unified_root or (root if (root / "cgroup.controllers").exists() else None)
        self.version = 2 if unified is not None and (unified_root is not None or not v1) else 1
        if self.version == 2:
            self._init_v2(unified, wanted)
            return
        for ctl in wanted:
            base = root / ctl
            if not (base / "cgroup.procs").exists():
                self.errors[ctl] = f"{base} is not a cgroup v1 hierarchy"
                continue
            path = base / name
            try:
                path.mkdir()
                self.paths[ctl] = path
            except OSError as exc:
                self.errors[ctl] = f"cannot create {path}: {exc.strerror}"

    def _init_v2(self, unified: Path, wanted: List[str]) -> None:
        path = unified / self.name
        try:
            path.mkdir()
        except OSError as exc:
            for ctl in wanted:
                self.errors[ctl] = f"cannot create {path}: {exc.strerror}"
            return
        enabled = (_read(unified / "cgroup.subtree_control") or "").split()
        for ctl in wanted:
            if ctl == "freezer":
                if (path / "cgroup.freeze").exists():
                    self.paths[ctl] = path
                else:
                    self.errors[ctl] = f"{path} has no cgroup.freeze (kernel < 5.2)"
                continue
            if ctl not in enabled:
                _write(unified / "cgroup.subtree_control", f"+{ctl}")   # best effort; allowed at the root
            if (path / f"{ctl}.max").exists():
                self.paths[ctl] = path
            else:
                self.errors[ctl] = f"the {ctl} controller is not enabled under {unified}"
        if not self.paths:
            _rmdir(path)

    @property
    def procs_files(self) -> List[str]:
        return sorted({str(p / "cgroup.procs") for p in self.paths.values()})

    def pids(self) -> Set[int]:
        out: Set[int] = set()
        for path in set(self.paths.values()):
            text = _read(path / "cgroup.procs") or ""
            out.update(int(x) for x in text.split() if x.strip().isdigit())
        return out

    # freezer ------------------------------------------------------------------------------------
    def freeze(self, timeout: float = 2.0) -> bool:
        path = self.paths.get("freezer")
        if path is None:
            return False
        if self.version == 2:
            if not _write(path / "cgroup.freeze", "1"):
                return False
            done = lambda: "frozen 1" in (_read(path / "cgroup.events") or "")  # noqa: E731
        else:
            if not _write(path / "freezer.state", "FROZEN"):
                return False
            done = lambda: (_read(path / "freezer.state") or "").strip() == "FROZEN"  # noqa: E731
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(0.002)
        return False

    def thaw(self) -> bool:
        path = self.paths.get("freezer")
        if path is None:
            return False
        if self.version == 2:
            return _write(path / "cgroup.freeze", "0")
        return _write(path / "freezer.state", "THAWED")

    # memory -------------------------------------------------------------------------------------
    def set_memory_limit(self, limit_bytes: int) -> bool:
        path = self.paths.get("memory")
        if path is None:
            return False
        if self.version == 2:
            _write(path / "memory.swap.max", "0")
            return _write(path / "memory.max", str(limit_bytes))
        ok = _write(path / "memory.limit_in_bytes", str(limit_bytes))
        _write(path / "memory.memsw.limit_in_bytes", str(limit_bytes))   # no swap escape where supported
        return ok

    def max_usage_bytes(self) -> Optional[int]:
        path = self.paths.get("memory")
        if path is None:
            return None
        text = _read(path / ("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"))
        return int(text) if text and text.strip().isdigit() else None

    def reset_max_usage(self) -> None:
        path = self.paths.get("memory")
        if path is not None:
            _write(path / ("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"), "0")

    def oom_kills(self) -> int:
        path = self.paths.get("memory")
        if path is None:
            return 0
        text = _read(path / ("memory.events" if self.version == 2 else "memory.oom_control"))
        for line in (text or "").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    # cpu ----------------------------------------------------------------------------------------
    def set_cpu_quota(self, cpus: float, period_us: int = 100_000) -> bool:
        path = self.paths.get("cpu")
        if path is None:
            return False
        quota = max(1000, int(period_us * cpus))
        if self.version == 2:
            return _write(path / "cpu.max", f"{quota} {period_us}")
        return _write(path / "cpu.cfs_period_us", str(period_us)) and _write(path / "cpu.cfs_quota_us", str(quota))

    def remove(self, timeout: float = 2.0) -> None:
        """Kill what is left, thaw, and remove the directories (bounded)."""
        for path in set(self.paths.values()):
            if self.version == 2:
                _write(path / "cgroup.kill", "1")
        for pid in self.pids():
            _kill(pid, signal.SIGKILL)
        self.thaw()
        deadline = time.monotonic() + timeout
        for path in set(self.paths.values()):
            while not _rmdir(path):
                if time.monotonic() > deadline:
                    break
                for pid in self.pids():
                    _kill(pid, signal.SIGKILL)
                self.thaw()
                time.sleep(0.01)
        self.paths = {}


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def unique_cgroup_name() -> str:
    return f"lambda-sandbox-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _proc_table() -> Dict[int, int]:
    """pid -> ppid for every process visible in /proc."""
    table: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(Path("/proc") / entry / "stat")
        if not stat:
            continue
        try:
            table[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (IndexError, ValueError):
            continue
    return table


def process_tree(roots: Iterable[int]) -> Set[int]:
    """The given pids and all their descendants that are still alive."""
    table = _proc_table()
    children: Dict[int, List[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    out: Set[int] = set()
    stack = [p for p in roots if p in table]
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out.add(pid)
        stack.extend(children.get(pid, ()))
    return out


def peak_rss_bytes(pids: Iterable[int]) -> int:
    """Sum of VmHWM (peak resident set) of the given processes."""
    total = 0
    for pid in pids:
        for line in (_read(Path(f"/proc/{pid}/status")) or "").splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        for line in (_read(Path(f"/proc/{pid}/status")) or "").splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def _pipe_pending(fd: int) -> int:
    """Bytes written to the pipe and not read yet (FIONREAD)."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    except OSError:
        return 0
    return buf[0]


class PipeSource:
    """A readline() view of a pipe that knows when everything written so far has been consumed.

    `drained()` is true when the reader waits for more data, holds no unconsumed bytes and the pipe is
    empty: every line written before that moment has been handed to the consumer. The environment uses
    it so that a function's output reaches the telemetry stream before its platform.runtimeDone.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.eof = False
        self.idle = False

    def readline(self, limit: int = -1) -> bytes:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0 and (limit < 0 or nl < limit):
                return self._take(nl + 1)
            if 0 <= limit <= len(self.buf):
                return self._take(limit)
            if self.eof:
                return self._take(len(self.buf))
            self.wait_readable()
            try:
                chunk = os.read(self.fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                self.buf += chunk
            else:
                self.eof = True

    def wait_readable(self, holding: Optional[bool] = None) -> None:
        """Block until the pipe has data or EOF. `holding`: the consumer still holds unprocessed bytes."""
        # idle is set before waiting and cleared before reading, so drained() never misses bytes
        self.idle = not (bool(self.buf) if holding is None else holding)
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.5)
            except (OSError, ValueError):
                break
            if ready:
                break
        self.idle = False

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def drained(self) -> bool:
        return self.eof or (self.idle and _pipe_pending(self.fd) == 0)


def pump_source_frames(source: PipeSource, on_frame: Callable[[logs.LogFrame], None], name: str) -> threading.Thread:
    """Daemon thread: framed telemetry log records from `source` (see logs.LogFrameReader)."""

    def run() -> None:
        reader = logs.LogFrameReader()
        try:
            while True:
                source.wait_readable(holding=reader.pending_bytes > 0)
                try:
                    chunk = os.read(source.fd, 65536)
                except InterruptedError:
                    continue
                if not chunk:
                    break
                for frame in reader.feed(chunk):
                    try:
                        on_frame(frame)
                    except Exception:  # noqa: BLE001 - a consumer bug must not stop log capture
                        pass
        except OSError:
            pass
        finally:
            source.eof = True
            try:
                os.close(source.fd)
            except OSError:
                pass

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


class EnvProcess:
    """One launched process (runtime or extension) with its log pumps and exit watcher."""

    def __init__(self, name: str, kind: str, popen: subprocess.Popen) -> None:
        self.name = name
        self.kind = kind
        self.popen = popen
        self.pid = popen.pid
        self.returncode: Optional[int] = None
        self.exited = threading.Event()
        self.exit_time: Optional[float] = None
        self.pumps: List[threading.Thread] = []
        self.sources: List[PipeSource] = []
        self.killed_by_us = False

    def output_drained(self) -> bool:
        """Everything it wrote to stdout, stderr and the telemetry log fd so far has been captured."""
        return all(src.drained() for src in self.sources)

    def alive(self) -> bool:
        return not self.exited.is_set()

    def signal_group(self, sig: int) -> None:
        """Signal the process group (the process and children that did not leave it)."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            _kill(self.pid, sig)

    def kill_tree(self) -> None:
        self.killed_by_us = True
        for pid in process_tree([self.pid]):
            _kill(pid, signal.SIGKILL)
        self.signal_group(signal.SIGKILL)

    def wait(self, timeout: float) -> bool:
        return self.exited.wait(timeout)

    def drain(self, timeout: float = 1.0) -> None:
        """Wait (bounded) until its stdout/stderr have been read to the end."""
        deadline = time.monotonic() + timeout
        for t in self.pumps:
            t.join(max(0.0, deadline - time.monotonic()))


class Launcher:
    """Starts processes inside the environment (its cgroups and, optionally, its mount namespace)."""

    def __init__(self, cgroups: Optional[Cgroups] = None, ns_prefix: Optional[Callable[[str], List[str]]] = None):
        self.cgroups = cgroups
        self.ns_prefix = ns_prefix
        self.processes: List[EnvProcess] = []
        self._lock = threading.Lock()

    def launch(self, name: str, kind: str, argv: Sequence[str], env: Dict[str, str], cwd: str,
               on_line: Callable[[EnvProcess, str, str], None],
               on_exit: Callable[[EnvProcess], None],
               pass_fds: Sequence[int] = (),
               on_frame_fd: Optional[int] = None,
               on_frame: Optional[Callable[[EnvProcess, logs.LogFrame], None]] = None) -> EnvProcess:
        """Start argv; stdout/stderr lines go to on_line(proc, stream, text); on_exit(proc) when it ends.

        `cwd` is a path as the process sees it (inside the namespace in namespace mode).
        """
        cmd = list(argv)
        popen_cwd = cwd
        if self.ns_prefix is not None:
            cmd = self.ns_prefix(cwd) + cmd
            popen_cwd = "/"
        if self.cgroups is not None and self.cgroups.paths:
            cmd = ["/bin/sh", "-c", _JOIN, " ".join(self.cgroups.procs_files)] + cmd
        popen = subprocess.Popen(cmd, env=env, cwd=popen_cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, pass_fds=tuple(pass_fds), start_new_session=True,
                                 close_fds=True)
        proc = EnvProcess(name, kind, popen)
        with self._lock:
            self.processes.append(proc)
        for stream, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            source = PipeSource(pipe.fileno())
            proc.sources.append(source)
            proc.pumps.append(logs.pump_lines(source, lambda text, st=stream: on_line(proc, st, text),
                                              name=f"{name}-{stream}"))
        if on_frame_fd is not None and on_frame is not None:
            source = PipeSource(on_frame_fd)
            proc.sources.append(source)
            proc.pumps.append(pump_source_frames(source, lambda frame: on_frame(proc, frame), f"{name}-frames"))

        def watch() -> None:
            code = popen.wait()
            proc.returncode = code
            proc.exit_time = time.monotonic()
            proc.exited.set()
            try:
                on_exit(proc)
            except Exception:  # noqa: BLE001 - the watcher must never die silently mid-lifecycle
                pass

        threading.Thread(target=watch, name=f"{name}-wait", daemon=True).start()
        return proc

    def live(self) -> List[EnvProcess]:
        with self._lock:
            return [p for p in self.processes if p.alive()]

    def all_pids(self) -> Set[int]:
        """Every process of the environment (cgroup members, or the launched trees)."""
        live = {p.pid for p in self.live()}
        if self.cgroups is not None and self.cgroups.paths:
            return self.cgroups.pids() | live      # descendants joined the cgroup too: no /proc walk needed
        return process_tree(live)

    def signal_all(self, sig: int) -> None:
        for pid in self.all_pids():
            _kill(pid, sig)

    def kill_all(self, timeout: float = 2.0) -> None:
        """SIGKILL every process of the environment and wait (bounded) for the launched ones to end."""
        for p in self.live():
            p.killed_by_us = True
        with self._lock:
            everything = list(self.processes)
        for p in everything:
            # the process group also holds children orphaned by a leader that already exited
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for _ in range(3):
            pids = self.all_pids()
            if not pids:
                break
            for pid in pids:
                _kill(pid, signal.SIGKILL)
            if self.cgroups is not None:
                self.cgroups.thaw()   # a frozen task only dies once thawed
            for p in self.live():
                p.signal_group(signal.SIGCONT)
            deadline = time.monotonic() + timeout / 3
            for p in self.live():
                p.wait(max(0.0, deadline - time.monotonic()))
