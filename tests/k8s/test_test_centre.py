"""The centre the tests run is the centre the manifests ship (issue 18: "the tests run what ships"): the e2e
stack's and the fleet's vmauth and gate run the flags of the central Deployment's containers, in their order,
with only addresses and the paths of the same Secret and ConfigMap keys substituted; vmauth routes each node's
token to the gate as make-certs' default (the Secret of docs/security.md) does. No process is started: this
compares argv and files, so a change to the manifests that the tests do not follow fails here in seconds."""

from __future__ import annotations

import ast
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.fleet.centre import VICTORIA_FLAGS, make_centre
from testbed.centre import Centre
from testbed.certs import Pki
from testbed.flags import read_flags
from testbed.ingest import Ingest
from testbed.paths import CLUSTER
from tests.helpers import REPO, Processes
from tests.k8s.manifests import Obj, container, find, rendered

pytestmark = pytest.mark.k8s

NODES = ("edge-a", "edge-b")
# What a test writing straight to Prometheus puts on the line before its call, with its reason after.
DIRECT_REASON = "# direct to Prometheus:"
# Flags whose value is an address: the tests listen on free loopback ports (the host must stay the same).
ADDRESS_FLAGS = {"--listen", "-httpListenAddr", "-httpInternalListenAddr"}


def centre_pod() -> Obj:
    return dict(find(rendered(), "Deployment", "central-prometheus")["spec"]["template"]["spec"])


def flag_pairs(args: Sequence[str]) -> list[tuple[str, str]]:
    return [(name, value) for name, _, value in (arg.partition("=") for arg in args)]


def mounted_key(pod: Obj, container_name: str, path: str) -> tuple[str, str, str]:
    """(kind, name, key) of the Secret or ConfigMap key the pod mounts at `path` in that container."""
    for mount in container(pod, container_name).get("volumeMounts", []):
        directory = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(directory):
            continue
        file = path[len(directory) :]
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        kind = "Secret" if "secret" in volume else "ConfigMap"
        source = volume["secret"] if kind == "Secret" else volume["configMap"]
        name = source["secretName"] if kind == "Secret" else source["name"]
        items = {item["path"]: item["key"] for item in source.get("items", [])}
        return kind, name, items.get(file, file) if items else file
    raise AssertionError(f"{container_name}: nothing mounted at {path}")


def file_for_key(pki: Pki, kind: str, name: str, key: str) -> Path:
    """Where the tests keep that key: make-certs' output, which docs/security.md makes the Secret and the
    ConfigMaps from (Pki.files, Pki.config_maps)."""
    if kind == "Secret":
        assert name == "central-credentials" and key in pki.files(), (kind, name, key)
    else:
        assert key in pki.config_maps().get(name, {}), (kind, name, key)
    return pki.dir / key


def differences(
    shipped: Sequence[str], tested: Sequence[str], *, pod: Obj, container_name: str, pki: Pki, allowed: frozenset[str]
) -> list[str]:
    """What in `tested` (a test's flags) is not `shipped` (the container's args) up to the substitutions a test
    may make: an address on the same host, a file standing for the same Secret or ConfigMap key, and the flags
    of `allowed` (checked by the caller)."""
    found = []
    pairs, theirs = flag_pairs(shipped), flag_pairs(tested)
    if [n for n, _ in pairs] != [n for n, _ in theirs]:
        return [f"flags {[n for n, _ in theirs]} != shipped {[n for n, _ in pairs]}"]
    for (name, value), (_, test_value) in zip(pairs, theirs, strict=True):
        if value == test_value or name in allowed:
            continue
        if name in ADDRESS_FLAGS:
            if value.rpartition(":")[0] not in ("", test_value.rpartition(":")[0]):
                found.append(f"{name}={test_value}: shipped host {value}")
        elif value.startswith("/"):
            expected = file_for_key(pki, *mounted_key(pod, container_name, value))
            if Path(test_value) != expected:
                found.append(f"{name}={test_value}: shipped {value}, i.e. {expected}")
        else:
            found.append(f"{name}={test_value}: shipped {value}")
    return found


def routes(auth_config: Path) -> dict[str, Any]:
    """vmauth's users as node -> url_map, the gate's address in each url_prefix replaced by GATE."""
    users = yaml.safe_load(auth_config.read_text())["users"]
    result = {}
    for user in users:
        url_map = []
        for route in user["url_map"]:
            prefix = urllib.parse.urlsplit(route["url_prefix"])
            url_map.append({**route, "url_prefix": f"{prefix.scheme}://GATE{prefix.path}"})
        result[user["name"]] = {key: value for key, value in user.items() if key not in ("bearer_token", "url_map")}
        result[user["name"]]["url_map"] = url_map
    return result


