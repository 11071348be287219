"""The gate's parts in-process: the remote-write codec, the per-node limits, the relabeling, the bisect of a store's
refusal, and a request through Gate.write with a fake store and clock."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

from edge_metrics.gate import Gate, Settings, admit, relabel
from edge_metrics.gatelimits import Limits, NodeState, parse_limits
from edge_metrics.gatestore import StoreUnavailable, encode, reason, store
from edge_metrics.log import Logger
from edge_metrics.remotewrite import (
    DecodeError,
    Series,
    decode_write_request,
    encode_write_request,
    snappy_decode,
    snappy_encode,
)

NOW = 1_800_000_000.0
DEFAULT = Limits(series_per_hour=100, samples_per_second=1000.0, request_bytes=1 << 20)
SETTINGS = Settings(default=DEFAULT, limits_file=None, max_age_seconds=86400.0, max_ahead_seconds=600.0,
                    centre_jobs=frozenset({"prometheus", "vmauth", "gate", "alertmanager"}), max_concurrent_requests=2)


def labels(name: str, **more: str) -> tuple[tuple[str, str], ...]:
    return (("__name__", name), *more.items())


class TestCodec:
    def test_round_trip(self) -> None:
        """Labels (UTF-8 included), negative and large timestamps, NaN and infinities survive encode + decode."""
        series = [
            (labels("a", x="é"), [(1, 1.5), (-5, -0.0), (2**62, math.inf)]),
            (labels("b"), [(1_700_000_000_000, math.nan)]),
        ]
        decoded = decode_write_request(snappy_decode(snappy_encode(encode_write_request(series)), 1 << 20))
        assert [s.labels for s in decoded.series] == [s[0] for s in series]
        assert decoded.series[0].points == series[0][1]
        assert math.isnan(decoded.series[1].points[0][1])

    def test_snappy_copies(self) -> None:
        """Copy tags, overlapping ones included (what real encoders write), decode to the repeated bytes."""
        # literal "ab", then copy length 6 offset 2 (1-byte-offset form), then copy length 3 offset 8 (2-byte form).
        data = bytes([11, 1 << 2, ord("a"), ord("b"), 1 | ((6 - 4) << 2), 2, 2 | ((3 - 1) << 2), 8, 0])
        assert snappy_decode(data, 100) == b"abababababa"

    def test_long_literal(self) -> None:
        payload = bytes(range(256)) * 300
        assert snappy_decode(snappy_encode(payload), len(payload)) == payload

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            (b"", "snappy length at byte 0: cut off"),
            (b"\xff\xff\xff\xff\x7f", "more than the limit"),
            (bytes([5, 8 << 2]) + b"abc", "runs past the end"),
            (bytes([4, 1 | (0 << 2), 9]), "copy offset 9 outside"),
            (bytes([3, 1 << 2]) + b"ab", "decoded 2 bytes, the header says 3"),
        ],
    )
    def test_malformed_snappy(self, body: bytes, words: str) -> None:
        """A bad block is a DecodeError that says what is wrong (never an IndexError or a large allocation)."""
        with pytest.raises(DecodeError, match=words):
            snappy_decode(body, 1000)

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            (b"\x0a\x05abc", "5 bytes, more than is left"),
            (b"\x0a\x02\x0a\x7f", "127 bytes, more than is left"),
            (b"\x0f", "wire type 7"),
            (b"\x0a\x80", "cut off"),
            (b"\x0a\x05\x0a\x03\x0a\x01\xff", "Label at byte 4: not UTF-8"),
        ],
    )
    def test_malformed_protobuf(self, body: bytes, words: str) -> None:
        with pytest.raises(DecodeError, match=words):
            decode_write_request(body)

    def test_label_caches_are_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The caches of decoded and encoded labels speed up the series a node repeats; ever new series (a bomb)
        empty them when full instead of growing them, and every request still decodes to what was sent."""
        from edge_metrics import remotewrite

        monkeypatch.setattr(remotewrite, "_CACHE_ENTRIES", 4)
        for i in range(10):
            series = [(labels("m", i=str(i)), [(i, float(i))])]
            assert decode_write_request(encode_write_request(series)).series == [Series(*series[0])]
            assert len(remotewrite._decoded_labels) <= 4 and len(remotewrite._encoded_labels) <= 4

    def test_exemplars_and_histograms_are_counted_not_kept(self) -> None:
        series = encode_write_request([(labels("a"), [(1, 1.0)])])
        inner = series[2:]
        extra = inner + b"\x1a\x00" + b"\x22\x00"  # an empty exemplar and an empty histogram
        request = decode_write_request(b"\x0a" + bytes([len(extra)]) + extra)
        assert request.unsupported == 2 and request.series == [Series(labels("a"), [(1, 1.0)])]


