"""One edge node: node_exporter, vmagent and the collector, configured from deploy/; and what vmagent's log says
about its next send."""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from edge_metrics.durations import parse_duration
from testbed.exposition import metric_sum, parse_metrics
from testbed.flags import override_flags, read_flags
from testbed.net import free_port, http_get
from testbed.paths import (
    CLUSTER,
    COMPAT_VMAGENT,
    EDGE_METRICS,
    NODE_CREDENTIALS_DIR,
    NODE_EXPORTER_FLAGS,
    VMAGENT_FLAGS,
    VMAGENT_SCRAPE,
    components,
)
from testbed.poll import wait_until
from testbed.processes import Processes


class Node:
    """One edge node: node_exporter, vmagent and the collector, configured from deploy/."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        name: str,
        remote_write_url: str,
        scrape_interval: str | None,
        node_exporter_port: int | None = None,
        vmagent_binary: str = "VMAGENT_BIN",
        vmagent_flags: Mapping[str, str] | None = None,
        credentials: Path,
        vmagent_address: str | None = None,
        cluster: str = CLUSTER,
    ) -> None:
        """`scrape_interval` None keeps scrape.yml's (the demo); `cluster`: the value vmagent.flags labels with."""
        self.procs = procs
        self.cluster = cluster
        self.name = name
        self.vmagent_flags = dict(vmagent_flags or {})  # test values of flags vmagent.flags sets
        self.vmagent_binary = vmagent_binary  # the components() key: COMPAT_VMAGENT_BIN for the compatibility job
        # tools/make-certs.sh's nodes/<name>/: ca.crt, token, admin-key (a test may swap it before start).
        self.credentials = credentials
        self.workdir = workdir
        self.textfile_dir = workdir / "textfile"
        self.textfile_dir.mkdir(parents=True, exist_ok=True)
        self.queue_dir = workdir / "vmagent-remotewrite-data"
        self.node_exporter_port = node_exporter_port or free_port()
        self.vmagent_port = free_port()
        # The fleet (bench/fleet) gives each node's vmagent its namespace's address instead.
        self.vmagent_address = vmagent_address or f"127.0.0.1:{self.vmagent_port}"
        self.remote_write_url = remote_write_url
        self.node_exporter: subprocess.Popen[bytes] | None = None
        self.vmagent: subprocess.Popen[bytes] | None = None
        self.collector: subprocess.Popen[bytes] | None = None
        scrape = yaml.safe_load(VMAGENT_SCRAPE.read_text())
        if scrape_interval is not None:
            scrape["global"]["scrape_interval"] = scrape_interval
            scrape["global"]["scrape_timeout"] = scrape_interval
        for job in scrape["scrape_configs"]:
            for static in job.get("static_configs", []):
                static["targets"] = [
                    f"127.0.0.1:{self.node_exporter_port}" if t.endswith(":9100")
                    else self.vmagent_address if t.endswith(":8429") else t
                    for t in static["targets"]
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
        flags = read_flags(
            VMAGENT_FLAGS, {"NODE_NAME": self.name, "REMOTE_WRITE_URL": self.remote_write_url, "CLUSTER": self.cluster}
        )
        # The credential files (also inside file:// values) come from this node's directory.
        credentials = {
            name: value.replace(NODE_CREDENTIALS_DIR, f"{self.credentials}/")
            for name, _, value in (flag.partition("=") for flag in flags)
            if NODE_CREDENTIALS_DIR in value
        }
        flags = override_flags(
            flags,
            {
                "-promscrape.config": str(self.scrape_config),
                "-remoteWrite.tmpDataPath": str(self.queue_dir),
                "-httpListenAddr": self.vmagent_address,
                **credentials,
                **self.vmagent_flags,
            },
        )
        if self.vmagent_binary == COMPAT_VMAGENT:
            # vmagent 1.79 predates -reloadAuthKey (its /-/reload is open: one more reason to upgrade).
            flags = [flag for flag in flags if not flag.startswith("-reloadAuthKey=")]
        return [components()[self.vmagent_binary], *flags]

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
        config: Path | None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """`edge-metrics run` writing into node_exporter's textfile directory; `config` None runs the bundled
        default (the demo); `wrapper` goes in front (e.g. the I2C simulator)."""
        argv = [
            *wrapper,
            str(EDGE_METRICS),
            "run",
            *(["--config", str(config)] if config is not None else []),
            "--node-name",
            self.name,
            "--output",
            str(self.textfile_dir / "custom_metrics.prom"),
            *extra_args,
        ]
        self.collector = self.procs.start(argv, env={**os.environ, **(env or {})}, log=self.workdir / "collector.log")
        return self.collector


# vmagent 1.79 logs "re-sending the block in 2.000 seconds", 1.145 a Go duration: "re-sending the block in 2s".
_RETRY = re.compile(rb"^(\S+)\t.*re-sending the block in ([0-9.a-z]+?)(?: seconds)?[.;]?(?: |$)", re.MULTILINE)


def next_retry(log: Path) -> float | None:
    """Wall-clock time of vmagent's next send attempt, from its latest log line about a failed send."""
    if not log.exists():
        return None
    found = _RETRY.findall(log.read_bytes()[-8192:])
    if not found:
        return None
    logged, delay = found[-1]
    at = datetime.datetime.strptime(logged.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    text = delay.decode()
    return at.timestamp() + (float(text) if text[-1].isdigit() else parse_duration(text))