def check_ingest(ingest: Ingest, store_url: str, *, allowed: frozenset[str] = frozenset()) -> None:
    """`ingest` runs vmauth and the gate as the central Deployment does, vmauth routing to its gate."""
    pod = centre_pod()
    assert ingest.enforce_node and ingest.gate_port is not None, "the shipped centre has the gate"
    vmauth = ingest.vmauth_argv()[1:]
    assert differences(container(pod, "vmauth")["args"], vmauth, pod=pod, container_name="vmauth", pki=ingest.pki,
                       allowed=frozenset()) == []
    shipped_gate = container(pod, "gate")["args"]
    gate = ingest.gate_argv()[1:]
    assert shipped_gate[0] == gate[0] == "gate"
    store = frozenset({"--store-url"}) | allowed
    assert differences(shipped_gate[1:], gate[1:], pod=pod, container_name="gate", pki=ingest.pki,
                       allowed=store) == []
    assert dict(flag_pairs(gate))["--store-url"] == f"{store_url}/api/v1/write"
    if not allowed:  # Prometheus: the shipped scheme and path, the test's Prometheus
        shipped_url = urllib.parse.urlsplit(dict(flag_pairs(shipped_gate))["--store-url"])
        tested_url = urllib.parse.urlsplit(store_url + "/api/v1/write")
        assert (tested_url.scheme, tested_url.path) == (shipped_url.scheme, shipped_url.path)
    listen = dict(flag_pairs(gate))["--listen"]
    assert ingest.backend == f"http://{listen}", "vmauth forwards to the gate"
    users = yaml.safe_load(ingest.pki.auth_config.read_text())["users"]
    for user in users:
        prefixes = {route["url_prefix"] for route in user["url_map"]}
        assert prefixes == {f"http://{listen}/node/{user['name']}/{CLUSTER}"}, user["name"]


@pytest.fixture(scope="module")
def shipped_routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """vmauth's users as docs/security.md makes the Secret (make-certs' defaults), for NODES in CLUSTER."""
    pki = Pki(tmp_path_factory.mktemp("shipped"))
    pki.make(nodes=NODES, cluster=CLUSTER)
    return routes(pki.auth_config)


class TestShippedRouting:
    def test_make_certs_default_routes_to_the_deployments_gate(self, shipped_routes: dict[str, Any]) -> None:
        """The Secret's auth.yml sends each token to the gate's --listen in the pod (its loopback)."""
        pki_prefixes = {route["url_prefix"] for user in shipped_routes.values() for route in user["url_map"]}
        assert pki_prefixes == {f"http://GATE/node/{node}/{CLUSTER}" for node in NODES}
        listen = dict(flag_pairs(container(centre_pod(), "gate")["args"][1:]))["--listen"]
        assert listen.startswith("127.0.0.1:")


class TestE2eCentre:
    def test_the_e2e_centre_with_the_gate_is_the_deployment(self, tmp_path: Path, shipped_routes: dict[str, Any]
                                                            ) -> None:
        """testbed's Centre as e2e tests get it by default: vmauth, the gate and the routes as shipped."""
        centre = Centre(Processes(), tmp_path, nodes=NODES)  # the default: a test writing direct must say so
        check_ingest(centre.ingest, centre.central.url)
        assert routes(centre.pki.auth_config) == shipped_routes

    def test_every_direct_centre_says_why(self) -> None:
        """Each `enforce_node=False` in the tests and benchmarks has a `# direct to Prometheus: <why>` comment on
        the line before its call: the tests that differ from the shipped centre are listed, with their reason."""
        unexplained = []
        for path in sorted(path for top in ("tests", "bench", "testbed") for path in (REPO / top).rglob("*.py")):
            text = path.read_text()
            if "enforce_node" not in text:
                continue
            lines = text.splitlines()
            for call in ast.walk(ast.parse(text)):
                if isinstance(call, ast.Call) and any(
                    k.arg == "enforce_node" and isinstance(k.value, ast.Constant) and k.value.value is False
                    for k in call.keywords
                ):
                    before = lines[call.lineno - 2].strip() if call.lineno > 1 else ""
                    if not (before.startswith(DIRECT_REASON) and before[len(DIRECT_REASON) :].strip()):
                        unexplained.append(f"{path.relative_to(REPO)}:{call.lineno}")
        assert unexplained == []


class TestFleetCentre:
    @pytest.mark.parametrize("store", ["prometheus", "victoriametrics"])
    def test_the_fleets_centre_is_the_deployment(self, store: str, tmp_path: Path,
                                                 shipped_routes: dict[str, Any]) -> None:
        """bench/fleet's centre for both stores: vmauth and the gate as shipped; for VictoriaMetrics the gate's
        store and accept window are the store's (its retention and -futureRetention: security.md, "Backends")."""
        centre = make_centre(store, Processes(), tmp_path, host="127.0.0.1", nodes=NODES, scrape_interval="15s")
        if store == "prometheus":
            check_ingest(centre.ingest, centre.url)
        else:
            check_ingest(centre.ingest, centre.url, allowed=frozenset({"--max-age", "--max-ahead"}))
            victoria = dict(flag_pairs(read_flags(VICTORIA_FLAGS, {})))
            gate = dict(flag_pairs(centre.ingest.gate_argv()[2:]))
            assert (gate["--max-age"], gate["--max-ahead"]) == (victoria["-retentionPeriod"],
                                                                victoria["-futureRetention"])
        assert routes(centre.credentials.auth_config) == shipped_routes
