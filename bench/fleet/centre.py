"""The centre the fleet sends to, as the manifests ship it (docs/security.md): vmauth on the fleet bridge's
address (TLS, one bearer token per node) in front of the gate (`edge-metrics gate`, deploy/vmauth/gate.flags:
the node and cluster labels from the token, the per-node limits, synchronous writes) in front of the central
store, Prometheus 3.5 or VictoriaMetrics single-node, configured from deploy/ with only addresses, ports and
paths substituted.

Prometheus: testbed/centre.py's Centre with the gate (vmauth -> gate -> Prometheus over TLS with basic auth).
VictoriaMetrics: the same vmauth and gate (testbed/ingest.py's Ingest) in front of VictoriaMetrics on loopback, the
gate's accept window the store's (its retention and -futureRetention: security.md, "Backends"); only vmauth
faces the nodes. The centre's certificate names the bridge's address (make-certs --san). A restart of the
centre is a restart of its store; vmauth and the gate stay up and answer the nodes with errors meanwhile, as
the other containers of a pod whose store restarts do. Neither store pulls the nodes' vmagents: their health
arrives with the readings (the self-scrape job of scrape.yml), as in production, where vmagent listens on the
node's loopback.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from testbed.centre import Centre as SecureCentre
from testbed.certs import Pki
from testbed.exposition import metric_sum
from testbed.flags import override_flags, read_flags
from testbed.ingest import Ingest
from testbed.net import http_get
from testbed.paths import DEPLOY
from testbed.prometheus import PrometheusAPI
from tests.helpers import Processes, components, free_port, wait_until

VICTORIA_FLAGS = DEPLOY / "victoria-metrics" / "victoria-metrics.flags"
STORES = ("prometheus", "victoriametrics")


class Centre(Protocol):
    url: str
    credentials: Pki  # CA, centre certificate, node tokens (tools/make-certs.sh)
    ingest: Ingest

    @property
    def proc(self) -> subprocess.Popen[bytes] | None: ...
    def query(self, expr: str) -> list[dict[str, object]]: ...
    def raw_samples(self, selector: str, window: str = "30m") -> list[tuple[float, float]]: ...
    def start(self) -> None: ...
    def stop(self, sig: int = signal.SIGTERM) -> None: ...
    def ingested_samples(self) -> float: ...


class PrometheusCentre:
    """deploy/prometheus/prometheus.yml behind deploy/vmauth, both on the bridge's address."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        host: str,
        nodes: Sequence[str],
        scrape_interval: str,
        credentials_from: Pki | None,
    ) -> None:
        self.secure = SecureCentre(
            procs,
            workdir,
            nodes=nodes,
            scrape_interval=scrape_interval,
            enforce_node=True,
            host=host,
            credentials_from=credentials_from,
        )
        self.central, self.credentials, self.ingest = self.secure.central, self.secure.pki, self.secure.ingest
        self.url = self.central.url

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.central.proc

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.central.query(expr)

    def raw_samples(self, selector: str, window: str = "30m") -> list[tuple[float, float]]:
        return self.central.raw_samples(selector, window)

    def start(self) -> None:
        self.central.start()
        if self.ingest.vmauth is None:
            self.ingest.start()  # and the gate

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.central.stop(sig)

    def ingested_samples(self) -> float:
        return metric_sum(self.central.metrics(), "prometheus_tsdb_head_samples_appended_total")


class VictoriaCentre(PrometheusAPI):
    """deploy/victoria-metrics/victoria-metrics.flags on loopback behind deploy/vmauth and the gate; it answers
    the same query API as Prometheus."""

    def __init__(
        self, procs: Processes, workdir: Path, *, host: str, nodes: Sequence[str], credentials_from: Pki | None
    ) -> None:
        self.procs = procs
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        self.data_dir = workdir / "victoria-metrics-data"
        self.log = workdir / "victoria-metrics.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # Not self.pki: that would make PrometheusAPI query this (plain HTTP, loopback) store over TLS.
        self.credentials = Pki(workdir / "pki")
        if credentials_from is not None:
            self.credentials.share_credentials(credentials_from)
        flags = {name: value for name, _, value in (flag.partition("=") for flag in read_flags(VICTORIA_FLAGS, {}))}
        self.ingest = Ingest(
            procs,
            workdir,
            pki=self.credentials,
            store_url=self.url,
            enforce_node=True,
            host=host,
            max_age=flags["-retentionPeriod"],
            max_ahead=flags["-futureRetention"],
        )
        self.ingest.make_credentials(nodes, sans=[host])

    def api(self, path: str, **params: str) -> Any:
        # Queries see samples up to now, not up to now - 30 s (-search.latencyOffset, kept at its default
        # for dashboards): drain and freshness are measured to the second. 0 is refused; 1ms is the least.
        return super().api(path, **{"latency_offset": "1ms", **params})

    def start_argv(self) -> list[str]:
        flags = override_flags(
            read_flags(VICTORIA_FLAGS, {}),
            {"-httpListenAddr": f"127.0.0.1:{self.port}", "-storageDataPath": str(self.data_dir)},
        )
        return [components()["VICTORIA_METRICS_BIN"], *flags]

    def start(self) -> None:
        self.proc = self.procs.start(self.start_argv(), log=self.log)
        wait_until(lambda: http_get(f"{self.url}/health") == b"OK", timeout=60, what="VictoriaMetrics ready")
        if self.ingest.vmauth is None:
            self.ingest.start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.procs.stop(self.proc, sig, timeout=30)
        self.proc = None

    def ingested_samples(self) -> float:
        return metric_sum(self.metrics(), "vm_rows_inserted_total")


def make_centre(
    store: str,
    procs: Processes,
    workdir: Path,
    *,
    host: str,
    nodes: Sequence[str],
    scrape_interval: str,
    credentials_from: Pki | None = None,
) -> Centre:
    """`credentials_from`: the first centre's Pki, so a second one (HA) accepts the same node tokens."""
    if store == "prometheus":
        return PrometheusCentre(
            procs, workdir, host=host, nodes=nodes, scrape_interval=scrape_interval, credentials_from=credentials_from
        )
    if store == "victoriametrics":
        return VictoriaCentre(procs, workdir, host=host, nodes=nodes, credentials_from=credentials_from)
    raise ValueError(f"unknown store {store!r}: one of {', '.join(STORES)}")
