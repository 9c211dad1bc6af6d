"""The self-contained layer's parts: the bundled CPython (interpreter/build.sh) trimmed to what the sidecar
imports, and protobuf's compiled core freed of a library it never uses.

Layout added to the layer (by build_layer.py --arch):
  otel-sidecar/interpreter/bin/python3             one static executable (libpython, OpenSSL, zlib inside)
  otel-sidecar/interpreter/lib/python3.13/...      the stdlib modules the sidecar loads, as bytecode only
  otel-sidecar/interpreter/MACHINE, VERSION        read by the launcher (architecture check, the one line)
  otel-sidecar/interpreter/BUILD-INFO, licenses/   what it was built from; CPython's, OpenSSL's, zlib's licences
"""

from __future__ import annotations

import ast
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
STDLIB = "lib/python3.13"
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
# Loaded by the stdlib only on paths the probe below cannot reach without a network (or only on a fault).
EXTRA_MODULES = ("encodings.idna", "stringprep", "encodings.latin_1", "encodings.ascii", "encodings.utf_8_sig",
                 "_strptime", "traceback", "linecache", "tokenize", "token", "locale", "calendar")
# Never shipped: interactive, build or test machinery the sidecar has no use for.
_NEVER = ("ensurepip", "venv", "idlelib", "tkinter", "turtledemo", "test", "unittest", "pydoc_data", "lib2to3",
          "_pyrepl", "pdb", "doctest", "pydoc")

# Run by the bundled interpreter on the full stdlib: every module the sidecar names anywhere (also inside
# functions), then its start path (OTLP encode, an https context, gzip, HMAC signing, YAML); prints the
# stdlib files that got loaded.
_PROBE = r"""
import sys
home, stdlib, names = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [home]
import importlib
for name in names:
    try:
        importlib.import_module(name)
    except ImportError:
        pass                                 # optional extras (grpc) the layer does not carry
import gzip, hashlib, hmac, json, ssl, http.client, urllib.request, email.parser, logging.handlers
ctx = ssl.create_default_context()
gzip.decompress(gzip.compress(b"x" * 100))
hmac.new(b"k", b"m", hashlib.sha256).hexdigest()
import otel_sidecar.otlp.encode as e
e.Envelope("traces", {"a": 1}, "s").request([e.span(1, 2, None, "n", e.KIND_SERVER, 1, 2, {"b": "c"})])
import yaml
yaml.safe_load("a: [1, 2]\nb: {c: d}\n")
for extra in sys.stdin.read().split():
    importlib.import_module(extra)
root = stdlib.rstrip("/") + "/"
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None) or ""
    if f.startswith(root):
        print(f[len(root):])
"""


def sidecar_imports(package: Path) -> List[str]:
    """Every absolute module name imported anywhere in the sidecar's sources (module level or not)."""
    names: Set[str] = set()
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    rel = sorted(p.relative_to(package.parent).with_suffix("").as_posix().replace("/", ".") for p in
                 package.rglob("*.py"))
    return sorted(names) + [r[: -len(".__init__")] if r.endswith(".__init__") else r for r in rel]


def probe_stdlib(python: Path, home: Path) -> List[str]:
    """The stdlib files (relative to lib/python3.13) the sidecar loads, run by the bundled interpreter."""
    stdlib = python.parent.parent / STDLIB
    names = sidecar_imports(home / "otel_sidecar")
    env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "SSL_CERT_FILE": os.devnull}
    proc = subprocess.run([str(python), "-I", "-S", "-B", "-c", _PROBE, str(home), str(stdlib), *names],
                          input=" ".join(EXTRA_MODULES), capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"[build] the bundled interpreter {python} cannot run the sidecar's imports:\n{proc.stderr}")
    return sorted(set(proc.stdout.split()))


def _package_inits(files: Iterable[str]) -> Set[str]:
    """The __init__.py of every package a kept file sits in (a submodule needs its parents)."""
    out = set()
    for f in files:
        parts = f.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]) + "/__init__.py")
    return out


