"""The deploy/ configuration of the pipeline is valid for the real programs, and says what it must."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from testbed.flags import override_flags, read_flags
from testbed.paths import ALERTMANAGER_CONFIG, PROMETHEUS_DIR, VMAGENT_FLAGS, VMAGENT_SCRAPE
from tests.helpers import COMPONENTS_ENV, RULE_FILES, RULES, components, untested_alerts


@pytest.fixture(scope="module")
def bins() -> dict[str, str]:
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make components` first (make test does)")
    return components()


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # A hang bound only: edge-alerts.test.yml evaluates every rule over 3 days of series (~25 s of CPU), which
    # takes a minute of wall time on a loaded machine.
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=240, check=False)


class TestCentralPrometheus:
    def test_config_is_valid(self, bins: dict[str, str]) -> None:
        """promtool accepts prometheus.yml together with the rules file it loads."""
        result = run([bins["PROMTOOL_BIN"], "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rules_are_valid(self, bins: dict[str, str]) -> None:
        """promtool accepts every alert rules file, and prometheus.yml loads each of them."""
        result = run([bins["PROMTOOL_BIN"], "check", "rules", *RULE_FILES], cwd=RULES)
        assert result.returncode == 0, result.stdout + result.stderr
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        assert sorted(config["rule_files"]) == sorted(f"rules/{name}" for name in RULE_FILES)

    @pytest.mark.parametrize("rules", RULE_FILES)
    def test_alert_unit_tests_pass(self, bins: dict[str, str], rules: str) -> None:
        """Every alert fires in the situation it is for, and stays quiet in the healthy neighbour case."""
        result = run([bins["PROMTOOL_BIN"], "test", "rules", rules.replace(".yml", ".test.yml")], cwd=RULES)
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize("rules", RULE_FILES)
    def test_every_alert_has_a_unit_test(self, rules: str) -> None:
        """No alert in a rules file goes untested by the test file beside it."""
        assert untested_alerts(RULES / rules) == set()

    @pytest.mark.parametrize("rules", RULE_FILES)
    def test_every_recording_rule_has_a_unit_test(self, rules: str) -> None:
        """Each recorded series is checked for its value by the test file beside it, with at least
        two expected samples (the case and a healthy neighbour)."""
        groups = yaml.safe_load((RULES / rules).read_text())["groups"]
        records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
        tests = yaml.safe_load((RULES / rules.replace(".yml", ".test.yml")).read_text())["tests"]
        cases = [case for test in tests for case in test.get("promql_expr_test", [])]
        tested = {case["expr"] for case in cases if len(case["exp_samples"]) >= 2}
        assert records - tested == set()

    @pytest.mark.parametrize("rules", RULE_FILES)
    def test_every_alert_says_what_to_check(self, rules: str) -> None:
        """Each alert has a severity, a summary and a description (what it means, what to look at)."""
        groups = yaml.safe_load((RULES / rules).read_text())["groups"]
        for rule in (r for g in groups for r in g["rules"] if "alert" in r):
            assert rule["labels"]["severity"] in {"critical", "warning", "info", "none"}, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]

    def test_alerts_go_to_the_alertmanager_service(self) -> None:
        """prometheus.yml sends alerts to the central-alertmanager Service of deploy/kubernetes/central."""
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        targets = [t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]]
        assert targets == ["central-alertmanager:9093"]

    def test_out_of_order_window_is_a_day(self) -> None:
        """The centre accepts late samples up to a day old (docs/pipeline.md explains the size)."""

        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        assert config["storage"]["tsdb"]["out_of_order_time_window"] == "1d"


class TestAlertmanager:
    def test_config_is_valid(self, bins: dict[str, str]) -> None:
        """amtool accepts alertmanager.yml."""
        result = run([bins["AMTOOL_BIN"], "check-config", str(ALERTMANAGER_CONFIG)])
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize(
        ("labels", "receiver"),
        [
            (["alertname=EdgeNodeSilent", "node=bupt-a", "severity=critical"], "edge-oncall"),
            (["alertname=EdgeClockStepped", "node=bupt-a", "severity=info"], "edge-oncall"),
            (["alertname=EdgeAlertingWatchdog", "severity=none"], "deadmansswitch"),
        ],
    )
    def test_every_alert_reaches_the_receiver(self, bins: dict[str, str], labels: list[str], receiver: str) -> None:
        """amtool's routing test: alerts of each severity end at the receiver users replace; the heartbeat
        at the dead man's switch."""
        result = run(
            [bins["AMTOOL_BIN"], "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels]
        )
        assert result.returncode == 0 and result.stdout.split() == [receiver], result.stdout + result.stderr

    def test_grouped_by_node_and_silent_nodes_inhibit_their_own_alerts(self) -> None:
        """Groups by alert name and node (cluster and name: a node name may recur in another cluster);
        EdgeNodeSilent inhibits alerts of the same node."""
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        assert config["route"]["group_by"] == ["alertname", "cluster", "node"]
        inhibit = config["inhibit_rules"][0]
        assert inhibit["source_matchers"] == ['alertname="EdgeNodeSilent"'] and inhibit["equal"] == ["cluster", "node"]


class TestVmagent:
    def flags(self) -> list[str]:
        return read_flags(
            VMAGENT_FLAGS,
            {"NODE_NAME": "bupt-a", "REMOTE_WRITE_URL": "http://centre:9090/api/v1/write", "CLUSTER": "north"},
        )

    def test_flags_and_scrape_config_are_accepted(self, bins: dict[str, str], tmp_path: Path) -> None:
        """The real vmagent parses every flag of vmagent.flags and the scrape config (dry run)."""
        flags = override_flags(
            self.flags(),
            {"-promscrape.config": str(VMAGENT_SCRAPE), "-remoteWrite.tmpDataPath": str(tmp_path / "q")},
        )
        result = run([bins["VMAGENT_BIN"], *flags, "-promscrape.config.dryRun", "-promscrape.config.strictParse"])
        assert result.returncode == 0, result.stderr[-2000:]

    def test_settings_the_pipeline_relies_on(self) -> None:
        """One queue (in-order delivery), an absolute disk-queue path, a size cap, the node label."""
        flags = dict(flag.partition("=")[::2] for flag in self.flags())
        assert flags["-remoteWrite.queues"] == "1"
        assert flags["-remoteWrite.tmpDataPath"].startswith("/")
        assert flags["-remoteWrite.maxDiskUsagePerURL"] == "1GiB"
        assert "-remoteWrite.label=node=bupt-a" in self.flags()
        assert "-remoteWrite.label=cluster=north" in self.flags()  # the fleet's cluster label (docs/scale.md)
        assert flags["-remoteWrite.url"] == "http://centre:9090/api/v1/write"

    def test_unknown_placeholder_is_an_error(self) -> None:
        """A $(NAME) with no value fails loudly instead of reaching vmagent as literal text."""
        with pytest.raises(KeyError, match="NODE_NAME"):
            read_flags(VMAGENT_FLAGS, {"REMOTE_WRITE_URL": "http://centre"})

    def test_tests_cannot_override_a_flag_production_lacks(self) -> None:
        """The harness only substitutes flags the deploy file sets."""
        with pytest.raises(KeyError, match=r"-remoteWrite\.forcePromProto"):
            override_flags(self.flags(), {"-remoteWrite.forcePromProto": "true"})
