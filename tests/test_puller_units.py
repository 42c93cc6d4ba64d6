"""The puller's pure parts (naming, paths, auth parsing, URLs) and its CLI exit codes."""

from __future__ import annotations

import argparse
import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compose_operator.puller import auth, cli, media
from compose_operator.puller.client import Policy, RegistryClient, base_url
from compose_operator.puller.errors import NotAModel, PullError, RegistryUnreachable, UnsafePath
from compose_operator.puller.progress import MIB, Progress
from tests.fake_registry import GGUF, FakeRegistry, serve

REF = "docker.io/ai/x:latest"


def layer(
    media_type: str, digest: str = "sha256:" + "a" * 64, **annotations: str
) -> dict[str, Any]:
    value: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": 1}
    if annotations:
        value["annotations"] = {key.replace("_", "."): v for key, v in annotations.items()}
    return value


def manifest(*layers: dict[str, Any]) -> dict[str, Any]:
    config = {"mediaType": media.MODEL_CONFIG_V01, "digest": "sha256:" + "c" * 64, "size": 2}
    return {"schemaVersion": 2, "config": config, "layers": list(layers)}


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


@pytest.mark.parametrize(
    ("registry", "insecure", "url"),
    [
        ("docker.io", False, "https://registry-1.docker.io"),
        ("ghcr.io", False, "https://ghcr.io"),
        ("registry.example:5000", False, "https://registry.example:5000"),
        ("registry.example:5000", True, "http://registry.example:5000"),
        ("localhost:5000", False, "http://localhost:5000"),
        ("127.0.0.1:5000", False, "http://127.0.0.1:5000"),
        ("[::1]:5000", False, "http://[::1]:5000"),
    ],
)
def test_plain_http_only_for_loopback_or_insecure(registry: str, insecure: bool, url: str) -> None:
    assert base_url(registry, insecure=insecure) == url


def test_default_names_follow_docker_model_runner() -> None:
    plan = media.plan_artifact(
        manifest(
            layer(media.GGUF, digest(1)),
            layer(media.LICENSE, digest(2)),
            layer(media.LICENSE, digest(3)),
            layer(media.MMPROJ, digest(4)),
            layer(media.CHAT_TEMPLATE, digest(5)),
            layer("application/vnd.example.unknown", digest(6)),
        ),
        REF,
    )

    assert [(f.path, f.layer.digest) for f in plan.files] == [
        ("model.gguf", digest(1)),
        ("LICENSE", digest(2)),
        ("LICENSE-2", digest(3)),
        ("model.mmproj", digest(4)),
        ("template.jinja", digest(5)),
    ]
    assert [s.digest for s in plan.skipped] == [digest(6)]
    assert plan.format == "gguf"
    assert plan.model_file == "model.gguf"


def test_modelpack_raw_weights_are_typed_by_their_file_name() -> None:
    plan = media.plan_artifact(
        manifest(
            layer(media.MODELPACK_WEIGHT_RAW, digest(1), org_cncf_model_filepath="qwen-q4.gguf"),
            layer(
                "application/vnd.cncf.model.weight.config.v1.raw",
                digest(2),
                org_cncf_model_filepath="chat_template.jinja",
            ),
        ),
        REF,
    )

    assert [(f.path, f.role) for f in plan.files] == [
        ("qwen-q4.gguf", media.Role.GGUF),
        ("chat_template.jinja", media.Role.FILE),
    ]
    assert plan.model_file == "qwen-q4.gguf"


def test_two_layers_for_one_file_are_refused() -> None:
    with pytest.raises(PullError) as caught:
        media.plan_artifact(
            manifest(
                layer(media.GGUF, digest(1), org_opencontainers_image_title="w.gguf"),
                layer(media.LICENSE, digest(2), org_opencontainers_image_title="w.gguf"),
            ),
            REF,
        )
    assert (
        str(caught.value) == f"two layers ({digest(1)} and {digest(2)}) both want the file w.gguf"
    )


def test_a_layer_named_model_gguf_that_is_not_the_weights_is_refused() -> None:
    with pytest.raises(
        PullError, match=r"is named model\.gguf but is not the weights file a\.gguf"
    ):
        media.plan_artifact(
            manifest(
                layer(media.GGUF, digest(1), org_opencontainers_image_title="a.gguf"),
                layer(media.GGUF, digest(2), org_opencontainers_image_title="model.gguf"),
            ),
            REF,
        )


def test_a_manifest_without_weights_is_not_a_model() -> None:
    with pytest.raises(NotAModel) as caught:
        media.plan_artifact(manifest(layer(media.LICENSE)), REF)
    assert str(caught.value).startswith(
        f"not a model artifact: {REF} has config {media.MODEL_CONFIG_V01} and layers "
        f"{media.LICENSE}; expected a weights layer"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.gguf", "model.gguf"),
        ("./sub//dir/file.json", "sub/dir/file.json"),
        ("a/./b", "a/b"),
    ],
)
def test_safe_relative_paths(name: str, expected: str) -> None:
    assert media.safe_relative_path(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a\\..\\x",
        "nul\0byte",
        ".",
        ".compose-operator-pull.json",
    ],
)
def test_unsafe_paths_are_refused(name: str) -> None:
    with pytest.raises(UnsafePath):
        media.safe_relative_path(name)


