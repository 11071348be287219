"""The chart as the tests see it: `helm template` / `helm lint` with the real helm (tools/fetch-helm.sh)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import REPO
from tests.k8s.manifests import load_all

CHART = REPO / "deploy" / "helm" / "edge-metrics-collector"
HELM = REPO / ".cache" / "tools" / "helm"
VALUES = Path(__file__).parent / "values"
# What the chart adds to every object it reads from the manifests.
CHART_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
                "app.kubernetes.io/part-of")
RELEASE, NAMESPACE = "edge", "monitoring"

Obj = dict[str, Any]


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        raise AssertionError(f"{HELM} missing: run `make helm` (make test does)")
    return subprocess.run([str(HELM), *(str(a) for a in args)], capture_output=True, text=True, timeout=120,
                          check=False)


def template_text(*values: Path, sets: tuple[str, ...] = ()) -> str:
    """What `helm template` prints; raises with helm's own message when it refuses."""
    args: list[str | Path] = ["template", RELEASE, CHART, "--namespace", NAMESPACE]
    for path in values:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{helm_error(result.stderr)}")
    return result.stdout


def template(*values: Path, sets: tuple[str, ...] = ()) -> list[Obj]:
    return load_all(template_text(*values, sets=sets))


def refusal(*values: Path, sets: tuple[str, ...] = ()) -> str:
    """helm's message when it refuses these values (AssertionError when it renders them)."""
    try:
        template_text(*values, sets=sets)
    except AssertionError as error:
        return str(error)
    raise AssertionError(f"helm rendered {values} {sets}")


def helm_error(stderr: str) -> str:
    """stderr without helm's INFO line for each of the chart's links into deploy/ (files/)."""
    return "\n".join(line for line in stderr.splitlines() if "found symbolic link" not in line)


def without_chart_labels(obj: Obj) -> Obj:
    """The object as the manifests have it: the chart's labels and checksum annotations taken off."""
    labels = obj["metadata"].get("labels", {})
    for key in CHART_LABELS:
        labels.pop(key, None)
    if not labels:
        obj["metadata"].pop("labels", None)
    pod_meta = obj.get("spec", {}).get("template", {}).get("metadata", {})
    annotations = pod_meta.get("annotations", {})
    for key in [k for k in annotations if k.startswith("checksum/")]:
        del annotations[key]
    if "annotations" in pod_meta and not annotations:
        del pod_meta["annotations"]
    return obj


def without_hashes(objects: list[Obj]) -> list[Obj]:
    """kustomize's output with its generated names' hash suffixes taken off, in the names and every reference."""
    import yaml

    hashed = [o["metadata"]["name"] for o in objects if o["kind"] in ("ConfigMap", "Secret")
              and re.fullmatch(r".+-[a-z0-9]{10}", o["metadata"]["name"])]
    text = yaml.safe_dump_all(objects)
    for name in hashed:
        text = re.sub(rf"\b{re.escape(name)}\b", name.rsplit("-", 1)[0], text)
    return load_all(text)


def key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]
