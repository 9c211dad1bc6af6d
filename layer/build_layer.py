"""Build the Lambda layer zip reproducibly: the same inputs give the same bytes.

Run by ../build.sh. Layout of the zip:
  extensions/otel-sidecar          the launcher (Lambda starts every file in /opt/extensions)
  otel-sidecar/                    bootstrap, the otel_sidecar package and every dependency, vendored
  otel-sidecar/native/<machine>/   optional compiled speed-ups (protobuf's upb) per architecture
  collector-config/config.yaml     the default pipeline
  collector-config/config.json     the same, parsed at build time (the sidecar then needs no YAML parser for it)
  otel-sidecar/interpreter/        with --arch only: the bundled CPython (layer/bundle.py), for every runtime
Nothing goes into python/: that folder is on the function's import path.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Tuple

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "layer" / "requirements.txt"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)     # the earliest time a zip can hold: no build clock in the bytes
BUDGET_BYTES = 5 * 1024 * 1024
BUNDLED_BUDGET_BYTES = 8 * 1024 * 1024    # a layer with its own interpreter (--arch)

# Parts of dependencies the sidecar never imports (docs, tests, stubs, unused generated protos).
_DROP_DIRS = {"__pycache__", "tests", "test", "testing", "testdata", "docs", "examples", "benchmarks"}
_DROP_SUFFIXES = (".pyi", ".pyc", ".pyo", ".so", ".pyd", ".dylib", ".c", ".h", ".pxd", ".pyx", ".md", ".rst")
_DROP_FILES = {"py.typed"}
_DROP_PREFIXES = ("_yaml/", "google/api/", "google/cloud/", "google/gapic/", "google/logging/",
                  "google/longrunning/", "google/type/", "google/protobuf/compiler/",
                  "google/protobuf/testdata/")
# importlib.metadata needs a dist-info's METADATA (name, version) and entry_points.txt: OpenTelemetry finds
# its context, propagators and exporters through entry points. Licences stay with the code they cover.
_KEEP_DIST_INFO = re.compile(r"^(METADATA|entry_points\.txt|LICENSE.*|COPYING.*|NOTICE.*|licenses/.+)$")


class Pin(NamedTuple):
    name: str
    version: str
    sha256: str
    python_files_only: str   # "" for a pure wheel, else "<platform> <abi>" of the wheel the .py files come from
    native: str = ""         # "<platform> <abi>" of a wheel whose compiled modules only are taken...
    machine: str = ""        # ...into otel-sidecar/native/<machine>/ (os.uname().machine: x86_64, aarch64)

    @property
    def target(self) -> str:
        """The "<platform> <abi>" pip downloads for ("" for a pure wheel)."""
        return self.native or self.python_files_only


def read_lock(path: Path = LOCK) -> List[Pin]:
    pins = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line, _, comment = raw.partition("#")
        if not line.strip():
            continue
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})\s*$", line)
        if not m:
            raise SystemExit(f"{path}:{n}: expected 'name==version --hash=sha256:<hex>', got {raw!r}")
        extra = comment.strip().split()
        only = " ".join(extra[1:3]) if extra[:1] == ["python-files-only"] and len(extra) >= 3 else ""
        native, machine = "", ""
        if extra[:1] == ["native"]:
            if len(extra) < 4:
                raise SystemExit(f"{path}:{n}: expected '# native <platform> <abi> <machine>', got {raw!r}")
            native, machine = " ".join(extra[1:3]), extra[3]
        pins.append(Pin(m.group(1), m.group(2), m.group(3), only, native, machine))
    return pins


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(pins: List[Pin], cache: Path, python: str) -> Dict[str, Path]:
    """Map sha256 -> wheel file in the cache; downloads (pip, hash-checked) only what is missing."""
    cache.mkdir(parents=True, exist_ok=True)
    have = {_sha256(p): p for p in sorted(cache.glob("*.whl"))}
    missing = [p for p in pins if p.sha256 not in have]
    groups: Dict[str, List[Pin]] = {}
    for pin in missing:
        groups.setdefault(pin.target, []).append(pin)
    for only, group in sorted(groups.items()):
        # Download into a private directory, then move each wheel in atomically: parallel builds (e.g. test
        # workers) never see a half-written wheel in the shared cache.
        with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
            req = Path(tmp) / "request.txt"
            req.write_text("".join(f"{p.name}=={p.version} --hash=sha256:{p.sha256}\n" for p in group))
            if only:
                platform, abi = only.split()
                target = ["--platform", platform, "--implementation", "cp", "--abi", abi]
            else:
                target = ["--platform", "any", "--implementation", "py", "--abi", "none"]
            cmd = [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--require-hashes", "--only-binary=:all:", "--python-version", "3.9", *target,
                   "-d", tmp, "-r", str(req)]
            print(f"[build] downloading {len(group)} pinned wheel(s) into {cache}", file=sys.stderr)
            subprocess.run(cmd, check=True)
            for wheel in sorted(Path(tmp).glob("*.whl")):
                os.replace(wheel, cache / wheel.name)
    have = {_sha256(p): p for p in sorted(cache.glob("*.whl"))}
    absent = [f"{p.name}=={p.version}" for p in pins if p.sha256 not in have]
    if absent:
        raise SystemExit(f"[build] not in the cache after download (hash mismatch?): {', '.join(absent)}")
    return have


def _dropped(rel: str) -> bool:
    parts = rel.split("/")
    if any(part in _DROP_DIRS for part in parts[:-1]):
        return True
    name = parts[-1]
    return name in _DROP_FILES or name.endswith(_DROP_SUFFIXES) or rel.startswith(_DROP_PREFIXES)


def _trim_metadata(data: bytes) -> bytes:
    """Keep only the header block of METADATA (name, version, requirements); the long description is docs."""
    head = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.rstrip(b"\n") + b"\n"


def wheel_files(wheel: Path) -> Iterator[Tuple[str, bytes]]:
    """(path inside otel-sidecar/, bytes) for every file of a wheel the layer keeps."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            rel = info.filename
            if info.is_dir():
                continue
            top, _, rest = rel.partition("/")
            if top.endswith(".dist-info"):
                if _KEEP_DIST_INFO.match(rest):
                    data = zf.read(info)
                    yield rel, _trim_metadata(data) if rest == "METADATA" else data
                continue
            if top.endswith(".data"):
                continue  # scripts/headers: nothing the sidecar runs
            if not _dropped(rel):
                yield rel, zf.read(info)


