"""Entry point: `python -m otel_sidecar [--name NAME]` (the layer's launcher runs this)."""

from __future__ import annotations

import time

_STARTED_M, _STARTED_E = time.monotonic(), time.time()  # before any other import: time to first /next

import sys  # noqa: E402


def main() -> int:
    # lifecycle keeps the path to `register` light: no logging, http.client or core imports on it
    from .lifecycle import main as run

    return run(sys.argv, None, _STARTED_M, _STARTED_E)


if __name__ == "__main__":
    sys.exit(main())
