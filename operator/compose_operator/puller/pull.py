"""Pull a model artifact into a directory, verified, atomic and idempotent.

It runs as the init container of a model pod, writing into the volume the engine then reads
(`/models`): resolve the reference to a model manifest (through an image index if need be),
decide the files (`media`), fetch what the record of the last pull (`record`) does not already
vouch for (`layers`), point `model.gguf` at the weights, and remove what the artifact no longer
has. A restarted pod with its volume intact downloads nothing; with the registry down it
reuses a complete earlier pull of the same reference.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from compose_operator import references
from compose_operator.puller import auth, confined, media
from compose_operator.puller.client import DEFAULT_POLICY, Policy, RegistryClient
from compose_operator.puller.errors import (
    DigestMismatch,
    NotAModel,
    PullError,
    RegistryUnreachable,
    UnsafePath,
)
from compose_operator.puller.layers import LayerPuller, PulledFile, hasher_for
from compose_operator.puller.progress import Progress, human_bytes
from compose_operator.puller.record import LOCK_FILE, PARTIAL_PREFIX, PullRecord

MANIFEST_LIMIT_BYTES = 4 * 1024 * 1024
"""The distribution spec's minimum a registry must accept; more is not a manifest."""
INDEX_CANDIDATES = 16
"""How many entries of an image index are inspected for a model manifest."""


@dataclass(frozen=True)
class PullResult:
    reference: str
    manifest_digest: str
    """The model manifest's digest (the chosen entry when the reference names an index)."""
    format: str
    destination: Path
    model_file: Path | None
    """`DEST/model.gguf` for GGUF artifacts; None otherwise."""
    files: tuple[PulledFile, ...]
    bytes_downloaded: int
    seconds: float
    offline: bool = False
    """True when the registry was unreachable and an earlier complete pull was reused."""


def pull_model(
    reference: str,
    dest: Path,
    *,
    insecure: bool = False,
    docker_config: Path | None = None,
    progress: TextIO | None = None,
    policy: Policy = DEFAULT_POLICY,
    environ: Mapping[str, str] | None = None,
) -> PullResult:
    """Fetch the model artifact `reference` into `dest`; progress goes to stderr by default.

    Raises ValueError for a malformed reference and PullError (or a subclass naming the
    cause) when the pull fails.
    """
    ref = references.parse_reference(reference)
    started = time.monotonic()
    report = Progress(sys.stderr if progress is None else progress)
    dest.mkdir(parents=True, exist_ok=True)
    dest = confined.root(dest)
    with _locked(dest, report):
        previous = PullRecord.load(dest)
        if (
            ref.digest is not None
            and previous.matches(str(ref), ref.digest)
            and previous.intact(dest)
        ):
            return _reused(previous, dest, started, report, offline=False)
        env = os.environ if environ is None else environ
        credentials = auth.load_credentials(auth.config_path(docker_config, env), ref.registry)
        client = RegistryClient(
            ref.registry, insecure=insecure, credentials=credentials, policy=policy
        )
        try:
            top_digest, manifest_digest, manifest = _resolve_manifest(client, ref)
        except RegistryUnreachable as error:
            if previous.matches(str(ref), None) and previous.intact(dest):
                report.say(f"warning: {error}; using the complete earlier pull of {ref}")
                return _reused(previous, dest, started, report, offline=True)
            raise
        plan = media.plan_artifact(manifest, str(ref))
        for layer in plan.skipped:
            report.say(f"skipping layer {layer.digest} of unknown type {layer.media_type}")
        shards = sum(1 for file in plan.files if file.role is media.Role.GGUF)
        if shards > 1:
            report.say(
                f"warning: the weights are split into {shards} GGUF files; llama.cpp finds the "
                f"other parts only from the first part's own name ({plan.model_file}), not "
                f"through {media.MODEL_GGUF}"
            )
        record = PullRecord(str(ref), top_digest, manifest_digest, model_format=plan.format)
        puller = LayerPuller(client, ref.repository, str(ref), dest, report, policy)
        files: list[PulledFile] = []
        for planned in plan.files:
            files.append(puller.pull_file(planned, previous))
            record.record_file(planned, dest)
            record.save(dest)
        protected = {file.path for file in plan.files}
        if plan.model_file is not None:
            protected.add(media.MODEL_GGUF)
        for planned_archive in plan.archives:
            extracted = puller.pull_archive(planned_archive, previous, protected)
            files.extend(extracted)
            record.record_archive(planned_archive, [file.path for file in extracted], dest)
            record.save(dest)
        if plan.model_file is not None and plan.model_file != media.MODEL_GGUF:
            _link(dest / media.MODEL_GGUF, plan.model_file)
            record.model_link = media.MODEL_GGUF
        _prune(dest, previous, record)
        record.complete = True
        record.save(dest)
    result = PullResult(
        reference=str(ref),
        manifest_digest=manifest_digest,
        format=plan.format,
        destination=dest,
        model_file=dest / media.MODEL_GGUF if plan.model_file is not None else None,
        files=tuple(files),
        bytes_downloaded=puller.downloaded,
        seconds=time.monotonic() - started,
    )
    report.say(_summary(result))
    return result


def _reused(
    record: PullRecord, dest: Path, started: float, report: Progress, *, offline: bool
) -> PullResult:
    """The result of an earlier complete pull, when nothing needs (or can) be fetched."""
    gguf = record.model_format == media.Role.GGUF.value
    result = PullResult(
        reference=record.reference,
        manifest_digest=record.manifest_digest,
        format=record.model_format,
        destination=dest,
        model_file=dest / media.MODEL_GGUF if gguf else None,
        files=tuple(
            PulledFile(path, digest, size, media_type, downloaded=False)
            for path, digest, size, media_type in record.files()
        ),
        bytes_downloaded=0,
        seconds=time.monotonic() - started,
        offline=offline,
    )
    report.say(("reused: " if offline else "already present: ") + _summary(result))
    return result


