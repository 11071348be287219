"""The real pipeline on loopback: central Prometheus <- vmauth <- vmagent (disk queue) <- node_exporter <- collector.

Every configuration comes from deploy/ as it is; only listen ports, data paths, credential paths and the
scrape interval (the tests scrape every second instead of every 15 s) are substituted. Each process is
started through tests.helpers.Processes, so its whole process group is killed at teardown even when a
test fails.

Secure as shipped (docs/security.md): tools/make-certs.sh makes a CA, the centre's certificate and the
node tokens in the test's directory; the node writes over TLS with its bearer token to vmauth, and
Prometheus serves only TLS with basic auth (its --web.config.file). By default (`enforce_node=True`) the
gate of production (`edge-metrics gate`, deploy/vmauth/gate.flags) sits between vmauth and Prometheus, sets
the node and cluster labels from the credential and enforces the per-node limits of make-certs'
gate-limits.conf: the centre the manifests ship (tests/k8s/test_test_centre.py compares). A test that needs
the node to see Prometheus' own answers passes `enforce_node=False` (vmauth straight to Prometheus) with a
`# direct to Prometheus: <why>` comment on the line before (the same test checks there is one).
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge_metrics.durations import parse_duration
from edge_metrics.remotewrite import encode_write_request, snappy_encode
from tests.helpers import EDGE_METRICS, REPO, Processes, components, free_port, parse_metrics, wait_until

DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
VMAGENT_TARGET_EXAMPLE = PROMETHEUS_DIR / "targets" / "vmagent-NODE.json.example"
VMAGENT_FLAGS = DEPLOY / "vmagent" / "vmagent.flags"
VMAGENT_SCRAPE = DEPLOY / "vmagent" / "scrape.yml"
NODE_EXPORTER_FLAGS = DEPLOY / "node-exporter" / "node-exporter.flags"
# The compatibility job's components (bookworm's Prometheus 2.42 and vmagent 1.79), as components() keys.
COMPAT_PROMETHEUS = "COMPAT_PROMETHEUS_BIN"
COMPAT_VMAGENT = "COMPAT_VMAGENT_BIN"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
ALERTMANAGER_MANIFEST = DEPLOY / "kubernetes" / "central" / "alertmanager.yaml"
RUN_ALERTMANAGER = REPO / "tools" / "run-alertmanager.sh"
VMAUTH_FLAGS = DEPLOY / "vmauth" / "vmauth.flags"
GATE_FLAGS = DEPLOY / "vmauth" / "gate.flags"
PHASE_ATTEMPTS = 10  # starts of the counter collector to land it half a second from the scrapes
MAKE_CERTS = REPO / "tools" / "make-certs.sh"
# Where the manifests mount the centre's Secret and a node's credentials; the tests' files live elsewhere.
CENTRAL_SECRET_DIR = "/etc/edge-metrics-central/"
NODE_CREDENTIALS_DIR = "/etc/edge-metrics/credentials/"
CLUSTER = "test"  # the cluster label of every sample (-remoteWrite.label=cluster=$(CLUSTER), vmagent.flags)

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


def http_get(
    url: str, timeout: float = 5, *, context: ssl.SSLContext | None = None, headers: Mapping[str, str] | None = None
) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return bytes(response.read())


_IMPORT_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(\d+))?")
_IMPORT_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def remote_write_body(text: bytes) -> bytes:
    """Lines of the import format (`name{a="b"} value [ms]`, labels without `"` or `,` in values, a name
    repeated kept) as a remote-write 1.0 body: what a node's vmagent, or a root on the node, sends the centre."""
    series = []
    for line in text.decode().splitlines():
        match = _IMPORT_LINE.fullmatch(line.strip())
        assert match, f"not an import line: {line!r}"
        name, inner, value, stamp = match.groups()
        labels = (("__name__", name), *_IMPORT_LABEL.findall(inner or ""))
        series.append((labels, [(int(stamp) if stamp else int(time.time() * 1000), float(value))]))
    return snappy_encode(encode_write_request(series))


