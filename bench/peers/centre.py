"""The receiving side, on the loopback: a real Prometheus 3.5 scraping what is scraped and taking what
vmagent remote-writes, and the readings each approach got into it."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import Processes, components, free_port, wait_until


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape job: the approach it belongs to (its `approach` label) and where its metrics are."""

    approach: str
    target: str  # host:port
    path: str = "/metrics"
    params: tuple[tuple[str, str], ...] = ()


class Prometheus:
    def __init__(self, procs: Processes, root: Path, *, interval: float) -> None:
        self.procs, self.root, self.interval = procs, root, interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, scrapes: list[Scrape]) -> None:
        config = self.root / "prometheus.yml"
        config.write_text(json.dumps(self._config(scrapes), indent=1))  # JSON is YAML
        self.procs.start(
            [components()["PROMETHEUS_BIN"], f"--config.file={config}", f"--storage.tsdb.path={self.root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver"],
            log=self.root / "prometheus.log",
        )
        wait_until(lambda: _get(self.url + "/-/ready"), timeout=60, what="Prometheus ready")

    def _config(self, scrapes: list[Scrape]) -> dict[str, object]:
        interval = f"{round(self.interval * 1000)}ms"
        return {
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            # Pushed readings carry the time they were read, as shipped (deploy/prometheus).
            "storage": {"tsdb": {"out_of_order_time_window": "1d"}},
            "scrape_configs": [
                {"job_name": s.approach, "metrics_path": s.path, "params": {k: [v] for k, v in s.params},
                 "static_configs": [{"targets": [s.target], "labels": {"approach": s.approach}}]}
                for s in scrapes
            ],
        }

    def stamps(self, approach: str, metric: str, *, since: float, until: float) -> set[float]:
        """The values of `metric` (reading 0: the run's start time) stored for `approach` in [since, until]."""
        span = max(1, int(until - since) + 60)
        query = f'{metric}{{approach="{approach}"}}[{span}s]'
        arguments = urllib.parse.urlencode({"query": query, "time": until + 30})
        found = json.loads(_get(f"{self.url}/api/v1/query?{arguments}"))
        return {float(value) for series in found["data"]["result"] for _, value in series["values"]
                if since <= float(value) <= until}


class Vmagent:
    """The node's vmagent, remote-writing to the Prometheus above; the pushed series get `approach`."""

    def __init__(self, procs: Processes, root: Path, *, approach: str, remote_write: str) -> None:
        self.port = free_port()
        self.import_url = f"http://127.0.0.1:{self.port}/api/v1/import/prometheus"
        procs.start(
            [components()["VMAGENT_BIN"], f"-httpListenAddr=127.0.0.1:{self.port}", f"-remoteWrite.url={remote_write}",
             f"-remoteWrite.tmpDataPath={root / 'vmagent-queue'}", f"-remoteWrite.label=approach={approach}",
             "-remoteWrite.flushInterval=1s"],
            log=root / "vmagent.log",
        )
        wait_until(lambda: _get(f"http://127.0.0.1:{self.port}/health"), timeout=30, what="vmagent")


class NodeExporter:
    """node_exporter serving one textfile directory (and nothing else)."""

    def __init__(self, procs: Processes, root: Path, directory: Path, name: str) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        procs.start(
            [components()["NODE_EXPORTER_BIN"], f"--web.listen-address={self.target}", "--collector.disable-defaults",
             "--collector.textfile", f"--collector.textfile.directory={directory}"],
            log=root / f"node-exporter-{name}.log",
        )
        wait_until(lambda: _get(f"http://{self.target}/metrics"), timeout=30, what=f"node_exporter ({name})")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())
