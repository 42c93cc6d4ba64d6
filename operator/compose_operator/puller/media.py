"""Which layers of a model artifact become which files in the destination (pure).

The file names are a contract with the engines: llama.cpp starts with `-m /models/model.gguf`
and vLLM with `serve /models`, so a GGUF artifact always yields `model.gguf` (the first weights
file, or a symlink to it) and tar layers unpack into the destination itself. Default names
follow Docker Model Runner's unpacking (`pkg/distribution/internal/bundle/unpack.go`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from compose_operator.puller.errors import NotAModel, PullError, UnsafePath

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

MODEL_CONFIG_V01 = "application/vnd.docker.ai.model.config.v0.1+json"
MODEL_CONFIG_V02 = "application/vnd.docker.ai.model.config.v0.2+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODELPACK_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG_TYPES = frozenset({MODEL_CONFIG_V01, MODEL_CONFIG_V02, MODELPACK_CONFIG})

GGUF = "application/vnd.docker.ai.gguf.v3"
SAFETENSORS = "application/vnd.docker.ai.safetensors"
DDUF = "application/vnd.docker.ai.dduf"
MMPROJ = "application/vnd.docker.ai.mmproj"
MMPROJ_SPEC = "application/vnd.docker.ai.gguf.v3.mmproj"
LORA = "application/vnd.docker.ai.gguf.v3.lora"
VLLM_CONFIG_TAR = "application/vnd.docker.ai.vllm.config.tar"
DIR_TAR = "application/vnd.docker.ai.dir.tar"
CHAT_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"
LICENSE = "application/vnd.docker.ai.license"
MODEL_FILE = "application/vnd.docker.ai.model.file"
MODELPACK_GGUF = "application/vnd.cncf.model.weight.v1.gguf"
MODELPACK_SAFETENSORS = "application/vnd.cncf.model.weight.v1.safetensors"
MODELPACK_WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"

FILEPATH_ANNOTATION = "org.cncf.model.filepath"
TITLE_ANNOTATION = "org.opencontainers.image.title"

RESERVED_PREFIX = ".compose-operator"
"""Names the puller keeps for itself in the destination (state, lock, partial downloads)."""

MODEL_GGUF = "model.gguf"
"""The file llama.cpp is started with (`-m /models/model.gguf`)."""


class Role(enum.Enum):
    """What a layer is for; decides its default name and whether it is unpacked."""

    GGUF = "gguf"
    SAFETENSORS = "safetensors"
    DDUF = "dduf"
    WEIGHTS = "weights"
    MMPROJ = "mmproj"
    LORA = "lora"
    TEMPLATE = "template"
    LICENSE = "license"
    FILE = "file"
    ARCHIVE = "archive"


WEIGHT_ROLES = frozenset({Role.GGUF, Role.SAFETENSORS, Role.DDUF, Role.WEIGHTS})

_ROLES: Mapping[str, Role] = {
    GGUF: Role.GGUF,
    MODELPACK_GGUF: Role.GGUF,
    SAFETENSORS: Role.SAFETENSORS,
    MODELPACK_SAFETENSORS: Role.SAFETENSORS,
    MODELPACK_WEIGHT_RAW: Role.WEIGHTS,
    DDUF: Role.DDUF,
    MMPROJ: Role.MMPROJ,
    MMPROJ_SPEC: Role.MMPROJ,
    LORA: Role.LORA,
    CHAT_TEMPLATE: Role.TEMPLATE,
    LICENSE: Role.LICENSE,
    MODEL_FILE: Role.FILE,
    "application/vnd.cncf.model.weight.config.v1.raw": Role.FILE,
    "application/vnd.cncf.model.doc.v1.raw": Role.FILE,
    VLLM_CONFIG_TAR: Role.ARCHIVE,
    DIR_TAR: Role.ARCHIVE,
    "application/vnd.cncf.model.weight.v1.tar": Role.ARCHIVE,
    "application/vnd.cncf.model.weight.v1.tar+gzip": Role.ARCHIVE,
    "application/vnd.cncf.model.weight.config.v1.tar": Role.ARCHIVE,
    "application/vnd.cncf.model.weight.config.v1.tar+gzip": Role.ARCHIVE,
    "application/vnd.cncf.model.doc.v1.tar": Role.ARCHIVE,
    "application/vnd.cncf.model.doc.v1.tar+gzip": Role.ARCHIVE,
}
"""Layer media types we understand; anything else (e.g. `+zstd` tars) is skipped."""

_SINGLE_NAMES: Mapping[Role, str] = {
    Role.GGUF: MODEL_GGUF,
    Role.SAFETENSORS: "model.safetensors",
    Role.DDUF: "model.dduf",
    Role.MMPROJ: "model.mmproj",
    Role.LORA: "adapter.gguf",
    Role.TEMPLATE: "template.jinja",
    Role.LICENSE: "LICENSE",
}


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about one blob."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str]

    @classmethod
    def from_json(cls, value: Any, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise PullError(f"{where}: expected a descriptor object, got {value!r:.80}")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
            raise PullError(f"{where}: descriptor needs a digest and a size, got {value!r:.120}")
        annotations = value.get("annotations") or {}
        return cls(
            media_type=media_type if isinstance(media_type, str) else "",
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, dict)
            else {},
        )


@dataclass(frozen=True)
class PlannedFile:
    """One layer written verbatim to `path` (relative to the destination)."""

    path: str
    layer: Descriptor
    role: Role


@dataclass(frozen=True)
class PlannedArchive:
    """One tar layer unpacked into the destination."""

    layer: Descriptor


@dataclass(frozen=True)
class ArtifactPlan:
    """Everything a manifest asks the puller to write."""

    format: str
    """`gguf`, `safetensors`, `dduf` or `weights` (ModelPack raw weights of another kind)."""
    files: tuple[PlannedFile, ...]
    archives: tuple[PlannedArchive, ...]
    skipped: tuple[Descriptor, ...]
    """Layers of a type we do not know; reported, not fetched."""
    model_file: str | None
    """For GGUF: the weights file `model.gguf` must be (or point to)."""


def safe_relative_path(name: str) -> str:
    """`name` as a plain relative POSIX path that stays inside the destination.

    Raises UnsafePath for absolute paths, `..`, NUL bytes, backslashes and our reserved names.
    """
    if not name or "\0" in name or "\\" in name:
        raise UnsafePath(f"unsafe file name {name!r} in the artifact")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise UnsafePath(f"unsafe file name {name!r} in the artifact: absolute path")
    parts = [part for part in path.parts if part != "."]
    if not parts:
        raise UnsafePath(f"unsafe file name {name!r} in the artifact: names no file")
    if ".." in parts:
        raise UnsafePath(f"unsafe file name {name!r} in the artifact: contains '..'")
    if parts[0].startswith(RESERVED_PREFIX):
        raise UnsafePath(f"unsafe file name {name!r} in the artifact: reserved for the puller")
    return "/".join(parts)


def role_of(media_type: str, annotated_name: str | None) -> Role | None:
    """The layer's role; ModelPack raw weights are told apart by their file extension."""
    role = _ROLES.get(media_type)
    if role is Role.WEIGHTS and annotated_name is not None:
        if annotated_name.endswith(".gguf"):
            return Role.GGUF
        if annotated_name.endswith(".safetensors"):
            return Role.SAFETENSORS
    return role


