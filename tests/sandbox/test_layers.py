"""Layer unpacking: zips and directories in order, permissions kept, nothing escapes (layers.py)."""

from __future__ import annotations

import os
import stat
import zipfile

import pytest
from lambda_sandbox.layers import LayerError, list_extensions, unpack_layers


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_layers_unpack_in_order_with_modes(tmp_path):
    first = _zip(tmp_path / "a.zip", [("extensions/ext-a", "#!/bin/sh\n", 0o100755),
                                      ("python/mod.py", "VALUE = 1\n", 0o100644)])
    second = tmp_path / "b"
    (second / "python").mkdir(parents=True)
    (second / "python" / "mod.py").write_text("VALUE = 2\n")
    dest = tmp_path / "opt"
    assert unpack_layers([first, second], dest) == [str(first), str(second)]
    assert (dest / "python" / "mod.py").read_text() == "VALUE = 2\n"       # later layers win
    assert stat.S_IMODE(os.stat(dest / "extensions" / "ext-a").st_mode) == 0o755
    assert [p.name for p in list_extensions(dest)] == ["ext-a"]


def test_zip_entry_escaping_the_layer_is_refused(tmp_path):
    bad = _zip(tmp_path / "bad.zip", [("../evil", "x", 0o100644)])
    with pytest.raises(LayerError, match="escapes"):
        unpack_layers([bad], tmp_path / "opt")


def test_not_a_layer_names_the_path(tmp_path):
    (tmp_path / "plain.txt").write_text("hi")
    with pytest.raises(LayerError, match="plain.txt"):
        unpack_layers([tmp_path / "plain.txt"], tmp_path / "opt")
