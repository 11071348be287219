"""Least exposure, shown on the rendered manifests (`kubectl kustomize deploy/kubernetes`): what each
container may do, what reaches it, where its credentials come from, which images it runs, and who may
change the scripts (docs/security.md)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml

from tests.helpers import REPO
from tests.k8s.manifests import Obj, container, find, flags_file, rendered

pytestmark = pytest.mark.k8s

VERSIONS = REPO / "deploy" / "components.versions"
# Containers that run as uid 0, and why (docs/security.md#containers): the privileged collector opens
# /dev/i2c-*; the edge vmagent owns the hostPath queue the kubelet creates root-owned. Both without
# capabilities except the collector's privileged mode.
ROOT_CONTAINERS = {"metric-sidecar", "vmagent"}
PRIVILEGED_CONTAINERS = {"metric-sidecar"}
# Pod Security Standards "restricted": the volume types it allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def workloads() -> list[Obj]:
    return [o for o in rendered() if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet")]


def pod_specs() -> dict[str, Obj]:
    return {w["metadata"]["name"]: w["spec"]["template"]["spec"] for w in workloads()}


def containers() -> list[tuple[Obj, Obj]]:
    """(pod spec, container) for every container of every workload."""
    return [(spec, entry) for spec in pod_specs().values() for entry in spec["containers"]]


def effective(spec: Obj, entry: Obj, key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    return entry.get("securityContext", {}).get(key, spec.get("securityContext", {}).get(key))


def restricted_violations(spec: Obj) -> list[str]:
    """What in a pod spec the Pod Security Standard `restricted` forbids (its checks as documented)."""
    found = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(field)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for entry in spec["containers"]:
        name = entry["name"]
        context = entry.get("securityContext", {})
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation not false")
        if context.get("capabilities", {}).get("drop") != ["ALL"] or context.get("capabilities", {}).get("add"):
            found.append(f"{name}: capabilities not drop ALL")
        if effective(spec, entry, "runAsNonRoot") is not True or effective(spec, entry, "runAsUser") == 0:
            found.append(f"{name}: may run as root")
        if (effective(spec, entry, "seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: no seccomp profile")
        if any("hostPort" in port for port in entry.get("ports", [])) and not spec.get("hostNetwork"):
            found.append(f"{name}: hostPort")
    return found


def upstream_version(debian: str) -> str:
    """`3.5.3+ds1-6` -> `3.5.3`: the upstream release a Debian version packages."""
    return re.split(r"[+-]", debian.split(":")[-1], maxsplit=1)[0]


def current_versions() -> dict[str, str]:
    versions = {}
    for line in VERSIONS.read_text().splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0] == "current":
            versions[fields[2]] = upstream_version(fields[3])
    return versions


class TestContainers:
    def test_every_container_is_locked_down_except_the_documented_privileged_one(self) -> None:
        """Read-only root, no privilege escalation, no capabilities, the runtime's seccomp filter."""
        for spec, entry in containers():
            name = entry["name"]
            context = entry.get("securityContext", {})
            assert context.get("readOnlyRootFilesystem") is True, name
            if name in PRIVILEGED_CONTAINERS:
                assert context.get("privileged") is True
                continue
            assert not context.get("privileged"), name
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not context.get("capabilities", {}).get("add"), name
            assert (effective(spec, entry, "seccompProfile") or {}).get("type") == "RuntimeDefault", name

    def test_only_the_documented_containers_run_as_root(self) -> None:
        as_root = {entry["name"] for spec, entry in containers() if effective(spec, entry, "runAsUser") in (0, None)}
        assert as_root == ROOT_CONTAINERS
        for spec, entry in containers():
            if entry["name"] not in ROOT_CONTAINERS:
                assert effective(spec, entry, "runAsNonRoot") is True, entry["name"]

    def test_no_pod_gets_a_service_account_token(self) -> None:
        for name, spec in pod_specs().items():
            assert spec["automountServiceAccountToken"] is False, name


