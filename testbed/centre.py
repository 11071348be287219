"""The centre as shipped: Prometheus behind vmauth and the gate, with credentials for its nodes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testbed.certs import Pki
from testbed.ingest import Ingest
from testbed.node import Node
from testbed.paths import CLUSTER, COMPAT_PROMETHEUS, COMPAT_VMAGENT
from testbed.processes import Processes
from testbed.prometheus import Central


class Centre:
    """The centre as shipped: Prometheus behind vmauth and the gate that sets the node label and enforces the
    node's limits (without `enforce_node`: vmauth straight to Prometheus), with credentials made for `nodes`;
    nothing runs until start()."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        nodes: Sequence[str],
        scrape_interval: str | None = "1s",
        out_of_order_window: str | None = None,
        prometheus_args: Sequence[str] = (),
        compat: bool = False,
        enforce_node: bool = True,
        host: str = "127.0.0.1",
        credentials_from: Pki | None = None,
        cluster: str = CLUSTER,
        secure: bool = True,
    ) -> None:
        """`host`: where Prometheus and vmauth listen (the fleet: its bridge's address, which the centre's
        certificate then names too); `credentials_from`: another centre whose CA and node tokens this one
        accepts (two centres for HA); `cluster`: the nodes' cluster label; `secure` False: the demo's plain-HTTP
        opt-in, Prometheus without TLS or users written to straight, vmauth and the gate not started."""
        self.procs = procs
        self.cluster = cluster
        self.secure = secure
        self.compat = compat
        self.pki = Pki(workdir / "pki")
        if credentials_from is not None:
            self.pki.share_credentials(credentials_from)
        self.central = Central(
            procs,
            workdir,
            scrape_interval=scrape_interval,
            out_of_order_window=out_of_order_window,
            extra_args=prometheus_args,
            binary=COMPAT_PROMETHEUS if compat else "PROMETHEUS_BIN",
            pki=self.pki,
            host=host,
            secure=secure,
        )
        self.ingest = Ingest(
            procs,
            workdir,
            pki=self.pki,
            store_url=self.central.url,
            enforce_node=enforce_node,
            host=host,
            max_age=out_of_order_window,
        )
        self.ingest.make_credentials(nodes, sans=[host] if host != "127.0.0.1" else [], cluster=cluster)
        self.central.scrape_target("vmauth", f"127.0.0.1:{self.ingest.internal_port}")
        self.central.scrape_target("gate", f"127.0.0.1:{self.ingest.gate_port}" if self.ingest.gate_port else None)

    def node(self, name: str, workdir: Path, **options: Any) -> Node:
        """An edge node with its credentials, writing to this centre, whose vmagent the centre pulls."""
        node = Node(
            self.procs,
            workdir,
            name=name,
            remote_write_url=self.ingest.write_url if self.secure else f"{self.central.url}/api/v1/write",
            credentials=self.pki.node_dir(name),
            **{"vmagent_binary": COMPAT_VMAGENT if self.compat else "VMAGENT_BIN", "cluster": self.cluster, **options},
        )
        # The centre reaches a node's vmagent at an address of its own (in production the node's, while the
        # self-scrape of scrape.yml is the node's loopback): on loopback here, by name, so that the pulled series
        # and the pushed ones keep apart by `instance` as they do in production.
        self.central.add_vmagent_target(node.vmagent_address.replace("127.0.0.1:", "localhost:"), name, self.cluster)
        return node

    def start(self) -> None:
        self.central.start()
        if self.secure:
            self.ingest.start()
