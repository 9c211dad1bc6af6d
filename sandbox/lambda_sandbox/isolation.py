"""Where the environment's files live: its own read-only root in a private mount namespace, or plain
per-run directories (the `dirs` fallback, with none of the guarantees below).

Namespace mode: a holder process started with `unshare -m --propagation private` assembles a root on a
small tmpfs (host /usr, /bin, /sbin, /lib*, a staged copy of a few /etc files, the code at /var/task, the
layers at /opt, the runtime at /var/runtime and the host interpreter's prefix at /var/lang and at its own
path, all bound read-only; a tmpfs /tmp of --ephemeral-storage MB; /proc; a /dev with null, zero, random,
urandom, full), pivot_roots into it and sleeps. Every environment process is then started with
`prlimit <Lambda's limits> nsenter -t <holder> -m -S 993 -G 990`: inside that root, as sbx_user1051.
Nothing is mounted in the machine's namespace. docs/sandbox-fidelity.md lists what is visible and why.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

from .config import ConfigError
from .layers import unpack_layers
from .netns import LAMBDA_API_HOST, SLIRP_DNS

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


def copy_runtime(dest: Path, site: Optional[Path] = None) -> Path:
    """Copy awslambdaric and its dependencies (with native libs) from `site` (default: this interpreter's
    site-packages)."""
    if site is None:
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
    tmp_mb: int = 512
    network: str = "host"           # "host" | "private" (namespace mode only: its own network namespace)
    slirp: Optional[subprocess.Popen] = None    # outbound for a private network (slirp4netns), when installed

    def to_host(self, path: str) -> Path:
        """Translate a path as processes see it to the host path (for reading files in tests)."""
        for inner, host in ((self.opt, self.opt_host), (self.task, self.task_host),
                            (self.runtime, self.runtime_host), (self.tmp, self.tmp_host)):
            if path == inner or path.startswith(inner.rstrip("/") + "/"):
                return host / os.path.relpath(path, inner)
        return Path(path)

    def ns_prefix(self, cwd: str) -> List[str]:
        """Enter the environment's root as sbx_user1051 (993:990) with Lambda's rlimits."""
        assert self.holder is not None
        net = ["-n"] if self.network == "private" else []
        return ["prlimit", *RLIMITS, "--", "nsenter", "-t", str(self.holder.pid), "-m", *net, f"--wdns={cwd}",
                "-S", str(SBX_UID), "-G", str(SBX_GID), "--"]

    def close(self) -> None:
        if self.slirp is not None:
            _stop(self.slirp)
            self.slirp = None
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


@dataclass(frozen=True)
class LangMounts:
    """What the environment's /var/lang holds and which host interpreters stay visible (namespace mode)."""

    prefix: Optional[Path] = None                   # a host directory bound at /var/lang (Python: its prefix)
    files: Tuple[Tuple[str, Path], ...] = ()        # (path under /var/lang, host file) bound read-only (bin/node)
    own_paths: Tuple[Path, ...] = ()                # host directories bound read-only at their own path
    hide_interpreters: bool = False                 # whiteout the host's python/node executables in its bin dirs


def python_lang(hide_interpreters: bool = False, base_prefix: Optional[str] = None,
                executable: Optional[str] = None, version: Optional[str] = None) -> LangMounts:
    """A Python runtime: the interpreter's prefix at /var/lang (default: this interpreter). Hidden host
    interpreters: at its own path only its lib/ (libpython by RUNPATH), so no second python executable is
    visible. An interpreter installed in /usr: only its executable, at /var/lang/bin/python3.N (it finds its
    stdlib by its build-time prefix)."""
    paths = interpreter_paths(base_prefix, executable)
    files: Tuple[Tuple[str, Path], ...] = ()
    if not paths:
        exe = Path(executable or getattr(sys, "_base_executable", None) or sys.executable).resolve()
        files = ((f"bin/python{version or f'{sys.version_info[0]}.{sys.version_info[1]}'}", exe),)
    own = tuple(paths) if not hide_interpreters else tuple(p / "lib" for p in paths if (p / "lib").is_dir())
    return LangMounts(paths[0] if paths else None, files, own, hide_interpreters)


