#!/usr/bin/env python3
"""Tiny OCI images without a build engine: the node's pause, CoreDNS and busybox images.

Each image is one layer of a few static files, so an archive written here (byte-for-byte
reproducible: fixed mtimes, sorted entries) is all that `ctr images import` or a registry
needs; no podman storage, no daemon, nothing left on the machine.

    oci.py build --name localhost/pause:local --out pause.tar \
        --entrypoint /pause FILE=/pause [LINK->TARGET ...] [--dir /tmp]
    oci.py push pause.tar HOST:PORT/REPO:TAG     (plain HTTP, as the local registry serves)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(entries: list[str], dirs: list[str]) -> bytes:
    """A tar of FILE=/path entries, LINK->TARGET symlinks and world-writable dirs (like /tmp)."""
    members: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}

    def add_parents(path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            if name not in members:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                members[name] = (info, None)

    for entry in entries:
        if "->" in entry:
            link, target = entry.split("->", 1)
            add_parents(link)
            info = tarfile.TarInfo(link.strip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            info.mode = 0o777
            members[info.name] = (info, None)
        else:
            source, destination = entry.split("=", 1)
            data = Path(source).read_bytes()
            add_parents(destination)
            info = tarfile.TarInfo(destination.strip("/"))
            info.size = len(data)
            info.mode = Path(source).stat().st_mode & 0o777
            members[info.name] = (info, data)
    for directory in dirs:
        add_parents(directory + "/x")
        members[directory.strip("/")][0].mode = 0o1777

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            info, content = members[name]
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def build(args: argparse.Namespace) -> None:
    layer = layer_tar(args.entries, args.dir)
    compressed = gzip.compress(layer, mtime=0)
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *args.env]
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env, "Entrypoint": args.entrypoint, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        "history": [{"created_by": "oci.py build", "comment": args.name}],
    }
    if args.user:
        config["config"]["User"] = args.user
    config_blob = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {
            "mediaType": MEDIA_CONFIG,
            "digest": digest(config_blob),
            "size": len(config_blob),
        },
        "layers": [
            {"mediaType": MEDIA_LAYER, "digest": digest(compressed), "size": len(compressed)}
        ],
    }
    manifest_blob = canonical(manifest)
    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": digest(manifest_blob),
                "size": len(manifest_blob),
                "annotations": {
                    "io.containerd.image.name": args.name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    files = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical(index),
    }
    for blob in (config_blob, manifest_blob, compressed):
        files["blobs/sha256/" + digest(blob).removeprefix("sha256:")] = blob
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    Path(args.out).write_bytes(out.getvalue())
    print(
        f"{args.name} {digest(manifest_blob)} ({len(compressed)} bytes compressed)", file=sys.stderr
    )


def read_archive(path: str) -> tuple[bytes, dict[str, bytes]]:
    with tarfile.open(path) as tar:
        blobs: dict[str, bytes] = {}
        index: dict[str, Any] = {}
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is None:
                continue
            data = extracted.read()
            if member.name == "index.json":
                index = json.loads(data)
            elif member.name.startswith("blobs/sha256/"):
                blobs["sha256:" + member.name.rsplit("/", 1)[1]] = data
    manifest_digest = index["manifests"][0]["digest"]
    return blobs[manifest_digest], blobs


def push(args: argparse.Namespace) -> None:
    host, _, rest = args.reference.partition("/")
    repository, _, tag = rest.rpartition(":")
    base = f"http://{host}/v2/{repository}"
    manifest_blob, blobs = read_archive(args.archive)
    manifest = json.loads(manifest_blob)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob_digest = descriptor["digest"]
        head = urllib.request.Request(f"{base}/blobs/{blob_digest}", method="HEAD")
        try:
            with urllib.request.urlopen(head, timeout=30):
                continue
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        start = urllib.request.Request(f"{base}/blobs/uploads/", method="POST", data=b"")
        with urllib.request.urlopen(start, timeout=30) as response:
            location = response.headers["Location"]
        if location.startswith("/"):
            location = f"http://{host}{location}"
        separator = "&" if "?" in location else "?"
        upload = urllib.request.Request(
            f"{location}{separator}digest={blob_digest}",
            method="PUT",
            data=blobs[blob_digest],
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(upload, timeout=300):
            pass
    put = urllib.request.Request(
        f"{base}/manifests/{tag}",
        method="PUT",
        data=manifest_blob,
        headers={"Content-Type": MEDIA_MANIFEST},
    )
    with urllib.request.urlopen(put, timeout=30) as response:
        print(f"{args.reference} {response.headers.get('Docker-Content-Digest')}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build")
    build_parser.add_argument("--name", required=True)
    build_parser.add_argument("--out", required=True)
    build_parser.add_argument("--entrypoint", action="append", default=[])
    build_parser.add_argument("--env", action="append", default=[])
    build_parser.add_argument("--dir", action="append", default=[])
    build_parser.add_argument("--user")
    build_parser.add_argument("entries", nargs="+")
    push_parser = commands.add_parser("push")
    push_parser.add_argument("archive")
    push_parser.add_argument("reference")
    args = parser.parse_args()
    if args.command == "build":
        build(args)
    else:
        push(args)


if __name__ == "__main__":
    main()
