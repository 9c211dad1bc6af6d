"""Entry point: `python -m otel_sidecar [--name NAME]` (the layer's launcher runs this)."""

from __future__ import annotations

import time

_STARTED_M, _STARTED_E = time.monotonic(), time.time()  # before any other import: time to first /next

import logging  # noqa: E402
import sys  # noqa: E402


def _setup_logging() -> None:
    """One line per message on stderr, prefixed so that the lines are easy to find (and to filter)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[otel-sidecar] %(levelname)s %(message)s"))
    logger = logging.getLogger("otel_sidecar")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main() -> int:
    _setup_logging()
    from .lifecycle import main as run

    return run(sys.argv, None, _STARTED_M, _STARTED_E)


if __name__ == "__main__":
    sys.exit(main())
