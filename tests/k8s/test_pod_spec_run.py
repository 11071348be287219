"""The rendered DaemonSet, run: each container as a local process with the manifest's own args, env and
volumes (tests/k8s/podsim.py says how the kubelet is emulated), feeding a Prometheus started from the
central Deployment and its ConfigMap. Readings must flow metric-sidecar -> node-exporter -> vmagent ->
centre, so a path, port or flag that differs between two containers fails here.

One pod set is started for the whole module (about a minute to get readings through a 15 s scrape
interval); the tests read it in order, and the ConfigMap update comes last because it changes it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.certs import Pki
from testbed.net import http_get
from tests.helpers import EDGE_METRICS, REPO, SIM_LIB, Processes, components, processes, wait_until
from tests.image.engine import image_ref
from tests.k8s.manifests import container, dockerfile_entrypoint, find, rendered
from tests.k8s.podsim import Container, LocalImage, Node, Pod, _resolve_port

pytestmark = pytest.mark.k8s

NODE_NAME = "bupt-a"  # the seed's example node: space_server on simulated I2C sensors
MODEL = REPO / "scripts" / "models" / "space_server.yaml"
VENV_BIN = EDGE_METRICS.parent


def local_images() -> dict[str, LocalImage]:
    """Each image of the manifests -> the local program that stands in for its entrypoint."""
    parts = components()
    # The Dockerfile's ENTRYPOINT, its program taken from this checkout's virtualenv.
    program, *entry_args = dockerfile_entrypoint()
    collector_entrypoint = [str(VENV_BIN / program), *entry_args]
    collector_env = {
        # The image's i2c-tools: Debian's i2c-tools 4.3, from the components cache.
        "PATH": f"{parts['I2C_TOOLS_DIR']}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "LD_LIBRARY_PATH": parts["I2C_LIBRARY_PATH"],
        # This machine's kernel clock may not be synchronised (adjtimex), which would hold every pushed reading.
        "EDGE_CLOCK_CHECK": "none",
    }
    return {
        "quay.io/prometheus/node-exporter": LocalImage([parts["NODE_EXPORTER_BIN"]]),
        "victoriametrics/vmagent": LocalImage([parts["VMAGENT_BIN"]]),
        "victoriametrics/vmauth": LocalImage([parts["VMAUTH_BIN"]]),
        "quay.io/prometheus/prometheus": LocalImage([parts["PROMETHEUS_BIN"]]),
        # This machine has no I2C bus: the collector runs under the simulator with the sensors'
        # model, exactly as `edge-metrics simulate --model ... -- edge-metrics run` is documented.
        image_ref().name: LocalImage(
            [str(EDGE_METRICS), "simulate", "--model", str(MODEL), "--", *collector_entrypoint], collector_env
        ),
    }


@dataclass
class Deployment:
    node: Node
    edge: Pod
    central: Pod
    procs: Processes
    started: dict[str, Any]
    logs: Path
    pki: Pki

    def container(self, name: str) -> Container:
        """A started container: the DaemonSet's three, or one of the centre's."""
        return self.started["containers"][name]  # type: ignore[no-any-return]

    def url(self, container_port: int) -> str:
        return f"http://127.0.0.1:{self.node.ports[container_port]}"

    def central_get(self, path: str) -> str:
        """GET from the central Prometheus as its admin user, over TLS verified with the Secret's CA."""
        url = f"https://127.0.0.1:{self.node.ports[9090]}{path}"
        return http_get(url, context=self.pki.context(), headers=self.pki.basic_auth("admin")).decode()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query at the central Prometheus."""
        body = json.loads(self.central_get("/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with run_pods(rendered(), tmp_path_factory.mktemp("node")) as started:
        yield started


@contextmanager
def run_pods(
    objects: list[Any], root: Path, *, credentials: Path | None = None,
    images: Mapping[str, LocalImage] | None = None, memory_root: Path | None = None,
) -> Iterator[Deployment]:
    """The edge DaemonSet and the central Deployment of `objects` (a render of the manifests or of the chart),
    started as local processes: the centre first, until it is ready. `credentials`: the node's
    /etc/edge-metrics/credentials (default: make-certs' files for the node, as provisioned). `images` replaces
    local_images() (bench/pod wraps them to count fsyncs), `memory_root` is podsim's tmpfs for memory-backed
    emptyDirs."""
    for required in (EDGE_METRICS, MODEL, SIM_LIB):
        assert required.exists(), f"{required} missing: run `make test` (it builds the venv and the simulator)"
    logs = root / "logs"
    logs.mkdir()
    # The first install of docs/security.md: tools/make-certs.sh, the centre's files as the Secret
    # central-credentials, the node's directory provisioned on the node.
    pki = Pki(root / "pki")
    pki.make(nodes=[NODE_NAME])
    node = Node(
        root / "fs", NODE_NAME, objects, local_images() if images is None else images,
        secrets={"central-credentials": pki.files()},
        config_maps=pki.config_maps(),
        host_paths={"/etc/edge-metrics/credentials": credentials or pki.node_dir(NODE_NAME)},
        memory_root=memory_root,
    )
    edge = node.pod("DaemonSet", "node-exporter-arm64")
    central = node.pod("Deployment", "central-prometheus")
    with processes() as procs:
        started: dict[str, Any] = {"containers": {}, "procs": {}, "central": {}}
        for spec in central.spec["containers"]:
            entry = central.container(spec["name"])
            started["containers"][entry.name] = entry
            started["central"][entry.name] = entry.start(procs, logs / f"{entry.name}.log")
        ready = f"https://127.0.0.1:{node.ports[9090]}/-/ready"
        wait_until(lambda: http_get(ready, context=pki.context(), headers=pki.basic_auth("admin")), timeout=30,
                   what="central ready")
        for spec in edge.spec["containers"]:
            entry = edge.container(spec["name"])
            started["containers"][entry.name] = entry
            started["procs"][entry.name] = entry.start(procs, logs / f"{entry.name}.log")
        yield Deployment(node, edge, central, procs, started, logs, pki)


def _value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if result else None


def _group_rss_kib(leader: int) -> int:
    """Resident memory of the container's processes: `leader`'s process group, less the simulator's
    wrapper process (`edge-metrics simulate`), which the real image does not run."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        pgrp = int(stat.rsplit(")", 1)[1].split()[2])
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        if pgrp == leader and match and b"simulate" not in argv[1:3]:
            total += int(match.group(1))
    return total


