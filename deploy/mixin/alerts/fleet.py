"""The alerts on a fleet's backlog control (docs/scale.md)."""

from __future__ import annotations

from mixin_config import DASHBOARD_UIDS
from rule import Alert, Group, RulesFile, View

FILE = RulesFile(
    name="edge-fleet",
    about="""
Backlog control for a fleet (docs/scale.md): a node whose vmagent queue will not drain in time. The
drain time is edge-recording.yml's edge:vmagent_time_to_drain_seconds (the backlog over the send rate
of the last 5 minutes; a queue that does not move counts as 1 byte/s, so it shows a huge time), read
here rather than recorded a second time. A backlog that grows is EdgeVmagentBacklogGrowing's case
(edge-alerts.yml). Unit tests: edge-fleet.test.yml.

vmagent's metrics reach the centre through the pipeline (the self-scrape job of scrape.yml) or, where
the centre can reach the node, pulled (the vmagent job of prometheus.yml). Pushed, they wait in the
same queue: during a drain the newest ones are as late as the backlog, and the rule sees the queue
once it is less than 5 minutes behind. A drain that will not finish shows there as EdgeNodeSilent; the
early warning needs the pulled metrics.
""",
    groups=[
        Group(
            "edge-fleet-backlog",
            [
                Alert(
                    "EdgeBacklogDrainTooSlow",
                    why="""
At the current send rate the queue empties in more than 6 hours: its oldest samples then come
close to the centre's out-of-order window (1d), and the node's live readings wait behind them
meanwhile. The rate limit (-remoteWrite.rateLimit) is too low for this backlog, or the centre
takes the node's writes too slowly.
""",
                    expr="edge:vmagent_time_to_drain_seconds{%(vmagentSelector)s} > 6 * 3600",
                    severity="warning",
                    summary=(
                        "vmagent on node {{ $labels.%(nodeLabel)s }} needs {{ $value | humanizeDuration }} to "
                        "drain its backlog"
                    ),
                    description=(
                        "At its send rate of the last 5 minutes the node's vmagent queue empties in more than 6 "
                        "hours. Is -remoteWrite.rateLimit too low for the backlog (docs/scale.md, Backlog "
                        "control)? Does the centre answer the node's writes slowly or with errors (vmagent's log, "
                        "the EdgeVmagentRemoteWrite* and EdgeCentre* alerts)?"
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                    for_="30m",
                ),
            ],
        ),
    ],
)