def post_lines(url: str, text: bytes, *, context: ssl.SSLContext | None, headers: Mapping[str, str]) -> int:
    """POST import-format lines as remote write to `url` (vmauth's /api/v1/write); the HTTP status."""
    request = urllib.request.Request(
        url,
        data=remote_write_body(text),
        headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


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


def secret_paths(value: Any, replacements: Mapping[str, str]) -> Any:
    """`value` (parsed YAML) with every string starting with a key of `replacements` re-rooted."""
    if isinstance(value, dict):
        return {key: secret_paths(item, replacements) for key, item in value.items()}
    if isinstance(value, list):
        return [secret_paths(item, replacements) for item in value]
    if isinstance(value, str):
        for prefix, target in replacements.items():
            if value.startswith(prefix):
                return target + value[len(prefix) :]
    return value


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
        scrape_interval: str,
        out_of_order_window: str | None = None,
        extra_args: Sequence[str] = (),
        binary: str = "PROMETHEUS_BIN",
        pki: Pki,
        host: str = "127.0.0.1",
    ) -> None:
        self.procs = procs
        self.extra_args = list(extra_args)
        self.binary = binary  # the components() key: COMPAT_PROMETHEUS_BIN for the compatibility job
        self.port = free_port()
        self.host = host  # the fleet (bench/fleet) listens on its bridge's address instead of loopback
        super().__init__(f"https://{host}:{self.port}", pki)
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
        # The Secret's files (CA, the self-scrape's password) are the test's own.
        config = secret_paths(config, {CENTRAL_SECRET_DIR: f"{pki.dir}/"})
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

    def add_vmagent_target(self, address: str, node: str) -> None:
        """Let the centre pull a node's vmagent /metrics (file_sd picks the file up by itself): a target file
        as the shipped example writes it, its address and the node's labels (node, cluster) the test's."""
        target = json.loads(VMAGENT_TARGET_EXAMPLE.read_text())
        values = {"node": node, "cluster": CLUSTER}
        for entry in target:
            entry["targets"] = [address]
            entry["labels"] = {name: values.get(name, value) for name, value in entry["labels"].items()}
        (self.config_dir / "targets" / f"vmagent-{node}.json").write_text(json.dumps(target))

    def send_alerts_to(self, address: str) -> None:
        """The shipped `alerting:` section and `alertmanager` scrape job (TLS, its user, the CA) in the
        test copy, pointed at an Alertmanager on `address` (before start)."""
        shipped = secret_paths(
            yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text()), {CENTRAL_SECRET_DIR: f"{self.pki_dir()}/"}
        )
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
                f"--web.config.file={self.pki_dir() / 'web.yml'}",
                *self.extra_args,
            ],
            log=self.log,
        )
        wait_until(lambda: self.get("/-/ready") is not None, timeout=60, what="Prometheus ready")

    def pki_dir(self) -> Path:
        assert self.pki is not None
        return self.pki.dir

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.procs.stop(self.proc, sig, timeout=30)
        self.proc = None


class Alertmanager:
    """Alertmanager from deploy/alertmanager/alertmanager.yml with the args of its Deployment
    (deploy/kubernetes/central/alertmanager.yaml: TLS and basic auth through --web.config.file, the
    Secret's files from `pki`), run through tools/run-alertmanager.sh (the Debian build finds its
    templates only there). The test copy sends every webhook to `webhook_url` and waits `timings`
    (group_wait, group_interval, repeat_interval) instead of production's minutes."""

    def __init__(
        self, procs: Processes, workdir: Path, *, webhook_url: str, timings: Mapping[str, str], pki: Pki
    ) -> None:
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
        vmagent_binary: str = "VMAGENT_BIN",
        vmagent_flags: Mapping[str, str] | None = None,
        credentials: Path,
        vmagent_address: str | None = None,
    ) -> None:
        self.procs = procs
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
            VMAGENT_FLAGS, {"NODE_NAME": self.name, "REMOTE_WRITE_URL": self.remote_write_url, "CLUSTER": CLUSTER}
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

    def scrapes_between(self, low: float, high: float, failed: Sequence[float] = ()) -> bool:
        """A scrape of this run in [low, high] that is not one of the `failed` ones (their `up` stamps)."""
        low, high = max(low, self.start), min(high, self.end)
        scrape = low + (self.phase - low) % self.interval  # the first scrape at or after `low`
        while scrape <= high:
            if not any(abs(scrape - stamp) < self.interval / 2 for stamp in failed):
                return True
            scrape += self.interval
        return False


