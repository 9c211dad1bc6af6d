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
    sys.stderr.write("[otel-sidecar] ERROR Python {0} at {1} is older than 3.9; falling back to the no-Python "
                     "mode\n".format(sys.version.split()[0], sys.executable))
    sys.stderr.flush()
    env = dict(os.environ)
    env["SIDECAR_FORCE_NO_PYTHON"] = "1"
    os.execve(launcher, [launcher], env)


if sys.version_info < (3, 9):
    _too_old()

sys.path[:] = [HERE] + [p for p in sys.path if p.startswith(sys.base_prefix) and "-packages" not in p]

import runpy  # noqa: E402

sys.argv[0] = os.path.join(HERE, "otel_sidecar")
runpy.run_module("otel_sidecar", run_name="__main__", alter_sys=True)
