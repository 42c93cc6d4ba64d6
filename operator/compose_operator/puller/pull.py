"""Pull a model artifact into a directory, verified, atomic and idempotent.

It runs as the init container of a model pod, writing into the volume the engine then reads
(`/models`). A restarted pod with the volume intact must start at once, so the puller keeps a
small record of what it wrote (`.compose-operator-pull.json`): a file whose size and mtime
match the record is trusted without re-reading gigabytes, and an interrupted download resumes
from its partial file with an HTTP Range request. Every blob is hashed while it streams and
renamed into place only when its digest matches.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from compose_operator import references
from compose_operator.puller import archive, auth, media
from compose_operator.puller.client import DEFAULT_POLICY, Policy, RegistryClient
from compose_operator.puller.errors import (
    DigestMismatch,
    NotAModel,
    PullError,
    RegistryUnreachable,
)
from compose_operator.puller.progress import Progress, human_bytes

STATE_FILE = ".compose-operator-pull.json"
LOCK_FILE = ".compose-operator-pull.lock"
PARTIAL_PREFIX = ".compose-operator-partial-"
STATE_VERSION = 1
CHUNK_BYTES = 1024 * 1024
MANIFEST_LIMIT_BYTES = 4 * 1024 * 1024
"""The distribution spec's minimum a registry must accept; more is not a manifest."""
INDEX_CANDIDATES = 16
"""How many entries of an image index are inspected for a model manifest."""
SUPPORTED_DIGESTS = ("sha256", "sha512")


@dataclass(frozen=True)
class PulledFile:
    path: str
    """Relative to the destination; for an unpacked archive, one of its files."""
    digest: str
    """The layer's digest (for an archive file: the archive's)."""
    size: int
    media_type: str
    downloaded: bool
    """False when the file was already there from an earlier pull."""


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
    with _locked(dest, report):
        previous = _State.load(dest)
        if (
            ref.digest is not None
            and previous.matches(str(ref), ref.digest)
            and previous.intact(dest)
        ):
            return previous.result(dest, started, report, offline=False, note="already present")
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
                return previous.result(dest, started, report, offline=True, note="reused")
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
        state = _State(str(ref), top_digest, manifest_digest, model_format=plan.format)
        puller = _LayerPuller(client, ref.repository, str(ref), dest, report, policy)
        files: list[PulledFile] = []
        for planned in plan.files:
            files.append(puller.pull_file(planned, previous))
            state.record_file(planned, dest)
            state.save(dest)
        protected = {file.path for file in plan.files}
        if plan.model_file is not None:
            protected.add(media.MODEL_GGUF)
        for planned_archive in plan.archives:
            extracted = puller.pull_archive(planned_archive, previous, protected)
            files.extend(extracted)
            state.record_archive(planned_archive, [file.path for file in extracted], dest)
            state.save(dest)
        if plan.model_file is not None and plan.model_file != media.MODEL_GGUF:
            _link(dest / media.MODEL_GGUF, plan.model_file)
            state.model_link = media.MODEL_GGUF
        _prune(dest, previous, state)
        state.complete = True
        state.save(dest)
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


def _hasher(digest: str) -> tuple[Any, str]:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in SUPPORTED_DIGESTS or not expected:
        raise PullError(f"unsupported digest {digest!r} (expected sha256:<hex>)")
    return hashlib.new(algorithm), expected


def _verify_bytes(body: bytes, digest: str, what: str) -> None:
    hasher, expected = _hasher(digest)
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


