"""A project folder on disk, as render and convert read it: bounded, and never outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from compose_operator.errors import ComposeError
from compose_operator.projectdir import ProjectDir


def test_files_and_folders_are_read_once_with_their_mode(tmp_path: Path) -> None:
    (tmp_path / "init" / "lib").mkdir(parents=True)
    (tmp_path / "init" / "01.sh").write_text("#!/bin/sh\n")
    (tmp_path / "init" / "01.sh").chmod(0o755)
    (tmp_path / "init" / "lib" / "x.js").write_text("x")
    (tmp_path / "db.bin").write_bytes(b"\xff\x00")
    project = ProjectDir(tmp_path)

    assert [(f.path, f.mode) for f in project.under("init")] == [
        ("init/01.sh", 0o755),
        ("init/lib/x.js", None),
    ]
    binary = project.get("db.bin")
    assert binary is not None and binary.content == b"\xff\x00"
    assert project.get("missing.txt") is None
    assert project.get("../escape") is None
    assert project.under("nowhere") == ()
    assert sorted(project.read) == ["db.bin", "init/01.sh", "init/lib/x.js"]


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "project"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    with pytest.raises(ComposeError) as caught:
        ProjectDir(root).get("link.txt")
    assert caught.value.messages == [
        f"link.txt: a symlink leading out of the project folder ({outside})"
    ]


def test_a_file_no_configmap_can_hold_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.db").write_bytes(b"\x00" * ((1 << 20) + 1))
    with pytest.raises(ComposeError) as caught:
        ProjectDir(tmp_path).under("data")
    assert caught.value.messages == [
        "data/big.db: 1048577 bytes; a project file must fit a ConfigMap (1 MiB): use a named "
        "volume for data"
    ]