def annotated_name(layer: Descriptor) -> str | None:
    return layer.annotations.get(FILEPATH_ANNOTATION) or layer.annotations.get(TITLE_ANNOTATION)


def describe_types(descriptors: Iterable[Descriptor]) -> str:
    types = sorted({descriptor.media_type or "(none)" for descriptor in descriptors})
    return ", ".join(types) if types else "no layers"


def plan_artifact(manifest: Mapping[str, Any], reference: str) -> ArtifactPlan:
    """Decide the files a model manifest yields; NotAModel when it holds no weights."""
    config = Descriptor.from_json(manifest.get("config"), f"{reference}: config")
    raw_layers = manifest.get("layers")
    if not isinstance(raw_layers, list):
        raise NotAModel(f"not a model artifact: {reference} has no layers")
    layers = [
        Descriptor.from_json(layer, f"{reference}: layers[{index}]")
        for index, layer in enumerate(raw_layers)
    ]
    roles = [(layer, role_of(layer.media_type, annotated_name(layer))) for layer in layers]
    weights = [role for _, role in roles if role in WEIGHT_ROLES]
    if not weights:
        raise NotAModel(
            f"not a model artifact: {reference} has config {config.media_type or '(none)'} and "
            f"layers {describe_types(layers)}; expected a weights layer such as {GGUF} or "
            f"{SAFETENSORS}"
        )
    model_format = next(
        (role.value for role in (Role.GGUF, Role.SAFETENSORS, Role.DDUF) if role in weights),
        Role.WEIGHTS.value,
    )
    files = _name_files(
        [(layer, role) for layer, role in roles if role not in (None, Role.ARCHIVE)]
    )
    archives = tuple(PlannedArchive(layer) for layer, role in roles if role is Role.ARCHIVE)
    skipped = tuple(layer for layer, role in roles if role is None)
    model_file = None
    if model_format == Role.GGUF.value:
        model_file = next(file.path for file in files if file.role is Role.GGUF)
        taken = {file.path: file for file in files}
        clash = taken.get(MODEL_GGUF)
        if clash is not None and clash.path != model_file:
            raise PullError(
                f"{reference}: layer {clash.layer.digest} is named {MODEL_GGUF} but is not the "
                f"weights file {model_file}"
            )
    return ArtifactPlan(model_format, files, archives, skipped, model_file)


def _name_files(layers: Sequence[tuple[Descriptor, Role | None]]) -> tuple[PlannedFile, ...]:
    """Annotated names win; the rest get Docker Model Runner's default names."""
    unnamed_counts: dict[Role, int] = {}
    for layer, role in layers:
        if role is not None and annotated_name(layer) is None:
            unnamed_counts[role] = unnamed_counts.get(role, 0) + 1
    positions: dict[Role, int] = {}
    planned: list[PlannedFile] = []
    seen: dict[str, Descriptor] = {}
    for layer, role in layers:
        assert role is not None
        name = annotated_name(layer)
        if name is not None:
            path = safe_relative_path(name)
        else:
            positions[role] = positions.get(role, 0) + 1
            path = _default_name(role, layer, positions[role], unnamed_counts[role])
        previous = seen.get(path)
        if previous is not None:
            raise PullError(
                f"two layers ({previous.digest} and {layer.digest}) both want the file {path}"
            )
        seen[path] = layer
        planned.append(PlannedFile(path, layer, role))
    return tuple(planned)


def _default_name(role: Role, layer: Descriptor, position: int, count: int) -> str:
    if role in (Role.FILE, Role.WEIGHTS):
        raise PullError(
            f"layer {layer.digest} ({layer.media_type}) has no {FILEPATH_ANNOTATION} annotation "
            "to name its file"
        )
    single = _SINGLE_NAMES[role]
    if count == 1:
        return single
    stem, dot, extension = single.partition(".")
    if role in (Role.GGUF, Role.SAFETENSORS):
        return f"{stem}-{position:05d}-of-{count:05d}.{extension}"
    return single if position == 1 else f"{stem}-{position}{dot}{extension}"
