"""The central store the fleet sends to: Prometheus 3.5 or VictoriaMetrics single-node, on the host side.

Both listen on the fleet bridge's address (reachable from every node's namespace, not from outside the
machine) and are configured from deploy/ with only addresses, ports and paths substituted. Where the
centre is and how it is reached is decided in `remote_write_url` and `start_argv` alone, so a centre
behind TLS/authentication changes those two places.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any, Protocol

from tests.e2e.stack import DEPLOY, Central, PrometheusAPI, http_get, metric_sum, override_flags, read_flags
from tests.helpers import Processes, components, free_port, wait_until

VICTORIA_FLAGS = DEPLOY / "victoria-metrics" / "victoria-metrics.flags"
STORES = ("prometheus", "victoriametrics")


class Centre(Protocol):
    url: str
    proc: subprocess.Popen[bytes] | None

    def query(self, expr: str) -> list[dict[str, object]]: ...
    def raw_samples(self, selector: str, window: str = "30m") -> list[tuple[float, float]]: ...
    def start(self) -> None: ...
    def stop(self, sig: int = signal.SIGTERM) -> None: ...
    def add_vmagent_target(self, address: str, node: str) -> None: ...
    def ingested_samples(self) -> float: ...
    def remote_write_url(self) -> str: ...


class PrometheusCentre(Central):
    """deploy/prometheus/prometheus.yml, remote-write receiver on, listening on the bridge."""

    def ingested_samples(self) -> float:
        return metric_sum(self.metrics(), "prometheus_tsdb_head_samples_appended_total")

    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"


class VictoriaCentre(PrometheusAPI):
    """deploy/victoria-metrics/victoria-metrics.flags; it answers the same query API as Prometheus."""

    def __init__(self, procs: Processes, workdir: Path, *, host: str) -> None:
        self.procs = procs
        self.host = host
        self.port = free_port()
        super().__init__(f"http://{host}:{self.port}")
        self.data_dir = workdir / "victoria-metrics-data"
        self.log = workdir / "victoria-metrics.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def api(self, path: str, **params: str) -> Any:
        # Queries see samples up to now, not up to now - 30 s (-search.latencyOffset, kept at its default
        # for dashboards): drain and freshness are measured to the second. 0 is refused; 1ms is the least.
        return super().api(path, **{"latency_offset": "1ms", **params})

    def start_argv(self) -> list[str]:
        flags = override_flags(
            read_flags(VICTORIA_FLAGS, {}),
            {"-httpListenAddr": f"{self.host}:{self.port}", "-storageDataPath": str(self.data_dir)},
        )
        return [components()["VICTORIA_METRICS_BIN"], *flags]

    def start(self) -> None:
        self.proc = self.procs.start(self.start_argv(), log=self.log)
        wait_until(lambda: http_get(f"{self.url}/health") == b"OK", timeout=60, what="VictoriaMetrics ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.procs.stop(self.proc, sig, timeout=30)
        self.proc = None

    def add_vmagent_target(self, address: str, node: str) -> None:
        """Prometheus pulls each vmagent's /metrics; this store does not scrape (vmagent's health is
        read by the fleet directly)."""

    def ingested_samples(self) -> float:
        return metric_sum(self.metrics(), "vm_rows_inserted_total")

    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"


def make_centre(store: str, procs: Processes, workdir: Path, *, host: str, scrape_interval: str) -> Centre:
    if store == "prometheus":
        return PrometheusCentre(procs, workdir, scrape_interval=scrape_interval, host=host)
    if store == "victoriametrics":
        return VictoriaCentre(procs, workdir, host=host)
    raise ValueError(f"unknown store {store!r}: one of {', '.join(STORES)}")
