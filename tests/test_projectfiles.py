"""spec.files: paths, sizes and references checked; no carried file can land outside its mount."""

from __future__ import annotations

import posixpath
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compose_operator.compose import load_project
from compose_operator.compose.projectfiles import (
    MAX_FILES,
    CarriedFiles,
    from_spec,
    normalize,
    pack,
    path_problem,
    project_file,
)
from compose_operator.errors import ComposeError, Problem
from compose_operator.render import plan
from compose_operator.render.projectfiles import file_key
from compose_operator.settings import Settings


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("agents.yaml", None),
        ("wiremock/mappings/hello.json", None),
        (".mcp.env", None),
        ("dir/.hidden/x", None),
        ("a..b/c", None),
        ("", "a path must not be empty"),
        ("/etc/passwd", "a path is relative to the project folder; it must not start with /"),
        ("../secret", "a path has no empty, '.' or '..' segments (write it as `dir/file`)"),
        ("a/../../b", "a path has no empty, '.' or '..' segments (write it as `dir/file`)"),
        ("./a", "a path has no empty, '.' or '..' segments (write it as `dir/file`)"),
        ("a//b", "a path has no empty, '.' or '..' segments (write it as `dir/file`)"),
        ("a/", "a path has no empty, '.' or '..' segments (write it as `dir/file`)"),
        ("..", "a path has no empty, '.' or '..' segments (write it as `dir/file`)"),
        ("a\\..\\b", "a path holds no control characters or backslashes"),
        ("a\x00b", "a path holds no control characters or backslashes"),
        ("x" * 513, "a path has at most 512 characters"),
    ],
)
def test_path_rules(path: str, problem: str | None) -> None:
    assert path_problem(path) == problem


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("", "./agents.yaml", "agents.yaml"),
        ("", "data/../x", "x"),
        ("", ".", "."),
        ("sub", "./x", "sub/x"),
        ("sub", "../x", "x"),
        ("sub", "../../x", "../x"),
        ("sub", "/abs", "/abs"),
        ("sub", "~/home", "~/home"),
    ],
)
def test_normalize_makes_paths_relative_to_the_project(base: str, path: str, expected: str) -> None:
    assert normalize(base, path) == expected


def test_from_spec_reads_inline_and_referenced_files() -> None:
    files = from_spec(
        [
            {"path": "agents.yaml", "content": "a: 1\n"},
            {"path": "run.sh", "content": "#!/bin/sh\n", "mode": 0o755},
            {"path": "Chinook.db", "configMapKeyRef": {"name": "chinook", "key": "db"}},
        ],
        {("chinook", "db"): b"\x00SQLite"},
    )
    assert files.get("agents.yaml") == project_file("agents.yaml", "a: 1\n")
    assert files.get("run.sh") == project_file("run.sh", "#!/bin/sh\n", mode=0o755)
    assert files.get("Chinook.db") == project_file(
        "Chinook.db", b"\x00SQLite", config_map=("chinook", "db")
    )
    assert [f.path for f in files.under(".")] == ["Chinook.db", "agents.yaml", "run.sh"]


def test_every_spec_files_problem_is_named() -> None:
    with pytest.raises(ComposeError) as caught:
        from_spec(
            [
                {"path": "../x", "content": ""},
                {"path": "a", "content": "1"},
                {"path": "a", "content": "2"},
                {"path": "b", "content": "1", "configMapKeyRef": {"name": "c", "key": "k"}},
                {"path": "c", "configMapKeyRef": {"name": "Not_A_Name", "key": "k"}},
                {"path": "d", "configMapKeyRef": {"name": "gone", "key": "k"}},
                {"path": "e", "content": "x", "mode": 0o1777},
                {"path": "f/g", "content": "x"},
                {"path": "f", "content": "x"},
                "not a mapping",
            ]
        )
    assert caught.value.messages == [
        "spec.files: ../x: a path has no empty, '.' or '..' segments (write it as `dir/file`)",
        "spec.files: a: listed twice",
        "spec.files: b: give exactly one of content and configMapKeyRef",
        "spec.files: c: configMapKeyRef.name must be a ConfigMap name",
        "spec.files: d: ConfigMap gone has no key k",
        "spec.files: e: mode must be a file mode from 0 to 0777 (511)",
        "spec.files: [9]: must be a mapping with path and content",
        "spec.files: f/g: f is a file, so it cannot be a folder",
    ]


def test_the_compose_file_and_inline_files_share_one_mebibyte() -> None:
    half = "x" * (512 << 10)
    from_spec([{"path": "a", "content": half}], compose_bytes=(512 << 10))
    with pytest.raises(ComposeError) as caught:
        from_spec([{"path": "a", "content": half}], compose_bytes=(512 << 10) + 1)
    assert caught.value.problems == (
        Problem(
            "",
            "spec.compose and the inline files hold 1048577 bytes; at most 1048576 (1 MiB) fit "
            "in a ComposeApp: keep large files in a ConfigMap of their own (configMapKeyRef)",
        ),
    )


def test_too_many_files_are_refused() -> None:
    entries = [{"path": f"f{i}", "content": ""} for i in range(MAX_FILES + 1)]
    with pytest.raises(ComposeError) as caught:
        from_spec(entries)
    assert caught.value.messages == ["spec.files: 513 files; at most 512 are accepted"]


