"""The deploy/ configuration of the pipeline is valid for the real programs, and says what it must."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.stack import PROMETHEUS_DIR, VMAGENT_FLAGS, VMAGENT_SCRAPE, override_flags, read_flags
from tests.helpers import COMPONENTS_ENV, components

RULES = PROMETHEUS_DIR / "rules"


@pytest.fixture(scope="module")
def bins() -> dict[str, str]:
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make components` first (make test does)")
    return components()


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


class TestCentralPrometheus:
    def test_config_is_valid(self, bins: dict[str, str]) -> None:
        """promtool accepts prometheus.yml together with the rules file it loads."""
        result = run([bins["PROMTOOL_BIN"], "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rules_are_valid(self, bins: dict[str, str]) -> None:
        """promtool accepts the alert rules."""
        result = run([bins["PROMTOOL_BIN"], "check", "rules", str(RULES / "edge-alerts.yml")])
        assert result.returncode == 0, result.stdout + result.stderr

    def test_alert_unit_tests_pass(self, bins: dict[str, str]) -> None:
        """Every alert fires in the situation it is for, and stays quiet in the healthy neighbour case."""
        result = run([bins["PROMTOOL_BIN"], "test", "rules", "edge-alerts.test.yml"], cwd=RULES)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_every_alert_has_a_unit_test(self) -> None:
        """No alert in the rules file goes untested."""

        rules = yaml.safe_load((RULES / "edge-alerts.yml").read_text())
        alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
        tests = yaml.safe_load((RULES / "edge-alerts.test.yml").read_text())["tests"]
        tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
        assert alerts - tested == set()

    def test_out_of_order_window_is_a_day(self) -> None:
        """The centre accepts late samples up to a day old (docs/pipeline.md explains the size)."""

        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        assert config["storage"]["tsdb"]["out_of_order_time_window"] == "1d"


class TestVmagent:
    def flags(self) -> list[str]:
        return read_flags(
            VMAGENT_FLAGS,
            {"NODE_NAME": "bupt-a", "REMOTE_WRITE_URL": "http://centre:9090/api/v1/write", "SITE": "site-a"},
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
        assert "-remoteWrite.label=site=site-a" in self.flags()  # the fleet's site label (docs/scale.md)
        assert flags["-remoteWrite.url"] == "http://centre:9090/api/v1/write"

    def test_unknown_placeholder_is_an_error(self) -> None:
        """A $(NAME) with no value fails loudly instead of reaching vmagent as literal text."""
        with pytest.raises(KeyError, match="NODE_NAME"):
            read_flags(VMAGENT_FLAGS, {"REMOTE_WRITE_URL": "http://centre"})

    def test_tests_cannot_override_a_flag_production_lacks(self) -> None:
        """The harness only substitutes flags the deploy file sets."""
        with pytest.raises(KeyError, match=r"-remoteWrite\.forcePromProto"):
            override_flags(self.flags(), {"-remoteWrite.forcePromProto": "true"})
