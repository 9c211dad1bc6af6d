"""The sidecar's own log lines: `[otel-sidecar] LEVEL message` on stderr.

`log` serves the main thread before `logging` is loaded (importing logging costs milliseconds on the path to
the first /next); `setup_logging` routes the `otel_sidecar` logger (the core and the sinks) to the same
format once the worker thread has loaded it. Standard library only, imports nothing of ours.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import; annotations are never evaluated at run time
    from typing import Any, Tuple

LOG_PREFIX = "[otel-sidecar]"


class StderrLog:
    """Prefixed one-line messages on stderr for the main thread (the `logging` module loads later)."""

    LEVELS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "OFF": 100}

    def __init__(self) -> None:
        self.level = 20

    def set_level(self, name: str) -> None:
        self.level = self.LEVELS.get(str(name).upper(), 20)

    def _write(self, level: int, label: str, msg: str, args: Tuple[Any, ...]) -> None:
        if level < self.level:
            return
        try:
            text = msg % args if args else msg
            sys.stderr.write(f"{LOG_PREFIX} {label} {text}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break the loop
            pass

    def info(self, msg: str, *args: Any) -> None:
        self._write(20, "INFO", msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._write(30, "WARNING", msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._write(40, "ERROR", msg, args)


log = StderrLog()


def setup_logging(level: str = "INFO") -> None:
    """Route the `otel_sidecar` logger (used by the core and the sinks) to stderr with our prefix."""
    import logging

    logger = logging.getLogger("otel_sidecar")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_PREFIX + " %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    name = str(level).upper()
    logger.setLevel({"WARN": logging.WARNING, "OFF": logging.CRITICAL + 1}.get(name, getattr(logging, name, 20)))