class TestPodSecurity:
    def test_namespace_enforces_the_level_the_edge_needs_and_audits_restricted(self) -> None:
        labels = find(rendered(), "Namespace", "monitoring")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"

    def test_the_edge_needs_privileged_and_the_centre_meets_restricted(self) -> None:
        """Why the namespace cannot enforce more: the DaemonSet uses the host network, hostPath volumes
        and a privileged container; the centre's pod passes every `restricted` check."""
        specs = pod_specs()
        edge = restricted_violations(specs["node-exporter-arm64"])
        assert "hostNetwork" in edge and "metric-sidecar: privileged" in edge
        assert any("hostPath" in problem for problem in edge)
        assert restricted_violations(specs["central-prometheus"]) == []


class TestNetworkExposure:
    def test_edge_listeners_are_on_loopback(self) -> None:
        spec = pod_specs()["node-exporter-arm64"]
        exporter = container(spec, "node-exporter")["args"]
        assert "--web.listen-address=127.0.0.1:9100" in exporter
        assert "-httpListenAddr=127.0.0.1:8429" in container(spec, "vmagent")["args"]

    def test_edge_probes_reach_the_loopback_listeners(self) -> None:
        spec = pod_specs()["node-exporter-arm64"]
        for name in ("node-exporter", "vmagent"):
            assert container(spec, name)["livenessProbe"]["httpGet"]["host"] == "127.0.0.1", name

    def test_network_policy_admits_only_vmauth_and_the_namespaces_api_clients(self) -> None:
        policy = find(rendered(), "NetworkPolicy", "central-prometheus")
        assert policy["spec"]["podSelector"]["matchLabels"] == {"app": "central-prometheus"}
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        rules = {tuple(p["port"] for p in rule["ports"]): rule.get("from") for rule in policy["spec"]["ingress"]}
        assert rules == {(8427,): None, (9090,): [{"podSelector": {}}]}

    def test_centre_serves_tls_only_and_has_no_lifecycle_api(self) -> None:
        spec = pod_specs()["central-prometheus"]
        args = container(spec, "prometheus")["args"]
        assert "--web.enable-lifecycle" not in args
        assert "--web.config.file=/etc/edge-metrics-central/web.yml" in args
        vmauth = container(spec, "vmauth")["args"]
        assert "-tls=true" in vmauth and "-httpInternalListenAddr=127.0.0.1:8426" in vmauth

    def test_centre_args_are_deploys_flags(self) -> None:
        spec = pod_specs()["central-prometheus"]
        assert container(spec, "vmauth")["args"] == flags_file(REPO / "deploy" / "vmauth" / "vmauth.flags")
        gate = flags_file(REPO / "deploy" / "vmauth" / "gate.flags")
        assert container(spec, "gate")["args"] == ["gate", *gate]

    def test_the_gate_runs_the_collectors_image(self) -> None:
        """The central kustomization names the collector's image as the edge one does (one name and tag)."""
        central = yaml.safe_load((REPO / "deploy" / "kubernetes" / "central" / "kustomization.yaml").read_text())
        edge = yaml.safe_load((REPO / "deploy" / "kubernetes" / "edge" / "kustomization.yaml").read_text())
        assert central["images"] == edge["images"]
        image = central["images"][0]
        expected = f"{image['newName']}:{image['newTag']}"
        assert container(pod_specs()["central-prometheus"], "gate")["image"] == expected