def test_challenge_parsing() -> None:
    challenge = auth.parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:ai/smollm2:pull"'
    )
    assert challenge == auth.Challenge(
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:ai/smollm2:pull",
        },
    )
    assert auth.parse_challenge('Basic realm="x"') == auth.Challenge("basic", {"realm": "x"})
    assert auth.parse_challenge(None) is None


def write_config(path: Path, auths: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"auths": auths}))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_hub_credentials_are_found_under_the_legacy_key(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.json",
        {
            "https://index.docker.io/v1/": {"auth": b64("hubuser:hubtoken")},
            "ghcr.io": {"auth": b64("gh:ghtoken")},
        },
    )
    assert auth.load_credentials(config, "docker.io") == auth.Credentials("hubuser", "hubtoken")
    assert auth.load_credentials(config, "ghcr.io") == auth.Credentials("gh", "ghtoken")
    assert auth.load_credentials(config, "quay.io") is None
    assert auth.load_credentials(tmp_path / "absent.json", "docker.io") is None


def test_a_malformed_auth_entry_is_an_error_that_hides_the_value(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", {"ghcr.io": {"auth": "bm9jb2xvbg=="}})
    with pytest.raises(PullError) as caught:
        auth.load_credentials(config, "ghcr.io")
    assert str(caught.value) == (
        f"docker config {config}: auths.ghcr.io.auth is not base64 of username:password"
    )


def test_credentials_never_show_their_password() -> None:
    assert "s3cret" not in repr(auth.Credentials("alice", "s3cret"))


def test_a_mounted_pull_secret_directory_is_read(tmp_path: Path) -> None:
    secret = write_config(tmp_path / ".dockerconfigjson", {"ghcr.io": {"auth": b64("u:p")}})

    path = auth.config_path(None, {"DOCKER_CONFIG": str(tmp_path)})

    assert path == secret
    assert auth.load_credentials(path, "ghcr.io") == auth.Credentials("u", "p")


def test_config_path_precedence(tmp_path: Path) -> None:
    assert auth.config_path(tmp_path, {}) == tmp_path / "config.json"
    assert auth.config_path(tmp_path / "c.json", {"DOCKER_CONFIG": "/x"}) == tmp_path / "c.json"
    assert auth.config_path(None, {"DOCKER_CONFIG": "d", "HOME": "h"}) == Path("d/config.json")
    assert auth.config_path(None, {"HOME": "h"}) == Path("h/.docker/config.json")


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with serve(FakeRegistry()) as registry:
        yield registry


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", "nonexistent-home")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.main(parser.parse_args(argv))


def test_cli_exit_codes(
    fake: FakeRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.add_model("ai/x", "latest", [(b"GGUF", GGUF, None)])

    assert run_cli([f"{fake.host}/ai/x", "--dest", str(tmp_path)], monkeypatch) == 0
    assert (tmp_path / "model.gguf").read_bytes() == b"GGUF"
    capsys.readouterr()

    assert run_cli([f"{fake.host}/ai/missing", "--dest", str(tmp_path)], monkeypatch) == 1
    assert capsys.readouterr().err == (
        f"compose-operator pull-model: error: not found: manifest {fake.host}/ai/missing:latest "
        "(NAME_UNKNOWN: repository name not known to registry)\n"
    )

    assert run_cli(["Bad/Ref", "--dest", str(tmp_path)], monkeypatch) == 2
    assert capsys.readouterr().err.startswith("compose-operator pull-model: 'Bad/Ref': repository")


def test_tls_to_a_plain_http_registry_explains_itself(fake: FakeRegistry) -> None:
    client = RegistryClient(fake.host, policy=Policy(timeout_seconds=5, attempts=1))
    client.base_url = f"https://{fake.host}"

    with pytest.raises(RegistryUnreachable) as caught:
        client.request("GET", "/v2/", scope="registry:catalog:*", what="the API root")

    assert str(caught.value).startswith(
        f"TLS handshake with registry {fake.host} at https://{fake.host} failed: "
    )
    assert str(caught.value).endswith(
        "; it seems to speak plain HTTP (pass --insecure if that is intended)"
    )


def test_progress_is_throttled() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, interval=5.0, clock=lambda: now[0])

    progress.start("model.gguf", 4 * MIB)
    for second in range(1, 12):
        now[0] = float(second)
        progress.advance(MIB // 4)
    progress.finish()

    assert stream.getvalue().splitlines() == [
        "model.gguf: downloading 4.0 MiB",
        "model.gguf: 1.2 MiB / 4.0 MiB (31%)",
        "model.gguf: 2.5 MiB / 4.0 MiB (62%)",
        "model.gguf: 2.8 MiB / 4.0 MiB (68%)",
    ]


def test_confined_paths_never_pass_through_a_link(tmp_path: Path) -> None:
    from compose_operator.puller import confined

    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    assert confined.path(tmp_path, "dir/new/deeper") == tmp_path / "dir" / "new" / "deeper"
    assert confined.path(tmp_path, "link") == tmp_path / "link", "the last part may be a link"
    for bad, why in (
        ("link/x", "link is a link"),
        ("file/x", "file is not a directory"),
        ("../x", "not a path inside"),
        ("/etc/x", "not a path inside"),
    ):
        with pytest.raises(UnsafePath, match=why):
            confined.path(tmp_path, bad)
    assert confined.root(tmp_path / "link") == (tmp_path / "dir").resolve()