def other_lang(files: Tuple[Tuple[str, Path], ...], hide_interpreters: bool) -> LangMounts:
    """A non-Python runtime: only its own files under /var/lang; the host's Python visible at its own path
    unless hidden (the development layer's sidecar runs on it)."""
    return LangMounts(None, files, () if hide_interpreters else tuple(interpreter_paths()), hide_interpreters)


def _new_run_dir(run_root: Optional[os.PathLike]) -> Path:
    root = Path(run_root) if run_root else default_run_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        if run_root:
            raise
        # no writable home (e.g. a service user): per-user directory under the temp dir
        root = Path(tempfile.gettempdir()) / f"lambda-sandbox-runs-{os.getuid()}"
        root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"run-{uuid.uuid4().hex[:8]}-", dir=root))


def prepare(code_dir: os.PathLike, layers: Iterable[os.PathLike], isolation: str = "auto",
            run_root: Optional[os.PathLike] = None, keep_paths: Iterable[os.PathLike] = (),
            keep_run_dir: bool = False, ephemeral_storage_mb: int = 512,
            runtime_files: Optional[Callable[[Path], Path]] = None, lang: Optional[LangMounts] = None,
            network: str = "host") -> Layout:
    """Create the per-run directory, unpack layers, copy the runtime and set up the chosen isolation.

    `runtime_files(dest)` fills /var/runtime (default: awslambdaric from this interpreter); `lang` says what
    /var/lang holds (default: this interpreter, host interpreters visible); `network="private"` gives the
    environment its own network namespace (namespace mode only, see _private_network)."""
    code = Path(code_dir).resolve()
    if not code.is_dir():
        raise ConfigError(f"code_dir={str(code_dir)!r} is not a directory")
    run_dir = _new_run_dir(run_root)
    try:
        opt_host = run_dir / "opt"
        used = unpack_layers(layers, opt_host)
        runtime_host = (runtime_files or copy_runtime)(run_dir / "runtime")
        tmp_host = run_dir / "tmp"
        tmp_host.mkdir()
        os.chmod(tmp_host, 0o1777)
        mode = isolation
        notes: List[str] = []
        reason: Optional[str] = "isolation='dirs' was chosen"
        if isolation in ("auto", "namespace"):
            reason = namespace_possible()
            if reason is not None:
                if isolation == "namespace":
                    raise IsolationError(f"isolation='namespace' is not possible here: {reason}")
                notes.append(f"namespace isolation unavailable ({reason}); using per-run directories")
                mode = "dirs"
            else:
                mode = "namespace"
        if mode == "dirs" and network == "private":
            raise IsolationError("network='private' (--network private) needs namespace isolation, which is "
                                 f"not possible here: {reason}")
        if mode == "dirs":
            notes.append(DIRS_CAVEAT)
            if lang is not None and lang.hide_interpreters:
                notes.append("isolation 'dirs': the host's Python and Node executables stay visible "
                             "(hiding them needs namespace isolation)")
            return Layout("dirs", run_dir, str(opt_host), str(code), str(runtime_host), str(tmp_host),
                          opt_host, code, runtime_host, tmp_host, False, used, None, notes, keep_run_dir)
        layout = Layout("namespace", run_dir, NS_OPT, NS_TASK, NS_RUNTIME, "/tmp", opt_host, code,
                        runtime_host, tmp_host, True, used, None, notes, keep_run_dir, ephemeral_storage_mb,
                        network)
        try:
            _start_holder(layout, keep_paths, lang or python_lang())
        except (IsolationError, OSError) as exc:
            if isolation == "namespace" or network == "private":
                raise
            notes.append(f"namespace isolation failed ({exc}); using per-run directories")
            notes.append(DIRS_CAVEAT)
            return Layout("dirs", run_dir, str(opt_host), str(code), str(runtime_host), str(tmp_host),
                          opt_host, code, runtime_host, tmp_host, False, used, None, notes, keep_run_dir)
        return layout
    except BaseException:
        if not keep_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


