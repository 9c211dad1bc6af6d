"""Bench function that prints event["lines"] log lines per invoke (log-ingest rate ladder)."""

import sys
import time

LINE = "bench log line {i:07d} " + "x" * 48 + "\n"


def handler(event, context):
    n = int(event.get("lines", 0))
    write = sys.stdout.write
    t0 = time.perf_counter()
    for i in range(n):
        write(LINE.format(i=i))
    sys.stdout.flush()
    return {"ok": True, "lines": n, "write_s": time.perf_counter() - t0}
