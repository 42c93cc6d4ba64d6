"""The record of what the last pull wrote into a destination (`.compose-operator-pull.json`).

A restarted model pod with its volume intact must start at once: a file whose size and mtime
match the record is trusted without re-reading gigabytes to re-hash it. The record is written
after every layer, so an interrupted pull keeps what it finished.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from compose_operator.puller import media
from compose_operator.puller.errors import PullError

STATE_FILE = ".compose-operator-pull.json"
LOCK_FILE = ".compose-operator-pull.lock"
PARTIAL_PREFIX = ".compose-operator-partial-"
"""Downloads in progress, staging directories and temporary files; removed after a pull."""
STATE_VERSION = 1


class PullRecord:
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
    def load(cls, dest: Path) -> PullRecord:
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

    def files(self) -> list[tuple[str, str, int, str]]:
        """(path, layer digest, size, media type) of every recorded file."""
        return [
            (
                str(entry["path"]),
                str(layer.get("digest")),
                int(entry["size"]),
                str(layer.get("media_type", "")),
            )
            for layer in self.layers
            for entry in _entries(layer)
        ]

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
