"""What `make image` ships: an archive per platform and a multi-arch index, within the size budget, holding
what the collector needs and nothing of a build or package toolchain, non-root, byte-compiled, each with
its SBOM beside it."""

from __future__ import annotations

import fnmatch
import functools
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.image.engine import PLATFORMS, Podman, archive, image_ref, sbom
from tests.image.oci import Archive, Image

pytestmark = pytest.mark.image

MB = 1000 * 1000
BUDGET_COMPRESSED = 40 * MB
BUDGET_UNPACKED = 110 * MB
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

# Not in the image: compilers, perl, udev, pip, a package manager or its lists.
FORBIDDEN = ("usr/bin/perl*", "usr/lib/*/perl*", "usr/share/perl*", "usr/bin/udevadm", "lib/udev*", "usr/lib/udev*",
             "usr/bin/gcc*", "usr/bin/cc", "usr/bin/*-gcc*", "usr/bin/ld", "usr/lib/gcc*",
             "*/site-packages/pip", "*/dist-packages/pip", "opt/edge-metrics/pip", "usr/lib/python3*/ensurepip",
             "usr/bin/pip*", "var/lib/apt/lists/*", "usr/bin/apt*", "usr/bin/dpkg*", "var/lib/dpkg/*")
# What the collector, its scripts and the DaemonSet's liveness probe call.
REQUIRED = ("usr/local/bin/edge-metrics", "usr/bin/python3", "usr/bin/bash", "usr/bin/date", "usr/bin/stat",
            "usr/bin/timeout", "usr/bin/awk", "usr/bin/env", "usr/sbin/i2cget", "usr/sbin/i2cset",
            "usr/sbin/i2cdetect", "usr/sbin/i2ctransfer", "usr/share/zoneinfo/Asia/Shanghai",
            "etc/ssl/certs/ca-certificates.crt")


@functools.cache
def images(arch: str) -> list[Image]:
    return Archive(archive(arch)).images()


@functools.cache
def paths(arch: str) -> frozenset[str]:
    """Every path of the image (links included), without the leading ./ or /."""
    found = set()
    for member in Archive(archive(arch)).files(images(arch)[0]):
        name = member.name.removeprefix("./").rstrip("/")
        found.add(name)
    return frozenset(found)


@pytest.mark.usefixtures("image_out")
class TestArchives:
    """One OCI archive per platform, named by version and architecture, and the multi-arch index."""

    @pytest.mark.parametrize("arch", PLATFORMS)
    def test_each_archive_holds_its_platform(self, arch: str) -> None:
        assert [image.platform for image in images(arch)] == [PLATFORMS[arch]]
        assert f"_{image_ref().tag}_" in archive(arch).name

    def test_index_holds_every_platform_under_the_manifests_name(self) -> None:
        index = Archive(archive())
        assert sorted(index.platforms()) == sorted(PLATFORMS.values())
        names = [d["annotations"]["org.opencontainers.image.ref.name"] for d in index.index()["manifests"]]
        assert names == [str(image_ref())]

    def test_the_tag_is_the_package_version(self) -> None:
        assert image_ref().tag == VERSION


@pytest.mark.usefixtures("image_out")
@pytest.mark.parametrize("arch", PLATFORMS)
class TestSmallAndClean:
    def test_within_the_size_budget(self, arch: str) -> None:
        (image,) = images(arch)
        assert image.compressed <= BUDGET_COMPRESSED, f"{arch}: {image.compressed / MB:.1f} MB compressed"
        assert image.unpacked <= BUDGET_UNPACKED, f"{arch}: {image.unpacked / MB:.1f} MB unpacked"

    def test_nothing_of_a_toolchain_or_package_manager(self, arch: str) -> None:
        found = sorted(p for p in paths(arch) for pattern in FORBIDDEN if fnmatch.fnmatch(p, pattern))
        assert not found, found[:20]

    def test_what_the_collector_scripts_and_probe_call_is_there(self, arch: str) -> None:
        missing = [p for p in REQUIRED if p not in paths(arch)]
        assert not missing, missing

    def test_merged_usr(self, arch: str) -> None:
        """As on every bookworm system: a script's #!/usr/bin/bash and #!/bin/bash both work."""
        links = {m.name.removeprefix("./"): m.linkname for m in Archive(archive(arch)).files(images(arch)[0])
                 if m.issym()}
        for directory in ("bin", "sbin", "lib"):
            assert links.get(directory) == f"usr/{directory}", (directory, links.get(directory))

    def test_byte_compiled(self, arch: str) -> None:
        """Every module of the collector and of the standard library has its .pyc: a read-only root
        filesystem never sees a write, and no start pays the compile."""
        sources = [p for p in paths(arch) if p.endswith(".py") and p.startswith(("opt/edge-metrics/",
                                                                                  "usr/lib/python3.11/"))]
        assert len(sources) > 100, len(sources)
        missing = []
        for source in sources:
            directory, _, module = source.rpartition("/")
            pyc = f"{directory}/__pycache__/{module[:-3]}.cpython-311.pyc"
            if pyc not in paths(arch):
                missing.append(source)
        assert not missing, missing[:10]

    def test_non_root_by_default_with_the_wheels_entrypoint(self, arch: str) -> None:
        (image,) = images(arch)
        config = image.config["config"]
        assert config["User"].split(":")[0] not in ("", "0", "root"), config["User"]
        assert config["Entrypoint"] == ["edge-metrics"]
        assert config["Cmd"] == ["run"]

    def test_sbom_lists_the_debian_packages_and_the_wheel(self, arch: str) -> None:
        document = json.loads(sbom(arch).read_text())
        assert document["spdxVersion"] == "SPDX-2.3"
        packages = {p["name"]: p for p in document["packages"]}
        assert packages["edge-metrics-collector"]["versionInfo"] == VERSION
        for name in ("python3.11-minimal", "libpython3.11-stdlib", "bash", "tzdata", "ca-certificates", "i2c-tools",
                     "libi2c0", "libc6"):
            assert name in packages, name
        debian_arch = {p["externalRefs"][0]["referenceLocator"].rsplit("arch=", 1)[1].split("&")[0]
                       for p in packages.values() if p["name"] != "edge-metrics-collector"}
        assert debian_arch <= {arch, "all"}, debian_arch
        assert not {"perl-base", "udev", "dpkg", "debconf"} & set(packages)


def test_runs_read_only_without_capabilities(podman: Podman, amd64_image: str) -> None:
    """The entrypoint starts as the image's own user on a read-only root with no capability."""
    result = podman.run(amd64_image, ["--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
                                      "--security-opt", "no-new-privileges", "--network", "none"], ["--version"])
    assert result.returncode == 0, result.stderr
    assert VERSION in result.stdout + result.stderr
    who = podman.run(amd64_image, ["--network", "none", "--entrypoint", "id"], ["-u"])
    assert who.stdout.strip() == "10001", who




def test_the_index_copies_whole_as_the_push_command_reads_it(image_out: Path, tmp_path: Path) -> None:
    """docs/kubernetes.md's push: `skopeo copy --all oci-archive:... docker://...`; here to a local layout
    (no registry), which must keep every platform with its variant."""
    layout = tmp_path / "layout"
    copied = subprocess.run(["skopeo", "copy", "--all", "--quiet", f"oci-archive:{archive()}", f"oci:{layout}:pushed"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert copied.returncode == 0, copied.stderr
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:pushed"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    platforms = {"/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"],
                                        m["platform"].get("variant")))) for m in json.loads(raw)["manifests"]}
    assert platforms == set(PLATFORMS.values()), platforms