def native_files(wheel: Path) -> Iterator[Tuple[str, bytes]]:
    """(path, bytes) of the compiled modules of a wheel (a native pin takes nothing else from it)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            top = info.filename.partition("/")[0]
            if not info.is_dir() and info.filename.endswith(".so") and not top.endswith((".dist-info", ".data")):
                yield info.filename, zf.read(info)


def own_files() -> Iterator[Tuple[str, bytes]]:
    """The sidecar package from this checkout (sources and package data only)."""
    pkg = ROOT / "extension" / "otel_sidecar"
    for path in sorted(pkg.rglob("*")):
        rel = path.relative_to(pkg.parent).as_posix()
        if path.is_file() and path.suffix in (".py", ".json", ".yaml") and "__pycache__" not in rel:
            yield rel, path.read_bytes()


def layer_entries(wheels: Dict[str, Path], pins: List[Pin]) -> Dict[str, Tuple[bytes, int]]:
    """Every file of the layer: zip path -> (bytes, unix mode)."""
    entries: Dict[str, Tuple[bytes, int]] = {}
    entries["extensions/otel-sidecar"] = ((ROOT / "layer" / "otel-sidecar").read_bytes(), 0o755)
    for name in ("bootstrap.py", "no-python-extension.bash"):
        entries[f"otel-sidecar/{name}"] = ((ROOT / "layer" / name).read_bytes(), 0o755 if name.endswith(".bash") else 0o644)
    default_config = (ROOT / "collector-config" / "config.yaml").read_bytes()
    entries["collector-config/config.yaml"] = (default_config, 0o644)
    entries["collector-config/config.json"] = (config_twin(default_config, wheels, pins), 0o644)
    for pin in pins:
        if pin.native:
            for rel, data in native_files(wheels[pin.sha256]):
                entries[f"otel-sidecar/native/{pin.machine}/{rel}"] = (data, 0o755)
            continue
        for rel, data in wheel_files(wheels[pin.sha256]):
            entries[f"otel-sidecar/{rel}"] = (data, 0o644)
    for rel, data in own_files():
        entries[f"otel-sidecar/{rel}"] = (data, 0o644)
    lock = "".join(f"{p.name}=={p.version}" + (f" (native {p.machine})" if p.native else "") + "\n"
                   for p in pins).encode()
    entries["otel-sidecar/VENDORED.txt"] = (lock, 0o644)
    entries["otel-sidecar/LAYER.json"] = ((ROOT / "layer" / "metadata.json").read_bytes(), 0o644)
    return entries


def config_twin(yaml_bytes: bytes, wheels: Dict[str, Path], pins: List[Pin]) -> bytes:
    """The default config parsed, with the sha256 of the text it came from (otlp/config.py checks it).

    Parsed with the vendored PyYAML itself, imported from its wheel (pure modules import from a zip), so the
    build needs no PyYAML of its own and the twin is what the sidecar's parser would read.
    """
    (pin,) = [p for p in pins if p.name.lower() == "pyyaml" and not p.native]
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import yaml; "
            "print(json.dumps(yaml.safe_load(sys.stdin.read()), sort_keys=True, separators=(',', ':')))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(wheels[pin.sha256])], input=yaml_bytes,
                          capture_output=True, check=True)
    parsed = json.loads(proc.stdout)
    twin = {"sourceSha256": hashlib.sha256(yaml_bytes).hexdigest(), "config": parsed,
            "note": "collector-config/config.yaml, parsed at build time; used only while its sha256 matches"}
    return (json.dumps(twin, sort_keys=True, indent=1) + "\n").encode()


# Imports the whole sidecar as it runs with OTLP on and prints the files it loaded: the vendored modules worth
# precompiling (protobuf's python parts that its compiled core still uses, the proto classes), not the rest.
_PROBE = ("import sys; sys.path[:0] = sys.argv[1:]\n"
          "import otel_sidecar.__main__, otel_sidecar.lifecycle, otel_sidecar.listener, otel_sidecar.worker\n"
          "import otel_sidecar.events, otel_sidecar.signals, otel_sidecar.emf, otel_sidecar.flush\n"
          "import otel_sidecar.otlp, otel_sidecar.otlp.sink\n"
          "print('\\n'.join(sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)})))")
_COMPILE = ("import py_compile, sys\n"
            "root, files = sys.argv[1], sys.argv[2:]\n"
            "for f in files:\n"
            "    py_compile.compile(root + '/' + f, dfile='/opt/' + f, doraise=True,\n"
            "                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n")


def add_bytecode(entries: Dict[str, Tuple[bytes, int]], pythons: List[str]) -> None:
    """Precompile, with each given interpreter, the sidecar's own modules and the vendored ones it imports.

    Lambda's /opt is read-only, so without this every cold start compiles them again (~0.1 s of CPU at full
    speed, over a second on a 128 MB function's fraction of a vCPU). Unchecked-hash pycs hold no timestamp,
    so the bytes depend only on the sources and the interpreter version; Python reads them with -B too
    (-B only stops writing), each minor version only its own (the cache tag in the name).
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, (data, _) in entries.items():
            if name.startswith("otel-sidecar/"):
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        home = root / "otel-sidecar"
        # A fixed hash seed: set and frozenset constants are marshalled in hash order.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PROTOCOL_BUFFERS"))}
        env["PYTHONHASHSEED"] = "0"
        machine = home / "native" / os.uname().machine
        paths = [str(home)] + ([str(machine)] if machine.is_dir() else [])
        for python in pythons:
            probe = subprocess.run([python, "-I", "-S", "-B", "-c", _PROBE, *paths], capture_output=True, text=True,
                                   env=env, cwd=tmp)
            if probe.returncode != 0:
                raise SystemExit(f"[build] {python} cannot import the sidecar:\n{probe.stderr}")
            loaded = {Path(f).resolve().relative_to(root.resolve()).as_posix() for f in probe.stdout.split()
                      if f.endswith(".py") and Path(f).resolve().is_relative_to(root.resolve())}
            own = {n for n in entries if n.startswith("otel-sidecar/otel_sidecar/") and n.endswith(".py")}
            files = sorted((loaded | own) - {n for n in loaded if n.startswith(_NO_BYTECODE)})
            # not -I: it would ignore PYTHONHASHSEED (the environment is cleaned of every other PYTHON* above)
            subprocess.run([python, "-s", "-S", "-c", _COMPILE, str(root), *files], check=True, env=env, cwd=tmp)
        for pyc in sorted(root.rglob("*.pyc")):
            entries[pyc.relative_to(root).as_posix()] = (pyc.read_bytes(), 0o644)


