# ruff: noqa: UP030, UP031, UP032, UP036 - syntax every Python can parse, on purpose
# Started by the launcher as `python -I -S -B -u bootstrap.py --name NAME`.
# Puts only this directory (the sidecar and its vendored dependencies) on sys.path and runs the sidecar
# as `python -m otel_sidecar` would. Kept to syntax every Python can parse, so that an interpreter that
# is too old reaches the version check below and hands over to the no-Python stand-in.
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _too_old():
    launcher = os.path.join(os.path.dirname(HERE), "extensions", os.path.basename(sys.argv[-1]))
    sys.stderr.write("[otel-sidecar] ERROR Python {0} at {1} is older than 3.9; using the layer's own interpreter "
                     "if it has one, else the no-Python mode\n".format(sys.version.split()[0], sys.executable))
    sys.stderr.flush()
    env = dict(os.environ)
    env["SIDECAR_SKIP_HOST_PYTHON"] = "1"
    os.execve(launcher, [launcher], env)


if sys.version_info < (3, 9):
    _too_old()



def _protobuf_paths():
    """native/<machine> (protobuf's compiled upb) unless SIDECAR_PROTOBUF=python; the function's own
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION is its business, not ours."""
    os.environ.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    choice = os.environ.get("SIDECAR_PROTOBUF", "").strip().lower()
    if choice not in ("", "auto", "python"):
        sys.stderr.write("[otel-sidecar] WARNING SIDECAR_PROTOBUF={0!r} is not one of auto, python; using "
                         "auto\n".format(choice))
    if choice == "python":
        os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
        return []
    # google/ is a namespace package: this directory's google/_upb joins the pure google/protobuf above it.
    # Where the module cannot load (another architecture, libc), protobuf quietly uses its pure Python.
    native = os.path.join(HERE, "native", os.uname()[4])
    return [native] if os.path.isdir(native) else []


sys.path[:] = [HERE] + _protobuf_paths() + [p for p in sys.path if p.startswith(sys.base_prefix)
                                            and "-packages" not in p]

sys.argv[0] = os.path.join(HERE, "otel_sidecar")
# What `python -m otel_sidecar` runs, without runpy (whose imports cost milliseconds on every cold start).
from otel_sidecar.__main__ import main  # noqa: E402

sys.exit(main())
