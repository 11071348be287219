"""deploy/mixin/config.yaml as a typed value, and what the dashboards and rules build from it.

The one reader of config.yaml: deploy/grafana (the dashboards), deploy/mixin/generate.py (the rules) and
deploy/operators/generate.py (the node label of the scrape objects) all take their settings from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import yaml

CONFIG = Path(__file__).resolve().parent / "config.yaml"
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MixinConfig(NamedTuple):
    edge_selector: str
    vmagent_selector: str
    central_selector: str
    alertmanager_selector: str
    vmauth_selector: str
    gate_selector: str
    node_label: str
    cluster_label: str
    show_multi_cluster: bool
    dashboard_tags: list[str]
    dashboard_uid_prefix: str
    dashboard_refresh: str
    dashboard_timezone: str
    dashboard_period: str
    reading_age_warning_seconds: float
    reading_age_critical_seconds: float
    runbook_url_base: str
    grafana_url: str


_KEYS = {
    "edgeSelector": "edge_selector",
    "vmagentSelector": "vmagent_selector",
    "centralSelector": "central_selector",
    "alertmanagerSelector": "alertmanager_selector",
    "vmauthSelector": "vmauth_selector",
    "gateSelector": "gate_selector",
    "nodeLabel": "node_label",
    "clusterLabel": "cluster_label",
    "showMultiCluster": "show_multi_cluster",
    "dashboardTags": "dashboard_tags",
    "dashboardUIDPrefix": "dashboard_uid_prefix",
    "dashboardRefresh": "dashboard_refresh",
    "dashboardTimezone": "dashboard_timezone",
    "dashboardPeriod": "dashboard_period",
    "readingAgeWarningSeconds": "reading_age_warning_seconds",
    "readingAgeCriticalSeconds": "reading_age_critical_seconds",
    "runbookURLBase": "runbook_url_base",
    "grafanaURL": "grafana_url",
}


def load(path: Path = CONFIG) -> MixinConfig:
    """The config file; an unknown or missing key is an error naming the file, so a typo never
    silently falls back to a default."""
    raw = yaml.safe_load(path.read_text())
    unknown = sorted(set(raw) - set(_KEYS))
    missing = sorted(set(_KEYS) - set(raw))
    if unknown or missing:
        raise SystemExit(f"{path}: unknown keys {unknown}, missing keys {missing}")
    # The label names go into every rule and query as they are: a name Prometheus does not accept
    # would otherwise surface as a PromQL parse error far from its cause.
    for key in ("nodeLabel", "clusterLabel"):
        if not isinstance(raw[key], str) or not LABEL_NAME.fullmatch(raw[key]):
            raise SystemExit(f"{path}: {key} {raw[key]!r} is not a Prometheus label name ({LABEL_NAME.pattern})")
    return MixinConfig(**{_KEYS[key]: value for key, value in raw.items()})


def template_values(config: MixinConfig) -> dict[str, object]:
    """The settings under their config.yaml names, for the rules' %(edgeSelector)s-style templates
    (node-mixin's convention), so a template names the key a user edits."""
    return {key: getattr(config, field) for key, field in _KEYS.items()}


class DashboardUIDs(NamedTuple):
    """Each dashboard's uid without the configured prefix: the dashboard generator gives it to the
    dashboard, the alerts link to it."""

    fleet: str = "fleet"
    node: str = "node"
    pipeline: str = "pipeline"


DASHBOARD_UIDS = DashboardUIDs()
# The name of the dashboards' node variable (`var-node=` in a link), whatever nodeLabel is.
NODE_VARIABLE = "node"
# The name of the dashboards' cluster variable, present when showMultiCluster is true.
CLUSTER_VARIABLE = "cluster"


def dashboard_uid(config: MixinConfig, name: str) -> str:
    return config.dashboard_uid_prefix + name


class Selectors(NamedTuple):
    """PromQL label matchers (without braces) for each source, with the cluster filter when enabled."""

    edge: str
    vmagent: str
    central: str
    node: str  # the label name
    # The labels that tell nodes apart in aggregations and joins: the node label, and the cluster label
    # beside it when several clusters share the dashboards (one node name may recur in two clusters).
    per_node: str
    legend: str  # a series' name for one node, in Grafana's legend syntax
    # One node's readings: pushed with their own time they carry no job label, scraped from the textfile
    # they carry the edge job's, so only the node (and cluster) select them on either path.
    readings: str

    @classmethod
    def of(cls, config: MixinConfig) -> Selectors:
        cluster = f', {config.cluster_label}=~"$cluster"' if config.show_multi_cluster else ""
        return cls(
            edge=config.edge_selector + cluster,
            vmagent=config.vmagent_selector + cluster,
            central=config.central_selector + cluster,
            node=config.node_label,
            per_node=f"{config.cluster_label}, {config.node_label}" if config.show_multi_cluster else config.node_label,
            legend=(
                f"{{{{{config.cluster_label}}}}}/{{{{{config.node_label}}}}}"
                if config.show_multi_cluster
                else f"{{{{{config.node_label}}}}}"
            ),
            readings=f'{config.node_label}="$node"' + cluster,
        )
