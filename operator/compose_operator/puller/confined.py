"""Paths inside the destination that never pass through a link.

Every file the puller writes, renames or deletes is named relative to the destination (whose
real path is taken once). A link in the way, whoever left it there (an older puller, another
writer on a shared volume), could send a write or a delete anywhere the pod can reach: each
directory on the way is checked with `lstat`, and a link or a non-directory is refused. Only
the puller writes into the destination while it holds the pull lock, so nothing changes
between the check and the use.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from compose_operator.puller.errors import UnsafePath


def root(dest: Path) -> Path:
    """The destination's real path: a link naming it (a mount path) is resolved once."""
    return Path(os.path.realpath(dest))


def path(dest: Path, relative: str | PurePosixPath) -> Path:
    """`dest / relative`, refused when a directory on the way is a link or not a directory.

    The last component itself may be a link (it is replaced or removed, never followed).
    """
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise UnsafePath(f"{relative} is not a path inside the destination")
    current = dest
    for part in parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # nothing exists below: no link can be in the way
        if stat.S_ISLNK(mode):
            raise UnsafePath(f"{current.relative_to(dest)} is a link; the puller never follows one")
        if not stat.S_ISDIR(mode):
            raise UnsafePath(f"{current.relative_to(dest)} is not a directory")
    return dest.joinpath(*parts)
