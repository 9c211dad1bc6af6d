"""Unsent OTLP requests kept in /tmp across a reset (timeout, OOM), sent by the next sidecar instance.

Lambda keeps /tmp when it resets an environment, so what the SHUTDOWN deadline did not let out can leave
with the next init instead of being lost. The spool is bounded in bytes; what does not fit is dropped and
counted by the caller. Files hold one encoded protobuf Export*ServiceRequest each and are named
`<signal>-<items>-<ns>.pb`, so counting needs no decoding.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import List, Optional, Tuple

SIGNALS = ("traces", "metrics", "logs")


class Spool:
    def __init__(self, directory: str, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes

    def _files(self) -> List[Path]:
        try:
            return sorted(p for p in self.dir.iterdir() if p.suffix == ".pb" and p.name.split("-", 1)[0] in SIGNALS)
        except OSError:
            return []

    def used_bytes(self) -> int:
        total = 0
        for p in self._files():
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def save(self, signal: str, body: bytes, items: int) -> bool:
        """Write one request; False when it would not fit under max_bytes (or the disk says no)."""
        if self.max_bytes <= 0 or self.used_bytes() + len(body) > self.max_bytes:
            return False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"{signal}-{items}-{time.time_ns():020d}-{os.getpid()}.pb"
            tmp = self.dir / (name + ".part")
            tmp.write_bytes(body)
            tmp.replace(self.dir / name)      # atomic: a reader never sees half a request
            return True
        except OSError:
            return False

    def load(self) -> List[Tuple[str, str, int, bytes]]:
        """Every spooled request, oldest first: (path, signal, items, body)."""
        out = []
        for p in self._files():
            parts = p.name.split("-")
            try:
                items = int(parts[1])
                out.append((str(p), parts[0], items, p.read_bytes()))
            except (IndexError, ValueError, OSError):
                self.remove(str(p))           # not ours, or damaged: never block the spool on it
        return out

    @staticmethod
    def remove(path: str) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass


def spool_from(directory: Optional[str], max_bytes: int) -> Optional[Spool]:
    return Spool(directory, max_bytes) if directory and max_bytes > 0 else None