class TestLimitsFile:
    def test_overrides_and_defaults(self, tmp_path: Path) -> None:
        text = "# comment\nbig series=5000 rate=50.5  # a bigger board\nsmall bytes=1024\n\n"
        parsed = parse_limits(text, tmp_path / "limits.conf", DEFAULT)
        assert parsed.nodes == {"big": Limits(5000, 50.5, DEFAULT.request_bytes), "small": Limits(100, 1000.0, 1024)}
        assert parsed.problems == ()

    @pytest.mark.parametrize(
        ("line", "words"),
        [("n series=x", "'series=x': not a number"), ("n speed=3", "expected series=N"), ("n rate=0", "more than 0")],
    )
    def test_bad_line_names_file_line_and_reason(self, tmp_path: Path, line: str, words: str) -> None:
        """A bad line is reported with its place and reason, and that node keeps the defaults."""
        parsed = parse_limits(f"ok rate=5\n{line}\n", tmp_path / "limits.conf", DEFAULT)
        assert parsed.nodes == {"ok": Limits(100, 5.0, DEFAULT.request_bytes)}
        (problem,) = parsed.problems
        assert problem.startswith(f"{tmp_path / 'limits.conf'}:2: ") and words in problem


class TestNodeState:
    def test_rate_admits_a_second_then_asks_to_wait(self) -> None:
        state = NodeState(Limits(10, 100.0, 1), NOW)
        assert state.take_rate(60, NOW) is None
        assert state.take_rate(60, NOW) == 1.0  # 40 left, 60 needed: 0.2 s, rounded up to Retry-After's second
        assert state.take_rate(60, NOW + 0.2) is None

    def test_a_request_larger_than_a_second_passes_once_the_bucket_is_full(self) -> None:
        state = NodeState(Limits(10, 100.0, 1), NOW)
        assert state.take_rate(500, NOW) is None
        assert state.take_rate(1, NOW + 1) == 4.0  # 400 in debt, +100 refilled: 4 s to a full bucket

    def test_series_bounded_per_hour(self) -> None:
        state = NodeState(Limits(2, 100.0, 1), NOW)
        assert state.admit_series([1, 2, 3, 1], NOW) == [True, True, False, True]
        assert state.series_count() == 2
        next_hour = NOW - NOW % 3600 + 3600
        assert state.admit_series([3], next_hour) == [True]


class TestRelabel:
    def test_node_and_cluster_are_the_credentials(self) -> None:
        sent = (("__name__", "m"), ("node", "b"), ("cluster", "x"), ("node", "c"), ("empty", ""), ("a", "1"))
        assert relabel(sent, node="a", cluster="prod", centre_jobs=SETTINGS.centre_jobs) == (
            ("__name__", "m"), ("a", "1"), ("cluster", "prod"), ("node", "a"))

    def test_a_centre_job_becomes_exported_job(self) -> None:
        sent = (("__name__", "m"), ("job", "prometheus"), ("exported_job", "mine"), ("instance", "x:1"))
        assert dict(relabel(sent, node="a", cluster="c", centre_jobs=SETTINGS.centre_jobs)) == {
            "__name__": "m", "exported_job": "prometheus", "instance": "x:1", "node": "a", "cluster": "c"}

    def test_a_node_job_is_kept(self) -> None:
        sent = (("__name__", "m"), ("job", "node-exporter"))
        assert dict(relabel(sent, node="a", cluster="c", centre_jobs=SETTINGS.centre_jobs))["job"] == "node-exporter"


class TestAdmit:
    def test_window_and_series_limit(self) -> None:
        state = NodeState(Limits(1, 1000.0, 1), NOW)
        now_ms = int(NOW * 1000)
        series = [
            Series(labels("kept"), [(now_ms, 1.0), (now_ms - 2 * 86400_000, 1.0), (now_ms + 3600_000, 1.0)]),
            Series(labels("over"), [(now_ms, 1.0), (now_ms, 2.0)]),
        ]
        admitted = admit(series, node="a", cluster="c", state=state, settings=SETTINGS, now=NOW,
                         newest_stored_ms=now_ms)
        assert [point for _, point in admitted.items] == [(now_ms, 1.0)]
        assert admitted.refused == {"too_old": 1, "too_far_ahead": 1, "series_limit": 2}

    def test_age_is_measured_from_the_newest_stored_sample(self) -> None:
        """Prometheus refuses as too old only what is older than its newest sample minus its window: the gate drops
        before it only that, from the newest sample the store acknowledged (never later than now), and nothing
        while it knows none."""
        now_ms, day_ms = int(NOW * 1000), 86400_000
        series = [Series(labels("m"), [(now_ms - 2 * day_ms, 1.0), (now_ms - day_ms - 1, 2.0)])]

        def kept(newest: int | None) -> list[float]:
            admitted = admit(series, node="a", cluster="c", state=NodeState(DEFAULT, NOW), settings=SETTINGS,
                             now=NOW, newest_stored_ms=newest)
            return [point[1] for _, point in admitted.items]

        assert kept(None) == [1.0, 2.0]
        assert kept(now_ms - day_ms) == [1.0, 2.0]
        assert kept(now_ms) == []
        assert kept(now_ms + 3600_000) == []  # a node's clock ahead moves the store's newest, not the bound past now


