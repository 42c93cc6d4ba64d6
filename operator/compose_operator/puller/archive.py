"""Unpack a tar layer (vLLM config, a model directory) without trusting its member names.

Every member is checked before anything is written: no absolute paths, no `..`, no links
(a model needs none, and links chained across layers can point anywhere), no devices or
FIFOs, nothing under our reserved names. The archive is unpacked into a staging directory
first (with tarfile's `data` filter as a second guard) and each file is then renamed into
place through `confined` paths, so a failed unpack never leaves a half-written file where an
engine would read it, and nothing is ever written through a link.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Set
from pathlib import Path

from compose_operator.puller import confined
from compose_operator.puller.errors import PullError, UnsafePath
from compose_operator.puller.media import safe_relative_path


def _check_member(member: tarfile.TarInfo, protected: Set[str]) -> None:
    name = safe_relative_path(member.name)
    if name in protected:
        raise PullError(f"archive member {member.name!r} would overwrite the layer file {name}")
    if member.isfile() or member.isdir():
        return
    if member.issym() or member.islnk():
        raise UnsafePath(
            f"archive member {member.name!r} is a link (to {member.linkname!r}); a model "
            "archive may hold only files and directories"
        )
    raise UnsafePath(f"unsafe member {member.name!r} in the archive: not a file or directory")


def extract(
    archive: Path, destination: Path, staging: Path, protected: Set[str] = frozenset()
) -> list[str]:
    """Unpack `archive` into `destination`; return the relative paths of the files written.

    `staging` must be an empty or absent directory on the same file system as `destination`;
    `protected` names files the archive may not replace (the artifact's other layers).
    """
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        try:
            with tarfile.open(archive, mode="r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, protected)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:  # Python < 3.11.4: our own checks above are the guard.
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, EOFError) as error:
            raise PullError(f"cannot unpack archive layer: {error}") from None
        return _move_into_place(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, destination: Path) -> list[str]:
    written: list[str] = []
    for root, directories, files in os.walk(staging):
        relative_root = Path(root).relative_to(staging)
        for directory in directories:
            target = confined.path(destination, (relative_root / directory).as_posix())
            if target.is_symlink():
                raise UnsafePath(f"{relative_root / directory} is a link; never followed")
            target.mkdir(exist_ok=True)
        for file in files:
            relative = relative_root / file
            target = confined.path(destination, relative.as_posix())
            if target.is_dir() and not target.is_symlink():
                raise PullError(f"archive file {relative} would replace a directory")
            (Path(root) / file).replace(target)
            written.append(relative.as_posix())
    return sorted(written)