SBX_UID, SBX_GID = 993, 990
PASSWD_LINE = "sbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n"
# host /etc entries a runtime needs (libraries, name resolution, certificates, time zone); copied, never bound
ETC_KEEP = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "resolv.conf", "host.conf", "gai.conf",
            "protocols", "services", "ssl", "pki", "ca-certificates", "ca-certificates.conf", "localtime",
            "os-release", "alternatives", "mime.types")
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEV_NODES = ("null", "zero", "random", "urandom", "full")
# what every process of the environment runs under (environment.md 1 and 5)
RLIMITS = ("--nofile=1024:1024", "--nproc=1024:1024", "--memlock=65536:65536", "--stack=8388608:unlimited")
DIRS_CAVEAT = ("isolation 'dirs': NOT like Lambda: processes run as this user (not uid 993), the host's whole "
               "filesystem is visible and writable where this user may write, /tmp has no size limit and no "
               "rlimits are applied")


def interpreter_paths(base_prefix: Optional[str] = None, executable: Optional[str] = None) -> List[Path]:
    """Host directories the runtime's interpreter needs at their own path (shared libraries by rpath).

    Default: this interpreter; else the interpreter at `executable` with `base_prefix`."""
    if base_prefix is None:
        candidates = (Path(sys.base_prefix), Path(sys.exec_prefix) if sys.exec_prefix == sys.base_exec_prefix
                      else None, Path(getattr(sys, "_base_executable", sys.executable)).resolve().parent.parent)
    else:
        candidates = (Path(base_prefix), Path(executable).resolve().parent.parent if executable else None)
    out: List[Path] = []
    for p in candidates:
        if p is not None and p.resolve() not in out and str(p.resolve()) not in ("/", "/usr"):
            out.append(p.resolve())
    return [p for p in out if not any(_under(p, q) and p != q for q in out)]


def _stage_etc(dest: Path, nameserver: Optional[str] = None) -> None:
    dest.mkdir()
    for name in ETC_KEEP:
        src = Path("/etc") / name
        if src.is_symlink() and not src.is_dir():
            target = src.resolve()
            if target.is_file():
                shutil.copy2(target, dest / name)
        elif src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True, ignore_dangling_symlinks=True)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    (dest / "passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n" + PASSWD_LINE)
    (dest / "group").write_text("root:x:0:\n")      # gid 990 has no entry, as in Lambda
    try:
        original = Path("/etc/hosts").read_text()
    except OSError:
        original = "127.0.0.1\tlocalhost\n"
    (dest / "hosts").write_text(original.rstrip("\n") + "\n" + HOSTS_LINE)
    if nameserver is not None:
        (dest / "resolv.conf").write_text(f"nameserver {nameserver}\n")
    os.chmod(dest, 0o755)


HOST_PATHS_FILE = ".lambda-sandbox-host-paths"


def host_paths_of_layers(layers: Iterable[os.PathLike]) -> List[str]:
    """Host paths a development layer directory declares it needs (one a line in HOST_PATHS_FILE)."""
    out: List[str] = []
    for layer in layers:
        marker = Path(layer) / HOST_PATHS_FILE
        if marker.is_file():
            out += [ln.strip() for ln in marker.read_text().splitlines() if ln.strip().startswith("/")]
    return out