def _summary(result: PullResult) -> str:
    total = sum(file.size for file in result.files)
    return (
        f"pulled {result.reference} ({result.manifest_digest}) into {result.destination}: "
        f"{len(result.files)} files, {human_bytes(total)}; downloaded "
        f"{human_bytes(result.bytes_downloaded)} ({result.bytes_downloaded} bytes) in "
        f"{result.seconds:.1f} s"
    )


@contextlib.contextmanager
def _locked(dest: Path, report: Progress) -> Iterator[None]:
    """One pull per destination at a time (two replicas may share a volume)."""
    with (dest / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.say(f"waiting for another pull into {dest} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _verify_bytes(body: bytes, digest: str, what: str) -> None:
    hasher, expected = hasher_for(digest)
    hasher.update(body)
    if hasher.hexdigest() != expected:
        raise DigestMismatch(
            f"digest mismatch for {what}: expected {digest}, "
            f"got {digest.partition(':')[0]}:{hasher.hexdigest()}"
        )


def _fetch_manifest(
    client: RegistryClient, repository: str, version: str, what: str
) -> tuple[bytes, str]:
    response = client.request(
        "GET",
        f"/v2/{repository}/manifests/{version}",
        scope=f"repository:{repository}:pull",
        what=what,
        headers={"Accept": ", ".join(media.MANIFEST_ACCEPT)},
    )
    with response:
        body = response.read(MANIFEST_LIMIT_BYTES + 1)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if len(body) > MANIFEST_LIMIT_BYTES:
        raise PullError(f"{what}: manifest larger than {human_bytes(MANIFEST_LIMIT_BYTES)}")
    return body, content_type


def _parse_manifest(body: bytes, content_type: str, what: str) -> tuple[dict[str, Any], str]:
    try:
        document = json.loads(body)
    except ValueError:
        raise PullError(f"{what}: the registry answered a manifest that is not JSON") from None
    if not isinstance(document, dict):
        raise PullError(f"{what}: the manifest is not a JSON object")
    media_type = document.get("mediaType")
    return document, media_type if isinstance(media_type, str) else content_type


def _digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _resolve_manifest(
    client: RegistryClient, ref: references.Reference
) -> tuple[str, str, dict[str, Any]]:
    """(digest the reference names, model manifest digest, model manifest)."""
    what = f"manifest {ref}"
    body, content_type = _fetch_manifest(client, ref.repository, ref.version, what)
    if ref.digest is not None:
        _verify_bytes(body, ref.digest, what)
    top_digest = ref.digest or _digest_of(body)
    document, media_type = _parse_manifest(body, content_type, what)
    if media_type not in media.INDEX_TYPES and "manifests" not in document:
        return top_digest, top_digest, document
    child_digest, child = _choose_from_index(client, ref, document)
    return top_digest, child_digest, child


def _choose_from_index(
    client: RegistryClient, ref: references.Reference, index: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The index entry that is a model: by artifactType, else by config type, else the first."""
    entries = [
        media.Descriptor.from_json(entry, f"{ref}: manifests[{position}]")
        for position, entry in enumerate(index.get("manifests") or [])
    ]
    raw_entries = list(index.get("manifests") or [])
    candidates = [
        (entry, raw)
        for entry, raw in zip(entries, raw_entries, strict=True)
        if entry.annotations.get("vnd.docker.reference.type") != "attestation-manifest"
        and entry.media_type not in media.INDEX_TYPES
    ]
    if not candidates:
        raise NotAModel(f"not a model artifact: {ref} is an index with no manifests")
    for entry, raw in candidates:
        artifact_type = raw.get("artifactType") if isinstance(raw, dict) else None
        if artifact_type in media.MODEL_CONFIG_TYPES or artifact_type == media.MODELPACK_ARTIFACT:
            return entry.digest, _fetch_child(client, ref, entry)
    first: tuple[str, dict[str, Any]] | None = None
    for entry, _ in candidates[:INDEX_CANDIDATES]:
        child = _fetch_child(client, ref, entry)
        config = child.get("config")
        if isinstance(config, dict) and config.get("mediaType") in media.MODEL_CONFIG_TYPES:
            return entry.digest, child
        first = first or (entry.digest, child)
    assert first is not None
    return first


def _fetch_child(
    client: RegistryClient, ref: references.Reference, entry: media.Descriptor
) -> dict[str, Any]:
    what = f"manifest {ref.registry}/{ref.repository}@{entry.digest}"
    body, content_type = _fetch_manifest(client, ref.repository, entry.digest, what)
    _verify_bytes(body, entry.digest, what)
    document, _ = _parse_manifest(body, content_type, what)
    return document


def _link(link: Path, target: str) -> None:
    """Point `link` at `target` (relative), replacing whatever was there atomically."""
    if link.is_symlink() and str(link.readlink()) == target:
        return
    if link.is_dir() and not link.is_symlink():
        raise PullError(f"{link.name}: a directory is in the way")
    temporary = link.with_name(f"{PARTIAL_PREFIX}link")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    temporary.replace(link)


def _prune(dest: Path, previous: PullRecord, current: PullRecord) -> None:
    """Remove what an earlier pull wrote that this artifact no longer has, and stale partials."""
    keep = current.paths()
    stale = previous.paths() - keep
    if previous.model_link and current.model_link is None and previous.model_link not in keep:
        stale.add(previous.model_link)
    for path in sorted(stale):
        with contextlib.suppress(UnsafePath):  # behind a link: never deleted through it
            confined.path(dest, path).unlink(missing_ok=True)
    for leftover in dest.glob(f"{PARTIAL_PREFIX}*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
