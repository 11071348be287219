"""The Kubernetes manifests, checked without a cluster: they render, they validate strictly, and every
path, flag and name agrees with the files the rest of the project runs (deploy/, scripts/)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from edge_metrics.durations import parse_duration
from tests.helpers import EDGE_METRICS, REPO
from tests.k8s.manifests import (
    ALL_IN_ONE,
    KUSTOMIZE_DIR,
    RENDER_SCRIPT,
    SCHEMA_VERSIONS,
    Obj,
    container,
    find,
    flags_file,
    kustomize,
    load_all,
    rendered,
    schema_errors,
)

pytestmark = pytest.mark.k8s

# The seed's runbook, word for word: these must work against the rendered objects.
RUNBOOK = (
    "kubectl apply -f all-in-one.yaml",
    "kubectl rollout restart daemonset node-exporter-arm64 -n monitoring",
    "kubectl logs -l app=node-exporter -n monitoring -c metric-sidecar --tail=10",
)


def daemonset() -> Obj:
    return find(rendered(), "DaemonSet", "node-exporter-arm64")


def pod_spec() -> Obj:
    spec: Obj = daemonset()["spec"]["template"]["spec"]
    return spec


def env_of(entry: Obj) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in entry.get("env", [])}


def mount_of(entry: Obj, path: str) -> Obj:
    """The volumeMount of `entry` that holds `path` (the longest matching mountPath)."""
    candidates = [
        m for m in entry.get("volumeMounts", [])
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert candidates, f"{path} is under no volumeMount of container {entry['name']}"
    return max(candidates, key=lambda m: len(m["mountPath"]))


def volume(name: str, spec: Obj | None = None) -> Obj:
    spec = spec if spec is not None else pod_spec()
    return next(v for v in spec["volumes"] if v["name"] == name)


def flag_value(args: list[str], flag: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    assert len(values) == 1, f"expected one {flag}= in {args}"
    return values[0]


class TestRender:
    """`kubectl kustomize deploy/kubernetes` renders, and all-in-one.yaml is exactly that output."""

    def test_kustomize_renders_the_whole_deployment(self) -> None:
        kinds = sorted((o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] == "ConfigMap"
                        else o["metadata"]["name"]) for o in rendered())
        assert kinds == sorted([
            ("Namespace", "monitoring"),
            ("DaemonSet", "node-exporter-arm64"),
            ("ConfigMap", "edge-metrics-config"),
            ("ConfigMap", "vmagent-config"),
            ("Deployment", "central-prometheus"),
            ("Service", "central-prometheus"),
            ("PersistentVolumeClaim", "central-prometheus-data"),
            ("ConfigMap", "central-prometheus-config"),
            ("ConfigMap", "central-prometheus-rules"),
            ("ConfigMap", "central-prometheus-targets"),
            ("Deployment", "central-alertmanager"),
            ("Service", "central-alertmanager"),
            ("ConfigMap", "central-alertmanager-config"),
            # docs/security.md: vmauth's door, the centre's NetworkPolicy
            # and who may publish scripts.
            ("Service", "central-ingest"),
            ("NetworkPolicy", "central-prometheus"),
            ("NetworkPolicy", "central-alertmanager"),
            ("Role", "edge-scripts-publisher"),
            ("RoleBinding", "edge-scripts-publisher"),
            ("Role", "edge-scripts-viewer"),
        ])

    def test_all_in_one_is_what_kustomize_renders(self) -> None:
        result = subprocess.run(
            ["bash", str(RENDER_SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert load_all(ALL_IN_ONE.read_text()) == rendered()

    def test_least_privilege_variant_renders_without_a_privileged_container(self) -> None:
        objects = load_all(kustomize(KUSTOMIZE_DIR / "least-privilege"))
        spec = find(objects, "DaemonSet", "node-exporter-arm64")["spec"]["template"]["spec"]
        for entry in spec["containers"]:
            assert not entry.get("securityContext", {}).get("privileged", False), entry["name"]
        sidecar = container(spec, "metric-sidecar")
        assert sidecar["resources"]["limits"]["squat.ai/i2c"] == "1"
        assert sidecar["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False


class TestSchema:
    """Every rendered object validates against the Kubernetes OpenAPI schema, unknown fields included."""

    @pytest.mark.parametrize("version", SCHEMA_VERSIONS)
    @pytest.mark.parametrize("variant", ["", "least-privilege"])
    def test_every_object_validates_strictly(self, version: str, variant: str) -> None:
        objects = load_all(kustomize(KUSTOMIZE_DIR / variant)) if variant else rendered()
        assert schema_errors(objects, version) == []

    def test_strict_mode_rejects_an_unknown_field(self) -> None:
        """The control for the test above: a misspelt field must not pass."""
        obj = daemonset()
        obj["spec"]["template"]["spec"]["containers"][1]["livenesProbe"] = {}
        with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
            kubernetes_validate.validate(obj, SCHEMA_VERSIONS[-1], strict=True)


class TestRunbook:
    """The seed's runbook commands address real objects of all-in-one.yaml."""

    def test_namespace_comes_first_so_one_apply_creates_everything(self) -> None:
        objects = load_all(ALL_IN_ONE.read_text())
        assert (objects[0]["kind"], objects[0]["metadata"]["name"]) == ("Namespace", "monitoring")
        assert {o["metadata"].get("namespace") for o in objects[1:]} == {"monitoring"}

    def test_rollout_restart_names_the_daemonset(self) -> None:
        ds = daemonset()
        assert ds["metadata"]["namespace"] == "monitoring"
        assert ds["metadata"]["labels"]["app"] == "node-exporter"

    def test_logs_selector_finds_exactly_the_daemonset_pods_and_their_sidecar(self) -> None:
        labelled = [
            o["metadata"]["name"] for o in rendered()
            if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet")
            and o["metadata"]["namespace"] == "monitoring"
            and o["spec"]["template"]["metadata"]["labels"].get("app") == "node-exporter"
        ]
        assert labelled == ["node-exporter-arm64"]
        assert daemonset()["spec"]["selector"]["matchLabels"] == {"app": "node-exporter"}
        assert [c["name"] for c in pod_spec()["containers"]] == ["node-exporter", "metric-sidecar", "vmagent"]

    def test_docs_give_the_runbook_verbatim(self) -> None:
        docs = (REPO / "docs" / "kubernetes.md").read_text()
        for command in RUNBOOK:
            assert command in docs
        for command in RUNBOOK[1:]:
            words = shlex.split(command)
            assert "monitoring" in words


