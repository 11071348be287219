"""The image as the manifests and the build agree on it, checked without building: one name and tag (the
`images` entry of deploy/kubernetes/edge/kustomization.yaml) for the rendered DaemonSet and for
tools/build-image.sh, the package's version as the tag, and the Dockerfile's entrypoint, user and output
path as the DaemonSet relies on them. tests/image builds the image and runs it."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.helpers import REPO
from tests.image.engine import COLLECTOR, KUSTOMIZATION, image_ref
from tests.k8s.manifests import (
    ALL_IN_ONE,
    KUSTOMIZE_DIR,
    container,
    dockerfile_entrypoint,
    dockerfile_instructions,
    find,
    rendered,
)

pytestmark = pytest.mark.k8s

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
BUILD_SCRIPT = REPO / "tools" / "build-image.sh"


def sidecar() -> dict[str, object]:
    spec = find(rendered(), "DaemonSet", "node-exporter-arm64")["spec"]["template"]["spec"]
    return container(spec, "metric-sidecar")


class TestOnePlaceForTheImage:
    def test_the_rendered_daemonset_runs_the_kustomization_entry(self) -> None:
        assert sidecar()["image"] == str(image_ref())

    def test_the_tag_is_the_package_version(self) -> None:
        assert image_ref().tag == PYPROJECT["project"]["version"]

    def test_no_manifest_spells_the_name_and_tag_itself(self) -> None:
        """Only the kustomization's `images` entry (and the generated all-in-one.yaml) name the image. The central
        kustomization repeats it for the gate, so that the centre builds alone; test_security_manifests requires
        the two entries to be equal."""
        central = KUSTOMIZE_DIR / "central" / "kustomization.yaml"
        spelled = [
            path.relative_to(REPO).as_posix()
            for path in KUSTOMIZE_DIR.rglob("*.yaml")
            if path not in (KUSTOMIZATION, ALL_IN_ONE, central) and image_ref().name in path.read_text()
        ]
        assert not spelled, spelled
        daemonset = (KUSTOMIZE_DIR / "edge" / "daemonset.yaml").read_text()
        assert re.search(rf"^\s+image: {COLLECTOR}$", daemonset, re.M)

    def test_the_build_reads_the_same_entry(self) -> None:
        script = BUILD_SCRIPT.read_text()
        assert "deploy/kubernetes/edge/kustomization.yaml" in script
        assert f'i["name"] == "{COLLECTOR}"' in script


class TestDockerfile:
    """What the DaemonSet relies on inside the image is what the Dockerfile sets."""

    def test_entrypoint_is_the_wheels_console_script(self) -> None:
        program, *_ = dockerfile_entrypoint()
        assert program in PYPROJECT["project"]["scripts"], program
        assert "command" not in sidecar(), "the DaemonSet relies on the image's entrypoint"

    def test_output_path_matches_the_manifest(self) -> None:
        env = {item["name"]: item.get("value") for item in sidecar()["env"]}  # type: ignore[attr-defined]
        envs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "ENV")
        assert f"EDGE_OUTPUT={env['EDGE_OUTPUT']}" in envs

    def test_non_root_by_default(self) -> None:
        users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
        assert users and users[-1].split(":")[0] not in ("0", "root")

    def test_nothing_runs_inside_the_target_architecture(self) -> None:
        """COPY only: every platform builds without emulation (tools/build-image.sh stages the layers)."""
        keywords = {keyword for keyword, _ in dockerfile_instructions()}
        assert "RUN" not in keywords, keywords

    def test_the_repository_is_not_a_build_context(self) -> None:
        patterns = [line for line in (REPO / ".dockerignore").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
        assert patterns == ["*"]


def test_the_image_carries_every_i2c_program_the_scripts_call() -> None:
    called = set()
    for script in (REPO / "scripts").glob("*.sh"):
        called |= set(re.findall(r"\b(i2c(?:get|set|dump|detect|transfer))\b", script.read_text()))
    assert called, "the bundled scripts read I2C"
    copied = re.search(r"for program in ([\w ]+); do cp", BUILD_SCRIPT.read_text())
    assert copied, "tools/build-image.sh copies no i2c program"
    assert called <= set(copied.group(1).split()), called - set(copied.group(1).split())