class TestCredentials:
    def test_no_secret_reaches_an_env_var_or_an_arg(self) -> None:
        """Credentials are files: no secretKeyRef/envFrom, no password or token value in args."""
        for _, entry in containers():
            for item in entry.get("env", []):
                assert "secretKeyRef" not in item.get("valueFrom", {}), (entry["name"], item["name"])
            assert "envFrom" not in entry, entry["name"]
            for arg in entry.get("args", []):
                name, _, value = arg.partition("=")
                if re.search(r"(?i)password|token|authkey", name):
                    assert value.startswith(("/", "file:///")), arg

    def test_centre_credentials_are_secret_files_each_container_only_its_keys(self) -> None:
        spec = pod_specs()["central-prometheus"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        keys = {}
        for entry in spec["containers"]:
            for mount in entry["volumeMounts"]:
                source = volumes[mount["name"]].get("secret")
                if source is not None:
                    assert source["secretName"] == "central-credentials"
                    assert mount["readOnly"] is True
                    assert source["defaultMode"] == 0o440
                    keys[entry["name"]] = {item["key"] for item in source["items"]}
        assert "central.key" not in keys["gate"] and "auth.yml" not in keys["prometheus"]
        assert "ingest.password" not in keys["vmauth"]
        assert keys["vmauth"] >= {"auth.yml", "central.crt", "central.key"}

    def test_edge_credentials_are_the_nodes_own_files(self) -> None:
        """The node's token and CA come from its own host directory, read-only in every container that mounts it
        (vmagent, and the collector, which only looks whether they are there); without them the pod still starts
        and vmagent queues (tests/k8s/test_node_without_credentials.py)."""
        spec = pod_specs()["node-exporter-arm64"]
        vmagent = container(spec, "vmagent")
        mount = next(m for m in vmagent["volumeMounts"] if m["mountPath"] == "/etc/edge-metrics/credentials")
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["hostPath"] == {"path": "/etc/edge-metrics/credentials", "type": "DirectoryOrCreate"}
        mounts = [(entry["name"], m) for entry in spec["containers"] for m in entry.get("volumeMounts", [])
                  if m["name"] == mount["name"]]
        assert {name for name, _ in mounts} == {"vmagent", "metric-sidecar"}
        assert all(m["readOnly"] is True for _, m in mounts), mounts
        assert "-remoteWrite.bearerTokenFile=/etc/edge-metrics/credentials/token" in vmagent["args"]
        assert "-remoteWrite.tlsCAFile=/etc/edge-metrics/credentials/ca.crt" in vmagent["args"]


class TestImages:
    def test_every_image_is_pinned_to_the_exact_version_of_components_versions(self) -> None:
        """A digest where one is known; otherwise the exact release tag of deploy/components.versions
        (and the project's own version for the collector image). How to add digests: docs/security.md."""
        versions = current_versions()
        package_of = {
            "quay.io/prometheus/prometheus": "prometheus",
            "quay.io/prometheus/node-exporter": "prometheus-node-exporter",
            "victoriametrics/vmagent": "victoria-metrics",
            "victoriametrics/vmauth": "victoria-metrics",
            "quay.io/prometheus/alertmanager": "prometheus-alertmanager",
        }
        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
        images = {entry["image"] for _, entry in containers()}
        assert images, "no images"
        for image in images:
            reference, _, digest = image.partition("@")
            repository, _, tag = reference.rpartition(":")
            if digest:
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), image
            if repository == "ghcr.io/edge-metrics/edge-metrics-collector":
                assert tag == project, image
                continue
            assert repository in package_of, f"{image}: no entry in deploy/components.versions"
            assert tag == f"v{versions[package_of[repository]]}", image


class TestWhoRunsCode:
    def test_only_the_publisher_role_may_change_configmaps_and_it_is_bound_to_one_group(self) -> None:
        objects = rendered()
        writers = [
            role["metadata"]["name"]
            for role in objects
            if role["kind"] in ("Role", "ClusterRole")
            for rule in role["rules"]
            if "configmaps" in rule.get("resources", [])
            and set(rule["verbs"]) & {"create", "update", "patch", "delete", "*"}
        ]
        assert writers == ["edge-scripts-publisher"]
        binding = find(objects, "RoleBinding", "edge-scripts-publisher")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "edge-scripts-publisher",
        }
        assert [s["kind"] for s in binding["subjects"]] == ["Group"]
        publisher = find(objects, "Role", "edge-scripts-publisher")
        daemonset_rule = next(r for r in publisher["rules"] if "daemonsets" in r["resources"])
        assert daemonset_rule["resourceNames"] == ["node-exporter-arm64"]
        assert "delete" not in daemonset_rule["verbs"]