def test_pack_moves_binary_and_large_files_to_configmaps_of_their_own() -> None:
    big = "y" * (300 << 10)
    found = [
        project_file("agents.yaml", "a: 1\n"),
        project_file("Chinook.db", b"\x00\x01"),
        project_file("big.txt", big),
        project_file("huge.bin", b"z" * ((1 << 20) + 1)),
    ]
    placed, problems = pack("chat", found, compose_bytes=100)
    assert {p: f.config_map for p, f in placed.items()} == {
        "Chinook.db": ("chat-file-chinook-db-0f367574", "Chinook.db"),
        "agents.yaml": None,
        "big.txt": ("chat-file-big-txt-a0442cd1", "big.txt"),
    }
    assert problems == [
        Problem(
            "huge.bin",
            "1048577 bytes; a project file must fit a ConfigMap (1 MiB): use a named volume "
            "for data",
        )
    ]


def test_pack_keeps_inline_files_within_the_budget_largest_out_first() -> None:
    files = [project_file(f"f{i}", "x" * (200 << 10)) for i in range(6)]
    placed, _ = pack("a", files, compose_bytes=0)
    inline = [p for p, f in placed.items() if f.config_map is None]
    assert sum(len(placed[p].content) for p in inline) <= 1 << 20
    assert len(inline) == 5


# --- hypothesis: no carried path escapes the folder it is mounted at ----------------------

SEGMENTS = st.sampled_from(["a", "b.txt", ".", "..", "", ".hidden", "a..b", "..a", "x\\y", " "])
PATHS = st.one_of(
    st.lists(SEGMENTS, min_size=1, max_size=6).map("/".join),
    st.text(alphabet="ab./\\\x00~-_", max_size=20),
)
TARGETS = st.sampled_from(["/mnt", "/app/data", "/docker-entrypoint-initdb.d"])


def _inside(target: str, relative: str) -> bool:
    joined = posixpath.normpath(posixpath.join(target, relative))
    return joined.startswith(target + "/") and ".." not in relative.split("/")


@settings(max_examples=400, deadline=None)
@given(paths=st.lists(PATHS, min_size=1, max_size=6), target=TARGETS)
def test_carried_files_never_land_outside_the_mounted_folder(paths: list[str], target: str) -> None:
    entries = [{"path": path, "content": "x"} for path in paths]
    try:
        files = from_spec(entries)
    except ComposeError:
        return  # refused as a whole: nothing is mounted
    if not files.files:
        return
    text = f"services:\n  app:\n    image: app\n    volumes: ['./:{target}:ro']\n"
    project = load_project(text, files=files)
    result = plan(project, app="p", namespace="ns", settings=Settings())
    deployment = next(o for o in result.objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (mount,) = pod["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == target
    assert "subPath" not in mount
    (volume,) = pod["volumes"]
    items = [i for s in volume["projected"]["sources"] for i in s["configMap"]["items"]]
    assert sorted(i["path"] for i in items) == sorted(files.files)
    assert all(_inside(target, item["path"]) for item in items)


@settings(max_examples=300, deadline=None)
@given(path=PATHS, base=st.sampled_from(["", "sub", "a/b"]))
def test_an_accepted_path_is_its_own_normal_form(path: str, base: str) -> None:
    """A path spec.files accepts is already normalised, so the loader and the mount agree on
    it; and normalising never turns a path that climbs out into one that looks inside."""
    if path_problem(path) is None:
        assert normalize("", path) == path
        assert _inside("/mnt", path)
    if path.startswith(("/", "~")):
        return
    climbed = normalize(base, path)
    depth = len([s for s in base.split("/") if s])
    escapes = posixpath.normpath(posixpath.join("/r/" + "/".join(["d"] * depth), path))
    if not escapes.startswith("/r/") and escapes != "/r":
        assert climbed.startswith("..")


def test_a_folder_mount_of_carried_files_keeps_subfolders() -> None:
    contents = {
        "wiremock/mappings/hello.json": "{}",
        "wiremock/mappings/deep/x.json": "[]",
        "wiremock/other.txt": "not below the mounted folder",
    }
    files = CarriedFiles({p: project_file(p, c) for p, c in contents.items()})
    text = "services:\n  mock:\n    image: m\n    volumes: ['./wiremock/mappings:/home/wm/m']\n"
    result = plan(load_project(text, files=files), app="p", namespace="ns", settings=Settings())
    deployment = next(o for o in result.objects if o["kind"] == "Deployment")
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["projected"] == {
        "sources": [
            {
                "configMap": {
                    "name": "p-files",
                    "items": [
                        {"key": file_key("wiremock/mappings/deep/x.json"), "path": "deep/x.json"},
                        {"key": file_key("wiremock/mappings/hello.json"), "path": "hello.json"},
                    ],
                }
            }
        ]
    }
    config_map = next(o for o in result.objects if o["kind"] == "ConfigMap")
    assert config_map["data"] == {
        file_key("wiremock/mappings/deep/x.json"): "[]",
        file_key("wiremock/mappings/hello.json"): "{}",
    }


def _cel_path_rule(path: str) -> bool:
    """The CRD's path rule (crd._PATH_RULE), evaluated clause by clause."""
    from compose_operator.crd import _PATH_RULE

    checks = {
        "startsWith": str.startswith,
        "endsWith": str.endswith,
        "contains": str.__contains__,
    }
    for clause in _PATH_RULE.split(" && "):
        call = re.fullmatch(r"(!?)self\.path\.(\w+)\('(.*)'\)", clause)
        if call is not None:
            negated, method, argument = call.groups()
            if checks[method](path, argument) == bool(negated):
                return False
            continue
        compared = re.fullmatch(r"self\.path != '(.*)'", clause)
        assert compared is not None, clause
        if path == compared.group(1):
            return False
    return True


@settings(max_examples=400, deadline=None)
@given(path=PATHS)
def test_the_crd_rule_admits_no_path_that_escapes(path: str) -> None:
    """The API server's CEL rule is a first gate (the webhook and the operator check the full
    rule): whatever it admits stays below the folder it is mounted at."""
    if _cel_path_rule(path) and path:
        assert _inside("/mnt", path)
