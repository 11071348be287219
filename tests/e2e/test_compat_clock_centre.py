"""The compatibility job: the same wrong edge clock against bookworm's Prometheus 2.42 and vmagent 1.79,
which users still run. 2.42 accepts future-dated samples: a +8 h sample moves the centre's head 8 h ahead
(EdgeCentreHeadInFuture names it; the others still get in through the out-of-order window), and a +3 d
one moves it past the window, after which every node's current samples, and the centre's own scrapes,
are "too old": answered 500 and retried by every vmagent for ever (the 500 wedge). Only
EdgeCentreNotStoringOwnSamples can still fire then, and it does. Remedy (docs/pipeline.md): Prometheus
>= 2.54, or VictoriaMetrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.clock_fleet import BAD, DAY_MS, GOOD, HOUR_MS, Fleet, now_ms, rounds, start_fleet
from tests.helpers import Processes, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.compat]


@pytest.fixture
def fleet(procs: Processes, tmp_path: Path) -> Fleet:
    return start_fleet(
        procs,
        tmp_path,
        compat=True,
        fast_alerts=["EdgeCentreHeadInFuture", "EdgeCentreNotStoringOwnSamples"],
        # A series counts as gone 20 s after its last sample instead of 5 minutes: the test need not wait
        # 5 minutes for the centre's own series to disappear. Alert expressions are unchanged.
        prometheus_args=["--query.lookback-delta=20s"],
    )


class TestWrongEdgeClockOnPrometheus242:
    def test_a_node_three_days_ahead_wedges_every_node_and_the_alert_names_it(self, fleet: Fleet) -> None:
        """+8 h is stored and EdgeCentreHeadInFuture fires while the others still get in; +3 d wedges the
        centre: every good node answered 500, nothing of theirs stored since, nothing dropped (retried
        for ever), and EdgeCentreNotStoringOwnSamples fires."""
        rounds(fleet, 8)
        fleet.push(BAD, [(now_ms() + 8 * HOUR_MS, 1.0)])
        rounds(fleet, 8)
        # +8 h: stored (2.42 has no future limit), the head moves ahead, the others still get in.
        wait_until(lambda: fleet.firing("EdgeCentreHeadInFuture"), timeout=60, what="EdgeCentreHeadInFuture")
        assert fleet.stored(BAD, at=now_ms() / 1000 + 9 * 3600, window="2h") == 1
        for name in GOOD:
            wait_until(lambda name=name: fleet.stored(name) == fleet.sent[name], timeout=60, what=f"{name} complete")

        # +3 d: the head moves past the out-of-order window; from now on "now" is too old.
        fleet.push(BAD, [(now_ms() + 3 * DAY_MS, 1.0)])
        wait_until(
            lambda: fleet.stored(BAD, at=now_ms() / 1000 + 3 * 86400 + 60, window="5m") == 1,
            timeout=60,
            what="the +3 d sample stored",
        )
        sent_before_wedge = dict(fleet.sent)
        rounds(fleet, 8)

        # Every good node is answered 500 and keeps its blocks to retry them for ever; nothing it sent
        # since the wedge is at the centre, nothing was dropped either.
        for name in GOOD:
            wait_until(
                lambda name=name: fleet.vmagent_metric(name, "vmagent_remotewrite_requests_total", status_code="500"),
                timeout=60,
                what=f"{name} answered 500",
            )
            assert fleet.vmagent_metric(name, "vmagent_remotewrite_packets_dropped_total") == 0
            assert fleet.stored(name) == sent_before_wedge[name] < fleet.sent[name]
        log = fleet.central.log.read_text()
        assert "too old sample" in log or "out of bounds" in log

        # The centre cannot store its own scrapes either, so its ingestion alerts have no input; this
        # one is the alert that names the wedge.
        wait_until(
            lambda: fleet.firing("EdgeCentreNotStoringOwnSamples"), timeout=90, what="EdgeCentreNotStoringOwnSamples"
        )
        print(
            "500 answers per good node:",
            {n: fleet.vmagent_metric(n, "vmagent_remotewrite_requests_total", status_code="500") for n in GOOD},
        )
