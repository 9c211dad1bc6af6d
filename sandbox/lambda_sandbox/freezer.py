"""Freezing the environment between invokes (lambda-apis.md 4.2): the cgroup freezer, or SIGSTOP/SIGCONT."""

from __future__ import annotations

import os
import signal
from typing import List, Optional

from .processes import Cgroups, Launcher


class Freezer:
    def __init__(self, mode: str, cgroups: Optional[Cgroups], launcher: Launcher, notes: List[str]) -> None:
        self.mode = mode              # cgroup | signal | none
        self.cgroups = cgroups
        self.launcher = launcher
        self.notes = notes
        self._stopped: List[int] = []

    def freeze(self) -> None:
        if self.mode == "cgroup":
            if not self.cgroups.freeze():
                self.notes.append("cgroup freeze did not complete in time")
        elif self.mode == "signal":
            self._stopped = sorted(self.launcher.all_pids())
            for pid in self._stopped:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    pass

    def thaw(self) -> None:
        if self.mode == "cgroup" and self.cgroups is not None:
            self.cgroups.thaw()
        elif self.mode == "signal":
            for pid in self._stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            self._stopped = []
