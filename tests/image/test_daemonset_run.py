"""The amd64 image run the way the DaemonSet runs it: the metric-sidecar container started by podman from
the image's archive with what the rendered manifest says (tests/image/podspec.py translates it: command,
env with NODE_NAME from the node, volumes at their mount paths, read-only root, user, capabilities,
seccomp, no privilege escalation, host network), beside the pod's node_exporter and vmagent and the
secure centre, run from the same manifests by tests/k8s/podsim.py. The I2C simulator stands in for the
board's /dev/i2c-*: its preload library (built for the image's libc, bookworm's like this machine's) and
compiled model are mounted into the container, and the scripts' i2cget opens /dev/i2c-0 there.

The rendered spec is the least-privilege variant (deploy/kubernetes/least-privilege): it sets every
restriction the default sets and more (no privileged, no capability, seccomp, no privilege escalation).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_metrics.simulate.session import Session
from testbed.certs import Pki
from testbed.net import http_get
from testbed.prometheus import PrometheusAPI
from testbed.push import STAMPED, samples_at_centre
from tests.helpers import SIM_LIB, Processes, processes, wait_until
from tests.image.engine import Podman
from tests.image.podspec import Run, podman_run
from tests.k8s.manifests import KUSTOMIZE_DIR, container, kustomize, load_all, rendered
from tests.k8s.podsim import Node, Pod, PodSpecError
from tests.k8s.test_pod_spec_run import MODEL, NODE_NAME, local_images

pytestmark = [pytest.mark.image, pytest.mark.k8s]

VARIANT = KUSTOMIZE_DIR / "least-privilege"
SIDECAR = "metric-sidecar"
SIM_DIR = "/run/edge-i2c-sim"  # where the simulator's model and state appear inside the container
SIM_PRELOAD = "/usr/lib/edge-i2c-sim/libi2csim.so"


def objects() -> list[dict[str, Any]]:
    return load_all(kustomize(VARIANT))


def daemonset_spec(objs: list[dict[str, Any]]) -> dict[str, Any]:
    daemonset = next(o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "node-exporter-arm64")
    return daemonset["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def simulator(session: Session) -> tuple[dict[str, str], list[str]]:
    """The env and mounts that make the model's buses /dev/i2c-N inside the container (docs/simulator.md)."""
    env = {"LD_PRELOAD": SIM_PRELOAD, "EDGE_I2C_SIM_MODEL": f"{SIM_DIR}/{session.compiled.name}",
           "EDGE_I2C_SIM_STATE": f"{SIM_DIR}/{session.state.name}",
           # This machine's kernel clock may not be synchronised (adjtimex), which would hold every reading.
           "EDGE_CLOCK_CHECK": "none",
           # The debug log names the time stamp the collector gave each run (what the centre must hold).
           "EDGE_LOG_LEVEL": "debug"}
    mounts = ["--volume", f"{session.directory}:{SIM_DIR}:rw", "--volume", f"{SIM_LIB}:{SIM_PRELOAD}:ro"]
    return env, mounts


def sidecar_run(node: Node, pod: Pod, pod_spec: dict[str, Any], session: Session, name: str) -> Run:
    env, mounts = simulator(session)
    return podman_run(pod_spec, container(pod_spec, SIDECAR), node_name=node.name, volumes=pod.volumes,
                      rewrite=node.rewrite_network, extra_env=env, extra_mounts=mounts, name=name)


def unique(what: str) -> str:
    """A container name of this test run only (the podman storage is shared by the checkouts' runs)."""
    return f"{NODE_NAME}-{what}-{os.getpid()}-{next(_SERIAL)}"


_SERIAL = itertools.count()


