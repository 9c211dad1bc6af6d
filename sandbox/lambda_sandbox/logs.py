"""Log capture: the line pump for stdout/stderr and the `_LAMBDA_TELEMETRY_LOG_FD` frame reader (its pump,
which also tracks when the pipe is drained, is processes.pump_source_frames).

Frame layout (lambda-apis.md 9; awslambdaric FramedTelemetryLogSink): 4-byte big-endian frame type
0xa55a00XX, 4-byte big-endian message length, 8-byte big-endian timestamp in microseconds, then the
UTF-8 message. The low byte of the type encodes the format (bit 0: 1 = text, 0 = JSON) and the level
(bits 2..: 0 none, 1 TRACE, 2 DEBUG, 3 INFO, 4 WARN, 5 ERROR, 6 FATAL); 0xa55a0003 is plain text.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import IO, Callable, List, Optional

FRAME_MAGIC = 0xA55A0000
FRAME_MASK = 0xFFFFFF00
HEADER = struct.Struct(">IIQ")
MAX_FRAME_BYTES = 16 * 1024 * 1024  # a larger length means a corrupt stream; resync
MAX_LINE_BYTES = 256 * 1024  # longer stdout lines are split, as Lambda caps one record at 256 KB
_LEVELS = {0: None, 1: "TRACE", 2: "DEBUG", 3: "INFO", 4: "WARN", 5: "ERROR", 6: "FATAL"}


@dataclass(frozen=True)
class LogFrame:
    """One framed log record from the runtime."""

    frame_type: int
    time: float  # epoch seconds
    message: str
    level: Optional[str]  # None for 0xa55a0003 / 0xa55a0002
    format: str  # "text" | "json"


def describe_frame_type(frame_type: int) -> tuple:
    """(format, level) of a 0xa55a00XX frame type."""
    low = frame_type & 0xFF
    fmt = "text" if low & 1 else "json"
    return fmt, _LEVELS.get(low >> 2)


class LogFrameReader:
    """Incremental parser: feed() any chunking of the byte stream, get whole frames back."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped_bytes = 0  # bytes discarded while resynchronising on a corrupt stream

    def feed(self, data: bytes) -> List[LogFrame]:
        self._buf += data
        out: List[LogFrame] = []
        while True:
            if len(self._buf) < HEADER.size:
                if self._buf and not _could_start_frame(bytes(self._buf)):
                    self._resync()
                    continue
                break
            ftype, length, ts = HEADER.unpack_from(self._buf, 0)
            if (ftype & FRAME_MASK) != FRAME_MAGIC or length > MAX_FRAME_BYTES:
                self._resync()
                continue
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            msg = bytes(self._buf[HEADER.size:end]).decode("utf-8", errors="replace")
            del self._buf[:end]
            fmt, level = describe_frame_type(ftype)
            out.append(LogFrame(frame_type=ftype, time=ts / 1e6, message=msg, level=level, format=fmt))
        return out

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def _resync(self) -> None:
        idx = self._buf.find(b"\xa5\x5a\x00", 1)
        if idx < 0:
            # keep a possible magic prefix at the very end
            keep = 2 if self._buf.endswith(b"\xa5\x5a") else 1 if self._buf.endswith(b"\xa5") else 0
            cut = len(self._buf) - keep
        else:
            cut = idx
        self.skipped_bytes += cut
        del self._buf[:cut]


def _could_start_frame(prefix: bytes) -> bool:
    magic = b"\xa5\x5a\x00"
    n = min(len(prefix), 3)
    return prefix[:n] == magic[:n]


def encode_frame(message: str, time: float, frame_type: int = 0xA55A0003) -> bytes:
    """The inverse of LogFrameReader (tests and fake runtimes)."""
    data = message.encode("utf-8")
    return HEADER.pack(frame_type, len(data), int(round(time * 1e6))) + data


def pump_lines(stream: IO[bytes], on_line: Callable[[str], None], *, name: str = "log-pump",
               on_eof: Optional[Callable[[], None]] = None) -> threading.Thread:
    """Daemon thread: read `stream` line by line and call on_line(text) without its trailing newline."""

    def run() -> None:
        try:
            while True:
                raw = stream.readline(MAX_LINE_BYTES)
                if not raw:
                    break
                text = raw.decode("utf-8", errors="replace")
                if text.endswith("\n"):
                    text = text[:-1]
                    if text.endswith("\r"):
                        text = text[:-1]
                try:
                    on_line(text)
                except Exception:  # noqa: BLE001 - a consumer bug must not stop log capture
                    pass
        except (OSError, ValueError):
            pass
        finally:
            if on_eof is not None:
                on_eof()

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t

