"""Bench function with 300 ms of init work (waiting on I/O, as loading config or opening clients does)."""

import time

_READY_AT = time.sleep(0.3) or time.time()


def handler(event, context):
    return {"ok": True, "ready_at": _READY_AT}
