"""The centre as the manifests ship it (vmauth -> the gate -> Prometheus 3.5, deploy/vmauth/*.flags and make-certs'
credentials and limits), attacked from one node's token beside two honest nodes writing through their own
vmagents (issue 18):

- a sample a second that Prometheus refuses (two days old, an hour ahead, a duplicate timestamp with another
  value), each beside a good one in the same request: before the gate, the central vmagent's shared blocks took the
  honest nodes' readings down with it (19/61 and 25/61 lost);
- a series bomb over the node's series limit;
- SIGKILL of the gate, vmauth, Prometheus or all three (the pod) while a node drains its backlog: the central
  vmagent lost acknowledged readings that way (151/156 arrived), the synchronous gate loses none.

Each case counts the honest nodes' readings taken and stored, the culprit's good and bad samples, and names what
makes the fault visible: the gate's per-node counters and the alert naming the culprit."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_metrics.remotewrite import encode_write_request, snappy_encode
from testbed.exposition import metric_sum
from tests.e2e.clock_fleet import DAY_MS, HOUR_MS, Fleet, now_ms
from tests.e2e.test_security import bearer, post
from tests.helpers import COMPONENTS_ENV, processes, wait_until

pytestmark = pytest.mark.e2e

HONEST = ("honest-1", "honest-2")
CULPRIT = "culprit"
BOMBER = "bomber"
ROUNDS = 30  # one round a second: each honest node's reading, the culprit's good and bad sample
BOMBER_SERIES_LIMIT = 2000  # the bomber's line in gate-limits.conf; the fleet default is far above
BOMB_SERIES = 40_000  # a scaled-down bomb: the 4 M case is bench/gate_bomb.py

Series = list[tuple[tuple[tuple[str, str], ...], list[tuple[int, float]]]]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make components` first (make test does)")
    with processes() as procs:
        fleet = Fleet(procs, tmp_path_factory.mktemp("isolation"), nodes=[*HONEST, CULPRIT, BOMBER], enforce_node=True)
        limits = fleet.centre.pki.gate_limits
        bomber_line = f"\n{BOMBER} series={BOMBER_SERIES_LIMIT} rate=1000000\n"
        limits.write_text(limits.read_text().replace(f"\n{BOMBER}\n", bomber_line))
        assert f"{BOMBER} series=" in limits.read_text()
        fleet.central.set_rule_durations("EdgeNodeOverLimits", **{"for": "1s"})
        fleet.start()
        yield fleet


def write_as(fleet: Fleet, node: str, series: Series) -> int:
    """Remote write with `node`'s own token straight to vmauth (root on that node)."""
    ingest, pki = fleet.centre.ingest, fleet.centre.pki
    return post(
        ingest.write_url,
        snappy_encode(encode_write_request(series)),
        context=pki.context(),
        headers={**bearer(pki.token(node)), "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
    )


def gate_count(fleet: Fleet, family: str, **labels: str) -> float:
    return metric_sum(fleet.centre.ingest.gate_metrics(), family, **labels)


def stored(fleet: Fleet, expr: str) -> int:
    result = fleet.central.query(f"count(count_over_time({expr}[1h]))")
    return int(float(result[0]["value"][1])) if result else 0


def samples_stored(fleet: Fleet, expr: str) -> int:
    result = fleet.central.query(f"sum(count_over_time({expr}[1h]))")
    return int(float(result[0]["value"][1])) if result else 0


def honest_nodes_lose_nothing(fleet: Fleet) -> None:
    """Every reading an honest node's vmagent took is stored at the centre; the gate refused none of theirs.
    Counted over the module (the cases run in order on one fleet)."""
    lost = {}
    for name in HONEST:
        with contextlib.suppress(TimeoutError):  # the count below says what is missing
            wait_until(lambda name=name: fleet.stored(name) >= fleet.sent[name], timeout=90, what=f"{name}'s readings")
        lost[name] = fleet.sent[name] - fleet.stored(name)
        print(f"{name}: {fleet.sent[name]} readings taken in all, {fleet.stored(name)} stored, {lost[name]} lost")
    assert lost == dict.fromkeys(HONEST, 0), f"honest readings lost (taken {fleet.sent}): {lost}"
    for name in HONEST:
        assert gate_count(fleet, "edge_gate_samples_refused_total", node=name) == 0, name


class TestOneNodesRefusedSamples:
    @pytest.mark.parametrize(
        ("case", "reason", "stamp"),
        [
            ("old", "too_old", lambda n, first: now_ms() - 2 * DAY_MS),
            ("ahead", "too_far_ahead", lambda n, first: now_ms() + HOUR_MS),
            ("duplicate", "duplicate", lambda n, first: first),
        ],
    )
    def test_costs_the_others_nothing_and_the_culprit_only_the_bad_samples(
        self, fleet: Fleet, case: str, reason: str, stamp: Callable[[int, int], int]
    ) -> None:
        """ROUNDS rounds a second apart: each honest node's reading through its vmagent, and one request from
        the culprit's token holding a good sample beside a bad one (2 d old: beyond the 1 d out-of-order
        window; +1 h: beyond Prometheus' 10 minutes; the first round's timestamp again with another value).
        The honest nodes lose nothing; the culprit loses exactly its bad samples, counted under its name with
        the reason, and EdgeCentreRefusesNodeSamples names it."""
        bad_name, good_name = f"e2e_attack_{case}", f"e2e_attack_{case}_good"
        before = gate_count(fleet, "edge_gate_samples_refused_total", node=CULPRIT, reason=reason)
        first = now_ms()
        start = time.monotonic()
        for number in range(ROUNDS):
            fleet.push_current(HONEST)
            request = [
                ((("__name__", good_name),), [(now_ms(), float(number))]),
                ((("__name__", bad_name),), [(stamp(number, first), float(number))]),
            ]
            assert write_as(fleet, CULPRIT, request) == 204
            time.sleep(max(0.0, start + number + 1 - time.monotonic()))
        honest_nodes_lose_nothing(fleet)
        wait_until(lambda: samples_stored(fleet, good_name) == ROUNDS, timeout=30, what="the culprit's good samples")
        refused = gate_count(fleet, "edge_gate_samples_refused_total", node=CULPRIT, reason=reason) - before
        expected_bad_stored = 1 if case == "duplicate" else 0  # the first round's sample is the original
        assert samples_stored(fleet, bad_name) == expected_bad_stored
        assert refused == ROUNDS - expected_bad_stored, refused
        wait_until(
            lambda: CULPRIT in fleet.firing("EdgeCentreRefusesNodeSamples"),
            timeout=60,
            what="EdgeCentreRefusesNodeSamples naming the culprit",
        )
        assert fleet.firing("EdgeCentreRefusesNodeSamples") == {CULPRIT}
        print(f"{case}: culprit {ROUNDS} good stored, {refused:.0f} bad refused as {reason}, named by the alert")

    def test_a_forged_centre_counter_changes_no_alert(self, fleet: Fleet) -> None:
        """A rising prometheus_tsdb_too_old_samples_total with the centre's own job and instance, from an honest
        node's token, is stored as exported_job only and does not raise EdgeCentreRejectsLateSamples (the gate
        dropped the real too-old samples before Prometheus, so Prometheus' own counter stayed 0)."""
        instance = f"127.0.0.1:{fleet.central.port}"
        labels = (("__name__", "prometheus_tsdb_too_old_samples_total"), ("job", "prometheus"),
                  ("instance", instance), ("type", "float"))  # fmt: skip
        states = []
        for number in range(10):
            assert write_as(fleet, HONEST[1], [(labels, [(now_ms(), 1e6 * number)])]) == 204
            time.sleep(1)
            states.append("" in fleet.firing("EdgeCentreRejectsLateSamples"))
        assert not any(states), states
        forged = fleet.central.query('prometheus_tsdb_too_old_samples_total{node!=""}')
        assert forged and all(
            s["metric"].get("exported_job") == "prometheus" and "job" not in s["metric"] for s in forged
        ), forged


class TestSeriesBomb:
    def test_refused_for_that_node_only_others_on_time_gate_memory_bounded(self, fleet: Fleet) -> None:
        """The bomber's token sends BOMB_SERIES new series, far over its limit: the centre stores at most its
        limit, the rest is counted as series_limit under its name and EdgeNodeOverLimits names it; the honest
        nodes' readings keep arriving within seconds and the gate's memory stays bounded."""
        assert fleet.centre.ingest.gate is not None
        pid = fleet.centre.ingest.gate.pid
        rss_before = rss_mib(pid)
        lags: list[float] = []
        batch = 2000
        for offset in range(0, BOMB_SERIES, batch):
            ids = range(offset, offset + batch)
            bomb: Series = [((("__name__", "e2e_bomb"), ("id", str(i))), [(now_ms(), 1.0)]) for i in ids]
            status = write_as(fleet, BOMBER, bomb)
            assert status == 204, status
            fleet.push_current(HONEST)
            sent_at, wanted = time.time(), dict(fleet.sent)
            wait_until(
                lambda wanted=wanted: all(fleet.stored(n) >= wanted[n] for n in HONEST),
                timeout=60,
                what="honest readings",
            )
            lags.append(time.time() - sent_at)
        honest_nodes_lose_nothing(fleet)
        series = stored(fleet, "e2e_bomb")
        refused = gate_count(fleet, "edge_gate_samples_refused_total", node=BOMBER, reason="series_limit")
        rss_after = rss_mib(pid)
        print(f"bomb of {BOMB_SERIES} series: {series} stored, {refused:.0f} refused as series_limit; honest lag "
              f"max {max(lags):.1f} s; gate RSS {rss_before:.0f} -> {rss_after:.0f} MiB")
        assert series <= BOMBER_SERIES_LIMIT
        # The bomber's own vmagent's series count towards its limit too.
        assert series + refused == BOMB_SERIES, (series, refused)
        assert rss_after < 200, rss_after
        wait_until(lambda: BOMBER in fleet.firing("EdgeNodeOverLimits"), timeout=60, what="EdgeNodeOverLimits")
        assert fleet.firing("EdgeNodeOverLimits") == {BOMBER}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class TestCrashMidDrain:
    @pytest.mark.parametrize("victim", ["gate", "vmauth", "prometheus", "pod"])
    def test_sigkill_loses_nothing_acknowledged(self, fleet: Fleet, victim: str) -> None:
        """An honest node builds a backlog while the gate is away, then drains it (its vmagent's rate limit makes
        that take seconds); the victim (one process, or the whole pod) is SIGKILLed mid-drain and started again.
        Every reading taken is stored; the only sign is the node's retries."""
        node_name = HONEST[0]
        node, ingest = fleet.nodes[node_name], fleet.centre.ingest
        wait_until(lambda: fleet.stored(node_name) >= fleet.sent[node_name], timeout=60, what="earlier readings")
        before = fleet.stored(node_name)
        ingest.stop_gate(signal.SIGKILL)
        stamp = now_ms()
        for _ in range(200):  # readings a hundred at a time, each with a millisecond of its own
            stamp = max(stamp + 100, now_ms())
            fleet.push(node_name, [(stamp + i, float(fleet.sent[node_name] + i + 1)) for i in range(100)])
        wait_until(lambda: node.pending_bytes() > 0, timeout=30, what="a backlog in the node's queue")
        taken = fleet.sent[node_name]
        ingest.start_gate()
        wait_until(lambda: before < fleet.stored(node_name) < taken, timeout=60, interval=0.02, what="the drain")
        at_kill, pending_at_kill = fleet.stored(node_name), node.pending_bytes()
        if victim == "gate":
            ingest.stop_gate(signal.SIGKILL)
            ingest.start_gate()
        elif victim == "vmauth":
            assert ingest.vmauth is not None
            fleet.centre.procs.stop(ingest.vmauth, signal.SIGKILL)
            ingest.vmauth = None
            ingest.start()
        elif victim == "prometheus":
            fleet.central.stop(signal.SIGKILL)
            fleet.central.start()
        else:  # the whole centre pod: every process of it at once, then started again as the kubelet would
            assert ingest.vmauth is not None
            ingest.stop_gate(signal.SIGKILL)
            fleet.centre.procs.stop(ingest.vmauth, signal.SIGKILL)
            ingest.vmauth = None
            fleet.central.stop(signal.SIGKILL)
            fleet.central.start()
            ingest.start()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: fleet.stored(node_name) >= taken, timeout=180, what="every reading taken")
        final = fleet.stored(node_name)
        retries = fleet.vmagent_metric(node_name, "vmagent_remotewrite_retries_count_total")
        print(f"SIGKILL of {victim} mid-drain ({at_kill}/{taken} stored, {pending_at_kill:.0f} bytes pending): "
              f"{taken} taken, {final} stored, {taken - final} lost, {max(0, final - taken)} twice; "
              f"node retries {retries:.0f}")
        assert final == taken, f"{taken - final} acknowledged readings lost after SIGKILL of {victim}"
