"""Reading a process's memory and CPU from /proc (Linux), and finding the sidecar's pid among our descendants."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _ppid(pid: int) -> Optional[int]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def descendants(root: int) -> List[int]:
    """Every live process below root (by parent links)."""
    parents: Dict[int, Optional[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parents[int(entry)] = _ppid(int(entry))
    children: Dict[int, List[int]] = {}
    for pid, ppid in parents.items():
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    out: List[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def find_processes(needle: str, root: Optional[int] = None) -> List[int]:
    """Descendants of root (default: this process) whose command line contains needle."""
    return sorted(p for p in descendants(root or os.getpid()) if needle in _cmdline(p))


def find_sidecar(root: Optional[int] = None) -> Optional[int]:
    """The sidecar's Python process (the dev launcher and the layer launcher both exec into it)."""
    for needle in ("otel_sidecar", "otel-sidecar"):
        pids = [p for p in find_processes(needle, root) if "python" in _cmdline(p)]
        if pids:
            return pids[0]
    return None


def rss_kb(pid: int) -> Optional[int]:
    """VmRSS in kB (None when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> Optional[Tuple[float, float]]:
    """(utime, stime) in seconds, all threads of the process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