SUPPORTED_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
_NO_BYTECODE = ("otel-sidecar/yaml/", "otel-sidecar/bootstrap.py")


def find_pythons(versions: Tuple[str, ...] = SUPPORTED_PYTHONS) -> List[Tuple[str, str]]:
    """(version, interpreter) for each supported CPython found on PATH, under pyenv or in /usr(/local)/bin."""
    import shutil

    pyenv = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"
    found = []
    for v in versions:
        candidates = [shutil.which(f"python{v}"), f"/usr/bin/python{v}", f"/usr/local/bin/python{v}"]
        candidates += [str(p) for p in sorted(pyenv.glob(f"{v}.*/bin/python{v}"))]
        for exe in candidates:
            if not exe or not os.access(exe, os.X_OK):
                continue
            probe = subprocess.run([exe, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2], "
                                                     "sys.implementation.name)"], capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.split() == [v, "cpython"]:
                found.append((v, exe))
                break
    return found


def write_zip(entries: Dict[str, Tuple[bytes, int]], out: Path) -> None:
    """Sorted entries, explicit directory entries, fixed times and modes, deflate level 9."""
    dirs = set()
    for name in entries:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]) + "/")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(dirs | set(entries)):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.create_system = 3   # unix, so the mode bits below are honoured by unzip and Lambda
            if name.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
                continue
            data, mode = entries[name]
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out)


