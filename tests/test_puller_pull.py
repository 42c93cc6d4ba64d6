"""pull_model against the in-process fake registry: files, idempotence, resume, indexes."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from compose_operator.puller import media
from compose_operator.puller.client import Policy
from compose_operator.puller.errors import (
    DigestMismatch,
    NotAModel,
    NotFound,
    PullError,
    RegistryUnreachable,
    UnsafePath,
)
from compose_operator.puller.pull import PullResult, pull_model
from compose_operator.puller.record import STATE_FILE
from tests.fake_registry import GGUF, OCI_MANIFEST, FakeRegistry, serve, sha256

FAST = Policy(timeout_seconds=5, attempts=3, backoff_seconds=0)
WEIGHTS = b"GGUF" + bytes(range(256)) * 64
LICENSE_TEXT = b"Apache-2.0\n"
TEMPLATE = b"{{ messages }}"


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with serve(FakeRegistry()) as registry:
        yield registry


def pull(
    fake: FakeRegistry,
    ref: str,
    dest: Path,
    *,
    docker_config: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> PullResult:
    """A quiet, fast-retrying pull from `fake` that reads no credentials from this machine's
    environment unless `environ` or `docker_config` names them."""
    return pull_model(
        f"{fake.host}/{ref}",
        dest,
        progress=io.StringIO(),
        policy=FAST,
        docker_config=docker_config,
        environ={} if environ is None else environ,
    )


def add_smollm(fake: FakeRegistry, tag: str = "latest") -> str:
    return fake.add_model(
        "ai/smollm2",
        tag,
        [
            (WEIGHTS, GGUF, None),
            (LICENSE_TEXT, media.LICENSE, None),
            (TEMPLATE, media.CHAT_TEMPLATE, None),
        ],
    )


def blob_gets(fake: FakeRegistry) -> int:
    return fake.count("GET", r"/blobs/")


def test_pulls_a_gguf_artifact_into_default_file_names(fake: FakeRegistry, tmp_path: Path) -> None:
    manifest_digest = add_smollm(fake)
    stream = io.StringIO()

    result = pull_model(f"{fake.host}/ai/smollm2", tmp_path, progress=stream, environ={})

    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS
    assert (tmp_path / "LICENSE").read_bytes() == LICENSE_TEXT
    assert (tmp_path / "template.jinja").read_bytes() == TEMPLATE
    assert result.reference == f"{fake.host}/ai/smollm2:latest"
    assert result.manifest_digest == manifest_digest
    assert result.format == "gguf"
    assert result.model_file == tmp_path / "model.gguf"
    assert [(f.path, f.digest, f.size, f.downloaded) for f in result.files] == [
        ("model.gguf", sha256(WEIGHTS), len(WEIGHTS), True),
        ("LICENSE", sha256(LICENSE_TEXT), len(LICENSE_TEXT), True),
        ("template.jinja", sha256(TEMPLATE), len(TEMPLATE), True),
    ]
    assert result.bytes_downloaded == len(WEIGHTS) + len(LICENSE_TEXT) + len(TEMPLATE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.gguf", "LICENSE", "template.jinja", STATE_FILE, ".compose-operator-pull.lock"]
    )
    last_line = stream.getvalue().splitlines()[-1]
    assert last_line.startswith(f"pulled {fake.host}/ai/smollm2:latest ({manifest_digest}) into")
    assert re.fullmatch(
        re.escape(f"{tmp_path}: 3 files, 16.0 KiB; downloaded 16.0 KiB (16413 bytes) in ")
        + r"\d+\.\d s",
        last_line.split(" into ", 1)[1],
    )


def test_a_second_pull_downloads_nothing(fake: FakeRegistry, tmp_path: Path) -> None:
    """A restarted pod with its volume intact must start without re-downloading the model."""
    add_smollm(fake)
    pull(fake, "ai/smollm2", tmp_path)
    assert blob_gets(fake) == 3
    fake.requests.clear()

    again = pull(fake, "ai/smollm2", tmp_path)

    assert blob_gets(fake) == 0
    assert fake.count("GET", r"/manifests/latest$") == 1
    assert again.bytes_downloaded == 0
    assert [f.downloaded for f in again.files] == [False, False, False]
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS


def test_a_pinned_reference_already_pulled_needs_no_request(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    digest = add_smollm(fake)
    pull(fake, f"ai/smollm2@{digest}", tmp_path)
    fake.requests.clear()

    again = pull(fake, f"ai/smollm2@{digest}", tmp_path)

    assert fake.requests == []
    assert again.manifest_digest == digest
    assert again.model_file == tmp_path / "model.gguf"


def test_files_left_without_a_record_are_verified_not_downloaded(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    add_smollm(fake)
    pull(fake, "ai/smollm2", tmp_path)
    (tmp_path / STATE_FILE).unlink()
    fake.requests.clear()

    again = pull(fake, "ai/smollm2", tmp_path)

    assert blob_gets(fake) == 0
    assert again.bytes_downloaded == 0


def test_a_changed_file_is_downloaded_again(fake: FakeRegistry, tmp_path: Path) -> None:
    add_smollm(fake)
    pull(fake, "ai/smollm2", tmp_path)
    (tmp_path / "model.gguf").write_bytes(b"GGUF damaged")
    fake.requests.clear()

    again = pull(fake, "ai/smollm2", tmp_path)

    assert fake.count("GET", r"/blobs/") == 1
    assert again.bytes_downloaded == len(WEIGHTS)
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS


def test_a_moved_tag_reuses_shared_layers_and_prunes_the_rest(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    add_smollm(fake)
    pull(fake, "ai/smollm2", tmp_path)
    new_weights = WEIGHTS + b"v2"
    fake.add_model(
        "ai/smollm2", "latest", [(new_weights, GGUF, None), (LICENSE_TEXT, media.LICENSE, None)]
    )
    fake.requests.clear()

    result = pull(fake, "ai/smollm2", tmp_path)

    assert (tmp_path / "model.gguf").read_bytes() == new_weights
    assert not (tmp_path / "template.jinja").exists()
    assert result.bytes_downloaded == len(new_weights)
    assert [r.path.rsplit("/", 1)[1] for r in fake.requests if "/blobs/" in r.path] == [
        sha256(new_weights)
    ]


def test_anonymous_bearer_token_flow(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.auth = "bearer"
    add_smollm(fake)

    pull(fake, "ai/smollm2", tmp_path)

    token_requests = [r for r in fake.requests if r.path.startswith("/token")]
    assert len(token_requests) == 1
    assert token_requests[0].path == "/token?scope=repository%3Aai%2Fsmollm2%3Apull&service=fake"
    assert "Authorization" not in token_requests[0].headers
    blob_auth = {r.headers.get("Authorization") for r in fake.requests if "/blobs/" in r.path}
    assert blob_auth == {f"Bearer {fake.token_for('repository:ai/smollm2:pull')}"}
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS


def write_docker_config(directory: Path, host: str, user: str, password: str) -> Path:
    encoded = __import__("base64").b64encode(f"{user}:{password}".encode()).decode()
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": {f"https://{host}": {"auth": encoded}}}))
    return path


def test_bearer_token_with_docker_config_credentials(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.auth, fake.users = "bearer", {"alice": "s3cret"}
    add_smollm(fake)
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    write_docker_config(config_dir, fake.host, "alice", "s3cret")

    pull(fake, "ai/smollm2", tmp_path / "models", environ={"DOCKER_CONFIG": str(config_dir)})

    token_request = next(r for r in fake.requests if r.path.startswith("/token"))
    assert token_request.headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"
    assert (tmp_path / "models" / "model.gguf").read_bytes() == WEIGHTS


def test_wrong_credentials_are_refused_without_printing_them(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.auth, fake.users = "bearer", {"alice": "s3cret"}
    add_smollm(fake)
    config = write_docker_config(tmp_path, fake.host, "alice", "wrong-password")

    with pytest.raises(PullError) as caught:
        pull(fake, "ai/smollm2", tmp_path / "models", docker_config=config)

    assert str(caught.value) == (
        f"registry {fake.host} token service refused the credentials of user 'alice' "
        "(UNAUTHORIZED: bad credentials)"
    )
    assert "wrong-password" not in str(caught.value)


def test_basic_auth_from_username_and_password(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.auth, fake.users = "basic", {"bob": "pw"}
    add_smollm(fake)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {fake.host: {"username": "bob", "password": "pw"}}}))

    pull(fake, "ai/smollm2", tmp_path / "models", docker_config=config)

    assert (tmp_path / "models" / "model.gguf").read_bytes() == WEIGHTS


def test_basic_auth_without_credentials_says_how_to_log_in(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.auth, fake.users = "basic", {"bob": "pw"}
    add_smollm(fake)

    with pytest.raises(PullError, match="requires a login; add credentials for it to the docker"):
        pull(fake, "ai/smollm2", tmp_path)


def test_blob_redirects_do_not_carry_the_token(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.auth, fake.redirect_blobs = "bearer", True
    add_smollm(fake)

    pull(fake, "ai/smollm2", tmp_path)

    cdn = [r for r in fake.requests if r.path.startswith("/cdn/")]
    assert len(cdn) == 3
    assert all("Authorization" not in r.headers for r in cdn)
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "nope/missing",
            "not found: manifest {host}/nope/missing:latest "
            "(NAME_UNKNOWN: repository name not known to registry)",
        ),
        (
            "ai/smollm2:9B",
            "not found: manifest {host}/ai/smollm2:9B (MANIFEST_UNKNOWN: manifest unknown)",
        ),
    ],
)
def test_unknown_repository_or_tag(
    fake: FakeRegistry, tmp_path: Path, ref: str, message: str
) -> None:
    add_smollm(fake)

    with pytest.raises(NotFound) as caught:
        pull(fake, ref, tmp_path)

    assert str(caught.value) == message.format(host=fake.host)


def test_a_container_image_is_not_a_model_artifact(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.add_model(
        "library/alpine",
        "latest",
        [(b"rootfs", "application/vnd.oci.image.layer.v1.tar+gzip", None)],
        config_media_type="application/vnd.oci.image.config.v1+json",
    )

    with pytest.raises(NotAModel) as caught:
        pull(fake, "library/alpine", tmp_path)

    assert str(caught.value) == (
        f"not a model artifact: {fake.host}/library/alpine:latest has config "
        "application/vnd.oci.image.config.v1+json and layers "
        "application/vnd.oci.image.layer.v1.tar+gzip; expected a weights layer such as "
        "application/vnd.docker.ai.gguf.v3 or application/vnd.docker.ai.safetensors"
    )


def test_a_corrupt_blob_is_refused_and_not_left_behind(fake: FakeRegistry, tmp_path: Path) -> None:
    add_smollm(fake)
    fake.corrupt.add(sha256(WEIGHTS))

    with pytest.raises(DigestMismatch) as caught:
        pull(fake, "ai/smollm2", tmp_path)

    assert str(caught.value).startswith(
        f"digest mismatch for blob {sha256(WEIGHTS)} (model.gguf) of "
        f"{fake.host}/ai/smollm2:latest: "
        f"expected {sha256(WEIGHTS)} ({len(WEIGHTS)} bytes), got sha256:"
    )
    assert not (tmp_path / "model.gguf").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_a_pinned_digest_must_match_the_manifest(fake: FakeRegistry, tmp_path: Path) -> None:
    add_smollm(fake)
    wrong = "sha256:" + "0" * 64
    fake.manifests[("ai/smollm2", wrong)] = fake.manifests[("ai/smollm2", "latest")]

    with pytest.raises(
        DigestMismatch,
        match=f"digest mismatch for manifest .*@{wrong}: expected {wrong}, got sha256:",
    ):
        pull(fake, f"ai/smollm2@{wrong}", tmp_path)


def test_server_errors_are_retried(fake: FakeRegistry, tmp_path: Path) -> None:
    add_smollm(fake)
    fake.failures["/v2/ai/smollm2/manifests/latest"] = [503, 502]
    fake.failures[f"/v2/ai/smollm2/blobs/{sha256(WEIGHTS)}"] = [500]

    pull(fake, "ai/smollm2", tmp_path)

    assert fake.count("GET", r"/manifests/latest$") == 3
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS


def test_persistent_server_errors_give_up(fake: FakeRegistry, tmp_path: Path) -> None:
    add_smollm(fake)
    fake.failures["/v2/ai/smollm2/manifests/latest"] = [503] * 5

    with pytest.raises(PullError) as caught:
        pull(fake, "ai/smollm2", tmp_path)

    assert str(caught.value) == (
        f"GET manifest {fake.host}/ai/smollm2:latest: registry {fake.host} answered "
        "UNAVAILABLE: injected failure"
    )
    assert fake.count("GET", r"/manifests/latest$") == 3


def test_connection_refused_names_the_registry(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(RegistryUnreachable) as caught:
        pull_model(
            f"127.0.0.1:{port}/ai/x", tmp_path, progress=io.StringIO(), policy=FAST, environ={}
        )

    assert str(caught.value) == (
        f"cannot reach registry 127.0.0.1:{port} at http://127.0.0.1:{port}: "
        "connection refused after 3 attempts"
    )


def test_an_interrupted_download_resumes_with_a_range_request(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    add_smollm(fake)
    fake.cut_once.add(sha256(WEIGHTS))

    result = pull(fake, "ai/smollm2", tmp_path)

    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS
    weights_requests = [r for r in fake.requests if r.path.endswith(sha256(WEIGHTS))]
    assert [r.headers.get("Range") for r in weights_requests] == [
        None,
        f"bytes={len(WEIGHTS) // 2}-",
    ]
    assert result.bytes_downloaded == len(WEIGHTS) + len(LICENSE_TEXT) + len(TEMPLATE)


def test_a_reset_connection_is_retried_not_taken_for_a_disk_error(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    weights = WEIGHTS * 64
    fake.add_model("ai/reset", "latest", [(weights, GGUF, None)])
    fake.reset_once.add(sha256(weights))
    stream = io.StringIO()

    pull_model(f"{fake.host}/ai/reset", tmp_path, progress=stream, policy=FAST, environ={})

    assert (tmp_path / "model.gguf").read_bytes() == weights
    ranges = [r.headers.get("Range") for r in fake.requests if "/blobs/" in r.path]
    assert len(ranges) == 2
    # The second request asks for a Range only if bytes arrived before the reset.
    assert "model.gguf: connection lost; resuming" in stream.getvalue().splitlines()


def test_the_registry_down_reuses_a_complete_earlier_pull(tmp_path: Path) -> None:
    """A model pod restarting while the registry is down still starts from its volume."""
    registry = FakeRegistry()
    with serve(registry):
        add_smollm(registry)
        first = pull(registry, "ai/smollm2", tmp_path)
    stream = io.StringIO()

    again = pull_model(
        f"{registry.host}/ai/smollm2", tmp_path, progress=stream, policy=FAST, environ={}
    )

    assert again.offline is True
    assert again.bytes_downloaded == 0
    assert again.manifest_digest == first.manifest_digest
    assert again.model_file == tmp_path / "model.gguf"
    assert stream.getvalue().startswith(
        f"warning: cannot reach registry {registry.host} at http://{registry.host}: "
        "connection refused after 3 attempts; using the complete earlier pull of "
        f"{registry.host}/ai/smollm2:latest\n"
    )


def test_the_registry_down_without_an_earlier_pull_fails(tmp_path: Path) -> None:
    registry = FakeRegistry()
    with serve(registry):
        pass

    with pytest.raises(RegistryUnreachable, match="connection refused after 3 attempts"):
        pull(registry, "ai/smollm2", tmp_path)


def index_of(*entries: dict[str, object]) -> dict[str, object]:
    return {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": list(entries)}


def entry(digest: str, size: int = 100, **extra: object) -> dict[str, object]:
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": size, **extra}


def test_an_index_resolves_to_its_model_manifest(fake: FakeRegistry, tmp_path: Path) -> None:
    image = fake.add_model(
        "ai/multi",
        None,
        [(b"rootfs", "application/vnd.oci.image.layer.v1.tar", None)],
        config_media_type="application/vnd.oci.image.config.v1+json",
    )
    model = fake.add_model("ai/multi", None, [(WEIGHTS, GGUF, None)])
    attestation = entry(image, annotations={"vnd.docker.reference.type": "attestation-manifest"})
    fake.add_manifest(
        "ai/multi", "latest", index_of(attestation, entry(image), entry(model)), media.OCI_INDEX
    )

    result = pull(fake, "ai/multi", tmp_path)

    assert result.manifest_digest == model
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS


def test_an_index_entry_with_the_model_artifact_type_is_chosen_directly(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    model = fake.add_model("ai/multi", None, [(WEIGHTS, GGUF, None)])
    other = fake.add_model("ai/multi", None, [(b"x", GGUF, None)])
    fake.add_manifest(
        "ai/multi",
        "latest",
        index_of(entry(other), entry(model, artifactType=media.MODEL_CONFIG_V01)),
        media.OCI_INDEX,
    )

    result = pull(fake, "ai/multi", tmp_path)

    assert result.manifest_digest == model
    assert fake.count("GET", rf"/manifests/{other}$") == 0


def test_annotated_names_are_used_and_model_gguf_points_at_the_weights(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.add_model(
        "ai/named",
        "latest",
        [
            (WEIGHTS, GGUF, {media.FILEPATH_ANNOTATION: "weights/smol-q4.gguf"}),
            (TEMPLATE, media.CHAT_TEMPLATE, {media.TITLE_ANNOTATION: "chat.jinja"}),
        ],
    )

    result = pull(fake, "ai/named", tmp_path)

    assert (tmp_path / "weights" / "smol-q4.gguf").read_bytes() == WEIGHTS
    assert (tmp_path / "chat.jinja").read_bytes() == TEMPLATE
    assert (tmp_path / "model.gguf").readlink() == Path("weights/smol-q4.gguf")
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS
    assert result.model_file == tmp_path / "model.gguf"


def test_an_unsafe_annotation_writes_nothing(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.add_model(
        "ai/evil", "latest", [(WEIGHTS, GGUF, {media.TITLE_ANNOTATION: "../escape.gguf"})]
    )
    dest = tmp_path / "models"

    with pytest.raises(
        UnsafePath, match=r"unsafe file name '../escape.gguf' in the artifact: contains '..'"
    ):
        pull(fake, "ai/evil", dest)

    assert not (tmp_path / "escape.gguf").exists()
    assert fake.count("GET", r"/blobs/") == 0


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def test_a_safetensors_artifact_unpacks_its_config_tar(fake: FakeRegistry, tmp_path: Path) -> None:
    config_tar = make_tar(
        [
            (file_member("config.json"), b'{"architectures": ["BertModel"]}'),
            (file_member("tokenizer/vocab.txt"), b"[PAD]\n"),
        ]
    )
    fake.add_model(
        "ai/minilm",
        "latest",
        [
            (b"safetensors-bytes", media.SAFETENSORS, None),
            (config_tar, media.VLLM_CONFIG_TAR, None),
        ],
    )

    result = pull(fake, "ai/minilm", tmp_path)

    assert result.format == "safetensors"
    assert result.model_file is None
    assert (tmp_path / "model.safetensors").read_bytes() == b"safetensors-bytes"
    assert (tmp_path / "config.json").read_bytes() == b'{"architectures": ["BertModel"]}'
    assert (tmp_path / "tokenizer" / "vocab.txt").read_bytes() == b"[PAD]\n"
    assert not (tmp_path / "model.gguf").exists()
    assert sorted(f.path for f in result.files) == [
        "config.json",
        "model.safetensors",
        "tokenizer/vocab.txt",
    ]
    fake.requests.clear()
    pull(fake, "ai/minilm", tmp_path)
    assert blob_gets(fake) == 0


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (
            file_member("../outside.json"),
            "unsafe file name '../outside.json' in the artifact: contains '..'",
        ),
        (
            file_member("/etc/cron.d/x"),
            "unsafe file name '/etc/cron.d/x' in the artifact: absolute path",
        ),
        (
            symlink("passwd", "/etc/passwd"),
            "archive member 'passwd' is a link (to '/etc/passwd'); a model archive may hold "
            "only files and directories",
        ),
        (
            symlink("sub/up", "../../x"),
            "archive member 'sub/up' is a link (to '../../x'); a model archive may hold only "
            "files and directories",
        ),
        (
            symlink("inside", "config.json"),
            "archive member 'inside' is a link (to 'config.json'); a model archive may hold "
            "only files and directories",
        ),
    ],
)
def test_an_unsafe_tar_member_is_refused(
    fake: FakeRegistry, tmp_path: Path, member: tarfile.TarInfo, message: str
) -> None:
    data = b"x" if member.isfile() else None
    evil_tar = make_tar([(file_member("config.json"), b"{}"), (member, data)])
    fake.add_model(
        "ai/evil", "latest", [(b"w", media.SAFETENSORS, None), (evil_tar, media.DIR_TAR, None)]
    )
    dest = tmp_path / "models"

    with pytest.raises(UnsafePath) as caught:
        pull(fake, "ai/evil", dest)

    assert str(caught.value) == message
    assert not (dest / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_sharded_weights_get_numbered_names(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.add_model("ai/big", "latest", [(b"GGUF-1", GGUF, None), (b"GGUF-2", GGUF, None)])
    stream = io.StringIO()

    pull_model(f"{fake.host}/ai/big", tmp_path, progress=stream, environ={})

    assert (tmp_path / "model-00001-of-00002.gguf").read_bytes() == b"GGUF-1"
    assert (tmp_path / "model-00002-of-00002.gguf").read_bytes() == b"GGUF-2"
    assert (tmp_path / "model.gguf").readlink() == Path("model-00001-of-00002.gguf")
    assert stream.getvalue().splitlines()[0] == (
        "warning: the weights are split into 2 GGUF files; llama.cpp finds the other parts "
        "only from the first part's own name (model-00001-of-00002.gguf), not through model.gguf"
    )


def test_state_records_what_was_written(fake: FakeRegistry, tmp_path: Path) -> None:
    digest = add_smollm(fake)

    pull(fake, "ai/smollm2", tmp_path)

    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["reference"] == f"{fake.host}/ai/smollm2:latest"
    assert state["manifest_digest"] == digest
    assert state["complete"] is True
    assert [(layer["digest"], layer["path"]) for layer in state["layers"]] == [
        (sha256(WEIGHTS), "model.gguf"),
        (sha256(LICENSE_TEXT), "LICENSE"),
        (sha256(TEMPLATE), "template.jinja"),
    ]
    assert hashlib.sha256((tmp_path / "model.gguf").read_bytes()).hexdigest() == sha256(WEIGHTS)[7:]


def test_an_archive_may_not_overwrite_a_layer_file(fake: FakeRegistry, tmp_path: Path) -> None:
    sneaky = make_tar([(file_member("model.safetensors"), b"replaced")])
    fake.add_model(
        "ai/sneaky",
        "latest",
        [(b"weights", media.SAFETENSORS, None), (sneaky, media.VLLM_CONFIG_TAR, None)],
    )

    with pytest.raises(PullError) as caught:
        pull(fake, "ai/sneaky", tmp_path)

    assert str(caught.value) == (
        "archive member 'model.safetensors' would overwrite the layer file model.safetensors"
    )
    assert (tmp_path / "model.safetensors").read_bytes() == b"weights"


def test_stale_partial_downloads_are_cleaned_up(fake: FakeRegistry, tmp_path: Path) -> None:
    add_smollm(fake)
    stale = tmp_path / (".compose-operator-partial-sha256-" + "f" * 64)
    stale.write_bytes(b"from a tag that moved")

    pull(fake, "ai/smollm2", tmp_path)

    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_concurrent_pulls_into_one_directory_download_once(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    """Two replicas sharing a volume: the lock makes the second wait, then reuse the files."""
    add_smollm(fake)
    results: list[PullResult] = []

    threads = [
        threading.Thread(target=lambda: results.append(pull(fake, "ai/smollm2", tmp_path)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert blob_gets(fake) == 3
    assert sorted(result.bytes_downloaded for result in results) == [
        0,
        len(WEIGHTS) + len(LICENSE_TEXT) + len(TEMPLATE),
    ]
    assert (tmp_path / "model.gguf").read_bytes() == WEIGHTS


def test_three_archive_layers_with_chained_links_write_nothing_outside(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    """Issue 12: each layer checked on its own, `a -> .`, then `a/b -> ..`, then `a/b/x` wrote
    x beside the destination (link targets were checked as text, per archive)."""
    layers = [
        make_tar([(symlink("a", "."), None)]),
        make_tar([(symlink("a/b", ".."), None)]),
        make_tar([(file_member("a/b/escaped.txt"), b"outside")]),
    ]
    fake.add_model(
        "ai/chain",
        "latest",
        [(b"w", media.SAFETENSORS, None), *((layer, media.DIR_TAR, None) for layer in layers)],
    )
    dest = tmp_path / "models"

    with pytest.raises(UnsafePath) as caught:
        pull(fake, "ai/chain", dest)

    assert "is a link" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
    assert not any(path.is_symlink() for path in dest.rglob("*"))


def test_writes_and_prunes_never_follow_a_link_already_in_the_destination(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    """A link left in the volume (an older puller, another writer on a shared claim) is never
    written through, and pruning never deletes through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep me")
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    nested = {media.FILEPATH_ANNOTATION: "sub/model.gguf"}
    fake.add_model("ai/nested", "latest", [(WEIGHTS, GGUF, nested)])

    with pytest.raises(UnsafePath) as caught:
        pull(fake, "ai/nested", dest)
    assert "sub is a link" in str(caught.value)
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]

    (dest / "sub").unlink()
    add_smollm(fake)
    pull(fake, "ai/smollm2", dest)
    state = json.loads((dest / STATE_FILE).read_text())
    entry = {"path": "sub/victim", "size": 7, "mtime_ns": 0}
    state["layers"].append({"digest": "sha256:0", "path": None, "files": [entry]})
    (dest / STATE_FILE).write_text(json.dumps(state))
    (dest / "sub").symlink_to(outside)
    add_smollm(fake, "v2")
    pull(fake, "ai/smollm2:v2", dest)
    assert (outside / "victim").read_bytes() == b"keep me"
