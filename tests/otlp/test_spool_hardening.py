"""The spool trusts nothing in /tmp: links, FIFOs, devices, huge or forged files are deleted and counted."""

from __future__ import annotations

import os
import threading

import pytest
from otel_sidecar.otlp import encode
from otel_sidecar.otlp.spool import Spool, items_in

SPAN = encode.span(1, 2, None, "n", encode.KIND_SERVER, 1, 2, {"a": 1})


def _traces(n: int) -> bytes:
    return encode.Envelope("traces", {"service.name": "s"}, "scope").request([SPAN] * n)


def _load(spool: Spool):
    result = {}

    def run():
        result["out"] = spool.load(check=items_in)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "the spool blocked"
    return result["out"]


def test_a_valid_file_is_loaded(tmp_path):
    spool = Spool(str(tmp_path / "spool"), 1 << 20)
    assert spool.save("traces", _traces(3), 3)
    assert oct(os.stat(tmp_path / "spool").st_mode & 0o777) == "0o700"
    (loaded, left) = _load(spool)
    assert [(sig, n) for _, sig, n, _ in loaded] == [("traces", 3)] and not left


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "big", "forged", "wrong_signal", "wrong_count", "dir"])
def test_hostile_entries_are_deleted_and_counted(tmp_path, kind):
    d = tmp_path / "spool"
    d.mkdir(mode=0o700)
    path = d / "traces-3-00000000000000000001-1.pb"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "big":
        with open(path, "wb") as f:
            f.truncate(150 * 1024 * 1024)        # sparse: 150 MB without writing them
    elif kind == "forged":
        path.write_bytes(b"\xff" * 100)
    elif kind == "wrong_signal":
        path.write_bytes(encode.Envelope("logs", {}, "s").request(
            [encode.log_record(1, 1, "x", 9, "INFO", {})] * 3))
    elif kind == "wrong_count":
        path.write_bytes(_traces(2))
    elif kind == "dir":
        path.mkdir()
    spool = Spool(str(d), 4 * 1024 * 1024)
    loaded, _ = _load(spool)
    assert loaded == []
    assert spool.take_rejected() == [("traces", 3)]
    assert not os.path.lexists(path) or kind == "dir"
    assert os.path.exists("/dev/zero")


def test_a_symlinked_directory_is_refused_once(tmp_path, caplog):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "traces-1-00000000000000000001-1.pb").write_bytes(_traces(1))
    link = tmp_path / "spool"
    link.symlink_to(target)
    spool = Spool(str(link), 1 << 20)
    assert _load(spool) == ([], False)
    assert not spool.save("traces", _traces(1), 1)
    refusals = [r for r in caplog.records if "SIDECAR_OTLP_SPOOL_DIR" in r.getMessage()]
    assert len(refusals) == 1 and "symbolic link" in refusals[0].getMessage()
    assert len(list(target.iterdir())) == 1           # nothing followed: untouched, nothing added


def test_an_open_directory_is_made_private(tmp_path):
    d = tmp_path / "spool"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    spool = Spool(str(d), 1 << 20)
    assert spool.save("traces", _traces(1), 1)
    assert os.stat(d).st_mode & 0o777 == 0o700


def test_the_budget_leaves_what_does_not_fit_on_disk(tmp_path):
    spool = Spool(str(tmp_path / "spool"), 1 << 20)
    for n in (1, 2):
        spool.save("traces", _traces(n), n)
    loaded, left = spool.load(room=lambda n: False, check=items_in)
    assert loaded == [] and left and len(list((tmp_path / "spool").iterdir())) == 2


def test_sink_counts_rejected_spool_files_as_dropped(make_sink, tmp_path):
    d = tmp_path / "spool"
    d.mkdir(mode=0o700)
    os.mkfifo(d / "traces-7-00000000000000000001-1.pb")
    (d / "logs-2-00000000000000000002-1.pb").write_bytes(b"junk")
    sink = make_sink(SIDECAR_OTLP_SPOOL_DIR=str(d))
    sink.flush(__import__("time").monotonic() + 2)
    h = sink.health()
    assert h["otlp_dropped_spans_spool_invalid"] == 7 and h["otlp_dropped_logs_spool_invalid"] == 2
    assert list(d.iterdir()) == []
