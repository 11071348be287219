"""A node whose credentials are not there yet (issue 20, item 5): the rendered DaemonSet run as written (podsim: the
kubelet's hostPath types, the shipped vmagent flags, the real vmagent 1.145 and the secure centre), on a node whose
/etc/edge-metrics/credentials was never provisioned.

What a user sees: the pod runs (nothing crash-loops or waits in ContainerCreating), the collector says once which
files are missing (`kubectl logs -c metric-sidecar`) and exports edge_collector_node_credentials_missing 1; the
collector keeps taking readings and the node's vmagent keeps them in its disk queue (it reads its token and CA at
each attempt). Once tools/node-credentials.sh's Job script has placed the files, every reading taken meanwhile
reaches the centre without a restart, and the centre keeps the interval in the metric's history. Run for the
kustomize pod and the chart's default with nothing provisioned, and for the kustomize pod with only the CA
forgotten (vmagent 1.145 loads its CA file at each attempt too).

On main this fails at the start: the DaemonSet's hostPath type Directory leaves the pod in ContainerCreating
(podsim refuses it as the kubelet does), and the collector has no such log line or metric.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.certs import Pki
from tests.helm.chart import template
from tests.helpers import REPO, wait_until
from tests.k8s.manifests import container, find, load_all, rendered
from tests.k8s.test_pod_spec_run import NODE_NAME, Deployment, run_pods

pytestmark = pytest.mark.k8s

MISSING = "node credentials missing"
PLACED = "node credentials in place"
SCRIPT = "space_server"


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "DaemonSet", "node-exporter-arm64")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def host_file(spec: dict[str, Any], name: str, path: str) -> tuple[str, str]:
    """(volume, path inside it) of `path` as container `name` sees it."""
    for mount in container(spec, name)["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            return mount["name"], path[len(prefix):]
    raise AssertionError(f"{path} is under no volumeMount of {name}")


def checked_files(spec: dict[str, Any]) -> set[tuple[str, str]]:
    env = {item["name"]: item.get("value", "") for item in container(spec, "metric-sidecar")["env"]}
    return {host_file(spec, "metric-sidecar", path) for path in env["EDGE_CREDENTIAL_FILES"].split(",")}


def vmagent_files(spec: dict[str, Any]) -> set[tuple[str, str]]:
    flags = ("-remoteWrite.bearerTokenFile=", "-remoteWrite.tlsCAFile=")
    args = [arg for arg in container(spec, "vmagent")["args"] if arg.startswith(flags)]
    assert len(args) == 2, args
    return {host_file(spec, "vmagent", arg.split("=", 1)[1]) for arg in args}


class TestTheCollectorChecksVmagentsFiles:
    """The collector looks at exactly the files the node's vmagent writes with, in the same host directory."""

    def test_kustomize(self) -> None:
        spec = pod_spec(rendered())
        assert checked_files(spec) == vmagent_files(spec) == {("credentials", "token"), ("credentials", "ca.crt")}

    def test_chart_default(self) -> None:
        spec = pod_spec(template())
        assert checked_files(spec) == vmagent_files(spec)

    def test_chart_with_the_ca_from_a_configmap(self) -> None:
        """The CA is then the ConfigMap's (always there once the pod starts): only the token can be missing."""
        spec = pod_spec(template(sets=("remoteWrite.caConfigMap=centre-ca",)))
        assert checked_files(spec) == {("credentials", "token")}
        assert checked_files(spec) < vmagent_files(spec)


# The kustomize pod (its node_exporter serves the collector's file) and the chart's default (no node_exporter:
# the collector's own endpoint), each as rendered.
RENDERS: dict[str, Callable[[], list[dict[str, Any]]]] = {"kustomize": rendered, "chart": template}


class Missing:
    """What the node lacks at first, what the collector's line then names, and how vmagent's log says it."""

    def __init__(self, files: tuple[str, ...], vmagent_says: str) -> None:
        self.files = files
        self.vmagent_says = vmagent_says


# Never provisioned (not even the directory); or the CA forgotten by hand beside the token (vmagent loads its
# CA file lazily too, and again once it is there).
CASES = {
    "nothing": Missing(("token", "ca.crt"), "cannot read bearer token"),
    "ca.crt": Missing(("ca.crt",), "cannot load root CAs"),
}


@pytest.fixture(scope="module", params=[("kustomize", "nothing"), ("chart", "nothing"), ("kustomize", "ca.crt")],
                ids=lambda p: "-".join(p))
def bare_node(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Path, Missing]]:
    render, case = request.param
    root = tmp_path_factory.mktemp("node")
    credentials = root / "host" / "etc-edge-metrics-credentials"
    missing = CASES[case]
    if case != "nothing":
        # The files the case keeps, copied by hand from make-certs' output; run_pods runs make-certs again in the
        # same directory, which keeps the CA and the node's token (docs/security.md, "Rotation").
        pki = Pki(root / "pki")
        pki.make(nodes=[NODE_NAME])
        credentials.mkdir(parents=True)
        for name in ("ca.crt", "token", "admin-key"):
            if name not in missing.files:
                (credentials / name).write_bytes((pki.node_dir(NODE_NAME) / name).read_bytes())
    with run_pods(RENDERS[render](), root, credentials=credentials) as deployment:
        yield deployment, credentials, missing


