"""Which of vmagent's own metric families the project reads at the centre, and the keep rule of the
self-scrape (job `vmagent` in deploy/vmagent/scrape.yml) that must let them through. The names come from
the generated files (deploy/prometheus/rules/*.yml, deploy/grafana/dashboards/*.json) and the code spans of
docs/runbooks.md; tests/unit/test_vmagent_keep.py and tests/e2e/test_dashboards.py check the rule with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import yaml

from testbed.paths import VMAGENT_SCRAPE
from tests.grafana.dashboards import all_targets
from tests.helpers import REPO, RULE_FILES, RULES, rules_in

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
# Families of the VictoriaMetrics store's own /metrics (its self-scrape at a VictoriaMetrics centre,
# EdgeCentreIgnoresRows), which share the vm_ prefix but never come from a node's vmagent.
STORE_FAMILIES = {"vm_rows_ignored_total"}
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
    for name in RULE_FILES:
        for rule in rules_in(RULES / name):
            yield f"{name}:{rule.get('alert') or rule['record']}", rule["expr"]
    for target in all_targets():
        yield f"{target.dashboard}:{target.panel}", target.expr
    for number, line in enumerate(RUNBOOKS.read_text().splitlines(), start=1):
        for span in CODE_SPAN.findall(line):
            yield f"runbooks.md:{number}", span


def vmagent_names(query: str) -> set[str]:
    """The metric names `query` reads from a node's vmagent (recording rules' outputs left out)."""
    names = set(OWN_FAMILY.findall(query)) | {name for name in SELECTED.findall(query) if ":" not in name}
    return names - SCRAPE_SERIES - STORE_FAMILIES


# Every vmagent family read at the centre, with one place that reads it (for the failure message).
USED = {name: where for where, query in queries() for name in vmagent_names(query)}
