"""The alerts on authentication failures on the way into the centre (docs/security.md)."""

from __future__ import annotations

from mixin_config import DASHBOARD_UIDS
from rule import Alert, Group, RulesFile, View

FILE = RulesFile(
    name="edge-security",
    about="""
Authentication failures on the way into the centre, evaluated by the central Prometheus.
Unit tests: edge-security.test.yml (`promtool test rules`); threat model: docs/security.md.
""",
    groups=[
        Group(
            "edge-security",
            [
                Alert(
                    "CentreRejectsInvalidTokens",
                    why="""
vmauth answered 401 to requests carrying a bearer token no user has: a revoked or mistyped
node credential, or someone guessing. vmauth counts these (its /metrics, scraped by the
`vmauth` job); it cannot say which node, the logs can (-logInvalidAuthTokens).
""",
                    expr="""
sum by (job, instance) (
  increase(vmauth_http_request_errors_total{%(vmauthSelector)s, %(nodeLabel)s="", reason="invalid_auth_token"}[5m])
) > 0
""",
                    severity="warning",
                    summary="vmauth refused {{ $value | humanize }} writes with an unknown token in 5 minutes",
                    description=(
                        "A node's token was revoked or is wrong, or someone probes the centre. Which node stopped "
                        "sending: EdgeRemoteWriteUnauthorized, and vmauth's log with -logInvalidAuthTokens."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=False),
                    for_="5m",
                ),
                Alert(
                    "EdgeRemoteWriteUnauthorized",
                    why="""
The node's vmagent is refused by the centre (401/403): a revoked, expired or wrong token.
Nothing it collects arrives until its credential is fixed; its disk queue holds the data
meanwhile (1 GiB), so fix it within days. From the node's vmagent /metrics as pulled by the
centre's `vmagent` job (the refused push queue cannot carry it).
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s) (increase(vmagent_remotewrite_requests_total{status_code=~"401|403"}[5m])) > 0
""",
                    severity="critical",
                    summary="The centre refuses node {{ $labels.%(nodeLabel)s }}'s credential",
                    description=(
                        "vmagent on {{ $labels.%(nodeLabel)s }} gets 401/403 from the centre; renew its token "
                        "(docs/security.md#rotation). Its queue keeps the data until then."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                    for_="2m",
                ),
                Alert(
                    "EdgeRemoteWriteTLSFailing",
                    why="""
The node cannot complete the TLS handshake with the centre: the centre's certificate
expired, or the node has the wrong CA. vmagent counts these as connection errors.
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s) (increase(vmagent_remotewrite_errors_total[5m])) > 0
  and on (%(clusterLabel)s, %(nodeLabel)s)
sum by (%(clusterLabel)s, %(nodeLabel)s) (increase(vmagent_remotewrite_requests_total[5m])) == 0
""",
                    severity="critical",
                    summary="Node {{ $labels.%(nodeLabel)s }} cannot reach the centre for 10 minutes",
                    description=(
                        "Connection or TLS errors only (expired centre certificate, wrong CA on the node, "
                        "network): check `kubectl logs -c vmagent` on {{ $labels.%(nodeLabel)s }}."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                    for_="10m",
                ),
            ],
        ),
    ],
)
