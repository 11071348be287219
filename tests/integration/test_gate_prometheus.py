"""`edge-metrics gate` in front of the real Prometheus 3.5 (the centre's store, from .cache/components): what a
node gets answered, what Prometheus holds afterwards, and what the gate's /metrics counts under the node's name.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_metrics.remotewrite import encode_write_request, snappy_encode
from testbed.exposition import metric_sum, parse_metrics
from testbed.paths import EDGE_METRICS
from tests.helpers import COMPONENTS_ENV, Processes, components, free_port, processes, wait_until

HOUR_MS = 3600_000


@dataclass
class Centre:
    procs: Processes
    workdir: Path
    prometheus_port: int
    gate_port: int
    prometheus: object = None
    gate: object = None

    @property
    def store_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def start_prometheus(self) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text("global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 1d\n")
        self.prometheus = self.procs.start(
            [components()["PROMETHEUS_BIN"], f"--config.file={config}", f"--storage.tsdb.path={self.workdir}/data",
             f"--web.listen-address=127.0.0.1:{self.prometheus_port}", "--web.enable-remote-write-receiver"],
            log=self.workdir / "prometheus.log",
        )
        wait_until(lambda: get(f"{self.store_url}/-/ready"), timeout=60, what="Prometheus ready")

    def start_gate(self, *options: str) -> None:
        self.gate = self.procs.start(
            [EDGE_METRICS, "gate", f"--listen=127.0.0.1:{self.gate_port}",
             f"--store-url={self.store_url}/api/v1/write", *options],
            log=self.workdir / "gate.log",
        )
        wait_until(lambda: get(f"http://127.0.0.1:{self.gate_port}/health"), timeout=30, what="gate /health")

    def write(self, node: str, series: list[tuple[tuple[tuple[str, str], ...], list[tuple[int, float]]]],
              *, body: bytes | None = None) -> tuple[int, dict[str, str]]:
        data = body if body is not None else snappy_encode(encode_write_request(series))
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gate_port}/node/{node}/test/api/v1/write", data=data, method="POST",
            headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers)

    def query(self, expr: str) -> list[dict[str, object]]:
        url = f"{self.store_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        result: list[dict[str, object]] = json.loads(get(url))["data"]["result"]
        return result

    def gate_metrics(self) -> dict[str, float]:
        return parse_metrics(get(f"http://127.0.0.1:{self.gate_port}/metrics").decode())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make components` first (make test does)")
    with processes() as procs:
        yield Centre(procs, tmp_path, free_port(), free_port())


def now_ms() -> int:
    return int(time.time() * 1000)


def labels(name: str, **more: str) -> tuple[tuple[str, str], ...]:
    return (("__name__", name), *more.items())


class TestGateBeforePrometheus:
    def test_refused_samples_cost_only_themselves(self, centre: Centre) -> None:
        """One request holding good samples beside a 2 d old one, one an hour ahead and a duplicate timestamp
        with another value: the node gets 204, Prometheus holds every good sample, and the gate counts each
        bad one under the node with its reason (the first two before the store, the duplicate by bisecting the
        store's 400)."""
        centre.start_prometheus()
        centre.start_gate()
        stamp = now_ms() - 60_000
        assert centre.write("a", [(labels("dup_probe"), [(stamp, 1.0)])])[0] == 204
        good = [(labels("good_probe", index=str(i), node="forged", cluster="forged"), [(stamp + i, float(i))])
                for i in range(20)]
        bad = [
            (labels("old_probe"), [(now_ms() - 2 * 24 * HOUR_MS, 1.0)]),
            (labels("ahead_probe"), [(now_ms() + HOUR_MS, 1.0)]),
            (labels("dup_probe"), [(stamp, 2.0)]),
        ]
        status, _ = centre.write("a", good[:10] + bad + good[10:])
        assert status == 204
        stored = centre.query("good_probe")
        assert len(stored) == 20
        assert {(s["metric"]["node"], s["metric"]["cluster"]) for s in stored} == {("a", "test")}  # type: ignore[index]
        assert [s["value"][1] for s in centre.query("dup_probe")] == ["1"]  # type: ignore[index]
        metrics = centre.gate_metrics()
        refused = {reason: metric_sum(metrics, "edge_gate_samples_refused_total", node="a", reason=reason)
                   for reason in ("too_old", "too_far_ahead", "duplicate")}
        assert refused == {"too_old": 1, "too_far_ahead": 1, "duplicate": 1}, refused
        assert metric_sum(metrics, "edge_gate_samples_stored_total", node="a") == 21

    def test_a_centre_job_stays_the_nodes(self, centre: Centre) -> None:
        """A node's series claiming the centre's `prometheus` job is stored with exported_job only."""
        centre.start_prometheus()
        centre.start_gate()
        assert centre.write("a", [(labels("forged_probe", job="prometheus"), [(now_ms(), -1e9)])])[0] == 204
        (stored,) = centre.query("forged_probe")
        assert stored["metric"] == {"__name__": "forged_probe", "exported_job": "prometheus", "node": "a",
                                    "cluster": "test"}

    def test_store_down_is_503_and_nothing_is_acknowledged(self, centre: Centre) -> None:
        """No store: the node gets 503 (its vmagent keeps the block); once the store is up the same request is 204
        and stored."""
        centre.start_gate()
        request = [(labels("retry_probe"), [(now_ms(), 1.0)])]
        assert centre.write("a", request)[0] == 503
        centre.start_prometheus()
        assert centre.write("a", request)[0] == 204
        assert len(centre.query("retry_probe")) == 1

    def test_limits_refuse_that_node_only(self, centre: Centre, tmp_path: Path) -> None:
        """A node over its request size gets 413, over its samples per second 429 with Retry-After, over its
        series the extra series dropped; another node's request beside it is stored whole."""
        limits = tmp_path / "limits.conf"
        limits.write_text("bomber series=5 rate=60 bytes=4096\n")
        centre.start_prometheus()
        centre.start_gate(f"--limits={limits}")
        big = [(labels("size_probe", pad="x" * 5000), [(now_ms(), 1.0)])]
        assert centre.write("bomber", big)[0] == 413
        bomb = [(labels("bomb_probe", index=str(i)), [(now_ms(), 1.0)]) for i in range(50)]
        assert centre.write("bomber", bomb)[0] == 204
        status, headers = centre.write("bomber", bomb)
        assert status == 429 and int(headers["Retry-After"]) >= 1
        honest = [(labels("honest_probe", index=str(i)), [(now_ms(), 1.0)]) for i in range(50)]
        assert centre.write("honest", honest)[0] == 204
        assert len(centre.query("honest_probe")) == 50
        assert len(centre.query("bomb_probe")) == 5
        metrics = centre.gate_metrics()
        assert metric_sum(metrics, "edge_gate_samples_refused_total", node="bomber", reason="series_limit") == 45
        assert metric_sum(metrics, "edge_gate_requests_refused_total", node="bomber", reason="rate_limit") == 1
        assert metric_sum(metrics, "edge_gate_requests_refused_total", node="bomber", reason="too_large") == 1
        assert metric_sum(metrics, "edge_gate_samples_refused_total", node="honest") == 0

    def test_malformed_body_is_400_and_the_gate_keeps_serving(self, centre: Centre) -> None:
        centre.start_prometheus()
        centre.start_gate()
        assert centre.write("a", [], body=b"\x05not snappy at all")[0] == 400
        assert centre.write("a", [(labels("after_probe"), [(now_ms(), 1.0)])])[0] == 204
        assert metric_sum(centre.gate_metrics(), "edge_gate_requests_refused_total", node="a", reason="malformed") == 1
