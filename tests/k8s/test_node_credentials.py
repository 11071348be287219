"""tools/node-credentials.sh: each node's own credentials, placed through the cluster (a Secret and a Job per node),
checked without a cluster: --print's objects validate strictly, each Job runs on its node only and holds only that
node's files, and the Job's script, run here with the Secret's files, installs them as the DaemonSet reads them."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.k8s.manifests import SCHEMA_VERSIONS, load_all, schema_errors

pytestmark = pytest.mark.k8s

SCRIPT = REPO / "tools" / "node-credentials.sh"
NODES = ("edge-a", "edge-b")
FILES = ("ca.crt", "token", "admin-key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    subprocess.run(["bash", str(REPO / "tools" / "make-certs.sh"), "--out", str(out),
                    *[arg for node in NODES for arg in ("--node", node)]], check=True, capture_output=True, timeout=120)
    return out


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


def printed(pki: Path) -> list[dict[str, object]]:
    result = run("--pki", str(pki), "--print", *NODES)
    assert result.returncode == 0, result.stderr
    return load_all(result.stdout)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_printed_objects_validate_strictly(pki: Path, version: str) -> None:
    objects = printed(pki)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(  # type: ignore[index]
        (kind, f"edge-credentials-{node}") for kind in ("Secret", "Job") for node in NODES)
    assert schema_errors(objects, version) == []


def test_each_job_is_pinned_to_its_node_and_holds_only_its_files(pki: Path) -> None:
    objects = printed(pki)
    for node in NODES:
        secret = next(o for o in objects if o["metadata"]["name"] == f"edge-credentials-{node}"  # type: ignore[index]
                      and o["kind"] == "Secret")
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}  # type: ignore[index]
        assert data == {f: (pki / "nodes" / node / f).read_bytes() for f in FILES}
        job = next(o for o in objects if o["metadata"]["name"] == f"edge-credentials-{node}"  # type: ignore[index]
                   and o["kind"] == "Job")
        spec = job["spec"]["template"]["spec"]  # type: ignore[index]
        assert spec["nodeName"] == node
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["secret"]["secret"]["secretName"] == f"edge-credentials-{node}"
        # The very directory the DaemonSet's vmagent mounts.
        assert volumes["credentials"]["hostPath"]["path"] == "/etc/edge-metrics/credentials"


def test_job_script_installs_the_files_private(pki: Path, tmp_path: Path) -> None:
    job = next(o for o in printed(pki) if o["kind"] == "Job")
    entry = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert entry["command"] == ["bash", "-c"]
    target = tmp_path / "host" / "credentials"
    target.mkdir(parents=True)  # hostPath DirectoryOrCreate: the kubelet made it
    env = {"PATH": os.environ["PATH"], "SOURCE": str(pki / "nodes" / "edge-a"), "TARGET": str(target),
           "NODE_NAME": "edge-a"}
    result = subprocess.run(["bash", "-c", entry["args"][0]], env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    for name in FILES:
        assert (target / name).read_bytes() == (pki / "nodes" / "edge-a" / name).read_bytes()
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600


def test_a_node_without_credentials_is_named(pki: Path) -> None:
    result = run("--pki", str(pki), "--print", "edge-a", "edge-c")
    assert result.returncode == 1
    assert "nodes/edge-c/ca.crt missing" in result.stderr and "--node edge-c" in result.stderr
