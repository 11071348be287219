"""Alertmanager from deploy/alertmanager/alertmanager.yml with the args of its Deployment."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from testbed.certs import Pki
from testbed.flags import override_flags, secret_paths
from testbed.net import free_port
from testbed.paths import ALERTMANAGER_CONFIG, ALERTMANAGER_MANIFEST, CENTRAL_SECRET_DIR, RUN_ALERTMANAGER, components
from testbed.poll import wait_until
from testbed.processes import Processes


class Alertmanager:
    """Alertmanager from deploy/alertmanager/alertmanager.yml with the args of its Deployment
    (deploy/kubernetes/central/alertmanager.yaml: TLS and basic auth through --web.config.file, the
    Secret's files from `pki`), run through tools/run-alertmanager.sh (the Debian build finds its
    templates only there). The test copy sends every webhook to `webhook_url` and waits `timings`
    (group_wait, group_interval, repeat_interval) instead of production's minutes."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        webhook_url: str,
        timings: Mapping[str, str],
        pki: Pki,
        secure: bool = True,
    ) -> None:
        """`secure` False drops the Deployment's --web.config.file: plain HTTP, no users (the demo's opt-in)."""
        self.procs = procs
        self.pki = pki
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        self.config = workdir / "alertmanager.yml"
        self.proc: subprocess.Popen[bytes] | None = None
        flags = override_flags(
            alertmanager_args(),
            {
                "--config.file": str(self.config),
                "--storage.path": str(workdir / "alertmanager-data"),
                "--web.listen-address": self.address,
            },
        )
        # The Secret's files (its web config, certificate, key) are the test's own.
        self.args = [
            f"{name}={secret_paths(value, {CENTRAL_SECRET_DIR: f'{pki.dir}/'})}"
            for name, _, value in (flag.partition("=") for flag in flags)
        ]
        if not secure:
            self.args = [arg for arg in self.args if not arg.startswith("--web.config.file=")]
        self.secure = any(arg.startswith("--web.config.file=") for arg in self.args)
        self.url = f"{'https' if self.secure else 'http'}://{self.address}"
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        unknown = set(timings) - set(config["route"])
        if unknown:
            raise KeyError(f"timings not in the deploy file's route: {sorted(unknown)}")
        config["route"].update(timings)
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = webhook_url
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> None:
        env = {**os.environ, **components()}
        log = self.workdir / "alertmanager.log"
        self.proc = self.procs.start([str(RUN_ALERTMANAGER), *self.args], env=env, log=log)
        wait_until(lambda: self.get("/-/ready"), timeout=60, what="Alertmanager ready")

    def stop(self) -> None:
        assert self.proc is not None
        self.procs.stop(self.proc, timeout=30)
        self.proc = None

    def credentials(self, user: str | None = "operator") -> dict[str, str]:
        """Basic auth of one of its users (make-certs' alertmanager-<user>.password); None: none."""
        if user is None:
            return {}
        secret = (self.pki.dir / f"alertmanager-{user}.password").read_text().strip()
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str | None = "operator",
        auth: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(HTTP status, body) of one request over TLS trusting the CA, as `user` (None: anonymous) or
        with the `auth` headers given instead."""
        headers = {"Content-Type": "application/json", **(self.credentials(user) if auth is None else auth)}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)
        context = self.pki.context() if self.secure else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())

    def get(self, path: str) -> bytes:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"Alertmanager GET {path}: HTTP {status}")
        return body

    def alerts(self) -> list[dict[str, Any]]:
        return list(json.loads(self.get("/api/v2/alerts")))


def alertmanager_args() -> list[str]:
    """The args of the alertmanager container of deploy/kubernetes/central/alertmanager.yaml."""
    for document in yaml.safe_load_all(ALERTMANAGER_MANIFEST.read_text()):
        if document and document["kind"] == "Deployment":
            for entry in document["spec"]["template"]["spec"]["containers"]:
                if entry["name"] == "alertmanager":
                    return [str(arg) for arg in entry["args"]]
    raise KeyError(f"{ALERTMANAGER_MANIFEST}: no Deployment with an alertmanager container")