def _quantity_kib(quantity: str) -> int:
    units = {"Ki": 1, "Mi": 1024, "Gi": 1024 * 1024}
    return int(quantity[:-2]) * units[quantity[-2:]]


class TestPodSpecRun:
    """The DaemonSet as written moves readings from the collector to the central Prometheus."""

    def test_readings_reach_the_centre_with_the_node_label(self, deployment: Deployment) -> None:
        # interval 10 s + scrape 15 s + remote-write flush, with room for a slow start
        result = wait_until(
            lambda: deployment.query(
                # job="": pushed by the collector (push mode, the DaemonSet's default), not scraped
                f'{{__name__=~"edge_.+", __name__!~"edge_collector_.+", node="{NODE_NAME}", job=""}}'
            ),
            timeout=90, interval=1, what=f"a script reading from {NODE_NAME} at the centre "
            f"(logs in {deployment.logs})",
        )
        assert {sample["metric"]["node"] for sample in result} == {NODE_NAME}
        # The self-metrics come by vmagent's 15 s scrape of node_exporter, which may trail the pushed readings.
        info = wait_until(lambda: deployment.query(f'edge_collector_info{{node="{NODE_NAME}"}}'), timeout=60,
                          interval=1, what="edge_collector_info at the centre")
        assert info[0]["metric"]["node"] == NODE_NAME
        success = wait_until(
            lambda: deployment.query(f'edge_collector_script_success{{node="{NODE_NAME}",script="space_server"}}'),
            timeout=60, interval=1, what="edge_collector_script_success at the centre",
        )
        assert _value(success) == 1.0, deployment.log("metric-sidecar")

    def test_node_exporter_reads_the_collectors_file_without_error(self, deployment: Deployment) -> None:
        metrics = _get(deployment.url(9100) + "/metrics")
        assert re.search(r"^node_textfile_scrape_error 0$", metrics, re.M), metrics[-2000:]
        assert "edge_collector_last_write_timestamp_seconds" in metrics

    @pytest.mark.parametrize("name", ["node-exporter", "vmagent"])
    def test_http_liveness_probes_answer(self, deployment: Deployment, name: str) -> None:
        url = deployment.container(name).http_probe_url("livenessProbe")
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200, url

    def test_centre_probes_answer(self, deployment: Deployment) -> None:
        """TCP probes (every HTTP endpoint of the centre wants credentials): each port accepts."""
        for name in ("prometheus", "vmauth"):
            entry = deployment.container(name)
            for kind in ("readinessProbe", "livenessProbe"):
                if kind in entry.spec:
                    port = _resolve_port({"containers": [entry.spec]}, entry.spec[kind]["tcpSocket"]["port"])
                    socket.create_connection(("127.0.0.1", deployment.node.ports[port]), timeout=5).close()

    def test_centre_loaded_the_alert_rules_from_its_configmap(self, deployment: Deployment) -> None:
        rules = json.loads(deployment.central_get("/api/v1/rules"))
        assert rules["data"]["groups"], "prometheus.yml names rule files that the Deployment does not mount"

    def test_vmagent_queue_is_in_the_hostpath_volume(self, deployment: Deployment) -> None:
        queue = deployment.edge.volumes["vmagent-queue"]
        assert any(queue.rglob("*")), f"vmagent created nothing in its hostPath volume {queue}"

    def test_runbook_log_tail_shows_the_plan_in_shanghai_time(self, deployment: Deployment) -> None:
        """What `kubectl logs ... -c metric-sidecar --tail=10` shows: node, script and output path."""
        tail = deployment.log("metric-sidecar").splitlines()[-10:]
        output = deployment.container("metric-sidecar").env["EDGE_OUTPUT"]
        plan = [line for line in tail if f"node={NODE_NAME}" in line and "space_server" in line and output in line]
        assert plan, tail
        assert re.match(r"\S+\+08:00 ", plan[-1]), plan[-1]

    def test_liveness_probe_passes_while_producing_and_fails_when_the_collector_stalls(
        self, deployment: Deployment
    ) -> None:
        sidecar = deployment.container("metric-sidecar")
        assert sidecar.run_liveness_probe().returncode == 0
        leader = deployment.started["procs"]["metric-sidecar"].pid
        output = Path(sidecar.env["EDGE_OUTPUT"])
        os.killpg(leader, signal.SIGSTOP)
        try:
            stale = time.time() - 300
            os.utime(output, (stale, stale))  # what five silent minutes leave behind
            assert sidecar.run_liveness_probe().returncode != 0
        finally:
            os.killpg(leader, signal.SIGCONT)
        wait_until(lambda: sidecar.run_liveness_probe().returncode == 0, timeout=30, interval=0.5,
                   what="the probe to pass again once the collector writes")

    def test_each_container_stays_within_its_memory_limit(self, deployment: Deployment) -> None:
        report = []
        for name, proc in deployment.started["procs"].items():  # the DaemonSet's containers
            rss = _group_rss_kib(proc.pid)
            limit = _quantity_kib(container(deployment.edge.spec, name)["resources"]["limits"]["memory"])
            report.append(f"{name}: {rss} KiB of {limit} KiB")
            assert 0 < rss < limit, report
        print("RSS per container:", "; ".join(report))

    def test_configmap_update_reaches_the_running_collector_without_restart(self, deployment: Deployment) -> None:
        collector = deployment.started["procs"]["metric-sidecar"]
        config_map = find(rendered(), "ConfigMap", "edge-metrics-config")["data"]
        script = config_map["space_server.sh"].split("\n", 1)
        assert script[0] == "#!/bin/bash"
        updated = dict(config_map)
        updated["space_server.sh"] = script[0] + "\necho configmap_update_marker=7\n" + script[1]
        # A new key too: the kubelet adds its `name -> ..data/name` link along with the swap.
        updated["added_script.sh"] = "#!/bin/bash\necho added_script_reading=1\n"
        updated["nodes.conf"], count = re.subn(
            rf"^{NODE_NAME}=.*$", f"{NODE_NAME}=space_server:3s,added_script:2s", config_map["nodes.conf"],
            flags=re.M,
        )
        assert count == 1, config_map["nodes.conf"]

        deployment.edge.update_config_map("config", updated)

        wait_until(
            lambda: _value(deployment.query(f'edge_configmap_update_marker{{node="{NODE_NAME}"}}')) == 7.0,
            timeout=90, interval=1, what="the changed script's new reading at the centre",
        )
        wait_until(
            lambda: _value(deployment.query(
                f'edge_collector_script_interval_seconds{{node="{NODE_NAME}",script="space_server"}}'
            )) == 3.0,
            timeout=60, interval=1, what="the changed nodes.conf interval at the centre",
        )
        wait_until(
            lambda: _value(deployment.query(f'edge_added_script_reading{{node="{NODE_NAME}"}}')) == 1.0,
            timeout=60, interval=1, what="the added script's reading at the centre",
        )
        assert collector.poll() is None, "the collector restarted or died:\n" + deployment.log("metric-sidecar")
