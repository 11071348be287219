"""The centre's door: vmauth (TLS, one bearer token per node) and the gate, started from deploy/vmauth/*.flags."""

from __future__ import annotations

import signal
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path

from testbed.certs import Pki
from testbed.exposition import parse_metrics
from testbed.flags import override_flags, read_flags
from testbed.net import free_port, http_get
from testbed.paths import CLUSTER, EDGE_METRICS, GATE_FLAGS, VMAUTH_FLAGS, components
from testbed.poll import wait_until
from testbed.processes import Processes


class Ingest:
    """The centre's door: vmauth (TLS, one bearer token per node) and, with `enforce_node`, the gate that
    sets the node label from the credential and enforces the node's limits; started from deploy/vmauth/*.flags."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        pki: Pki,
        store_url: str,
        enforce_node: bool,
        host: str = "127.0.0.1",
        max_age: str | None = None,
        max_ahead: str | None = None,
    ) -> None:
        """`store_url`: the central Prometheus (or VictoriaMetrics: the fleet's other store); `max_age`,
        `max_ahead`: the gate's accept window, when the store's differs from the shipped Prometheus'."""
        self.procs = procs
        self.window = {"--max-age": max_age, "--max-ahead": max_ahead}
        self.host = host  # where the nodes reach it (the fleet: its bridge's address)
        self.workdir = workdir
        self.pki = pki
        self.store_url = store_url
        self.enforce_node = enforce_node
        self.port = free_port()
        self.internal_port = free_port()
        self.url = f"https://{host}:{self.port}"
        self.write_url = f"{self.url}/api/v1/write"
        self.gate_port = free_port() if enforce_node else None
        self.vmauth: subprocess.Popen[bytes] | None = None
        self.gate: subprocess.Popen[bytes] | None = None

    @property
    def backend(self) -> str:
        """Where vmauth forwards: the gate, or the store itself."""
        return f"http://127.0.0.1:{self.gate_port}" if self.gate_port else self.store_url

    def make_credentials(self, nodes: Sequence[str], *, sans: Sequence[str] = (), cluster: str = CLUSTER) -> None:
        """make-certs for `nodes`, vmauth's routes pointing where this door forwards: the gate's path per node
        and cluster, or (no gate) the store with the `ingest` user's basic auth."""
        self.pki.make(
            nodes=list(nodes),
            backend=self.backend,
            backend_auth=not self.enforce_node,
            sans=sans,
            cluster=cluster,
            gate=self.enforce_node,
        )

    def vmauth_argv(self, auth_config: Path | None = None, tls_name: str = "central") -> list[str]:
        secret = self.pki.dir
        flags = override_flags(
            read_flags(VMAUTH_FLAGS, {}),
            {
                "-auth.config": str(auth_config or self.pki.auth_config),
                "-httpListenAddr": f"{self.host}:{self.port}",
                "-httpInternalListenAddr": f"127.0.0.1:{self.internal_port}",
                "-tlsCertFile": str(secret / f"{tls_name}.crt"),
                "-tlsKeyFile": str(secret / f"{tls_name}.key"),
            },
        )
        if not self.enforce_node:
            # Straight to Prometheus, which serves TLS only: trust our CA for that hop.
            flags.append(f"-backend.TLSCAFile={self.pki.ca}")
        return [components()["VMAUTH_BIN"], *flags]

    def gate_argv(self) -> list[str]:
        overrides = {
            "--listen": f"127.0.0.1:{self.gate_port}",
            "--store-url": f"{self.store_url}/api/v1/write",
            "--store-ca-file": str(self.pki.ca),
            "--store-password-file": str(self.pki.dir / "ingest.password"),
            "--limits": str(self.pki.gate_limits),
        }
        overrides.update({flag: value for flag, value in self.window.items() if value is not None})
        return [str(EDGE_METRICS), "gate", *override_flags(read_flags(GATE_FLAGS, {}), overrides)]

    def start(self, *, tls_name: str = "central") -> None:
        if self.gate_port and self.gate is None:
            self.start_gate()
        self.vmauth = self.procs.start(self.vmauth_argv(tls_name=tls_name), log=self.workdir / "vmauth.log")
        # Up is up, whatever certificate it serves (a test may give it an expired one on purpose).
        unverified = ssl._create_unverified_context()
        health = f"https://127.0.0.1:{self.internal_port}/health"
        wait_until(lambda: http_get(health, context=unverified), timeout=30, what="vmauth serving /health")

    def start_gate(self) -> None:
        assert self.gate is None
        self.gate = self.procs.start(self.gate_argv(), log=self.workdir / "gate.log")
        wait_until(lambda: http_get(f"http://127.0.0.1:{self.gate_port}/health"), timeout=30, what="the gate")

    def stop_gate(self, sig: int = signal.SIGTERM) -> None:
        assert self.gate is not None
        self.procs.stop(self.gate, sig, timeout=30)
        self.gate = None

    def stop_vmauth(self) -> None:
        assert self.vmauth is not None
        self.procs.stop(self.vmauth, timeout=30)
        self.vmauth = None

    def reload(self) -> None:
        """vmauth re-reads -auth.config on SIGHUP (a revoked token stops working)."""
        assert self.vmauth is not None
        self.vmauth.send_signal(signal.SIGHUP)

    def gate_metrics(self) -> dict[str, float]:
        """The gate's /metrics (its loopback listener)."""
        assert self.gate_port is not None, "no gate (enforce_node=False)"
        return parse_metrics(http_get(f"http://127.0.0.1:{self.gate_port}/metrics").decode())

    def metrics(self) -> dict[str, float]:
        """vmauth's /metrics, from its internal listener (TLS like the public one)."""
        url = f"https://127.0.0.1:{self.internal_port}/metrics"
        return parse_metrics(http_get(url, context=self.pki.context()).decode())
