"""Unpack layers (zip files or directories) in order into one directory, as Lambda builds /opt."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Iterable, List


class LayerError(ValueError):
    """A layer argument is neither a zip file nor a directory."""


def unpack_layers(layers: Iterable[os.PathLike], dest: Path) -> List[str]:
    """Unpack every layer into `dest`; later layers overwrite earlier files. Returns the sources used."""
    dest.mkdir(parents=True, exist_ok=True)
    used = []
    for layer in layers:
        src = Path(layer)
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        elif src.is_file() and zipfile.is_zipfile(src):
            _extract_zip(src, dest)
        else:
            raise LayerError(f"layer {str(src)!r} is neither a directory nor a zip file")
        used.append(str(src))
    return used


def _extract_zip(src: Path, dest: Path) -> None:
    """Extract keeping the unix permission bits (zipfile drops them) and symlinks."""
    root = dest.resolve()
    with zipfile.ZipFile(src) as zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if root != target and root not in target.parents:
                raise LayerError(f"layer {str(src)!r}: entry {info.filename!r} escapes the layer directory")
            mode = (info.external_attr >> 16) & 0xFFFF
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                if target.exists() or target.is_symlink():
                    target.unlink()
                os.symlink(zf.read(info).decode(), target)
                continue
            if target.is_symlink():
                target.unlink()
            with zf.open(info) as fin, open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            if mode & 0o777:
                os.chmod(target, mode & 0o777)


def list_extensions(opt_dir: Path) -> List[Path]:
    """Every non-directory entry of <opt>/extensions, sorted by name (2.1); symlinks count."""
    ext_dir = opt_dir / "extensions"
    if not ext_dir.is_dir():
        return []
    return sorted((p for p in ext_dir.iterdir() if not p.is_dir()), key=lambda p: p.name)
