"""The secure path's configuration (deploy/vmauth, the edge-security rules, tools/make-certs.sh's output)
is accepted by the real programs and says what docs/security.md promises."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from testbed.certs import Pki
from testbed.flags import override_flags, read_flags
from testbed.paths import EDGE_METRICS, GATE_FLAGS, NODE_EXPORTER_FLAGS, PROMETHEUS_DIR, VMAGENT_FLAGS, VMAUTH_FLAGS
from tests.helpers import RULES, untested_alerts

# The same real binaries and runner as the pipeline's configuration tests.
from tests.rules.test_pipeline_config import bins, run

__all__ = ["bins"]  # a fixture, used by name


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    made = Pki(tmp_path_factory.mktemp("pki"))
    made.make(nodes=["bupt-a", "edge-b"], expired=True)
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
        pki.make(nodes=["bupt-a", "edge-b", "edge-c"])
        assert pki.ca.read_text() == ca and pki.token("bupt-a") == token
        assert {user["name"] for user in yaml.safe_load(pki.auth_config.read_text())["users"]} == {
            "bupt-a",
            "edge-b",
            "edge-c",
        }

    def test_each_user_gets_its_own_node_and_cluster_label(self, pki: Pki) -> None:
        """The centre names the node and its cluster (`default` unless --cluster said otherwise) in the gate's
        path, for remote write only (the gate takes no other format)."""
        users = yaml.safe_load(pki.auth_config.read_text())["users"]
        for user in users:
            (route,) = user["url_map"]
            assert route["url_prefix"] == f"http://127.0.0.1:8430/node/{user['name']}/default"
            assert route["src_paths"] == ["/api/v1/write"]

    def test_direct_to_a_store_names_them_in_the_query(self, tmp_path: Path) -> None:
        made = Pki(tmp_path)
        made.make(nodes=["bupt-a"], backend="http://127.0.0.1:8428")
        (user,) = yaml.safe_load(made.auth_config.read_text())["users"]
        assert user["url_map"][0]["url_prefix"] == (
            "http://127.0.0.1:8428?extra_label=node=bupt-a&extra_label=cluster=default"
        )

    def test_a_cluster_given_once_is_kept_for_its_nodes(self, tmp_path: Path) -> None:
        made = Pki(tmp_path)
        made.make(nodes=["edge-east"], cluster="east")
        made.make(nodes=["edge-west"], cluster="west")
        made.make(nodes=["edge-east"])
        users = yaml.safe_load(made.auth_config.read_text())["users"]
        prefixes = {user["name"]: user["url_map"][0]["url_prefix"] for user in users}
        assert prefixes["edge-east"].endswith("/node/edge-east/east")
        assert prefixes["edge-west"].endswith("/node/edge-west/west")

    def test_each_node_gets_a_line_of_gate_limits_and_edits_are_kept(self, tmp_path: Path) -> None:
        """gate-limits.conf: a line per node (the defaults), an operator's edit kept on a later run, a new node
        appended; the gate reads it without a problem."""
        pki = Pki(tmp_path)
        pki.make(nodes=["bupt-a", "edge-b"])
        lines = [line for line in pki.gate_limits.read_text().splitlines() if not line.startswith("#")]
        assert lines == ["bupt-a", "edge-b"]
        pki.gate_limits.write_text(pki.gate_limits.read_text().replace("\nedge-b\n", "\nedge-b series=5\n"))
        pki.make(nodes=["edge-c"])
        lines = [line for line in pki.gate_limits.read_text().splitlines() if not line.startswith("#")]
        assert lines == ["bupt-a", "edge-b series=5", "edge-c"]

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

    def test_gate_accepts_its_flags(self) -> None:
        """gate.flags parse (`edge-metrics gate --help` after them would exit 0; a bad flag exits 2), and its
        accept window is the store's: --max-age is prometheus.yml's out-of-order window."""
        result = run([str(EDGE_METRICS), "gate", *read_flags(GATE_FLAGS, {}), "--help"])
        assert result.returncode == 0, result.stderr[-2000:]
        window = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["storage"]["tsdb"]
        assert flag_values(GATE_FLAGS)["--max-age"] == window["out_of_order_time_window"]

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