class FakeStore:
    """Refuses (400, Prometheus' words) any request holding a refused value; counts requests."""

    def __init__(self, refused: set[float], status: int = 400) -> None:
        self.refused = refused
        self.status = status
        self.stored: list[float] = []
        self.requests = 0

    def send(self, body: bytes) -> tuple[int, str]:
        self.requests += 1
        values = [p[1] for s in decode_write_request(body).series for p in s.points]
        if self.refused & set(values):
            return self.status, "duplicate sample for timestamp"
        self.stored += values
        return 204, ""


class PrometheusLikeStore:
    """Prometheus' accept window: a sample older than its newest minus the out-of-order window, or more than
    10 minutes ahead of its clock, is refused with a 400 for the whole request (nothing of it appended)."""

    def __init__(self, newest_ms: int, *, window_ms: int = 86400_000) -> None:
        self.newest_ms = newest_ms
        self.window_ms = window_ms
        self.stored: list[tuple[int, float]] = []

    def send(self, body: bytes) -> tuple[int, str]:
        points = [p for s in decode_write_request(body).series for p in s.points]
        if any(t < self.newest_ms - self.window_ms for t, _ in points):
            return 400, "too old sample"
        if any(t > NOW * 1000 + 600_000 for t, _ in points):
            return 400, "out of bounds: timestamp is too far in the future"
        self.stored += points
        self.newest_ms = max([self.newest_ms, *(t for t, _ in points)])
        return 204, ""


class TestBisect:
    def test_only_the_refused_samples_are_dropped(self) -> None:
        """Two bad samples among 100: everything else is stored once, in order; each bad one has its reason."""
        one = labels("m")
        items = [(one, (i, float(i))) for i in range(100)]
        fake = FakeStore({17.0, 80.0})
        refused = store(items, fake.send)
        assert [(point[1], why) for (_, point), why in refused] == [(17.0, "duplicate"), (80.0, "duplicate")]
        assert fake.stored == [float(i) for i in range(100) if i not in (17, 80)]
        assert fake.requests < 40  # a bisect, not a request per sample

    @pytest.mark.parametrize("status", [500, 503, 429, 401, 403, 404])
    def test_store_unavailable_raises(self, status: int) -> None:
        """Only a 400 refuses samples: a wrong password or path at the store must not drop every sample."""
        with pytest.raises(StoreUnavailable):
            store([(labels("m"), (1, 1.0))], FakeStore({1.0}, status).send)

    def test_runs_of_one_series_are_one_timeseries(self) -> None:
        one, two = labels("a"), labels("b")
        request = decode_write_request(encode([(one, (1, 1.0)), (one, (2, 2.0)), (two, (1, 3.0))]))
        assert [(s.labels, len(s.points)) for s in request.series] == [(one, 2), (two, 1)]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("out of bounds", "out_of_bounds"), ("too old sample", "too_old"), ("something else", "store_refused")],
    )
    def test_reason(self, text: str, expected: str) -> None:
        assert reason(text) == expected


