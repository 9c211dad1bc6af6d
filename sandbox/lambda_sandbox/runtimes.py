"""The Lambda runtimes the sandbox runs, and what each one's environment looks like (environment.md 3, 4, 6).

Pure data and small builders: which identifiers exist, their family and OS, their PATH and LD_LIBRARY_PATH,
their `INIT_START Runtime Version`, and the `/var/runtime/bootstrap` of Node.js runtimes (what Lambda's own
bootstrap does: NODE_PATH, V8 heap flags from the memory size, AWS_EXECUTION_ENV, AWS_LAMBDA_EXEC_WRAPPER).

| family   | identifiers                      | runtime process                                               |
|----------|----------------------------------|---------------------------------------------------------------|
| python   | python3.9 … python3.13           | the sandbox's interpreter running the real `awslambdaric`     |
| nodejs   | nodejs18.x, nodejs20.x, 22.x     | the machine's `node` running the real `aws-lambda-ric` (npm)  |
| provided | provided.al2023, provided.al2    | the function's `bootstrap` (/var/task, else a layer's /opt)   |
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

PYTHON_RUNTIMES = ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
NODE_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x")
PROVIDED_RUNTIMES = ("provided.al2023", "provided.al2")
SUPPORTED_RUNTIMES = PYTHON_RUNTIMES + NODE_RUNTIMES + PROVIDED_RUNTIMES

# environment.md 4: the Amazon Linux each runtime runs on
_AL2 = ("python3.9", "python3.10", "python3.11", "nodejs18.x", "provided.al2")

LAMBDA_PATH = ("/var/lang/bin", "/usr/local/bin", "/usr/bin/", "/bin", "/opt/bin")
LAMBDA_LD_LIBRARY_PATH = ("/var/lang/lib", "/lib64", "/usr/lib64", "/var/runtime", "/var/runtime/lib", "/var/task",
                          "/var/task/lib", "/opt/lib")
# RIE's order (environment.md 6); Lambda itself names /var/task/bootstrap and /opt/bootstrap in its error
PROVIDED_BOOTSTRAPS = ("/var/task/bootstrap", "/opt/bootstrap")


@dataclass(frozen=True)
class RuntimeSpec:
    name: str                 # the identifier: python3.12, nodejs20.x, provided.al2023
    family: str               # python | nodejs | provided
    version: str              # 3.12 | 20 | al2023
    os: str                   # al2 | al2023

    @property
    def execution_env(self) -> Optional[str]:
        """AWS_EXECUTION_ENV, set by the runtime's own bootstrap; unset on provided runtimes."""
        return None if self.family == "provided" else f"AWS_Lambda_{self.name}"

    @property
    def default_runtime_version(self) -> str:
        """The family:version part of `INIT_START Runtime Version:` (e.g. python:3.12.v0, nodejs:20.v0)."""
        return f"{self.family}:{self.version}.v0"

    @property
    def path(self) -> Tuple[str, ...]:
        """Lambda's PATH; provided.al2 has no /var/lang/bin (environment.md 3.1)."""
        return LAMBDA_PATH[1:] if self.name == "provided.al2" else LAMBDA_PATH

    @property
    def ld_library_path(self) -> str:
        parts = LAMBDA_LD_LIBRARY_PATH[1:] if self.name == "provided.al2" else LAMBDA_LD_LIBRARY_PATH
        return ":".join(parts)

    @property
    def hides_host_interpreters_by_default(self) -> bool:
        """Only Python runtimes see the host's interpreters unless asked (the sidecar's dev layer needs one)."""
        return self.family != "python"


def lookup(name: str) -> Optional[RuntimeSpec]:
    """The spec of a runtime identifier, None when the sandbox does not support it."""
    if name in PYTHON_RUNTIMES:
        return RuntimeSpec(name, "python", name[len("python"):], "al2" if name in _AL2 else "al2023")
    if name in NODE_RUNTIMES:
        return RuntimeSpec(name, "nodejs", name[len("nodejs"):-len(".x")], "al2" if name in _AL2 else "al2023")
    if name in PROVIDED_RUNTIMES:
        return RuntimeSpec(name, "provided", name.split(".", 1)[1], "al2" if name in _AL2 else "al2023")
    return None


def default_runtime(allowed: Optional[Sequence[str]] = None) -> str:
    """The Python runtime of the sandbox's own interpreter (the nearest supported one); with `allowed` (the
    runtimes of a platform mode, `mode_runtimes`) the nearest Python runtime among those."""
    pythons = [r for r in PYTHON_RUNTIMES if allowed is None or r in allowed]
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if own in pythons:
        return own
    newer = [r for r in pythons if int(r.split(".")[1]) > sys.version_info.minor]
    return newer[0] if newer else pythons[-1]


