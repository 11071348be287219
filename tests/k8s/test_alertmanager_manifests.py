"""Alertmanager closed, on the rendered manifests (`kubectl kustomize deploy/kubernetes`): TLS and basic
auth through its --web.config.file from the Secret, only its own credentials in its pod, the central
Prometheus sending and scraping with its user and the CA, and a NetworkPolicy that admits only the
central Prometheus and named operators (docs/security.md)."""

from __future__ import annotations

import pytest
import yaml

from tests.k8s.manifests import Obj, container, find, rendered

pytestmark = pytest.mark.k8s

SECRET_DIR = "/etc/edge-metrics-central/"


def alertmanager_spec() -> Obj:
    return find(rendered(), "Deployment", "central-alertmanager")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def secret_keys(spec: Obj, entry: Obj) -> dict[str, set[str]]:
    """mountPath -> the Secret central-credentials' keys a container sees there (directory mounts only)."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    found = {}
    for mount in entry["volumeMounts"]:
        source = volumes[mount["name"]].get("secret")
        if source is not None:
            assert source["secretName"] == "central-credentials"
            assert "subPath" not in mount, "a subPath mount never sees a Secret update"
            assert mount["readOnly"] is True and source["defaultMode"] == 0o440
            found[mount["mountPath"]] = {item["key"] for item in source["items"]}
    return found


class TestAlertmanagerClosed:
    def test_web_config_is_the_secrets_file(self) -> None:
        """--web.config.file names alertmanager-web.yml of the Secret, with its certificate and key beside it,
        and nothing of the centre's (its key, the node tokens, Prometheus' passwords)."""
        spec = alertmanager_spec()
        alertmanager = container(spec, "alertmanager")
        web = [a.split("=", 1)[1] for a in alertmanager["args"] if a.startswith("--web.config.file=")]
        assert web == [SECRET_DIR + "alertmanager-web.yml"]
        keys = secret_keys(spec, alertmanager)
        assert keys == {SECRET_DIR.rstrip("/"): {"alertmanager-web.yml", "alertmanager.crt", "alertmanager.key"}}

    def test_probes_are_tcp(self) -> None:
        """Every HTTP path wants a user: the probes open the port only, carrying no password."""
        alertmanager = container(alertmanager_spec(), "alertmanager")
        for kind in ("readinessProbe", "livenessProbe"):
            assert set(alertmanager[kind]) >= {"tcpSocket"} and "httpGet" not in alertmanager[kind], kind

    def test_prometheus_sends_and_scrapes_with_its_user_and_the_ca(self) -> None:
        """prometheus.yml's alerting and its `alertmanager` job: HTTPS, the CA, the `prometheus` user's
        password file, which the Prometheus container mounts from the Secret."""
        objects = rendered()
        config = yaml.safe_load(find(objects, "ConfigMap", "central-prometheus-config")["data"]["prometheus.yml"])
        jobs = [job for job in config["scrape_configs"] if job["job_name"] == "alertmanager"]
        sections = [*config["alerting"]["alertmanagers"], *jobs]
        assert len(sections) == 2
        password = SECRET_DIR + "alertmanager-prometheus.password"
        for section in sections:
            assert section["scheme"] == "https"
            assert section["tls_config"] == {"ca_file": SECRET_DIR + "ca.crt"}
            assert section["basic_auth"] == {"username": "prometheus", "password_file": password}
        spec = find(objects, "Deployment", "central-prometheus")["spec"]["template"]["spec"]
        keys = secret_keys(spec, container(spec, "prometheus"))
        assert {"alertmanager-prometheus.password", "ca.crt"} <= keys[SECRET_DIR.rstrip("/")]

    def test_network_policy_admits_only_the_central_prometheus_and_named_operators(self) -> None:
        objects = rendered()
        policy = find(objects, "NetworkPolicy", "central-alertmanager")["spec"]
        deployment = find(objects, "Deployment", "central-alertmanager")
        assert policy["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert "Ingress" in policy["policyTypes"]
        [rule] = policy["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": 9093}]
        prometheus = find(objects, "Deployment", "central-prometheus")["spec"]["template"]["metadata"]["labels"]
        sources = [source["podSelector"]["matchLabels"] for source in rule["from"]]
        # Pod selectors only (no namespaceSelector, no ipBlock): host-network processes, so the edge
        # boards, and other namespaces match none of them.
        assert all(set(source) == {"podSelector"} for source in rule["from"])
        assert sources == [{"app": prometheus["app"]}, {"edge-metrics/alertmanager-client": "true"}]