_COMPILE = r"""
import py_compile, sys
src, dst = sys.argv[1], sys.argv[2]
for rel in sys.stdin.read().split():
    py_compile.compile(src + "/" + rel, cfile=dst + "/" + rel + "c", dfile="/opt/otel-sidecar/interpreter/"
                       + "lib/python3.13/" + rel, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def stdlib_entries(python: Path, prefix: Path, files: List[str]) -> Dict[str, Tuple[bytes, int]]:
    """Sourceless bytecode (lib/python3.13/x.pyc, beside where x.py would be) of the kept stdlib files."""
    stdlib = prefix / STDLIB
    keep = {f for f in set(files) | _package_inits(files) if (stdlib / f).is_file()}
    keep = {f for f in keep if f.split("/")[0].removesuffix(".py") not in _NEVER}
    entries: Dict[str, Tuple[bytes, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
        subprocess.run([str(python), "-s", "-S", "-c", _COMPILE, str(stdlib), tmp], input=" ".join(sorted(keep)),
                       text=True, check=True, env=env, timeout=300)
        for rel in sorted(keep):
            entries[f"otel-sidecar/interpreter/{STDLIB}/{rel}c"] = ((Path(tmp) / (rel + "c")).read_bytes(), 0o644)
    # getpath's landmark for the platform library directory (no extension modules live there: all built in)
    entries[f"otel-sidecar/interpreter/{STDLIB}/lib-dynload/README"] = (
        b"Empty on purpose: every extension module is built into bin/python3.\n", 0o644)
    return entries


def interpreter_entries(arch: str, prefix: Path, build_python: Path, home: Path) -> Dict[str, Tuple[bytes, int]]:
    """The bundled interpreter of one architecture; build_python (the x86_64 build) runs the probe and the
    compiler, as bytecode is the same on every architecture."""
    exe = prefix / "bin" / "python3.13"
    data = exe.read_bytes()
    if int.from_bytes(data[18:20], "little") != ELF_MACHINE[arch]:
        raise SystemExit(f"[build] {exe} is not an {arch} executable")
    entries = {"otel-sidecar/interpreter/bin/python3": (data, 0o755)}
    entries.update(stdlib_entries(build_python, prefix, probe_stdlib(build_python, home)))
    info = (prefix / "BUILD-INFO").read_text()
    version = next(line.split()[2] for line in info.splitlines() if line.startswith("source python3.13 "))
    entries["otel-sidecar/interpreter/VERSION"] = (version.split("-")[0].encode() + b"\n", 0o644)
    entries["otel-sidecar/interpreter/MACHINE"] = (MACHINES[arch].encode() + b"\n", 0o644)
    entries["otel-sidecar/interpreter/BUILD-INFO"] = (info.encode(), 0o644)
    for lic in sorted((prefix / "licenses").glob("*")):
        entries[f"otel-sidecar/interpreter/licenses/{lic.name}"] = (lic.read_bytes(), 0o644)
    return entries


def drop_needed(elf: bytes, library: str) -> bytes:
    """The ELF shared object without the DT_NEEDED entry naming `library` (64-bit little-endian only).

    protobuf's upb module lists libstdc++.so.6 but calls nothing in it (no GLIBCXX/CXXABI symbol), and
    Amazon Linux 2023's minimal images (provided.al2023) have no libstdc++: the entry alone would make the
    module fail to load there. The entry is removed from the dynamic section (later entries move up, a
    DT_NULL fills the end), nothing else changes.
    """
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    e_phoff, = struct.unpack_from("<Q", elf, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", elf, 0x36)
    dyn = None
    for i in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, e_phoff + i * e_phentsize)
        if p_type == 2:   # PT_DYNAMIC
            dyn = (p_offset, p_filesz)
    if dyn is None:
        raise ValueError("no dynamic section")
    entries = [struct.unpack_from("<qQ", elf, dyn[0] + 16 * i) for i in range(dyn[1] // 16)]
    tags = dict(entries)
    strtab_vaddr = tags[5]     # DT_STRTAB, a virtual address: map it to a file offset through PT_LOAD
    strtab_off = None
    for i in range(e_phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, e_phoff + i * e_phentsize)
        if p_type == 1 and p_vaddr <= strtab_vaddr < p_vaddr + p_filesz:
            strtab_off = p_offset + strtab_vaddr - p_vaddr
    if strtab_off is None:
        raise ValueError("DT_STRTAB outside every PT_LOAD segment")

    def name(off: int) -> str:
        start = strtab_off + off
        return elf[start:elf.index(b"\0", start)].decode()

    kept = [(t, v) for t, v in entries if not (t == 1 and name(v) == library)]
    if len(kept) == len(entries):
        return elf
    kept += [(0, 0)] * (len(entries) - len(kept))
    out = bytearray(elf)
    for i, (t, v) in enumerate(kept):
        struct.pack_into("<qQ", out, dyn[0] + 16 * i, t, v)
    return bytes(out)


def needed(elf: bytes) -> List[str]:
    """DT_NEEDED names of an ELF file (for the build's checks and the tests)."""
    e_phoff, = struct.unpack_from("<Q", elf, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", elf, 0x36)
    heads = [struct.unpack_from("<IIQQQQ", elf, e_phoff + i * e_phentsize) for i in range(e_phnum)]
    dyn = [h for h in heads if h[0] == 2]
    if not dyn:
        return []
    entries = [struct.unpack_from("<qQ", elf, dyn[0][2] + 16 * i) for i in range(dyn[0][5] // 16)]
    strtab = dict(entries)[5]
    base = next(h[2] + strtab - h[3] for h in heads if h[0] == 1 and h[3] <= strtab < h[3] + h[5])
    return [elf[base + v:elf.index(b"\0", base + v)].decode() for t, v in entries if t == 1]


if __name__ == "__main__":   # python layer/bundle.py FILE.so: its DT_NEEDED names
    print("\n".join(needed(Path(sys.argv[1]).read_bytes())))
