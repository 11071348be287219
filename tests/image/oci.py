"""What an OCI image archive holds, read with the standard library: its images (one per platform), their
layers with compressed and unpacked sizes, configs and files. The image tests and the size table of
docs/kubernetes.md read archives through this module.

    .venv/bin/python -m tests.image.oci build/image/*_linux-*.oci.tar     # the size table, Markdown
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    compressed: int
    unpacked: int
    created_by: str


@dataclass(frozen=True, slots=True)
class Image:
    platform: str
    config: dict[str, Any]
    layers: tuple[Layer, ...]

    @property
    def compressed(self) -> int:
        return sum(layer.compressed for layer in self.layers)

    @property
    def unpacked(self) -> int:
        return sum(layer.unpacked for layer in self.layers)


class Archive:
    """An oci-archive file (a tar of an OCI image layout)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with tarfile.open(path) as archive:
            self._names = set(archive.getnames())

    def blob(self, digest: str) -> bytes:
        algorithm, value = digest.split(":", 1)
        with tarfile.open(self.path) as archive:
            member = archive.extractfile(f"blobs/{algorithm}/{value}")
            assert member is not None, digest
            return member.read()

    def _json(self, digest: str) -> Any:
        return json.loads(self.blob(digest))

    def index(self) -> dict[str, Any]:
        with tarfile.open(self.path) as archive:
            member = archive.extractfile("index.json")
            assert member is not None
            return json.loads(member.read())  # type: ignore[no-any-return]

    def manifests(self) -> list[dict[str, Any]]:
        """Each image manifest, following one level of nested index (what `manifest push --all` writes)."""
        found: list[dict[str, Any]] = []
        for descriptor in self.index()["manifests"]:
            document = self._json(descriptor["digest"])
            if "manifests" in document:
                found.extend(self._json(entry["digest"]) for entry in document["manifests"])
            else:
                found.append(document)
        return found

    def platforms(self) -> list[str]:
        return [image.platform for image in self.images()]

    def images(self) -> list[Image]:
        return [self._image(manifest) for manifest in self.manifests()]

    def _image(self, manifest: dict[str, Any]) -> Image:
        config = self._json(manifest["config"]["digest"])
        platform = "/".join(p for p in (config["os"], config["architecture"], config.get("variant")) if p)
        history = [h.get("created_by", "") for h in config.get("history", []) if not h.get("empty_layer")]
        layers = []
        for position, descriptor in enumerate(manifest["layers"]):
            data = self.blob(descriptor["digest"])
            unpacked = len(gzip.decompress(data)) if descriptor["mediaType"].endswith("gzip") else len(data)
            created_by = history[position] if position < len(history) else ""
            layers.append(Layer(descriptor["digest"], descriptor["size"], unpacked, created_by))
        return Image(platform, config, tuple(layers))

    def files(self, image: Image) -> Iterator[tarfile.TarInfo]:
        """Every entry of the image's filesystem, layer by layer (whiteouts included as they are)."""
        for layer in image.layers:
            data = self.blob(layer.digest)
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                yield from tar.getmembers()

    def extract(self, image: Image, destination: Path) -> None:
        """The image's root filesystem unpacked into `destination` (as a runtime would, without whiteouts)."""
        for layer in image.layers:
            data = self.blob(layer.digest)
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                tar.extractall(destination, filter="fully_trusted", numeric_owner=True)


# What tools/build-image.sh puts in each layer, in order (the history names only a digest).
LAYER_ROLES = ("base: Python 3.11, bash, coreutils, tzdata, CA certificates", "i2c binaries and libi2c0",
               "the collector (wheel, byte-compiled)")


def _layer_name(position: int, count: int) -> str:
    return LAYER_ROLES[position] if count == len(LAYER_ROLES) else f"layer {position + 1}"


def size_table(paths: list[Path]) -> str:
    """Markdown: per platform and per layer, compressed (what a node downloads) and unpacked (its disk)."""
    lines = ["| platform | layer | compressed (MiB) | unpacked (MiB) |", "|---|---|---:|---:|"]
    for path in paths:
        for image in Archive(path).images():
            for position, layer in enumerate(image.layers):
                lines.append(f"| {image.platform} | {_layer_name(position, len(image.layers))} | "
                             f"{layer.compressed / MIB:.1f} | {layer.unpacked / MIB:.1f} |")
            lines.append(f"| **{image.platform}** | **total** | **{image.compressed / MIB:.1f}** | "
                         f"**{image.unpacked / MIB:.1f}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(size_table([Path(arg) for arg in sys.argv[1:]]))