def configmap_problem(data: dict[str, str], scripts_dir: Path) -> str | None:
    """One line naming what the ConfigMap lacks or holds differently from `scripts_dir`, or None."""
    # The sensor catalogue (scripts/sensors/) is mounted flat beside nodes.conf: a ConfigMap key has no directory.
    expected = {p.name: p.read_text() for p in sorted([*scripts_dir.glob("*.sh"), *scripts_dir.glob("sensors/*.sh")])}
    expected["nodes.conf"] = (scripts_dir / "nodes.conf").read_text()
    missing = sorted(set(expected) - set(data))
    if missing:
        return (f"scripts/kustomization.yaml does not list {', '.join(missing)}: the ConfigMap lacks it; add it to "
                "the configMapGenerator's files")
    differing = sorted(name for name in expected if data[name] != expected[name])
    extra = sorted(set(data) - set(expected))
    if differing or extra:
        return f"the ConfigMap differs from scripts/ in {', '.join(differing + extra)}"
    return None


class TestSharedConfiguration:
    """The manifests carry the project's real files, and copy the flags of deploy/ exactly."""

    def test_config_map_holds_nodes_conf_and_every_script(self) -> None:
        data = find(rendered(), "ConfigMap", "edge-metrics-config")["data"]
        assert configmap_problem(data, REPO / "scripts") is None, configmap_problem(data, REPO / "scripts")

    def test_a_script_missing_from_the_kustomization_is_named_in_one_line(self, tmp_path: Path) -> None:
        """A script written and named in nodes.conf but not listed in scripts/kustomization.yaml: the guard says
        which, in one line; `edge-metrics check --configmap` on the rendered manifest finds it too, where
        `check --config` on the checkout passes."""
        scripts = tmp_path / "scripts"
        shutil.copytree(REPO / "scripts", scripts, symlinks=True)
        (scripts / "power_rail.sh").write_text("#!/bin/bash\necho rail_volts=12.1\n")
        with (scripts / "nodes.conf").open("a") as conf:
            conf.write("lab-3=space_server:10s,power_rail:1m\n")
        data = find(load_all(kustomize(scripts)), "ConfigMap", "edge-metrics-config")["data"]
        problem = configmap_problem(data, scripts)
        assert problem is not None and "\n" not in problem and "power_rail.sh" in problem, problem
        assert "kustomization.yaml" in problem

        manifest = tmp_path / "rendered.yaml"
        manifest.write_text(kustomize(scripts))
        edge_metrics = [str(EDGE_METRICS), "check"]
        checkout = subprocess.run([*edge_metrics, "--config", str(scripts / "nodes.conf")],
                                  capture_output=True, text=True, timeout=60, check=False)
        assert checkout.returncode == 0, checkout.stderr
        cluster = subprocess.run([*edge_metrics, "--configmap", str(manifest)],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert cluster.returncode == 1
        assert any("power_rail" in line and "does not exist" in line and "ConfigMap/edge-metrics-config" in line
                   for line in cluster.stderr.splitlines()), cluster.stderr
        assert "lab-3: space_server every 10s, power_rail every 1m" in cluster.stdout
        # The fix is named, as the exact line to add; adding it is all it takes.
        fix = "add the line `      - power_rail.sh` under `files:` of scripts/kustomization.yaml"
        assert fix in cluster.stderr, cluster.stderr
        with (scripts / "kustomization.yaml").open("a") as kustomization:
            kustomization.write("      - power_rail.sh\n")
        manifest.write_text(kustomize(scripts))
        fixed = subprocess.run([*edge_metrics, "--configmap", str(manifest)],
                               capture_output=True, text=True, timeout=60, check=False)
        assert fixed.returncode == 0, fixed.stderr

    def test_a_default_interval_beyond_the_liveness_window_is_refused(self, tmp_path: Path) -> None:
        """EDGE_DEFAULT_INTERVAL set to 5m in the DaemonSet: an idle collector rewrites its file only that often,
        past the livenessProbe's 120 s, so the kubelet would restart it. `check --configmap` refuses the manifest
        and names the numbers; the shipped manifest passes."""
        edge_metrics = [str(EDGE_METRICS), "check", "--configmap"]
        shipped = subprocess.run([*edge_metrics, str(ALL_IN_ONE)], capture_output=True, text=True, timeout=60,
                                 check=False)
        assert shipped.returncode == 0, shipped.stderr
        objects = rendered()
        sidecar = next(c for c in find(objects, "DaemonSet")["spec"]["template"]["spec"]["containers"]
                       if c["name"] == "metric-sidecar")
        (interval,) = (e for e in sidecar["env"] if e["name"] == "EDGE_DEFAULT_INTERVAL")
        interval["value"] = "5m"
        manifest = tmp_path / "rendered.yaml"
        manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        result = subprocess.run([*edge_metrics, str(manifest)], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 1
        assert (f"{manifest}:DaemonSet/node-exporter-arm64 container metric-sidecar: EDGE_DEFAULT_INTERVAL 5m + "
                "EDGE_SCRIPT_TIMEOUT 10s = 5m10s reaches the livenessProbe's window of 120s") in result.stderr

    def test_vmagent_scrape_config_is_deploys_file(self) -> None:
        data = find(rendered(), "ConfigMap", "vmagent-config")["data"]
        assert data == {"scrape.yml": (REPO / "deploy" / "vmagent" / "scrape.yml").read_text()}

    def test_central_prometheus_config_and_rules_are_deploys_files(self) -> None:
        objects = rendered()
        config = find(objects, "ConfigMap", "central-prometheus-config")["data"]
        rules = find(objects, "ConfigMap", "central-prometheus-rules")["data"]
        prometheus_dir = REPO / "deploy" / "prometheus"
        assert config == {"prometheus.yml": (prometheus_dir / "prometheus.yml").read_text()}
        parsed = yaml.safe_load(config["prometheus.yml"])
        assert parsed["storage"]["tsdb"]["out_of_order_time_window"]
        for rule_file in parsed["rule_files"]:
            assert rule_file.startswith("rules/"), rule_file
            assert rules[rule_file.removeprefix("rules/")] == (prometheus_dir / rule_file).read_text()

    def test_vmagent_args_are_vmagent_flags(self) -> None:
        vmagent = container(pod_spec(), "vmagent")
        assert vmagent["args"] == flags_file(REPO / "deploy" / "vmagent" / "vmagent.flags")

    def test_node_exporter_args_start_with_node_exporter_flags(self) -> None:
        flags = flags_file(REPO / "deploy" / "node-exporter" / "node-exporter.flags")
        args = container(pod_spec(), "node-exporter")["args"]
        assert args[: len(flags)] == flags
        assert all(a.startswith("--path.") for a in args[len(flags):]), args


class TestPodSpec:
    """The DaemonSet's paths, env and probes agree across its containers."""

    def test_pod_runs_on_every_node_in_the_host_network(self) -> None:
        spec = pod_spec()
        assert spec["hostNetwork"] is True
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
        assert {"operator": "Exists"} in spec["tolerations"]

    def test_collector_config_is_a_directory_mount_so_updates_arrive(self) -> None:
        sidecar = container(pod_spec(), "metric-sidecar")
        config = env_of(sidecar)["EDGE_CONFIG"]
        mount = mount_of(sidecar, config)
        assert "subPath" not in mount, "a subPath mount never sees a ConfigMap update"
        assert "configMap" in volume(mount["name"])
        assert config == mount["mountPath"].rstrip("/") + "/nodes.conf"

    def test_collector_writes_where_node_exporter_reads(self) -> None:
        spec = pod_spec()
        sidecar, exporter = container(spec, "metric-sidecar"), container(spec, "node-exporter")
        output = env_of(sidecar)["EDGE_OUTPUT"]
        textfile_dir = flag_value(exporter["args"], "--collector.textfile.directory")
        written, read = mount_of(sidecar, output), mount_of(exporter, textfile_dir)
        assert written["name"] == read["name"]
        assert "emptyDir" in volume(written["name"])
        relative_output = output.removeprefix(written["mountPath"].rstrip("/"))
        relative_dir = textfile_dir.removeprefix(read["mountPath"].rstrip("/"))
        assert relative_output.rsplit("/", 1)[0] == relative_dir
        assert relative_output.endswith(".prom")

    def test_node_name_comes_from_the_downward_api(self) -> None:
        for name in ("metric-sidecar", "vmagent"):
            assert env_of(container(pod_spec(), name))["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}

    def test_collector_logs_in_shanghai_time_with_the_hosts_localtime(self) -> None:
        sidecar = container(pod_spec(), "metric-sidecar")
        assert env_of(sidecar)["TZ"] == "Asia/Shanghai"
        mount = mount_of(sidecar, "/etc/localtime")
        assert mount["readOnly"] is True
        assert volume(mount["name"])["hostPath"] == {"path": "/etc/localtime", "type": "File"}

    def test_vmagent_queue_is_on_the_host(self) -> None:
        vmagent = container(pod_spec(), "vmagent")
        queue = flag_value(vmagent["args"], "-remoteWrite.tmpDataPath")
        assert queue.startswith("/")
        host_path = volume(mount_of(vmagent, queue)["name"]).get("hostPath")
        assert host_path is not None, "an emptyDir queue dies with the pod"
        assert host_path["type"] == "DirectoryOrCreate"

    def test_vmagent_writes_to_the_central_service(self) -> None:
        objects = rendered()
        service = find(objects, "Service", "central-ingest")  # vmauth: TLS, per-node token (docs/security.md)
        url = env_of(container(pod_spec(), "vmagent"))["REMOTE_WRITE_URL"]
        port = service["spec"]["ports"][0]["port"]
        assert url == f"https://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}/api/v1/write"

    def test_liveness_threshold_leaves_room_for_an_idle_interval_and_a_slow_script(self) -> None:
        sidecar = container(pod_spec(), "metric-sidecar")
        env = env_of(sidecar)
        command = sidecar["livenessProbe"]["exec"]["command"]
        assert command[:2] == ["bash", "-c"], "the image has bash and coreutils, nothing else to rely on"
        match = re.search(r"-lt (\d+)\s*$", command[2])
        assert match is not None, command
        threshold = int(match.group(1))
        assert "$EDGE_OUTPUT" in command[2]
        busiest_gap = parse_duration(env["EDGE_DEFAULT_INTERVAL"]) + parse_duration(env["EDGE_SCRIPT_TIMEOUT"])
        assert threshold >= 2 * busiest_gap

    def test_every_container_has_requests_and_limits(self) -> None:
        for entry in pod_spec()["containers"]:
            resources = entry["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), (entry["name"], kind)

    def test_only_the_collector_is_privileged_and_nothing_mounts_a_token(self) -> None:
        spec = pod_spec()
        assert spec["automountServiceAccountToken"] is False
        privileged = [c["name"] for c in spec["containers"] if c.get("securityContext", {}).get("privileged")]
        assert privileged == ["metric-sidecar"]
        for entry in spec["containers"]:
            assert entry["securityContext"]["readOnlyRootFilesystem"] is True, entry["name"]


class TestCentralPrometheus:
    """The centre accepts remote write and late samples, with a version that rejects too-old ones with 400
    and future-dated ones (a node's clock ahead) instead of moving its head into the future."""

    def test_image_is_at_least_2_54(self) -> None:
        deployment = find(rendered(), "Deployment", "central-prometheus")
        image = container(deployment["spec"]["template"]["spec"], "prometheus")["image"]
        match = re.search(r":v(\d+)\.(\d+)\.(\d+)$", image)
        assert match is not None, image
        assert tuple(int(g) for g in match.groups()) >= (2, 54, 0)

    def test_remote_write_receiver_is_on_and_the_config_is_the_mounted_file(self) -> None:
        spec = find(rendered(), "Deployment", "central-prometheus")["spec"]["template"]["spec"]
        prometheus = container(spec, "prometheus")
        assert "--web.enable-remote-write-receiver" in prometheus["args"]
        config = flag_value(prometheus["args"], "--config.file")
        mount = mount_of(prometheus, config)
        assert volume(mount["name"], spec)["configMap"]["name"].startswith("central-prometheus-config")


class TestCentralAlertmanager:
    """Alertmanager runs deploy/alertmanager/alertmanager.yml and is where prometheus.yml sends alerts."""

    def test_config_is_deploys_file_mounted_as_a_directory(self) -> None:
        objects = rendered()
        data = find(objects, "ConfigMap", "central-alertmanager-config")["data"]
        assert data == {"alertmanager.yml": (REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text()}
        spec = find(objects, "Deployment", "central-alertmanager")["spec"]["template"]["spec"]
        alertmanager = container(spec, "alertmanager")
        mount = mount_of(alertmanager, flag_value(alertmanager["args"], "--config.file"))
        assert "subPath" not in mount
        assert volume(mount["name"], spec)["configMap"]["name"].startswith("central-alertmanager-config")

    def test_prometheus_sends_alerts_to_the_alertmanager_service(self) -> None:
        objects = rendered()
        service = find(objects, "Service", "central-alertmanager")
        config = yaml.safe_load(find(objects, "ConfigMap", "central-prometheus-config")["data"]["prometheus.yml"])
        targets = [t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]]
        port = service["spec"]["ports"][0]["port"]
        assert targets == [f"{service['metadata']['name']}:{port}"]
        deployment = find(objects, "Deployment", "central-alertmanager")
        assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
        prometheus = find(objects, "Deployment", "central-prometheus")
        assert deployment["metadata"]["namespace"] == prometheus["metadata"]["namespace"]

    def test_runs_unprivileged_with_a_read_only_root(self) -> None:
        spec = find(rendered(), "Deployment", "central-alertmanager")["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        security = container(spec, "alertmanager")["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
