"""The ARM images for real, under emulation (tests/image/emulation.py): in each image's own filesystem the
collector runs the bundled space_server script against the simulator (its preload library cross-built for
the architecture) and prints the same readings as the amd64 image for the same model; on arm64, Debian's
arm64 node_exporter and vmagent take its file and its push, and vmagent delivers to a store. Timings under
emulation mean nothing and are not asserted; correctness is."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_metrics.simulate.session import Session
from testbed.certs import Pki
from testbed.exposition import parse_metrics
from testbed.net import http_get
from testbed.node import Node
from tests.helpers import components, free_port, processes, run_in_own_group, wait_until
from tests.image.emulation import PRELOAD, EmulationUnavailable, check_available, in_namespace, rootfs
from tests.image.emulation import components as foreign_components
from tests.k8s.test_pod_spec_run import MODEL, NODE_NAME

pytestmark = [pytest.mark.image, pytest.mark.sim]

SIM_DIR = "/run/edge-i2c-sim"
TEXTFILE = "/var/lib/node-exporter/textfile"


def frozen(value: Any) -> Any:
    """A model value that does not change with time: a sine's centre, a sequence's first, a ramp's start."""
    if isinstance(value, dict):
        if "sine" in value:
            return value["sine"]["center"]
        if "sequence" in value:
            return value["sequence"][0]
        if "ramp" in value:
            return value["ramp"]["from"]
        return {key: frozen(inner) for key, inner in value.items()}
    return value


