"""The built image, for the tests: `make image`'s archives (built here when missing or out of date, cached by
the hash of their inputs) and podman with the build's private storage and configuration."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.helpers import REPO

OUT = REPO / "build" / "image"
BUILD_SCRIPT = REPO / "tools" / "build-image.sh"
KUSTOMIZATION = REPO / "deploy" / "kubernetes" / "edge" / "kustomization.yaml"
COLLECTOR = "edge-metrics-collector"  # the image's name in the manifests, mapped by the `images` entry
PLATFORMS = {"amd64": "linux/amd64", "arm64": "linux/arm64", "armhf": "linux/arm/v7"}


@dataclass(frozen=True, slots=True)
class ImageRef:
    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def image_ref() -> ImageRef:
    """The one place of the image's name and tag: the `images` entry of edge/kustomization.yaml."""
    entries = yaml.safe_load(KUSTOMIZATION.read_text())["images"]
    entry = next(e for e in entries if e["name"] == COLLECTOR)
    return ImageRef(entry["newName"], str(entry["newTag"]))


def archive(arch: str | None = None) -> Path:
    """build/image/NAME_TAG_linux-ARCH.oci.tar, or the multi-arch index NAME_TAG.oci.tar."""
    ref = image_ref()
    base = ref.name.rsplit("/", 1)[-1]
    suffix = "" if arch is None else "_" + PLATFORMS[arch].replace("/", "-")
    return OUT / f"{base}_{ref.tag}{suffix}.oci.tar"


def sbom(arch: str) -> Path:
    return archive(arch).with_name(archive(arch).name.replace(".oci.tar", ".spdx.json"))


@functools.cache
def built() -> Path:
    """Runs tools/build-image.sh (a no-op when build/image matches the inputs); the output folder."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    assert not missing, f"{missing} not installed: run `make image` (it installs them) or `make test`"
    env = dict(os.environ, PYTHON=str(REPO / ".venv" / "bin" / "python"))
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=1800, check=False)
    assert result.returncode == 0, f"tools/build-image.sh failed:\n{result.stderr[-4000:]}"
    return OUT


class Podman:
    """podman as tools/build-image.sh runs it: private storage under .cache/image, runc, cgroupfs."""

    def __init__(self) -> None:
        self.cache = (REPO / ".cache" / "image").resolve()
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.cache / "containers.conf"))

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.cache / "storage"), "--runroot", str(self.cache / "run"), *args]

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def load(self, path: Path) -> str:
        """The image of an oci-archive, by its ID (each architecture's archive carries the same tag)."""
        return self("pull", "--quiet", f"oci-archive:{path}").stdout.strip().splitlines()[-1]

    def run(self, image: str, options: Sequence[str], command: Sequence[str] = (), *, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        return self("run", "--rm", *options, image, *command, timeout=timeout, check=False)
