"""Download layers into the destination: streamed, hashed as they arrive, resumable.

Each blob goes to a partial file named after its digest; a dropped connection resumes it with
an HTTP Range request, and it is renamed into place only when size and digest match.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import time
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compose_operator.puller import archive, confined, media
from compose_operator.puller.client import Policy, RegistryClient
from compose_operator.puller.errors import DigestMismatch, PullError, RegistryUnreachable
from compose_operator.puller.progress import Progress, human_bytes
from compose_operator.puller.record import PARTIAL_PREFIX, PullRecord

CHUNK_BYTES = 1024 * 1024
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


def hasher_for(digest: str) -> tuple[Any, str]:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in SUPPORTED_DIGESTS or not expected:
        raise PullError(f"unsupported digest {digest!r} (expected sha256:<hex>)")
    return hashlib.new(algorithm), expected


class LayerPuller:
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

    def pull_file(self, planned: media.PlannedFile, previous: PullRecord) -> PulledFile:
        layer = planned.layer
        target = confined.path(self.dest, planned.path)
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
        self, planned: media.PlannedArchive, previous: PullRecord, protected: Set[str]
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
        hasher, expected = hasher_for(layer.digest)
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
        hasher, _ = hasher_for(layer.digest)
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
                hasher, _ = hasher_for(layer.digest)
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
