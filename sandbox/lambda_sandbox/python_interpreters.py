"""Host Python interpreters for the Python runtimes, each with its own copy of awslambdaric.

`--runtime python3.N` runs on a Python 3.N of this machine when one is found: this interpreter when its
version matches, else `$LAMBDA_SANDBOX_PYTHON3_N` (e.g. LAMBDA_SANDBOX_PYTHON3_12), `python3.N` in /usr/local/bin,
/usr/bin or on PATH (pyenv shims skipped), or `$PYENV_ROOT/versions/3.N.*/bin/python3.N`. awslambdaric (the
version this sandbox uses, as a binary wheel) is installed for it once with its pip into
`$LAMBDA_SANDBOX_CACHE/python-ric/awslambdaric-<version>-cp3N-<arch>`. Nothing found, or nothing installable:
the caller runs the runtime on this interpreter and says so in a note.
"""

from __future__ import annotations

import fcntl
import functools
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .node_ric import cache_root

INSTALL_TIMEOUT_S = 300.0
_PROBE = "import sys, json; print(json.dumps([f'{sys.version_info[0]}.{sys.version_info[1]}', sys.base_prefix, sys.executable]))"


@dataclass(frozen=True)
class PythonInterpreter:
    version: str            # "3.12"
    executable: str         # the real file (symlinks resolved)
    base_prefix: str
    own: bool               # the sandbox's own interpreter (awslambdaric comes from its site-packages)


class PythonRuntimeUnavailable(RuntimeError):
    """No usable Python 3.N with awslambdaric here; the message says why."""


def own_interpreter() -> PythonInterpreter:
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return PythonInterpreter(f"{sys.version_info[0]}.{sys.version_info[1]}", exe, sys.base_prefix, True)


def _candidates(version: str) -> List[str]:
    name = f"python{version}"
    env = os.environ.get(f"LAMBDA_SANDBOX_PYTHON{version.replace('.', '_')}")
    found = [env] if env else []
    found += [f"/usr/local/bin/{name}", f"/usr/bin/{name}"]
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d and "shims" not in Path(d).parts:
            found.append(os.path.join(d, name))
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", name)), reverse=True)
    return [p for p in dict.fromkeys(found) if os.path.isfile(p) and os.access(p, os.X_OK)]


@functools.cache
def find_interpreter(version: str) -> Optional[PythonInterpreter]:
    """A host interpreter of this major.minor, None when there is none."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return own_interpreter()
    for path in _candidates(version):
        try:
            out = subprocess.run([path, "-S", "-c", _PROBE], capture_output=True, text=True, timeout=30)
            got, base_prefix, executable = json.loads(out.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            continue
        if got == version:
            return PythonInterpreter(version, str(Path(executable).resolve()), base_prefix, False)
    return None


def _ric_version() -> str:
    from importlib.metadata import version

    return version("awslambdaric")


def ric_site(interp: PythonInterpreter) -> Optional[Path]:
    """A directory holding awslambdaric and its dependencies for `interp` (None: its own site-packages)."""
    if interp.own:
        return None
    ric = _ric_version()
    root = cache_root() / "python-ric"
    target = root / f"awslambdaric-{ric}-cp{interp.version.replace('.', '')}-{platform.machine()}"
    if (target / "awslambdaric").is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "awslambdaric").is_dir():
            _install(interp, ric, root, target)
    return target


def _install(interp: PythonInterpreter, ric: str, root: Path, target: Path) -> None:
    print(f"lambda-sandbox: installing awslambdaric for Python {interp.version} ({interp.executable}) into {target} "
          "(once)", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix="install-", dir=root))
    try:
        errors = []
        for spec in (f"awslambdaric=={ric}", "awslambdaric"):      # the same version, else the newest with a wheel
            proc = _pip(interp, work / "site", spec)
            if proc is not None and proc.returncode == 0:
                if target.exists():
                    shutil.rmtree(target)
                os.replace(work / "site", target)
                return
            errors.append((proc.stderr or proc.stdout).strip()[-400:] if proc is not None else "timed out")
            shutil.rmtree(work / "site", ignore_errors=True)
        raise PythonRuntimeUnavailable(f"pip could not install a binary awslambdaric for Python {interp.version} "
                                       f"({interp.executable}): {errors[-1]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pip(interp: PythonInterpreter, dest: Path, spec: str) -> Optional[subprocess.CompletedProcess]:
    try:
        return subprocess.run([interp.executable, "-m", "pip", "install", "--target", str(dest), "--only-binary=:all:",
                               "--no-compile", "--disable-pip-version-check", "--no-warn-script-location", "-q",
                               spec], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
