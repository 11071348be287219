"""The central Prometheus: queries against its HTTP API, and the server itself started from
deploy/prometheus/prometheus.yml with only ports, the Secret's paths and (for tests) the intervals substituted."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from testbed.certs import Pki
from testbed.exposition import parse_metrics
from testbed.flags import secret_paths
from testbed.net import free_port, http_get
from testbed.paths import CENTRAL_SECRET_DIR, CLUSTER, PROMETHEUS_DIR, VMAGENT_TARGET_EXAMPLE, components
from testbed.poll import wait_until
from testbed.processes import Processes


class PrometheusAPI:
    """Queries against a Prometheus server's HTTP API (with `pki`: over TLS as its `admin` user)."""

    def __init__(self, url: str, pki: Pki | None = None) -> None:
        self.url = url
        self.pki = pki

    def get(self, path: str) -> bytes:
        if self.pki is None:
            return http_get(f"{self.url}{path}")
        return http_get(f"{self.url}{path}", context=self.pki.context(), headers=self.pki.basic_auth("admin"))

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        body = json.loads(self.get(f"/api/v1/{path}?{query}"))
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
        return parse_metrics(self.get("/metrics").decode())


class Central(PrometheusAPI):
    """The central Prometheus, started from deploy/prometheus/prometheus.yml."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        scrape_interval: str | None,
        out_of_order_window: str | None = None,
        extra_args: Sequence[str] = (),
        binary: str = "PROMETHEUS_BIN",
        pki: Pki,
        host: str = "127.0.0.1",
        secure: bool = True,
    ) -> None:
        """`scrape_interval` None keeps the shipped one (the demo); `secure` False serves plain HTTP without
        authentication and scrapes its targets so (the demo's EDGE_DEMO_INSECURE=1 opt-in)."""
        self.procs = procs
        self.extra_args = list(extra_args)
        self.binary = binary  # the components() key: COMPAT_PROMETHEUS_BIN for the compatibility job
        self.port = free_port()
        self.host = host  # the fleet (bench/fleet) listens on its bridge's address instead of loopback
        self.secure = secure
        self.secret_dir = pki.dir
        super().__init__(f"{'https' if secure else 'http'}://{host}:{self.port}", pki if secure else None)
        self.config_dir = workdir / "prometheus-config"
        self.data_dir = workdir / "prometheus-data"
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        shutil.copytree(PROMETHEUS_DIR, self.config_dir)
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        if scrape_interval is not None:
            config["global"]["scrape_interval"] = scrape_interval
            config["global"]["evaluation_interval"] = scrape_interval
        if out_of_order_window is not None:
            config["storage"]["tsdb"]["out_of_order_time_window"] = out_of_order_window
        for job in config["scrape_configs"]:
            if job["job_name"] == "prometheus":
                job["static_configs"] = [{"targets": [f"{host}:{self.port}"]}]
        # The Secret's files (CA, the self-scrape's password) are the test's own.
        config = self._local(config)
        # Production's Alertmanager is a DNS name: tests stay on loopback (send_alerts_to sets one).
        config.pop("alerting", None)
        config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != "alertmanager"]
        (self.config_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def scrape_target(self, job_name: str, address: str | None) -> None:
        """Point a static scrape job of the test copy of prometheus.yml at `address`; None drops the job."""
        path = self.config_dir / "prometheus.yml"
        config = yaml.safe_load(path.read_text())
        jobs = config["scrape_configs"]
        if address is None:
            jobs[:] = [job for job in jobs if job["job_name"] != job_name]
        for job in jobs:
            if job["job_name"] == job_name:
                job["static_configs"] = [{"targets": [address]}]
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _local(self, config: Any) -> Any:
        """The shipped config with the Secret's files (CA, passwords) the caller's own and, when not secure,
        every https target scraped over plain HTTP."""
        config = secret_paths(config, {CENTRAL_SECRET_DIR: f"{self.secret_dir}/"})
        if not self.secure:
            for section in [*config["scrape_configs"], *config.get("alerting", {}).get("alertmanagers", [])]:
                if section.get("scheme") == "https":
                    section["scheme"] = "http"
        return config

    def add_vmagent_target(self, address: str, node: str, cluster: str = CLUSTER) -> None:
        """Let the centre pull a node's vmagent /metrics (file_sd picks the file up by itself): a target file
        as the shipped example writes it, its address and the node's labels (node, cluster) the test's."""
        target = json.loads(VMAGENT_TARGET_EXAMPLE.read_text())
        values = {"node": node, "cluster": cluster}
        for entry in target:
            entry["targets"] = [address]
            entry["labels"] = {name: values.get(name, value) for name, value in entry["labels"].items()}
        (self.config_dir / "targets" / f"vmagent-{node}.json").write_text(json.dumps(target))

    def send_alerts_to(self, address: str) -> None:
        """The shipped `alerting:` section and `alertmanager` scrape job (TLS, its user, the CA) in the
        test copy, pointed at an Alertmanager on `address` (before start)."""
        shipped = self._local(yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text()))
        path = self.config_dir / "prometheus.yml"
        config = yaml.safe_load(path.read_text())
        config["alerting"] = shipped["alerting"]
        jobs = [job for job in shipped["scrape_configs"] if job["job_name"] == "alertmanager"]
        config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != "alertmanager"]
        config["scrape_configs"] += jobs
        for section in [*config["alerting"]["alertmanagers"], *jobs]:
            section["static_configs"] = [{"targets": [address]}]
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def set_rule_durations(self, alert: str, **durations: str) -> None:
        """Shorten the `for:` (or another duration field) of one alert in the test copy of the rules, so
        a test need not wait minutes; the expression and everything else stay as production has them."""
        for path in (self.config_dir / "rules").glob("*-alerts.yml"):
            rules = yaml.safe_load(path.read_text())
            found = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert]
            for rule in found:
                rule.update(durations)
            if found:
                path.write_text(yaml.safe_dump(rules, sort_keys=False))
                return
        raise KeyError(f"no alert {alert} in {self.config_dir / 'rules'}")

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        """The alerts this server holds in `state` (firing, pending), as /api/v1/alerts returns them."""
        return [a for a in self.api("alerts")["alerts"] if a["state"] == state]

    def start(self) -> None:
        self.proc = self.procs.start(
            [
                components()[self.binary],
                f"--config.file={self.config_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address={self.host}:{self.port}",
                "--web.enable-remote-write-receiver",
                *([f"--web.config.file={self.secret_dir / 'web.yml'}"] if self.secure else []),
                *self.extra_args,
            ],
            log=self.log,
        )
        wait_until(lambda: self.get("/-/ready") is not None, timeout=60, what="Prometheus ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.procs.stop(self.proc, sig, timeout=30)
        self.proc = None
