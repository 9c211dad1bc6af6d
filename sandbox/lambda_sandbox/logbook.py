"""Every line an environment produced (platform, function, extensions), kept in order, thread-safe.

The pumps of several processes append concurrently; readers (the accessors of Sandbox, the JSON report)
take a snapshot under the lock. `request_id` is the invocation the lines belong to while one runs.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional

from .config import LogLine


class LogBook:
    def __init__(self, on_log: Optional[Callable[[LogLine], None]] = None) -> None:
        self.lines: List[LogLine] = []
        self.on_log = on_log
        self.request_id: Optional[str] = None
        self._lock = threading.Lock()

    def add(self, source: str, text: str, stream: str = "stdout", t: Optional[float] = None) -> LogLine:
        line = LogLine(source=source, time=t if t is not None else time.time(), text=text, stream=stream,
                       request_id=self.request_id)
        with self._lock:
            self.lines.append(line)
        if self.on_log is not None:
            try:
                self.on_log(line)
            except Exception:  # noqa: BLE001 - a printing callback must not break the lifecycle
                pass
        return line

    def platform(self, text: str) -> None:
        self.add("platform", text)

    def snapshot(self) -> List[LogLine]:
        """A copy of every line so far, in capture order."""
        with self._lock:
            return list(self.lines)

    def texts(self, source: str) -> List[str]:
        """The text of every line of one source ("function", "platform", "extension:<name>")."""
        with self._lock:
            return [ln.text for ln in self.lines if ln.source == source]
