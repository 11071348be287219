"""The alerts on the central Prometheus' own ingestion."""

from __future__ import annotations

from mixin_config import DASHBOARD_UIDS
from rule import Alert, Group, RulesFile, View

# The centre's own series: its scrape of itself, which carries no node label. Every series a node sends
# carries the node vmauth named (the gate sets it, src/edge_metrics/gate.py), so a node cannot forge one of these and
# turn an alert off or on (docs/security.md, "What a node owns").
OWN = '%(centralSelector)s, %(nodeLabel)s=""'


def own(expr: str) -> str:
    """`expr` with each `{OWN}` the selector of the centre's own series, `OWN, ` inside a selector too."""
    return expr.replace("{OWN}", "{" + OWN + "}").replace("{OWN, ", "{" + OWN + ", ")
# The gate's series (its /metrics, scraped by the centre as job `gate`): each names the node it counts, and no
# node's series carries that job (the gate keeps a claimed centre job as exported_job only).
GATE = "%(gateSelector)s"


def increase_since(expr: str, offset: str) -> str:
    """The growth of counter `expr` over `offset`, a counter born since then counted from 0."""
    return f"""(
    {expr}
      - ({expr} offset {offset} or {expr} * 0)
  )"""


FILE = RulesFile(
    name="centre-alerts",
    about="""
Alerts on the central Prometheus's own ingestion, from its self-scrape (job="prometheus", no node
label: a node's series always have one), and on the gate's counts per node (job="gate"). They name a
receiver that refuses or cannot store what the nodes send, which the per-node alerts only see as
"silent". Unit tests: centre-alerts.test.yml; reasoning: docs/pipeline.md ("Alerts").

Counters of the TSDB that carry a `type` label (out of bound, too old, out of order) may be created
at their first increment (they are in older versions), so their first sample can already be
non-zero: the alerts compare with the value some minutes ago, counting an absent value as 0,
instead of increase(), which needs two samples and would miss it.
""",
    groups=[
        Group(
            "edge-centre",
            [
                Alert(
                    "EdgeCentreHeadInFuture",
                    why="""
The newest sample the centre holds is more than 5 minutes ahead of its own clock: a sender's
clock is ahead and the centre accepted its samples. Prometheus >= 2.54 refuses remote-written
samples more than 10 minutes ahead, so this stays a small offset there; on older versions a
board with its RTC in local time (+8 h) moves the head hours ahead, and then every other
node's current samples fall behind it (500 "too old" before 2.50, dropped until 2.54).
""",
                    expr=own("prometheus_tsdb_head_max_time{OWN} / 1000 - time() > 300"),
                    severity="critical",
                    summary="The central Prometheus holds samples {{ $value | humanizeDuration }} in the future",
                    description=(
                        "A sender's clock is ahead: find it with `max by (%(nodeLabel)s) "
                        '(timestamp({__name__=~"up|edge_.*"}))` over a range ending in the future, or in the '
                        "centre's log. Fix the node's clock (EdgeClockNotSynchronised). On Prometheus < 2.54 "
                        'upgrade: docs/pipeline.md ("A clock in the future").'
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=False),
                    for_="1m",
                ),
                Alert(
                    "EdgeCentreRejectsRemoteWrite",
                    why="""
The receiver refuses requests for good (HTTP 4xx): Prometheus >= 2.54 answers 400 "out of
bounds: timestamp is too far in the future" to a sender whose clock is more than 10 minutes
ahead, before the samples reach the TSDB, so no TSDB counter sees them: only the HTTP count
does. The gate drops such samples before the store, and bisects a refused request down to the
refused samples, which are one node's only: EdgeCentreRefusesNodeSamples names the node. Each
vmagent >= 1.100 also gets one 400 when it starts (it tries VictoriaMetrics' own protocol
first), so only a refusal lasting 15 minutes fires: a rolling restart of the fleet does not.
""",
                    expr=own("""
sum by (job, instance) (
  rate(prometheus_http_requests_total{OWN, handler="/api/v1/write", code=~"4.."}[5m])
) > 0
"""),
                    severity="critical",
                    summary=(
                        "The central Prometheus refuses remote-write requests (HTTP 4xx, {{ $value | printf "
                        '"%%.2f" }} per second)'
                    ),
                    description=(
                        "A sender's samples are refused and lost: usually a node's clock ahead (\"too far in the "
                        "future\" in the centre's log, which names each series) or behind "
                        "(EdgeCentreRejectsLateSamples). EdgeCentreRefusesNodeSamples names the node; fix its "
                        "clock. The gate writes each node's samples apart: the others are not affected."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=False),
                    for_="15m",
                ),
                Alert(
                    "EdgeCentreRejectsLateSamples",
                    why="""
Samples older than the out-of-order window (too old), or out of order / out of bounds while
the window is off: a node that replays a backlog older than the window, or whose clock is behind (a 1970
boot, fake-hwclock after a power cut, a backward step). Prometheus >= 2.50 answers 400 and
vmagent drops the block; before 2.50 it answers 500 and vmagent retries for ever.
""",
                    expr=own("""
sum by (job, instance) (
  (
    prometheus_tsdb_too_old_samples_total{OWN}
      - (prometheus_tsdb_too_old_samples_total{OWN} offset 10m or prometheus_tsdb_too_old_samples_total{OWN} * 0)
  )
    or
  (
    prometheus_tsdb_out_of_order_samples_total{OWN}
      - (
        prometheus_tsdb_out_of_order_samples_total{OWN} offset 10m
          or
        prometheus_tsdb_out_of_order_samples_total{OWN} * 0
      )
  )
    or
  (
    prometheus_tsdb_out_of_bound_samples_total{OWN}
      - (
        prometheus_tsdb_out_of_bound_samples_total{OWN} offset 10m
          or
        prometheus_tsdb_out_of_bound_samples_total{OWN} * 0
      )
  )
) > 0
"""),
                    severity="critical",
                    summary=(
                        "The central Prometheus rejected {{ $value }} samples as too old, out of order or out of "
                        "bounds in 10 minutes"
                    ),
                    description=(
                        "Readings arrive later than the out-of-order window (1d) allows, or a node's clock is "
                        "behind. Check EdgeClockNotSynchronised and the centre's log (it names the series); after "
                        "an outage longer than the window the oldest samples are lost by design "
                        "(docs/pipeline.md)."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=False),
                ),
                Alert(
                    "EdgeCentreRefusesNodeSamples",
                    why="""
The gate dropped samples of one node for good: outside the store's accept window (too old for
the out-of-order window, too far ahead) before the store, or refused by the store itself (a
duplicate timestamp with another value), which the gate isolates by bisecting the request. A
node's request holds that node's samples only, so the others lose nothing. The node's own
vmagent saw 204 (the rest of its request was stored), so only the centre can tell. Samples over
the node's series limit are EdgeNodeOverLimits. Same comparison with an hour ago as
EdgeVmagentRemoteWriteRejected.
""",
                    expr=(
                        "sum by (%(clusterLabel)s, %(nodeLabel)s) (\n  "
                        + increase_since(f'edge_gate_samples_refused_total{{{GATE}, reason!="series_limit"}}', "1h")
                        + "\n) > 0\n"
                    ),
                    severity="critical",
                    summary=(
                        "The centre refused {{ $value }} of node {{ $labels.%(nodeLabel)s }}'s samples in the last hour"
                    ),
                    description=(
                        "Those samples are lost; other nodes are not affected. "
                        "`edge_gate_samples_refused_total{%(nodeLabel)s=\"{{ $labels.%(nodeLabel)s }}\"}` "
                        "says why (reason "
                        "too_old, too_far_ahead, duplicate, ...): a clock (EdgeClockNotSynchronised), an outage "
                        "longer than the out-of-order window (EdgeCentreRejectsLateSamples), or a node writing what "
                        "it should not."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                ),
                Alert(
                    "EdgeNodeOverLimits",
                    why="""
A node sends more than its limits at the centre's gate allow (tools/make-certs.sh's
gate-limits.conf, or the gate's defaults): requests over its samples per second (429: its
vmagent sends them again later, so they are late, not lost, until its queue fills) or over its
request size (413: lost), or new series over its hourly series limit (dropped). Only that
node's data is refused; the others are not affected. Either the node misbehaves (a series
bomb, a compromised board) or its limits are too small for it.
""",
                    expr=(
                        "sum by (%(clusterLabel)s, %(nodeLabel)s) (\n  "
                        + increase_since(
                            f'edge_gate_requests_refused_total{{{GATE}, reason=~"rate_limit|too_large"}}', "15m"
                        )
                        + "\n    or\n  "
                        + increase_since(f'edge_gate_samples_refused_total{{{GATE}, reason="series_limit"}}', "15m")
                        + "\n) > 0\n"
                    ),
                    severity="warning",
                    summary="Node {{ $labels.%(nodeLabel)s }} is over its limits at the centre",
                    description=(
                        "Its requests or series are refused (`edge_gate_requests_refused_total` and "
                        "`edge_gate_samples_refused_total{reason=\"series_limit\"}` for the node; its limits: "
                        "`edge_gate_limit_series_per_hour`, `edge_gate_limit_samples_per_second`, "
                        "`edge_gate_limit_request_bytes`). Other nodes are not affected. Find what it sends, or "
                        "raise its line in gate-limits.conf (docs/security.md, \"The gate\")."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                    for_="5m",
                ),
                Alert(
                    "EdgeCentreGateBusy",
                    why="""
The centre's gate answers 503 busy: all its request slots stayed taken, so a node's write waited
past its turn. Every node's vmagent keeps the block and sends it again, so readings are late, not
lost, until a node's queue fills; but every node is affected, not one. The gate is short of CPU
or the store is slow: the centre is at its capacity (docs/scale.md, "The centre's capacity").
""",
                    expr=(
                        "sum by (job, instance) (\n  "
                        + increase_since(f'edge_gate_requests_refused_total{{{GATE}, reason="busy"}}', "5m")
                        + "\n) > 0\n"
                    ),
                    severity="warning",
                    summary="The centre's gate refused {{ $value }} writes as busy in the last 5 minutes",
                    description=(
                        "All its request slots were taken: every node's readings arrive late (their vmagents "
                        "resend) and are lost once a node's queue fills. Give the centre pod CPU, look at the "
                        "store's write latency, or split the fleet over more centres (docs/scale.md)."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=False),
                    for_="10m",
                ),
                Alert(
                    "EdgeCentreRemoteWriteErrors",
                    why="""
The remote-write receiver answers 5xx: the sender retries the block for ever and the node's
queue stalls behind it. Prometheus < 2.50 does this for samples older than the out-of-order
window, which after a future-dated sample is every node's current data (the 500 wedge).
""",
                    expr=own("""
sum by (job, instance) (
  prometheus_http_requests_total{OWN, handler="/api/v1/write", code=~"5.."}
    - (
      prometheus_http_requests_total{OWN, handler="/api/v1/write", code=~"5.."} offset 5m
        or
      prometheus_http_requests_total{OWN, handler="/api/v1/write", code=~"5.."} * 0
    )
) > 0
"""),
                    severity="critical",
                    summary=(
                        "The central Prometheus answers {{ $value }} remote-write requests with HTTP 5xx in 5 minutes"
                    ),
                    description=(
                        "Senders retry these blocks for ever and their queues stall. The centre's log has the "
                        'cause; "too old sample" on Prometheus < 2.54 after a future-dated sample is the wedge in '
                        "docs/pipeline.md (upgrade to >= 2.54, or VictoriaMetrics)."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=False),
                    for_="2m",
                ),
                Alert(
                    "EdgeCentreNotStoringOwnSamples",
                    why="""
The centre's scrape of itself is missing: it cannot append even its own samples. This is
what a wedged head looks like (a sample far in the future on Prometheus < 2.54 makes every
current sample "too old"), when none of the alerts above can fire because their inputs are
not stored either. Rule evaluation and notification still work, so this one reaches you.
""",
                    expr=own("absent(up{OWN})"),
                    severity="critical",
                    summary="The central Prometheus stores none of its own samples",
                    description=(
                        'Its head is wedged or its storage is failing: check its log ("too old sample", "out of '
                        'bounds", disk errors) and `prometheus_tsdb_head_max_time` on its /metrics page against '
                        'the current time. A head far in the future needs the remedy in docs/pipeline.md ("A '
                        'clock in the future").'
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=False),
                    for_="2m",
                ),
                Alert(
                    "EdgeAlertingWatchdog",
                    why="""
Always firing, on purpose: the proof that the centre evaluates rules and Alertmanager delivers.
Route it (alertmanager.yml, receiver `deadmansswitch`) to a dead man's switch outside this
cluster that pages when the heartbeat stops: a dead centre or Alertmanager cannot alert about
itself.
""",
                    expr="vector(1)",
                    severity="none",
                    summary="Alerting pipeline heartbeat (always firing)",
                    description=(
                        "Nothing is wrong while this fires. If your dead man's switch stops receiving it, the "
                        "central Prometheus or its Alertmanager is down or cannot notify."
                    ),
                    view=View(DASHBOARD_UIDS.fleet, per_node=False),
                ),
            ],
        ),
    ],
)
