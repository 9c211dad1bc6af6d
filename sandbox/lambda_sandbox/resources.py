"""The environment's resources: its cgroups (memory limit, cpu quota, freezer) and its memory accounting.

`setup_cgroups` decides what can be applied here and records it (`applied`, shown in the report) with a note
for everything that could not; `MemoryMeter` keeps the invocation's peak memory and, without a memory cgroup,
runs the watchdog that stands in for the limit.
"""

from __future__ import annotations

import math
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .config import ConfigError, SandboxConfig
from .processes import Cgroups, EnvProcess, Launcher, peak_rss_bytes, rss_bytes, unique_cgroup_name

MIB = 1024 * 1024
VCPU_MB = 1769                  # 1,769 MB = one vCPU-second per second (environment.md 5)
WATCHDOG_INTERVAL_S = 0.05


@dataclass
class CgroupSetup:
    cgroups: Cgroups
    freeze_mode: str                            # cgroup | signal | none
    applied: Dict[str, Any] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def freeze_mode_for(requested: str, freezer_available: bool) -> str:
    """The freeze mechanism used: `auto` takes the cgroup freezer when there is one, else SIGSTOP/SIGCONT."""
    if requested == "none":
        return "none"
    return "cgroup" if freezer_available else "signal"


def setup_cgroups(cfg: SandboxConfig) -> CgroupSetup:
    """Create this environment's cgroups and apply the memory limit and cpu quota where possible."""
    wanted = ["memory"]
    if cfg.freeze in ("auto", "cgroup"):
        wanted.append("freezer")
    if cfg.cpu_quota:
        wanted.append("cpu")
    cg = Cgroups(unique_cgroup_name(), wanted)
    setup = CgroupSetup(cg, "none")
    setup.notes.extend(f"cgroup {ctl}: {why}" for ctl, why in cg.errors.items())
    if cfg.freeze == "cgroup" and "freezer" not in cg.paths:
        cg.remove()
        raise ConfigError(f"freeze='cgroup' is not possible here: {cg.errors.get('freezer')}")
    setup.freeze_mode = freeze_mode_for(cfg.freeze, "freezer" in cg.paths)
    applied = setup.applied
    applied["freeze"] = setup.freeze_mode
    applied["memory_cgroup"] = "memory" in cg.paths
    applied["memory_limit"] = bool(cfg.enforce_memory and cg.set_memory_limit(cfg.memory_mb * MIB))
    if cfg.enforce_memory and not applied["memory_limit"]:
        applied["memory_limit"] = "watchdog"
        setup.notes.append("no memory cgroup: enforce_memory uses a watchdog that samples the RSS of the "
                           "process tree every 50 ms")
    cpus = cfg.memory_mb / VCPU_MB
    applied["cpu_quota"] = bool(cfg.cpu_quota and cg.set_cpu_quota(cpus))
    applied["cpu_quota_vcpus"] = round(cpus, 4) if applied["cpu_quota"] else None
    if cfg.cpu_quota and not applied["cpu_quota"]:
        setup.notes.append(f"cpu_quota requested but not applied: {cg.errors.get('cpu', 'cpu cgroup not writable')}")
    return setup


class MemoryMeter:
    """Peak memory of the environment since the last reset, and the watchdog that enforces the limit."""

    def __init__(self, cgroups: Optional[Cgroups], launcher: Launcher, memory_mb: int) -> None:
        self.cgroups = cgroups
        self.launcher = launcher
        self.limit_bytes = memory_mb * MIB
        self.max_bytes = 0
        self.oom_kills_seen = 0
        self.watchdog_kill = False        # the watchdog killed the runtime (an OOM, as a cgroup would)

    def sample(self) -> None:
        # cgroup v1 max_usage can miss shared pages here; the peak RSS of the tree is the floor
        used = max((self.cgroups.max_usage_bytes() or 0) if self.cgroups else 0,
                   peak_rss_bytes(self.launcher.all_pids()))
        self.max_bytes = max(self.max_bytes, used)

    def measure_mb(self) -> int:
        """`Max Memory Used` of the REPORT line, in whole MB (at least 1)."""
        self.sample()
        return max(1, math.ceil(self.max_bytes / MIB))

    def reset(self) -> None:
        """A new runtime process: its peak starts again."""
        self.max_bytes = 0
        if self.cgroups is not None:
            self.cgroups.reset_max_usage()

    def new_oom_kill(self) -> bool:
        """Whether the environment was OOM-killed since the last call (cgroup counter or the watchdog)."""
        if self.watchdog_kill:
            return True
        oom = self.cgroups.oom_kills() if self.cgroups else 0
        if oom > self.oom_kills_seen:
            self.oom_kills_seen = oom
            return True
        return False

    def start_watchdog(self, runtime: EnvProcess, stopped: Callable[[], bool]) -> None:
        """Without a memory cgroup: kill the runtime when the environment's RSS exceeds the memory size."""
        self.watchdog_kill = False

        def run() -> None:
            while runtime.alive() and not stopped():
                if rss_bytes(self.launcher.all_pids()) > self.limit_bytes:
                    self.watchdog_kill = True
                    runtime.signal_group(signal.SIGKILL)
                    return
                runtime.exited.wait(WATCHDOG_INTERVAL_S)

        threading.Thread(target=run, name="memory-watchdog", daemon=True).start()