def scrape_phase(timestamps: Sequence[float], interval: float = 1.0) -> float:
    """vmagent scrapes a target at a fixed offset in each interval; the median offset of its samples."""
    offsets = sorted(t % interval for t in timestamps)
    if not offsets:
        raise ValueError("no scrape timestamps")
    return offsets[len(offsets) // 2]


def certainly_scraped(
    prints: Sequence[Print], runs: Sequence[ScrapeRun], margin: float = 0.15, failed: Sequence[float] = ()
) -> set[int]:
    """Printed values that some scrape must have seen: the value stayed in the file from (print time +
    margin) to (next print time - margin) and vmagent scraped inside that span. Values printed while
    vmagent was down, whose only scrape fell within `margin` of a rewrite (timing jitter), or whose only
    scrape failed (`failed`: the stamps of `up` 0, at the centre; a loaded machine times scrapes out) are
    left out. A lost block loses its `up` too, so its values stay expected."""
    seen = set()
    for current, following in itertools.pairwise(prints):
        low, high = current.at + margin, following.at - margin
        if any(run.scrapes_between(low, high, failed) for run in runs):
            seen.add(current.value)
    return seen


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
        scrape_interval: str = "1s",
        out_of_order_window: str | None = None,
        prometheus_args: Sequence[str] = (),
        compat: bool = False,
        enforce_node: bool = True,
        host: str = "127.0.0.1",
        credentials_from: Pki | None = None,
    ) -> None:
        """`host`: where Prometheus and vmauth listen (the fleet: its bridge's address, which the centre's
        certificate then names too); `credentials_from`: another centre whose CA and node tokens this one
        accepts (two centres for HA)."""
        self.procs = procs
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
        self.ingest.make_credentials(nodes, sans=[host] if host != "127.0.0.1" else [])
        self.central.scrape_target("vmauth", f"127.0.0.1:{self.ingest.internal_port}")
        self.central.scrape_target("gate", f"127.0.0.1:{self.ingest.gate_port}" if self.ingest.gate_port else None)

    def node(self, name: str, workdir: Path, **options: Any) -> Node:
        """An edge node with its credentials, writing to this centre, whose vmagent the centre pulls."""
        node = Node(
            self.procs,
            workdir,
            name=name,
            remote_write_url=self.ingest.write_url,
            credentials=self.pki.node_dir(name),
            **{"vmagent_binary": COMPAT_VMAGENT if self.compat else "VMAGENT_BIN", **options},
        )
        # The centre reaches a node's vmagent at an address of its own (in production the node's, while the
        # self-scrape of scrape.yml is the node's loopback): on loopback here, by name, so that the pulled series
        # and the pushed ones keep apart by `instance` as they do in production.
        self.central.add_vmagent_target(node.vmagent_address.replace("127.0.0.1:", "localhost:"), name)
        return node

    def start(self) -> None:
        self.central.start()
        self.ingest.start()


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
        compat: bool = False,
        enforce_node: bool = True,
        other_nodes: Sequence[str] = (),
    ) -> None:
        """`other_nodes`: names that get credentials too (no processes), e.g. for a forged write."""
        self.procs = procs
        self.workdir = workdir
        self.centre = Centre(
            procs,
            workdir,
            nodes=[node, *other_nodes],
            scrape_interval=scrape_interval,
            out_of_order_window=out_of_order_window,
            prometheus_args=prometheus_args,
            compat=compat,
            enforce_node=enforce_node,
        )
        self.pki, self.central, self.ingest = self.centre.pki, self.centre.central, self.centre.ingest
        self.node = self.centre.node(node, workdir / node, scrape_interval=scrape_interval)
        self.scripts_dir = workdir / "scripts"
        self.vmagent_runs: list[ScrapeRun] = []
        self._vmagent_started = 0.0

    def start_infrastructure(self) -> None:
        """Centre, node_exporter and vmagent, and wait until the centre holds the node's `up` series."""
        self.centre.start()
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
        scrape phase so no scrape races a rewrite (restarted if start-up latency spoils it). Under load that
        latency varies by most of a second from one start to the next, so each retry lands anywhere: half the
        starts miss the window, and three in a row did in a fresh-clone run; hence several attempts."""
        config = write_counter_config(self.scripts_dir, node=self.node.name, interval=interval)
        phase = self.current_scrape_phase()
        shift = 0.5  # where, after vmagent's scrape, the collector's start should land
        for attempt in range(PHASE_ATTEMPTS):
            time.sleep((phase + shift - time.time()) % 1.0)
            before = len(read_prints(self.scripts_dir))
            proc = self.node.start_collector(config=config, env=env)
            wait_until(
                lambda before=before: len(read_prints(self.scripts_dir)) >= before + 3,
                timeout=30,
                what="three counter runs",
            )
            offset = (read_prints(self.scripts_dir)[-1].at - phase) % 1.0
            print(f"counter collector start {attempt + 1}: {offset:.2f} s after the scrapes")
            if 0.25 < offset < 0.75:
                return
            # Start-up latency moved the runs too close to the scrapes: compensate and try again.
            self.procs.stop(proc)
            shift = (shift + 0.5 - offset) % 1.0
            if attempt == PHASE_ATTEMPTS - 1:
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

    def failed_scrapes(self) -> list[float]:
        """When vmagent's scrapes of the node's node_exporter failed: its `up` samples of 0 at the centre."""
        ups = self.central.raw_samples(f'up{{job="node-exporter",node="{self.node.name}"}}', "1h")
        return [t for t, value in ups if value == 0]

    def counter_values_at_centre(self) -> set[int]:
        samples = self.central.raw_samples(f'edge_e2e_counter{{node="{self.node.name}"}}', "1h")
        return {int(value) for _, value in samples}

    def counter_values_once_visible(self, expected: set[int], timeout: float = 60) -> tuple[set[int], float]:
        """The values at the centre, polled until `expected` are all there or `timeout`, and how long that took.
        With the compressed block duration, a run's query missed out-of-order samples that Prometheus had
        acknowledged (and that a restart on the same data shows): the late ones become visible later."""
        started = time.monotonic()
        present = self.counter_values_at_centre()
        while not expected <= present and time.monotonic() - started < timeout:
            time.sleep(0.5)
            present = self.counter_values_at_centre()
        return present, round(time.monotonic() - started, 1)

    def wait_scraped_after(self, moment: float, timeout: float = 30) -> None:
        """Until a scrape of the node taken after `moment` (time.time()) is at the centre: its samples travel in
        order with the earlier ones, so everything scraped before `moment` has arrived too."""
        series = f'up{{job="node-exporter",node="{self.node.name}"}}'
        wait_until(lambda: any(t > moment for t, _ in self.central.raw_samples(series, "5m")), timeout=timeout,
                   interval=0.2, what=f"a scrape of {self.node.name} after {moment:.1f} at the centre")

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


# Push mode ---------------------------------------------------------------------------------------------------

_STAMPED = re.compile(r"readings stamped script=(\S+) timestamp_ms=(\d+) samples=(\d+)")


def push_url(node: Node) -> str:
    """The node-local vmagent's import endpoint, as the DaemonSet sets EDGE_PUSH_URL."""
    return f"http://{node.vmagent_address}/api/v1/import/prometheus"


