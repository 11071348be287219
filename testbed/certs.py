"""The centre's and the nodes' credentials: what tools/make-certs.sh writes, and clients that use them."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path

from testbed.paths import MAKE_CERTS


class Pki:
    """The files tools/make-certs.sh writes into `directory` (see its header)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = directory / "ca.crt"
        self.web_config = directory / "web.yml"
        self.auth_config = directory / "auth.yml"

    def make(
        self,
        *,
        nodes: Sequence[str],
        backend: str | None = None,
        backend_auth: bool = False,
        expired: bool = False,
        sans: Sequence[str] = (),
        cluster: str | None = None,
        gate: bool = False,
    ) -> None:
        """Run tools/make-certs.sh; `backend` None keeps its default (the gate of the manifests); a `backend`
        given is the store itself (make-certs --direct) unless `gate`."""
        argv = ["bash", str(MAKE_CERTS), "--out", str(self.dir), *(["--backend", backend] if backend else [])]
        argv += ["--direct"] if backend and not gate else []
        for node in nodes:
            argv += ["--node", node]
        for san in sans:
            argv += ["--san", san]
        argv += ["--cluster", cluster] if cluster else []
        argv += ["--backend-auth"] * backend_auth + ["--expired"] * expired
        subprocess.run(argv, check=True, capture_output=True, timeout=60 + len(nodes))  # a fleet: many

    @property
    def gate_limits(self) -> Path:
        """make-certs' gate-limits.conf: the ConfigMap central-gate-limits of the gate's per-node limits."""
        return self.dir / "gate-limits.conf"

    def share_credentials(self, other: Pki) -> None:
        """Take `other`'s CA and node tokens before make(): make-certs keeps an existing CA and token, so
        a second centre (HA) accepts the same nodes with the same files."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ("ca.crt", "ca.key"):
            shutil.copy2(other.dir / name, self.dir / name)
        shutil.copytree(other.dir / "nodes", self.dir / "nodes", dirs_exist_ok=True)

    def password(self, user: str) -> str:
        return (self.dir / f"{user}.password").read_text().strip()

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def token(self, node: str) -> str:
        return (self.node_dir(node) / "token").read_text().strip()

    def config_maps(self) -> dict[str, dict[str, str]]:
        """The ConfigMaps docs/security.md creates from make-certs' output: the gate's limits."""
        return {"central-gate-limits": {self.gate_limits.name: self.gate_limits.read_text()}}

    def files(self) -> dict[str, str]:
        """The centre's files (not the CA key, not the nodes' directories): the data of the Secret
        central-credentials that docs/security.md creates from them."""
        return {
            path.name: path.read_text()
            for path in sorted(self.dir.iterdir())
            if path.is_file() and path.name != "ca.key"
        }

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (and checks the host name, as vmagent does)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def basic_auth(self, user: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{self.password(user)}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
