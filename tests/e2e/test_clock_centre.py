"""No edge clock can corrupt the fleet, at the centre (Prometheus 3.5): one node sends readings stamped by a
wrong clock (+8 h, +3 d, 1970, three days back), three others send correct ones. The others lose nothing,
the bad node's readings are refused (or, a short step back inside the out-of-order window, stored at the
time its clock gave), and the alerts that name the cause fire. The same faults against bookworm's 2.42:
test_compat_clock_centre.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.exposition import metric_sum
from tests.e2e.clock_fleet import BAD, DAY_MS, GOOD, HOUR_MS, SERIES, Fleet, now_ms, rounds, start_fleet
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def fleet(procs: Processes, tmp_path: Path) -> Fleet:
    # Production waits 15 minutes of refusals (a vmagent start costs one 400); the expression is unchanged.
    return start_fleet(procs, tmp_path, fast_alerts=["EdgeCentreRejectsRemoteWrite"])


def run_fault(fleet: Fleet, offsets_ms: list[int], count: int = 40) -> None:
    """The good nodes' readings in every round; the bad node's, stamped `offset` away from now, spread
    over the rounds (each offset twice, so a block of each reaches the centre)."""
    bad = {round(count * (i + 1) / (2 * len(offsets_ms) + 1)): o for i, o in enumerate(offsets_ms * 2)}
    rounds(fleet, count, bad)


def good_nodes_lose_nothing(fleet: Fleet) -> None:
    """Every reading of every good node is at the centre, none twice; vmagent dropped or retried nothing."""
    for name in GOOD:
        wait_until(lambda name=name: fleet.stored(name) >= fleet.sent[name], timeout=60, what=f"{name}'s readings")
        assert fleet.stored(name) == fleet.sent[name], name
        assert fleet.vmagent_metric(name, "vmagent_remotewrite_packets_dropped_total") == 0, name
        assert fleet.vmagent_metric(name, "vmagent_remotewrite_requests_total", status_code="500") == 0, name


def refused(fleet: Fleet) -> float:
    """Remote-write requests the centre answered with 400."""
    return metric_sum(fleet.central.metrics(), "prometheus_http_requests_total", handler="/api/v1/write", code="400")


class TestWrongEdgeClock:
    def test_future_readings_are_refused_and_named_while_the_others_lose_nothing(self, fleet: Fleet) -> None:
        """A board 8 hours ahead (RTC in local time, Asia/Shanghai) and one 3 days ahead: Prometheus >= 2.54
        answers 400 "too far in the future", vmagent drops those blocks, no future sample moves the head,
        and EdgeCentreRejectsRemoteWrite and EdgeVmagentRemoteWriteRejected (naming the node) fire."""
        refused_before = refused(fleet)
        run_fault(fleet, [8 * HOUR_MS, 3 * DAY_MS])
        good_nodes_lose_nothing(fleet)

        wait_until(
            lambda: fleet.vmagent_metric(BAD, "vmagent_remotewrite_packets_dropped_total") >= 4,
            timeout=60,
            what="the bad node's blocks rejected",
        )
        assert fleet.stored(BAD, at=now_ms() / 1000 + 4 * 86400, window="5d") == 0
        head_ahead = fleet.central.query("max(prometheus_tsdb_head_max_time) / 1000 - time()")
        assert float(head_ahead[0]["value"][1]) < 60
        assert refused(fleet) >= refused_before + 4
        wait_until(lambda: fleet.firing("EdgeCentreRejectsRemoteWrite"), timeout=60, what="centre alert")
        assert wait_until(lambda: fleet.firing("EdgeVmagentRemoteWriteRejected"), timeout=60, what="node alert") == {
            BAD
        }
        assert fleet.firing("EdgeCentreHeadInFuture") == set()
        log = (fleet.central.log).read_text()
        assert "too far in the future" in log

    def test_past_readings_are_refused_or_stored_late_and_named(self, fleet: Fleet) -> None:
        """A board that booted in 1970 and one restored three days back (fake-hwclock) are older than the
        out-of-order window (1d): refused as too old, counted, EdgeCentreRejectsLateSamples and
        EdgeVmagentRemoteWriteRejected fire. A backward step of 2 hours is inside the window: stored at
        the time the board's clock gave (the edge's clock alerts are what tell). Others lose nothing."""
        # 1970: the board's clock a few minutes after the epoch, in milliseconds.
        run_fault(fleet, [-(now_ms() - 5 * 60_000), -3 * DAY_MS])
        good_nodes_lose_nothing(fleet)
        wait_until(
            lambda: fleet.vmagent_metric(BAD, "vmagent_remotewrite_packets_dropped_total") >= 4,
            timeout=60,
            what="the bad node's blocks rejected",
        )
        assert fleet.stored(BAD, window="5d") == 0
        wait_until(lambda: fleet.firing("EdgeCentreRejectsLateSamples"), timeout=60, what="centre alert")
        assert wait_until(lambda: fleet.firing("EdgeVmagentRemoteWriteRejected"), timeout=60, what="node alert") == {
            BAD
        }

        stepped = now_ms() - 2 * HOUR_MS
        fleet.push(BAD, [(stepped, 42.0)])
        stored = wait_until(
            lambda: fleet.central.raw_samples(f'{SERIES}{{node="{BAD}"}}', "3h"), timeout=60, what="the stepped reading"
        )
        assert stored == [(stepped / 1000, 42.0)]
        good_nodes_lose_nothing(fleet)
