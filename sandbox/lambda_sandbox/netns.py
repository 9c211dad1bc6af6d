"""The environment's own network (`network="private"`): sockets made inside its network namespace, and the
loopback ports of this machine the environment may still reach.

A socket belongs to the network namespace it was created in, whichever process uses it later. So the sandbox
(which runs as root, as namespace isolation requires) keeps one thread whose network namespace is the
environment's and asks it for sockets: the Runtime API server then listens on 169.254.100.1:9001 inside the
environment, and telemetry delivery connects to the extensions' listeners there, while everything else of
the sandbox stays on the machine's network. Nothing of the machine's network is changed.
"""

from __future__ import annotations

import ctypes
import os
import queue
import select
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

CLONE_NEWNET = 0x40000000
LAMBDA_API_HOST = "169.254.100.1"     # environment.md 5: the Runtime API's address on nearly every runtime
SLIRP_DNS = "10.0.2.3"                # slirp4netns's built-in resolver
FORWARD_MAX_CONNECTIONS = 64          # per forwarded port; further connections are refused (closed at once)
FORWARD_CHUNK = 65536


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)          # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class NetNamespace:
    """A socket factory for one network namespace (`/proc/<pid>/ns/net`), served by one thread inside it."""

    def __init__(self, pid: int) -> None:
        self._fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._requests: queue.Queue[Optional[Tuple[int, int, queue.Queue]]] = queue.Queue()
        entered: queue.Queue[Optional[BaseException]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, args=(entered,), name="lambda-sandbox-netns",
                                        daemon=True)
        self._thread.start()
        failure = entered.get(timeout=5)
        if failure is not None:
            os.close(self._fd)
            raise OSError(f"cannot enter the environment's network namespace: {failure}")

    def _serve(self, entered: queue.Queue[Optional[BaseException]]) -> None:
        try:
            _setns(self._fd)    # this thread only: setns changes the calling thread's namespace
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            entered.put(exc)
            return
        entered.put(None)
        while True:
            req = self._requests.get()
            if req is None:
                return
            family, kind, reply = req
            try:
                reply.put(socket.socket(family, kind))
            except OSError as exc:
                reply.put(exc)

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A new socket in the environment's network namespace."""
        if not self._thread.is_alive():
            raise OSError("the environment's network namespace is closed")
        reply: queue.Queue[Any] = queue.Queue()
        self._requests.put((family, kind, reply))
        try:
            made = reply.get(timeout=5)
        except queue.Empty:
            raise OSError("the environment's network namespace did not answer") from None
        if isinstance(made, BaseException):
            raise made
        return made

    def listener(self, host: str, port: int, backlog: int = 64) -> socket.socket:
        sock = self.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self._thread.is_alive():
            self._requests.put(None)
            self._thread.join(timeout=2)
        try:
            os.close(self._fd)
        except OSError:
            pass


class LoopbackForward:
    """The environment's 127.0.0.1:<port> reaches this machine's 127.0.0.1:<port> (for the sandbox's own OTLP
    receiver and the ports a user names): one listener inside the environment, one accept thread, two pump
    threads per connection, at most FORWARD_MAX_CONNECTIONS at once."""

    def __init__(self, nets: NetNamespace, port: int, connect: Callable[[Tuple[str, int]], socket.socket]
                 = lambda addr: socket.create_connection(addr, timeout=5)) -> None:
        self.port = port
        self._connect = connect
        self._listener = nets.listener("127.0.0.1", port)
        self._lock = threading.Lock()
        self._open: Dict[int, Tuple[socket.socket, socket.socket]] = {}
        self.refused = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name=f"lambda-sandbox-forward-{port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                inner, _ = self._listener.accept()
            except (OSError, ValueError):
                return
            with self._lock:
                full = len(self._open) >= FORWARD_MAX_CONNECTIONS
            if full:
                self.refused += 1
                inner.close()
                continue
            try:
                outer = self._connect(("127.0.0.1", self.port))
            except OSError:
                inner.close()       # as the machine would answer: nothing listens there
                continue
            inner.settimeout(None)
            outer.settimeout(None)
            with self._lock:
                self._open[inner.fileno()] = (inner, outer)
            for src, dst in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(src, dst, inner.fileno()), daemon=True,
                                 name=f"lambda-sandbox-forward-{self.port}-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket, key: int) -> None:
        try:
            while True:
                data = src.recv(FORWARD_CHUNK)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(key)
            return
        with self._lock:
            pair = self._open.get(key)
        # both directions done: the peer's pump closes the pair when it sees EOF too
        if pair is not None and src is pair[1]:
            self._drop(key)

    def _drop(self, key: int) -> None:
        with self._lock:
            pair = self._open.pop(key, None)
        if pair is not None:
            for s in pair:
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        self._thread.join(timeout=2)
        with self._lock:
            keys = list(self._open)
        for key in keys:
            self._drop(key)


def forward_all(nets: NetNamespace, ports: List[int]) -> List[LoopbackForward]:
    out: List[LoopbackForward] = []
    for port in dict.fromkeys(ports):
        out.append(LoopbackForward(nets, port))
    return out


class PrivateNetwork:
    """What the sandbox holds of an environment's own network: the socket factory and the forwarded ports."""

    def __init__(self, holder_pid: int, forward_ports: List[int]) -> None:
        self.nets = NetNamespace(holder_pid)
        self.forwards: List[LoopbackForward] = []
        try:
            self.forwards = forward_all(self.nets, forward_ports)
        except OSError as exc:
            self.close()
            raise OSError(f"cannot forward a loopback port into the environment: {exc}") from exc

    def api_listener(self, port: int) -> socket.socket:
        """The Runtime API's socket on Lambda's address inside the environment."""
        return self.nets.listener(LAMBDA_API_HOST, port, backlog=128)

    def close(self) -> None:
        for fw in self.forwards:
            fw.close()
        self.forwards = []
        self.nets.close()
