"""The links every alert carries, built from config.yaml: `runbook_url` (its section of docs/runbooks.md)
and `dashboard` (the Grafana view to open), and the same links in the promtool tests' expectations."""

from __future__ import annotations

import re

from mixin_config import CLUSTER_VARIABLE, NODE_VARIABLE, MixinConfig, dashboard_uid
from rule import Alert


def anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: the runbook sections are headed by the alert's name."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_url(config: MixinConfig, alert: Alert) -> str:
    return f"{config.runbook_url_base}#{anchor(alert.name)}"


def dashboard_url(config: MixinConfig, alert: Alert) -> str:
    """The view's uid under grafanaURL; a node's alert opens the view on that node, and on its cluster
    when the dashboards have a cluster variable."""
    url = f"{config.grafana_url.rstrip('/')}/d/{dashboard_uid(config, alert.view.uid)}"
    if not alert.view.per_node:
        return url
    url += f"?var-{NODE_VARIABLE}={{{{ $labels.{config.node_label} }}}}"
    if config.show_multi_cluster:
        url += f"&var-{CLUSTER_VARIABLE}={{{{ $labels.{config.cluster_label} }}}}"
    return url


# The promtool tests beside the rules expect each alert's annotations with their values for the test's
# series: the links' bases are replaced there line by line, so the tests' comments and layout stay.
_RUNBOOK = re.compile(r"""^(?P<key>\s*runbook_url:\s*["']?)[^"'#\s]*#""", re.MULTILINE)
_DASHBOARD = re.compile(r"""^(?P<key>\s*dashboard:\s*["']?)[^"'\s]*?/d/""", re.MULTILINE)


def relink_test(text: str, config: MixinConfig) -> str:
    """A promtool test file's expected links moved to the configured bases."""
    text = _RUNBOOK.sub(lambda m: f"{m['key']}{config.runbook_url_base}#", text)
    return _DASHBOARD.sub(lambda m: f"{m['key']}{config.grafana_url.rstrip('/')}/d/", text)