class _LayerPuller:
    """Downloads layers of one repository into the destination, counting bytes."""

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        reference: str,
        dest: Path,
        report: Progress,
        policy: Policy,
    ) -> None:
        self.client = client
        self.repository = repository
        self.reference = reference
        self.dest = dest
        self.report = report
        self.policy = policy
        self.downloaded = 0

    def pull_file(self, planned: media.PlannedFile, previous: _State) -> PulledFile:
        layer = planned.layer
        target = self.dest / planned.path
        present = previous.recorded_file(planned, self.dest) or self._verified_in_place(
            target, layer
        )
        if present:
            self.report.say(f"{planned.path}: already present ({human_bytes(layer.size)})")
        else:
            partial = self._partial(layer)
            self._download(layer, partial, planned.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise PullError(f"{planned.path}: a directory is in the way")
            partial.replace(target)
        return PulledFile(planned.path, layer.digest, layer.size, layer.media_type, not present)

    def pull_archive(
        self, planned: media.PlannedArchive, previous: _State, protected: Set[str]
    ) -> list[PulledFile]:
        layer = planned.layer
        recorded = previous.recorded_archive(layer.digest, self.dest)
        if recorded is not None:
            self.report.say(f"archive {layer.digest}: already unpacked ({len(recorded)} files)")
            return [self._archive_file(path, layer, downloaded=False) for path in recorded]
        partial = self._partial(layer)
        self._download(layer, partial, f"archive {layer.digest}")
        staging = self.dest / f"{PARTIAL_PREFIX}{layer.digest.partition(':')[2][:16]}.d"
        try:
            written = archive.extract(partial, self.dest, staging, protected)
        finally:
            partial.unlink(missing_ok=True)
        self.report.say(f"archive {layer.digest}: unpacked {len(written)} files")
        return [self._archive_file(path, layer, downloaded=True) for path in written]

    def _archive_file(self, path: str, layer: media.Descriptor, *, downloaded: bool) -> PulledFile:
        size = (self.dest / path).lstat().st_size
        return PulledFile(path, layer.digest, size, layer.media_type, downloaded)

    def _partial(self, layer: media.Descriptor) -> Path:
        return self.dest / f"{PARTIAL_PREFIX}{layer.digest.replace(':', '-')}"

    def _verified_in_place(self, target: Path, layer: media.Descriptor) -> bool:
        """A file left by an earlier pull without a record (e.g. the record was lost)."""
        if target.is_symlink() or not target.is_file() or target.stat().st_size != layer.size:
            return False
        hasher, expected = _hasher(layer.digest)
        with target.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                hasher.update(chunk)
        return bool(hasher.hexdigest() == expected)

    def _download(self, layer: media.Descriptor, partial: Path, name: str) -> None:
        """Stream the blob into `partial`, resuming it, and verify size and digest."""
        what = f"blob {layer.digest} ({name}) of {self.reference}"
        delay = self.policy.backoff_seconds
        for attempt in range(1, self.policy.attempts + 1):
            offset, hasher = self._resume_point(layer, partial)
            if attempt == 1:
                self.report.start(name, layer.size, offset)
            if offset >= layer.size:
                break
            try:
                offset, hasher = self._stream(layer, partial, offset, hasher, what)
                break
            except (OSError, http.client.HTTPException) as error:
                if attempt == self.policy.attempts:
                    raise RegistryUnreachable(
                        f"download of {what} kept failing ({error or type(error).__name__}) "
                        f"after {attempt} attempts"
                    ) from None
                self.report.say(f"{name}: connection lost; resuming")
                time.sleep(delay)
                delay *= 2
        self.report.finish()
        if offset != layer.size or hasher.hexdigest() != layer.digest.partition(":")[2]:
            partial.unlink(missing_ok=True)
            raise DigestMismatch(
                f"digest mismatch for {what}: expected {layer.digest} ({layer.size} bytes), "
                f"got {layer.digest.partition(':')[0]}:{hasher.hexdigest()} ({offset} bytes)"
            )

    @staticmethod
    def _resume_point(layer: media.Descriptor, partial: Path) -> tuple[int, Any]:
        """How much of the blob an earlier attempt left, and the hash of those bytes."""
        hasher, _ = _hasher(layer.digest)
        if not partial.exists() or partial.stat().st_size > layer.size:
            partial.write_bytes(b"")
            return 0, hasher
        offset = 0
        with partial.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                hasher.update(chunk)
                offset += len(chunk)
        return offset, hasher

    def _stream(
        self, layer: media.Descriptor, partial: Path, offset: int, hasher: Any, what: str
    ) -> tuple[int, Any]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.client.request(
            "GET",
            f"/v2/{self.repository}/blobs/{layer.digest}",
            scope=f"repository:{self.repository}:pull",
            what=what,
            headers=headers,
        )
        with response:
            if offset and response.status != http.HTTPStatus.PARTIAL_CONTENT:
                hasher, _ = _hasher(layer.digest)
                offset = 0
            with _writing(partial, append=offset > 0) as write:
                while chunk := response.read(CHUNK_BYTES):
                    if offset + len(chunk) > layer.size:
                        raise DigestMismatch(
                            f"{what}: the registry sent more than the {layer.size} bytes "
                            "the manifest promises"
                        )
                    write(chunk)
                    hasher.update(chunk)
                    offset += len(chunk)
                    self.downloaded += len(chunk)
                    self.report.advance(len(chunk))
        if offset < layer.size:
            # http.client ends a body cut short with b"" rather than an error.
            raise http.client.IncompleteRead(b"", layer.size - offset)
        return offset, hasher


@contextlib.contextmanager
def _writing(path: Path, *, append: bool) -> Iterator[Callable[[bytes], None]]:
    """A blob file, durable on close. A disk error (full, read-only) becomes a PullError,
    so it is not mistaken for a dropped connection and retried; network errors raised by the
    caller pass through untouched."""

    def failed(error: OSError) -> PullError:
        return PullError(f"cannot write {path}: {error.strerror or error}")

    try:
        handle = path.open("ab" if append else "wb")
    except OSError as error:
        raise failed(error) from None

    def write(chunk: bytes) -> None:
        try:
            handle.write(chunk)
        except OSError as error:
            raise failed(error) from None

    with handle:
        yield write
        try:
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as error:
            raise failed(error) from None


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


def _prune(dest: Path, previous: _State, current: _State) -> None:
    """Remove what an earlier pull wrote that this artifact no longer has, and stale partials."""
    keep = current.paths()
    for path in previous.paths() - keep:
        (dest / path).unlink(missing_ok=True)
    if previous.model_link and current.model_link is None and previous.model_link not in keep:
        (dest / previous.model_link).unlink(missing_ok=True)
    for leftover in dest.glob(f"{PARTIAL_PREFIX}*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()


class _State:
    """What the last pull into a destination wrote, so the next one can skip it."""

    def __init__(
        self,
        reference: str,
        digest: str,
        manifest_digest: str,
        *,
        model_format: str = "",
        layers: Sequence[Mapping[str, Any]] = (),
        model_link: str | None = None,
        complete: bool = False,
    ) -> None:
        self.reference = reference
        self.digest = digest
        self.manifest_digest = manifest_digest
        self.model_format = model_format
        self.layers: list[Mapping[str, Any]] = list(layers)
        self.model_link = model_link
        self.complete = complete

    @classmethod
    def load(cls, dest: Path) -> _State:
        try:
            document = json.loads((dest / STATE_FILE).read_text())
        except (OSError, ValueError):
            return cls("", "", "")
        if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
            return cls("", "", "")
        layers = document.get("layers")
        return cls(
            str(document.get("reference", "")),
            str(document.get("digest", "")),
            str(document.get("manifest_digest", "")),
            model_format=str(document.get("format", "")),
            layers=[layer for layer in layers if isinstance(layer, dict)]
            if isinstance(layers, list)
            else [],
            model_link=document.get("model_link") or None,
            complete=document.get("complete") is True,
        )

    def save(self, dest: Path) -> None:
        document = {
            "version": STATE_VERSION,
            "reference": self.reference,
            "digest": self.digest,
            "manifest_digest": self.manifest_digest,
            "format": self.model_format,
            "complete": self.complete,
            "model_link": self.model_link,
            "layers": self.layers,
        }
        temporary = dest / f"{PARTIAL_PREFIX}state"
        temporary.write_text(json.dumps(document, indent=1) + "\n")
        temporary.replace(dest / STATE_FILE)

    def matches(self, reference: str, digest: str | None) -> bool:
        return (
            self.complete
            and self.reference == reference
            and (digest is None or self.digest == digest)
        )

    def intact(self, dest: Path) -> bool:
        links_intact = self.model_link is None or (dest / self.model_link).exists()
        return links_intact and all(_layer_intact(dest, layer) for layer in self.layers)

    def paths(self) -> set[str]:
        """Recorded paths that are safe to delete (a tampered record cannot reach outside)."""
        paths = set()
        for layer in self.layers:
            for entry in _entries(layer):
                with contextlib.suppress(PullError, TypeError):
                    paths.add(media.safe_relative_path(entry["path"]))
        return paths

    def recorded_file(self, planned: media.PlannedFile, dest: Path) -> bool:
        return any(
            layer.get("digest") == planned.layer.digest
            and layer.get("path") == planned.path
            and _layer_intact(dest, layer)
            for layer in self.layers
        )

    def recorded_archive(self, digest: str, dest: Path) -> list[str] | None:
        for layer in self.layers:
            ours = layer.get("digest") == digest and layer.get("path") is None
            if ours and _layer_intact(dest, layer):
                return [str(entry["path"]) for entry in _entries(layer)]
        return None

    def record_file(self, planned: media.PlannedFile, dest: Path) -> None:
        self.layers.append(
            {
                "digest": planned.layer.digest,
                "media_type": planned.layer.media_type,
                "path": planned.path,
                "files": [_file_entry(dest, planned.path)],
            }
        )

    def record_archive(
        self, planned: media.PlannedArchive, paths: Sequence[str], dest: Path
    ) -> None:
        self.layers.append(
            {
                "digest": planned.layer.digest,
                "media_type": planned.layer.media_type,
                "path": None,
                "files": [_file_entry(dest, path) for path in paths],
            }
        )

    def result(
        self, dest: Path, started: float, report: Progress, *, offline: bool, note: str
    ) -> PullResult:
        files = tuple(
            PulledFile(
                str(entry["path"]),
                str(layer.get("digest")),
                int(entry["size"]),
                str(layer.get("media_type", "")),
                downloaded=False,
            )
            for layer in self.layers
            for entry in _entries(layer)
        )
        gguf = self.model_format == media.Role.GGUF.value
        result = PullResult(
            reference=self.reference,
            manifest_digest=self.manifest_digest,
            format=self.model_format,
            destination=dest,
            model_file=dest / media.MODEL_GGUF if gguf else None,
            files=files,
            bytes_downloaded=0,
            seconds=time.monotonic() - started,
            offline=offline,
        )
        report.say(f"{note}: " + _summary(result))
        return result


def _entries(layer: Mapping[str, Any]) -> list[Any]:
    entries = layer.get("files")
    return entries if isinstance(entries, list) else []


def _layer_intact(dest: Path, layer: Mapping[str, Any]) -> bool:
    entries = layer.get("files")
    return isinstance(entries, list) and all(_file_intact(dest, entry) for entry in entries)


def _file_entry(dest: Path, path: str) -> dict[str, Any]:
    status = (dest / path).lstat()
    return {"path": path, "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _file_intact(dest: Path, entry: Any) -> bool:
    """The file is still what we wrote: same size and mtime, so it need not be re-hashed."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return False
    try:
        status = (dest / entry["path"]).lstat()
    except OSError:
        return False
    return bool(status.st_size == entry.get("size") and status.st_mtime_ns == entry.get("mtime_ns"))
