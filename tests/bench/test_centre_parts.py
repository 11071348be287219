"""bench/centre's pieces that need no centre: the bodies it sends decode, through the gate's own decoder, to what
the profiled node sent with the timestamps asked for, and a node's schedule holds each group at its interval."""

from __future__ import annotations

from bench.centre.load import Schedule, templates
from bench.centre.profile import Group, NodeProfile, Wire
from bench.centre.wire import body, template
from edge_metrics.remotewrite import decode_write_request, snappy_decode

SERIES = tuple(
    ((("__name__", "node_cpu_seconds_total"), ("cpu", str(i % 4)), ("job", "node-exporter"), ("mode", f"m{i}")), i / 3)
    for i in range(300)
)
PROFILE = NodeProfile((Group(15.0, SERIES), Group(10.0, SERIES[:10])), Wire(0.2, 37.0, 40.0))


class TestWire:
    def test_a_body_decodes_to_every_series_at_its_timestamp(self) -> None:
        """Two templates in one body (a flush with two scrapes): every series once per part, each part's samples
        at that part's timestamp, the values as profiled."""
        first, second = template(SERIES), template(SERIES[:10])
        data = body([(first, 1_796_000_000_123), (second, 1_796_000_001_456)])
        request = decode_write_request(snappy_decode(data, 1 << 24))
        assert [s.labels for s in request.series] == [labels for labels, _ in SERIES + SERIES[:10]]
        assert {p[0] for s in request.series[:300] for p in s.points} == {1_796_000_000_123}
        assert {p[0] for s in request.series[300:] for p in s.points} == {1_796_000_001_456}
        assert [s.points[0][1] for s in request.series[:300]] == [value for _, value in SERIES]

    def test_compresses_with_copies(self) -> None:
        """Repeated label text is sent as back references, as vmagent's snappy does: well under the raw size."""
        tmpl = template(SERIES)
        assert len(b"".join(tmpl.pieces)) < tmpl.raw_length / 2


class TestSchedule:
    def test_each_group_falls_due_at_its_interval(self) -> None:
        """Over 60 s a node holds four of its 15 s scrapes and six of its 10 s runs, whatever its phase."""
        schedule = Schedule(PROFILE, templates(PROFILE), seed=7)
        due = list(schedule.due(1_796_000_000.0, 1_796_000_060.0))
        assert sum(t.samples == 300 for _, t in due) == 4
        assert sum(t.samples == 10 for _, t in due) == 6
        assert [at for at, _ in due] == sorted(at for at, _ in due)