def metrics_file(deployment: Deployment) -> str:
    return Path(deployment.container("metric-sidecar").env["EDGE_OUTPUT"]).read_text()


def value(text: str, series: str) -> float | None:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def lines(deployment: Deployment, needle: str) -> list[str]:
    return [line for line in deployment.log("metric-sidecar").splitlines() if needle in line]


def place_credentials(deployment: Deployment, target: Path) -> None:
    """What tools/node-credentials.sh's Job does on the node: its own script, with the node's make-certs files."""
    result = subprocess.run(["bash", str(REPO / "tools" / "node-credentials.sh"), "--pki", str(deployment.pki.dir),
                             "--print", NODE_NAME], capture_output=True, text=True, timeout=60, check=True)
    job = next(o for o in load_all(result.stdout) if o["kind"] == "Job")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    env = {"PATH": os.environ["PATH"], "SOURCE": str(deployment.pki.node_dir(NODE_NAME)), "TARGET": str(target),
           "NODE_NAME": NODE_NAME}
    subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=True)


def vmagent_scrapes(deployment: Deployment) -> float:
    with urllib.request.urlopen(deployment.url(8429) + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(r"^vm_promscrape_scrapes_total(?:\{[^}]*\})? (\S+)$", text, re.M))


class TestNodeWithoutCredentials:
    def test_says_so_once_keeps_reading_and_delivers_everything_once_placed(
        self, bare_node: tuple[Deployment, Path, Missing]
    ) -> None:
        deployment, credentials, missing = bare_node
        runs = f'edge_collector_script_runs_total{{script="{SCRIPT}"}}'

        # 1. Without credentials: the pod runs, the collector reads on, says so once and in its metric.
        wait_until(lambda: (value(metrics_file(deployment), runs) or 0) >= 2 and vmagent_scrapes(deployment) >= 1,
                   timeout=90, interval=0.5, what=f"two runs and a vmagent scrape (logs in {deployment.logs})")
        before = metrics_file(deployment)
        assert value(before, "edge_collector_node_credentials_missing") == 1.0
        said = lines(deployment, MISSING)
        assert len(said) == 1, said
        named = re.findall(r"/(\w[\w.-]*) \(No such file or directory\)", said[0])
        assert tuple(named) == missing.files, said[0]
        assert missing.vmagent_says in deployment.log("vmagent")  # vmagent's own reason, at each retry
        for name, proc in deployment.started["procs"].items():
            assert proc.poll() is None, f"{name} exited:\n{deployment.log(name)}"
        assert deployment.query(f'{{__name__=~"edge_.+", node="{NODE_NAME}"}}') == []  # nothing unauthenticated
        taken_before = value(before, runs)

        # 2. The credentials arrive, as tools/node-credentials.sh places them; nothing restarts.
        place_credentials(deployment, credentials)
        wait_until(lambda: value(metrics_file(deployment), "edge_collector_node_credentials_missing") == 0.0,
                   timeout=60, interval=0.5, what="the metric to clear")
        assert len(lines(deployment, PLACED)) == 1, deployment.log("metric-sidecar")
        wait_until(lambda: deployment.query(
            f'{{__name__=~"edge_.+", __name__!~"edge_collector_.+", node="{NODE_NAME}", job=""}}'),
            timeout=120, interval=1, what="the queued readings at the centre")
        for name, proc in deployment.started["procs"].items():
            assert proc.poll() is None, f"{name} restarted or exited:\n{deployment.log(name)}"

        # 3. Accounting: the collector stopped (its last push), every reading it took is stored once.
        collector = deployment.started["procs"]["metric-sidecar"]
        deployment.procs.stop(collector)
        final = metrics_file(deployment)
        assert value(final, f'edge_collector_script_failures_total{{script="{SCRIPT}"}}') == 0.0, final
        total_runs = value(final, runs) or 0.0
        series = [s["metric"]["__name__"] for s in deployment.query(
            f'count by (__name__) ({{__name__=~"edge_.+", __name__!~"edge_collector_.+", node="{NODE_NAME}", '
            'job=""})')]
        assert series

        def stored() -> dict[str, float]:
            return {name: float(deployment.query(f'count_over_time({name}{{node="{NODE_NAME}"}}[1h])')[0]["value"][1])
                    for name in series}

        try:
            wait_until(lambda: set(stored().values()) == {total_runs}, timeout=120, interval=2,
                       what="every reading taken stored at the centre")
        finally:
            counts = stored()
            taken = total_runs * len(series)
            print(f"runs {total_runs:.0f} ({taken_before:.0f} before the credentials), series per run {len(series)}:"
                  f" taken {taken:.0f}, stored {sum(counts.values()):.0f}, lost {taken - sum(counts.values()):.0f},"
                  f" resent {value(final, 'edge_collector_push_resent_samples_total')}; made visible by the log line"
                  f" and edge_collector_node_credentials_missing")
        assert value(final, "edge_collector_push_resent_samples_total") == 0.0
        assert value(final, "edge_collector_push_spooled_samples") == 0.0
        assert not re.search(r'^edge_collector_push_dropped_samples_total\{[^}]*\} [1-9]', final, re.M), final
        # The centre's record of the interval without credentials: queued with the readings, delivered with them.
        history = deployment.query(f'max_over_time(edge_collector_node_credentials_missing{{node="{NODE_NAME}"}}[1h])')
        assert history and history[0]["value"][1] == "1", history