def bundled_layer(entries: Dict[str, Tuple[bytes, int]], arch: str, prefix: Path, build_python: Path) -> None:
    """Turn the slim layer's entries into the self-contained layer of one architecture (in place)."""
    import bundle

    machine = bundle.MACHINES[arch]
    for name in [n for n in entries if n.startswith("otel-sidecar/native/")]:
        data, mode = entries.pop(name)
        if name.startswith(f"otel-sidecar/native/{machine}/"):
            if name.endswith(".so"):
                data = bundle.drop_needed(data, "libstdc++.so.6")
            entries[name] = (data, mode)
    with tempfile.TemporaryDirectory() as tmp:   # the probe imports the sidecar as the layer holds it
        for name, (data, _) in entries.items():
            if name.startswith("otel-sidecar/") and not name.startswith("otel-sidecar/native/"):
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(data)
        entries.update(bundle.interpreter_entries(arch, prefix, build_python, Path(tmp) / "otel-sidecar"))
    meta = json.loads(entries["otel-sidecar/LAYER.json"][0])
    meta["description"] = meta["bundledDescription"]
    meta["compatibleRuntimes"] = meta["bundledCompatibleRuntimes"]
    meta["compatibleArchitectures"] = [arch]
    entries["otel-sidecar/LAYER.json"] = ((json.dumps(meta, indent=2) + "\n").encode(), 0o644)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="default dist/otel-sidecar-layer.zip, or dist/otel-sidecar-layer-ARCH.zip "
                                      "with --arch")
    parser.add_argument("--cache", default=os.environ.get("LAYER_CACHE_DIR", str(ROOT / "build" / "layer-cache")))
    parser.add_argument("--python", default=sys.executable, help="interpreter whose pip downloads the wheels")
    parser.add_argument("--pyc", action="append", default=[], metavar="PYTHON",
                        help="ship bytecode compiled by this interpreter (repeatable); default: by every supported "
                             "Python version found on this machine (" + ", ".join(SUPPORTED_PYTHONS) + ")")
    parser.add_argument("--no-pyc", action="store_true",
                        help="sources only: every cold start compiles the sidecar (~0.1 s of CPU at full speed)")
    parser.add_argument("--arch", choices=("x86_64", "arm64"),
                        help="the self-contained layer of this architecture, with the bundled CPython of "
                             "--interpreter (interpreter/build.sh ARCH prints it)")
    parser.add_argument("--interpreter", metavar="PREFIX", help="the bundled CPython build of --arch")
    parser.add_argument("--build-interpreter", metavar="PREFIX",
                        help="an x86_64 build that runs here (compiles the bytecode, probes the imports); "
                             "default: --interpreter")
    args = parser.parse_args(argv)
    if args.arch and not args.interpreter:
        parser.error(f"--arch {args.arch} needs --interpreter PREFIX (interpreter/build.sh {args.arch} prints it)")
    if args.interpreter and not args.arch:
        parser.error(f"--interpreter {args.interpreter} needs --arch")
    out = Path(args.out or ROOT / "dist" / (f"otel-sidecar-layer-{args.arch}.zip" if args.arch
                                             else "otel-sidecar-layer.zip"))
    pins = read_lock()
    wheels = fetch(pins, Path(args.cache), args.python)
    entries = layer_entries(wheels, pins)
    pythons = [] if args.no_pyc else args.pyc or [exe for _, exe in find_pythons()]
    budget = BUDGET_BYTES
    if args.arch:
        prefix = Path(args.interpreter)
        build_python = Path(args.build_interpreter or prefix) / "bin" / "python3.13"
        if not os.access(build_python, os.X_OK):
            parser.error(f"--build-interpreter: {build_python} is not an executable file")
        bundled_layer(entries, args.arch, prefix, build_python)
        if not args.no_pyc:
            pythons = pythons + [str(build_python)]
        budget = BUNDLED_BUDGET_BYTES
    if pythons:
        add_bytecode(entries, pythons)
    if not args.no_pyc and not args.pyc:
        have = [v for v, _ in find_pythons()]
        missing = [v for v in SUPPORTED_PYTHONS if v not in have]
        print(f"[build] bytecode for Python {', '.join(have) or 'none'}"
              + (f"; without bytecode (compiled at each cold start): {', '.join(missing)}" if missing else ""),
              file=sys.stderr)
    write_zip(entries, out)
    unzipped = sum(len(data) for data, _ in entries.values())
    zipped = out.stat().st_size
    digest = _sha256(out)
    print(f"built {out}: {zipped / 1e6:.2f} MB zipped ({zipped} bytes), {unzipped / 1e6:.2f} MB unzipped, "
          f"{len(entries)} files, sha256 {digest[:16]}")
    meta = json.loads(entries["otel-sidecar/LAYER.json"][0])
    print(f"publish: aws lambda publish-layer-version --layer-name {meta['layerName']}"
          f"{'-' + args.arch if args.arch else ''} --zip-file fileb://{out} --license-info {meta['licenseInfo']} "
          f"--compatible-runtimes {' '.join(meta['compatibleRuntimes'])} "
          f"--compatible-architectures {' '.join(meta['compatibleArchitectures'])}")
    if zipped > budget:
        print(f"[build] ERROR: {zipped} bytes is over the {budget // 2**20} MB budget ({budget} bytes)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
