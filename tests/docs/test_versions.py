"""docs/kubernetes.md names the versions the manifests run, not an older set's."""

from __future__ import annotations

import re

from tests.helpers import REPO
from tests.k8s.manifests import rendered

DOCS = REPO / "docs" / "kubernetes.md"


def test_every_image_the_docs_name_is_the_manifests() -> None:
    images = {c["image"] for o in rendered() if o["kind"] in ("DaemonSet", "Deployment")
              for c in o["spec"]["template"]["spec"]["containers"]}
    named = set(re.findall(r"`((?:quay\.io/prometheus|victoriametrics|ghcr\.io/edge-metrics)/[a-z-]+:v?[0-9.]+)`",
                           DOCS.read_text()))
    assert named and named <= images, named - images


def test_components_named_are_the_pinned_ones() -> None:
    """The components the tests run, as the docs name them, are those of deploy/components.versions."""
    pinned = {line.split()[2]: line.split()[3].split("+")[0].split("-")[0]
              for line in (REPO / "deploy" / "components.versions").read_text().splitlines()
              if line.startswith("current")}
    docs = DOCS.read_text()
    for package, words in (("prometheus-node-exporter", "node_exporter"), ("victoria-metrics", "vmagent"),
                           ("prometheus", "Prometheus")):
        for version in re.findall(rf"{words} (\d+\.\d+(?:\.\d+)?)\b", docs):
            assert pinned[package].startswith(version), f"{DOCS.name}: {words} {version} is not {pinned[package]}"
