"""The rendered Kubernetes manifests, as the tests see them: `kubectl kustomize deploy/kubernetes`."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.helpers import REPO

KUSTOMIZE_DIR = REPO / "deploy" / "kubernetes"
ALL_IN_ONE = KUSTOMIZE_DIR / "all-in-one.yaml"
RENDER_SCRIPT = REPO / "tools" / "render-manifests.sh"
DOCKERFILE = REPO / "Dockerfile"

Obj = dict[str, Any]
# kubectl on these machines is 1.32; the newest schema kubernetes-validate bundles is "current".
SCHEMA_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())


def kustomize(directory: Path = KUSTOMIZE_DIR) -> str:
    """What `kubectl kustomize DIR` prints; raises with kustomize's own error when it refuses."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return result.stdout


@functools.cache
def rendered_text() -> str:
    return kustomize()


def load_all(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def rendered() -> list[Obj]:
    """A fresh copy of the rendered objects (callers may modify it)."""
    return load_all(rendered_text())


def find(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The one object of `kind` (and `name`); ConfigMap names match with or without their hash suffix."""
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind
        and (name is None or obj["metadata"]["name"] == name or _unhashed(obj, name))
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {[m['metadata']['name'] for m in matches]}"
    return matches[0]


def _unhashed(obj: Obj, name: str) -> bool:
    actual: str = obj["metadata"]["name"]
    return obj["kind"] in ("ConfigMap", "Secret") and actual.rsplit("-", 1)[0] == name


def config_maps(objects: list[Obj]) -> dict[str, dict[str, str]]:
    """ConfigMap name (with hash) -> data."""
    return {obj["metadata"]["name"]: dict(obj.get("data", {})) for obj in objects if obj["kind"] == "ConfigMap"}


def container(pod_spec: Obj, name: str) -> Obj:
    for entry in pod_spec["containers"]:
        if entry["name"] == name:
            return dict(entry)
    raise AssertionError(f"no container {name!r} in pod spec")


def flags_file(path: Path) -> list[str]:
    """deploy/*/*.flags: one flag per line, `#` comment lines and blank lines ignored."""
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def dockerfile_entrypoint() -> list[str]:
    """The collector image's ENTRYPOINT (exec form), as the DaemonSet runs it."""
    entrypoints = [json.loads(args) for keyword, args in dockerfile_instructions() if keyword == "ENTRYPOINT"]
    assert entrypoints, "the Dockerfile has no ENTRYPOINT"
    return list(entrypoints[-1])


def schema_errors(objects: list[Obj], version: str) -> list[str]:
    """Every object against the Kubernetes OpenAPI schema of `version`, strictly (an unknown field is an error):
    one line per problem, naming the object and the field."""
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(error.message)
    return errors
