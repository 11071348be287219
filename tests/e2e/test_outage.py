"""A network outage loses nothing: vmagent buffers on disk and Prometheus takes the late samples.

Time is compressed: `--storage.tsdb.min-block-duration=1m` makes the centre's in-order append window
30 s instead of an hour, so a 60 s outage sends the backlog through the same out-of-order path that a
production outage longer than an hour takes. Each scenario runs once per class; its tests check it. The restarts of
vmagent during an outage are test_outage_restarts.py (a file of their own, so that another worker runs them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from testbed.counter import certainly_scraped, read_prints
from testbed.exposition import metric_sum
from testbed.pipeline import Pipeline
from tests.helpers import processes, wait_until

# The fixture's outage, drain and restart take minutes on a loaded machine: its first test's bound covers them.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

COMPRESSED_TIME = ["--storage.tsdb.min-block-duration=1m"]
OUTAGE_SECONDS = 60


@dataclass
class Outcome:
    expected: set[int] = field(default_factory=set)  # values some scrape certainly saw
    present: set[int] = field(default_factory=set)  # values at the centre
    outage_values: set[int] = field(default_factory=set)  # expected values printed during the outage
    notes: dict[str, float] = field(default_factory=dict)

    def report(self, title: str) -> str:
        missing = sorted(self.expected - self.present)
        return (
            f"{title}: expected {len(self.expected)} (of which {len(self.outage_values)} printed during the "
            f"outage), present {len(self.expected & self.present)}, missing {missing} {self.notes}"
        )


@pytest.fixture(scope="class")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Centre down 60 s while the collector runs every 1 s and vmagent scrapes every 1 s; the centre
    comes back, and is restarted again as soon as the first backlog block has been delivered."""
    outcome = Outcome()
    with processes() as procs:
        stack = Pipeline(procs, tmp_path_factory.mktemp("backfill"), node="bupt-a", prometheus_args=COMPRESSED_TIME)
        stack.start_infrastructure()
        stack.start_counter_collector(interval="1s")
        wait_until(lambda: len(stack.counter_values_at_centre()) >= 3, timeout=30, what="values at the centre")

        outage_start = time.time()
        peak = []
        stack.outage(at_least=OUTAGE_SECONDS, during=lambda _: peak.append(stack.node.pending_bytes()))
        outage_end = time.time()
        outcome.notes["pending_bytes_peak"] = max(peak)

        # As soon as the backfill has begun (-remoteWrite.rateLimit makes it last seconds), restart the
        # centre: the rest of the backlog must survive the centre going away again.
        def sent() -> float:
            return metric_sum(stack.node.vmagent_metrics(), "vmagent_remotewrite_requests_total", status_code="2XX")

        sent_before = sent()
        wait_until(lambda: sent() > sent_before, timeout=90, interval=0.02, what="the first backlog block delivered")
        outcome.notes["pending_bytes_at_centre_restart"] = stack.node.pending_bytes()
        out_of_order = metric_sum(stack.central.metrics(), "prometheus_tsdb_head_out_of_order_samples_appended_total")
        stack.central.stop()
        stack.central.start()

        stack.wait_drained(timeout=240)  # the gate decodes in Python: its drain takes minutes under load
        outcome.notes["pending_bytes_after"] = stack.node.pending_bytes()
        stack.wait_scraped_after(time.time())  # the last scrape before the check travels too
        centre = stack.central.metrics()
        # The counter was reset by the restart.
        out_of_order += metric_sum(centre, "prometheus_tsdb_head_out_of_order_samples_appended_total")
        outcome.notes["out_of_order_appended"] = out_of_order
        outcome.notes["too_old"] = metric_sum(centre, "prometheus_tsdb_too_old_samples_total")
        # What the gate dropped, had anything gone missing (its reasons are in edge_gate_samples_refused_total).
        gate = stack.ingest.gate_metrics()
        outcome.notes["gate_refused"] = metric_sum(gate, "edge_gate_samples_refused_total")
        outcome.notes["gate_stored"] = metric_sum(gate, "edge_gate_samples_stored_total")

        prints = read_prints(stack.scripts_dir)
        outcome.expected = certainly_scraped(prints, stack.scrape_runs(), failed=stack.failed_scrapes())
        outcome.present, outcome.notes["visible_after_s"] = stack.counter_values_once_visible(outcome.expected)
        outcome.outage_values = {p.value for p in prints if outage_start <= p.at <= outage_end} & outcome.expected
    yield outcome


class TestOutageBackfill:
    def test_every_sample_of_the_outage_arrives(self, backfill: Outcome) -> None:
        """Every value the script printed (and a scrape saw) is at the centre after a 60 s outage,
        although the centre was restarted again in the middle of the backfill."""
        print(backfill.report("outage backfill"))
        assert len(backfill.outage_values) >= OUTAGE_SECONDS - 5
        assert backfill.expected - backfill.present == set()

    def test_vmagent_queue_drains_to_zero(self, backfill: Outcome) -> None:
        """vmagent buffered the outage on disk and its pending bytes return to 0 once delivered."""
        assert backfill.notes["pending_bytes_peak"] > 0
        assert backfill.notes["pending_bytes_after"] == 0

    def test_centre_restart_mid_backfill_loses_nothing(self, backfill: Outcome) -> None:
        """The centre was restarted while vmagent still had backlog to send; nothing went missing."""
        assert backfill.notes["pending_bytes_at_centre_restart"] > 0
        assert backfill.expected - backfill.present == set()

    def test_late_samples_take_the_out_of_order_path(self, backfill: Outcome) -> None:
        """The backlog is older than the centre's head, so it is appended out of order, and accepted."""
        assert backfill.notes["out_of_order_appended"] > 0
        assert backfill.notes["too_old"] == 0
