"""The secure path's configuration (deploy/vmauth, the edge-security rules, tools/make-certs.sh's output)
is accepted by the real programs and says what docs/security.md promises."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.stack import (
    CENTRAL_VMAGENT_FLAGS,
    NODE_EXPORTER_FLAGS,
    NODE_LABEL_RELABEL,
    PROMETHEUS_DIR,
    VMAGENT_FLAGS,
    VMAUTH_FLAGS,
    Pki,
    override_flags,
    read_flags,
)
from tests.helpers import RULES, untested_alerts

# The same real binaries and runner as the pipeline's configuration tests.
from tests.rules.test_pipeline_config import bins, run

__all__ = ["bins"]  # a fixture, used by name


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    made = Pki(tmp_path_factory.mktemp("pki"))
    made.make(nodes=["bupt-a", "edge-b"], backend="http://127.0.0.1:8429", expired=True)
    return made


def flag_values(path: Path) -> dict[str, str]:
    """name -> value of a deploy/*.flags file (placeholders filled with dummies)."""
    flags = read_flags(path, {"NODE_NAME": "n", "REMOTE_WRITE_URL": "u", "CLUSTER": "c"})
    return {name: value for name, _, value in (flag.partition("=") for flag in flags)}


def openssl(*args: str) -> str:
    result = run(["openssl", *args])
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestRules:
    def test_rules_are_valid_and_their_unit_tests_pass(self, bins: dict[str, str]) -> None:
        """promtool accepts edge-security.yml, and each alert fires in its case and not in its neighbour's."""
        check = run([bins["PROMTOOL_BIN"], "check", "rules", str(RULES / "edge-security.yml")])
        assert check.returncode == 0, check.stdout + check.stderr
        test = run([bins["PROMTOOL_BIN"], "test", "rules", "edge-security.test.yml"], cwd=RULES)
        assert test.returncode == 0, test.stdout + test.stderr

    def test_every_alert_has_a_unit_test_and_the_centre_loads_the_file(self) -> None:
        assert untested_alerts(RULES / "edge-security.yml") == set()
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        assert "rules/edge-security.yml" in config["rule_files"]


class TestMakeCerts:
    def test_certificates_chain_to_the_ca_with_the_centres_names(self, pki: Pki) -> None:
        """The centre's certificate verifies against the CA and names the Services and 127.0.0.1; the
        expired one is expired."""
        assert "OK" in openssl("verify", "-CAfile", str(pki.ca), str(pki.dir / "central.crt"))
        names = openssl("x509", "-in", str(pki.dir / "central.crt"), "-noout", "-ext", "subjectAltName")
        for name in ("central-ingest.monitoring.svc", "central-prometheus.monitoring.svc", "127.0.0.1"):
            assert name in names
        expired = run(["openssl", "verify", "-CAfile", str(pki.ca), str(pki.dir / "central-expired.crt")])
        assert expired.returncode != 0 and "expired" in expired.stdout + expired.stderr

    def test_secrets_are_private_and_tokens_differ_per_node(self, pki: Pki) -> None:
        for path in [pki.dir / "ca.key", pki.dir / "central.key", pki.dir / "auth.yml", pki.dir / "admin.password"]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert pki.token("bupt-a") != pki.token("edge-b")
        assert len(pki.token("bupt-a")) == 64

    def test_a_second_run_keeps_the_ca_and_the_tokens(self, pki: Pki) -> None:
        """Adding a node must not invalidate the others (rotation is explicit: docs/security.md)."""
        ca, token = pki.ca.read_text(), pki.token("bupt-a")
        pki.make(nodes=["bupt-a", "edge-b", "edge-c"], backend="http://127.0.0.1:8429")
        assert pki.ca.read_text() == ca and pki.token("bupt-a") == token
        assert {user["name"] for user in yaml.safe_load(pki.auth_config.read_text())["users"]} == {
            "bupt-a",
            "edge-b",
            "edge-c",
        }

    def test_each_user_gets_its_own_node_and_cluster_label(self, pki: Pki) -> None:
        """The centre names the node and its cluster (`default` unless --cluster said otherwise)."""
        users = yaml.safe_load(pki.auth_config.read_text())["users"]
        for user in users:
            (route,) = user["url_map"]
            assert route["url_prefix"].endswith(f"?extra_label=node={user['name']}&extra_label=cluster=default")

    def test_a_cluster_given_once_is_kept_for_its_nodes(self, tmp_path: Path) -> None:
        made = Pki(tmp_path)
        made.make(nodes=["edge-east"], cluster="east")
        made.make(nodes=["edge-west"], cluster="west")
        made.make(nodes=["edge-east"])
        users = yaml.safe_load(made.auth_config.read_text())["users"]
        prefixes = {user["name"]: user["url_map"][0]["url_prefix"] for user in users}
        assert prefixes["edge-east"].endswith("&extra_label=cluster=east")
        assert prefixes["edge-west"].endswith("&extra_label=cluster=west")

    def test_each_node_gets_its_own_central_queue(self, tmp_path: Path) -> None:
        """One -remoteWrite.url per node, naming it and its cluster, each keeping that node's series only;
        a last one for nodes added later (docs/security.md, "One queue per node")."""
        pki = Pki(tmp_path)
        pki.make(nodes=["bupt-a", "edge-b"], queues_here=True)
        env = pki.queue_env()
        urls, relabels = env["CENTRAL_QUEUE_URLS"].split(","), env["CENTRAL_QUEUE_RELABEL"].split(",")
        assert [u.partition("?")[2] for u in urls] == [
            "node=bupt-a&cluster=default", "node=edge-b&cluster=default", "queue=new-nodes"
        ]
        assert relabels == [str(pki.queues / name) for name in ("bupt-a.yml", "edge-b.yml", "new-nodes.yml")]
        assert yaml.safe_load((pki.queues / "edge-b.yml").read_text()) == [
            {"action": "keep", "source_labels": ["node"], "regex": "edge-b"}
        ]
        assert yaml.safe_load((pki.queues / "new-nodes.yml").read_text())[0]["regex"] == "bupt-a|edge-b"

    def test_a_bad_node_name_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(subprocess.CalledProcessError):
            Pki(tmp_path).make(nodes=["Bad Name"], backend="http://127.0.0.1:8429")

    def test_prometheus_accepts_the_web_config(self, bins: dict[str, str], pki: Pki) -> None:
        result = run([bins["PROMTOOL_BIN"], "check", "web-config", str(pki.web_config)])
        assert result.returncode == 0, result.stdout + result.stderr


class TestFlags:
    def test_vmauth_accepts_its_flags_and_the_generated_users(self, bins: dict[str, str], pki: Pki) -> None:
        flags = override_flags(read_flags(VMAUTH_FLAGS, {}), {"-auth.config": str(pki.auth_config)})
        result = run([bins["VMAUTH_BIN"], *flags, "-dryRun"])
        assert result.returncode == 0, result.stderr[-2000:]

    def test_central_vmagent_accepts_its_flags_and_relabeling(self, bins: dict[str, str], tmp_path: Path) -> None:
        """Its flags, node-label.yml and the queue per node make-certs writes."""
        pki = Pki(tmp_path / "pki")
        pki.make(nodes=["bupt-a", "edge-b"], queues_here=True)
        flags = override_flags(
            read_flags(CENTRAL_VMAGENT_FLAGS, pki.queue_env()),
            {
                "-remoteWrite.relabelConfig": str(NODE_LABEL_RELABEL),
                "-remoteWrite.tmpDataPath": str(tmp_path / "queue"),
            },
        )
        result = run([bins["VMAGENT_BIN"], *flags, "-dryRun"])
        assert result.returncode == 0, result.stderr[-2000:]

    def test_nothing_listens_beyond_what_must_reach_it(self) -> None:
        """Edge: vmagent and node_exporter on loopback only; centre: vmauth's admin endpoints on loopback."""
        edge = flag_values(VMAGENT_FLAGS)
        assert edge["-httpListenAddr"].startswith("127.0.0.1:")
        exporter = flag_values(NODE_EXPORTER_FLAGS)
        assert exporter["--web.listen-address"].startswith("127.0.0.1:")
        vmauth = flag_values(VMAUTH_FLAGS)
        assert vmauth["-tls"] == "true" and vmauth["-httpInternalListenAddr"].startswith("127.0.0.1:")

    def test_edge_credentials_are_files_and_admin_endpoints_keyed(self) -> None:
        edge = flag_values(VMAGENT_FLAGS)
        assert edge["-remoteWrite.bearerTokenFile"].startswith("/")
        assert edge["-remoteWrite.tlsCAFile"].startswith("/")
        for flag in ("-reloadAuthKey", "-flagsAuthKey", "-pprofAuthKey"):
            assert edge[flag].startswith("file:///"), flag
        assert not any(name.endswith(("bearerToken", "basicAuth.password")) for name in edge)
