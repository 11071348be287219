"""Revoking and rotating a node's token take effect in the running centre, with no restart and no signal:
the rendered central pod (vmauth, the gate, Prometheus, with the manifest's own args and volumes,
tests/k8s/podsim.py) runs with tools/make-certs.sh's credentials as the Secret central-credentials; the
Secret is then changed the way docs/security.md says (make-certs again, the Secret re-created) and
delivered the way the kubelet delivers it to a directory mount (a `..data` symlink swap). vmauth must
see it within its -configCheckInterval (the bound docs/security.md states) plus a margin for the write
to arrive.
"""

from __future__ import annotations

import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from edge_metrics.durations import parse_duration
from testbed.certs import Pki
from testbed.remote_write import remote_write_body
from tests.helpers import processes, wait_until
from tests.k8s.manifests import container, find, rendered
from tests.k8s.podsim import Node, Pod
from tests.k8s.test_pod_spec_run import local_images

pytestmark = pytest.mark.k8s

KEPT = "edge-a"  # keeps its token throughout
RETIRED = "edge-b"  # revoked: its user removed
ROTATED = "edge-c"  # gets a new token
MARGIN = 10.0  # seconds on top of the bound: vmauth's re-read, then one write on a loaded machine


@dataclass
class Centre:
    pod: Pod
    node: Node
    pki: Pki
    secret_volumes: dict[str, dict[str, str]]  # volume -> {key: path} of the Secret's items

    def write(self, token: str) -> int:
        """One reading written with `token` through vmauth, as a node's vmagent would: the HTTP status."""
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.node.ports[8427]}/api/v1/write",
            data=remote_write_body(b"e2e_rotation_probe 1\n"),
            headers={"Authorization": f"Bearer {token}", "Content-Encoding": "snappy"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.pki.context()) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (urllib.error.URLError, ssl.SSLError, OSError):
            return 0

    def update_secret(self) -> None:
        """The Secret re-created from make-certs' output, as the kubelet delivers it to every volume of it."""
        files = self.pki.files()
        for volume, items in self.secret_volumes.items():
            self.pod.update_config_map(volume, {path: files[key] for key, path in items.items()})


def vmauth_bound() -> float:
    """vmauth's -configCheckInterval in the Deployment: how soon it sees a changed auth.yml (without the
    flag it never does: the test then waits the margin alone, and fails)."""
    spec = find(rendered(), "Deployment", "central-prometheus")["spec"]["template"]["spec"]
    args = dict(arg.partition("=")[::2] for arg in container(spec, "vmauth")["args"])
    return parse_duration(args["-configCheckInterval"]) if "-configCheckInterval" in args else 0.0


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    objects = rendered()
    root = tmp_path_factory.mktemp("rotation")
    pki = Pki(root / "pki")
    pki.make(nodes=[KEPT, RETIRED, ROTATED])
    node = Node(root / "fs", "centre", objects, local_images(), secrets={"central-credentials": pki.files()},
                config_maps=pki.config_maps())
    pod = node.pod("Deployment", "central-prometheus")
    secret_volumes = {
        volume["name"]: {item["key"]: item["path"] for item in volume["secret"]["items"]}
        for volume in pod.spec["volumes"]
        if volume.get("secret", {}).get("secretName") == "central-credentials"
    }
    with processes() as procs:
        for spec in pod.spec["containers"]:
            pod.container(spec["name"]).start(procs, root / f"{spec['name']}.log")
        running = Centre(pod, node, pki, secret_volumes)
        wait_until(lambda: running.write(pki.token(KEPT)) == 204, timeout=60, interval=0.5, what="a write accepted")
        yield running


def status_within(centre: Centre, token: str, status: int, bound: float) -> float:
    """Seconds until a write with `token` gets `status`; fails after the bound plus the margin."""
    started = time.monotonic()
    wait_until(
        lambda: centre.write(token) == status,
        timeout=bound + MARGIN,
        interval=0.25,
        what=f"HTTP {status} within -configCheckInterval ({bound:.0f} s) + {MARGIN:.0f} s",
    )
    return time.monotonic() - started


class TestRevocationAndRotation:
    def test_a_retired_nodes_token_is_refused_within_the_bound(self, centre: Centre) -> None:
        """docs/security.md's retirement: `rm -r nodes/<node>`, make-certs, the Secret re-created. No
        signal, no restart: the node's token is refused (401) within the bound; the others still write."""
        bound = vmauth_bound()
        old = centre.pki.token(RETIRED)
        assert centre.write(old) == 204
        shutil.rmtree(centre.pki.node_dir(RETIRED))
        centre.pki.make(nodes=[KEPT, ROTATED])
        centre.update_secret()
        took = status_within(centre, old, 401, bound)
        assert centre.write(centre.pki.token(KEPT)) == 204
        print(f"retired token refused {took:.1f} s after the Secret update (bound {bound:.0f} s)")

    def test_a_rotated_token_replaces_the_old_one_within_the_bound(self, centre: Centre) -> None:
        """docs/security.md's rotation: the node's directory removed, make-certs with the node again. The
        new token is accepted and the old one refused within the bound, with no signal or restart."""
        bound = vmauth_bound()
        old = centre.pki.token(ROTATED)
        shutil.rmtree(centre.pki.node_dir(ROTATED))
        centre.pki.make(nodes=[KEPT, ROTATED])
        new = centre.pki.token(ROTATED)
        assert new != old
        assert centre.write(new) == 401  # not yet in the running vmauth
        centre.update_secret()
        took = status_within(centre, new, 204, bound)
        assert centre.write(old) == 401
        assert centre.write(centre.pki.token(KEPT)) == 204
        print(f"rotated token accepted, old one refused {took:.1f} s after the Secret update (bound {bound:.0f} s)")
