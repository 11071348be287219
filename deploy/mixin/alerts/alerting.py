"""The alerts about alerting: Alertmanager down or unreachable, notifications failing or dropped, and a
VictoriaMetrics centre dropping rows it answered 204 for."""

from __future__ import annotations

from mixin_config import DASHBOARD_UIDS
from rule import Alert, Group, RulesFile, View

# Only the centre's own series: a node's series always carry the node label (the central vmagent sets it
# from the token), so a node cannot forge these inputs to switch an alert off or on.
CENTRAL = '%(centralSelector)s, %(nodeLabel)s=""'
ALERTMANAGER = '%(alertmanagerSelector)s, %(nodeLabel)s=""'
PIPELINE = View(DASHBOARD_UIDS.pipeline, per_node=False)


def increased(family: str, selector: str, window: str = "5m") -> str:
    """The expression of a counter of the centre's that went up in `window`, one value per server."""
    return f"sum by (job, instance) (increase({family}{{{selector}}}[{window}])) > 0"

FILE = RulesFile(
    name="alerting-alerts",
    about="""
Alerts about alerting, evaluated by the central Prometheus: can it reach Alertmanager (its own
prometheus_notifications_* counters), is Alertmanager up and delivering (the `alertmanager` job of
prometheus.yml, over Alertmanager's TLS and basic auth), and does a VictoriaMetrics centre drop rows
(its self-scrape, -selfScrapeInterval). None of them reaches you while the path they watch is broken
end to end: that is the external dead man's switch's job (EdgeAlertingWatchdog, docs/runbooks.md).
Only the centre's own series count (no node label). Unit tests: alerting-alerts.test.yml.
""",
    groups=[
        Group(
            "edge-alerting",
            [
                Alert(
                    "EdgeAlertmanagerDown",
                    why="""
The centre's scrape of Alertmanager fails: it is down, or its TLS or password no longer match
what Prometheus has (a rotated Secret on one side only). Its own notifications stop with it, so
this is seen on the centre's alerts page and by the external dead man's switch.
""",
                    expr=f"up{{{ALERTMANAGER}}} == 0",
                    severity="critical",
                    summary="Alertmanager {{ $labels.instance }} is down or refuses the centre's scrape",
                    description=(
                        "No alert reaches anyone while it is down. `kubectl -n monitoring get pods -l "
                        "app=central-alertmanager`, its log, and the scrape error on the centre's targets page "
                        "(a TLS or 401 error: the Secret's alertmanager-web.yml and "
                        "alertmanager-prometheus.password disagree)."
                    ),
                    view=PIPELINE,
                    for_="5m",
                ),
                Alert(
                    "EdgeAlertmanagerUnreachable",
                    why="""
The central Prometheus fails to hand alerts to Alertmanager (connection refused, TLS, 401, a
timeout). EdgeAlertingWatchdog is re-sent every minute, so some send is attempted, and fails,
in every 5-minute window.
""",
                    expr=increased("prometheus_notifications_errors_total", CENTRAL),
                    severity="critical",
                    summary="The central Prometheus failed {{ $value | humanize }} times to send alerts in 5 minutes",
                    description=(
                        "Alerts are not delivered. The centre's log says why (\"Error sending alerts\"): "
                        "Alertmanager down (EdgeAlertmanagerDown), a NetworkPolicy in the way, or a TLS or "
                        "password mismatch after a rotation (docs/security.md)."
                    ),
                    view=PIPELINE,
                    for_="5m",
                ),
                Alert(
                    "EdgeAlertmanagerNotConfigured",
                    why="""
The central Prometheus knows no Alertmanager: its `alerting:` section is missing or its target
does not resolve. Every alert is then dropped before it is sent.
""",
                    expr=f"max by (job, instance) (prometheus_notifications_alertmanagers_discovered{{{CENTRAL}}}) < 1",
                    severity="critical",
                    summary="The central Prometheus has no Alertmanager to send alerts to",
                    description=(
                        "Check `alerting:` in prometheus.yml and that the Service central-alertmanager resolves "
                        "(the centre's /api/v1/alertmanagers lists none)."
                    ),
                    view=PIPELINE,
                    for_="5m",
                ),
                Alert(
                    "EdgeAlertsDropped",
                    why="""
The central Prometheus dropped alerts without sending them: its notification queue overflowed
(Alertmanager too slow for a burst) or there was no Alertmanager. Those alerts are lost.
""",
                    expr=increased("prometheus_notifications_dropped_total", CENTRAL),
                    severity="critical",
                    summary="The central Prometheus dropped {{ $value | humanize }} alerts in 5 minutes",
                    description=(
                        "Alerts were lost before reaching Alertmanager: see EdgeAlertmanagerNotConfigured and "
                        "EdgeAlertmanagerUnreachable, and prometheus_notifications_queue_length on the centre."
                    ),
                    view=PIPELINE,
                ),
                Alert(
                    "EdgeAlertmanagerNotificationsFailing",
                    why="""
Alertmanager has alerts but its receiver refuses them (HTTP 5xx, 4xx, no connection):
nobody is paged. The receiver that fails may be the one this alert is routed to; the others,
and the dead man's switch going quiet, still tell.
""",
                    expr=increased("alertmanager_notifications_failed_total", ALERTMANAGER),
                    severity="critical",
                    summary="Alertmanager failed {{ $value | humanize }} notifications in 5 minutes",
                    description=(
                        "A receiver of alertmanager.yml refuses or cannot be reached: Alertmanager's log names "
                        "the integration and the answer (\"Notify for alerts failed\"); "
                        "`alertmanager_notifications_failed_total` on its /metrics has the integration label."
                    ),
                    view=PIPELINE,
                    for_="5m",
                ),
                Alert(
                    "EdgeCentreIgnoresRows",
                    why="""
A VictoriaMetrics centre answered 204 for rows it then dropped: timestamps beyond
-retentionPeriod or more than -futureRetention ahead, or an invalid name. The sender sees
success, so only this counter shows the loss. From VictoriaMetrics' self-scrape
(-selfScrapeInterval in deploy/victoria-metrics/victoria-metrics.flags).
""",
                    expr=increased("vm_rows_ignored_total", '%(nodeLabel)s=""', "10m"),
                    severity="critical",
                    summary="VictoriaMetrics dropped {{ $value | humanize }} rows in 10 minutes",
                    description=(
                        "Readings were accepted and thrown away: a node's clock far ahead or behind, or a backlog "
                        "older than the retention. The `reason` label of vm_rows_ignored_total says which; "
                        "VictoriaMetrics' log names the series (\"ignoring\"). Check EdgeClockNotSynchronised."
                    ),
                    view=PIPELINE,
                ),
            ],
        ),
    ],
)