def _root_script(layout: Layout, root: Path, etc: Path, tmp_mb: int, extra: Iterable[Path] = (),
                 lang: Optional[LangMounts] = None, hidden: Iterable[Tuple[str, Path]] = ()) -> List[str]:
    r = _q(root)
    lang = lang or python_lang()

    def ro(src: os.PathLike, dst: str) -> List[str]:
        return [f"mount --bind {_q(src)} {r}{_q(dst)}", f"mount -o remount,bind,ro {r}{_q(dst)}"]

    lines = ["set -e", f"mount -t tmpfs -o size=4m,mode=0755 sbxroot {r}"]
    for name in SYSTEM_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            lines.append(f"ln -s {_q(os.readlink(host))} {r}/{name}")
        elif host.is_dir():
            lines += [f"mkdir {r}/{name}"] + ro(host, "/" + name)
    lines.append(f"mkdir -p {r}/var/task {r}/var/runtime {r}/var/lang {r}/opt {r}/tmp {r}/proc {r}/dev {r}/etc")
    lines += ro(etc, "/etc") + ro(layout.task_host, NS_TASK) + ro(layout.opt_host, NS_OPT)
    lines += ro(layout.runtime_host, NS_RUNTIME)
    # /tmp first: an interpreter or a declared host path that lives under the host's /tmp (a checkout or venv
    # cloned there, as CI may do) is then bound inside the private tmpfs instead of being hidden by it
    lines.append(f"mount -t tmpfs -o size={tmp_mb}m,mode=1777,nodev,nosuid sbxtmp {r}/tmp")
    lines += _lang_lines(lang, r, ro)
    for i, (inner, whiteouts) in enumerate(hidden):
        # a read-only overlay of the host directory under a layer of whiteouts: those names do not exist
        lines.append(f"mount -t overlay sbxhide{i} -o {_q(f'lowerdir={whiteouts}:/{inner}')} {r}/{inner}")
    for p in extra:
        lines += [f"mkdir -p {r}{_q(p)}" if p.is_dir() else f"mkdir -p {r}{_q(p.parent)} && touch {r}{_q(p)}"]
        lines += ro(p, str(p))
    lines.append(f"mount -t proc -o nosuid,nodev,noexec,hidepid=invisible proc {r}/proc "
                 f"|| mount -t proc -o nosuid,nodev,noexec proc {r}/proc")
    lines.append(f"mount -t tmpfs -o size=64k,mode=0755,nosuid sbxdev {r}/dev")
    for node in DEV_NODES:
        lines += [f"touch {r}/dev/{node}", f"mount --bind /dev/{node} {r}/dev/{node}"]
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        lines.append(f"ln -s /proc/self/fd/{i} {r}/dev/{name}")
    lines += [f"ln -s /proc/self/fd {r}/dev/fd", f"cd {r}", "mkdir .oldroot", "pivot_root . .oldroot",
              "cd /", "umount -l /.oldroot", "rmdir /.oldroot", "mount -o remount,ro /"]
    return lines


def _lang_lines(lang: LangMounts, r: str, ro: Callable[[os.PathLike, str], List[str]]) -> List[str]:
    """/var/lang (the runtime's own interpreter) and host paths kept at their own path."""
    lines: List[str] = []
    if lang.prefix is not None:
        lines += ro(lang.prefix, "/var/lang")
    else:
        lines.append(f"mkdir -p {r}/var/lang/bin {r}/var/lang/lib")
        for inner, host in lang.files:
            dst = f"/var/lang/{inner}"
            lines += [f"mkdir -p {r}{_q(os.path.dirname(dst))} && touch {r}{_q(dst)}"] + ro(host, dst)
    for p in lang.own_paths:
        lines += [f"mkdir -p {r}{_q(p)}"] + ro(p, str(p))
    return lines


# executables of host interpreters (and their launchers) that --no-host-interpreters hides
INTERPRETER_NAME = re.compile(r"^(python[0-9.]*(-config|m|d|dm|u)?|pypy[0-9.]*|pip[0-9.]*|pydoc[0-9.]*|"
                              r"node|nodejs|npm|npx|corepack)$")
HOST_BIN_DIRS = ("usr/bin", "usr/local/bin", "usr/sbin", "usr/local/sbin", "bin", "sbin")


