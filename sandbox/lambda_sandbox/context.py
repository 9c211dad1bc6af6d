"""The collaborators of one execution environment, handed to the init, invoke and shutdown phases."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from .api import Control
from .config import SandboxConfig
from .freezer import Freezer
from .isolation import Layout
from .logbook import LogBook
from .members import Members
from .modes import ModeState
from .processes import Cgroups, Launcher
from .resources import MemoryMeter
from .telemetry import TelemetryHub

Stamp = Tuple[float, float]          # (monotonic, epoch) seconds of one moment


def now() -> Stamp:
    return time.monotonic(), time.time()


@dataclass
class EnvContext:
    cfg: SandboxConfig
    control: Control
    hub: TelemetryHub
    layout: Layout
    launcher: Launcher
    cgroups: Optional[Cgroups]
    log: LogBook
    members: Members
    freezer: Freezer
    memory: MemoryMeter
    instance_id: str
    runtime_version_arn: str
    notes: List[str]
    modes: ModeState = field(default_factory=ModeState)     # the platform modes' state (modes.py)

    def wait(self, pred: Callable[[], bool], deadline: float) -> Optional[str]:
        """Wait until pred() (None), a fatal error (its type) or the monotonic deadline ("timeout")."""
        with self.control.cv:
            while True:
                if pred():
                    return None
                if self.control.fatal:
                    return self.control.fatal
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                self.control.cv.wait(min(left, 0.25))

    def freeze(self) -> None:
        """Freeze the processes (telemetry delivery is frozen separately, once its window is flushed)."""
        self.freezer.freeze()

    def thaw(self) -> None:
        """Thaw the processes and telemetry delivery."""
        self.freezer.thaw()
        self.hub.thaw()
