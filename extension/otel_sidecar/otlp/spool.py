"""Unsent OTLP requests kept in /tmp across a reset (timeout, OOM), sent by the next sidecar instance.

Lambda keeps /tmp when it resets an environment, so what the SHUTDOWN deadline did not let out can leave
with the next init instead of being lost. The spool is bounded in bytes; what does not fit is dropped and
counted by the caller. Files hold one encoded protobuf Export*ServiceRequest each and are named
`<signal>-<items>-<ns>.pb`, so counting needs no decoding.

/tmp is shared with the function, so nothing found there is trusted: the directory must be a real directory
of ours (created 0700; a symlink or someone else's is refused and spooling is off), a file must be a regular
file opened without following links and without blocking (a FIFO never stalls the worker), no larger than
the spool bound (checked on the open descriptor, then read with a cap), and must decode as a request of the
signal its name says, holding the items it claims. Anything else is deleted and counted (`rejected`).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

SIGNALS = ("traces", "metrics", "logs")
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
log = logging.getLogger("otel_sidecar")


class Spool:
    def __init__(self, directory: str, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.disabled = False
        self.rejected: List[Tuple[str, int]] = []   # (signal or "files", items) deleted since the last take

    def _usable(self, create: bool) -> bool:
        """The directory is a real one of ours (made 0700 when create); else one warning, spooling off."""
        if self.disabled:
            return False
        try:
            st = os.lstat(self.dir)
        except FileNotFoundError:
            if not create:
                return False
            try:
                os.makedirs(self.dir, mode=0o700, exist_ok=False)
                st = os.lstat(self.dir)
            except OSError as exc:
                return self._refuse(f"cannot be created ({type(exc).__name__})")
        except OSError as exc:
            return self._refuse(f"cannot be read ({type(exc).__name__})")
        if stat.S_ISLNK(st.st_mode):
            return self._refuse("is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            return self._refuse("is not a directory")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            return self._refuse(f"belongs to uid {st.st_uid}, not to the sidecar")
        if st.st_mode & 0o077:
            try:
                os.chmod(self.dir, 0o700, follow_symlinks=False)
            except (OSError, NotImplementedError):
                return self._refuse("is open to other users and cannot be made private")
        return True

    def _refuse(self, why: str) -> bool:
        self.disabled = True
        log.warning("OTLP spool: the directory %s (SIDECAR_OTLP_SPOOL_DIR) %s; spooling is off", self.dir, why)
        return False

    def _entries(self) -> List[os.DirEntry]:
        try:
            with os.scandir(self.dir) as it:
                return sorted((e for e in it if e.name.endswith(".pb") and e.name.split("-", 1)[0] in SIGNALS),
                              key=lambda e: e.name)
        except OSError:
            return []

    def used_bytes(self) -> int:
        total = 0
        for e in self._entries():
            try:
                total += e.stat(follow_symlinks=False).st_size
            except OSError:
                pass
        return total

    def save(self, signal: str, body: bytes, items: int) -> bool:
        """Write one request; False when it would not fit under max_bytes (or the disk says no)."""
        if self.max_bytes <= 0 or not self._usable(create=True) or self.used_bytes() + len(body) > self.max_bytes:
            return False
        name = f"{signal}-{items}-{time.time_ns():020d}-{os.getpid()}.pb"
        tmp = self.dir / (name + ".part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, self.dir / name)      # atomic: a reader never sees half a request
            return True
        except OSError:
            self.remove(str(tmp))
            return False

    def load(self, room: Optional[Callable[[int], bool]] = None,
             check: Optional[Callable[[str, bytes], Optional[int]]] = None
             ) -> Tuple[List[Tuple[str, str, int, bytes]], bool]:
        """Spooled requests, oldest first: ([(path, signal, items, body)], whether some were left for later).

        room(n): whether n more bytes may be held now (the memory budget); check(signal, body): the items a
        valid request of that signal holds, None when it is not one."""
        out: List[Tuple[str, str, int, bytes]] = []
        if not self._usable(create=False):
            return out, False
        for e in self._entries():
            parts = e.name.split("-")
            try:
                items = int(parts[1])
            except (IndexError, ValueError):
                self._reject(e.path, "files", 1)
                continue
            body = self._read(e.path)
            if body is None:
                self._reject(e.path, parts[0], items)
                continue
            if check is not None:
                n = check(parts[0], body)
                if n is None or (n != items and parts[0] != "metrics"):   # a window's points: not exact
                    self._reject(e.path, parts[0], items)
                    continue
            if room is not None and not room(len(body)):
                return out, True          # stays on disk for a later round
            out.append((e.path, parts[0], items, body))
        return out, False

    def _read(self, path: str) -> Optional[bytes]:
        """The file's bytes when it is a regular file within the bound; never follows a link, never blocks."""
        try:
            fd = os.open(path, OPEN_FLAGS)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > self.max_bytes:
                return None
            chunks, left = [], st.st_size + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            body = b"".join(chunks)
            return body if len(body) <= st.st_size else None    # grew while read: not ours
        except OSError:
            return None
        finally:
            os.close(fd)

    def _reject(self, path: str, signal: str, items: int) -> None:
        self.remove(path)
        self.rejected.append((signal, items))

    def take_rejected(self) -> List[Tuple[str, int]]:
        out, self.rejected = self.rejected, []
        return out

    @staticmethod
    def remove(path: str) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass


def items_in(signal: str, body: bytes) -> Optional[int]:
    """How many spans / log records / data points a serialized request of `signal` holds; None when the bytes
    are not such a request (do not parse, carry unknown fields, or hold nothing)."""
    try:
        cls: Any
        if signal == "traces":
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceRequest as cls,
            )
        elif signal == "logs":
            from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest as cls
        elif signal == "metrics":
            from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
                ExportMetricsServiceRequest as cls,
            )
        else:
            return None
        msg = cls.FromString(body)
        if len(msg.SerializeToString()) != len(body) or _has_unknown(msg):
            return None
        if signal == "traces":
            n = sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
        elif signal == "logs":
            n = sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)
        else:
            n = sum(_points(m) for rm in msg.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
        return n or None
    except Exception:  # noqa: BLE001 - any failure to decode means: not a request of ours
        return None


def _points(metric: Any) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def _has_unknown(msg: Any) -> bool:
    try:
        from google.protobuf.unknown_fields import UnknownFieldSet
    except ImportError:
        return False
    if len(UnknownFieldSet(msg)):
        return True
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        values = value if _repeated(field) else [value]
        if any(_has_unknown(v) for v in values):
            return True
    return False


def _repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)      # protobuf >= 6: a property; older: label
    return bool(flag) if flag is not None else field.label == 3


def spool_from(directory: Optional[str], max_bytes: int) -> Optional[Spool]:
    return Spool(directory, max_bytes) if directory and max_bytes > 0 else None