def start_push_collector(
    node: Node, config: Path, *, clock_file: Path, spool_dir: Path | None = None, extra_args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """The real collector in push mode with debug logs (each run's timestamp) and the clock read from `clock_file`
    (EDGE_CLOCK_TEST_FILE: this machine's own clock may not be synchronised)."""
    if not clock_file.exists():
        set_clock(clock_file, synchronized=True)
    args = ["--push-url", push_url(node), "--log-level", "debug", *extra_args]
    if spool_dir is not None:
        args += ["--spool-dir", str(spool_dir)]
    return node.start_collector(config=config, extra_args=args, env={"EDGE_CLOCK_TEST_FILE": str(clock_file)})


def set_clock(path: Path, *, synchronized: bool, offset: float = 0.0, esterror: float = 0.0) -> None:
    """What the collector's clock says from its next reading on (atomically: it reads the file at any time)."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(f"synchronized={int(synchronized)}\noffset_seconds={offset}\nesterror_seconds={esterror}\n")
    temp.rename(path)


def collector_stamps(node: Node, script: str = "counter") -> list[int]:
    """The timestamp (ms) the collector gave each run of `script`, in order, from its debug log."""
    log = node.workdir / "collector.log"
    text = log.read_text() if log.exists() else ""
    return [int(ms) for name, ms, _ in _STAMPED.findall(text) if name == script]


def collector_self_metrics(node: Node) -> dict[str, float]:
    """The collector's own metrics from its textfile (exported in both modes)."""
    return parse_metrics((node.textfile_dir / "custom_metrics.prom").read_text())


def samples_at_centre(central: PrometheusAPI, selector: str, window: str = "1h") -> list[tuple[int, float]]:
    """(timestamp ms, value) of every raw sample at the centre matching `selector`, sorted by time."""
    return [(round(t * 1000), v) for t, v in central.raw_samples(selector, window)]
