"""No output a script may print gets a container of the pod OOM-killed: the collector, node_exporter and vmagent
run in cgroups with the memory limits of deploy/kubernetes/edge/daemonset.yaml while a script prints the largest
output the collector accepts (--max-series series, up to the 1 MiB output cap) or a full 1 MiB of distinct keys."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from edge_metrics.runner import DEFAULT_MAX_SERIES
from testbed.certs import Pki
from testbed.exposition import metric_sum, parse_metrics
from testbed.net import http_get
from testbed.node import Node
from tests.helpers import REPO, Processes, free_port, wait_until
from tests.integration.cgroups import memory_cgroup, memory_hierarchy
from tests.integration.support import make_setup, marked_env

DAEMONSET = REPO / "deploy" / "kubernetes" / "edge" / "daemonset.yaml"
CONTAINERS = {"collector": "metric-sidecar", "node_exporter": "node-exporter", "vmagent": "vmagent"}
OUTPUT_CAP = 1 << 20
RUNS = 5  # collector runs (and so rewrites of the file) watched, each scraped by vmagent and by the test


def manifest_limits() -> dict[str, int]:
    """Memory limit of each container, in bytes, as the DaemonSet declares it."""
    spec = yaml.safe_load(DAEMONSET.read_text())["spec"]["template"]["spec"]
    limits = {c["name"]: c["resources"]["limits"]["memory"] for c in spec["containers"]}
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    result = {}
    for role, container in CONTAINERS.items():
        number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", limits[container]).groups()  # type: ignore[union-attr]
        result[role] = int(number) * units[unit]
    return result


def largest_accepted(path: Path) -> None:
    """DEFAULT_MAX_SERIES distinct series whose long label values fill the output cap."""
    overhead = len('reading{sensor="00000",bus=""}=00000.5\n')
    pad = "b" * (OUTPUT_CAP // DEFAULT_MAX_SERIES - overhead - 1)
    path.write_text("".join(f'reading{{sensor="{i:05d}",bus="{pad}"}}={i}.5\n' for i in range(DEFAULT_MAX_SERIES)))
    assert path.stat().st_size <= OUTPUT_CAP


def full_cap(path: Path) -> None:
    """A little over 1 MiB of distinct short keys (about 116,000): truncated at the cap, bounded by the series."""
    lines, size, i = [], 0, 0
    while size <= OUTPUT_CAP + 4096:
        line = f"k{i}=1\n"
        lines.append(line)
        size += len(line)
        i += 1
    path.write_text("".join(lines))


@pytest.mark.parametrize("output", [largest_accepted, full_cap], ids=["largest-accepted", "full-1MiB-cap"])
def test_no_container_of_the_pod_is_oom_killed(tmp_path: Path, procs: Processes, output: object) -> None:
    """Under the manifests' memory limits, over several runs of the script, each scraped by vmagent: no OOM kill
    in any cgroup, every process alive, node_exporter serves the kept series (the first --max-series) and vmagent
    scrapes them."""
    hierarchy = memory_hierarchy()
    if isinstance(hierarchy, str):
        pytest.skip(f"cannot create memory-limited cgroups: {hierarchy}")
    root, version = hierarchy
    data = tmp_path / "output.txt"
    output(data)  # type: ignore[operator]
    setup = make_setup(tmp_path, "node-1=big:1s\n", {"big": f"cat {data}\n"})
    pki = Pki(tmp_path / "pki")
    pki.make(nodes=["node-1"])  # vmagent's shipped flags read the node's credentials
    node = Node(procs, setup.root, name="node-1", remote_write_url=f"https://127.0.0.1:{free_port()}/api/v1/write",
                scrape_interval="1s", credentials=pki.node_dir("node-1"))
    assert node.textfile_dir == setup.output.parent
    limits = manifest_limits()
    with ExitStack() as stack:
        groups = {role: stack.enter_context(memory_cgroup(root, version, role, limit))
                  for role, limit in limits.items()}
        node_exporter = procs.start(groups["node_exporter"].wrap(node.node_exporter_argv()),
                                    log=setup.root / "node-exporter.log")
        vmagent = procs.start(groups["vmagent"].wrap(node.vmagent_argv()), log=setup.root / "vmagent.log")
        collector = procs.start(groups["collector"].wrap(setup.argv()), env=marked_env(setup, None), log=setup.log)
        running = (node_exporter, vmagent, collector)

        def done_or_dead(check: Callable[[Node], float], count: int) -> bool:
            return any(p.poll() is not None for p in running) or check(node) >= count

        wait_until(lambda: done_or_dead(_runs, RUNS), timeout=90, what=f"{RUNS} runs served by node_exporter")
        wait_until(lambda: done_or_dead(_vmagent_scraped, RUNS), timeout=60, what=f"{RUNS} scrapes by vmagent")
        oom = {role: group.oom_kills() for role, group in groups.items()}
        peaks = {role: group.peak_bytes() for role, group in groups.items()}
        print(f"cgroup v{version} limits {limits}; peak usage {peaks}")
        assert oom == dict.fromkeys(groups, 0), f"OOM kills: {oom}"
        assert [p.poll() for p in running] == [None, None, None], "a process died"
        scraping = parse_metrics(http_get(f"http://{node.vmagent_address}/metrics").decode())
        assert metric_sum(scraping, "vm_promscrape_scrapes_failed_total") == 0
        served = node.node_exporter_metrics()  # the test's own scrape, on top of vmagent's
        assert served.get("node_textfile_scrape_error") == 0
        kept = [name for name in served if name.startswith(("edge_reading{", "edge_k"))]
        assert len(kept) == DEFAULT_MAX_SERIES
        dropped = served['edge_collector_script_series_dropped_total{script="big"}']
        assert (dropped > 0) == (output is full_cap)
        for p in (collector, vmagent, node_exporter):
            procs.stop(p)


def _runs(node: Node) -> float:
    return node.node_exporter_metrics().get('edge_collector_script_runs_total{script="big"}', 0)


def _vmagent_scraped(node: Node) -> float:
    """Scrapes of node_exporter by vmagent that brought at least the kept series (vmagent's histogram of samples
    per scrape, `vmrange="low...high"` buckets)."""
    metrics = parse_metrics(http_get(f"http://{node.vmagent_address}/metrics").decode())
    total = 0.0
    for series, count in metrics.items():
        found = re.match(r'vm_promscrape_scraped_samples_bucket\{vmrange="([\d.e+-]+?)\.\.\.', series)
        if found and float(found.group(1)) >= DEFAULT_MAX_SERIES:
            total += count
    return total