@dataclass
class Deployment:
    node: Node
    edge: Pod
    pki: Pki
    procs: Processes
    podman: Podman
    image: str
    run: Run
    logs: Path
    name: str  # the sidecar's container

    def centre(self) -> PrometheusAPI:
        return PrometheusAPI(f"https://127.0.0.1:{self.node.ports[9090]}", self.pki)

    def sidecar_log(self) -> str:
        return (self.logs / f"{SIDECAR}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, podman: Podman, amd64_image: str) -> Iterator[Deployment]:
    objs = objects()
    root = tmp_path_factory.mktemp("image-node")
    logs = root / "logs"
    logs.mkdir()
    pki = Pki(root / "pki")
    pki.make(nodes=[NODE_NAME])
    node = Node(root / "fs", NODE_NAME, objs, local_images(), secrets={"central-credentials": pki.files()},
                config_maps=pki.config_maps(),
                host_paths={"/etc/edge-metrics/credentials": pki.node_dir(NODE_NAME)})
    edge = node.pod("DaemonSet", "node-exporter-arm64")
    central = node.pod("Deployment", "central-prometheus")
    with processes() as procs, Session(MODEL) as session:
        for spec in central.spec["containers"]:
            entry = central.container(spec["name"])
            entry.start(procs, logs / f"{entry.name}.log")
        ready = f"https://127.0.0.1:{node.ports[9090]}/-/ready"
        wait_until(lambda: http_get(ready, context=pki.context(), headers=pki.basic_auth("admin")), timeout=60,
                   what="central ready")
        for spec in edge.spec["containers"]:
            if spec["name"] != SIDECAR:
                entry = edge.container(spec["name"])
                entry.start(procs, logs / f"{entry.name}.log")
        name = unique(SIDECAR)
        run = sidecar_run(node, edge, edge.spec, session, name)
        try:
            procs.start(podman.argv("run", "--rm", *run.options, amd64_image, *run.command), env=podman.env,
                        log=logs / f"{SIDECAR}.log")
            yield Deployment(node, edge, pki, procs, podman, amd64_image, run, logs, name)
        finally:
            podman("rm", "--force", "--time", "5", "--ignore", name, check=False, timeout=60)


class TestAsTheDaemonSetRunsIt:
    def test_readings_reach_the_centre_with_their_read_time(self, deployment: Deployment) -> None:
        centre = deployment.centre()
        selector = f'edge_temperature{{node="{NODE_NAME}"}}'

        def stamped_at_centre() -> list[tuple[int, float]] | None:
            samples = samples_at_centre(centre, selector)
            return samples if len(samples) >= 2 else None

        samples = wait_until(stamped_at_centre, timeout=120, interval=1,
                             what=f"two readings of {selector} at the centre (logs in {deployment.logs})")
        stamps = {int(ms) for script, ms, _ in STAMPED.findall(deployment.sidecar_log()) if script == "space_server"}
        assert {t for t, _ in samples} <= stamps, (samples, sorted(stamps))
        assert all(-40 < value < 125 for _, value in samples), samples

    def test_logs_show_shanghai_time(self, deployment: Deployment) -> None:
        wait_until(lambda: "node=" + NODE_NAME in deployment.sidecar_log(), timeout=60, what="the plan logged")
        plan = [line for line in deployment.sidecar_log().splitlines() if f"node={NODE_NAME}" in line]
        assert re.match(r"\S+\+08:00 ", plan[0]), plan[0]

    def test_node_exporter_serves_the_containers_file(self, deployment: Deployment) -> None:
        url = f"http://127.0.0.1:{deployment.node.ports[9100]}/metrics"

        def served() -> str | None:
            text = http_get(url).decode()
            return text if "edge_collector_info" in text else None

        metrics = wait_until(served, timeout=60, what="edge_collector_info at node_exporter")
        assert re.search(r"^node_textfile_scrape_error 0$", metrics, re.M)

    def test_liveness_probe_passes_inside_the_container(self, deployment: Deployment) -> None:
        probe = container(deployment.edge.spec, SIDECAR)["livenessProbe"]["exec"]["command"]
        name = deployment.name
        wait_until(lambda: deployment.podman("exec", name, *probe, check=False).returncode == 0, timeout=60,
                   what="the liveness probe to pass in the container")

    def test_the_container_runs_as_the_spec_says(self, deployment: Deployment) -> None:
        name = deployment.name
        inspect = json.loads(deployment.podman("inspect", name).stdout)[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert inspect["EffectiveCaps"] in (None, [])
        # The collector itself: PID 1 of the container.
        status = deployment.podman("exec", name, "cat", "/proc/1/status").stdout
        assert re.search(r"^Uid:\s+0\s", status, re.M), status  # runAsUser: 0 of the least-privilege spec
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        assert re.search(r"^Seccomp:\s+2$", status, re.M), status  # filter mode: the runtime's default profile
        assert re.search(r"^CapEff:\s+0+$", status, re.M), status


def run_once(podman: Podman, image: str, pod_spec: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`run --once` of metric-sidecar as `pod_spec` says, on a fresh fake node, textfile only (EDGE_PUSH_URL
    removed, as the manifest's comment says: no vmagent runs here)."""
    spec = copy.deepcopy(pod_spec)
    sidecar = container(spec, SIDECAR)
    sidecar["env"] = [item for item in sidecar["env"] if item["name"] != "EDGE_PUSH_URL"]
    spec["containers"] = [sidecar if c["name"] == SIDECAR else c for c in spec["containers"]]
    credentials = tmp_path / "credentials"  # vmagent's; the collector does not read them
    credentials.mkdir()
    node = Node(tmp_path / "fs", NODE_NAME, objects(), local_images(),
                host_paths={"/etc/edge-metrics/credentials": credentials})
    pod = Pod(node, f"node-exporter-arm64-{NODE_NAME}", spec)
    with Session(MODEL) as session:
        run = sidecar_run(node, pod, spec, session, unique("once"))
        return podman.run(image, run.options, [*run.command, "--once"], timeout=120)


def with_sidecar(pod_spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(pod_spec)
    for entry in spec["containers"]:
        if entry["name"] == SIDECAR:
            entry.update(changes)
    return spec


class TestSpecTheImageCannotSatisfy:
    """A pod spec change the image cannot satisfy fails here, not on the board."""

    def test_the_shipped_spec_runs_once(self, podman: Podman, amd64_image: str, tmp_path: Path) -> None:
        result = run_once(podman, amd64_image, daemonset_spec(objects()), tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_the_default_privileged_spec_runs_once(self, podman: Podman, amd64_image: str, tmp_path: Path) -> None:
        result = run_once(podman, amd64_image, daemonset_spec(rendered()), tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_writing_outside_the_volumes_fails(self, podman: Podman, amd64_image: str, tmp_path: Path) -> None:
        spec = daemonset_spec(objects())
        env = [dict(item, value="/var/lib/elsewhere/custom_metrics.prom") if item["name"] == "EDGE_OUTPUT" else item
               for item in container(spec, SIDECAR)["env"]]
        result = run_once(podman, amd64_image, with_sidecar(spec, env=env), tmp_path)
        assert result.returncode != 0, result.stdout + result.stderr
        assert "/var/lib/elsewhere" in result.stderr + result.stdout

    def test_a_binary_the_image_lacks_fails(self, podman: Podman, amd64_image: str, tmp_path: Path) -> None:
        spec = with_sidecar(daemonset_spec(objects()), command=["edge-metrics-agent"])
        result = run_once(podman, amd64_image, spec, tmp_path)
        assert result.returncode != 0
        assert "edge-metrics-agent" in result.stderr

    def test_a_field_not_translated_is_refused(self) -> None:
        spec = daemonset_spec(objects())
        context = dict(container(spec, SIDECAR)["securityContext"], procMount="Unmasked")
        spec = with_sidecar(spec, securityContext=context)
        with pytest.raises(PodSpecError, match="procMount"):
            podman_run(spec, container(spec, SIDECAR), node_name=NODE_NAME, volumes={}, rewrite=str, name="x")
