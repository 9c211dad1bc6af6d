"""Preparing and starting the runtime process of each runtime family (runtimes.py says what Lambda does).

`plan_runtime` runs before the environment's files exist: it finds the host's interpreter for the runtime
(this Python, or the machine's `node` and its cached aws-lambda-ric) and says what /var/lang and /var/runtime
hold. `write_runtime_dir` runs once the layout (and the paths processes see) is known. `runtime_command`
is the runtime process's command line, or the `Runtime.InvalidEntrypoint` error of a provided runtime
without a bootstrap.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from . import node_ric, python_interpreters, runtimes
from .config import SandboxConfig
from .isolation import LangMounts, Layout, copy_runtime, other_lang, python_lang
from .runtimes import RuntimeSpec

INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"


@dataclass
class RuntimePlan:
    spec: RuntimeSpec
    lang: LangMounts                            # what /var/lang holds (namespace mode)
    runtime_files: Callable[[Path], Path]       # fills /var/runtime on the host before isolation starts
    host_bin_dir: Optional[str] = None          # dirs mode: first on PATH
    node: Optional[str] = None                  # Node.js: the machine's node binary
    ric: Optional[Path] = None                  # Node.js: the installed aws-lambda-ric package
    python: Optional[python_interpreters.PythonInterpreter] = None    # Python: the interpreter that runs
    notes: List[str] = field(default_factory=list)


def plan_runtime(cfg: SandboxConfig, host_python: str) -> RuntimePlan:
    spec = cfg.runtime_spec
    hide = cfg.hide_host_interpreters
    if spec.family == "python":
        return _plan_python(spec, hide, host_python)
    if spec.family == "nodejs":
        node = node_ric.find_node()
        facts = node_ric.node_facts(node)
        ric = node_ric.ric_dir(node, facts)
        plan = RuntimePlan(spec, other_lang((("bin/node", Path(node)),), hide), _empty_dir, os.path.dirname(node),
                           node=node, ric=ric)
        if facts["version"].lstrip("v").split(".")[0] != spec.version:
            plan.notes.append(f"runtime {spec.name} runs on this machine's Node.js {facts['version']}")
        return plan
    return RuntimePlan(spec, other_lang((), hide), _empty_dir)


def _plan_python(spec: RuntimeSpec, hide: bool, host_python: str) -> RuntimePlan:
    """This machine's Python 3.N with its own awslambdaric, else the sandbox's interpreter (with a note)."""
    notes: List[str] = []
    interp = python_interpreters.find_interpreter(spec.version)
    site: Optional[Path] = None
    if interp is None:
        notes.append(f"no Python {spec.version} on this machine (set LAMBDA_SANDBOX_PYTHON"
                     f"{spec.version.replace('.', '_')}): runtime {spec.name} runs on the sandbox's own Python")
    elif not interp.own:
        try:
            site = python_interpreters.ric_site(interp)
        except python_interpreters.PythonRuntimeUnavailable as exc:
            notes.append(f"{exc}: runtime {spec.name} runs on the sandbox's own Python")
            interp = None
    if interp is None:
        own = python_interpreters.own_interpreter()
        interp = python_interpreters.PythonInterpreter(own.version, host_python, own.base_prefix, True)
        notes.append(f"AWS_EXECUTION_ENV and INIT_START say {spec.name}; the interpreter and its site-packages "
                     f"are Python {interp.version}")
    if interp.own:
        lang = python_lang(hide)
    else:
        lang = python_lang(hide, interp.base_prefix, interp.executable, interp.version)
    return RuntimePlan(spec, lang, functools.partial(copy_runtime, site=site), os.path.dirname(interp.executable),
                       python=interp, notes=notes)


def _empty_dir(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def write_runtime_dir(plan: RuntimePlan, layout: Layout, cfg: SandboxConfig) -> None:
    """Node.js: the RIC, index.mjs and Lambda's bootstrap into /var/runtime (paths as processes see them)."""
    if plan.spec.family != "nodejs":
        return
    dest = layout.runtime_host
    shutil.copytree(plan.ric, dest / "ric", dirs_exist_ok=True)
    (dest / "index.mjs").write_text(runtimes.NODE_INDEX_MJS)
    node = "/var/lang/bin/node" if layout.mode == "namespace" else plan.node
    bootstrap = dest / "bootstrap"
    bootstrap.write_text(runtimes.node_bootstrap_script(plan.spec, node, layout.opt, layout.runtime, layout.task))
    bootstrap.chmod(0o755)


def runtime_command(plan: RuntimePlan, layout: Layout, cfg: SandboxConfig,
                    host_python: str) -> Tuple[Optional[List[str]], Optional[str]]:
    """(argv, None), or (None, the error message) when a provided runtime has no usable bootstrap."""
    family = plan.spec.family
    if family == "python":
        interp = plan.python
        version = interp.version if interp else f"{sys.version_info[0]}.{sys.version_info[1]}"
        # -S: no site-packages of the machine; -P (3.11+): no cwd entry, so sys.path starts with the task root
        flags = ["-S", "-P"] if tuple(int(x) for x in version.split(".")) >= (3, 11) else ["-S"]
        python = host_python if interp is None or interp.own else interp.executable
        if layout.mode == "namespace":
            # the interpreter's prefix (or its executable) is bound read-only at /var/lang
            python = f"/var/lang/bin/python{version}"
        return [python, *flags, "-m", "awslambdaric", cfg.handler], None
    if family == "nodejs":
        return [f"{layout.runtime}/bootstrap"], None
    return provided_bootstrap(layout)


def provided_bootstrap(layout: Layout) -> Tuple[Optional[List[str]], Optional[str]]:
    """The code's `bootstrap`, else a layer's /opt/bootstrap (environment.md 6)."""
    candidates = [(f"{layout.task}/bootstrap", layout.task_host / "bootstrap"),
                  (f"{layout.opt}/bootstrap", layout.opt_host / "bootstrap")]
    for inner, host in candidates:
        if host.is_file() and os.access(host, os.X_OK):
            return [inner], None
    for inner, host in candidates:
        if host.exists():
            return None, f"fork/exec {inner}: permission denied"
    return None, f"Couldn't find valid bootstrap(s): [{' '.join(inner for inner, _ in candidates)}]"
