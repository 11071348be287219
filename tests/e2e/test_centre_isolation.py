"""One node's refused samples cost no other node anything, at the centre as the manifests ship it (vmauth ->
central vmagent with its queue per node -> Prometheus 3.5): one node's token sends a sample a second that
Prometheus refuses (two days old, an hour ahead, a duplicate timestamp with another value) beside two honest
nodes writing through their own vmagents. Prometheus refuses a whole request for one such sample; before the
queue per node, the central vmagent's shared blocks took the honest nodes' readings down with it (issue 18:
19/61 and 25/61 lost). The test counts each honest node's readings taken and stored, and finds the culprit
named by the central vmagent's per-node metric and by EdgeCentreRefusesNodeSamples; a forged copy of the
centre's own too-old counter sent meanwhile does not switch EdgeCentreRejectsLateSamples off."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.clock_fleet import DAY_MS, HOUR_MS, Fleet, now_ms
from tests.e2e.stack import metric_sum
from tests.e2e.test_security import bearer, post
from tests.helpers import COMPONENTS_ENV, processes, wait_until

pytestmark = pytest.mark.e2e

HONEST = ("honest-1", "honest-2")
CULPRIT = "culprit"
ROUNDS = 60  # one round a second: the culprit's sample and each honest node's reading


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make components` first (make test does)")
    with processes() as procs:
        fleet = Fleet(procs, tmp_path_factory.mktemp("isolation"), nodes=[*HONEST, CULPRIT], enforce_node=True)
        fleet.start()
        yield fleet


def culprit_writes(fleet: Fleet, line: str) -> None:
    """A line of the import format, with the culprit's own token, straight to vmauth (root on that node)."""
    ingest, pki = fleet.centre.ingest, fleet.centre.pki
    status = post(
        f"{ingest.url}/api/v1/import/prometheus",
        line.encode() + b"\n",
        context=pki.context(),
        headers=bearer(pki.token(CULPRIT)),
    )
    assert status == 204, status  # the central vmagent takes it; Prometheus refuses it later


def central_queue_dropped(fleet: Fleet, node: str) -> float:
    """Blocks the central vmagent dropped from `node`'s queue on a refusal (its URL names the node)."""
    metrics = fleet.centre.ingest.vmagent_metrics()
    return sum(
        value
        for series, value in metrics.items()
        if series.startswith("vmagent_remotewrite_packets_dropped_total{") and f"?node={node}&" in series
    )


def run_rounds(fleet: Fleet, bad_line: Callable[[int], str], each_round: Callable[[int], None] | None = None) -> None:
    """ROUNDS rounds a second apart: a reading from each honest node (through its vmagent), a bad line from
    the culprit, then `each_round(n)`."""
    start = time.monotonic()
    for number in range(ROUNDS):
        fleet.push_current(HONEST)
        culprit_writes(fleet, bad_line(number))
        if each_round is not None:
            each_round(number)
        time.sleep(max(0.0, start + number + 1 - time.monotonic()))


def honest_nodes_lose_nothing(fleet: Fleet) -> None:
    """Every reading an honest node's vmagent took is stored at the centre; its queue there dropped nothing.
    Counted over the module (the cases run in order on one fleet), printed for this case."""
    lost = {}
    for name in HONEST:
        with contextlib.suppress(TimeoutError):  # the count below says what is missing
            wait_until(lambda name=name: fleet.stored(name) >= fleet.sent[name], timeout=60, what=f"{name}'s readings")
        lost[name] = fleet.sent[name] - fleet.stored(name)
        print(f"{name}: {ROUNDS} readings taken in this case, {fleet.sent[name]} in all, {lost[name]} lost in all")
    assert lost == dict.fromkeys(HONEST, 0), f"honest readings lost (taken {fleet.sent}): {lost}"
    for name in HONEST:
        assert central_queue_dropped(fleet, name) == 0, name


