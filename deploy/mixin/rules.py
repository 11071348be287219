"""The recording rules (node-mixin's rules/): what the dashboards and the alerts share."""

from __future__ import annotations

from rule import Group, Record, RulesFile

FILE = RulesFile(
    name="edge-recording",
    about="""
Recording rules for what the dashboards (deploy/grafana) and the alerts share, evaluated by the
central Prometheus. Names follow Prometheus' level:metric:operations convention; the labels they keep
(job, instance, the node label, and the cluster label where several clusters write to one centre) are
those the dashboards select on (deploy/mixin/config.yaml). Unit tests: edge-recording.test.yml.
""",
    groups=[
        Group(
            "edge-recording",
            [
                Record(
                    "edge:reading_age_seconds",
                    why="""
Seconds since each script's last successful run, per node and script, at the time of the
node's newest sample. Both sides come from the node's clock (the sample's scrape time and the
collector's value), so a board with a wrong clock (no RTC) does not make its readings look old
or new; a node that stops sending is EdgeNodeSilent's case. Read by EdgeScriptStale and the
node dashboard's "Since last success".
""",
                    expr="""
timestamp(edge_collector_script_last_success_timestamp_seconds)
  - edge_collector_script_last_success_timestamp_seconds
""",
                ),
                Record(
                    "edge:vmagent_time_to_drain_seconds",
                    why="""
How long each node's vmagent needs to deliver its backlog at the rate it sent in the last
5 minutes; 0 with an empty queue. The rate counts as at least 1 byte/s, so a queue that does
not move shows a huge time instead of no value. Read by the fleet dashboard and EdgeBacklogDrainTooSlow.
""",
                    expr="""
sum by (%(clusterLabel)s, job, instance, %(nodeLabel)s) (vmagent_remotewrite_pending_data_bytes)
  /
clamp_min(sum by (%(clusterLabel)s, job, instance, %(nodeLabel)s) (rate(vmagent_remotewrite_bytes_sent_total[5m])), 1)
""",
                ),
            ],
        )
    ],
)