@pytest.fixture(scope="module")
def still_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled space_server model with every time-varying register frozen: two runs on two architectures
    at two moments must read the same registers."""
    path = tmp_path_factory.mktemp("model") / "space_server_still.yaml"
    path.write_text(yaml.safe_dump(frozen(yaml.safe_load(MODEL.read_text()))))
    return path


def collector_argv(*args: str, **env: str) -> list[str]:
    variables = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "LD_PRELOAD": PRELOAD,
                 "EDGE_I2C_SIM_MODEL": f"{SIM_DIR}/model", "EDGE_I2C_SIM_STATE": f"{SIM_DIR}/state",
                 "EDGE_CLOCK_CHECK": "none", "TZ": "Asia/Shanghai",
                 # Every i2cget starts a process under emulation: the scripts' time budget is not the board's.
                 "EDGE_SCRIPT_TIMEOUT": "120s", **env}
    return ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in variables.items()), "edge-metrics", *args]


def readings(text: str) -> list[str]:
    """The script's readings of a textfile: `edge_<key>{labels} value` lines, the collector's own aside."""
    lines = text.splitlines()
    return sorted(line for line in lines if line.startswith("edge_") and not line.startswith("edge_collector_"))


def run_once(arch: str, root: Path, model: Path) -> subprocess.CompletedProcess[bytes]:
    with Session(model) as session:
        argv = in_namespace(arch, collector_argv("run", "--once", "--output", "-", "--node-name", NODE_NAME),
                            chroot=root, binds=[(session.directory, SIM_DIR)])
        return run_in_own_group(argv, timeout=600)


@pytest.fixture(scope="module")
def amd64_readings(image_out: Path, still_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    result = run_once("amd64", rootfs("amd64", tmp_path_factory.mktemp("rootfs-amd64")), still_model)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    found = readings(result.stdout.decode())
    assert len(found) >= 5, result.stdout.decode()
    return found


def foreign_rootfs(arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        check_available(arch)
    except EmulationUnavailable as error:
        pytest.fail(f"{arch} cannot be emulated here: {error}")
    return rootfs(arch, tmp_path_factory.mktemp(f"rootfs-{arch}"))


@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_same_readings_as_amd64_for_the_same_model(arch: str, amd64_readings: list[str], still_model: Path,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    root = foreign_rootfs(arch, tmp_path_factory)
    machine = run_in_own_group(in_namespace(arch, ["uname", "-m"], chroot=root), timeout=120)
    assert machine.stdout.decode().strip() == {"arm64": "aarch64", "armhf": "armv7l"}[arch], machine
    result = run_once(arch, root, still_model)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert readings(result.stdout.decode()) == amd64_readings


@pytest.fixture(scope="module")
def arm64_node(image_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    """arm64 node_exporter and vmagent (Debian's arm64 binaries, the shipped flags) and the arm64 image's
    collector in push mode, vmagent writing to a VictoriaMetrics on this machine."""
    root = foreign_rootfs("arm64", tmp_path_factory)
    binaries = foreign_components("arm64")
    work = tmp_path_factory.mktemp("arm64-node")
    pki = Pki(work / "pki")
    pki.make(nodes=[NODE_NAME])
    store_port = free_port()
    store = f"http://127.0.0.1:{store_port}"
    with processes() as procs, Session(MODEL) as session:
        procs.start([components()["VICTORIA_METRICS_BIN"], f"-storageDataPath={work / 'store'}",
                     f"-httpListenAddr=127.0.0.1:{store_port}"], log=work / "store.log")
        wait_until(lambda: http_get(store + "/health"), timeout=30, what="the store")
        node = Node(procs, work / "node", name=NODE_NAME, remote_write_url=store + "/api/v1/write",
                    scrape_interval="5s", credentials=pki.node_dir(NODE_NAME))
        # Debian's Go builds are dynamically linked: qemu finds their arm64 libc in the image's filesystem.
        libc = {**os.environ, "QEMU_LD_PREFIX": str(root)}
        exporter = [str(binaries["NODE_EXPORTER_BIN"]), *node.node_exporter_argv()[1:]]
        node.node_exporter = procs.start(in_namespace("arm64", exporter), env=libc,
                                         log=node.workdir / "node-exporter.log")
        vmagent = [str(binaries["VMAGENT_BIN"]), *node.vmagent_argv()[1:]]
        node.vmagent = procs.start(in_namespace("arm64", vmagent), env=libc, log=node.workdir / "vmagent.log")
        wait_until(node.vmagent_metrics, timeout=120, what=f"arm64 vmagent serving (logs in {node.workdir})")
        push = f"http://{node.vmagent_address}/api/v1/import/prometheus"
        argv = collector_argv("run", "--node-name", NODE_NAME, "--output", f"{TEXTFILE}/custom_metrics.prom",
                              EDGE_PUSH_URL=push, EDGE_DEFAULT_INTERVAL="5s")
        procs.start(in_namespace("arm64", argv, chroot=root,
                                 binds=[(session.directory, SIM_DIR), (node.textfile_dir, TEXTFILE)]),
                    log=node.workdir / "collector.log")
        yield node, store


def exported(store: str, selector: str) -> str:
    return http_get(f"{store}/api/v1/export?" + urllib.parse.urlencode({"match[]": selector})).decode()


class TestArm64Node:
    def test_node_exporter_takes_the_collectors_file(self, arm64_node: tuple[Node, str]) -> None:
        node, _ = arm64_node

        def served() -> dict[str, float] | None:
            metrics = node.node_exporter_metrics()
            return metrics if any(name.startswith("edge_collector_info") for name in metrics) else None

        metrics = wait_until(served, timeout=300, interval=2,
                             what=f"edge_collector_info at the arm64 node_exporter (logs in {node.workdir})")
        assert metrics["node_textfile_scrape_error"] == 0

    def test_vmagent_takes_the_push_and_delivers_it(self, arm64_node: tuple[Node, str]) -> None:
        node, store = arm64_node
        pushed = wait_until(lambda: exported(store, f'edge_temperature{{node="{NODE_NAME}"}}'), timeout=300,
                            interval=2, what=f"pushed readings at the store (logs in {node.workdir})")
        assert re.search(r'"cluster":"[^"]+"', pushed), pushed
        scraped = wait_until(lambda: exported(store, f'edge_collector_info{{node="{NODE_NAME}"}}'), timeout=120,
                             interval=2, what="the collector's own metrics, scraped through node_exporter")
        assert scraped
        assert parse_metrics(http_get(f"http://{node.vmagent_address}/metrics").decode())


def test_emulation_left_the_host_alone() -> None:
    """Registration happened in the tests' own namespaces: the host's binfmt_misc has no qemu entry."""
    host = Path("/proc/sys/fs/binfmt_misc")
    assert not any(entry.name.startswith("qemu-") for entry in host.iterdir()) if host.is_dir() else True
