"""The real pipeline on loopback: central Prometheus <- vmagent (disk queue) <- node_exporter <- collector.

Every configuration comes from deploy/ as it is; only listen ports, data paths and the scrape interval
(the tests scrape every second instead of every 15 s) are substituted. Each process is started through
tests.helpers.Processes, so its whole process group is killed at teardown even when a test fails.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO, Processes, components, free_port, wait_until

DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
VMAGENT_FLAGS = DEPLOY / "vmagent" / "vmagent.flags"
VMAGENT_SCRAPE = DEPLOY / "vmagent" / "scrape.yml"
NODE_EXPORTER_FLAGS = DEPLOY / "node-exporter" / "node-exporter.flags"
EDGE_METRICS = REPO / ".venv" / "bin" / "edge-metrics"
SITE = "test"  # the site label of every sample (-remoteWrite.label=site=$(SITE) in vmagent.flags)

_PLACEHOLDER = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def read_flags(path: Path, env: Mapping[str, str]) -> list[str]:
    """The flags of a deploy/*.flags file with `$(NAME)` expanded from `env`, as Kubernetes does in args."""
    flags = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue

        def expand(match: re.Match[str], number: int = number) -> str:
            name = match.group(1)
            if name not in env:
                raise KeyError(f"{path}:{number}: $({name}) has no value")
            return env[name]

        flags.append(_PLACEHOLDER.sub(expand, line))
    return flags


def override_flags(flags: Sequence[str], overrides: Mapping[str, str]) -> list[str]:
    """Replace the value of flags that the file sets; a flag the file does not set is an error, so a
    test can never drift into a setting production does not have."""
    names = {flag.partition("=")[0] for flag in flags}
    missing = set(overrides) - names
    if missing:
        raise KeyError(f"flags not in the deploy file: {sorted(missing)}")
    return [f"{name}={overrides[name]}" if (name := flag.partition("=")[0]) in overrides else flag for flag in flags]


def http_get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def parse_metrics(text: str) -> dict[str, float]:
    """Exposition text -> {'name{labels}': value}; good enough for vmagent's and node_exporter's /metrics."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def metric_sum(metrics: Mapping[str, float], name: str, **labels: str) -> float:
    """Sum of every series of family `name` carrying all of `labels` (any other labels allowed)."""
    total = 0.0
    for series, value in metrics.items():
        if series != name and not series.startswith(name + "{"):
            continue
        if all(f'{key}="{val}"' in series for key, val in labels.items()):
            total += value
    return total


class PrometheusAPI:
    """Queries against a Prometheus server's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        body = json.loads(http_get(f"{self.url}/api/v1/{path}?{query}"))
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus API {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query: the result vector (or matrix, for a range selector)."""
        return list(self.api("query", query=expr)["result"])

    def raw_samples(self, selector: str, window: str = "30m") -> list[tuple[float, float]]:
        """Every raw sample of the series matching `selector` in the last `window`, sorted by time."""
        samples = []
        for series in self.query(f"{selector}[{window}]"):
            samples.extend((float(t), float(v)) for t, v in series["values"])
        return sorted(samples)

    def metrics(self) -> dict[str, float]:
        return parse_metrics(http_get(f"{self.url}/metrics").decode())


class Central(PrometheusAPI):
    """The central Prometheus, started from deploy/prometheus/prometheus.yml."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        scrape_interval: str,
        out_of_order_window: str | None = None,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.procs = procs
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.host = host  # the fleet (bench/fleet) listens on its bridge's address instead of loopback
        super().__init__(f"http://{host}:{self.port}")
        self.config_dir = workdir / "prometheus-config"
        self.data_dir = workdir / "prometheus-data"
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        shutil.copytree(PROMETHEUS_DIR, self.config_dir)
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["evaluation_interval"] = scrape_interval
        if out_of_order_window is not None:
            config["storage"]["tsdb"]["out_of_order_time_window"] = out_of_order_window
        for job in config["scrape_configs"]:
            if job["job_name"] == "prometheus":
                job["static_configs"] = [{"targets": [f"{host}:{self.port}"]}]
        (self.config_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def add_vmagent_target(self, address: str, node: str) -> None:
        """Let the centre pull a node's vmagent /metrics (file_sd picks the file up by itself)."""
        target = [{"targets": [address], "labels": {"node": node}}]
        (self.config_dir / "targets" / f"vmagent-{node}.json").write_text(json.dumps(target))

    def start(self) -> None:
        self.proc = self.procs.start(
            [
                components()["PROMETHEUS_BIN"],
                f"--config.file={self.config_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address={self.host}:{self.port}",
                "--web.enable-remote-write-receiver",
                *self.extra_args,
            ],
            log=self.log,
        )
        wait_until(lambda: http_get(f"{self.url}/-/ready") is not None, timeout=60, what="Prometheus ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.procs.stop(self.proc, sig, timeout=30)
        self.proc = None


class Node:
    """One edge node: node_exporter, vmagent and the collector, configured from deploy/."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        name: str,
        remote_write_url: str,
        scrape_interval: str,
        node_exporter_port: int | None = None,
    ) -> None:
        self.procs = procs
        self.name = name
        self.workdir = workdir
        self.textfile_dir = workdir / "textfile"
        self.textfile_dir.mkdir(parents=True, exist_ok=True)
        self.queue_dir = workdir / "vmagent-remotewrite-data"
        self.node_exporter_port = node_exporter_port or free_port()
        self.vmagent_port = free_port()
        self.vmagent_address = f"127.0.0.1:{self.vmagent_port}"
        self.remote_write_url = remote_write_url
        self.node_exporter: subprocess.Popen[bytes] | None = None
        self.vmagent: subprocess.Popen[bytes] | None = None
        self.collector: subprocess.Popen[bytes] | None = None
        scrape = yaml.safe_load(VMAGENT_SCRAPE.read_text())
        scrape["global"]["scrape_interval"] = scrape_interval
        scrape["global"]["scrape_timeout"] = scrape_interval
        for job in scrape["scrape_configs"]:
            for static in job.get("static_configs", []):
                static["targets"] = [
                    f"127.0.0.1:{self.node_exporter_port}" if t.endswith(":9100") else t for t in static["targets"]
                ]
        self.scrape_config = workdir / "vmagent-scrape.yml"
        self.scrape_config.write_text(yaml.safe_dump(scrape, sort_keys=False))

    # node_exporter ---------------------------------------------------------------------------------
    def node_exporter_argv(self) -> list[str]:
        flags = override_flags(
            read_flags(NODE_EXPORTER_FLAGS, {}),
            {
                "--collector.textfile.directory": str(self.textfile_dir),
                "--web.listen-address": f"127.0.0.1:{self.node_exporter_port}",
            },
        )
        return [components()["NODE_EXPORTER_BIN"], *flags]

    def start_node_exporter(self) -> None:
        self.node_exporter = self.procs.start(self.node_exporter_argv(), log=self.workdir / "node-exporter.log")
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{self.node_exporter_port}/metrics"),
            timeout=30,
            what="node_exporter serving /metrics",
        )

    def node_exporter_metrics(self) -> dict[str, float]:
        return parse_metrics(http_get(f"http://127.0.0.1:{self.node_exporter_port}/metrics").decode())

    # vmagent ---------------------------------------------------------------------------------------
    def vmagent_argv(self) -> list[str]:
        flags = override_flags(
            read_flags(
                VMAGENT_FLAGS, {"NODE_NAME": self.name, "REMOTE_WRITE_URL": self.remote_write_url, "SITE": SITE}
            ),
            {
                "-promscrape.config": str(self.scrape_config),
                "-remoteWrite.tmpDataPath": str(self.queue_dir),
                "-httpListenAddr": self.vmagent_address,
            },
        )
        return [components()["VMAGENT_BIN"], *flags]

    def start_vmagent(self) -> None:
        self.vmagent = self.procs.start(self.vmagent_argv(), log=self.workdir / "vmagent.log")
        wait_until(self.vmagent_metrics, timeout=30, what="vmagent serving /metrics")

    def stop_vmagent(self, sig: int = signal.SIGTERM) -> int:
        assert self.vmagent is not None
        code = self.procs.stop(self.vmagent, sig, timeout=30)
        self.vmagent = None
        return code

    def vmagent_metrics(self) -> dict[str, float]:
        return parse_metrics(http_get(f"http://{self.vmagent_address}/metrics").decode())

    def pending_bytes(self) -> float:
        """What vmagent still has to deliver: its disk queue plus the blocks it holds in memory."""
        return metric_sum(self.vmagent_metrics(), "vmagent_remotewrite_pending_data_bytes")

    # collector -------------------------------------------------------------------------------------
    def start_collector(
        self,
        *,
        config: Path,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """`edge-metrics run` writing into node_exporter's textfile directory; `wrapper` goes in front
        (e.g. the I2C simulator)."""
        argv = [
            *wrapper,
            str(EDGE_METRICS),
            "run",
            "--config",
            str(config),
            "--node-name",
            self.name,
            "--output",
            str(self.textfile_dir / "custom_metrics.prom"),
            *extra_args,
        ]
        self.collector = self.procs.start(argv, env={**os.environ, **(env or {})}, log=self.workdir / "collector.log")
        return self.collector


def write_counter_config(directory: Path, *, node: str, interval: str) -> Path:
    """nodes.conf + counter.sh for one node. The script prints a value that grows by one each run (its
    state in a file beside it) and logs `value epoch-time` to counter.log, so a test knows what was
    printed when and any gap at the centre is visible."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "counter.sh").write_text(
        "#!/bin/bash\n"
        f"state={str(directory / 'counter.state')!r}\n"
        'n=$(( $(cat "$state" 2>/dev/null || echo 0) + 1 ))\n'
        'echo "$n" > "$state"\n'
        f'echo "$n $(date +%s.%N)" >> {str(directory / "counter.log")!r}\n'
        'echo "e2e_counter=$n"\n'
    )
    config = directory / "nodes.conf"
    config.write_text(f"{node}=counter:{interval}\n")
    return config


@dataclass(frozen=True, slots=True)
class Print:
    value: int
    at: float  # wall-clock time the script printed it


def read_prints(directory: Path) -> list[Print]:
    log = directory / "counter.log"
    if not log.exists():
        return []
    return [Print(int(v), float(t)) for v, t in (line.split() for line in log.read_text().splitlines())]


@dataclass(frozen=True, slots=True)
class ScrapeRun:
    """A period in which vmagent scraped every `interval` seconds at a fixed `phase` of the second."""

    start: float
    end: float
    phase: float
    interval: float = 1.0

    def scrapes_between(self, low: float, high: float) -> bool:
        low, high = max(low, self.start), min(high, self.end)
        if low > high:
            return False
        first = low + (self.phase - low) % self.interval  # the first scrape at or after `low`
        return first <= high


def scrape_phase(timestamps: Sequence[float], interval: float = 1.0) -> float:
    """vmagent scrapes a target at a fixed offset in each interval; the median offset of its samples."""
    offsets = sorted(t % interval for t in timestamps)
    if not offsets:
        raise ValueError("no scrape timestamps")
    return offsets[len(offsets) // 2]


def certainly_scraped(prints: Sequence[Print], runs: Sequence[ScrapeRun], margin: float = 0.15) -> set[int]:
    """Printed values that some scrape must have seen: the value stayed in the file from (print time +
    margin) to (next print time - margin) and vmagent scraped inside that span. Values printed while
    vmagent was down, or whose only scrape fell within `margin` of a rewrite (timing jitter), are left out."""
    seen = set()
    for current, following in itertools.pairwise(prints):
        low, high = current.at + margin, following.at - margin
        if any(run.scrapes_between(low, high) for run in runs):
            seen.add(current.value)
    return seen


class Pipeline:
    """One edge node and the centre, wired as in production; nothing running until started."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        node: str = "e2e-node",
        scrape_interval: str = "1s",
        out_of_order_window: str | None = None,
        prometheus_args: Sequence[str] = (),
    ) -> None:
        self.procs = procs
        self.workdir = workdir
        self.central = Central(
            procs,
            workdir,
            scrape_interval=scrape_interval,
            out_of_order_window=out_of_order_window,
            extra_args=prometheus_args,
        )
        self.node = Node(
            procs,
            workdir / node,
            name=node,
            remote_write_url=f"{self.central.url}/api/v1/write",
            scrape_interval=scrape_interval,
        )
        self.central.add_vmagent_target(self.node.vmagent_address, node)
        self.scripts_dir = workdir / "scripts"
        self.vmagent_runs: list[ScrapeRun] = []
        self._vmagent_started = 0.0

    def start_infrastructure(self) -> None:
        """Centre, node_exporter and vmagent, and wait until the centre holds the node's `up` series."""
        self.central.start()
        self.node.start_node_exporter()
        self.start_vmagent()
        wait_until(
            lambda: self.central.query(f'up{{job="node-exporter",node="{self.node.name}"}}'),
            timeout=30,
            what="the node's samples at the centre",
        )

    def start_vmagent(self) -> None:
        self._vmagent_started = time.time()
        self.node.start_vmagent()

    def stop_vmagent(self, sig: int = signal.SIGTERM) -> None:
        """Stop vmagent and remember the period it scraped; its phase is read from the centre later."""
        stopped = time.time()
        self.node.stop_vmagent(sig)
        self.vmagent_runs.append(ScrapeRun(self._vmagent_started, stopped, phase=-1))

    def current_scrape_phase(self) -> float:
        ups = self.central.raw_samples(f'up{{job="node-exporter",node="{self.node.name}"}}', "20s")
        return scrape_phase([t for t, _ in ups if t >= self._vmagent_started])

    def start_counter_collector(self, *, interval: str = "1s", env: Mapping[str, str] | None = None) -> None:
        """The real collector running the counter script, started half a second away from vmagent's
        scrape phase so no scrape races a rewrite (restarted if start-up latency spoils it)."""
        config = write_counter_config(self.scripts_dir, node=self.node.name, interval=interval)
        phase = self.current_scrape_phase()
        shift = 0.5  # where, after vmagent's scrape, the collector's start should land
        for attempt in range(3):
            time.sleep((phase + shift - time.time()) % 1.0)
            before = len(read_prints(self.scripts_dir))
            proc = self.node.start_collector(config=config, env=env)
            wait_until(
                lambda before=before: len(read_prints(self.scripts_dir)) >= before + 3,
                timeout=30,
                what="three counter runs",
            )
            offset = (read_prints(self.scripts_dir)[-1].at - phase) % 1.0
            if 0.25 < offset < 0.75:
                return
            # Start-up latency moved the runs too close to the scrapes: compensate and try again.
            self.procs.stop(proc)
            shift = (shift + 0.5 - offset) % 1.0
            if attempt == 2:
                raise RuntimeError(f"collector stays in phase with vmagent's scrapes (offset {offset:.2f} s)")

    def scrape_runs(self) -> list[ScrapeRun]:
        """Every vmagent run (the current one up to now), each with the phase read from the centre."""
        runs = [*self.vmagent_runs]
        if self.node.vmagent is not None:
            runs.append(ScrapeRun(self._vmagent_started, time.time(), phase=-1))
        ups = [t for t, _ in self.central.raw_samples(f'up{{job="node-exporter",node="{self.node.name}"}}', "1h")]
        return [
            ScrapeRun(run.start, run.end, scrape_phase([t for t in ups if run.start <= t <= run.end])) for run in runs
        ]

    def counter_values_at_centre(self) -> set[int]:
        samples = self.central.raw_samples(f'edge_e2e_counter{{node="{self.node.name}"}}', "1h")
        return {int(value) for _, value in samples}

    def outage(self, *, at_least: float, during: Callable[[float], None] | None = None) -> None:
        """Stop the centre for `at_least` seconds, then until vmagent's next retry is >= 15 s away, so the
        centre is back and has appended fresh samples (its head time is now) before the backlog arrives:
        as with a real centre that other nodes keep feeding. `during(elapsed)` is polled meanwhile."""
        log = self.node.workdir / "vmagent.log"
        self.central.stop()
        stopped = time.monotonic()
        while True:
            elapsed = time.monotonic() - stopped
            if during is not None:
                during(elapsed)
            if elapsed >= at_least and (next_retry(log) or 0) - time.time() >= 15:
                break
            time.sleep(0.1)
        self.central.start()
        wait_until(lambda: self.central.query('up{job="prometheus"}'), timeout=30, what="the centre's own scrape")

    def wait_drained(self, timeout: float = 120) -> None:
        """Until vmagent's queue is empty: its retry back-off reaches a minute during long outages."""
        wait_until(lambda: self.node.pending_bytes() == 0, timeout=timeout, interval=0.5, what="queue drained")


_RETRY = re.compile(rb"^(\S+)\t.*re-sending the block in ([0-9.]+) seconds", re.MULTILINE)


def next_retry(log: Path) -> float | None:
    """Wall-clock time of vmagent's next send attempt, from its latest log line about a failed send."""
    if not log.exists():
        return None
    found = _RETRY.findall(log.read_bytes()[-8192:])
    if not found:
        return None
    logged, delay = found[-1]
    at = datetime.datetime.strptime(logged.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    return at.timestamp() + float(delay)
