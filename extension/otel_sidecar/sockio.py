"""SocketReader: buffered readline/read over a raw `_socket` socket (shared by the API client and the listener).

socket.makefile("rb") would need socket.py, whose imports cost ~10 ms of CPU on the path to the first /next.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import; annotations are never evaluated at run time
    from typing import Any


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
