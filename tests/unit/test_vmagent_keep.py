"""The keep rule of vmagent's self-scrape (job `vmagent` in deploy/vmagent/scrape.yml) lets through every
vmagent family that the alert and recording rules, the dashboards and docs/runbooks.md read at the centre,
and drops vmagent's other families, which would otherwise more than double each node's traffic.

The names come from the generated files themselves (deploy/prometheus/rules/*.yml,
deploy/grafana/dashboards/*.json) and from the runbooks' code spans, so a new panel or alert on a family the
rule drops fails here instead of showing "No data" in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.stack import VMAGENT_SCRAPE
from tests.grafana.dashboards import all_targets
from tests.helpers import REPO

RULES = REPO / "deploy" / "prometheus" / "rules"
RUNBOOKS = REPO / "docs" / "runbooks.md"
# The selector the rules and dashboards put on series of the node's vmagent (deploy/mixin/config.yaml).
VMAGENT_SELECTOR = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yaml").read_text())["vmagentSelector"]
# Series vmagent adds to every scrape itself: metric_relabel_configs does not apply to them (as in Prometheus),
# so they arrive whatever the rule keeps; tests/e2e/test_dashboards.py sees `up` of the self-scrape arrive.
SCRAPE_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_response_size_bytes",
    "scrape_samples_post_metric_relabeling",
    "scrape_samples_scraped",
    "scrape_series_added",
    "scrape_timeout_seconds",
}
# A name of vmagent's own /metrics (vmagent_*, vm_*) anywhere in a query; a recording rule's output
# (edge:vmagent_...) is not one: the colon before it excludes it.
OWN_FAMILY = re.compile(r"(?<![\w:])(?:vmagent|vm)_\w+")
# Any name whose selector names the vmagent job, e.g. up{job="vmagent"}.
SELECTED = re.compile(r"(?<![\w:])([A-Za-z_][\w:]*)\s*\{[^}]*" + re.escape(VMAGENT_SELECTOR))
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# What the queue, drop and rejection alerts read: the extraction must find at least these.
ALERT_FAMILIES = {
    "vmagent_remotewrite_pending_data_bytes",
    "vmagent_remotewrite_requests_total",
    "vmagent_remotewrite_packets_dropped_total",
    "vmagent_remotewrite_errors_total",
    "vm_persistentqueue_bytes_dropped_total",
}


def keep_regex() -> re.Pattern[str]:
    """The shipped rule's regex, anchored at both ends as vmagent (and Prometheus) anchor it."""
    config = yaml.safe_load(VMAGENT_SCRAPE.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "vmagent"]
    (rule,) = [
        rule
        for rule in job["metric_relabel_configs"]
        if rule["action"] == "keep" and rule["source_labels"] == ["__name__"]
    ]
    return re.compile(f"^(?:{rule['regex']})$")


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every rule, every dashboard target and every code span of the runbooks."""
    for path in sorted(RULES.glob("*.yml")):
        if path.name.endswith(".test.yml"):
            continue
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}:{rule.get('alert') or rule['record']}", rule["expr"]
    for target in all_targets():
        yield f"{target.dashboard}:{target.panel}", target.expr
    for number, line in enumerate(RUNBOOKS.read_text().splitlines(), start=1):
        for span in CODE_SPAN.findall(line):
            yield f"runbooks.md:{number}", span


def vmagent_names(query: str) -> set[str]:
    """The metric names `query` reads from a node's vmagent (recording rules' outputs left out)."""
    names = set(OWN_FAMILY.findall(query)) | {name for name in SELECTED.findall(query) if ":" not in name}
    return names - SCRAPE_SERIES


USED = {name: where for where, query in queries() for name in vmagent_names(query)}


class TestKeepRule:
    def test_extraction_finds_what_the_alerts_read(self) -> None:
        """The name extraction sees the families the alerts are built on (else the next test proves nothing)."""
        assert USED.keys() >= ALERT_FAMILIES, sorted(USED)

    @pytest.mark.parametrize("name", sorted(USED))
    def test_every_family_read_at_the_centre_is_kept(self, name: str) -> None:
        """Each vmagent family a rule, panel or runbook query reads passes the anchored keep regex."""
        assert keep_regex().match(name), f"{USED[name]} reads {name}, which scrape.yml's keep rule drops"

    @pytest.mark.parametrize(
        "name",
        [
            "vm_promscrape_scraped_samples_bucket",  # one series per bucket and target
            "vm_promscrape_scrapes_total",
            "go_gc_duration_seconds",
            "go_memstats_alloc_bytes",
            "process_resident_memory_bytes",
            "flag",  # one series per command-line flag
            "vmagent_remotewrite_duration_seconds_bucket",
            "vmagent_remotewrite_block_size_rows_bucket",  # only its _sum is read
            "vmagent_remotewrite_requests_total_extra",  # anchored: a kept name as a prefix is not enough
            "x_vm_persistentqueue_bytes_pending",
        ],
    )
    def test_noisy_families_are_dropped(self, name: str) -> None:
        """vmagent's runtime, scrape and histogram families stay on the node."""
        assert not keep_regex().match(name)
