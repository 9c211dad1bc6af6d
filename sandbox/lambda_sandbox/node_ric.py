"""The AWS runtime interface client for Node.js (`aws-lambda-ric` from npm), installed once into a cache the
sandbox owns and reused by every run.

Where: `$LAMBDA_SANDBOX_CACHE` (default ~/.cache/lambda-sandbox) / node-ric / aws-lambda-ric-<version>-abi<N>-<arch>;
its native client (`dist/rapid-client.node`) is built for one Node ABI, hence the key. `LAMBDA_SANDBOX_NODE_RIC`
names an already installed package directory instead (nothing is installed then). The install runs
`npm install aws-lambda-ric@<version>` in a temporary directory (its install scripts build curl and
aws-lambda-cpp from source: cmake, make, g++, autoconf, automake, libtool), keeps only what runs (package.json,
dist/, licences) and moves it into place atomically under a file lock, so concurrent runs install it once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional

from .config import ConfigError

RIC_PACKAGE = "aws-lambda-ric"
RIC_VERSION = "3.3.0"          # 4.x needs Node >= 22; 3.3.0 runs on Node 18-22
INSTALL_TIMEOUT_S = 1200.0     # a cold build of curl + aws-lambda-cpp takes ~4 min on 2 busy cores
KEEP = ("package.json", "dist", "LICENSE", "NOTICE", "THIRD-PARTY-LICENSES")
BUILD_TOOLS_HINT = ("its install scripts build from source and need cmake, make, g++, autoconf, automake and "
                    "libtool (Debian: apt-get install -y cmake g++ make autoconf automake libtool)")


class NodeRuntimeError(ConfigError):
    """Node.js runtimes cannot run here (no node, no npm, a failed install); the message says what to do."""


def cache_root() -> Path:
    base = os.environ.get("LAMBDA_SANDBOX_CACHE")
    return Path(base) if base else Path(os.path.expanduser("~")) / ".cache" / "lambda-sandbox"


def find_node() -> str:
    """The machine's `node` (LAMBDA_SANDBOX_NODE, else `node` on PATH), resolved to its real file."""
    explicit = os.environ.get("LAMBDA_SANDBOX_NODE")
    found = explicit or shutil.which("node") or shutil.which("nodejs")
    if not found or not os.access(found, os.X_OK):
        where = f"LAMBDA_SANDBOX_NODE={explicit!r} is not an executable" if explicit else "no `node` on PATH"
        raise NodeRuntimeError(f"Node.js runtimes run on this machine's Node.js, but {where}: install Node.js "
                               "(18 or newer) or set LAMBDA_SANDBOX_NODE to its `node` binary")
    return str(Path(found).resolve())


def node_facts(node: str) -> Dict[str, str]:
    """{"version": "v20.20.2", "abi": "115", "arch": "x64"} of a node binary."""
    try:
        out = subprocess.run([node, "-p", "process.version + ' ' + process.versions.modules + ' ' + process.arch"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeRuntimeError(f"{node} does not run: {exc}") from exc
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 3:
        raise NodeRuntimeError(f"{node} does not run: {out.stderr.strip()[-400:] or out.stdout.strip()[-400:]}")
    return {"version": parts[0], "abi": parts[1], "arch": parts[2]}


def ric_dir(node: str, facts: Optional[Dict[str, str]] = None) -> Path:
    """An installed aws-lambda-ric for this node (installing it into the cache the first time)."""
    explicit = os.environ.get("LAMBDA_SANDBOX_NODE_RIC")
    if explicit:
        path = Path(explicit)
        if not _complete(path):
            raise NodeRuntimeError(f"LAMBDA_SANDBOX_NODE_RIC={explicit!r} holds no built aws-lambda-ric "
                                   "(dist/index.mjs and dist/rapid-client.node)")
        return path
    facts = facts or node_facts(node)
    root = cache_root() / "node-ric"
    target = root / f"{RIC_PACKAGE}-{RIC_VERSION}-abi{facts['abi']}-{facts['arch']}"
    if _complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # another run may be installing it right now
        if not _complete(target):
            _install(node, root, target)
    return target


def _complete(path: Path) -> bool:
    return (path / "dist" / "index.mjs").is_file() and (path / "dist" / "rapid-client.node").is_file()


def _install(node: str, root: Path, target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise NodeRuntimeError(f"{RIC_PACKAGE} {RIC_VERSION} is not installed in {target} and npm is not "
                               "available: install npm (Debian: apt-get install -y npm), or set "
                               "LAMBDA_SANDBOX_NODE_RIC to an installed aws-lambda-ric directory")
    print(f"lambda-sandbox: installing {RIC_PACKAGE} {RIC_VERSION} (the Node.js runtime interface client) into "
          f"{target}: once per Node ABI, it builds a native client (a few minutes)", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix="install-", dir=root))
    try:
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(node) + os.pathsep + env.get("PATH", "")
        try:
            proc = subprocess.run([npm, "install", "--prefix", str(work), "--no-audit", "--no-fund", "--no-save",
                                   "--loglevel=error", f"{RIC_PACKAGE}@{RIC_VERSION}"], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise NodeRuntimeError(f"npm install {RIC_PACKAGE}@{RIC_VERSION} did not finish within "
                                   f"{INSTALL_TIMEOUT_S:.0f} s") from exc
        built = work / "node_modules" / RIC_PACKAGE
        if proc.returncode != 0 or not _complete(built):
            tail = (proc.stderr or proc.stdout or "").strip()[-1500:]
            raise NodeRuntimeError(f"npm install {RIC_PACKAGE}@{RIC_VERSION} failed (exit {proc.returncode}); "
                                   f"{BUILD_TOOLS_HINT}. npm said: {tail}")
        staged = work / "staged"
        staged.mkdir()
        for name in KEEP:
            src = built / name
            if src.is_dir():
                shutil.copytree(src, staged / name)
            elif src.is_file():
                shutil.copy2(src, staged / name)
        if target.exists():
            shutil.rmtree(target)                 # a partial copy left by an interrupted run
        os.replace(staged, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
