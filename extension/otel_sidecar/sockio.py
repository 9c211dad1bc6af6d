"""Low-level socket pieces shared by the API client, the Telemetry listener and the local OTLP endpoint:
SocketReader (buffered readline/read over a raw `_socket` socket), chunk_size, refuse.

socket.makefile("rb") would need socket.py, whose imports cost ~10 ms of CPU on the path to the first /next.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import; annotations are never evaluated at run time
    from typing import Any, Optional


class SocketReader:
    """Buffered readline/read over a socket: what socket.makefile("rb") gives, without socket.py."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def readline(self, limit: int = -1) -> bytes:
        """Up to and including the next newline, at most `limit` bytes; what is left at EOF."""
        start = 0
        while True:
            at = self.buf.find(b"\n", start)
            if at >= 0 and (limit < 0 or at < limit):
                return self._take(at + 1)
            if 0 <= limit <= len(self.buf):
                return self._take(limit)
            start = len(self.buf)
            if not self._fill():
                return self._take(len(self.buf))

    def read(self, n: int = -1) -> bytes:
        """n bytes (fewer at EOF); n < 0: everything until EOF."""
        while (n < 0 or len(self.buf) < n) and self._fill():
            pass
        return self._take(len(self.buf) if n < 0 else n)

    def close(self) -> None:
        self.buf = bytearray()


def chunk_size(line: bytes) -> Optional[int]:
    """A chunk-size line's value, or None unless it is plain hex digits (no sign, no '0x', at most 8 digits,
    extensions after ';' ignored) ending the line: what both HTTP servers of ours accept."""
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 8 or digits.strip(b"0123456789abcdefABCDEF") or not line.endswith(b"\n"):
        return None
    return int(digits, 16)


def refuse(conn: Any, answer: bytes, linger_s: float, linger_bytes: int) -> None:
    """Answer, then close gently: a close with unread input sends a reset that can destroy the answer before
    the peer reads it, so what is in flight is read and discarded first (at most linger_bytes, linger_s)."""
    from time import monotonic  # (a C function; `time` is already loaded by every caller)

    try:
        conn.sendall(answer)
        conn.shutdown(_socket.SHUT_WR)
        until = monotonic() + linger_s
        left = linger_bytes
        while left > 0:
            wait = until - monotonic()
            if wait <= 0:
                break
            conn.settimeout(wait)
            got = conn.recv(64 * 1024)
            if not got:
                break
            left -= len(got)
    except OSError:
        pass