def interpreter_whiteouts(run_dir: Path) -> Tuple[List[Tuple[str, Path]], List[str]]:
    """Per host bin directory holding interpreters: a directory of overlay whiteouts (character devices 0:0)
    named like them. Returns [(bin dir without the leading /, whiteout dir)] and the hidden paths."""
    out: List[Tuple[str, Path]] = []
    hidden: List[str] = []
    for i, inner in enumerate(HOST_BIN_DIRS):
        host = Path("/") / inner
        if host.is_symlink() or not host.is_dir() or any(host.resolve() == Path("/") / d for d, _ in out):
            continue
        names = sorted(n for n in os.listdir(host) if INTERPRETER_NAME.match(n))
        if not names:
            continue
        wh = run_dir / "whiteouts" / str(i)
        wh.mkdir(parents=True)
        for name in names:
            os.mknod(wh / name, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        if any(c in str(wh) for c in ",:"):
            raise IsolationError(f"the run directory {run_dir} holds ',' or ':' (an overlay option separator)")
        out.append((inner, wh))
        hidden += [f"/{inner}/{n}" for n in names]
    return out, hidden


def _start_holder(layout: Layout, keep_paths: Iterable[os.PathLike], lang: Optional[LangMounts] = None) -> None:
    """A private mount namespace whose root is assembled from read-only pieces (see docs/sandbox-fidelity.md)."""
    lang = lang or python_lang()
    root = layout.run_dir / "root"
    root.mkdir()
    etc = layout.run_dir / "etc"
    slirp = shutil.which("slirp4netns") if layout.network == "private" else None
    _stage_etc(etc, SLIRP_DNS if slirp else None)
    for p in (layout.task_host, layout.opt_host, layout.runtime_host):
        os.chmod(p, 0o755)
    system = [Path("/") / d for d in SYSTEM_DIRS] + [Path("/etc"), Path("/proc"), Path("/dev")]
    extra: List[Path] = []
    for raw in keep_paths:
        p = Path(raw).resolve()
        # a path under the host's /tmp (a checkout or venv there) is bound inside the private /tmp; /tmp itself
        # never: the environment's /tmp is its own
        if (p.exists() and p not in (Path("/"), Path("/tmp"))
                and not any(_under(p, q) for q in system + extra)):
            extra.append(p)
    extra.sort(key=lambda p: len(p.parts))
    extra = [p for i, p in enumerate(extra) if not any(_under(p, q) for q in extra[:i])]
    hidden, hidden_paths = interpreter_whiteouts(layout.run_dir) if lang.hide_interpreters else ([], [])
    lines = _root_script(layout, root, etc, layout.tmp_mb, extra, lang, hidden)
    if layout.network == "private":
        # its own loopback, with Lambda's Runtime API address beside 127.0.0.1 (no dummy interface: container
        # kernels often lack the module, and an address on lo behaves the same for the environment)
        lines[1:1] = ["ip link set lo up", f"ip addr add {LAMBDA_API_HOST}/32 dev lo"]
    lines += ["echo ready", "exec sleep 2147483647"]
    unshare = ["unshare", "-m"] + (["-n"] if layout.network == "private" else []) + ["--propagation", "private"]
    holder = subprocess.Popen(unshare + ["/bin/sh", "-c", "\n".join(lines)],
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
    layout.tmp_host = Path(f"/proc/{holder.pid}/root/tmp")
    if layout.network == "private":
        _private_network(layout, slirp)
    if lang.hide_interpreters:
        layout.notes.append(f"host interpreters hidden (no-host-interpreters): {len(hidden_paths)} executables "
                            f"such as {', '.join(hidden_paths[:4])}; the runtime's own is under /var/lang/bin")
    if extra:
        layout.notes.append("host paths visible read-only at their own path (keep_paths or a development "
                            "layer's " + HOST_PATHS_FILE + "): " + ", ".join(str(p) for p in extra))


def _private_network(layout: Layout, slirp: Optional[str]) -> None:
    """Outbound for the environment's own network namespace, as Lambda's NAT gives it: slirp4netns (user-mode
    networking: the machine's network and beyond, never the machine's loopback, no ingress) when installed."""
    addr = f"{LAMBDA_API_HOST}:9001"
    if slirp is None:
        layout.notes.append(f"network 'private': own network namespace, Runtime API on {addr}; NO outbound "
                            "network (slirp4netns is not installed: apt-get install slirp4netns); only the "
                            "forwarded loopback ports are reachable")
        return
    assert layout.holder is not None
    ready_r, ready_w = os.pipe()
    try:
        proc = subprocess.Popen([slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
                                 f"--ready-fd={ready_w}", str(layout.holder.pid), "tap0"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                pass_fds=(ready_w,), start_new_session=True)
    except OSError as exc:
        os.close(ready_r)
        os.close(ready_w)
        layout.notes.append(f"network 'private': slirp4netns failed to start ({exc}): no outbound network")
        return
    os.close(ready_w)
    import select

    try:
        ready, _, _ = select.select([ready_r], [], [], 5.0)
        ok = bool(ready) and os.read(ready_r, 1) == b"1"
    finally:
        os.close(ready_r)
    if not ok:
        _stop(proc)
        err = proc.stderr.read(2000).decode(errors="replace").strip() if proc.stderr else ""
        layout.notes.append(f"network 'private': slirp4netns did not come up ({err or 'no answer in 5 s'}): "
                            "no outbound network")
        return
    layout.slirp = proc
    layout.notes.append(f"network 'private': own network namespace, Runtime API on {addr}; outbound through "
                        "slirp4netns (this machine's loopback is not reachable, as in Lambda, except the "
                        "forwarded ports)")


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


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