class TestGateWrite:
    def gate(self, fake: FakeStore) -> Gate:
        return Gate(SETTINGS, send=fake.send, log=Logger(stream=io.StringIO()), clock=lambda: NOW)

    def body(self, *values: float) -> bytes:
        points = [(int(NOW * 1000) + i, v) for i, v in enumerate(values)]
        return snappy_encode(encode_write_request([(labels("m"), points)]))

    def test_counts_under_the_nodes_name(self) -> None:
        fake = FakeStore({2.0})
        gate = self.gate(fake)
        assert gate.write("culprit", "c", self.body(1.0, 2.0, 3.0)).status == 204
        text = gate.exposition()
        assert 'edge_gate_samples_received_total{cluster="c",node="culprit"} 3' in text
        assert 'edge_gate_samples_stored_total{cluster="c",node="culprit"} 2' in text
        assert 'edge_gate_samples_refused_total{cluster="c",node="culprit",reason="duplicate"} 1' in text
        assert 'edge_gate_requests_total{cluster="c",code="204",node="culprit"} 1' in text

    def test_a_store_behind_the_clock_takes_what_is_older_than_a_day(self) -> None:
        """A centre back from a 30 h outage: Prometheus' newest sample is 30 h old, so it takes a node's backlog of
        25 h ago (in its window). The gate stores it, rather than dropping it as older than a day before now."""
        hour_ms = 3600_000
        now_ms = int(NOW * 1000)
        prometheus = PrometheusLikeStore(now_ms - 30 * hour_ms)
        gate = Gate(SETTINGS, send=prometheus.send, log=Logger(stream=io.StringIO()), clock=lambda: NOW)
        backlog = [(now_ms - 25 * hour_ms + i, float(i)) for i in range(3)]
        assert gate.write("a", "c", snappy_encode(encode_write_request([(labels("m"), backlog)]))).status == 204
        assert prometheus.stored == backlog
        assert "edge_gate_samples_refused_total" not in gate.exposition().replace("# ", "")

    def test_what_the_store_refuses_as_too_old_is_dropped_before_it_once_known(self) -> None:
        """Once the store has acknowledged a sample of now, a 2 d old one costs no request to the store."""
        now_ms = int(NOW * 1000)
        prometheus = PrometheusLikeStore(now_ms - 60_000)
        sent = []
        gate = Gate(SETTINGS, send=lambda body: (sent.append(body), prometheus.send(body))[1],
                    log=Logger(stream=io.StringIO()), clock=lambda: NOW)
        assert gate.write("a", "c", snappy_encode(encode_write_request([(labels("m"), [(now_ms, 1.0)])]))).status == 204
        old = snappy_encode(encode_write_request([(labels("m"), [(now_ms - 2 * 86400_000, 2.0)])]))
        assert gate.write("a", "c", old).status == 204
        assert len(sent) == 1
        assert 'edge_gate_samples_refused_total{cluster="c",node="a",reason="too_old"} 1' in gate.exposition()

    def test_store_down_is_503_without_retry_after(self) -> None:
        """vmagent honours Retry-After: a 1 s one kept every node resending each second for as long as the store
        was down; without it each node's vmagent backs off on its own."""
        answer = self.gate(FakeStore({1.0}, 503)).write("a", "c", self.body(1.0))
        assert (answer.status, answer.retry_after) == (503, None)

    def test_malformed_is_400_with_the_reason(self) -> None:
        answer = self.gate(FakeStore(set())).write("a", "c", b"\x10\x00")
        assert answer.status == 400 and b"not a remote-write 1.0 request: snappy" in answer.body

    def test_decoded_size_bound(self) -> None:
        """A small body that claims to decode to more than the node's limit allows: 413 before decoding."""
        answer = self.gate(FakeStore(set())).write("a", "c", b"\xff\xff\xff\x7f\x00")
        assert answer.status == 413


class TestLimitsReload:
    def test_the_file_sets_a_nodes_limits_and_a_bad_line_is_counted(self, tmp_path: Path) -> None:
        limits = tmp_path / "gate-limits.conf"
        limits.write_text("small series=1\nbad rate=x\n")
        log = io.StringIO()
        settings = Settings(default=DEFAULT, limits_file=limits, max_age_seconds=86400.0, max_ahead_seconds=600.0,
                            centre_jobs=frozenset(), max_concurrent_requests=1)
        gate = Gate(settings, send=FakeStore(set()).send, log=Logger(stream=log), clock=lambda: NOW)
        assert gate.limits("small", "c").series_per_hour == 1
        assert gate.limits("bad", "c") == DEFAULT
        assert "edge_gate_limits_file_problems 1" in gate.exposition()
        assert f"{limits}:2: 'rate=x': not a number" in log.getvalue()

    def test_no_file_is_the_defaults_said_once(self, tmp_path: Path) -> None:
        log = io.StringIO()
        settings = Settings(default=DEFAULT, limits_file=tmp_path / "absent.conf", max_age_seconds=86400.0,
                            max_ahead_seconds=600.0, centre_jobs=frozenset(), max_concurrent_requests=1)
        gate = Gate(settings, send=FakeStore(set()).send, log=Logger(stream=log), clock=lambda: NOW)
        gate.load_limits()
        assert gate.limits("a", "c") == DEFAULT
        assert log.getvalue().count("no limits file") == 1