# platform-2025.md: the runtimes Lambda offers a mode, among those the sandbox runs (None: every runtime)
SNAPSTART_RUNTIMES = ("python3.12", "python3.13")                         # 4: Java 11+, Python 3.12+, .NET 8+
LMI_RUNTIMES = ("python3.13", "nodejs22.x", "provided.al2023")            # 1.4: Python 3.13+, Node.js 22+, ...
# what the sandbox cannot run although Lambda does, and why
UNSUPPORTED_HERE = {("managed-instances", "nodejs22.x"):
                    "the sandbox's aws-lambda-ric 3.3.0 has no Managed Instances mode (4.x needs Node.js 22)"}


def mode_runtimes(mode: str) -> Optional[Tuple[str, ...]]:
    """The runtimes of a platform mode ("managed-instances", "snapstart"); None when any runtime will do."""
    return {"managed-instances": LMI_RUNTIMES, "snapstart": SNAPSTART_RUNTIMES}.get(mode)


def mode_problem(mode: str, runtime: str) -> Optional[str]:
    """Why `runtime` cannot run in `mode` (a sentence), or None when it can."""
    allowed = mode_runtimes(mode)
    if allowed is not None and runtime not in allowed:
        return (f"Lambda does not offer {mode} for {runtime} (platform-2025.md); use one of "
                f"{', '.join(allowed)}")
    return UNSUPPORTED_HERE.get((mode, runtime))


def host_python_runtime() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def node_path(spec: RuntimeSpec, opt: str, runtime_dir: str, task: str) -> str:
    """NODE_PATH as the Node.js bootstrap sets it when unset (environment.md 6; paths as processes see them)."""
    return ":".join([f"{opt}/nodejs/node{spec.version}/node_modules", f"{opt}/nodejs/node_modules",
                     f"{runtime_dir}/node_modules", runtime_dir, task])


def node_heap_flags(memory_mb: int) -> Tuple[str, ...]:
    """V8 heap flags Lambda's Node.js bootstrap derives from the memory size: new space = memory/10,
    semi-space = half of it, old space = memory - new space (MB)."""
    new_space = memory_mb // 10
    return (f"--max-semi-space-size={new_space // 2}", f"--max-old-space-size={memory_mb - new_space}")


def node_bootstrap_script(spec: RuntimeSpec, node: str, opt: str, runtime_dir: str, task: str) -> str:
    """/var/runtime/bootstrap of a Node.js runtime: `node` with Lambda's flags on /var/runtime/index.mjs.

    POSIX sh (the host's /bin/sh may be dash). The heap flags are computed here from
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE like Lambda's, and AWS_LAMBDA_EXEC_WRAPPER is honoured with Lambda's exit
    codes (127 missing, 126 not executable)."""
    q = shlex.quote
    return f"""#!/bin/sh
# lambda-sandbox: what Lambda's /var/runtime/bootstrap of {spec.name} does (docs/sandbox-fidelity.md, Runtimes)
if [ -z "${{NODE_PATH:-}}" ]; then
  export NODE_PATH={q(node_path(spec, opt, runtime_dir, task))}
fi
mem="${{AWS_LAMBDA_FUNCTION_MEMORY_SIZE:-128}}"
new_space=$((mem / 10))
semi_space=$((new_space / 2))
old_space=$((mem - new_space))
export AWS_EXECUTION_ENV={q(spec.execution_env or "")}
set -- {q(node)} --expose-gc --max-http-header-size 81920 \\
  "--max-semi-space-size=$semi_space" "--max-old-space-size=$old_space" {q(runtime_dir + "/index.mjs")}
if [ -n "${{AWS_LAMBDA_EXEC_WRAPPER:-}}" ]; then
  wrapper="$AWS_LAMBDA_EXEC_WRAPPER"
  if [ ! -f "$wrapper" ]; then
    echo "$wrapper: does not exist"
    exit 127
  fi
  if [ ! -x "$wrapper" ]; then
    echo "$wrapper: is not an executable"
    exit 126
  fi
  exec "$wrapper" "$@"
fi
exec "$@"
"""


NODE_INDEX_MJS = """// lambda-sandbox: the runtime's entry point (Lambda's /var/runtime/index.mjs runs its RIC the same way)
import { run } from "./ric/dist/index.mjs";

await run(process.env.LAMBDA_TASK_ROOT, process.env._HANDLER);
"""
