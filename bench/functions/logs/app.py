"""Bench function that prints event["lines"] log lines per invoke (log-ingest rate ladder), then sleeps
event["sleep_s"] seconds (the environment stays thawed while the bench posts to the sidecar's listener).

Lines are written in blocks of 1,000 so that the function itself is not the bottleneck of the ladder:
each line is still one log record for the platform.
"""

import sys
import time

LINE = "bench log line {i:07d} " + "x" * 48 + "\n"
BLOCK = 1000


def handler(event, context):
    n = int(event.get("lines", 0))
    write = sys.stdout.write
    t0 = time.perf_counter()
    for start in range(0, n, BLOCK):
        write("".join(LINE.format(i=i) for i in range(start, min(n, start + BLOCK))))
    sys.stdout.flush()
    write_s = time.perf_counter() - t0
    time.sleep(float(event.get("sleep_s", 0)))
    return {"ok": True, "lines": n, "write_s": write_s}