def culprit_named(fleet: Fleet, before: float) -> None:
    """The central vmagent counts this case's refusals (above `before`) under the culprit's name, and the
    alert says who."""
    wait_until(
        lambda: central_queue_dropped(fleet, CULPRIT) > before, timeout=60, what="the culprit's refused blocks"
    )
    wait_until(
        lambda: fleet.firing("EdgeCentreRefusesNodeSamples") == {CULPRIT},
        timeout=60,
        what="EdgeCentreRefusesNodeSamples naming the culprit",
    )
    print(f"{CULPRIT}: {central_queue_dropped(fleet, CULPRIT) - before:.0f} blocks refused, counted under its name")


def late_samples_alert_firing(fleet: Fleet) -> bool:
    return "" in fleet.firing("EdgeCentreRejectsLateSamples")


class TestOneNodesRefusedSamples:
    def test_two_days_old_costs_the_others_nothing_and_a_forged_counter_changes_no_alert(self, fleet: Fleet) -> None:
        """Two days old (beyond the 1 d out-of-order window): refused as too old. Once
        EdgeCentreRejectsLateSamples fires, an honest node's token also sends a forged, negative
        prometheus_tsdb_too_old_samples_total with the centre's own job and instance (which would cancel
        the real increase in the alert's sum): the alert stays on."""
        instance = f"127.0.0.1:{fleet.central.port}"
        forged_from = HONEST[1]
        states: list[bool] = []

        def forge(number: int) -> None:
            if not states and not late_samples_alert_firing(fleet):
                return  # not firing yet: nothing to switch off
            line = f'prometheus_tsdb_too_old_samples_total{{job="prometheus",instance="{instance}",type="float"}} -1e9'
            status = post(
                f"{fleet.centre.ingest.url}/api/v1/import/prometheus",
                line.encode() + b"\n",
                context=fleet.centre.pki.context(),
                headers=bearer(fleet.centre.pki.token(forged_from)),
            )
            assert status == 204
            states.append(late_samples_alert_firing(fleet))

        before = central_queue_dropped(fleet, CULPRIT)
        run_rounds(fleet, lambda n: f"e2e_attack_old {n} {now_ms() - 2 * DAY_MS}", forge)
        honest_nodes_lose_nothing(fleet)
        culprit_named(fleet, before)
        assert len(states) >= 20, "EdgeCentreRejectsLateSamples fired too late to test the forgery"
        # The first few checks run before the first forged sample can have been evaluated.
        assert all(states[5:]), f"EdgeCentreRejectsLateSamples went off after the forgery: {states}"
        forged = fleet.central.query('prometheus_tsdb_too_old_samples_total{node!=""}')
        assert forged and all(
            s["metric"].get("exported_job") == "prometheus" and "job" not in s["metric"] for s in forged
        ), forged
        print(f"forged counter from {forged_from}: stored as {forged[0]['metric']}; alert on in {len(states)} checks")

    def test_an_hour_ahead_costs_the_others_nothing(self, fleet: Fleet) -> None:
        """An hour ahead (Prometheus refuses more than 10 minutes ahead, before its TSDB)."""
        before = central_queue_dropped(fleet, CULPRIT)
        run_rounds(fleet, lambda n: f"e2e_attack_ahead {n} {now_ms() + HOUR_MS}")
        honest_nodes_lose_nothing(fleet)
        culprit_named(fleet, before)

    def test_a_duplicate_timestamp_costs_the_others_nothing(self, fleet: Fleet) -> None:
        """The same timestamp again with another value: the first is stored, every later one refused."""
        stamp, before = now_ms(), central_queue_dropped(fleet, CULPRIT)
        run_rounds(fleet, lambda n: f"e2e_attack_duplicate {n} {stamp}")
        honest_nodes_lose_nothing(fleet)
        culprit_named(fleet, before)
        assert metric_sum(fleet.central.metrics(), "prometheus_http_requests_total", code="400") > 0

