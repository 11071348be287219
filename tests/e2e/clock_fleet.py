"""Several edge nodes writing to one centre, with readings injected at chosen timestamps: the harness of
the centre's clock-safety tests. Each node is a real vmagent from deploy/vmagent (its own
-remoteWrite.label=node=NAME and credentials, its disk queue, its /metrics pulled by the centre); a reading enters
through vmagent's /api/v1/import/prometheus with an explicit millisecond timestamp, as the collector's
push mode sends it, so a wrong edge clock is played by choosing the timestamp."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from testbed.centre import Centre
from testbed.exposition import metric_sum
from tests.helpers import COMPONENTS_ENV, Processes, wait_until

SERIES = "e2e_reading"
GOOD = ("good-1", "good-2", "good-3")
BAD = "bad-clock"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def now_ms() -> int:
    return int(time.time() * 1000)


class Fleet:
    """The centre and one vmagent per node name; nothing runs until start()."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        nodes: Sequence[str],
        compat: bool = False,
        prometheus_args: Sequence[str] = (),
        enforce_node: bool = True,
    ) -> None:
        """`enforce_node` (the default): the centre as the manifests ship it, with the gate; False: vmauth straight
        to Prometheus."""
        self.centre = Centre(
            procs, workdir, nodes=nodes, prometheus_args=prometheus_args, compat=compat, enforce_node=enforce_node
        )
        self.central = self.centre.central
        self.nodes = {name: self.centre.node(name, workdir / name, scrape_interval="1s") for name in nodes}
        self.sent: dict[str, int] = dict.fromkeys(nodes, 0)

    def start(self) -> None:
        """The centre and every vmagent, until the centre scrapes each vmagent."""
        self.centre.start()
        for node in self.nodes.values():
            node.start_vmagent()
        wait_until(
            lambda: len(self.central.query('up{job="vmagent"} == 1')) == len(self.nodes),
            timeout=60,
            what="the centre scraping every vmagent",
        )

    def push(self, name: str, samples: Iterable[tuple[int, float]]) -> None:
        """Readings of `name` at the given millisecond timestamps, through its vmagent's import API."""
        lines = [f"{SERIES} {value} {stamp}" for stamp, value in samples]
        request = urllib.request.Request(
            f"http://{self.nodes[name].vmagent_address}/api/v1/import/prometheus",
            data="\n".join(lines).encode() + b"\n",
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204, response.status
        self.sent[name] += len(lines)

    def push_current(self, names: Iterable[str]) -> None:
        """One correct reading from each of `names`: value = its running count, time = now."""
        stamp = now_ms()
        for name in names:
            self.push(name, [(stamp, float(self.sent[name] + 1))])

    def stored(self, name: str, *, at: float | None = None, window: str = "1h") -> int:
        """How many of `name`'s readings the centre holds in `window` before `at` (default now)."""
        params = {"query": f'count_over_time({SERIES}{{node="{name}"}}[{window}])'}
        if at is not None:
            params["time"] = f"{at:.3f}"
        result = self.central.api("query", **params)["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def vmagent_metric(self, name: str, family: str, **labels: str) -> float:
        return metric_sum(self.nodes[name].vmagent_metrics(), family, **labels)

    def firing(self, alert: str) -> set[str]:
        """The `node` labels (or "" for the centre's own alerts) of `alert` firing at the centre."""
        return {a["labels"].get("node", "") for a in self.central.alerts() if a["labels"]["alertname"] == alert}


def start_fleet(
    procs: Processes,
    workdir: Path,
    *,
    compat: bool = False,
    fast_alerts: Sequence[str] = (),
    prometheus_args: Sequence[str] = (),
) -> Fleet:
    """Three good nodes and a bad one on Prometheus 3.5 + vmagent 1.145 (or the compat pair); the alerts
    in `fast_alerts` get `for: 1s` in the test copy of the rules (their expressions stay production's)."""
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make components` first (make test does)")
    # direct to Prometheus: these tests are its own refusals to vmagent and their alerts (gate: test_centre_isolation)
    fleet = Fleet(
        procs, workdir, nodes=[*GOOD, BAD], prometheus_args=prometheus_args, compat=compat, enforce_node=False
    )
    for alert in fast_alerts:
        fleet.central.set_rule_durations(alert, **{"for": "1s"})
    fleet.start()
    return fleet


def rounds(fleet: Fleet, count: int, bad: Mapping[int, int] | None = None) -> None:
    """`count` rounds of one correct reading from each good node; in round n (a key of `bad`), also a
    reading of the bad node stamped `bad[n]` ms away from now."""
    for number in range(count):
        fleet.push_current(GOOD)
        if bad and number in bad:
            fleet.push(BAD, [(now_ms() + bad[number], 1.0)])
        # Pacing, not waiting for a condition: the rounds span several of vmagent's 1 s flushes, so the
        # bad node's blocks reach the centre between the good nodes' blocks, as in a running fleet.
        time.sleep(0.25)
