#!/usr/bin/env python3
"""Packs a flat Celery project (a folder of modules, no packaging) into a tar.gz on the control
node, byte-for-byte the same for the same files (sorted names, fixed times and owners), so an
unchanged project gives an unchanged release id and a second deploy changes nothing.

With --digest, prints the sha256 of a project's source instead: of the files it would pack
(less a packaged project's build outputs: build/, dist/, *.egg-info), or of a distribution
file's bytes. The celery_app role keeps the wheel it built per digest, so an unchanged source
is not built again.

usage: pack-flat-project.py SOURCE_DIR ARCHIVE   (prints the archive's sha256)
       pack-flat-project.py --digest SOURCE      (a folder or a distribution file)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".venv", "venv", ".tox", ".mypy_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}
# What building a packaged project writes into its folder: not part of its source.
BUILD_OUTPUTS = {"build", "dist"}


def members(source: Path) -> list[Path]:
    found = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if set(relative.parts) & SKIPPED_DIRS or path.suffix in SKIPPED_SUFFIXES:
            continue
        if path.is_file() and not path.is_symlink():
            found.append(relative)
    return found


def pack(source: Path, archive: Path) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in members(source):
            data = (source / relative).read_bytes()
            info = tarfile.TarInfo(relative.as_posix())
            info.size, info.mtime, info.mode = len(data), 315532800, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(buffer.getvalue(), mtime=0)
    archive.parent.mkdir(parents=True, exist_ok=True)
    if not archive.exists() or archive.read_bytes() != packed:
        archive.write_bytes(packed)
    return hashlib.sha256(packed).hexdigest()


def digest(source: Path) -> str:
    hashed = hashlib.sha256()
    if source.is_file():
        hashed.update(source.read_bytes())
        return hashed.hexdigest()
    for relative in members(source):
        if relative.parts[0] in BUILD_OUTPUTS or any(
            part.endswith(".egg-info") for part in relative.parts
        ):
            continue
        hashed.update(relative.as_posix().encode() + b"\0")
        hashed.update(hashlib.sha256((source / relative).read_bytes()).digest())
    return hashed.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--digest":
        print(digest(Path(sys.argv[2])))
    elif len(sys.argv) == 3:
        print(pack(Path(sys.argv[1]), Path(sys.argv[2])))
    else:
        sys.exit(__doc__)
