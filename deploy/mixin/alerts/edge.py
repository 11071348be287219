"""The alerts on the edge nodes: the collector, node_exporter, vmagent and the clocks."""

from __future__ import annotations

from mixin_config import DASHBOARD_UIDS
from rule import Alert, Group, RulesFile, View

FILE = RulesFile(
    name="edge-alerts",
    about="""
Alerts for the edge metrics pipeline, evaluated by the central Prometheus.
Unit tests: edge-alerts.test.yml (`promtool test rules`); reasoning: docs/pipeline.md.
Load edge-recording.yml with it: EdgeScriptStale reads edge:reading_age_seconds. Each alert links
its section of docs/runbooks.md and a dashboard (bases: deploy/mixin/config.yaml, make dashboards).
""",
    groups=[
        Group(
            "edge-collector",
            [
                Alert(
                    "EdgeScriptFailing",
                    why="""
The last run of a collector script exited non-zero or timed out, for 5 minutes running.
""",
                    expr="edge_collector_script_success == 0",
                    severity="warning",
                    summary="Script {{ $labels.script }} fails on node {{ $labels.%(nodeLabel)s }}",
                    description=(
                        "See `kubectl logs -n monitoring -c metric-sidecar` on {{ $labels.%(nodeLabel)s }}; exit "
                        "code and stderr are logged per failed run."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="5m",
                ),
                Alert(
                    "EdgeReadingsStale",
                    why="""
The collector died or hangs: node_exporter keeps serving the old file, so samples keep
arriving but the collector's own timestamps inside them stop moving. Both sides of the
subtraction come from the node's clock (the sample's scrape time and the collector's
value), so a wrong clock on the board (no RTC) raises no false alarm.
""",
                    expr="""
timestamp(edge_collector_last_write_timestamp_seconds)
  - edge_collector_last_write_timestamp_seconds > 120
""",
                    severity="critical",
                    summary=(
                        "Collector on node {{ $labels.%(nodeLabel)s }} has not rewritten its file for {{ $value | "
                        "humanizeDuration }}"
                    ),
                    description=(
                        "The collector died, hangs, or cannot write (disk full, read-only filesystem): "
                        "node_exporter keeps serving the last file it wrote. Check `kubectl logs -c "
                        "metric-sidecar` on {{ $labels.%(nodeLabel)s }} (a failed write is logged with its path "
                        "and cause) and free space under the textfile directory."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="2m",
                ),
                Alert(
                    "EdgeScriptStale",
                    why="""
A script has not succeeded for three of its intervals (plus a minute of slack), even though
the collector is alive: covers a script that keeps timing out or was never successful.
edge:reading_age_seconds (edge-recording.yml) is node time since the last success, so a
wrong clock on the board raises no false alarm.
""",
                    expr="edge:reading_age_seconds > 3 * edge_collector_script_interval_seconds + 60",
                    severity="warning",
                    summary=(
                        "No successful run of {{ $labels.script }} on node {{ $labels.%(nodeLabel)s }} for {{ "
                        "$value | humanizeDuration }}"
                    ),
                    description=(
                        "The script keeps failing or timing out while the collector is alive. Its failed runs are "
                        "logged with exit code and stderr; run `edge-metrics run --once --output -` on the node "
                        "to try it by hand."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="2m",
                ),
            ],
        ),
        Group(
            "edge-losses",
            [
                Alert(
                    "EdgeReadingsDropped",
                    why="""
The collector threw readings away before vmagent acknowledged them, for any reason (the
`reason` label: the spool full, the clock-hold limit, a clock step, a batch vmagent refused...):
those readings are lost. A new reason is alerted without a change here. The counter travels
in the collector's own file, so the first sample the centre sees may already hold the loss:
compared with an hour ago, an absent value counting as 0 (as EdgeVmagentQueueDropping). Stays
firing for an hour after the last drop.
""",
                    expr="""
edge_collector_push_dropped_samples_total
  - (
    edge_collector_push_dropped_samples_total offset 1h
      or
    edge_collector_push_dropped_samples_total * 0
  )
> 0
""",
                    severity="critical",
                    summary=(
                        "The collector on node {{ $labels.%(nodeLabel)s }} dropped {{ $value }} readings "
                        "({{ $labels.reason }}) in the last hour"
                    ),
                    description=(
                        "Those readings are lost. The collector's log on {{ $labels.%(nodeLabel)s }} names each "
                        "drop (`kubectl logs -n monitoring -c metric-sidecar`); the reason says where to look: "
                        "the spool's disk and --spool-max-bytes, the node's clock, vmagent's answers."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                ),
                Alert(
                    "EdgeScriptRunsSkipped",
                    why="""
Scheduled runs of a script were not made (the previous run, or another script's, was still
going): the readings of those runs were never taken. Same comparison with an hour ago as
EdgeReadingsDropped.
""",
                    expr="""
edge_collector_script_skipped_runs_total
  - (
    edge_collector_script_skipped_runs_total offset 1h
      or
    edge_collector_script_skipped_runs_total * 0
  )
> 0
""",
                    severity="warning",
                    summary=(
                        "{{ $value }} runs of {{ $labels.script }} on node {{ $labels.%(nodeLabel)s }} were "
                        "skipped in the last hour"
                    ),
                    description=(
                        "The readings of those runs were never taken. A run outlasts the script's interval "
                        "(edge_collector_script_duration_seconds against edge_collector_script_interval_seconds) "
                        "or the collector's loop was held up; the collector logs each skipped run."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                ),
                Alert(
                    "EdgePushFailing",
                    why="""
Push mode: the collector's pushes to the node's vmagent fail and none succeeded in 5 minutes.
The readings wait in the spool (and are lost once it is full: EdgeSpoolFilling,
EdgeReadingsDropped). A collector that has not succeeded once since it started has no
last-success series, so the failures alone count then; the `for:` keeps a pod whose vmagent
starts a few seconds after the collector from paging.
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (increase(edge_collector_push_errors_total[5m])) > 0
  unless on (%(clusterLabel)s, %(nodeLabel)s, instance)
changes(edge_collector_push_last_success_timestamp_seconds[5m]) > 0
""",
                    severity="critical",
                    summary="The collector on node {{ $labels.%(nodeLabel)s }} cannot push its readings to vmagent",
                    description=(
                        "No push acknowledged for 5 minutes; the readings wait in the spool. "
                        "`edge_collector_push_errors_total` by cause and the collector's log (`cannot push "
                        "readings`) say why: is the node's vmagent running and listening on EDGE_PUSH_URL?"
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="2m",
                ),
                Alert(
                    "EdgeSpoolFilling",
                    why="""
The push spool holds more than 80% of --spool-max-bytes (edge_collector_push_spool_max_bytes):
at the limit the oldest readings are dropped (EdgeReadingsDropped, reason spool_full).
""",
                    expr="""
edge_collector_push_spooled_bytes > 0.8 * edge_collector_push_spool_max_bytes
""",
                    severity="warning",
                    summary=(
                        "The push spool on node {{ $labels.%(nodeLabel)s }} is nearly full ({{ $value | "
                        "humanize1024 }}B)"
                    ),
                    description=(
                        "At --spool-max-bytes the oldest readings are dropped. Pushes fail or vmagent takes "
                        "them too slowly: see EdgePushFailing and the collector's log; bring vmagent back before "
                        "the spool is full."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="5m",
                ),
                Alert(
                    "EdgeConfigRejected",
                    why="""
The collector refused the latest nodes.conf or scripts for 5 minutes: it keeps running the
last good config, so a change someone made is not in force (and a script they fixed keeps
failing).
""",
                    expr="edge_collector_config_last_reload_successful == 0",
                    severity="warning",
                    summary="The collector on node {{ $labels.%(nodeLabel)s }} rejects its configuration",
                    description=(
                        "The collector's log names the file, line and reason (`kubectl logs -n monitoring -c "
                        "metric-sidecar`); `edge-metrics check` on the ConfigMap's files says the same before "
                        "a change is applied."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="5m",
                ),
                Alert(
                    "EdgeCollectorPlanEmpty",
                    why="""
The collector runs and writes, but runs no script, on a node where it ran scripts in the last
6 hours: a nodes.conf that lost the node's line or was emptied. Every per-script series is
gone with it, so no per-script alert can fire.
""",
                    expr="""
group by (%(clusterLabel)s, %(nodeLabel)s, instance) (edge_collector_last_write_timestamp_seconds)
  and on (%(clusterLabel)s, %(nodeLabel)s, instance)
group by (%(clusterLabel)s, %(nodeLabel)s, instance) (present_over_time(edge_collector_script_interval_seconds[6h]))
  unless on (%(clusterLabel)s, %(nodeLabel)s, instance)
group by (%(clusterLabel)s, %(nodeLabel)s, instance) (edge_collector_script_interval_seconds)
""",
                    severity="warning",
                    summary="The collector on node {{ $labels.%(nodeLabel)s }} runs no script any more",
                    description=(
                        "nodes.conf no longer gives {{ $labels.%(nodeLabel)s }} a script: check the node's line "
                        "(or the default's) in the edge-metrics-config ConfigMap with `edge-metrics check`."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="5m",
                ),
            ],
        ),
        Group(
            "edge-pipeline",
            [
                Alert(
                    "EdgeNodeSilent",
                    why="""
A node of the fleet sent no samples for 3 minutes: the node, its vmagent, the network or
the centre's acceptance of its samples. It fires until the node sends again or is removed
from the fleet on purpose. The fleet is the centre's vmagent target list (file_sd,
targets/vmagent-*.json): such a target has an `up{job="vmagent"}` series for as long as it is
listed, dead or alive, so a dead node stays alerted for days. Deleting its target file is
how a node is removed. A node missing from the target list (push-only setups) is still
alerted for 6 hours after its last sample, as before. The pulled series and the pushed ones
are matched on cluster and node: a target file must name both, as the node's vmagent sets
them (-remoteWrite.label in vmagent.flags). A target listed less than 3 minutes ago has
had no time to send: a node that is starting up is not silent.
""",
                    expr="""
(
  (
    group by (%(clusterLabel)s, %(nodeLabel)s) (up{%(vmagentSelector)s})
      and on (%(clusterLabel)s, %(nodeLabel)s)
    group by (%(clusterLabel)s, %(nodeLabel)s) (up{%(vmagentSelector)s} offset 3m)
  )
    or
  group by (%(clusterLabel)s, %(nodeLabel)s) (present_over_time(up{%(edgeSelector)s}[6h]))
)
  unless on (%(clusterLabel)s, %(nodeLabel)s)
group by (%(clusterLabel)s, %(nodeLabel)s) (present_over_time(up{%(edgeSelector)s}[3m]))
""",
                    severity="critical",
                    summary="No samples from node {{ $labels.%(nodeLabel)s }} for 3 minutes",
                    description=(
                        "Is the node up (`kubectl get node {{ $labels.%(nodeLabel)s }}`)? Is its vmagent running "
                        "and does it log send errors? Do the vmagent alerts for this node (backlog, 5xx, "
                        "rejected) or an EdgeCentre* alert say why? Samples queued on the node arrive later if "
                        "only the network was down. Sending, yet alerted? Its targets/vmagent-{{ $labels.%(nodeLabel)s "
                        "}}.json must carry the node's cluster label beside node. Removed the node for good? "
                        "Delete its targets/vmagent-{{ $labels.%(nodeLabel)s }}.json."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                ),
                Alert(
                    "EdgeVmagentBacklogGrowing",
                    why="""
vmagent's queue keeps growing for 15 minutes: the centre is reachable enough to be scraped
but does not take the data fast enough (or at all).
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (vmagent_remotewrite_pending_data_bytes) > 0
  and
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (deriv(vmagent_remotewrite_pending_data_bytes[15m])) > 0
""",
                    severity="warning",
                    summary=(
                        "vmagent backlog on node {{ $labels.%(nodeLabel)s }} grows ({{ $value | humanize1024 }}B "
                        "pending)"
                    ),
                    description=(
                        "The centre is reachable (it scrapes vmagent) but takes the node's data too slowly or not "
                        "at all. Check vmagent's log on the node for send errors, the "
                        "EdgeVmagentRemoteWrite5xx/Rejected alerts and the centre's ingestion alerts "
                        "(EdgeCentre*)."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                    for_="15m",
                ),
                Alert(
                    "EdgeVmagentQueueDropping",
                    why="""
The disk queue reached -remoteWrite.maxDiskUsagePerURL and vmagent threw away its oldest data.
This happens during a long outage of the centre, when the centre cannot scrape vmagent either:
its first sample after the outage already holds the whole drop (the counter jumps from 0, or
the series is new), so increase() over a short window, which needs two samples inside the
window, sees nothing. Instead compare with the value an hour ago, counting an absent value
(no sample then: outage, new series) as 0. A counter reset (vmagent restarted) gives a
negative difference and does not fire. Stays firing for an hour after the last drop.
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (
  vm_persistentqueue_bytes_dropped_total
    - (
      vm_persistentqueue_bytes_dropped_total offset 1h
        or
      vm_persistentqueue_bytes_dropped_total * 0
    )
) > 0
""",
                    severity="critical",
                    summary=(
                        "vmagent on node {{ $labels.%(nodeLabel)s }} drops buffered samples: the disk queue is full"
                    ),
                    description=(
                        "{{ $value | humanize1024 }}B of the node's oldest buffered samples were dropped in the "
                        "last hour and are lost. The outage outlasted -remoteWrite.maxDiskUsagePerURL "
                        "(docs/pipeline.md, sizing): bring the centre back, then consider a larger queue."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                ),
                Alert(
                    "EdgeVmagentRemoteWrite5xx",
                    why="""
The centre answers vmagent's pushes with 5xx for 10 minutes. With Prometheus < 2.50 this is
also how a sample older than the out-of-order window shows up: vmagent retries that block
forever and everything queued behind it waits (its pending-bytes gauge may even read 0).
Remedy: docs/pipeline.md ("Samples older than the out-of-order window").
vmagent creates the 5xx series at the first 5xx, with value 1, and retries only every minute,
so rate() would miss the first failure; comparing with 5 minutes ago (0 if the series did
not exist yet) counts it.
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (
  vmagent_remotewrite_requests_total{status_code=~"5.."}
    - (
      vmagent_remotewrite_requests_total{status_code=~"5.."} offset 5m
        or
      vmagent_remotewrite_requests_total{status_code=~"5.."} * 0
    )
) > 0
""",
                    severity="critical",
                    summary="Central Prometheus answers vmagent on node {{ $labels.%(nodeLabel)s }} with HTTP 5xx",
                    description=(
                        "vmagent retries the block for ever and everything queued behind it waits. Check the "
                        "centre's log; on Prometheus < 2.54 one node's wrong clock can do this to every node "
                        "(EdgeCentre* alerts name it; remedy in docs/pipeline.md)."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                    for_="10m",
                ),
                Alert(
                    "EdgeVmagentRemoteWriteRejected",
                    why="""
The centre refused a block for good (HTTP 400/409: a sample out of bounds, too old, or a
future-dated one since Prometheus 2.54): vmagent logs "rejected (skipping the block)", counts
it and moves on. Those samples are lost, silently unless alerted. Same comparison with an
hour ago as EdgeVmagentQueueDropping: the series may start at a non-zero value. Through the
shipped centre the node's vmagent gets 204 from the central vmagent, which holds the node's own
queue: a refusal by the store shows there, as EdgeCentreRefusesNodeSamples; this alert covers
a node writing to a store directly, or vmauth refusing it.
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (
  vmagent_remotewrite_packets_dropped_total
    - (
      vmagent_remotewrite_packets_dropped_total offset 1h
        or
      vmagent_remotewrite_packets_dropped_total * 0
    )
) > 0
""",
                    severity="critical",
                    summary=(
                        "The centre rejected {{ $value }} blocks from node {{ $labels.%(nodeLabel)s }} in the last hour"
                    ),
                    description=(
                        "Those samples are lost. Usual cause: the node's clock (EdgeClockNotSynchronised, "
                        "EdgeCentreRejectsRemoteWrite, EdgeCentreRejectsLateSamples). vmagent's log on the node "
                        'has the centre\'s answer ("rejected (skipping the block)"). Through the shipped centre, '
                        "the store's refusals of this node's samples show as EdgeCentreRefusesNodeSamples instead."
                    ),
                    view=View(DASHBOARD_UIDS.pipeline, per_node=True),
                ),
            ],
        ),
        Group(
            "edge-node",
            [
                Alert(
                    "EdgeTextfileScrapeError",
                    why="""
node_exporter could not read a file of the textfile directory (another writer dropped a bad
.prom file there, or a file was unreadable): it then exports none of that file's metrics.
""",
                    expr="node_textfile_scrape_error == 1",
                    severity="warning",
                    summary=(
                        "node_exporter on node {{ $labels.%(nodeLabel)s }} cannot read a file of its textfile directory"
                    ),
                    description=(
                        "node_exporter's log on {{ $labels.%(nodeLabel)s }} names the file and the parse error. "
                        "The collector's own file is always valid: look for another writer's .prom file in the "
                        "directory."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="5m",
                ),
                Alert(
                    "EdgeCollectorWriteFailing",
                    why="""
The collector counts failed writes of its file, but the counter can only reach the centre
in a later write that succeeds. This catches write failures that come and go; a collector
that can no longer write at all shows up as EdgeReadingsStale/EdgeTextfileStale.
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (
  edge_collector_textfile_write_failures_total
    - (
      edge_collector_textfile_write_failures_total offset 15m
        or
      edge_collector_textfile_write_failures_total * 0
    )
) > 0
""",
                    severity="warning",
                    summary=(
                        "The collector on node {{ $labels.%(nodeLabel)s }} failed to write its metrics file {{ "
                        "$value }} times in 15 minutes"
                    ),
                    description=(
                        "Each failure is logged with the path and cause (disk full, read-only filesystem, "
                        "permissions). Check free space in the textfile directory on {{ $labels.%(nodeLabel)s }}."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                ),
                Alert(
                    "EdgeTextfileStale",
                    why="""
The collector's file is no longer rewritten (disk full, the collector gone) while node_exporter
keeps serving it: node_exporter's mtime of the file, compared with the scrape time of that very
sample. Both come from the node's clock, so a board with a wrong clock raises no false alarm.
""",
                    # Raw: PromQL's own escape of the dot (\\.) reaches Prometheus as written.
                    expr=r"""
timestamp(node_textfile_mtime_seconds{file=~".*custom_metrics\\.prom"})
  - node_textfile_mtime_seconds{file=~".*custom_metrics\\.prom"} > 300
""",
                    severity="critical",
                    summary=(
                        "The collector's metrics file on node {{ $labels.%(nodeLabel)s }} was last written {{ "
                        "$value | humanizeDuration }} ago"
                    ),
                    description=(
                        "A failed write cannot export its own failure counter: check the collector's log on {{ "
                        "$labels.%(nodeLabel)s }} for write errors (disk full, read-only filesystem) and that the "
                        "collector runs."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="2m",
                ),
                Alert(
                    "EdgeClockNotSynchronised",
                    why="""
node_exporter's timex collector (the node-mixin's NodeClockNotSynchronising): the kernel says
the clock is not synchronised and its maximum error has grown to 16 s, the kernel's ceiling.
""",
                    expr="""
min_over_time(node_timex_sync_status[5m]) == 0
  and
node_timex_maxerror_seconds >= 16
""",
                    severity="warning",
                    summary="The clock of node {{ $labels.%(nodeLabel)s }} is not synchronised",
                    description=(
                        "Samples from {{ $labels.%(nodeLabel)s }} may carry a wrong time (future-dated ones are "
                        "rejected by the centre, past-dated ones stored at the wrong time or rejected). Check NTP "
                        "on the node: `timedatectl`, `chronyc tracking`."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="10m",
                ),
                Alert(
                    "EdgeClockSkew",
                    why="""
node_exporter's timex offset (the node-mixin's NodeClockSkewDetected): more than 50 ms off and
not getting better.
""",
                    expr="""
(node_timex_offset_seconds > 0.05 and deriv(node_timex_offset_seconds[5m]) >= 0)
  or
(node_timex_offset_seconds < -0.05 and deriv(node_timex_offset_seconds[5m]) <= 0)
""",
                    severity="warning",
                    summary=(
                        "The clock of node {{ $labels.%(nodeLabel)s }} is {{ $value | humanizeDuration }} off and "
                        "not converging"
                    ),
                    description=(
                        "NTP on {{ $labels.%(nodeLabel)s }} is not correcting the offset: check `chronyc sources` "
                        "/ `timedatectl timesync-status` and that the NTP servers are reachable."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="10m",
                ),
                Alert(
                    "EdgeCollectorClockNotSynchronised",
                    why="""
The collector's own view (adjtimex, like node_exporter's timex collector): in push mode it
holds readings while this is 0 and stamps them once the clock is synchronised.
""",
                    expr="min_over_time(edge_collector_clock_synchronized[5m]) == 0",
                    severity="warning",
                    summary="The collector on node {{ $labels.%(nodeLabel)s }} sees an unsynchronised clock",
                    description=(
                        "In push mode readings are held (edge_collector_clock_held_samples) until the clock is "
                        "synchronised, and dropped past the hold limit. Check NTP on {{ $labels.%(nodeLabel)s }} "
                        "(docs/time.md)."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                    for_="10m",
                ),
                Alert(
                    "EdgeClockStepped",
                    why="""
The collector noticed a step of the wall clock between two readings (NTP correcting a large
error, an RTC read late, a manual `date -s`).
""",
                    expr="""
sum by (%(clusterLabel)s, %(nodeLabel)s, instance) (
  edge_collector_clock_steps_total
    - (edge_collector_clock_steps_total offset 1h or edge_collector_clock_steps_total * 0)
) > 0
""",
                    severity="info",
                    summary=(
                        "The wall clock of node {{ $labels.%(nodeLabel)s }} stepped {{ $value }} times in the last hour"
                    ),
                    description=(
                        "Readings around a step are handled as docs/time.md says. Repeated steps mean a fight "
                        "between time sources (RTC in local time, two NTP daemons)."
                    ),
                    view=View(DASHBOARD_UIDS.node, per_node=True),
                ),
            ],
        ),
    ],
)
